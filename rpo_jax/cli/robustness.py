"""``rpo-jax robustness RUN_DIR``: its arguments, their checks, and the run (:mod:`rpo_jax.analysis.robustness`)."""

from __future__ import annotations

import argparse
import math

from rpo_jax.analysis.evaluation import SPACES, attack_names, evaluate
from rpo_jax.analysis.robustness import (
    RobustnessError,
    diverged_line,
    healthy_rows,
    max_healthy_excess,
    results_table,
    variant_groups,
    write_outputs,
)
from rpo_jax.errors import InputError
from rpo_jax.runs import finished
from rpo_jax.runs.plots import format_cell as _fmt

DEFAULT_EPS = "0,0.02,0.05,0.1,0.2"
DEFAULT_ATTACKS = "random,mad,critic"


DESCRIPTION = (
    "Returns of every member of a finished sweep under random and adversarial observation "
    "perturbations (rpo_jax.core.attacks); see rpo_jax/analysis/robustness.py."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rpo-jax robustness`` (registered by :mod:`rpo_jax.cli`)."""
    finished.add_run_arguments(p, "robustness")
    p.add_argument(
        "--eps", default=DEFAULT_EPS, help=f"comma-separated L-inf radii (default {DEFAULT_EPS}; 0 is always added)"
    )
    p.add_argument(
        "--attacks",
        default=DEFAULT_ATTACKS,
        help=f"comma-separated subset of {','.join(attack_names())} (default {DEFAULT_ATTACKS})",
    )
    p.add_argument("--episodes", type=int, default=50, help="episodes per member, eps and attack (default 50)")
    p.add_argument(
        "--space",
        choices=SPACES,
        default="normalized",
        help="where eps is measured: the agent's normalised input (default) or raw observations "
        "scaled per dimension by the members' mean normaliser std",
    )
    p.add_argument("--pgd-steps", type=int, default=10, help="PGD steps of 0.2 eps for mad and critic (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation envs and attack noise (default 0)")


def parse_eps(text: str) -> list[float]:
    """``"0,0.05,0.1"`` -> sorted distinct finite non-negative floats, with 0 added if missing."""
    parts = [s.strip() for s in str(text).split(",")]
    if not parts or any(not s for s in parts):
        raise InputError(f"--eps must be a comma-separated list of numbers, got {text!r}")
    values = []
    for s in parts:
        try:
            v = float(s)
        except ValueError:
            raise InputError(f"--eps must be a comma-separated list of numbers, got {s!r} in {text!r}") from None
        if not math.isfinite(v):
            raise InputError(f"--eps values must be finite, got {s!r}")
        if v < 0:
            raise InputError(f"--eps values must be >= 0, got {s}")
        values.append(v)
    if len(set(values)) != len(values):
        raise InputError(f"--eps lists a value twice: {text!r}")
    return sorted(set(values) | {0.0})


def parse_attacks(text: str) -> tuple[str, ...]:
    names = [s.strip() for s in str(text).split(",")]
    if not names or any(not n for n in names):
        raise InputError(f"--attacks must be a comma-separated list, got {text!r}")
    for n in names:
        if n not in attack_names():
            raise InputError(f"unknown attack {n!r}; choose from {', '.join(attack_names())}")
    if len(set(names)) != len(names):
        raise InputError(f"--attacks lists an attack twice: {text!r}")
    return tuple(names)


def run(args: argparse.Namespace) -> int:
    """``rpo-jax robustness``: 0 on success; bad input raises :class:`rpo_jax.errors.InputError` (exit 2)."""
    eps = parse_eps(args.eps)
    attacks = parse_attacks(args.attacks)
    if args.episodes < 1:
        raise InputError(f"--episodes must be a positive integer, got {args.episodes}")
    if args.pgd_steps < 0:
        raise InputError(f"--pgd-steps must be >= 0, got {args.pgd_steps}")
    run, out_dir, incomplete = finished.load_for_command(args, "robustness", RobustnessError)

    from rpo_jax.runs import cache

    cache.enable()

    if incomplete is not None:
        print(f"note: {incomplete}; used anyway (--allow-incomplete)")
    print(
        f"rpo-jax robustness: {run.config.train.env}, {len(run.members)} member(s), "
        f"{len(run.static_points)} static point(s), eps={','.join(_fmt(e) for e in eps)}, "
        f"attacks={','.join(attacks)}, {args.episodes} episodes, space={args.space}",
        flush=True,
    )
    result = evaluate(  # a failed ball check is a RobustnessError: one line, exit 2
        run,
        eps=eps,
        attacks=attacks,
        episodes=args.episodes,
        pgd_steps=args.pgd_steps,
        space=args.space,
        seed=args.seed,
    )
    excess = max_healthy_excess(result)
    print(
        f"compile {result.compile_seconds:.1f}s, run {result.run_seconds:.1f}s; "
        f"max ball excess {'n/a' if excess is None else f'{excess:.2g}'}"
    )
    line = diverged_line(result)
    if line is not None:
        print(line)
    table = results_table(result)
    for label, rows in variant_groups(healthy_rows(table), result.variant_cols):
        for attack in attacks:
            sel = rows[rows["attack"] == attack].groupby("eps")["return_mean"]
            cells = ", ".join(f"{_fmt(e)}: {m:.1f}±{s:.1f}" for (e, m), s in zip(sel.mean().items(), sel.std(ddof=0)))
            print(f"{label} | {attack}: {cells}")
    for path in write_outputs(out_dir, result):
        print(f"wrote {path}")
    return 0
