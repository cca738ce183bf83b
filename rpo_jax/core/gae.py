"""Generalised advantage estimation (Schulman et al., 2016) with termination and truncation apart."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminations: jax.Array,
    dones: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """GAE(gamma, lambda) advantages and value targets for a time-major rollout.

    For every step t (arrays shaped ``[T, ...]``)::

        delta_t = r_t + gamma * (1 - term_t) * V(s'_t) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   A_T = 0
        R_t     = A_t + V(s_t)

    where ``s'_t`` is the true successor of ``s_t`` (the final observation of an
    episode, not the first observation after an auto-reset), ``term_t`` marks a
    terminal ``s'_t`` (no bootstrap) and ``done_t`` marks the end of an episode
    for any reason (termination or truncation), which cuts the recursion. A
    truncated step therefore bootstraps from ``V(s'_t)`` but does not leak the
    next episode's advantages into this one. Treating truncation as termination,
    as CleanRL does, is ``terminations = dones``.

    Args:
      rewards: ``r_t``, shape ``[T, ...]``.
      values: ``V(s_t)``, same shape.
      next_values: ``V(s'_t)``, same shape.
      terminations: ``term_t`` (bool or {0, 1}), same shape.
      dones: ``done_t`` (bool or {0, 1}), same shape; must include terminations.
      gamma: discount factor.
      gae_lambda: GAE lambda.

    Returns:
      ``(advantages, returns)``, both shaped like ``rewards``.
    """
    not_term = 1.0 - terminations.astype(rewards.dtype)
    not_done = 1.0 - dones.astype(rewards.dtype)
    deltas = rewards + gamma * not_term * next_values - values

    def backward(carry, xs):
        delta, cont = xs
        advantage = delta + gamma * gae_lambda * cont * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True)
    return advantages, advantages + values
