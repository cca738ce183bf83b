"""Which population to train (:class:`SweepConfig`, :class:`PBTConfig`) and the whole experiment
(:class:`ExperimentConfig`: train x hparams x sweep)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from rpo_jax.config.fields import ConfigError, first_repeat, is_finite, is_int, sweep_field
from rpo_jax.config.hparams import HPARAM_NAMES, HParams, validate_hparam
from rpo_jax.config.train import TrainConfig

# Static TrainConfig fields a sweep may vary: each value is its own compile, run
# one after another in the same process and reported as one population.
STATIC_SWEEP_FIELDS: tuple[str, ...] = ("action_dist", "augmentation", "algorithm", "smoothness", "smoothness_target")


# Hyperparameters PBT may not explore: switches, not magnitudes.
PBT_FIXED: tuple[str, ...] = ("anneal_alpha",)


@dataclasses.dataclass(frozen=True)
class PBTConfig:
    """Population-based training (Jaderberg et al., 2017) inside the compiled program (:mod:`rpo_jax.training.pbt`).

    Every ``interval`` iterations the members of each static point x seed (one PBT population
    each; :meth:`rpo_jax.training.population.Population.pbt_groups`) are ranked by their mean training
    return since the last step; each member of the bottom ``fraction`` copies the parameters,
    optimiser and observation / reward statistics and the hyperparameters of a random member of
    the top ``fraction`` (exploit), then perturbs the ``explore`` hyperparameters (explore). Off
    while ``interval`` is 0.
    """

    interval: int = sweep_field(0, "iterations between exploit / explore steps; 0 = PBT off")
    explore: tuple[tuple[str, tuple[float, float]], ...] = sweep_field(
        (), "hparams PBT perturbs, with bounds, e.g. {alpha: [0.001, 3]}"
    )
    fraction: float = sweep_field(0.25, "bottom fraction of each seed's members that copies the top fraction")
    factors: tuple[float, ...] = sweep_field((0.8, 1.25), "explore: a copied value is multiplied by one of these")
    resample_probability: float = sweep_field(
        0.25, "explore: chance of drawing a value from sweep.grid (log-uniform in the bounds if not in the grid)"
    )

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def validate(self) -> None:
        where = "sweep.pbt"
        if not is_int(self.interval) or self.interval < 0:
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
        if not is_finite(self.fraction) or not 0 < self.fraction <= 0.5:
            raise ConfigError(f"{where}.fraction must be in (0, 0.5], got {self.fraction!r}")
        if not self.factors or any(not is_finite(f) or f <= 0 for f in self.factors):
            raise ConfigError(
                f"{where}.factors must be a non-empty list of positive numbers, got {list(self.factors)!r}"
            )
        if not is_finite(self.resample_probability) or not 0 <= self.resample_probability <= 1:
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

    seeds: tuple[int, ...] = sweep_field((0,), "seeds: a count N (0..N-1) or a list")
    grid: tuple[tuple[str, tuple[float, ...]], ...] = sweep_field(
        (), "hparams swept as a Cartesian product, e.g. {alpha: [0, 0.5]} (traced: one compile)"
    )
    variants: tuple[tuple[tuple[str, float], ...], ...] = sweep_field(
        (), "explicit hparams points, e.g. [{alpha: 0}, {alpha: 0, ent_coef: 0.01}]"
    )
    static: tuple[tuple[str, tuple[Any, ...]], ...] = sweep_field(
        (), "train fields swept, e.g. {action_dist: [gaussian, laplace]} (one compile per point)"
    )
    chunk_iterations: int = sweep_field(0, "iterations per compiled call / progress report; 0 = about 20 reports")
    pbt: PBTConfig = sweep_field(
        PBTConfig(), "population-based training: {interval, explore, fraction, factors, resample_probability}"
    )

    def validate(self) -> None:
        if not self.seeds:
            raise ConfigError("sweep.seeds must name at least one seed")
        if any(not is_int(s) or s < 0 for s in self.seeds):
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
            repeated = first_repeat(values)
            if repeated is not None:
                raise ConfigError(f"sweep.grid.{name} lists {values[repeated]:g} twice")
        for i, point in enumerate(self.variants):
            for name, value in point:
                validate_hparam(name, value, where=f"sweep.variants[{i}]")
                if name in names:
                    raise ConfigError(f"sweep.variants[{i}] sets '{name}', which sweep.grid also sweeps")
        repeated = first_repeat([frozenset(point) for point in self.variants])
        if repeated is not None:
            raise ConfigError(f"sweep.variants[{repeated}] repeats an earlier variant: {dict(self.variants[repeated])}")
        for name, values in self.static:
            if name not in STATIC_SWEEP_FIELDS:
                raise ConfigError(
                    f"sweep.static.{name} is not sweepable; static sweeps take {', '.join(STATIC_SWEEP_FIELDS)}"
                )
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"sweep.static.{name} must list distinct values, got {list(values)!r}")
        if not is_int(self.chunk_iterations) or self.chunk_iterations < 0:
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
        """PBT needs two members per seed, a step before the end, start values in bounds (and an on-policy
        algorithm: :func:`rpo_jax.algorithms.validate_experiment`)."""
        pbt = self.sweep.pbt
        if not pbt.enabled:
            return
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
        repeated = first_repeat(points)
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
