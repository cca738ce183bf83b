"""The markdown of a report: the Table-3-style final returns and the cross-task aggregates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rpo_jax.analysis import aggregate
from rpo_jax.runs import rundir
from rpo_jax.runs.plots import variant_label

BOOTSTRAP_REPS = 2000
CONFIDENCE = 0.95


def _cell(mean: float, std: float, n: int, diverged: int = 0) -> str:
    """``mean ± std (n)``, with ``; k diverged`` inside the parentheses when ``k`` members diverged."""
    extra = f"; {diverged} diverged" if diverged else ""
    if n == 0 or math.isnan(mean):
        return f"n/a ({n}{extra})" if diverged else "n/a"
    return f"{mean:.2f} ± {std:.2f} ({n}{extra})"


def _member_lines(finals: pd.DataFrame, variant_cols: list[str], several_runs: bool) -> list[str]:
    """One line per member of ``finals`` needing a note under the table, in table order: diverged
    (rows with a ``diverged_at``; left out), then cut by the runaway guard (``runaway_episodes`` > 0)."""

    def who_where(row: dict) -> tuple[str, str]:
        variant = [variant_label({c: row[c] for c in variant_cols})] if variant_cols else []
        where = f"`{row['env']}`" + (f", run `{row['run']}`" if several_runs else "")
        return ", ".join([f"seed {row['seed']}", *variant]), where

    lines = []
    for row in finals[finals["diverged_at"].notna()].to_dict("records"):
        who, where = who_where(row)
        at = int(row["diverged_at"])
        lines.append(f"- diverged (left out): member {row['member']} ({who}) at iteration {at} -- {where}")
    for row in finals[finals["runaway_episodes"] > 0].to_dict("records"):
        who, where = who_where(row)
        lines.append(
            f"- runaway: member {row['member']} ({who}): {int(row['runaway_episodes'])} episodes cut by the env's "
            f"runaway guard (a state faster than its max_speed, or non-finite) -- {where}"
        )
    return lines


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _source_label(path) -> str:
    """A run directory for the table's sources, with its status when the run is not complete."""
    status = rundir.read_status(path)
    if status is None or status["state"] == "complete":
        return f"`{path}`"
    return f"`{path}` (**{status['state']}** at iteration {status.get('iteration')}/{status.get('num_iterations')})"


def _final_returns_md(
    stats: pd.DataFrame,
    envs: list[str],
    variants: list[str],
    fraction: float,
    sources: list[str],
    n_nan: int,
    diverged: list[str],
) -> str:
    lines = [
        "# Final returns",
        "",
        f"Mean ± std (ddof=0) over seeds (n) of each member's final return: its mean episode return "
        f"over the last {fraction:.0%} of training iterations. Rows: environments; columns: variants. "
        "Best mean per environment in **bold**; – = variant not run on that environment. Diverged members "
        "(non-finite parameters or losses during training) are left out of mean, std, n and the best, "
        "counted as `k diverged` in their cell and listed below the table.",
        "",
        "| env | " + " | ".join(_md_escape(v) for v in variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for env in envs:
        rows = stats[stats["env"] == env].set_index("variant")
        best = rows["mean"].max() if rows["mean"].notna().any() else None
        cells = []
        for v in variants:
            if v not in rows.index:
                cells.append("–")
                continue
            r = rows.loc[v]
            text = _cell(float(r["mean"]), float(r["std"]), int(r["n"]), int(r["diverged"]))
            if best is not None and r["mean"] == best:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {_md_escape(env)} | " + " | ".join(cells) + " |")
    lines.append("")
    if diverged:
        lines.append(f"{len(diverged)} member(s) diverged and are left out of every statistic:")
        lines.append("")
        lines += diverged
        lines.append("")
    if n_nan:
        lines.append(f"{n_nan} member(s) finished no episode in the final window and are not counted in n.")
        lines.append("")
    lines.append("Sources: " + ", ".join(sources))
    lines.append("")
    return "\n".join(lines)


def _score_matrix(finals: pd.DataFrame, variant: str, envs: list[str]) -> np.ndarray:
    """``[runs, tasks]`` final returns of one variant, NaN-padded where a task has fewer runs."""
    cols = [
        finals.loc[(finals["variant"] == variant) & (finals["env"] == e), "final_return"].dropna().to_numpy()
        for e in envs
    ]
    runs = max((len(c) for c in cols), default=0)
    m = np.full((max(runs, 1), len(envs)), np.nan)
    for j, c in enumerate(cols):
        m[: len(c), j] = c
    return m


def _aggregate_md(
    finals: pd.DataFrame,
    envs: list[str],
    variants: list[str],
    baseline: str | None,
    baseline_note: str,
    fraction: float,
    n_diverged: int = 0,
) -> str:
    """``aggregate.md`` from the final returns of the members to aggregate (diverged ones already removed)."""
    t = len(envs)
    valid = finals.dropna(subset=["final_return"])
    low = np.array([valid.loc[valid["env"] == e, "final_return"].min() for e in envs], dtype=float)
    high = np.array([valid.loc[valid["env"] == e, "final_return"].max() for e in envs], dtype=float)
    pct = f"{CONFIDENCE:.0%}"
    lines = ["# Aggregate statistics across tasks", ""]
    if t == 1:
        lines += [
            f"**Only one task (env) is present: `{envs[0]}`.** The numbers below are not aggregates "
            "across tasks: the IQM and its confidence interval reflect seed-to-seed variation on "
            "this single task only. Pass run directories of several envs for cross-task statistics.",
            "",
        ]
    lines += [
        f"Tasks ({t}): " + ", ".join(f"`{e}`" for e in envs) + ".",
        "",
        f"Scores: per-member final return (mean episode return over the last {fraction:.0%} of "
        "iterations), min-max normalised per task over the runs of all variants on that task "
        "(0 = worst run, 1 = best run).",
        "",
    ]
    if n_diverged:
        lines += [f"{n_diverged} diverged member(s) are left out (listed in final_returns.md).", ""]
    lines += [
        f"## IQM of normalised final return ({pct} stratified bootstrap CI, {BOOTSTRAP_REPS} resamples)",
        "",
        "| variant | tasks | runs | IQM | " + pct + " CI |",
        "|---|---:|---:|---:|---|",
    ]
    matrices = {v: _score_matrix(finals, v, envs) for v in variants}
    for v in variants:
        m = matrices[v]
        has = ~np.all(np.isnan(m), axis=0)
        runs = int(np.sum(~np.isnan(m)))
        if runs == 0:
            lines.append(f"| {_md_escape(v)} | 0/{t} | 0 | n/a | n/a |")
            continue
        norm = aggregate.normalize_scores(m[:, has], low[has], high[has])
        point, lo, hi = aggregate.stratified_bootstrap_ci(
            norm, aggregate.iqm, reps=BOOTSTRAP_REPS, confidence=CONFIDENCE, seed=0
        )
        lines.append(f"| {_md_escape(v)} | {int(has.sum())}/{t} | {runs} | {point:.3f} | [{lo:.3f}, {hi:.3f}] |")
    lines += ["", "## Probability of improvement over the baseline", ""]
    if baseline is None:
        lines += [f"No baseline: {baseline_note}.", ""]
        return "\n".join(lines)
    lines += [
        f"Baseline: `{baseline}` -- {baseline_note}.",
        "",
        "P(X > baseline): for each task, the probability that a random run of variant X has a higher "
        "final return than a random run of the baseline (ties count 1/2), averaged over the tasks "
        f"both were run on; {pct} CI by stratified bootstrap (runs of both resampled within each task).",
        "",
        f"| variant | tasks | P(X > baseline) | {pct} CI |",
        "|---|---:|---:|---|",
    ]
    base = matrices[baseline]
    base_has = ~np.all(np.isnan(base), axis=0)
    for v in variants:
        if v == baseline:
            continue
        m = matrices[v]
        both = base_has & ~np.all(np.isnan(m), axis=0)
        if not both.any():
            lines.append(f"| {_md_escape(v)} | 0/{t} | n/a | n/a |")
            continue
        point, lo, hi = aggregate.probability_of_improvement_ci(
            m[:, both], base[:, both], reps=BOOTSTRAP_REPS, confidence=CONFIDENCE, seed=0
        )
        lines.append(f"| {_md_escape(v)} | {int(both.sum())}/{t} | {point:.2f} | [{lo:.2f}, {hi:.2f}] |")
    lines.append("")
    return "\n".join(lines)
