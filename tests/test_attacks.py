"""Each registered attack alone (rpo_jax.core.attacks), on a member whose policy and critic are linear."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.core import attacks, divergences

N, D = 16, 3
W = jnp.asarray([0.5, -2.0, 0.0])  # V(p) = W . p; dimension 2 has no gradient
A = jnp.asarray([[1.0, 0.0, 2.0], [0.0, -1.0, 0.5]])  # loc(p) = A p, log_scale 0


def target(scale=1.0):
    return attacks.Target(
        policy=lambda p: (p @ A.T, jnp.zeros((p.shape[0], 2))),
        value=lambda p: p @ W,
        divergence=lambda a, b: divergences.jeffreys_gaussian(a[0], a[1], b[0], b[1]),
        perturbed=lambda base, delta: base + delta * scale,
    )


BASE = jax.random.normal(jax.random.PRNGKey(0), (N, D))
KEY = jax.random.PRNGKey(1)


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_every_attack_stays_in_the_ball_and_is_exactly_zero_at_eps_zero(name):
    attack = attacks.ATTACKS[name]
    delta = jax.jit(lambda e: attack(KEY, BASE, e, target(), steps=10))(jnp.float32(0.3))
    assert delta.shape == BASE.shape and np.all(np.abs(delta) <= 0.3 + 1e-7)
    zero = attack(KEY, BASE, jnp.float32(0.0), target(), steps=10)
    np.testing.assert_array_equal(zero, np.zeros_like(BASE))


def test_fgsm_is_one_signed_step_against_the_critic():
    delta = attacks.fgsm(KEY, BASE, jnp.float32(0.2), target(), steps=10)
    expected = np.broadcast_to(-0.2 * np.sign(np.asarray(W)), BASE.shape)
    np.testing.assert_allclose(delta, expected, rtol=1e-6)
    assert np.all(delta[:, 2] == 0)  # no gradient, no move; no random start


def test_critic_pgd_reaches_the_same_worst_corner_and_fgsm_is_as_bad_for_a_linear_critic():
    pgd_delta = attacks.critic(KEY, BASE, jnp.float32(0.2), target(), steps=10)
    np.testing.assert_allclose(pgd_delta[:, :2], np.broadcast_to(-0.2 * np.sign(np.asarray(W[:2])), (N, 2)), rtol=1e-5)
    t = target()
    fgsm_value = t.value(BASE + attacks.fgsm(KEY, BASE, jnp.float32(0.2), t, steps=10))
    np.testing.assert_allclose(t.value(BASE + pgd_delta), fgsm_value, rtol=1e-5)


def test_mad_finds_a_larger_divergence_than_random_noise_of_the_same_size():
    t = target()
    clean = t.policy(BASE)
    score = lambda delta: t.divergence(clean, t.policy(BASE + delta))  # noqa: E731
    mad = attacks.mad(KEY, BASE, jnp.float32(0.2), t, steps=10)
    rnd = attacks.random(KEY, BASE, jnp.float32(0.2), t, steps=10)
    assert np.all(np.asarray(score(mad)) >= np.asarray(score(rnd)) - 1e-6)
    assert float(jnp.mean(score(mad))) > 2 * float(jnp.mean(score(rnd)))


def test_a_scaled_space_scales_the_physical_perturbation():
    delta = attacks.fgsm(KEY, BASE, jnp.float32(0.2), target(scale=jnp.asarray([1.0, 3.0, 1.0])), steps=10)
    np.testing.assert_allclose(delta[:, 1], 0.2, rtol=1e-6)  # delta is in units of the scale
