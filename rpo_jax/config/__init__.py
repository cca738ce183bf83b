"""Typed configuration: what is fixed per compile and what is swept inside it.

Two kinds of settings, kept in two types so the split is obvious:

* :class:`TrainConfig` -- **static** choices. They set array shapes, network
  structure or control flow (environment, sizes, number of envs / steps /
  minibatches / epochs, normalisation switches), so changing one means a new
  compile. A frozen, hashable dataclass.
* :class:`HParams` -- **traced** scalars (alpha, entropy coefficient, learning
  rate, ...). A ``flax.struct`` pytree whose leaves may carry a leading
  population axis, so ``jax.vmap(train)`` holds PPO (``alpha = 0``) and RPO
  members, or a whole entropy grid, in one compiled program.

:class:`SweepConfig` says which population to build (seeds x grid) and
:class:`ExperimentConfig` bundles the three; it is what ``configs/*.yaml`` and
the CLI fill. Every check here runs on the host, before anything is compiled,
and raises :class:`ConfigError` with a one-line message naming the problem.

Modules: :mod:`~rpo_jax.config.fields` (the error type, field metadata, value checks),
:mod:`~rpo_jax.config.train`, :mod:`~rpo_jax.config.hparams`, :mod:`~rpo_jax.config.sweep`. The
layer above ``core`` and ``envs`` (whose names it checks against) and below everything else; the
checks that need a registered algorithm are :func:`rpo_jax.algorithms.validate_experiment`'s.
"""

from rpo_jax.config.fields import ConfigError, field_choices
from rpo_jax.config.hparams import HPARAM_NAMES, HPARAM_RULES, HParams, validate_hparam
from rpo_jax.config.sweep import PBT_FIXED, STATIC_SWEEP_FIELDS, ExperimentConfig, PBTConfig, SweepConfig
from rpo_jax.config.train import SMOOTHNESS_PGD, TrainConfig

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "HPARAM_NAMES",
    "HPARAM_RULES",
    "HParams",
    "PBTConfig",
    "PBT_FIXED",
    "SMOOTHNESS_PGD",
    "STATIC_SWEEP_FIELDS",
    "SweepConfig",
    "TrainConfig",
    "field_choices",
    "validate_hparam",
]
