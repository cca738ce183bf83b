"""TRPO pieces: CG solves SPD systems, Fisher-vector products equal the KL Hessian, a step respects the trust region."""

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rpo_jax.core import divergences, trpo
from rpo_jax.core.networks import Actor

OBS_SIZE, A, B = 4, 2, 64


def _random_spd(key, n, low=1.0, high=20.0):
    k_q, k_eig = jax.random.split(key)
    q, _ = jnp.linalg.qr(jax.random.normal(k_q, (n, n)))
    eigs = jax.random.uniform(k_eig, (n,), minval=low, maxval=high)
    return (q * eigs) @ q.T


def test_conjugate_gradient_solves_spd_system():
    n = 16
    a = _random_spd(jax.random.PRNGKey(0), n)
    b = jax.random.normal(jax.random.PRNGKey(1), (n,))
    x = jax.jit(lambda b: trpo.conjugate_gradient(lambda v: a @ v, b, iters=n))(b)
    assert float(jnp.linalg.norm(a @ x - b) / jnp.linalg.norm(b)) < 1e-4
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(a, np.float64), np.asarray(b, np.float64)), atol=1e-4)
    # Few iterations give a worse but finite answer; b = 0 gives x = 0 (no 0/0).
    x3 = trpo.conjugate_gradient(lambda v: a @ v, b, iters=3)
    assert float(jnp.linalg.norm(a @ x3 - b)) > float(jnp.linalg.norm(a @ x - b))
    np.testing.assert_array_equal(trpo.conjugate_gradient(lambda v: a @ v, jnp.zeros(n)), 0.0)


def test_conjugate_gradient_on_pytrees_and_under_vmap():
    a1, a2 = _random_spd(jax.random.PRNGKey(2), 3), _random_spd(jax.random.PRNGKey(3), 5)

    def matvec(tree):  # block-diagonal operator on {"u": [3], "w": [5]}
        return {"u": a1 @ tree["u"], "w": a2 @ tree["w"]}

    b = {"u": jnp.arange(3.0), "w": -jnp.ones(5)}
    x = trpo.conjugate_gradient(matvec, b, iters=8)
    chex.assert_trees_all_equal_shapes(x, b)
    chex.assert_trees_all_close(matvec(x), b, atol=1e-4)
    # vmap over right-hand sides (lanes converge at different iterations).
    bs = jax.random.normal(jax.random.PRNGKey(4), (4, 3))
    xs = jax.vmap(lambda bb: trpo.conjugate_gradient(lambda v: a1 @ v, bb, iters=3))(bs)
    np.testing.assert_allclose(xs @ a1.T, bs, atol=1e-4)


def _policy_setup(hidden=(32, 32), obs_size=OBS_SIZE, batch=B, seed=0):
    actor = Actor(action_size=A, hidden=hidden)
    k_params, k_obs, k_act, k_adv = jax.random.split(jax.random.PRNGKey(seed), 4)
    obs = jax.random.normal(k_obs, (batch, obs_size))
    params = actor.init(k_params, obs)
    mean_old, log_std_old = actor.apply(params, obs)
    actions = mean_old + jnp.exp(log_std_old) * jax.random.normal(k_act, mean_old.shape)
    advantages = jax.random.normal(k_adv, (batch,))
    logprob_old = distrax.MultivariateNormalDiag(mean_old, jnp.exp(log_std_old)).log_prob(actions)

    @jax.jit
    def surrogate_fn(p):
        mean, log_std = actor.apply(p, obs)
        logprob = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)).log_prob(actions)
        return jnp.mean(jnp.exp(logprob - logprob_old) * advantages)

    @jax.jit
    def kl_fn(p):
        mean, log_std = actor.apply(p, obs)
        return jnp.mean(divergences.gaussian_kl(mean_old, log_std_old, mean, log_std))

    @jax.jit
    def _independent_kl(p):  # KL(old || new) measured with distrax, not with kl_fn
        mean, log_std = actor.apply(p, obs)
        old = distrax.MultivariateNormalDiag(mean_old, jnp.exp(log_std_old))
        return jnp.mean(old.kl_divergence(distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))))

    def independent_kl(p):
        return float(_independent_kl(p))

    return actor, params, obs, surrogate_fn, kl_fn, independent_kl


def test_fisher_vector_product_matches_explicit_kl_hessian():
    _, params, _, _, kl_fn, _ = _policy_setup(hidden=(4,), obs_size=3, batch=8)
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda x: kl_fn(unravel(x))))(flat)
    assert hessian.shape == (flat.size, flat.size)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-6)
    assert float(jnp.linalg.eigvalsh(hessian).min()) > -1e-6  # PSD at theta_old: the Fisher matrix
    for seed, damping in ((0, 0.0), (1, 0.1)):
        v_flat = jax.random.normal(jax.random.PRNGKey(seed), flat.shape)
        fv = jax.jit(trpo.fisher_vector_product, static_argnums=0)(kl_fn, params, unravel(v_flat), damping)
        chex.assert_trees_all_equal_shapes(fv, params)
        np.testing.assert_allclose(ravel_pytree(fv)[0], hessian @ v_flat + damping * v_flat, rtol=1e-4, atol=1e-6)


class TrpoStepTest(chex.TestCase):
    @chex.variants(with_jit=True)  # eager trpo_step works too, but op-by-op dispatch is slow on CPU
    def test_step_stays_in_trust_region_and_improves_surrogate(self):
        _, params, _, surrogate_fn, kl_fn, independent_kl = _policy_setup()
        max_kl = 0.01
        step = self.variant(lambda p, m: trpo.trpo_step(surrogate_fn, kl_fn, p, max_kl=m))
        new_params, info = step(params, max_kl)
        assert bool(info["step_accepted"])
        kl = independent_kl(new_params)
        assert 0.0 < kl <= max_kl * (1 + 1e-4), kl
        np.testing.assert_allclose(info["kl"], kl, rtol=1e-3)
        improve = float(surrogate_fn(new_params) - surrogate_fn(params))
        assert improve > 0
        np.testing.assert_allclose(info["actual_improve"], improve, rtol=1e-3)
        # The quadratic model is good for a small trust region: the step uses most of it and the
        # linear prediction is of the right size.
        assert kl > 0.25 * max_kl
        assert 0.3 < improve / float(info["step_fraction"] * info["expected_improve"]) < 3.0

    def test_traced_max_kl_under_vmap_and_rejection(self):
        _, params, _, surrogate_fn, kl_fn, independent_kl = _policy_setup(seed=1)
        radii = jnp.array([1e-4, 3e-3, 0.03])
        new_params, info = jax.jit(jax.vmap(lambda m: trpo.trpo_step(surrogate_fn, kl_fn, params, max_kl=m)))(radii)
        assert np.all(np.asarray(info["step_accepted"]))
        kls = [independent_kl(jax.tree.map(lambda x, i=i: x[i], new_params)) for i in range(len(radii))]
        for kl, radius in zip(kls, np.asarray(radii)):
            assert 0.0 < kl <= radius * (1 + 1e-4), (kl, radius)
        assert kls[0] < kls[1] < kls[2]
        gains = np.asarray(info["actual_improve"])
        assert np.all(gains > 0) and gains[0] < gains[1] < gains[2]

        # Surrogates that no backtracked step improves are rejected: old params back, step_accepted False.
        flat0, _ = ravel_pytree(params)
        c = 1e-3 * jax.random.normal(jax.random.PRNGKey(9), flat0.shape)

        def sharply_curved(p):  # ascent direction at params, but every step of trust-region size overshoots
            d = ravel_pytree(p)[0] - flat0
            return jnp.vdot(c, d) - 1e4 * jnp.vdot(d, d)

        flat_at_max = lambda p: -kl_fn(p)  # noqa: E731  (zero gradient: a zero step, no improvement)
        for surrogate in (sharply_curved, flat_at_max):
            kept, info = jax.jit(lambda p, s=surrogate: trpo.trpo_step(s, kl_fn, p))(params)
            assert not bool(info["step_accepted"])
            assert float(info["step_fraction"]) == 0.0 and float(info["actual_improve"]) == 0.0
            chex.assert_trees_all_equal(kept, params)


def test_trpo_critic_fits_a_large_scale_target_unless_clipped():
    """SR^2L's TRPO configs learn from raw rewards: the critic must reach returns of ~100 (issue "Fidelity").

    Sizes as in those configs: Adam at 1e-3, 10 epochs of (here 8) minibatches per iteration, 20 iterations.
    """
    import dataclasses

    from rpo_jax.config import TrainConfig
    from rpo_jax.core import ppo
    from rpo_jax.training.train import as_hparams, make_trainer

    config = TrainConfig(
        env="gymnax/Pendulum-v1",
        algorithm="trpo",
        num_envs=2,
        num_steps=64,
        num_minibatches=8,
        update_epochs=10,
        total_timesteps=128 * 20,
        anneal_lr=False,
    )
    assert config.trpo_clip_vloss is False  # TRPO's own default: unclipped
    obs = jax.random.normal(jax.random.PRNGKey(0), (128, 3))
    returns = jnp.full((128,), 100.0)
    hp = as_hparams(alpha=0.0, learning_rate=1e-3)  # the critic's rate in configs/paper/sr2l_trpo_*.yaml
    fitted = {}
    for clip in (False, True):
        trainer = make_trainer(dataclasses.replace(config, trpo_clip_vloss=clip))

        def iteration(state, key, trainer=trainer):
            values = trainer.critic.apply(state.params["critic"], obs)
            mean, log_std = trainer.actor.apply(state.params["actor"], obs)
            batch = ppo.Batch(
                obs=obs,
                actions=mean,
                logprobs=distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)).log_prob(mean),
                advantages=jnp.zeros(128),
                returns=returns,
                values=values,
            )
            return trainer.update(state, hp, batch, key)[0], None

        state = trainer.init(jax.random.PRNGKey(1), hp)
        state, _ = jax.jit(lambda s: jax.lax.scan(iteration, s, jax.random.split(jax.random.PRNGKey(2), 20)))(state)
        fitted[clip] = float(trainer.critic.apply(state.params["critic"], obs).mean())
    assert fitted[False] > 95.0, fitted  # 20 iterations of Adam epochs reach the target
    assert fitted[True] < 50.0, fitted  # clipping at ±0.2 per iteration cannot
