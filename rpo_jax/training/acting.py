"""A member of a trainer as a policy function: raw observation in, env action out.

:func:`make_act` is the map that evaluation during training, ``rpo_jax.load_policy``
(:mod:`rpo_jax.runs.policy`), cross-simulator evaluation and rendering all act with: the raw
observation is normalised with the member's frozen statistics (per-env statistics merged,
:func:`rpo_jax.core.normalization.evaluation_stats`) and clipped to ``train.obs_clip`` exactly as in
training, the algorithm's ``act`` (:mod:`rpo_jax.algorithms`) chooses the action, and it is clipped
to the env's bounds when ``train.clip_actions`` (as the env saw it in training). Parameters and
normaliser are arguments, so it vmaps over a population.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from rpo_jax.core import normalization

# act(params, normalizer, raw_obs [..., obs], key) -> env action [..., act]
MemberActFn = Callable[[Any, Any, jax.Array, jax.Array], jax.Array]


def make_act(trainer, deterministic: bool = True) -> MemberActFn:
    """The policy of any member of ``trainer``: ``act(params, normalizer, raw_obs, key) -> action``.

    Pure and jittable; ``raw_obs`` may have any leading shape. ``deterministic``: the algorithm's
    deterministic action (the actor's location); else its exploration draw.
    """
    cfg = trainer.config
    low, high = jnp.asarray(trainer.env.action_low), jnp.asarray(trainer.env.action_high)

    def act(params, normalizer, raw_obs, key):
        obs = raw_obs
        if cfg.normalize_observations:
            obs = normalization.normalize_for_evaluation(normalizer, raw_obs, cfg.obs_clip)
        action = trainer.algorithm.act(params, obs, key, deterministic)
        return jnp.clip(action, low, high) if cfg.clip_actions else action

    return act
