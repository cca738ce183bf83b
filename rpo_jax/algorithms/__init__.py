"""Policy optimisers as plug-ins: one module per algorithm, registered here by name.

An algorithm turns one iteration's batch (``rpo_jax.core.ppo.Batch``: observations, stored actions and
log-probabilities, advantages, returns, old values, flattened over time and envs) into new
parameters. The on-policy loop around it -- rollout, GAE, learning-rate and alpha schedules,
divergence check, metrics -- is :class:`rpo_jax.training.train.Trainer`'s and the same for all of them.

The protocol (:class:`Algorithm`), bound to a trainer by ``ALGORITHMS[name](trainer)``:

* ``validate(config)`` (static) -- raises ``ConfigError`` for settings the algorithm cannot run;
* ``update(state, hparams, batch, key) -> (state, aux)`` -- pure and jit-able; ``aux`` holds at
  least ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` and ``clipfrac`` (NaN if the
  algorithm has none) as scalars, plus its own diagnostics;
* ``act(params, obs, key, deterministic) -> action`` -- pure; the action (before clipping to the
  env's bounds) for the agent's normalised ``obs`` of any leading shape: the policy's deterministic
  action, or its exploration draw. Used by evaluation, ``rpo_jax.load_policy`` and rendering;
* ``attack_target(params, agent_input, perturbed) -> rpo_jax.core.attacks.Target`` -- the member as the
  robustness attacks see it (policy output, value, policy divergence).

An algorithm may name its own loop as ``trainer_class = "module:Class"`` (DDPG: the off-policy loop
of :mod:`rpo_jax.training.off_policy`); the on-policy :class:`rpo_jax.training.train.Trainer` is the default.

Adding an algorithm is a module here and one line in :data:`ALGORITHMS`; ``train.algorithm`` then
accepts its name.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol

from rpo_jax.config import ConfigError, ExperimentConfig, HParams, TrainConfig
from rpo_jax.core.ppo import Batch

# An algorithm is bound to the loop that runs it -- the on-policy ``rpo_jax.training.train.Trainer``
# (its ``config``, ``env``, networks and optimiser) or DDPG's ``OffPolicyTrainer`` -- and updates that
# loop's state (``TrainState``: params, optimiser state, normaliser, ...). The training layer sits
# above this one, so these two are named here, not imported.
Trainer = Any
TrainState = Any


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


def validate(config: TrainConfig) -> None:
    """Raises ``ConfigError`` (one line) unless ``config.algorithm`` is registered and can run ``config``."""
    if config.algorithm not in ALGORITHMS:
        raise ConfigError(f"train.algorithm must be one of {', '.join(ALGORITHMS)}, got {config.algorithm!r}")
    get(config.algorithm).validate(config)


def validate_experiment(config: ExperimentConfig) -> None:
    """:func:`validate` at every static point of the sweep; PBT only with the on-policy loop."""
    for point in config.sweep.static_points():
        train = dataclasses.replace(config.train, **point)
        validate(train)
        if config.sweep.pbt.enabled and getattr(get(train.algorithm), "trainer_class", None) is not None:
            raise ConfigError(f"sweep.pbt works with the on-policy algorithms, not train.algorithm={train.algorithm}")
