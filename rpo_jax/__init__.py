"""rpo_jax: populations of PPO / RPO agents trained in one jit-compiled JAX function.

The public names, imported on first use (so ``import rpo_jax`` stays cheap)::

    import jax, rpo_jax
    trainer = rpo_jax.make_trainer(rpo_jax.TrainConfig(env="gymnax/Pendulum-v1"))
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), rpo_jax.HParams(alpha=0.5))
    policy = rpo_jax.load_policy("runs/quickstart", member=0)   # a trained member, as a function

The package is layered (docs/ARCHITECTURE.md): ``core`` (pure maths) < ``envs`` < ``config`` <
``algorithms`` < ``training`` < ``runs`` < ``analysis`` < ``cli``; no module imports this one.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("rpo_jax")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

# public name -> the module that defines it
PUBLIC = {
    "make_trainer": "rpo_jax.training.train",
    "Trainer": "rpo_jax.training.train",
    "TrainState": "rpo_jax.training.train",
    "load_policy": "rpo_jax.runs.policy",
    "Policy": "rpo_jax.runs.policy",
    "make_env": "rpo_jax.envs",
    "TrainConfig": "rpo_jax.config",
    "HParams": "rpo_jax.config",
    "SweepConfig": "rpo_jax.config",
    "ExperimentConfig": "rpo_jax.config",
    "ConfigError": "rpo_jax.config",
    "InputError": "rpo_jax.errors",
}

__all__ = ["__version__", *PUBLIC]


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'rpo_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
