"""Policy optimisers as plug-ins: one module per algorithm, registered here by name.

An algorithm turns one iteration's batch (``rpo_jax.ppo.Batch``: observations, stored actions and
log-probabilities, advantages, returns, old values, flattened over time and envs) into new
parameters. The on-policy loop around it -- rollout, GAE, learning-rate and alpha schedules,
divergence check, metrics -- is :class:`rpo_jax.train.Trainer`'s and the same for all of them.

The protocol (:class:`Algorithm`), bound to a trainer by ``ALGORITHMS[name](trainer)``:

* ``validate(config)`` (static) -- raises ``ConfigError`` for settings the algorithm cannot run;
* ``update(state, hparams, batch, key) -> (state, aux)`` -- pure and jit-able; ``aux`` holds at
  least ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` and ``clipfrac`` (NaN if the
  algorithm has none) as scalars, plus its own diagnostics;
* ``act(params, obs, key, deterministic) -> action`` -- pure; the action (before clipping to the
  env's bounds) for the agent's normalised ``obs`` of any leading shape: the policy's deterministic
  action, or its exploration draw. Used by evaluation, ``rpo_jax.load_policy`` and rendering;
* ``attack_target(params, agent_input, perturbed) -> rpo_jax.attacks.Target`` -- the member as the
  robustness attacks see it (policy output, value, policy divergence).

An algorithm may name its own loop as ``trainer_class = "module:Class"`` (DDPG: the off-policy loop
of :mod:`rpo_jax.off_policy`); the on-policy :class:`rpo_jax.train.Trainer` is the default.

Adding an algorithm is a module here and one line in :data:`ALGORITHMS`; ``train.algorithm`` then
accepts its name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rpo_jax.config import HParams, TrainConfig
    from rpo_jax.ppo import Batch
    from rpo_jax.train import Trainer, TrainState


class Algorithm(Protocol):
    def __init__(self, trainer: Trainer) -> None: ...

    @staticmethod
    def validate(config: TrainConfig) -> None: ...

    def update(self, state: TrainState, hparams: HParams, batch: Batch, key: Any) -> tuple[TrainState, dict]: ...

    def act(self, params: Any, obs: Any, key: Any, deterministic: bool) -> Any: ...

    def attack_target(self, params: Any, agent_input: Any, perturbed: Any) -> Any: ...


# name -> "module:Class", imported when first used, so config validation can list the names without jax.
ALGORITHMS: dict[str, str] = {
    "ppo": "rpo_jax.algorithms.ppo:PPO",  # PPO, and RPO when alpha > 0 (RPO paper); PPO-SR with train.smoothness
    "trpo": "rpo_jax.algorithms.trpo:TRPO",  # TRPO, and TRPO-SR with train.smoothness (SR^2L paper)
    "ddpg": "rpo_jax.algorithms.ddpg:DDPG",  # DDPG, DDPG-SR-A / -SR-C with train.smoothness (SR^2L paper)
}


def get(name: str) -> type:
    """The algorithm class registered as ``name`` (KeyError for an unknown name)."""
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)
