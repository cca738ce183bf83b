"""RPO's perturbed-mean estimator: unbiased mean gradient (Eq. 10) and the alpha^2/(6 sigma^2) term (Eq. 13)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from rpo_jax.core import rpo
from rpo_jax.core.networks import Actor

ALPHA = 0.5
NUM_Z = 20_000


def _setup(action_size=2, batch=16, seed=0):
    key = jax.random.PRNGKey(seed)
    k_params, k_obs, k_act, k_std = jax.random.split(key, 4)
    actor = Actor(action_size=action_size, hidden=(32, 32))
    obs = jax.random.normal(k_obs, (batch, 5))
    params = actor.init(k_params, obs)
    # Non-trivial log-std so sigma != 1 matters in Eq. 13.
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: jax.random.uniform(k_std, x.shape, minval=-0.7, maxval=0.3) if "log_std" in str(p) else x,
        params,
    )
    actions = jax.random.normal(k_act, (batch, action_size))
    return actor, params, obs, actions


def _mean_logprob(actor, params, obs, actions, key, alpha):
    mean, log_std = actor.apply(params, obs)
    return rpo.perturbed_policy(key, mean, log_std, alpha).log_prob(actions).mean()


def test_mean_perturbation_is_uniform_in_the_box():
    z = rpo.mean_perturbation(jax.random.PRNGKey(1), (200_000,), 0.3)
    assert float(jnp.max(jnp.abs(z))) <= 0.3
    np.testing.assert_allclose(float(jnp.mean(z)), 0.0, atol=3e-3)
    np.testing.assert_allclose(float(jnp.var(z)), 0.3**2 / 3, rtol=2e-2)
    np.testing.assert_array_equal(rpo.mean_perturbation(jax.random.PRNGKey(1), (7,), 0.0), jnp.zeros(7))


def test_eq10_mean_gradient_over_z_equals_unperturbed_gradient():
    """E_z[grad log pi(a|s; mu+z, sigma)] = grad log pi(a|s) for the mean network (Eq. 10).

    The log-std gradient is *not* unbiased: by Eq. 13 it gains d/dlog(sigma) of
    -alpha^2/(6 sigma^2) = +alpha^2/(3 sigma^2) per dimension; checked as well.
    """
    actor, params, obs, actions = _setup()
    grad_fn = jax.grad(_mean_logprob, argnums=1)
    plain = grad_fn(actor, params, obs, actions, None, ALPHA)
    keys = jax.random.split(jax.random.PRNGKey(42), NUM_Z)
    per_z = jax.jit(jax.vmap(lambda k: grad_fn(actor, params, obs, actions, k, ALPHA)))(keys)
    mc_mean = jax.tree.map(lambda g: g.mean(0), per_z)
    mc_se = jax.tree.map(lambda g: g.std(0) / np.sqrt(NUM_Z), per_z)

    log_std = params["params"]["log_std"]
    # Per dimension, the batch-mean log-std gradient shifts by alpha^2 / (3 sigma^2).
    expected = jax.tree_util.tree_map_with_path(
        lambda p, g: g + ALPHA**2 / (3 * jnp.exp(2 * log_std)) if "log_std" in str(p) else g, plain
    )
    for (path, got), want, se in zip(
        jax.tree_util.tree_leaves_with_path(mc_mean), jax.tree.leaves(expected), jax.tree.leaves(mc_se)
    ):
        np.testing.assert_array_less(np.abs(np.asarray(got - want)), 5 * np.asarray(se) + 1e-6, err_msg=str(path))

    # And the perturbation matters: one z alone gives a visibly different mean-head gradient.
    single = grad_fn(actor, params, obs, actions, keys[0], ALPHA)
    head = lambda g: g["params"]["Dense_2"]["bias"]  # noqa: E731
    assert float(jnp.max(jnp.abs(head(single) - head(plain)))) > 1e-3


class Eq13Test(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_expected_nll_gains_alpha_squared_over_six_sigma_squared(self):
        """E_z[-log N(a; mu+z, sigma)] = -log N(a; mu, sigma) + alpha^2/(6 sigma^2) (Eq. 13, exact here)."""
        actor, params, obs, actions = _setup(action_size=3, batch=8, seed=3)
        mean, log_std = actor.apply(params, obs)

        @self.variant
        def nll(key):
            return -rpo.perturbed_policy(key, mean, log_std, ALPHA).log_prob(actions)

        keys = jax.random.split(jax.random.PRNGKey(7), NUM_Z)
        samples = jnp.stack([nll(k) for k in keys[:2]])  # the variant itself, jitted or not
        chex.assert_shape(samples, (2, 8))
        mc = jax.vmap(nll)(keys)
        gap = mc.mean(0) - nll(None)
        predicted = rpo.expected_nll_increase(ALPHA, jnp.exp(log_std))
        se = mc.std(0) / np.sqrt(NUM_Z)
        np.testing.assert_array_less(np.abs(np.asarray(gap - predicted)), 5 * np.asarray(se) + 1e-5)
        # the closed form itself: sum over dimensions of alpha^2 / (6 sigma^2)
        np.testing.assert_allclose(
            predicted, np.sum(ALPHA**2 / (6 * np.exp(2 * np.asarray(log_std))), axis=-1), rtol=1e-6
        )
        assert float(predicted.min()) > 0.05  # a real effect, not a vanishing one


def test_alpha_zero_perturbed_policy_is_the_plain_policy_bit_for_bit():
    actor, params, obs, actions = _setup()
    mean, log_std = actor.apply(params, obs)
    plain = rpo.perturbed_policy(None, mean, log_std, 0.0).log_prob(actions)
    zero = rpo.perturbed_policy(jax.random.PRNGKey(3), mean, log_std, 0.0).log_prob(actions)
    np.testing.assert_array_equal(plain, zero)
