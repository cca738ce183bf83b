"""SR^2L's smoothness regularisers for DDPG (Shen et al. 2020, §3.2 "DDPG with SR^2L", Algorithms 2-3).

Both follow the pattern of :func:`rpo_jax.core.divergences.policy_smoothness_penalty`: the worst state
``s~ = s + delta`` in the eps-ball is found by :func:`rpo_jax.core.pgd.pgd_perturbation` (random start,
``steps`` projected ascent steps of ``0.2 eps``) with the current parameters and no gradient
through the search; the penalty at ``s~`` held fixed is differentiable in the parameters.

* DDPG-SR-A (§3.2, first bullet; Algorithm 2): ``E_s max_{s~ in B(s, eps)} ||mu(s) - mu(s~)||_2^2``,
  differentiated through both ``mu(s)`` and ``mu(s~)`` (the objective is a function of theta on both
  sides in the paper's equation).
* DDPG-SR-C (§3.2, second bullet; Algorithm 3): ``E max_{s~ in B(s, eps)} (Q(s, a) - Q(s~, a))^2`` at
  the STORED action ``a = a_t`` of the transition (the paper's ``Q_phi(s_t^i, a_t^i)``; the issue's
  ``mu(s)`` is not what the paper writes). Algorithm 3's update holds ``Q_phi(s_t^i, a_t^i)`` at the
  current parameters and optimises ``Q_phi~(s~, a)``, so the clean term is under ``stop_gradient``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from rpo_jax.core import pgd


def actor_smoothness_penalty(
    actor_apply: Callable[[Any, jax.Array], jax.Array],
    actor_params: Any,
    obs: jax.Array,
    key: jax.Array,
    eps: jax.Array | float,
    *,
    steps: int = 10,
    norm: str = "linf",
) -> tuple[jax.Array, jax.Array]:
    """``(mean_B ||mu(s) - mu(s~)||^2, s~)`` for a deterministic actor ``mu = actor_apply(params, obs)``."""
    frozen = jax.lax.stop_gradient(actor_params)
    clean = jax.lax.stop_gradient(actor_apply(frozen, obs))
    delta = pgd.pgd_perturbation(
        lambda p: jnp.sum((clean - actor_apply(frozen, p)) ** 2, axis=-1), obs, key, eps, steps=steps, norm=norm
    )
    adv = obs + delta
    penalty = jnp.mean(jnp.sum((actor_apply(actor_params, obs) - actor_apply(actor_params, adv)) ** 2, axis=-1))
    return penalty, adv


def critic_smoothness_penalty(
    critic_apply: Callable[[Any, jax.Array, jax.Array], jax.Array],
    critic_params: Any,
    obs: jax.Array,
    actions: jax.Array,
    key: jax.Array,
    eps: jax.Array | float,
    *,
    steps: int = 10,
    norm: str = "linf",
) -> tuple[jax.Array, jax.Array]:
    """``(mean_B (Q(s, a) - Q(s~, a))^2, s~)`` at the stored actions; ``Q(s, a)`` is held fixed."""
    frozen = jax.lax.stop_gradient(critic_params)
    clean = jax.lax.stop_gradient(critic_apply(frozen, obs, actions))
    delta = pgd.pgd_perturbation(
        lambda p: (clean - critic_apply(frozen, p, actions)) ** 2, obs, key, eps, steps=steps, norm=norm
    )
    adv = obs + delta
    return jnp.mean((clean - critic_apply(critic_params, adv, actions)) ** 2), adv
