"""Paper-style reports from finished sweeps: curves, alpha ablation, Table-3 table, aggregates.

``rpo-jax report RUN_DIR [RUN_DIR ...] [--out DIR] [--baseline alpha=0] [--allow-incomplete]``
(arguments: :mod:`rpo_jax.cli.report`) reads one or more run directories written by ``rpo-jax
sweep`` (``config.yaml`` + ``metrics.csv``) -- a suite directory of ``rpo-jax suite`` stands for all
its tasks' -- and writes:

* ``learning_curves_<env>.png`` -- episode return vs env steps, mean ± std per variant
  (RPO paper Fig. 1/2);
* ``entropy_<env>.png`` -- policy entropy vs env steps per variant (Fig. 2 / App. J);
* ``alpha_ablation_<env>.png`` -- final return vs alpha on a log axis, mean ± std over seeds,
  only when ``alpha`` is a variant column with more than two values (Fig. 3 / 15);
* ``final_returns.md`` / ``final_returns.csv`` -- Table-3-style final return per env x variant; the CSV's
  ``diverged`` column counts the variant's diverged members and ``runaway_episodes`` the episodes its
  envs' runaway guard cut (:mod:`rpo_jax.envs.core`), the markdown names each such member, and its
  ``effect`` / ``effect_low`` / ``effect_high`` give each variant's mean minus the baseline's on that env
  with a 95 % bootstrap CI over seeds (:func:`rpo_jax.analysis.aggregate.mean_difference_ci`);
* runs trained with ``sweep.pbt``: their hyperparameter schedules, lineage and a comparison with
  a fixed grid among the runs, in ``pbt.md`` and ``pbt_*.png`` (:mod:`rpo_jax.analysis.pbt_report`); the
  tables and curves above cover the other runs;
* ``aggregate.md`` -- across tasks (envs): IQM of min-max-normalised final returns with a
  stratified bootstrap CI per variant, and the probability of improvement of each variant over
  the PPO baseline (see :mod:`rpo_jax.analysis.aggregate`).

Terms. A *variant* is one combination of the swept knobs: every ``metrics.csv`` column between
``seed`` and ``iteration`` (``alpha``, ``ent_coef``, later ``action_dist``, ``lambda_s`` ...) is a
variant column. Runs are combined generically: the variant columns of the report are the union
over runs; a run that did not sweep a column takes its value from its ``config.yaml``
(``hparams``, then ``train``, then top level), and variants are aligned across runs by their
label (``"alpha=0.5, ent_coef=0.01"``, values formatted with ``:g``). A *task* is an env; several
runs of the same env are pooled (their members are kept apart). A member's *final return* is its
mean episode return over the last ``fraction`` (default 5 %) of its iterations, skipping
iterations in which no episode ended -- the same definition as ``summary.json``. Standard
deviations are over seeds with ``ddof=0``, as in ``summary.json`` and the learning-curve bands.

Diverged members. A member is *diverged* when its ``metrics.csv`` rows have ``diverged == 1`` at some
iteration (the trainer's flag: a non-finite parameter or loss; see ``rpo_jax.training.train``); it diverged
*at* the first such iteration. Runs written before that column existed have no diverged members.
Diverged members are left out of everything that summarises returns -- means, stds, ``n``, the
bold best, the alpha ablation, the aggregate statistics and the curves -- and are named and counted
separately instead: one line each under the table of ``final_returns.md`` and the ``diverged``
count of ``final_returns.csv``. (A member that merely finished no episode in the final window is
not diverged: it is counted in the note below the table, as before.)

Completeness. ``rpo-jax report`` (:func:`check_runs`) refuses a run directory whose
``status.json`` does not say ``complete`` (:func:`rpo_jax.runs.rundir.check_complete`; a directory
without one counts as incomplete) unless ``--allow-incomplete`` is given; :func:`make_report`
itself does not check.

Every file is written atomically (temporary file + ``os.replace``) through
:mod:`rpo_jax.runs.results`; the figures come from :mod:`rpo_jax.runs.plots`, as those of ``rpo-jax sweep``
and ``rpo-jax robustness`` do.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rpo_jax.analysis import aggregate, pbt_report, reference
from rpo_jax.analysis.report_data import (
    ReportError,
    RunData,
    _config_value,
    _safe_name,
    _select_baseline,
    _sorted_variants,
    diverged_iterations,
    final_returns,
    load_run,
    runaway_episodes,
)
from rpo_jax.analysis.report_tables import (
    BOOTSTRAP_REPS,
    CONFIDENCE,
    _aggregate_md,
    _final_returns_md,
    _member_lines,
    _source_label,
)
from rpo_jax.runs import plots, rundir, suite
from rpo_jax.runs.plots import save_figure as _save_figure
from rpo_jax.runs.plots import variant_label
from rpo_jax.runs.results import atomic_write_text, check_run_dir, write_table
from rpo_jax.runs.results import one_line as _one_line

__all__ = [
    "ReportError",
    "RunData",
    "load_run",
    "final_returns",
    "diverged_iterations",
    "variant_label",
    "check_runs",
    "make_report",
]


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _plot_alpha_ablation(finals: pd.DataFrame, variant_cols: list[str], env: str, path: pathlib.Path) -> None:
    """Final return vs alpha (log x), mean ± std over seeds; alpha = 0 drawn as a flat band."""
    from matplotlib.figure import Figure

    others = [c for c in variant_cols if c != "alpha"]
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    groups = list(finals.groupby(others, sort=True, dropna=False)) if others else [((), finals)]
    cmap = plots.palette(len(groups))
    positive_alphas: list[float] = []
    for i, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        suffix = variant_label(dict(zip(others, key)))
        stats = g.groupby("alpha")["final_return"].agg(mean="mean", std=lambda s: s.std(ddof=0), n="count").sort_index()
        alphas = stats.index.to_numpy(dtype=float)
        pos = alphas > 0
        positive_alphas.extend(alphas[pos])
        label = suffix if others else "RPO"
        color = cmap(i % cmap.N)
        mean, std = stats["mean"].to_numpy(float)[pos], stats["std"].to_numpy(float)[pos]
        plots.band(ax, alphas[pos], mean, std, color=color, label=label, style="o-", alpha=0.2)
        if (~pos).any():  # alpha = 0 is PPO; it has no place on a log axis
            m0, s0 = float(stats["mean"][~pos].iloc[0]), float(stats["std"][~pos].iloc[0])
            ax.axhline(
                m0, color=color, linestyle="--", linewidth=1.2, label=f"alpha=0 (PPO){', ' + suffix if others else ''}"
            )
            ax.axhspan(m0 - s0, m0 + s0, color=color, alpha=0.08, linewidth=0)
    if positive_alphas:
        ax.set_xscale("log")
    ax.set_xlabel("alpha (log scale)")
    ax.set_ylabel("final return (mean ± std over seeds)")
    ax.set_title(f"{env}: alpha ablation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    _save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def make_report(
    run_dirs: Sequence[str],
    out_dir: str | None = None,
    *,
    baseline: Mapping[str, Any] | None = None,
    fraction: float = 0.05,
    reference_table: pd.DataFrame | None = None,
) -> list[pathlib.Path]:
    """Write the report of one or more sweep run directories into ``out_dir``.

    Args:
      run_dirs: sweep output directories; they may cover different envs and/or variants.
      out_dir: destination (created). Default with a single run: ``<run>/report``.
      baseline: variant-column values of the baseline for the probability of improvement, e.g.
        ``{"alpha": 0.0}``. Default: the variant with ``alpha == 0`` (and ``ent_coef == 0`` if
        swept); other knobs at their defaults if that leaves a choice.
      fraction: final-return window (fraction of the last iterations).
      reference_table: published numbers to compare with (:func:`rpo_jax.analysis.reference.load`); writes
        ``reference.md``.

    Returns:
      The written files, in writing order.

    Raises:
      ReportError: unusable input (see :func:`load_run`), no run dirs, several runs without
        ``out_dir``, or a ``baseline`` that names an unknown column or matches no single variant.
    """
    if not run_dirs:
        raise ReportError("no run directories given")
    runs = [load_run(d) for d in run_dirs]
    if out_dir is None:
        if len(runs) > 1:
            raise ReportError("several run directories: pass an output directory (--out DIR)")
        out_dir = str(runs[0].path / "report")
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportError(f"output path {out_dir} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create output directory {out_dir}: {_one_line(e)}") from e

    pbt_runs = [r for r in runs if pbt_report.explored(r)]  # reported apart: rpo_jax.analysis.pbt_report
    runs = [r for r in runs if not pbt_report.explored(r)]
    pbt_written = pbt_report.report(pbt_runs, runs, out, fraction) if pbt_runs else []
    if not runs:
        return pbt_written

    variant_cols: list[str] = []
    for r in runs:
        variant_cols += [c for c in r.variant_cols if c not in variant_cols]

    metric_frames, final_frames = [], []
    seen: set[tuple] = set()  # (env, variant, seed): the same member in two runs is one run, not two
    duplicates = 0
    for i, r in enumerate(runs):
        m = r.metrics.copy()
        for c in variant_cols:
            if c not in m.columns:
                m[c] = _config_value(r.config, c)
        keys = m[["member", "seed", *variant_cols]].drop_duplicates("member")
        drop = []
        for row in keys.itertuples(index=False):
            ident = (r.env, variant_label({c: getattr(row, c) for c in variant_cols}), row.seed)
            if ident in seen:
                drop.append(row.member)
            seen.add(ident)
        if drop:
            duplicates += len(drop)
            m = m[~m["member"].isin(drop)]
        if m.empty:
            continue
        diverged = diverged_iterations(m)
        f = final_returns(m, variant_cols, fraction)
        f.insert(0, "run", str(r.path))
        f.insert(0, "env", r.env)
        f["diverged_at"] = f["member"].map(diverged)  # NaN: never diverged
        f["runaway_episodes"] = f["member"].map(runaway_episodes(m)).fillna(0).astype("int64")
        final_frames.append(f)
        m = m[~m["member"].isin(diverged.index)]  # the curves show healthy members only
        if not m.empty:
            m = m.assign(_uid=f"{i}:" + m["member"].astype(str), _env=r.env)
            metric_frames.append(m)
    if duplicates:
        print(f"note: {duplicates} member(s) repeat an (env, variant, seed) of an earlier run and were counted once")
    finals = pd.concat(final_frames, ignore_index=True)
    columns = [finals[c].tolist() for c in variant_cols]  # per column: no dtype upcasting
    finals["variant"] = [
        variant_label(dict(zip(variant_cols, (col[i] for col in columns)))) for i in range(len(finals))
    ]
    is_diverged = finals["diverged_at"].notna()
    healthy = finals[~is_diverged]

    variants_df = _sorted_variants(
        finals.drop_duplicates("variant")[[*variant_cols, "variant"]], variant_cols
    ).reset_index(drop=True)
    variants = list(variants_df["variant"])
    envs = list(dict.fromkeys(r.env for r in runs))
    base_label, base_note = _select_baseline(variants_df, variant_cols, baseline)

    written: list[pathlib.Path] = list(pbt_written)
    used_names: set[str] = set()
    for env in envs:
        name = _safe_name(env)
        k = 2
        while name in used_names:
            name, k = f"{_safe_name(env)}_{k}", k + 1
        used_names.add(name)
        frames = [f for f in metric_frames if f["_env"].iloc[0] == env]
        if not frames:  # every member of this env diverged: no curve to draw
            continue
        m = pd.concat(frames, ignore_index=True)
        x = "env_steps" if "env_steps" in m.columns else "iteration"
        path = out / f"learning_curves_{name}.png"
        plots.curves(
            m, path, group_by=variant_cols, x=x, y="episode_return", member_col="_uid", title=f"{env}: episode return"
        )
        written.append(path)
        if "entropy" in m.columns:
            path = out / f"entropy_{name}.png"
            plots.curves(
                m, path, group_by=variant_cols, x=x, y="entropy", member_col="_uid", title=f"{env}: policy entropy"
            )
            written.append(path)
        fe = healthy[healthy["env"] == env]
        measured = fe.dropna(subset=["final_return"])  # a tiny run may have no finished episode in its window
        if "alpha" in variant_cols and measured["alpha"].dropna().nunique() > 2:
            path = out / f"alpha_ablation_{name}.png"
            _plot_alpha_ablation(fe, variant_cols, env, path)
            written.append(path)

    stats = (  # over all members, so a variant whose members all diverged keeps its row (n = 0)
        finals.assign(final_return=finals["final_return"].where(~is_diverged), diverged=is_diverged.astype(int))
        .groupby(["env", "variant"], sort=False)
        .agg(
            mean=("final_return", "mean"),
            std=("final_return", lambda s: s.std(ddof=0)),
            n=("final_return", "count"),
            diverged=("diverged", "sum"),
            runaway_episodes=("runaway_episodes", "sum"),
        )
        .reset_index()
    )
    stats["std"] = stats["std"].where(stats["n"] > 0)
    n_nan = int(healthy["final_return"].isna().sum())
    sources = [_source_label(r.path) for r in runs]
    diverged_lines = _member_lines(finals, variant_cols, several_runs=len(runs) > 1)

    path = out / "final_returns.md"
    atomic_write_text(path, _final_returns_md(stats, envs, variants, fraction, sources, n_nan, diverged_lines))
    written.append(path)

    table = stats.merge(variants_df, on="variant", how="left")
    table["env"] = pd.Categorical(table["env"], categories=envs, ordered=True)
    table["variant"] = pd.Categorical(table["variant"], categories=variants, ordered=True)
    table = table.sort_values(["env", "variant"])[
        ["env", "variant", *variant_cols, "mean", "std", "n", "diverged", "runaway_episodes"]
    ]
    table["env"] = table["env"].astype(str)
    table["variant"] = table["variant"].astype(str)
    table = _with_effects(table, healthy, base_label)
    path = out / "final_returns.csv"
    write_table(table, path)
    written.append(path)

    path = out / "aggregate.md"
    atomic_write_text(
        path, _aggregate_md(healthy, envs, variants, base_label, base_note, fraction, int(is_diverged.sum()))
    )
    written.append(path)
    if reference_table is not None:
        path = out / "reference.md"
        comparison = reference.compare(table, reference_table, base_label or "")
        atomic_write_text(path, reference.markdown(comparison, base_label or "(no baseline variant)"))
        written.append(path)
    return written


def _with_effects(table: pd.DataFrame, healthy: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """``table`` plus each variant's effect on its env, ``mean - baseline mean``, with a bootstrap CI over seeds."""
    table = table.assign(effect=np.nan, effect_low=np.nan, effect_high=np.nan)
    if baseline is None:
        return table
    for i, row in table.iterrows():
        on_env = healthy[healthy["env"] == row["env"]]
        x = on_env.loc[on_env["variant"] == row["variant"], "final_return"].dropna().to_numpy()
        y = on_env.loc[on_env["variant"] == baseline, "final_return"].dropna().to_numpy()
        if row["variant"] != baseline and x.size and y.size:
            effect = aggregate.mean_difference_ci(x, y, reps=BOOTSTRAP_REPS, confidence=CONFIDENCE, seed=0)
            table.loc[i, ["effect", "effect_low", "effect_high"]] = effect
    return table


def check_runs(run_dirs: Sequence[str], *, allow_incomplete: bool) -> list[str]:
    """Cheap checks of every run directory before any work: it exists, holds ``metrics.csv`` and is complete.

    Returns one note per incomplete run accepted with ``allow_incomplete``.

    Raises:
      ReportError: a missing directory or ``metrics.csv``, or an incomplete run without ``allow_incomplete``.
    """
    notes = []
    for d in run_dirs:
        check_run_dir(d, ("metrics.csv",), ReportError)
        rundir.check_complete(d, allow_incomplete=allow_incomplete, error=ReportError)
        problem = rundir.describe_incomplete(d)
        if problem is not None:
            notes.append(f"note: {problem}; used anyway (--allow-incomplete)")
    return notes


def expand_suites(run_dirs: Sequence[str], out: str | None, *, allow_incomplete: bool) -> tuple[list[str], str | None]:
    """Replaces each ``rpo-jax suite`` directory by its tasks' run directories (a lone suite's report
    defaults to ``SUITE/report``); a task not yet started is an error unless ``allow_incomplete``."""
    expanded: list[str] = []
    for d in run_dirs:
        tasks = suite.task_dirs(d)
        if tasks is None:
            expanded.append(d)
            continue
        missing = [t.name for t in tasks if not t.is_dir()]
        if missing and not allow_incomplete:
            raise ReportError(f"suite {d} has not started task(s) {', '.join(missing)} (--allow-incomplete: skip them)")
        expanded += [str(t) for t in tasks if t.is_dir()]
        if out is None and len(run_dirs) == 1:
            out = str(pathlib.Path(d) / "report")
    return expanded, out
