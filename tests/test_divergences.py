"""Closed-form divergences against distrax, and SR^2L's smoothness penalties (gradients, eps = 0)."""

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.core import divergences
from rpo_jax.core.networks import Actor, Critic

B, A, OBS_SIZE = 16, 3, 5


def _random_gaussians(seed):
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(seed), 4)
    mean_p = jax.random.normal(k1, (B, A))
    mean_q = jax.random.normal(k2, (B, A))
    log_std_p = jax.random.uniform(k3, (B, A), minval=-1.5, maxval=1.0)
    log_std_q = jax.random.uniform(k4, (B, A), minval=-1.5, maxval=1.0)
    return mean_p, log_std_p, mean_q, log_std_q


def _mvn(mean, log_std):
    return distrax.MultivariateNormalDiag(loc=mean, scale_diag=jnp.exp(log_std))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_kl_and_jeffreys_match_distrax(seed):
    mean_p, log_std_p, mean_q, log_std_q = _random_gaussians(seed)
    p, q = _mvn(mean_p, log_std_p), _mvn(mean_q, log_std_q)
    kl_pq = divergences.gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)
    chex.assert_shape(kl_pq, (B,))
    np.testing.assert_allclose(kl_pq, p.kl_divergence(q), rtol=1e-5)
    np.testing.assert_allclose(
        divergences.gaussian_kl(mean_q, log_std_q, mean_p, log_std_p), q.kl_divergence(p), rtol=1e-5
    )
    both_ways = p.kl_divergence(q) + q.kl_divergence(p)
    closed = divergences.jeffreys_gaussian(mean_p, log_std_p, mean_q, log_std_q)
    chex.assert_shape(closed, (B,))
    np.testing.assert_allclose(closed, both_ways, rtol=1e-5)
    np.testing.assert_allclose(divergences.jeffreys(p, q), both_ways, rtol=1e-6)
    # Symmetric, non-negative, and exactly zero at p == q.
    np.testing.assert_allclose(closed, divergences.jeffreys_gaussian(mean_q, log_std_q, mean_p, log_std_p), rtol=1e-6)
    assert np.all(np.asarray(closed) > 0)
    np.testing.assert_array_equal(divergences.jeffreys_gaussian(mean_p, log_std_p, mean_p, log_std_p), 0.0)


def test_jeffreys_with_shared_sigma_is_mean_term_of_paper_section_5():
    """With a state-independent sigma, D_J = ||mu(s) - mu(s')||^2 / sigma^2 (paper §5)."""
    mean_p, log_std, mean_q, _ = _random_gaussians(3)
    np.testing.assert_allclose(
        divergences.jeffreys_gaussian(mean_p, log_std, mean_q, log_std),
        jnp.sum((mean_p - mean_q) ** 2 / jnp.exp(2 * log_std), axis=-1),
        rtol=1e-5,
    )


def test_squared_distances():
    a, b = jnp.array([[1.0, 2.0], [0.0, -1.0]]), jnp.array([[0.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(divergences.squared_l2(a, b), [5.0, 9.0])
    v, w = jnp.array([1.0, -2.0]), jnp.array([3.0, 1.0])
    np.testing.assert_allclose(divergences.squared_difference(v, w), [4.0, 9.0])


def _actor_setup(seed=0):
    actor = Actor(action_size=A, hidden=(32, 32))
    k_params, k_obs, k_std = jax.random.split(jax.random.PRNGKey(seed), 3)
    obs = jax.random.normal(k_obs, (B, OBS_SIZE))
    params = actor.init(k_params, obs)
    params["params"]["log_std"] = jax.random.uniform(k_std, (A,), minval=-1.0, maxval=0.0)
    return actor, params, obs


def _finite_and_nonzero(tree):
    leaves = jax.tree.leaves(tree)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    return sum(float(jnp.sum(jnp.abs(x))) for x in leaves) > 0


class PolicyPenaltyTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_gradients_and_sigma_stop_gradient(self):
        actor, params, obs = _actor_setup()
        key, eps = jax.random.PRNGKey(1), 0.3

        def loss(p, stop_grad_sigma):
            return divergences.policy_smoothness_penalty(actor.apply, p, obs, key, eps, stop_grad_sigma=stop_grad_sigma)

        grad_fn = self.variant(jax.grad(loss, has_aux=True), static_argnums=1)
        grads, obs_adv = grad_fn(params, True)
        assert _finite_and_nonzero(grads["params"]["Dense_2"])  # the mean head
        assert _finite_and_nonzero(grads["params"]["Dense_0"])
        np.testing.assert_array_equal(grads["params"]["log_std"], 0.0)

        # Without the stop-gradient, sigma gets a gradient: D_J = ||dmu||^2 / sigma^2 shrinks as sigma grows.
        grads_free, _ = grad_fn(params, False)
        assert np.all(np.asarray(grads_free["params"]["log_std"]) < 0)
        # ... and the rest of the gradient is unchanged (the mean network does not depend on log_std).
        chex.assert_trees_all_close(grads_free["params"]["Dense_0"], grads["params"]["Dense_0"], rtol=1e-5)

        # No gradient flows through the PGD search: the same as differentiating at the fixed obs_adv,
        # which includes both the clean and the perturbed branch.
        fixed = jax.grad(lambda p: divergences.policy_divergence_at(actor.apply, p, obs, obs_adv))(params)
        chex.assert_trees_all_close(grads, fixed, rtol=1e-4, atol=1e-10)
        perturbed_only = jax.grad(
            lambda p: jnp.mean(
                divergences.jeffreys_gaussian(*jax.lax.stop_gradient(actor.apply(p, obs)), *actor.apply(p, obs_adv))
            )
        )(params)
        assert not np.allclose(perturbed_only["params"]["Dense_2"]["kernel"], grads["params"]["Dense_2"]["kernel"])

    def test_eps_zero_gives_zero_penalty_and_clean_obs(self):
        actor, params, obs = _actor_setup()
        critic = Critic(hidden=(32, 32))
        critic_params = critic.init(jax.random.PRNGKey(5), obs)

        @jax.jit
        def penalties(actor_params, critic_params, eps):  # eps traced
            key = jax.random.PRNGKey(2)
            return {
                norm: (
                    divergences.policy_smoothness_penalty(actor.apply, actor_params, obs, key, eps, norm=norm),
                    divergences.value_smoothness_penalty(critic.apply, critic_params, obs, key, eps, norm=norm),
                )
                for norm in ("linf", "l2")
            }

        for (penalty, obs_adv), (v_penalty, v_obs_adv) in penalties(params, critic_params, 0.0).values():
            assert float(penalty) == 0.0
            np.testing.assert_array_equal(obs_adv, obs)
            assert float(v_penalty) == 0.0
            np.testing.assert_array_equal(v_obs_adv, obs)

        # ... with an exactly zero gradient as well.
        def total(actor_params, critic_params):
            return sum(a[0] + v[0] for a, v in penalties(actor_params, critic_params, 0.0).values())

        grads = jax.jit(jax.grad(total, argnums=(0, 1)))(params, critic_params)
        for leaf in jax.tree.leaves(grads):
            np.testing.assert_array_equal(leaf, 0.0)
        # Sanity: a positive eps gives a positive penalty with the same function.
        assert all(float(a[0]) > 0 and float(v[0]) > 0 for a, v in penalties(params, critic_params, 0.1).values())

    def test_value_penalty(self):
        _, _, obs = _actor_setup()
        critic = Critic(hidden=(32, 32))
        critic_params = critic.init(jax.random.PRNGKey(5), obs)
        eps, key = 0.2, jax.random.PRNGKey(3)

        def loss(p, fixed_clean=False):
            return divergences.value_smoothness_penalty(critic.apply, p, obs, key, eps, fixed_clean=fixed_clean)

        (penalty, obs_adv), grads = jax.value_and_grad(loss, has_aux=True)(critic_params)
        assert float(penalty) > 0
        assert float(jnp.max(jnp.abs(obs_adv - obs))) <= eps + 1e-6
        assert _finite_and_nonzero(grads)
        # Larger than the squared value change at a random point of the ball.
        random_obs = obs + jax.random.uniform(jax.random.PRNGKey(4), obs.shape, minval=-eps, maxval=eps)
        random_penalty = jnp.mean((critic.apply(critic_params, obs) - critic.apply(critic_params, random_obs)) ** 2)
        assert float(penalty) > float(random_penalty)
        # Holding the clean branch fixed changes the gradient, not the value.
        (penalty_fixed, _), grads_fixed = jax.value_and_grad(loss, has_aux=True)(critic_params, True)
        np.testing.assert_allclose(penalty_fixed, penalty, rtol=1e-6)
        assert not np.allclose(grads_fixed["params"]["Dense_2"]["kernel"], grads["params"]["Dense_2"]["kernel"])
