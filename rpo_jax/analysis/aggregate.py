"""Aggregate statistics across tasks for few-run RL results (Agarwal et al., 2021).

Small NumPy/SciPy implementations of the estimators used by :mod:`rpo_jax.analysis.report`:

* :func:`iqm` -- interquartile mean (25 %-75 % trimmed mean of all scores);
* :func:`stratified_bootstrap_ci` -- percentile confidence interval of any statistic of a
  ``[runs, tasks]`` score matrix, resampling runs independently within each task;
* :func:`probability_of_improvement` -- ``P(X > Y)`` averaged over tasks (Mann-Whitney U / mn,
  ties count 1/2), with :func:`probability_of_improvement_ci` for its bootstrap interval;
* :func:`normalize_scores` -- per-task min-max normalisation.

Why not ``rliable``: rliable 1.2.0 does resolve against numpy 2.4 / scipy 1.17 here, but it
needs ``arch`` (and through it ``statsmodels``, ``patsy``, ``formulaic``, ``narwhals``,
``interface_meta``) plus ``seaborn`` and ``absl-py`` -- six packages not otherwise needed, for
roughly fifty lines of NumPy -- and this project pins its dependency set in ``pyproject.toml``.
The estimators below follow rliable's definitions (IQM = ``scipy.stats.trim_mean(x, 0.25)``
over all runs and tasks; stratified bootstrap with percentile intervals; probability of
improvement as in rliable's ``probability_of_improvement``) so numbers are comparable.

Missing runs: a score matrix may hold NaN where a task has fewer runs than others. NaN entries
are treated as absent everywhere in this module (ignored by :func:`iqm`, never drawn by the
bootstrap, dropped by :func:`probability_of_improvement`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "iqm",
    "stratified_bootstrap_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "normalize_scores",
]


def _as_matrix(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    a = np.asarray(scores, dtype=float)
    if a.ndim == 1:
        a = a[:, None]  # a single task
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape [runs, tasks], got shape {a.shape}")
    return a


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all (non-NaN) values in ``scores``, whatever its shape.

    Same as ``scipy.stats.trim_mean(values, 0.25)``: the lowest and highest
    ``int(0.25 * n)`` values are cut and the rest averaged. E.g. ``iqm(1..8) == 4.5``.

    Raises:
      ValueError: no non-NaN values.
    """
    values = np.asarray(scores, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("iqm of an empty set of scores")
    return float(_iqm_rows(values[None, :], values.size)[0])


def _iqm_rows(rows: np.ndarray, n_valid: int) -> np.ndarray:
    """IQM of each row of ``[k, m]`` whose first-sorted ``n_valid`` entries are not NaN.

    Same cut as ``scipy.stats.trim_mean(x, 0.25)``: ``int(0.25 * n)`` values off each end.
    (Implemented directly because scipy's per-call overhead dominates 2000 bootstrap calls.)
    """
    cut = int(0.25 * n_valid)
    ordered = np.sort(rows, axis=1)  # NaN sorts last
    return ordered[:, cut : n_valid - cut].mean(axis=1)


def _check_confidence(confidence: float, reps: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")


def _percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap ``replicates`` (percentile method)."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return low, high


def _resample_within_tasks(a: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``[reps, runs, tasks]`` bootstrap replicates of ``a``, runs drawn within each task.

    Task ``j`` with ``n_j`` non-NaN runs gets ``n_j`` draws (with replacement) from those
    runs; its remaining rows stay NaN.
    """
    runs, tasks = a.shape
    out = np.full((reps, runs, tasks), np.nan)
    for j in range(tasks):
        values = a[:, j][~np.isnan(a[:, j])]
        if values.size == 0:
            continue
        idx = rng.integers(0, values.size, size=(reps, values.size))
        out[:, : values.size, j] = values[idx]
    return out


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of ``statistic(scores)``.

    Each of ``reps`` replicates resamples, independently for every task (column), that
    task's runs with replacement (a stratified bootstrap: every replicate keeps each task's
    number of runs). The interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` percentiles of the replicate statistics.

    Args:
      scores: ``[runs, tasks]`` (a 1-D array is one task). NaN marks a missing run.
      statistic: maps a ``[runs, tasks]`` array (possibly holding NaN padding) to a float,
        e.g. :func:`iqm`.
      reps: number of bootstrap replicates.
      confidence: interval coverage, in (0, 1).
      seed: seed of the NumPy generator; the result is deterministic given the seed.

    Returns:
      ``(point, low, high)`` with ``point = statistic(scores)``.
    """
    _check_confidence(confidence, reps)
    a = _as_matrix(scores)
    if np.all(np.isnan(a)):
        raise ValueError("stratified_bootstrap_ci needs at least one non-NaN score")
    point = float(statistic(a))
    rng = np.random.default_rng(seed)
    replicates = _resample_within_tasks(a, reps, rng)
    if statistic is iqm:  # vectorised: every replicate has the same number of non-NaN runs
        n_valid = int(np.sum(~np.isnan(a)))
        stats = _iqm_rows(replicates.reshape(reps, -1), n_valid)
    else:
        stats = np.array([statistic(r) for r in replicates], dtype=float)
    low, high = _percentile_interval(stats, confidence)
    return point, float(low), float(high)


def mean_difference_ci(
    x: np.ndarray, y: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``mean(x) - mean(y)`` of two independent samples (e.g. two variants' seeds on one task) and its
    percentile bootstrap interval: each replicate resamples ``x`` and ``y`` apart, with replacement.

    Returns:
      ``(point, low, high)``; NaN entries are dropped first.
    """
    _check_confidence(confidence, reps)
    x, y = (np.asarray(v, dtype=float).reshape(-1) for v in (x, y))
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0:
        raise ValueError("mean_difference_ci needs at least one non-NaN value in each sample")
    rng = np.random.default_rng(seed)
    diffs = x[rng.integers(0, x.size, (reps, x.size))].mean(1) - y[rng.integers(0, y.size, (reps, y.size))].mean(1)
    low, high = _percentile_interval(diffs, confidence)
    return float(x.mean() - y.mean()), float(low), float(high)


def paired_difference_ci(
    x: np.ndarray, y: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``mean(x - y)`` of paired samples (e.g. two methods run from the same seeds) and its percentile
    bootstrap interval: each replicate resamples the pairs, with replacement.

    Returns:
      ``(point, low, high)``; pairs with a NaN are dropped first.
    """
    _check_confidence(confidence, reps)
    x, y = (np.asarray(v, dtype=float).reshape(-1) for v in (x, y))
    if x.shape != y.shape:
        raise ValueError(f"paired_difference_ci needs samples of one length, got {x.size} and {y.size}")
    d = (x - y)[~(np.isnan(x) | np.isnan(y))]
    if d.size == 0:
        raise ValueError("paired_difference_ci needs at least one pair without NaN")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (reps, d.size))].mean(1)
    low, high = _percentile_interval(means, confidence)
    return float(d.mean()), float(low), float(high)


def _task_probability(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 for one task, over all pairs."""
    gt = (x[:, None] > y[None, :]).mean()
    eq = (x[:, None] == y[None, :]).mean()
    return float(gt + 0.5 * eq)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Average over tasks of ``P(X > Y)``, ties counting one half.

    For task ``j`` this is the Mann-Whitney ``U / (m n)`` of the ``m`` runs of ``x[:, j]``
    against the ``n`` runs of ``y[:, j]``; the result is its mean over tasks. 1.0 when every
    run of X beats every run of Y, 0.5 for identical samples.

    Args:
      x: ``[runs_x, tasks]`` scores of algorithm X (a 1-D array is one task).
      y: ``[runs_y, tasks]`` scores of algorithm Y, same number of tasks.

    Raises:
      ValueError: different numbers of tasks, or a task with no non-NaN run in x or y.
    """
    a, b = _as_matrix(x, "x"), _as_matrix(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} tasks but y has {b.shape[1]}")
    probs = []
    for j in range(a.shape[1]):
        xj, yj = a[:, j][~np.isnan(a[:, j])], b[:, j][~np.isnan(b[:, j])]
        if xj.size == 0 or yj.size == 0:
            raise ValueError(f"task {j} has no scores in {'x' if xj.size == 0 else 'y'}")
        probs.append(_task_probability(xj, yj))
    return float(np.mean(probs))


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """:func:`probability_of_improvement` with a stratified bootstrap percentile interval.

    Runs of ``x`` and of ``y`` are resampled independently, within each task.

    Returns:
      ``(point, low, high)``.
    """
    _check_confidence(confidence, reps)
    a, b = _as_matrix(x, "x"), _as_matrix(y, "y")
    point = probability_of_improvement(a, b)
    rng = np.random.default_rng(seed)
    per_task = []
    for j in range(a.shape[1]):  # vectorised over replicates, one task at a time
        xj, yj = a[:, j][~np.isnan(a[:, j])], b[:, j][~np.isnan(b[:, j])]
        rx = xj[rng.integers(0, xj.size, size=(reps, xj.size))][:, :, None]
        ry = yj[rng.integers(0, yj.size, size=(reps, yj.size))][:, None, :]
        per_task.append((rx > ry).mean(axis=(1, 2)) + 0.5 * (rx == ry).mean(axis=(1, 2)))
    stats = np.mean(per_task, axis=0)
    low, high = _percentile_interval(stats, confidence)
    return point, float(low), float(high)


def normalize_scores(scores, low, high) -> np.ndarray:
    """Per-task min-max normalisation ``(scores - low) / (high - low)``.

    ``low`` and ``high`` broadcast against the last (task) axis of ``scores``, e.g. the
    minimum and maximum of each task over all variants and runs. A task whose range is empty
    (``high == low``) maps to 0.0 (every score of it is then equal, so the value is
    arbitrary but finite); NaN scores stay NaN.
    """
    s = np.asarray(scores, dtype=float)
    lo = np.asarray(low, dtype=float)
    hi = np.asarray(high, dtype=float)
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (s - lo) / span
    degenerate = np.broadcast_to(span == 0, out.shape)
    return np.where(degenerate & ~np.isnan(s), 0.0, out)
