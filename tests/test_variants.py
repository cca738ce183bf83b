"""Defining properties of the RPO paper's variants: distributions, alpha annealing, RAD, DrAC, entropy bonus."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from rpo_jax.config import TrainConfig
from rpo_jax.core import augmentation, ppo, rpo
from rpo_jax.core.distributions import action_distribution
from rpo_jax.core.networks import Actor, Critic
from rpo_jax.training.train import as_hparams, make_trainer, stack_hparams

TINY = TrainConfig(
    env="gymnax/Pendulum-v1",
    num_envs=4,
    num_steps=64,
    num_minibatches=4,
    update_epochs=2,
    total_timesteps=4 * 64 * 5,
)


# ----------------------------------------------------------------- distributions
@pytest.mark.parametrize(
    "kind,scipy_dist",
    [("laplace", scipy.stats.laplace), ("gumbel", scipy.stats.gumbel_r), ("gaussian", scipy.stats.norm)],
)
def test_log_prob_and_entropy_match_scipy(kind, scipy_dist):
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(5, 3)).astype(np.float32)
    log_scale = rng.uniform(-1, 0.5, size=(5, 3)).astype(np.float32)
    x = rng.normal(size=(5, 3)).astype(np.float32) * 2
    dist = action_distribution(kind, jnp.asarray(loc), jnp.asarray(log_scale))
    want = scipy_dist.logpdf(x, loc=loc, scale=np.exp(log_scale)).sum(-1)
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(x)), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.entropy(), scipy_dist.entropy(loc=loc, scale=np.exp(log_scale)).sum(-1), rtol=1e-5)


@pytest.mark.parametrize("kind", ["gaussian", "laplace", "gumbel"])
def test_perturbation_shifts_the_location_by_z(kind):
    key = jax.random.PRNGKey(4)
    loc = jnp.linspace(-1, 1, 12).reshape(4, 3)
    log_scale = jnp.full((4, 3), -0.3)
    z = rpo.mean_perturbation(key, loc.shape, 0.5)
    plain = action_distribution(kind, loc, log_scale)
    perturbed = rpo.perturbed_policy(key, loc, log_scale, 0.5, kind)
    # the mode is the location for all three families; the mean moves by z as well
    np.testing.assert_allclose(
        perturbed.distribution.mode() if kind != "gaussian" else perturbed.mode(), loc + z, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(perturbed.mean() - plain.mean(), z, rtol=1e-5, atol=1e-6)
    if kind == "gumbel":  # the Gumbel mean is not its location: loc + euler_gamma * scale
        np.testing.assert_allclose(plain.mean() - loc, np.euler_gamma * np.exp(-0.3), rtol=1e-5)
    np.testing.assert_allclose(perturbed.entropy(), plain.entropy(), rtol=1e-6)  # shape unchanged


@pytest.mark.parametrize("kind", ["laplace", "gumbel"])
def test_training_with_other_distributions_logs_their_entropy(kind):
    cfg = dataclasses.replace(TINY, action_dist=kind)
    state, metrics = jax.jit(make_trainer(cfg).train)(jax.random.PRNGKey(0), as_hparams(alpha=0.5))
    log_scale = np.asarray(state.params["actor"]["params"]["log_std"])
    assert np.all(np.isfinite(metrics["policy_loss"]))
    # The last logged entropy is that family's entropy at (nearly) the final scale.
    want = {"laplace": scipy.stats.laplace, "gumbel": scipy.stats.gumbel_r}[kind].entropy(scale=np.exp(log_scale)).sum()
    np.testing.assert_allclose(metrics["entropy"][-1], want, atol=0.05)


# ---------------------------------------------------------------- alpha annealing
def test_annealed_alpha_reaches_zero_at_the_last_update_and_shares_a_compile_with_constant():
    trainer = make_trainer(TINY)
    hps = stack_hparams([as_hparams(alpha=0.5, anneal_alpha=1.0), as_hparams(alpha=0.5, anneal_alpha=0.0)])
    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    _, metrics = jax.jit(jax.vmap(trainer.train))(keys, hps)
    n = TINY.num_iterations
    np.testing.assert_allclose(metrics["alpha_current"][0], 0.5 * (1 - np.arange(n) / (n - 1)), rtol=1e-6, atol=1e-7)
    assert metrics["alpha_current"][0, -1] == 0.0  # exactly zero in the last update
    np.testing.assert_array_equal(metrics["alpha_current"][1], np.full(n, 0.5, np.float32))


def test_alpha_anneals_over_the_learning_rates_horizon():
    """With train.anneal_lr_timesteps (a shortened run of a longer one), alpha follows the longer run's
    schedule as the learning rate does: one horizon for both."""
    cfg = dataclasses.replace(TINY, anneal_lr_timesteps=2 * TINY.total_timesteps)
    _, metrics = jax.jit(make_trainer(cfg).train)(jax.random.PRNGKey(0), as_hparams(alpha=0.5, anneal_alpha=1.0))
    n, horizon = cfg.num_iterations, cfg.anneal_iterations
    assert horizon == 2 * n
    i = np.arange(n)
    np.testing.assert_allclose(metrics["learning_rate_current"], 3e-4 * (1 - i / horizon), rtol=1e-6)
    np.testing.assert_allclose(metrics["alpha_current"], 0.5 * (1 - i / (horizon - 1)), rtol=1e-6, atol=1e-7)
    assert metrics["alpha_current"][-1] > 0.2  # half-way through the longer run's schedule


# --------------------------------------------------------------------- RAD / DrAC
def _minibatch(key, n=32, obs_size=3, action_size=1):
    k = jax.random.split(key, 6)
    return ppo.Batch(
        obs=jax.random.normal(k[0], (n, obs_size)),
        actions=jax.random.normal(k[1], (n, action_size)),
        logprobs=jax.random.normal(k[2], (n,)) - 1.0,
        advantages=jax.random.normal(k[3], (n,)),
        returns=jax.random.normal(k[4], (n,)),
        values=jax.random.normal(k[5], (n,)),
    )


def test_random_amplitude_scaling_range():
    obs = jnp.ones((1000, 4))
    scaled = augmentation.random_amplitude_scaling(jax.random.PRNGKey(0), obs, 0.6, 1.2)
    assert float(scaled.min()) >= 0.6 and float(scaled.max()) <= 1.2
    assert len(np.unique(np.asarray(scaled))) > 3000  # independent per sample and dimension


def test_rad_leaves_the_stored_rollout_unchanged_but_changes_the_loss():
    ppo_trainer = make_trainer(TINY)
    rad_trainer = make_trainer(dataclasses.replace(TINY, augmentation="rad"))
    hp = as_hparams(alpha=0.0)
    key = jax.random.PRNGKey(2)
    state = jax.jit(ppo_trainer.init)(key, hp)
    rollout = jax.jit(lambda t, s: t.rollout(s, hp, key)[1], static_argnums=0)
    chex.assert_trees_all_equal(rollout(ppo_trainer, state), rollout(rad_trainer, state))

    batch = _minibatch(jax.random.PRNGKey(3))
    ppo_loss, _ = ppo_trainer.algorithm.loss(state.params, batch, hp, key)
    rad_loss, _ = rad_trainer.algorithm.loss(state.params, batch, hp, key)
    assert abs(float(ppo_loss) - float(rad_loss)) > 1e-6


def test_drac_penalty_is_zero_without_augmentation_and_positive_with_it():
    actor, critic = Actor(action_size=2, hidden=(16, 16)), Critic(hidden=(16, 16))
    obs = jax.random.normal(jax.random.PRNGKey(0), (32, 5))
    params = {"actor": actor.init(jax.random.PRNGKey(1), obs), "critic": critic.init(jax.random.PRNGKey(2), obs)}
    kwargs = dict(actor_apply=actor.apply, critic_apply=critic.apply)
    for kind in ("gaussian", "laplace", "gumbel"):
        zero, _ = augmentation.drac_penalty(params, obs, obs, action_dist=kind, **kwargs)
        assert float(zero) == 0.0, kind
    augmented = augmentation.random_amplitude_scaling(jax.random.PRNGKey(3), obs)
    penalty, aux = augmentation.drac_penalty(params, obs, augmented, **kwargs)
    assert float(aux["drac_policy"]) > 0 and float(aux["drac_value"]) > 0
    grads = jax.grad(lambda p: augmentation.drac_penalty(p, obs, augmented, **kwargs)[0])(params)
    assert float(jnp.abs(grads["critic"]["params"]["Dense_2"]["kernel"]).sum()) > 0


def test_drac_trains_and_reports_its_terms():
    cfg = dataclasses.replace(TINY, augmentation="drac")
    _, metrics = jax.jit(make_trainer(cfg).train)(jax.random.PRNGKey(0), as_hparams(alpha=0.0, drac_coef=0.1))
    assert np.all(np.asarray(metrics["drac_policy"]) > 0) and np.all(np.asarray(metrics["drac_value"]) > 0)


# ------------------------------------------------------------------ entropy bonus
def test_entropy_coefficient_raises_entropy():
    trainer = make_trainer(dataclasses.replace(TINY, total_timesteps=4 * 64 * 10))
    # 80 Adam steps (LR annealed to 0) move log_std by at most ~40 * lr: use lr 1e-2 so the
    # bonus has room to act (up to ~0.4 nats per action dimension).
    hps = stack_hparams([as_hparams(alpha=0.0, ent_coef=c, learning_rate=1e-2) for c in (0.0, 1.0)])
    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    _, metrics = jax.jit(jax.vmap(trainer.train))(keys, hps)
    entropy = np.asarray(metrics["entropy"])
    assert entropy[1, -1] > entropy[0, -1] + 0.1, entropy[:, -1]
    assert entropy[1, -1] > entropy[1, 0] + 0.1, entropy[1]
