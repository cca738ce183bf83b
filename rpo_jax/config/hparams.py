"""Traced, sweepable hyperparameters (:class:`HParams`) and the rule each value must meet."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct

from rpo_jax.config.fields import ConfigError, is_finite


def _hparam(default: float, doc: str) -> Any:
    return flax.struct.field(default=default, metadata={"doc": doc})


@flax.struct.dataclass
class HParams:
    """Traced, sweepable hyperparameters (leaves are scalars, or [P] in a population).

    Defaults: RPO paper Table 2 with RPO's alpha = 0.5; ``alpha = 0`` is PPO.
    """

    alpha: Any = _hparam(0.5, "RPO: z ~ U(-alpha, alpha) added to the policy mean in the loss (Eq. 4); 0 = PPO")
    anneal_alpha: Any = _hparam(
        0.0,
        "1: alpha decays linearly to 0 at the last update (paper §6.2) of the run, or of train.anneal_lr_timesteps; "
        "0: constant",
    )
    ent_coef: Any = _hparam(0.0, "entropy bonus coefficient")
    learning_rate: Any = _hparam(3e-4, "Adam learning rate (annealed with train.anneal_lr)")
    clip_coef: Any = _hparam(0.2, "PPO ratio clip (and value clip with train.clip_vloss)")
    gamma: Any = _hparam(0.99, "discount")
    gae_lambda: Any = _hparam(0.95, "GAE lambda")
    vf_coef: Any = _hparam(0.5, "value-loss coefficient")
    max_grad_norm: Any = _hparam(0.5, "global gradient-norm clip")
    drac_coef: Any = _hparam(0.1, "DrAC regulariser weight (train.augmentation: drac)")
    lambda_s: Any = _hparam(1.0, "SR^2L regulariser weight (train.smoothness)")
    sr_eps: Any = _hparam(0.01, "SR^2L perturbation radius eps (train.smoothness)")
    max_kl: Any = _hparam(0.01, "TRPO trust region delta (train.algorithm: trpo)")
    tau: Any = _hparam(0.01, "DDPG: target networks track by theta' <- tau theta + (1 - tau) theta' per step")
    exploration_noise: Any = _hparam(0.1, "DDPG: Gaussian action noise std, in units of half the action range")
    critic_learning_rate: Any = _hparam(1e-3, "DDPG: the critic's Adam learning rate (learning_rate: the actor's)")


HPARAM_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HParams))

# name -> (predicate, description) used to validate every hyperparameter value.
HPARAM_RULES = {
    "alpha": (lambda v: v >= 0, ">= 0"),
    "ent_coef": (lambda v: v >= 0, ">= 0"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "clip_coef": (lambda v: v > 0, "> 0"),
    "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "gae_lambda": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "vf_coef": (lambda v: v >= 0, ">= 0"),
    "max_grad_norm": (lambda v: v > 0, "> 0"),
    "anneal_alpha": (lambda v: v in (0, 1), "0 or 1"),
    "drac_coef": (lambda v: v >= 0, ">= 0"),
    "lambda_s": (lambda v: v >= 0, ">= 0"),
    "tau": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "exploration_noise": (lambda v: v >= 0, ">= 0"),
    "critic_learning_rate": (lambda v: v > 0, "> 0"),
    "sr_eps": (lambda v: v >= 0, ">= 0"),
    "max_kl": (lambda v: v > 0, "> 0"),
}


def validate_hparam(name: str, value: Any, where: str = "hparams") -> float:
    """Checks one hyperparameter value; returns it as float or raises ConfigError."""
    if name not in HPARAM_RULES:
        raise ConfigError(f"unknown hyperparameter '{name}' in {where}; choose from {', '.join(HPARAM_NAMES)}")
    if not is_finite(value):
        raise ConfigError(f"{where}.{name} must be a finite number, got {value!r}")
    ok, text = HPARAM_RULES[name]
    if not ok(value):
        raise ConfigError(f"{where}.{name} must be {text}, got {value!r}")
    return float(value)
