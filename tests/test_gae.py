"""GAE against a plain NumPy reference, with termination and truncation apart."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.core.gae import gae


def numpy_gae(rewards, values, next_values, terminations, dones, gamma, lam):
    """Textbook backward loop over one env, written independently of rpo_jax."""
    T = len(rewards)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        bootstrap = 0.0 if terminations[t] else gamma * next_values[t]
        delta = rewards[t] + bootstrap - values[t]
        if dones[t]:
            running = 0.0  # the next step belongs to another episode
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, adv + values


def random_rollout(rng, T, E):
    rewards = rng.normal(size=(T, E))
    values = rng.normal(size=(T, E))
    next_values = rng.normal(size=(T, E))
    terminated = rng.random((T, E)) < 0.1
    truncated = (rng.random((T, E)) < 0.1) & ~terminated
    return rewards, values, next_values, terminated, truncated


class GaeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_reference_with_truncation_and_termination(self):
        rng = np.random.default_rng(0)
        T, E = 64, 5
        rewards, values, next_values, terminated, truncated = random_rollout(rng, T, E)
        dones = terminated | truncated
        fn = self.variant(gae)
        for bootstrap_truncation in (True, False):
            terms = terminated if bootstrap_truncation else dones
            adv, ret = fn(
                jnp.asarray(rewards, jnp.float32),
                jnp.asarray(values, jnp.float32),
                jnp.asarray(next_values, jnp.float32),
                jnp.asarray(terms),
                jnp.asarray(dones),
                0.99,
                0.95,
            )
            chex.assert_shape((adv, ret), (T, E))
            for e in range(E):
                ref_adv, ref_ret = numpy_gae(
                    rewards[:, e], values[:, e], next_values[:, e], terms[:, e], dones[:, e], 0.99, 0.95
                )
                np.testing.assert_allclose(adv[:, e], ref_adv, rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(ret[:, e], ref_ret, rtol=1e-4, atol=1e-4)

    def test_truncation_bootstraps_but_termination_does_not(self):
        # One step that ends an episode, next value 10: bootstrapped only if truncated.
        r = jnp.zeros((1, 1))
        v = jnp.zeros((1, 1))
        nv = jnp.full((1, 1), 10.0)
        yes = jnp.ones((1, 1), bool)
        no = jnp.zeros((1, 1), bool)
        adv_trunc, _ = gae(r, v, nv, no, yes, 0.9, 0.95)
        adv_term, _ = gae(r, v, nv, yes, yes, 0.9, 0.95)
        np.testing.assert_allclose(adv_trunc, [[9.0]], rtol=1e-6)
        np.testing.assert_allclose(adv_term, [[0.0]], atol=1e-7)

    def test_episode_boundary_cuts_the_recursion(self):
        # Step 0 ends an episode: its advantage must not see step 1's large reward.
        r = jnp.array([[0.0], [100.0]])
        v = jnp.zeros((2, 1))
        nv = jnp.zeros((2, 1))
        dones = jnp.array([[True], [False]])
        adv, _ = gae(r, v, nv, dones, dones, 0.99, 0.95)
        np.testing.assert_allclose(adv[:, 0], [0.0, 100.0], atol=1e-6)

    def test_lambda_one_no_dones_is_discounted_return_minus_value(self):
        rng = np.random.default_rng(1)
        T = 20
        r = rng.normal(size=(T,)).astype(np.float32)
        v = rng.normal(size=(T,)).astype(np.float32)
        nv = np.concatenate([v[1:], [0.0]]).astype(np.float32)
        zeros = np.zeros(T, bool)
        adv, ret = gae(
            jnp.asarray(r), jnp.asarray(v), jnp.asarray(nv), jnp.asarray(zeros), jnp.asarray(zeros), 0.9, 1.0
        )
        discounted = np.array([sum(0.9 ** (k - t) * r[k] for k in range(t, T)) for t in range(T)])
        np.testing.assert_allclose(ret, discounted, rtol=1e-4, atol=1e-4)


if __name__ == "__main__":
    pytest.main([__file__])
