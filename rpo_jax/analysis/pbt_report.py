"""PBT in ``rpo-jax report``: hyperparameter schedules, lineage, and PBT against a fixed grid.

A run trained with ``sweep.pbt`` (:mod:`rpo_jax.training.pbt`) is reported here, not in the per-variant
tables: its members' variant columns hold the values they *started* from. For each such run:

* ``pbt_schedules_<env>.png`` -- every explored hyperparameter over env steps, one line per member
  (coloured by its starting value), one panel per seed (each seed's members are one PBT
  population); a dot marks each copy;
* ``pbt_lineage_<env>.png`` -- per seed, members (rows) x iterations, coloured by the starting value
  of the member whose initial networks a member's state descends from (:func:`rpo_jax.training.pbt.lineage`);
* ``pbt.md`` -- per env and seed, the PBT population's best member by final return (what PBT
  deploys), its return and its explored values at the end. With a run of the same members
  *without* PBT among the report's runs (the fixed grid: the same ``train``, ``hparams`` and
  sweep but ``sweep.pbt``, e.g. the same command with ``--set sweep.pbt=null``), the comparison
  at equal env steps per member: PBT's best member against the grid's best and median member of
  each seed, and against its best and median fixed configuration (ranked by the mean over seeds;
  of an even number, the better middle one), as mean ± std over seeds and the difference with a
  95 % bootstrap CI over seeds, paired by seed (the same seed starts both runs from the same
  networks and environments; :func:`rpo_jax.analysis.aggregate.paired_difference_ci`).

Final returns are those of the rest of the report (mean training return over the last 5 % of
iterations). Diverged members are left out, as there.
"""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rpo_jax.analysis import aggregate
from rpo_jax.analysis.report_data import ReportError, RunData, _safe_name, diverged_iterations, final_returns
from rpo_jax.runs import plots
from rpo_jax.runs.results import atomic_write_text
from rpo_jax.training import pbt

CONFIDENCE = 0.95


def explored(run: RunData) -> list[str]:
    """The hyperparameters ``run`` explored with PBT; empty for a run without it."""
    section = (run.config.get("sweep") or {}).get("pbt") or {}
    if not isinstance(section, dict) or not section.get("interval"):
        return []
    return list(section.get("explore") or {})


def same_population(pbt_run: RunData, grid: RunData) -> bool:
    """Whether ``grid`` trained ``pbt_run``'s members without PBT: the same train settings (env,
    budget, ...), hyperparameters, seeds, grid and variants."""
    ours, theirs = pbt_run.config, grid.config
    if not ours or not theirs or explored(grid):
        return False
    sweep = lambda c: {k: v for k, v in (c.get("sweep") or {}).items() if k not in ("pbt", "chunk_iterations")}  # noqa: E731
    return (
        ours.get("train") == theirs.get("train")
        and ours.get("hparams") == theirs.get("hparams")
        and sweep(ours) == sweep(theirs)
    )


def _finals(run: RunData, fraction: float) -> pd.DataFrame:
    """Final return per member, diverged members left out (NaN).

    In a PBT run a member that diverged and then copied a healthy member is healthy again: only
    members diverged at their last iteration count as diverged there.
    """
    f = final_returns(run.metrics, run.variant_cols, fraction)
    if explored(run) and "diverged" in run.metrics.columns:
        last = run.metrics.sort_values("iteration").groupby("member")["diverged"].last()
        diverged = last[last > 0].index
    else:
        diverged = diverged_iterations(run.metrics).index
    return f.assign(final_return=f["final_return"].where(~f["member"].isin(diverged)))


def _wide(run: RunData, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(members, iterations, values [P, T])`` of one metric column."""
    table = run.metrics.pivot(index="member", columns="iteration", values=column).sort_index()
    return table.index.to_numpy(), table.columns.to_numpy(), table.to_numpy()


def ancestors(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    """``(members, ancestor [P, T])``: the member (number) whose initial state each state descends from."""
    members, _, parents = _wide(run, pbt.PARENT_METRIC)
    position = {m: i for i, m in enumerate(members)}
    as_positions = np.vectorize(lambda p: position.get(int(p), -1))(parents)
    return members, members[pbt.lineage(as_positions)]


def _plot_schedules(run: RunData, names: list[str], path: pathlib.Path) -> None:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    m = run.metrics
    seeds = sorted(m["seed"].unique())
    x = "env_steps" if "env_steps" in m.columns else "iteration"
    fig = Figure(figsize=(3.6 * len(seeds) + 1, 2.8 * len(names) + 0.6), layout="constrained")
    axes = fig.subplots(len(names), len(seeds), squeeze=False, sharex=True, sharey="row")
    for row, name in enumerate(names):
        column = pbt.hparam_metric(name)
        start = m.groupby("member")[column].first()
        low, high = start.min(), start.max()
        log = low > 0
        norm = (lambda v: (np.log(v) - np.log(low)) / max(np.log(high / low), 1e-12)) if log else None
        for col, seed in enumerate(seeds):
            ax = axes[row][col]
            for member, g in m[m["seed"] == seed].groupby("member"):
                g = g.sort_values("iteration")
                shade = norm(start[member]) if norm else (start[member] - low) / max(high - low, 1e-12)
                colour = colormaps["viridis"](shade)
                ax.step(g[x], g[column], where="pre", color=colour, linewidth=1.2)  # in effect up to x
                copies = g[g[pbt.PARENT_METRIC] >= 0]
                after = g[column].shift(-1)[copies.index]
                ax.plot(copies[x], after, "o", color=colour, markersize=3)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{run.env}, seed {seed}", fontsize="small")
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.set_ylabel(name)
            if row == len(names) - 1:
                ax.set_xlabel(x)
    fig.suptitle("PBT schedules (colour: a member's starting value; dot: it copied a better member)")
    plots.save_figure(fig, path)


def _plot_lineage(run: RunData, name: str, path: pathlib.Path) -> None:
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    members, ancestor = ancestors(run)
    first = run.metrics.sort_values("iteration").groupby("member")[pbt.hparam_metric(name)].first()
    start = first.reindex(members).to_numpy()
    value_of = dict(zip(members, start))
    seed_of = run.metrics.groupby("member")["seed"].first().reindex(members).to_numpy()
    seeds = sorted(set(seed_of))
    norm = LogNorm(start.min(), start.max()) if start.min() > 0 else Normalize(start.min(), start.max())
    fig = Figure(figsize=(3.6 * len(seeds) + 1.2, 3.2), layout="constrained")
    axes = fig.subplots(1, len(seeds), squeeze=False, sharey=True)[0]
    image = None
    for ax, seed in zip(axes, seeds):
        rows = np.flatnonzero(seed_of == seed)
        rows = rows[np.argsort(start[rows], kind="stable")]
        colours = np.vectorize(value_of.get)(ancestor[rows])
        image = ax.imshow(colours, aspect="auto", interpolation="nearest", cmap="viridis", norm=norm)
        ax.set_yticks(range(len(rows)), [f"{plots.format_cell(v)}" for v in start[rows]], fontsize="x-small")
        ax.set_title(f"{run.env}, seed {seed}", fontsize="small")
        ax.set_xlabel("iteration")
    axes[0].set_ylabel(f"member (starting {name})")
    fig.colorbar(image, ax=list(axes), label=f"starting {name} of the ancestor")
    fig.suptitle("PBT lineage: whose initial networks each member's state descends from")
    plots.save_figure(fig, path)


def _cell(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    return f"{values.mean():.2f} ± {values.std():.2f} ({values.size})" if values.size else "–"


def _difference(x: np.ndarray, y: np.ndarray) -> str:
    try:
        point, low, high = aggregate.paired_difference_ci(x, y, confidence=CONFIDENCE)
    except ValueError:
        return "–"
    bold = "**" if low > 0 or high < 0 else ""
    return f"{bold}{point:+.2f} [{low:+.2f}, {high:+.2f}]{bold}"


def _grid_statistics(grid: RunData, names: list[str], fraction: float) -> dict[str, Any]:
    """Per seed: the grid's best and median member; its best and median configuration (by mean over seeds)."""
    f = _finals(grid, fraction)
    by_seed = f.groupby("seed")["final_return"]
    configs = f.groupby(names)["final_return"].mean().sort_values()
    # the median of an even number of configurations: the better middle one
    best_config, median_config = configs.index[-1], configs.index[len(configs) // 2]

    def rows_of(config) -> pd.DataFrame:
        key = config if isinstance(config, tuple) else (config,)
        return f[np.logical_and.reduce([f[n] == v for n, v in zip(names, key)])]

    def per_seed(config) -> np.ndarray:
        return rows_of(config).sort_values("seed")["final_return"].to_numpy()

    label = lambda c: ", ".join(f"{n}={plots.format_cell(v)}" for n, v in zip(names, np.atleast_1d(c)))  # noqa: E731
    table = {
        "best member": by_seed.max().to_numpy(),
        "median member": by_seed.median().to_numpy(),
        f"best fixed ({label(best_config)})": per_seed(best_config),
        f"median fixed ({label(median_config)})": per_seed(median_config),
    }
    curves = {
        f"grid, {kind} ({label(c)})": rows_of(c)["member"]
        for kind, c in (("best fixed", best_config), ("median fixed", median_config))
    }
    return {"table": table, "curves": curves}


def _plot_against_grid(run: RunData, best: list[int], grid: RunData, curves: dict, path: pathlib.Path) -> None:
    """Training return vs env steps: PBT's best member per seed and its whole population, beside the
    grid's best and median fixed configuration (mean ± std over seeds)."""
    from matplotlib.figure import Figure

    x = "env_steps" if "env_steps" in run.metrics.columns else "iteration"
    groups = {
        "PBT, best member per seed": run.metrics[run.metrics["member"].isin(best)],
        "PBT, all members": run.metrics,
        **{k: grid.metrics[grid.metrics["member"].isin(v)] for k, v in curves.items()},
    }
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    cmap = plots.palette(len(groups))
    for i, (label, table) in enumerate(groups.items()):
        xs, mean, std, n = plots.member_band(table, x, "episode_return")
        plots.band(ax, xs, mean, std, color=cmap(i), label=f"{label} (n={n})", style="--" if "all" in label else "-")
    ax.set_xlabel(x)
    ax.set_ylabel("episode return (mean ± std over members)")
    ax.set_title(f"{run.env}: PBT against the fixed grid")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    plots.save_figure(fig, path)


def report(runs: Sequence[RunData], fixed: Sequence[RunData], out: pathlib.Path, fraction: float) -> list[pathlib.Path]:
    """Writes the PBT figures and ``pbt.md`` of ``runs`` (runs with PBT), compared with ``fixed`` runs.

    Raises ReportError, before writing, for a run with ``sweep.static``: its PBT populations are per
    static point x seed, while these tables and figures take a seed's members as one population.
    """
    for r in runs:
        if (r.config.get("sweep") or {}).get("static"):
            raise ReportError(
                f"{r.path}: a PBT run with sweep.static has one PBT population per static point and seed, "
                "which the PBT report does not separate; report a run of one static point instead"
            )
    written: list[pathlib.Path] = []
    lines = [
        "# PBT",
        "",
        f"Final return: a member's mean training return over the last {fraction:.0%} of its iterations. "
        "PBT's result per seed is its population's best member (what PBT would deploy); each seed's members "
        "are one PBT population. A grid is a run of the same members without PBT; its best and median "
        "member are taken per seed, its best and median fixed configuration by the mean over seeds (of an "
        "even number, the better middle one). "
        f"Differences: PBT minus the grid statistic, mean over seeds with a {CONFIDENCE:.0%} bootstrap CI "
        "over seeds, paired by seed (a seed starts both runs from the same networks and environments; "
        "bold: the CI excludes 0). All members trained for the same env steps.",
        "",
    ]
    used: set[str] = set()
    for run in runs:
        names = explored(run)
        name, k = _safe_name(run.env), 2
        while name in used:  # two PBT runs of one env (e.g. two budgets)
            name, k = f"{_safe_name(run.env)}_{k}", k + 1
        used.add(name)
        path = out / f"pbt_schedules_{name}.png"
        _plot_schedules(run, names, path)
        path_lineage = out / f"pbt_lineage_{name}.png"
        _plot_lineage(run, names[0], path_lineage)
        written += [path, path_lineage]

        f = _finals(run, fraction)
        last = run.metrics.sort_values("iteration").groupby("member").last()
        lines += [
            f"## {run.env} ({run.path})",
            "",
            "| seed | best member | final return | " + " | ".join(f"final {n}" for n in names) + " | population mean |",
            "|---|---:|---:|" + "---:|" * len(names) + "---:|",
        ]
        best, best_members = [], []
        for seed, g in f.groupby("seed"):
            top = g.loc[g["final_return"].idxmax()] if g["final_return"].notna().any() else None
            if top is None:
                lines.append(f"| {seed} | – | – |" + " – |" * len(names) + " – |")
                best.append(np.nan)
                continue
            best.append(top["final_return"])
            best_members.append(int(top["member"]))
            values = " | ".join(plots.format_cell(last.loc[top["member"], pbt.hparam_metric(n)]) for n in names)
            lines.append(
                f"| {seed} | {int(top['member'])} | {top['final_return']:.2f} | {values} | "
                f"{g['final_return'].mean():.2f} |"
            )
        best = np.asarray(best, float)
        copies = int((run.metrics[pbt.PARENT_METRIC] >= 0).sum())
        lines += ["", f"{copies} copies in all. Figures: `{path.name}`, `{path_lineage.name}`.", ""]
        grids = [g for g in fixed if same_population(run, g)]
        for k, grid in enumerate(grids):
            statistics = _grid_statistics(grid, names, fraction)
            stats = statistics["table"]
            path = out / f"pbt_against_grid_{name}{f'_{k + 1}' if k else ''}.png"
            _plot_against_grid(run, best_members, grid, statistics["curves"], path)
            written.append(path)
            lines += [
                f"Against the grid `{grid.path}` (curves: `{path.name}`):",
                "",
                "| | final return (mean ± std (seeds)) | PBT minus it [95 % CI] |",
                "|---|---:|---:|",
                f"| PBT, best member | {_cell(best)} | |",
            ]
            lines += [f"| grid, {label} | {_cell(v)} | {_difference(best, v)} |" for label, v in stats.items()]
            lines.append("")
    path = out / "pbt.md"
    atomic_write_text(path, "\n".join(lines))
    return written + [path]
