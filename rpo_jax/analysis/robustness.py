"""Robustness of trained policies to observation perturbations (SR^2L, Shen et al. 2020, §4-5, Fig. 3/4).

    rpo-jax robustness RUN_DIR --eps 0,0.02,0.05,0.1,0.2 --attacks random,mad,critic --episodes 50 \
        [--space normalized|raw] [--pgd-steps 10] [--seed 0] [--out DIR] [--overwrite] [--allow-incomplete]

evaluates every saved member of a finished sweep (``rpo-jax sweep``: ``config.yaml`` +
``checkpoint/``) with deterministic actions -- the policy's location ``loc`` clipped to the
action bounds -- while an adversary perturbs the observation the agent sees at every step.

Attacks (:mod:`rpo_jax.core.attacks`, a registry of pure functions; ``delta`` drawn afresh at every step,
``||delta||_inf <= eps``; see "Where eps lives")

* ``random`` -- ``delta ~ U([-eps, eps]^d)``, the paper's random disturbance;
* ``mad`` (maximal action difference) -- ``argmax_delta D_J(pi(.|s) || pi(.|s + delta))`` by
  :func:`rpo_jax.core.pgd.pgd_perturbation` (the search of ``pgd_maximize``: random start, ``--pgd-steps``
  signed-gradient steps of ``0.2 eps``, projection), with Jeffrey's divergence ``KL(p||q) + KL(q||p)``
  in closed form (:func:`rpo_jax.core.divergences.jeffreys_gaussian`) for Gaussian members and distrax's
  KLs (:func:`rpo_jax.core.divergences.jeffreys`) for Laplace / Gumbel members -- the paper's adversarial
  disturbance and the inner problem of the SR^2L regulariser;
* ``critic`` -- the same PGD minimising the member's learned value ``V(s + delta)`` (maximising ``-V``);
* ``fgsm`` -- one signed-gradient step of size eps on ``-V`` from ``delta = 0`` (no random start);
* ``none`` -- no perturbation (``delta = 0``); the exact reference used by the tests.

Where eps lives
---------------
``--space normalized`` (default): eps is measured in the agent's input space -- the space in
which the SR^2L regulariser (``train.smoothness``, ``hparams.sr_eps``) measures its ball. The raw
observation is normalised with the member's FROZEN trained statistics and clipped to
``+-train.obs_clip`` exactly as in training; ``delta`` is added to that vector and the result is
NOT clipped again, so the agent sees a point exactly within eps of its clean input (re-clipping
would silently shrink the perturbation of saturated coordinates).

``--space raw``: ``delta`` is applied to the raw observation with a per-dimension radius
``eps * s_d``: ``o' = o + s * delta``, ``||delta||_inf <= eps``, and the agent sees
``clip((o' - mean) / std, +-obs_clip)`` with its own statistics. ``s_d`` is FIXED for the whole
run directory: the mean over all members of their normaliser's std, so every agent faces the
same physical perturbation. Without observation normalisation (``train.normalize_observations:
false``) ``s = 1`` and both spaces coincide.

Episodes and keys
-----------------
``--episodes N`` parallel env slots per (member, eps, attack) run for the env's
``episode_length`` steps in one ``lax.scan``; an episode's return is the sum of rewards up to and
including its first ``done`` (terminated or truncated). All members, eps values, attacks and
slots run in ONE jitted call per static point (``vmap`` over members, eps -- traced -- and
attacks -- ``lax.switch`` on a vmapped index, which evaluates the listed attacks and selects), so
one compile per static point. Every lane uses the same keys (from ``--seed``): the same initial
states for each (member, eps, attack), and the same per-step noise (random start / uniform draw),
so ``eps = 0`` reproduces the unperturbed evaluation bit for bit for every attack and
attack-to-attack differences are not sampling noise. eps = 0 is always evaluated (added to
``--eps`` when missing) because the percentile plot needs the unattacked returns.

Sanity check (as SA-PPO does)
-----------------------------
Inside the jitted evaluation we track, over all steps, slots and dimensions, the maximum of
``|o_attacked - o_clean| / s - eps`` (``s = 1`` in normalised space) and the largest magnitude
involved; on the host every lane must satisfy ``excess <= 8 * float32_eps * max(1, magnitude)``
(a float32 rounding tolerance), otherwise :class:`RobustnessError` is raised (``main`` exits 2).

Action smoothness (CAPS, Mysore et al. 2021)
--------------------------------------------
For each slot, the action sequence ``a_0 .. a_{T-1}`` (``T = episode_length``; after the first
episode's end the last action is held, so episodes reaching the time limit -- all of Pendulum --
are used as they are), per action dimension::

    X = rfft(a),  M_i = |X_i| / T,  f_i = i / T  (i = 0 .. n-1, n = T // 2 + 1 bands, f_s = 1 per step)
    Sm = 2 / (n * f_s) * sum_i M_i * f_i

averaged over action dimensions and then over episodes (lower = smoother). A constant action
scores 0; a sinusoid of amplitude A at frequency f scores ``2 / n * (A / 2) * f``.

Diverged members and incomplete runs
------------------------------------
A member whose checkpoint has ``diverged_at >= 0`` (the trainer's iteration at which a parameter or
loss went non-finite; ``-1`` = never; a checkpoint without the entry has no diverged member) has NaN
parameters: its actions are NaN, the env zeroes what they produce, so its "returns" would read as
rewards of 0. Such members are still evaluated (one compiled program for all), but their
``return_mean``, ``return_std`` and ``action_smoothness`` are NaN in ``robustness.csv`` with
``diverged`` true, they are named in one printed line and in ``smoothness.md``, and they are left
out of the ball check, of the plotted means, of ``smoothness.md``'s means and of ``s`` (raw space).
``main`` refuses a run whose ``status.json`` does not say ``complete``
(:func:`rpo_jax.runs.rundir.check_complete`; a directory without one counts as incomplete) unless
``--allow-incomplete`` is given.

Outputs (``--out``, default ``RUN_DIR/robustness/``; every file written atomically)
-------------------------------------------------------------------------------
* ``robustness.csv`` -- one row per member x attack x eps: ``member, seed, <variant columns>,
  attack, eps, return_mean, return_std`` (ddof=0 over episodes), ``action_smoothness``,
  ``ball_excess`` (the sanity value above), ``diverged`` (see above);
* ``robustness_curves.png`` -- return vs eps per variant, mean ± std over seeds, one subplot per
  attack (SR^2L Fig. 4);
* ``percentiles.png`` -- sorted unattacked (eps = 0) returns of each variant's seeds against
  percentile 0..100 (SR^2L Fig. 3);
* ``smoothness.md`` -- Sm per variant, attack and eps (mean ± std over seeds);
* ``robustness.json`` -- the settings, ``s`` (raw space), timings, the diverged members and the
  largest ball excess of the others.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np

from rpo_jax.analysis.evaluation import (
    SPACES,
    RobustnessError,
    RobustnessResult,
    action_smoothness,
    attack_names,
    check_ball,
    evaluate,
    make_evaluator,
)
from rpo_jax.runs import plots
from rpo_jax.runs.finished import RunCheckpoint, RunError, diverged_at, load_run, raw_scale
from rpo_jax.runs.plots import format_cell as _fmt
from rpo_jax.runs.plots import save_figure as _save_figure

__all__ = [
    "attack_names",
    "SPACES",
    "RobustnessError",
    "RunCheckpoint",
    "RunError",
    "RobustnessResult",
    "action_smoothness",
    "check_ball",
    "make_evaluator",
    "load_run",
    "raw_scale",
    "diverged_at",
    "diverged_line",
    "evaluate",
    "results_table",
    "write_outputs",
]


# --------------------------------------------------------------------------------------------
# Tables, plots, markdown
# --------------------------------------------------------------------------------------------


def _unless(diverged: bool, value) -> float:
    """``float(value)``, or NaN for a diverged member, whose evaluation numbers are no result."""
    return math.nan if diverged else float(value)


def results_table(result: RobustnessResult):
    """The tidy table of ``robustness.csv``: one row per member x attack x eps.

    A diverged member's rows have ``diverged`` true and NaN ``return_mean``, ``return_std`` and
    ``action_smoothness``.
    """
    import pandas as pd

    rows = []
    for p, m in enumerate(result.members):
        diverged = bool(result.diverged[p])
        for a, attack in enumerate(result.attacks):
            for e, eps in enumerate(result.eps):
                r = result.returns[p, e, a].astype(np.float64)
                rows.append(
                    {
                        "member": m["member"],
                        "seed": m["seed"],
                        **{c: m[c] for c in result.variant_cols},
                        "attack": attack,
                        "eps": eps,
                        "return_mean": _unless(diverged, r.mean()),
                        "return_std": _unless(diverged, r.std()),
                        "action_smoothness": _unless(diverged, np.mean(result.smoothness[p, e, a].astype(np.float64))),
                        "ball_excess": float(result.excess[p, e, a]),
                        "diverged": diverged,
                    }
                )
    columns = [
        "member",
        "seed",
        *result.variant_cols,
        "attack",
        "eps",
        "return_mean",
        "return_std",
        "action_smoothness",
        "ball_excess",
        "diverged",
    ]
    return pd.DataFrame(rows, columns=columns)


def diverged_line(result: RobustnessResult) -> str | None:
    """One line naming the members that diverged in training (None if none did)."""
    names = []
    for m, at in zip(result.members, result.diverged_at):
        if at >= 0:
            who = ", ".join([f"seed {m['seed']}", *(f"{c}={_fmt(m[c])}" for c in result.variant_cols)])
            names.append(f"member {m['member']} ({who}) at iteration {int(at)}")
    if not names:
        return None
    return f"diverged in training (left out of means, NaN in robustness.csv): {'; '.join(names)}"


def healthy_rows(table):
    """The rows of ``table`` of members that did not diverge."""
    return table[~table["diverged"].astype(bool)]


def variant_groups(table, variant_cols: list[str]) -> list[tuple[str, Any]]:
    """``[(label, rows)]`` per variant in table order (one group "all members" without variant columns)."""
    if not variant_cols:
        return [("all members", table)]
    groups = []
    for key, rows in table.groupby(variant_cols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        groups.append((plots.variant_label(dict(zip(variant_cols, key))), rows))
    return groups


def _space_text(result: RobustnessResult) -> str:
    return "eps in normalised obs units" if result.space == "normalized" else "eps x fixed per-dim std, raw obs"


def plot_curves(table, result: RobustnessResult, path: pathlib.Path) -> None:
    """Return vs eps, mean ± std over healthy seeds (of each member's mean return), one panel per attack."""
    from matplotlib.figure import Figure

    attacks = list(result.attacks)
    groups = variant_groups(healthy_rows(table), result.variant_cols)
    cmap = plots.palette(len(groups))
    fig = Figure(figsize=(4.2 * len(attacks) + 1.0, 4.0), layout="constrained")
    axes = fig.subplots(1, len(attacks), sharey=True, squeeze=False)[0]
    for ax, attack in zip(axes, attacks):
        for i, (label, rows) in enumerate(groups):
            xs, mean, std, n = plots.member_band(rows[rows["attack"] == attack], "eps", "return_mean", ffill=False)
            plots.band(ax, xs, mean, std, color=cmap(i % cmap.N), label=f"{label} (n={n})", style="o-")
        ax.set_title(f"{attack} attack")
        ax.set_xlabel(f"eps ({_space_text(result)})")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("return (mean ± std over seeds)")
    axes[-1].legend(fontsize="small")
    fig.suptitle(f"{result.env}: return under observation perturbations ({result.episodes} episodes per point)")
    _save_figure(fig, path)


def _unattacked(table):
    """Each member's eps = 0 rows of the first attack (all attacks coincide at eps = 0)."""
    rows = table[(table["eps"] == 0.0)]
    return rows[rows["attack"] == rows["attack"].iloc[0]] if len(rows) else rows


def plot_percentiles(table, result: RobustnessResult, path: pathlib.Path) -> None:
    """Sorted unattacked returns of each variant's healthy members against percentile 0..100 (SR^2L Fig. 3)."""
    from matplotlib.figure import Figure

    clean = _unattacked(healthy_rows(table))
    groups = variant_groups(clean, result.variant_cols)
    cmap = plots.palette(len(groups))
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, rows) in enumerate(groups):
        values = np.sort(rows["return_mean"].to_numpy(float))
        xs = np.linspace(0.0, 100.0, len(values)) if len(values) > 1 else np.array([50.0])
        ax.plot(
            xs, values, "o-", color=cmap(i % cmap.N), linewidth=1.5, markersize=4, label=f"{label} (n={len(values)})"
        )
    ax.set_xlabel("percentile of seeds")
    ax.set_ylabel(f"unattacked return (mean of {result.episodes} episodes)")
    ax.set_xlim(-3, 103)
    ax.set_title(f"{result.env}: percentile plot of members' returns (eps = 0)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    _save_figure(fig, path)


def smoothness_markdown(table, result: RobustnessResult) -> str:
    """``smoothness.md``: CAPS Sm per variant x attack (rows) and eps (columns), mean ± std over healthy seeds."""
    lines = [
        f"# Action smoothness under observation perturbations: {result.env}",
        "",
        "CAPS' frequency-weighted FFT amplitude (Mysore et al. 2021), lower = smoother: per action "
        "dimension `M_i = |rfft(a)_i| / T` at `f_i = i / T` (1 sample per step, `T` = episode length, "
        "the last action held after an early end), `Sm = 2 / (n f_s) * sum_i M_i f_i` with "
        "`n = T // 2 + 1` bands; averaged over dimensions and episodes, then mean ± std over seeds.",
        f"Space: {result.space} ({_space_text(result)}); {result.episodes} episodes per point; "
        f"PGD {result.pgd_steps} steps of 0.2 eps.",
    ]
    line = diverged_line(result)
    if line is not None:
        lines.append(f"Members {line}.")
    lines += [
        "",
        "| variant | attack | " + " | ".join(f"eps={_fmt(e)}" for e in result.eps) + " |",
        "|---|---|" + "---:|" * len(result.eps),
    ]
    for label, rows in variant_groups(healthy_rows(table), result.variant_cols):
        for attack in result.attacks:
            cells = []
            for eps in result.eps:
                values = rows[(rows["attack"] == attack) & (rows["eps"] == eps)]["action_smoothness"].to_numpy(float)
                cells.append(f"{values.mean():.4g} ± {values.std():.2g} (n={len(values)})")
            lines.append(f"| {label} | {attack} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def max_healthy_excess(result: RobustnessResult) -> float | None:
    """The largest ball excess over members that did not diverge (None if every member diverged)."""
    excess = result.excess[~result.diverged]
    return float(np.max(excess)) if excess.size else None


def write_outputs(out_dir, result: RobustnessResult) -> list[pathlib.Path]:
    """Writes every output file (atomically) into the existing directory ``out_dir``."""
    from rpo_jax.runs.results import atomic_write_text, write_table

    out = pathlib.Path(out_dir)
    table = results_table(result)
    paths = [
        out / n
        for n in ("robustness.csv", "robustness_curves.png", "percentiles.png", "smoothness.md", "robustness.json")
    ]
    write_table(table, paths[0])
    plot_curves(table, result, paths[1])
    plot_percentiles(table, result, paths[2])
    atomic_write_text(paths[3], smoothness_markdown(table, result))
    summary = {
        "env": result.env,
        "space": result.space,
        "eps": result.eps,
        "attacks": list(result.attacks),
        "episodes": result.episodes,
        "pgd_steps": result.pgd_steps,
        "seed": result.seed,
        "members": len(result.members),
        "diverged_members": [m["member"] for m, bad in zip(result.members, result.diverged) if bad],
        "scale": [float(s) for s in result.scale],
        "max_ball_excess": max_healthy_excess(result),
        "compile_seconds": round(result.compile_seconds, 2),
        "run_seconds": round(result.run_seconds, 2),
    }
    atomic_write_text(paths[4], json.dumps(summary, indent=2) + "\n")
    return paths
