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
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Sequence

import flax.struct

from rpo_jax import algorithms, pgd
from rpo_jax.algorithms import ALGORITHMS
from rpo_jax.augmentation import AUGMENTATIONS
from rpo_jax.distributions import ACTION_DISTRIBUTIONS
from rpo_jax.errors import InputError


class ConfigError(InputError):
    """Invalid configuration. ``str(err)`` is a single line naming the problem."""


# Checks a field's metadata may name: (description in the error message, predicate).
POSITIVE = ("a positive {kind}", lambda v: v > 0)
NON_NEGATIVE = ("a non-negative {kind}", lambda v: v >= 0)
OPEN_UNIT = ("in (0, 1)", lambda v: 0 < v < 1)


def _field(default: Any, doc: str, *, check: tuple | None = None, choices: Any = None) -> Any:
    """A TrainConfig field whose metadata carries its documentation, its check and its allowed values.

    ``choices`` is a tuple, or a callable returning one (read when validating, from the module that
    defines the values). :meth:`TrainConfig.validate` and :func:`describe_fields` read the metadata.
    """
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check, "choices": choices})


def _sweep_field(default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of one training run (one compile).

    Defaults are the RPO paper's Table 2 / CleanRL's ``ppo_continuous_action.py``. Each field's
    documentation, check and allowed values live in its metadata (:func:`describe_fields`).
    """

    env: str = _field("gymnax/Pendulum-v1", "environment: brax/NAME, dmc/TASK or gymnax/ENV")
    backend: str | None = _field(None, "Brax physics backend; null = the env's default", choices=lambda: _backends())
    episode_length: int | None = _field(None, "episode time limit; null = the environment's own", check=POSITIVE)
    num_envs: int = _field(1, "parallel envs per member", check=POSITIVE)
    num_steps: int = _field(2048, "rollout length per env per iteration", check=POSITIVE)
    num_minibatches: int = _field(32, "minibatches per epoch (must divide num_envs * num_steps)", check=POSITIVE)
    update_epochs: int = _field(10, "passes over each iteration's batch", check=POSITIVE)
    total_timesteps: int = _field(1_000_000, "env steps per member (iterations = this // batch)", check=POSITIVE)
    actor_hidden: tuple[int, ...] = _field((64, 64), "actor MLP hidden sizes (tanh)")
    critic_hidden: tuple[int, ...] = _field((64, 64), "critic MLP hidden sizes (tanh)")
    normalize_observations: bool = _field(True, "gym's NormalizeObservation (running mean / std, then clip)")
    normalize_rewards: bool = _field(True, "gym's NormalizeReward (scale by the std of the discounted return)")
    obs_clip: float = _field(10.0, "bound of normalised observations", check=POSITIVE)
    reward_clip: float = _field(10.0, "bound of scaled rewards", check=POSITIVE)
    normalize_per_env: bool = _field(
        False,
        "one set of normalisation statistics per env (CleanRL's vector env) instead of one per member "
        "pooled over its envs (Brax); the same at num_envs = 1",
    )
    bootstrap_on_truncation: bool = _field(
        True, "bootstrap V(s_T) when the time limit cuts an episode; false: a cut is a termination (CleanRL)"
    )
    reset_pool: bool = _field(
        True,
        "episodes restart from a cache of fresh starts computed in batches (rpo_jax.starts; every episode its "
        "own reset, never reused); false: a reset computed every step (same distribution, slower)",
    )
    clip_actions: bool = _field(True, "clip actions to the env's bounds before stepping (stored unclipped)")
    norm_adv: bool = _field(True, "normalise advantages per minibatch (torch's unbiased std)")
    clip_vloss: bool = _field(True, "PPO's value loss clipped around the old values by clip_coef (not TRPO)")
    anneal_lr: bool = _field(True, "learning rate annealed linearly to 0 over the iterations (CleanRL)")
    anneal_lr_timesteps: int | None = _field(
        None,
        "env steps per member over which anneal_lr takes the learning rate, and anneal_alpha takes alpha, to 0 "
        "(one horizon for both); null = total_timesteps. A shortened run of a longer experiment sets the full "
        "length, so it follows the full run's schedules",
        check=POSITIVE,
    )
    adam_eps: float = _field(1e-5, "Adam's epsilon", check=POSITIVE)
    perturb_mean: bool = _field(
        True, "RPO's perturbation code path; alpha = 0 is PPO bit for bit with it on; off saves drawing z"
    )
    action_dist: str = _field(
        "gaussian", "policy family (rpo_jax.distributions)", choices=lambda: tuple(ACTION_DISTRIBUTIONS)
    )
    augmentation: str = _field("none", "RAD or DrAC (rpo_jax.augmentation)", choices=lambda: AUGMENTATIONS)
    rad_scale_low: float = _field(0.6, "random amplitude scaling: U[low, high] per sample and dim", check=POSITIVE)
    rad_scale_high: float = _field(1.2, "upper end of that range", check=POSITIVE)
    algorithm: str = _field(
        "ppo", "policy optimiser (rpo_jax.algorithms): ppo (RPO when alpha > 0) or trpo", choices=lambda: ALGORITHMS
    )
    trpo_cg_iters: int = _field(10, "TRPO: conjugate-gradient iterations", check=POSITIVE)
    trpo_damping: float = _field(0.1, "TRPO: Fisher damping", check=NON_NEGATIVE)
    trpo_backtrack_iters: int = _field(10, "TRPO: line-search steps", check=POSITIVE)
    trpo_backtrack_coef: float = _field(0.8, "TRPO: line-search shrink factor", check=OPEN_UNIT)
    trpo_clip_vloss: bool = _field(
        False,
        "TRPO's critic fit clipped around the old values by clip_coef like PPO's; garage (SR^2L's code) fits it "
        "unclipped, which tracks returns of unnormalised rewards",
    )
    smoothness: bool = _field(
        False,
        "SR^2L regulariser lambda_s * E_s max_{s' in eps-ball} D_J(pi(s), pi(s')) (PPO-SR / TRPO-SR); eps in the "
        "agent's (normalised) input space",
    )
    smoothness_steps: int = _field(10, "SR^2L: PGD steps (of 0.2 eps)", check=POSITIVE)
    smoothness_norm: str = _field("linf", "SR^2L: the ball's norm", choices=lambda: pgd.NORMS)
    smoothness_stop_grad_sigma: bool = _field(True, "SR^2L: sigma cannot shrink the penalty by growing")
    smoothness_pgd: str = _field(
        "minibatch",
        "PPO-SR: PGD against the current parameters per minibatch (the definition), or once per iteration "
        "(about 3x cheaper)",
        choices=lambda: SMOOTHNESS_PGD,
    )
    smoothness_target: str = _field(
        "actor",
        "SR^2L: what is smoothed: the policy (PPO-SR, TRPO-SR, DDPG-SR-A) or DDPG's critic Q (DDPG-SR-C)",
        choices=("actor", "critic"),
    )
    buffer_size: int = _field(1_000_000, "DDPG: replay buffer capacity (FIFO)", check=POSITIVE)
    learning_starts: int = _field(
        10_000,
        "DDPG: env steps per member of uniform random actions before any update (garage's min_buffer_size)",
        check=NON_NEGATIVE,
    )
    replay_batch_size: int = _field(64, "DDPG: transitions per gradient step, uniform from the buffer", check=POSITIVE)
    updates_per_iteration: int = _field(
        50, "DDPG: gradient steps (critic, actor, targets) after each rollout of num_envs x num_steps", check=POSITIVE
    )
    eval_every: int = _field(
        0,
        "evaluate the deterministic policy on fresh episodes after every N-th chunk and the last "
        "(eval_return, eval_length columns); 0 = off",
        check=NON_NEGATIVE,
    )
    eval_episodes: int = _field(10, "episodes per evaluation (run in parallel)", check=POSITIVE)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def anneal_iterations(self) -> int:
        """Iterations over which ``anneal_lr`` takes the learning rate, and ``anneal_alpha`` alpha, to 0."""
        return (self.anneal_lr_timesteps or self.total_timesteps) // self.batch_size

    def validate(self) -> None:
        """Raises ConfigError on the first invalid value: each field by its metadata, then across fields."""
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"train.total_timesteps={self.total_timesteps} is less than one iteration "
                f"(num_envs*num_steps={self.batch_size})"
            )
        if self.anneal_lr_timesteps is not None and self.anneal_lr_timesteps < self.total_timesteps:
            raise ConfigError(
                f"train.anneal_lr_timesteps={self.anneal_lr_timesteps} is less than train.total_timesteps="
                f"{self.total_timesteps}: the learning rate would turn negative"
            )
        algorithms.get(self.algorithm).validate(self)
        if not self.rad_scale_low <= self.rad_scale_high:
            raise ConfigError(
                f"train.rad_scale_low={self.rad_scale_low} must not exceed train.rad_scale_high={self.rad_scale_high}"
            )
        if self.backend is not None and not self.env.startswith("brax/"):
            raise ConfigError(f"train.backend={self.backend} applies to brax/ environments only, got env {self.env!r}")


def _backends() -> tuple[str, ...]:
    from rpo_jax.envs import brax  # cheap: no environment is built

    return brax.BACKENDS


def field_choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """A TrainConfig field's allowed values from its metadata (read from their module when callable), or None."""
    choices = f.metadata["choices"]
    return choices() if callable(choices) else choices


def _check_field(f: dataclasses.Field, value: Any) -> None:
    """One TrainConfig value against its annotation and metadata (check, choices)."""
    name, kind, meta = f"train.{f.name}", f.type, f.metadata
    optional = kind.endswith("| None")
    if optional and value is None:
        return
    or_null = " or null" if optional else ""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif kind.startswith("int"):
        check = meta["check"] or NON_NEGATIVE
        if not _is_int(value) or not check[1](value):
            raise ConfigError(f"{name} must be {check[0].format(kind='integer')}{or_null}, got {value!r}")
    elif kind == "float":
        if not _is_finite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        check = meta["check"]
        if check is not None and not check[1](value):
            raise ConfigError(f"{name} must be {check[0].format(kind='number')}, got {value!r}")
    elif kind == "tuple[int, ...]":
        if not value or any(not _is_int(v) or v <= 0 for v in value):
            raise ConfigError(f"{name} must be a non-empty list of positive integers, got {list(value)!r}")
    elif kind.startswith("str"):
        choices = field_choices(f)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            listed = f"null or one of {', '.join(choices)}" if optional else f"one of {', '.join(choices)}"
            allowed = listed if choices is not None else f"a string{or_null}"
            raise ConfigError(f"{name} must be {allowed}, got {value!r}")


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
_HPARAM_RULES = {
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
    if name not in _HPARAM_RULES:
        raise ConfigError(f"unknown hyperparameter '{name}' in {where}; choose from {', '.join(HPARAM_NAMES)}")
    if not _is_finite(value):
        raise ConfigError(f"{where}.{name} must be a finite number, got {value!r}")
    ok, text = _HPARAM_RULES[name]
    if not ok(value):
        raise ConfigError(f"{where}.{name} must be {text}, got {value!r}")
    return float(value)


# Static TrainConfig fields a sweep may vary: each value is its own compile, run
# one after another in the same process and reported as one population.
STATIC_SWEEP_FIELDS: tuple[str, ...] = ("action_dist", "augmentation", "algorithm", "smoothness", "smoothness_target")


# Hyperparameters PBT may not explore: switches, not magnitudes.
PBT_FIXED: tuple[str, ...] = ("anneal_alpha",)


@dataclasses.dataclass(frozen=True)
class PBTConfig:
    """Population-based training (Jaderberg et al., 2017) inside the compiled program (:mod:`rpo_jax.pbt`).

    Every ``interval`` iterations the members of each static point x seed (one PBT population
    each; :meth:`rpo_jax.population.Population.pbt_groups`) are ranked by their mean training
    return since the last step; each member of the bottom ``fraction`` copies the parameters,
    optimiser and observation / reward statistics and the hyperparameters of a random member of
    the top ``fraction`` (exploit), then perturbs the ``explore`` hyperparameters (explore). Off
    while ``interval`` is 0.
    """

    interval: int = _sweep_field(0, "iterations between exploit / explore steps; 0 = PBT off")
    explore: tuple[tuple[str, tuple[float, float]], ...] = _sweep_field(
        (), "hparams PBT perturbs, with bounds, e.g. {alpha: [0.001, 3]}"
    )
    fraction: float = _sweep_field(0.25, "bottom fraction of each seed's members that copies the top fraction")
    factors: tuple[float, ...] = _sweep_field((0.8, 1.25), "explore: a copied value is multiplied by one of these")
    resample_probability: float = _sweep_field(
        0.25, "explore: chance of drawing a value from sweep.grid (log-uniform in the bounds if not in the grid)"
    )

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def validate(self) -> None:
        where = "sweep.pbt"
        if not _is_int(self.interval) or self.interval < 0:
            raise ConfigError(f"{where}.interval must be an integer >= 0, got {self.interval!r}")
        if not self.enabled:
            return
        if not self.explore:
            raise ConfigError(
                f"{where}.explore must name at least one hyperparameter with bounds, e.g. {{alpha: [0.001, 3]}}"
            )
        for name, bounds in self.explore:
            if name in PBT_FIXED:
                raise ConfigError(f"{where}.explore.{name} cannot be explored (it is a 0/1 switch)")
            if len(bounds) != 2:
                raise ConfigError(f"{where}.explore.{name} must be [low, high], got {list(bounds)!r}")
            low, high = (validate_hparam(name, v, where=f"{where}.explore") for v in bounds)
            if not low < high:
                raise ConfigError(f"{where}.explore.{name} must be [low, high] with low < high, got {list(bounds)!r}")
        if not _is_finite(self.fraction) or not 0 < self.fraction <= 0.5:
            raise ConfigError(f"{where}.fraction must be in (0, 0.5], got {self.fraction!r}")
        if not self.factors or any(not _is_finite(f) or f <= 0 for f in self.factors):
            raise ConfigError(
                f"{where}.factors must be a non-empty list of positive numbers, got {list(self.factors)!r}"
            )
        if not _is_finite(self.resample_probability) or not 0 <= self.resample_probability <= 1:
            raise ConfigError(f"{where}.resample_probability must be in [0, 1], got {self.resample_probability!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "explore": {n: [float(v) for v in b] for n, b in self.explore},
            "fraction": float(self.fraction),
            "factors": [float(f) for f in self.factors],
            "resample_probability": float(self.resample_probability),
        }


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Which population to train.

    Members are, outermost first: ``static`` points (static TrainConfig values,
    one compile each) x ``variants`` (explicit hyperparameter points, e.g. PPO
    with an entropy bonus next to RPO) x the Cartesian product of ``grid`` x
    ``seeds``. Every hyperparameter named in ``variants`` or ``grid`` becomes a
    column of the member table, filled from ``hparams`` where a point omits it.
    """

    seeds: tuple[int, ...] = _sweep_field((0,), "seeds: a count N (0..N-1) or a list")
    grid: tuple[tuple[str, tuple[float, ...]], ...] = _sweep_field(
        (), "hparams swept as a Cartesian product, e.g. {alpha: [0, 0.5]} (traced: one compile)"
    )
    variants: tuple[tuple[tuple[str, float], ...], ...] = _sweep_field(
        (), "explicit hparams points, e.g. [{alpha: 0}, {alpha: 0, ent_coef: 0.01}]"
    )
    static: tuple[tuple[str, tuple[Any, ...]], ...] = _sweep_field(
        (), "train fields swept, e.g. {action_dist: [gaussian, laplace]} (one compile per point)"
    )
    chunk_iterations: int = _sweep_field(0, "iterations per compiled call / progress report; 0 = about 20 reports")
    pbt: PBTConfig = _sweep_field(
        PBTConfig(), "population-based training: {interval, explore, fraction, factors, resample_probability}"
    )

    def validate(self) -> None:
        if not self.seeds:
            raise ConfigError("sweep.seeds must name at least one seed")
        if any(not _is_int(s) or s < 0 for s in self.seeds):
            raise ConfigError(f"sweep.seeds must be non-negative integers, got {list(self.seeds)!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"sweep.seeds has duplicates: {list(self.seeds)!r}")
        names = [n for n, _ in self.grid]
        if len(set(names)) != len(names):
            raise ConfigError(f"sweep.grid names a hyperparameter twice: {names!r}")
        for name, values in self.grid:
            if not values:
                raise ConfigError(f"sweep.grid.{name} is empty")
            for v in values:
                validate_hparam(name, v, where="sweep.grid")
            repeated = _first_repeat(values)
            if repeated is not None:
                raise ConfigError(f"sweep.grid.{name} lists {values[repeated]:g} twice")
        for i, point in enumerate(self.variants):
            for name, value in point:
                validate_hparam(name, value, where=f"sweep.variants[{i}]")
                if name in names:
                    raise ConfigError(f"sweep.variants[{i}] sets '{name}', which sweep.grid also sweeps")
        repeated = _first_repeat([frozenset(point) for point in self.variants])
        if repeated is not None:
            raise ConfigError(f"sweep.variants[{repeated}] repeats an earlier variant: {dict(self.variants[repeated])}")
        for name, values in self.static:
            if name not in STATIC_SWEEP_FIELDS:
                raise ConfigError(
                    f"sweep.static.{name} is not sweepable; static sweeps take {', '.join(STATIC_SWEEP_FIELDS)}"
                )
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"sweep.static.{name} must list distinct values, got {list(values)!r}")
        if not _is_int(self.chunk_iterations) or self.chunk_iterations < 0:
            raise ConfigError(f"sweep.chunk_iterations must be an integer >= 0, got {self.chunk_iterations!r}")
        self.pbt.validate()

    @property
    def swept_hparams(self) -> list[str]:
        """Names of the hyperparameters that vary across members (variants first, then grid)."""
        names: list[str] = []
        for point in self.variants:
            names += [n for n, _ in point if n not in names]
        return names + [n for n, _ in self.grid if n not in names]

    def static_points(self) -> list[dict[str, Any]]:
        """One dict of static TrainConfig values per compile (``[{}]`` if none are swept)."""
        names = [n for n, _ in self.static]
        return [dict(zip(names, values)) for values in itertools.product(*[v for _, v in self.static])]

    def members(self, base: HParams) -> list[dict[str, Any]]:
        """One row per population member: ``member``, ``seed``, static values and swept hyperparameters.

        Order: static points, then variants, then grid points, then seeds, so
        the seeds of one configuration are contiguous.
        """
        names = self.swept_hparams
        grid_names = [n for n, _ in self.grid]
        rows = []
        for static in self.static_points():
            for variant in self.variants or ((),):
                for point in itertools.product(*[values for _, values in self.grid]):
                    values = {n: float(getattr(base, n)) for n in names}
                    values.update(dict(variant))
                    values.update(dict(zip(grid_names, point)))
                    for seed in self.seeds:
                        rows.append({"member": len(rows), "seed": seed, **static, **values})
        return rows


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    train: TrainConfig = TrainConfig()
    hparams: HParams = HParams()
    sweep: SweepConfig = SweepConfig()

    def validate(self) -> None:
        self.train.validate()
        for name in HPARAM_NAMES:
            validate_hparam(name, getattr(self.hparams, name))
        self.sweep.validate()
        self._validate_distinct_variants()
        self._validate_pbt()
        for point in self.sweep.static_points():
            variant = dataclasses.replace(self.train, **point)
            variant.validate()
            if variant.num_iterations != self.train.num_iterations:
                raise ConfigError(f"sweep.static point {point} changes the number of iterations")

    def _validate_pbt(self) -> None:
        """PBT needs an on-policy algorithm, two members per seed, a step before the end, start values in bounds."""
        pbt = self.sweep.pbt
        if not pbt.enabled:
            return
        algorithm = algorithms.get(self.train.algorithm)
        if getattr(algorithm, "trainer_class", None) is not None:
            raise ConfigError(
                f"sweep.pbt works with the on-policy algorithms, not train.algorithm={self.train.algorithm}"
            )
        if pbt.interval >= self.train.num_iterations:
            raise ConfigError(
                f"sweep.pbt.interval={pbt.interval} leaves no PBT step in a run of "
                f"{self.train.num_iterations} iterations"
            )
        members = self.sweep.members(self.hparams)
        if len(members) // (len(self.sweep.seeds) * len(self.sweep.static_points())) < 2:
            raise ConfigError("sweep.pbt needs at least 2 members per seed (a sweep.grid or sweep.variants)")
        for member in members:
            for name, (low, high) in pbt.explore:
                value = member.get(name, float(getattr(self.hparams, name)))
                if not low <= value <= high:
                    raise ConfigError(
                        f"sweep.pbt.explore.{name}: member {member['member']} starts at {value:g}, "
                        f"outside [{low:g}, {high:g}]"
                    )

    def _validate_distinct_variants(self) -> None:
        """Rejects two variants that train the same members once ``hparams`` fills what they omit."""
        names = self.sweep.swept_hparams
        points = [
            tuple(dict(point).get(n, float(getattr(self.hparams, n))) for n in names) for point in self.sweep.variants
        ]
        repeated = _first_repeat(points)
        if repeated is not None:
            raise ConfigError(
                f"sweep.variants[{repeated}] trains the same hyperparameters as an earlier variant: "
                f"{dict(zip(names, points[repeated]))}"
            )

    def to_dict(self) -> dict[str, Any]:
        train = dataclasses.asdict(self.train)
        train["actor_hidden"] = list(self.train.actor_hidden)
        train["critic_hidden"] = list(self.train.critic_hidden)
        return {
            "train": train,
            "hparams": {n: float(getattr(self.hparams, n)) for n in HPARAM_NAMES},
            "sweep": {
                "seeds": list(self.sweep.seeds),
                "grid": {n: [float(v) for v in vs] for n, vs in self.sweep.grid},
                "variants": [{n: float(v) for n, v in point} for point in self.sweep.variants],
                "static": {n: list(vs) for n, vs in self.sweep.static},
                "chunk_iterations": self.sweep.chunk_iterations,
                **({"pbt": self.sweep.pbt.to_dict()} if self.sweep.pbt.enabled else {}),
            },
        }


SMOOTHNESS_PGD: tuple[str, ...] = ("minibatch", "iteration")  # where PPO-SR runs its PGD (rpo_jax.algorithms.ppo)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """True for an int or float (not a bool) that is neither infinite, NaN nor too large for a float."""
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _as_int(value: Any) -> Any:
    """A float holding an integer (``1e6`` in YAML) as int; anything else unchanged, for validate to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _first_repeat(values: Sequence[Any]) -> int | None:
    """Index of the first element equal to an earlier one (``0 == 0.0``), or None."""
    for i, value in enumerate(values):
        if value in values[:i]:
            return i
    return None
