"""A finished sweep directory, loaded: its config, member table and restored checkpoint.

:func:`load_run` checks a run directory cheaply (no trainer, no compile) and restores
``checkpoint/`` against a shape-only target; :func:`raw_scale` and :func:`diverged_at` read what
evaluations of its members need. Used by ``rpo-jax robustness`` (rpo_jax.analysis.robustness).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable

import numpy as np

from rpo_jax.errors import InputError
from rpo_jax.runs import config_io
from rpo_jax.runs.results import check_run_dir
from rpo_jax.runs.results import one_line as _one_line


class RunError(InputError):
    """A run directory or checkpoint that cannot be used; ``str(err)`` is one line."""


@dataclasses.dataclass
class RunCheckpoint:
    """A finished sweep directory, loaded: config, member table and the restored checkpoint."""

    path: pathlib.Path
    config: Any  # ExperimentConfig
    members: list[dict[str, Any]]  # member, seed, <variant columns>
    variant_cols: list[str]
    static_points: list[dict[str, Any]]
    checkpoint: Any  # population.checkpoint_tree with a leading member axis (jax arrays)


def diverged_at(checkpoint: Any, size: int) -> np.ndarray:
    """``[size]`` int: each member's ``diverged_at`` from the checkpoint, all ``-1`` when it has none (older runs)."""
    if isinstance(checkpoint, dict) and "diverged_at" in checkpoint:
        return np.asarray(checkpoint["diverged_at"], np.int64).reshape(size)
    return np.full(size, -1, np.int64)


def check_run(run_dir) -> tuple[pathlib.Path, Any]:
    """Cheap checks of a run directory and its config (no trainer, no compile)."""
    import yaml

    from rpo_jax import config as cfgmod

    p = check_run_dir(run_dir, ("config.yaml", "checkpoint/"), RunError)
    config_path = p / "config.yaml"
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config = config_io.config_from_dict(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, cfgmod.ConfigError) as e:
        raise RunError(f"cannot read {config_path}: {_one_line(e)}") from e
    return p, config


def load_run(run_dir) -> RunCheckpoint:
    """Loads ``config.yaml`` and restores ``checkpoint/`` of a sweep directory (shape-only target).

    The member table is ``config.sweep.members(config.hparams)``, whose order is the order of the
    checkpoint's member axis (static points, then variants, grid points, seeds). The restore
    target comes from ``jax.eval_shape`` of the vmapped ``Trainer.init`` of the first static point
    (all static points share one state structure, which ``run_experiment`` enforces).
    """

    from rpo_jax.runs import results
    from rpo_jax.training import population, train

    p, config = check_run(run_dir)
    members = config.sweep.members(config.hparams)
    size = len(members)
    points = config.sweep.static_points()
    trainer = train.make_trainer(dataclasses.replace(config.train, **points[0]))
    target = population.checkpoint_tree(population.state_shape(trainer, size, with_pbt=config.sweep.pbt.enabled))
    try:
        checkpoint = _restore(results.restore_checkpoint, p / "checkpoint", target)
    except ValueError as e:
        raise RunError(f"{_one_line(e)} (expected {size} members from {p / 'config.yaml'})") from e
    variant_cols = [c for c in members[0] if c not in ("member", "seed")] if members else []
    return RunCheckpoint(
        path=p, config=config, members=members, variant_cols=variant_cols, static_points=points, checkpoint=checkpoint
    )


def load_for_command(
    args, default_out: str, error: type[InputError] = RunError
) -> tuple[RunCheckpoint, Any, str | None]:
    """The prelude of a subcommand that reads a finished run and writes into a directory.

    ``args`` has ``run_dir``, ``out``, ``overwrite`` and ``allow_incomplete``. Checks the run
    directory and its status, refuses a non-empty ``--out`` without ``--overwrite`` (before any
    work), loads the run and creates the output directory (default ``RUN_DIR/<default_out>``).
    Returns ``(run, out_dir, note)`` where ``note`` says why an ``--allow-incomplete`` run is not
    complete (None if it is). Every problem raises ``error`` with one line.
    """
    from rpo_jax.runs import results, rundir

    try:
        run_path, _ = check_run(args.run_dir)
        rundir.check_complete(run_path, allow_incomplete=args.allow_incomplete, error=error)
        note = rundir.describe_incomplete(run_path)
        out_dir = pathlib.Path(args.out) if args.out else run_path / default_out
        if out_dir.is_dir() and any(out_dir.iterdir()) and not args.overwrite:  # refuse before any work
            results.prepare_out_dir(out_dir, overwrite=False)
        run = load_run(run_path)
        out_dir = results.prepare_out_dir(out_dir, overwrite=args.overwrite)
    except OSError as e:
        raise error(_one_line(e)) from e
    return run, out_dir, note


def add_run_arguments(p, default_out: str) -> None:
    """The arguments every ``load_for_command`` subcommand shares."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="finished train / sweep directory (config.yaml, checkpoint/)")
    p.add_argument("--out", default=None, metavar="DIR", help=f"output directory (default RUN_DIR/{default_out})")
    p.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --out")
    p.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="use a run directory whose status.json does not say complete (interrupted, failed, "
        "still running, or written before status.json existed)",
    )


def _restore(restore: Callable, path: pathlib.Path, target: dict) -> Any:
    """``restore(path, target)``; a checkpoint saved before ``diverged_at`` existed is restored without it."""
    try:
        return restore(path, target)
    except ValueError as error:
        if "diverged_at" not in target:
            raise
        try:
            return restore(path, {k: v for k, v in target.items() if k != "diverged_at"})
        except ValueError:
            raise error from None


def _member_obs_std(normalizer) -> Any:
    """Each member's observation std ``[P, obs]`` (per-env statistics merged)."""
    import jax

    from rpo_jax.core import normalization

    return jax.vmap(lambda n: normalization.evaluation_stats(n).std)(normalizer)


def raw_scale(run: RunCheckpoint) -> np.ndarray:
    """``s_d``: the mean over the members that did not diverge (all, if every one did) of their normaliser's std.

    Ones without observation normalisation.
    """
    std = np.asarray(_member_obs_std(run.checkpoint["normalizer"]), np.float32)  # [P, obs]
    if not run.config.train.normalize_observations:
        return np.ones(std.shape[1:], np.float32)
    healthy = diverged_at(run.checkpoint, len(std)) < 0
    return std[healthy if healthy.any() else slice(None)].mean(axis=0).astype(np.float32)
