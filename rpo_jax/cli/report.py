"""``rpo-jax report RUN_DIR...``: its arguments, their checks, and the run (:mod:`rpo_jax.analysis.report`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import yaml

from rpo_jax.analysis import reference
from rpo_jax.analysis.report import check_runs, expand_suites, make_report
from rpo_jax.analysis.report_data import ReportError
from rpo_jax.errors import InputError
from rpo_jax.runs.results import one_line as _one_line


def _parse_baseline(items: Sequence[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    spec: dict[str, Any] = {}
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InputError(f"--baseline expects COLUMN=VALUE[,COLUMN=VALUE], got {item!r}")
            try:
                parsed = yaml.safe_load(value.strip())
            except yaml.YAMLError:
                parsed = value.strip()
            spec[key.strip()] = parsed if isinstance(parsed, (int, float, bool, str)) else value.strip()
    return spec


DESCRIPTION = (
    "Paper-style report (learning/entropy curves, alpha ablation, final-return table, "
    "cross-task aggregates) from finished sweep directories."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rpo-jax report`` (registered by :mod:`rpo_jax.cli`)."""
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="sweep output directory (several allowed)")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default with one run: RUN_DIR/report)")
    p.add_argument(
        "--baseline",
        action="append",
        metavar="COL=VALUE[,COL=VALUE]",
        help="baseline variant for the probability of improvement (default: alpha=0, "
        "and ent_coef=0 if swept); may be repeated",
    )
    p.add_argument(
        "--fraction",
        type=float,
        default=0.05,
        help="final return = mean over this last fraction of iterations (default 0.05)",
    )
    p.add_argument(
        "--reference",
        metavar="FILE.csv",
        help="published final returns to set ours beside (rpo_jax.analysis.reference; writes reference.md)",
    )
    p.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="use run directories whose status.json does not say complete (interrupted, failed, "
        "still running, or written before status.json existed)",
    )


def run(args: argparse.Namespace) -> int:
    """``rpo-jax report``: 0 on success; bad input raises :class:`rpo_jax.errors.InputError` (exit 2)."""
    if not 0.0 < args.fraction <= 1.0:
        raise InputError(f"--fraction must be in (0, 1], got {args.fraction}")
    try:
        run_dirs, out = expand_suites(args.run_dirs, args.out, allow_incomplete=args.allow_incomplete)
        for note in check_runs(run_dirs, allow_incomplete=args.allow_incomplete):
            print(note)
        ref = reference.load(args.reference) if args.reference else None
        base = _parse_baseline(args.baseline)
        paths = make_report(run_dirs, out, baseline=base, fraction=args.fraction, reference_table=ref)
    except OSError as e:
        raise ReportError(_one_line(e)) from e
    for p in paths:
        print(f"wrote {p}")
    return 0
