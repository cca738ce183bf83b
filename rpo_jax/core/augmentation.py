"""Data-augmentation baselines of the RPO paper (App. E, L): RAD and DrAC with random amplitude scaling.

Random amplitude scaling (Laskin et al., 2020) multiplies every observation
dimension of every sample by an independent ``u ~ U[low, high]`` (default
``[0.6, 1.2]``). It acts on the agent's input, i.e. the *normalised*
observation when observation normalisation is on (as with CleanRL's gym
wrappers, where normalisation happens in the environment).

* **RAD**: the PPO loss is computed on augmented minibatch observations
  (policy and value); the stored rollout -- its observations, old log-probs and
  values -- is left unchanged, and rollouts act on clean observations.
* **DrAC** (Raileanu et al., 2021, Eq. 4-6): PPO on clean observations plus
  ``coef * (G_pi + G_V)`` with ``G_pi = KL(pi(.|s) || pi(.|f(s)))`` and
  ``G_V = (V(f(s)) - V(s))^2``, where the clean-observation terms are
  stop-gradiented targets.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from rpo_jax.core.distributions import action_distribution

AUGMENTATIONS: tuple[str, ...] = ("none", "rad", "drac")


# ``train.augmentation``: none, RAD (the loss sees augmented inputs) or DrAC (a loss term,
# rpo_jax.algorithms.loss_terms).
AUGMENTATIONS: tuple[str, ...] = ("none", "rad", "drac")


def random_amplitude_scaling(key: jax.Array, obs: jax.Array, low: float = 0.6, high: float = 1.2) -> jax.Array:
    """``obs * u`` with ``u ~ U[low, high]`` drawn independently per sample and dimension."""
    return obs * jax.random.uniform(key, obs.shape, minval=low, maxval=high)


def drac_penalty(
    params: Any,
    obs: jax.Array,
    augmented_obs: jax.Array,
    *,
    actor_apply: Callable,
    critic_apply: Callable,
    action_dist: str = "gaussian",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """DrAC's regulariser ``G_pi + G_V`` (Raileanu et al., 2021, Eq. 4-5), averaged over the batch.

    The clean policy and value are targets (stop-gradient); gradients flow
    through the augmented branch only. Zero when ``augmented_obs == obs``.
    """
    loc, log_scale = actor_apply(params["actor"], obs)
    clean = action_distribution(action_dist, jax.lax.stop_gradient(loc), jax.lax.stop_gradient(log_scale))
    aug_loc, aug_log_scale = actor_apply(params["actor"], augmented_obs)
    augmented = action_distribution(action_dist, aug_loc, aug_log_scale)
    policy_term = clean.kl_divergence(augmented).mean()
    value_term = jnp.mean(
        (critic_apply(params["critic"], augmented_obs) - jax.lax.stop_gradient(critic_apply(params["critic"], obs)))
        ** 2
    )
    return policy_term + value_term, {"drac_policy": policy_term, "drac_value": value_term}
