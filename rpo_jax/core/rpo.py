"""Robust Policy Optimization: the perturbed-mean policy used in the loss only.

RPO (paper Algorithm 1, Eq. 4-5, 7) scores the *stored* actions of a rollout
under a Gaussian whose mean is shifted by uniform noise,

    mu' = mu + z,   z ~ U(-alpha, alpha)   (independently per sample and action dimension),

while the rollout itself samples from the unperturbed ``N(mu, sigma)``. The
noise is drawn afresh for every minibatch; ``alpha = 0`` gives back PPO.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

from rpo_jax.core.distributions import action_distribution


def mean_perturbation(key: jax.Array, shape: tuple[int, ...], alpha: jax.Array | float) -> jax.Array:
    """Draws ``z ~ U(-alpha, alpha)`` of the given shape (paper Eq. 4).

    Written as ``alpha * U(-1, 1)`` so that ``alpha = 0`` yields exact zeros and a
    traced alpha can vary across a vmapped population.
    """
    return alpha * jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


def perturbed_policy(
    key: jax.Array | None,
    mean: jax.Array,
    log_std: jax.Array,
    alpha: jax.Array | float,
    kind: str = "gaussian",
) -> distrax.Distribution:
    """The RPO loss-time policy ``N(mean + z, sigma)``, ``z ~ U(-alpha, alpha)`` (paper Eq. 7).

    ``kind`` selects the family (see :mod:`rpo_jax.core.distributions`); for every
    family the *location* output of the actor is shifted by ``z``. With
    ``key=None`` no noise is drawn and the plain policy is returned (PPO).
    """
    if key is not None:
        mean = mean + mean_perturbation(key, mean.shape, alpha)
    return action_distribution(kind, mean, log_std)


def expected_nll_increase(alpha: jax.Array | float, std: jax.Array) -> jax.Array:
    """``E_z[-log N(a; mu + z, sigma)] - (-log N(a; mu, sigma)) = alpha^2 / (6 sigma^2)`` per dimension.

    Paper Eq. 13 / Eq. 30: exact for a Gaussian since ``E[z] = 0`` and
    ``E[z^2] = alpha^2 / 3``. Summed over action dimensions for a diagonal policy.
    """
    return jnp.sum(alpha**2 / (6.0 * std**2), axis=-1)
