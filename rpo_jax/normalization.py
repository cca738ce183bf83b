"""Per-member running observation normalisation and return-based reward scaling.

The statistics live in the train state of each population member, so a vmapped
sweep keeps one normaliser per member (never shared across seeds). Running
means and variances use Brax's ``running_statistics`` (Welford updates).

* Observations (gym's ``NormalizeObservation`` + clipping, as in CleanRL): every
  new observation updates the running mean/std first and is then mapped to
  ``clip((o - mean) / std, -c, c)``.
* Rewards (gym's ``NormalizeReward``): a per-env discounted return
  ``G <- gamma * G * (1 - done) + r`` is tracked, its running std is updated,
  and the agent is trained on ``clip(r / std(G), -c, c)``. The raw rewards are
  still what the episode-return metrics report.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from brax.training.acme import running_statistics

# A floor on the running std, as gym's sqrt(var + 1e-8).
_STD_MIN = 1e-4


@flax.struct.dataclass
class NormalizerState:
    obs: running_statistics.RunningStatisticsState
    ret: running_statistics.RunningStatisticsState
    discounted_return: jax.Array  # [num_envs]


def init(obs_size: int, num_envs: int) -> NormalizerState:
    return NormalizerState(
        obs=running_statistics.init_state(jnp.zeros((obs_size,), jnp.float32)),
        ret=running_statistics.init_state(jnp.zeros((), jnp.float32)),
        discounted_return=jnp.zeros((num_envs,), jnp.float32),
    )


def update_observations(state: NormalizerState, obs: jax.Array) -> NormalizerState:
    """Adds a batch ``[num_envs, obs_size]`` of raw observations to the running statistics."""
    return state.replace(obs=running_statistics.update(state.obs, obs, std_min_value=_STD_MIN))


def normalize_observations(state: NormalizerState, obs: jax.Array, clip: float) -> jax.Array:
    """``clip((obs - mean) / std, -clip, clip)`` with the current statistics."""
    return running_statistics.normalize(obs, state.obs, max_abs_value=clip)


def scale_rewards(
    state: NormalizerState, rewards: jax.Array, dones: jax.Array, gamma: jax.Array | float, clip: float
) -> tuple[NormalizerState, jax.Array]:
    """Return-based reward scaling: ``r / std(G)``, clipped; ``G`` resets at episode ends.

    Args:
      state: normaliser state with ``discounted_return`` shaped ``[num_envs]``.
      rewards: raw rewards ``[num_envs]`` of this step.
      dones: episode ended at this step (terminated or truncated) ``[num_envs]``.
      gamma: discount of the tracked return.
      clip: bound on the scaled reward.
    """
    discounted = state.discounted_return * gamma + rewards
    ret = running_statistics.update(state.ret, discounted, std_min_value=_STD_MIN)
    scaled = jnp.clip(rewards / ret.std, -clip, clip)
    discounted = jnp.where(dones, 0.0, discounted)
    return state.replace(ret=ret, discounted_return=discounted), scaled
