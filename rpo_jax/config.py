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
import re
from typing import Any, Mapping, Sequence

import flax.struct
import yaml

from rpo_jax import algorithms, pgd
from rpo_jax.algorithms import ALGORITHMS
from rpo_jax.augmentation import AUGMENTATIONS
from rpo_jax.distributions import ACTION_DISTRIBUTIONS
from rpo_jax.errors import InputError


class ConfigError(InputError):
    """Invalid configuration. ``str(err)`` is a single line naming the problem."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of one training run (one compile).

    Defaults are the RPO paper's Table 2 / CleanRL's ``ppo_continuous_action.py``.
    """

    env: str = "gymnax/Pendulum-v1"
    backend: str | None = None  # Brax physics backend; None = the env's default.
    episode_length: int | None = None  # None = the environment's own time limit.
    num_envs: int = 1
    num_steps: int = 2048  # rollout length per env per iteration
    num_minibatches: int = 32
    update_epochs: int = 10
    total_timesteps: int = 1_000_000
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    normalize_observations: bool = True
    normalize_rewards: bool = True  # return-based reward scaling (gym's NormalizeReward)
    obs_clip: float = 10.0
    reward_clip: float = 10.0
    # False: one set of normalisation statistics pooled over a member's envs (as Brax). True: one per
    # env, as CleanRL's vector env of separately wrapped envs. Identical at num_envs = 1.
    normalize_per_env: bool = False
    # True: V(s_T) is bootstrapped when an episode is cut by the time limit.
    # False: truncation is treated as termination, as CleanRL does.
    bootstrap_on_truncation: bool = True
    # Auto-reset from a cache of fresh starts computed in batches (rpo_jax.starts): every episode
    # still begins at its own independent reset, handed out in order of episode ends and never
    # twice, at the cost of about one batched refill per rollout instead of a reset every step.
    # False: compute a reset on every step (the same distribution, slower).
    reset_pool: bool = True
    clip_actions: bool = True
    norm_adv: bool = True
    clip_vloss: bool = True  # PPO's value loss clipped around the old values (±clip_coef); not used by TRPO
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    # Static switch for the RPO perturbation code path. With it on, alpha = 0 is
    # PPO bit for bit; switching it off removes the (tiny) cost of drawing z.
    perturb_mean: bool = True
    action_dist: str = "gaussian"  # gaussian | laplace | gumbel (rpo_jax.distributions)
    augmentation: str = "none"  # none | rad | drac (rpo_jax.augmentation)
    rad_scale_low: float = 0.6  # random amplitude scaling range U[low, high]
    rad_scale_high: float = 1.2
    # Policy optimiser, a name in rpo_jax.algorithms.ALGORITHMS: "ppo" (clipped surrogate, minibatch SGD;
    # RPO when alpha > 0) or "trpo" (natural gradient + line search on the full batch; critic fitted by Adam).
    algorithm: str = "ppo"
    trpo_cg_iters: int = 10
    trpo_damping: float = 0.1
    trpo_backtrack_iters: int = 10
    trpo_backtrack_coef: float = 0.8
    # TRPO fits its critic (baseline) by plain regression on the returns, as garage (SR^2L's code) does;
    # true clips that fit around the old values by ±clip_coef like PPO's value loss, which cannot track
    # returns of unnormalised rewards (a target of ~100 moves 0.2 per iteration).
    trpo_clip_vloss: bool = False
    # SR^2L smoothness regulariser lambda_s * E_s max_{s' in eps-ball} D_J(pi(s), pi(s'))
    # (PPO-SR / TRPO-SR). eps is measured in the agent's input space: normalised
    # observations when normalize_observations is on (the normaliser is a constant there).
    smoothness: bool = False
    smoothness_steps: int = 10  # PGD steps K (step size 0.2 eps)
    smoothness_norm: str = "linf"  # linf | l2 ball
    smoothness_stop_grad_sigma: bool = True  # sigma cannot shrink the penalty by growing
    # PPO-SR: where PGD runs. "minibatch": against the current parameters on every
    # minibatch (the definition). "iteration": once per iteration on the whole batch
    # against the parameters at the start of the update, s' then held fixed for all
    # epochs (about 3x cheaper; the penalty still differentiates both branches).
    smoothness_pgd: str = "minibatch"

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> None:
        """Raises ConfigError on the first invalid value."""
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "total_timesteps"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if self.episode_length is not None and (not _is_int(self.episode_length) or self.episode_length <= 0):
            raise ConfigError(f"train.episode_length must be a positive integer or null, got {self.episode_length!r}")
        for name in ("actor_hidden", "critic_hidden"):
            sizes = getattr(self, name)
            if not sizes or any(not _is_int(s) or s <= 0 for s in sizes):
                raise ConfigError(f"train.{name} must be a non-empty list of positive integers, got {list(sizes)!r}")
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"train.num_minibatches={self.num_minibatches} does not divide the batch "
                f"num_envs*num_steps={self.batch_size}"
            )
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"train.total_timesteps={self.total_timesteps} is less than one iteration "
                f"(num_envs*num_steps={self.batch_size})"
            )
        for name in _TRAIN_FLOAT_FIELDS:
            value = getattr(self, name)
            if not _is_finite(value):
                raise ConfigError(f"train.{name} must be a finite number, got {value!r}")
        for name in ("obs_clip", "reward_clip", "adam_eps"):
            value = getattr(self, name)
            if not _is_number(value) or not value > 0:
                raise ConfigError(f"train.{name} must be a positive number, got {value!r}")
        for name in (
            "normalize_observations",
            "normalize_rewards",
            "normalize_per_env",
            "bootstrap_on_truncation",
            "reset_pool",
            "clip_actions",
            "norm_adv",
            "clip_vloss",
            "trpo_clip_vloss",
            "anneal_lr",
            "perturb_mean",
            "smoothness",
            "smoothness_stop_grad_sigma",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"train.{name} must be true or false, got {getattr(self, name)!r}")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"train.algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        for name, choices in (
            ("smoothness_pgd", SMOOTHNESS_PGD),
            ("smoothness_norm", pgd.NORMS),
            ("action_dist", tuple(ACTION_DISTRIBUTIONS)),
            ("augmentation", AUGMENTATIONS),
        ):
            if getattr(self, name) not in choices:
                raise ConfigError(f"train.{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        for name in ("smoothness_steps", "trpo_cg_iters", "trpo_backtrack_iters"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if not _is_number(self.trpo_damping) or self.trpo_damping < 0:
            raise ConfigError(f"train.trpo_damping must be a number >= 0, got {self.trpo_damping!r}")
        if not _is_number(self.trpo_backtrack_coef) or not 0 < self.trpo_backtrack_coef < 1:
            raise ConfigError(f"train.trpo_backtrack_coef must be in (0, 1), got {self.trpo_backtrack_coef!r}")
        if self.smoothness and self.action_dist != "gaussian":
            raise ConfigError("train.smoothness needs train.action_dist=gaussian (D_J in closed form)")
        algorithms.get(self.algorithm).validate(self)
        for name in ("rad_scale_low", "rad_scale_high"):
            if not _is_number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ConfigError(f"train.{name} must be a positive number, got {getattr(self, name)!r}")
        if not self.rad_scale_low <= self.rad_scale_high:
            raise ConfigError(
                f"train.rad_scale_low={self.rad_scale_low} must not exceed train.rad_scale_high={self.rad_scale_high}"
            )
        if not isinstance(self.env, str):
            raise ConfigError(f"train.env must be a string, got {self.env!r}")
        self._validate_backend()

    def _validate_backend(self) -> None:
        """``backend`` is null, or a Brax physics backend used with a ``brax/`` environment."""
        if self.backend is None:
            return
        # Cheap: jax is already loaded by flax, and no environment is built.
        from rpo_jax.envs import _BRAX_BACKENDS

        if not isinstance(self.backend, str) or self.backend not in _BRAX_BACKENDS:
            raise ConfigError(f"train.backend must be null or one of {', '.join(_BRAX_BACKENDS)}, got {self.backend!r}")
        if not self.env.startswith("brax/"):
            raise ConfigError(f"train.backend={self.backend} applies to brax/ environments only, got env {self.env!r}")


@flax.struct.dataclass
class HParams:
    """Traced, sweepable hyperparameters (leaves are scalars, or [P] in a population).

    Defaults: RPO paper Table 2 with RPO's alpha = 0.5; ``alpha = 0`` is PPO.
    """

    alpha: Any = 0.5  # RPO: z ~ U(-alpha, alpha) added to the mean in the loss (Eq. 4)
    anneal_alpha: Any = 0.0  # 1: alpha decays linearly to 0 at the last update (paper §6.2); 0: constant
    ent_coef: Any = 0.0
    learning_rate: Any = 3e-4
    clip_coef: Any = 0.2
    gamma: Any = 0.99
    gae_lambda: Any = 0.95
    vf_coef: Any = 0.5
    max_grad_norm: Any = 0.5
    drac_coef: Any = 0.1  # DrAC regulariser weight (used with train.augmentation = drac)
    lambda_s: Any = 1.0  # SR^2L regulariser weight (used with train.smoothness)
    sr_eps: Any = 0.01  # SR^2L perturbation radius eps (used with train.smoothness)
    max_kl: Any = 0.01  # TRPO trust region delta (used with train.algorithm = trpo)


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
STATIC_SWEEP_FIELDS: tuple[str, ...] = ("action_dist", "augmentation", "algorithm", "smoothness")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Which population to train.

    Members are, outermost first: ``static`` points (static TrainConfig values,
    one compile each) x ``variants`` (explicit hyperparameter points, e.g. PPO
    with an entropy bonus next to RPO) x the Cartesian product of ``grid`` x
    ``seeds``. Every hyperparameter named in ``variants`` or ``grid`` becomes a
    column of the member table, filled from ``hparams`` where a point omits it.
    """

    seeds: tuple[int, ...] = (0,)
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()
    variants: tuple[tuple[tuple[str, float], ...], ...] = ()
    static: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    chunk_iterations: int = 0  # iterations per progress report; 0 = about 20 reports

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
        for point in self.sweep.static_points():
            variant = dataclasses.replace(self.train, **point)
            variant.validate()
            if variant.num_iterations != self.train.num_iterations:
                raise ConfigError(f"sweep.static point {point} changes the number of iterations")

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
            },
        }


# --------------------------------------------------------------------------- #
# Building configs from YAML / dicts / command-line overrides.
# --------------------------------------------------------------------------- #

_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Field kinds read from the annotations (strings, under ``from __future__ import annotations``).
_TRAIN_INT_FIELDS = tuple(n for n, f in _TRAIN_FIELDS.items() if f.type in ("int", "int | None"))
_TRAIN_FLOAT_FIELDS = tuple(n for n, f in _TRAIN_FIELDS.items() if f.type == "float")
_SECTIONS = ("train", "hparams", "sweep")
SMOOTHNESS_PGD: tuple[str, ...] = ("minibatch", "iteration")  # where PPO-SR runs its PGD (rpo_jax.algorithms.ppo)

# Presets: named sets of ``train`` switches a config selects with a top-level ``preset: <name>``.
# ``cleanrl`` -- the semantics of CleanRL's ppo_continuous_action.py / rpo_continuous_action.py
# where ours default otherwise (what else differs, and by how much: the README's "CleanRL's
# semantics are a preset"). Every RPO-paper config uses it (tests/test_config_input.py).
PRESETS: dict[str, dict[str, Any]] = {
    "cleanrl": {
        "bootstrap_on_truncation": False,  # a time-limit cut is a termination
        "normalize_per_env": True,  # gym.vector wraps each env in its own normalisers
    },
}


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


def _coerce_train(name: str, value: Any) -> Any:
    """Normalises one ``train`` value from YAML: lists to tuples, ``2e4`` to int, ints to float fields."""
    if name in ("actor_hidden", "critic_hidden"):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"train.{name} must be a list of positive integers, got {value!r}")
        return tuple(_as_int(v) for v in value)
    if name in _TRAIN_FLOAT_FIELDS and _is_finite(value):
        return float(value)
    if name in _TRAIN_INT_FIELDS:
        return _as_int(value)
    return value


def _seeds(value: Any) -> tuple[int, ...]:
    """``sweep.seeds``: a count (seeds 0..n-1) or a list of seeds; integral floats become ints."""
    value = _as_int(value)
    if _is_int(value):
        if value <= 0:
            raise ConfigError(f"sweep.seeds must be a positive count or a list of seeds, got {value!r}")
        return tuple(range(value))
    if isinstance(value, (list, tuple)):
        return tuple(_as_int(v) for v in value)
    raise ConfigError(f"sweep.seeds must be a positive count or a list of seeds, got {value!r}")


def expand_preset(data: dict[str, Any]) -> None:
    """Replaces a config dict's ``preset: NAME`` by its ``train`` values, in place.

    The config's own ``train`` section may not contradict its preset (ConfigError); what is applied
    afterwards -- a ``reduced`` section, ``--set`` -- may, visibly, like any other value.
    """
    if "preset" not in data:
        return
    train = data.get("train") or {}
    if not isinstance(train, Mapping):
        raise ConfigError(f"config section 'train' must be a mapping, got {type(train).__name__}")
    data["train"] = {**train, **_preset(data.pop("preset"), train)}


def _preset(name: Any, train: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train`` values of preset ``name`` (None: none); a ``train`` key that contradicts one is an error."""
    if name is None:
        return {}
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    for key, value in PRESETS[name].items():
        if key in train and train[key] != value:
            raise ConfigError(f"train.{key}={train[key]!r} contradicts preset {name} (which sets {value!r})")
    return dict(PRESETS[name])


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Builds and validates an ExperimentConfig from a nested mapping (parsed YAML)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config must be a mapping with sections {', '.join(_SECTIONS)}, got {type(data).__name__}")
    for key in data:
        if key not in _SECTIONS and key != "preset":
            raise ConfigError(f"unknown config section '{key}'; expected one of {', '.join(_SECTIONS)} or preset")
    sections = {}
    for section in _SECTIONS:
        value = data.get(section) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section '{section}' must be a mapping, got {type(value).__name__}")
        sections[section] = value

    train_kwargs = {}
    for key, value in sections["train"].items():
        if key not in _TRAIN_FIELDS:
            raise ConfigError(f"unknown key 'train.{key}'; choose from {', '.join(_TRAIN_FIELDS)}")
        train_kwargs[key] = _coerce_train(key, value)
    train_kwargs.update(_preset(data.get("preset"), train_kwargs))
    train = TrainConfig(**train_kwargs)

    hp_kwargs = {}
    for key, value in sections["hparams"].items():
        hp_kwargs[key] = validate_hparam(key, value)
    hparams = HParams(**hp_kwargs)

    sweep_kwargs: dict[str, Any] = {}
    for key, value in sections["sweep"].items():
        if key == "seeds":
            sweep_kwargs["seeds"] = _seeds(value)
        elif key == "grid":
            if not isinstance(value, Mapping):
                raise ConfigError(f"sweep.grid must map hyperparameter names to lists of values, got {value!r}")
            grid = []
            for name, values in value.items():
                if name not in HPARAM_NAMES:
                    raise ConfigError(
                        f"unknown hyperparameter '{name}' in sweep.grid; choose from {', '.join(HPARAM_NAMES)}"
                    )
                if not isinstance(values, (list, tuple)):
                    values = [values]
                grid.append((name, tuple(validate_hparam(name, v, where="sweep.grid") for v in values)))
            sweep_kwargs["grid"] = tuple(grid)
        elif key == "variants":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
                raise ConfigError(f"sweep.variants must be a list of mappings name: value, got {value!r}")
            points = []
            for i, point in enumerate(value):
                points.append(tuple((n, validate_hparam(n, v, where=f"sweep.variants[{i}]")) for n, v in point.items()))
            sweep_kwargs["variants"] = tuple(points)
        elif key == "static":
            if not isinstance(value, Mapping):
                raise ConfigError(f"sweep.static must map train fields to lists of values, got {value!r}")
            sweep_kwargs["static"] = tuple(
                (n, tuple(vs) if isinstance(vs, (list, tuple)) else (vs,)) for n, vs in value.items()
            )
        elif key == "chunk_iterations":
            sweep_kwargs["chunk_iterations"] = _as_int(value)
        else:
            raise ConfigError(f"unknown key 'sweep.{key}'; choose from seeds, grid, variants, static, chunk_iterations")
    config = ExperimentConfig(train=train, hparams=hparams, sweep=SweepConfig(**sweep_kwargs))
    config.validate()
    return config


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats such as ``3e-4``, ``1E5``, ``+2e3``.

    YAML 1.1 (PyYAML) wants a dot in a float (``3.0e-4``) and reads ``3e-4`` as a
    string. A subclass, so the global SafeLoader stays as it is.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _parse_yaml(text: str) -> Any:
    """``yaml.load`` with :class:`_Loader`; every failure is a ``yaml.YAMLError``.

    Explicit tags with bad content (``!!float abc``, ``!!timestamp x``) make PyYAML's
    constructors raise ValueError, KeyError or AttributeError, and deep nesting
    RecursionError; they are reported as YAML errors too.
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except (ValueError, KeyError, AttributeError, RecursionError) as err:
        raise yaml.YAMLError(f"cannot construct a value ({type(err).__name__}: {err})") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """Position and problem of a YAML error, on one line."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or str(err).split("\n")[0] or "invalid YAML"
    return f"{where}: {' '.join(problem.split())}"


def _bad_byte(err: UnicodeDecodeError) -> str:
    """Where decoding failed, as ``byte 0xff at line 2, column 8``."""
    before = err.object[: err.start]
    line, column = before.count(b"\n") + 1, err.start - before.rfind(b"\n")
    return f"byte 0x{err.object[err.start]:02x} at line {line}, column {column}"


def _read_text(path: str) -> str:
    """A config file's text, or ConfigError (missing, a directory, unreadable, not UTF-8)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read config file {path}: it is a directory") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text ({_bad_byte(err)})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None


def load_yaml(path: str) -> dict[str, Any]:
    """Reads a YAML config file into a dict, with one-line errors."""
    text = _read_text(path)
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"malformed YAML in {path}{_yaml_problem(err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping with sections {', '.join(_SECTIONS)}")
    return data


def parse_value(text: str) -> Any:
    """Parses a command-line value with YAML rules (numbers incl. ``3e-4``, booleans, lists, null).

    Text that is not valid YAML stays a string, for the field's check to name.
    """
    try:
        return _parse_yaml(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Applies ``section.key=value`` (e.g. ``train.num_envs=8``) to a config dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' must look like section.key=value")
    dotted, text = assignment.split("=", 1)
    set_value(data, dotted, parse_value(text))


def set_value(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Sets ``section.key`` (e.g. ``train.num_envs``) of a config dict in place."""
    parts = dotted.strip().split(".")
    if len(parts) != 2 or parts[0] not in _SECTIONS or not parts[1]:
        raise ConfigError(f"override key '{dotted}' must be section.key with section one of {', '.join(_SECTIONS)}")
    section = data.get(parts[0]) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config section '{parts[0]}' must be a mapping, got {type(section).__name__}")
    data[parts[0]] = section
    section[parts[1]] = value


def parse_grid(assignments: Sequence[str]) -> dict[str, list[Any]]:
    """Parses ``--grid alpha=0,0.5 ent_coef=0,0.01`` into {name: [values]}."""
    grid: dict[str, list[Any]] = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--grid entry '{assignment}' must look like name=v1,v2,...")
        name, text = assignment.split("=", 1)
        name = name.strip()
        values = [parse_value(v) for v in text.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--grid entry '{assignment}' has no values")
        grid[name] = values
    return grid
