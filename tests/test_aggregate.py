"""Tests for rpo_jax.analysis.aggregate: IQM, stratified bootstrap, probability of improvement."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from rpo_jax.analysis import aggregate as agg

# ----------------------------------------------------------------------------- iqm


def test_iqm_of_one_to_eight_is_mean_of_middle_half():
    # 1..8: cut 1,2 and 7,8 -> mean(3,4,5,6) = 4.5
    assert agg.iqm(np.arange(1, 9)) == pytest.approx(4.5)


def test_iqm_ignores_outliers_and_shape():
    scores = np.array([[0, 0], [0, 0], [1, 1], [1, 100]], dtype=float)  # 8 values
    # sorted: 0 0 0 0 1 1 1 100 -> middle half 0 0 1 1
    assert agg.iqm(scores) == pytest.approx(0.5)
    assert agg.iqm(scores.T) == pytest.approx(0.5)
    assert np.mean(scores) > 10  # the plain mean would be dominated by the outlier


def test_iqm_matches_scipy_trim_mean_and_skips_nan():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 3))
    assert agg.iqm(x) == pytest.approx(scipy.stats.trim_mean(x.ravel(), 0.25))
    with_nan = np.vstack([x, np.full((2, 3), np.nan)])
    assert agg.iqm(with_nan) == pytest.approx(agg.iqm(x))


def test_iqm_of_nothing_raises():
    with pytest.raises(ValueError):
        agg.iqm(np.array([np.nan, np.nan]))


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_of_constant_is_degenerate():
    point, low, high = agg.stratified_bootstrap_ci(np.full((5, 3), 2.5), agg.iqm, reps=200)
    assert point == low == high == pytest.approx(2.5)


def test_bootstrap_ci_contains_point_and_shrinks_with_more_runs():
    rng = np.random.default_rng(0)
    few = rng.normal(size=(5, 4))
    many = rng.normal(size=(400, 4))
    p1, l1, h1 = agg.stratified_bootstrap_ci(few, agg.iqm, reps=500, seed=3)
    p2, l2, h2 = agg.stratified_bootstrap_ci(many, agg.iqm, reps=500, seed=3)
    assert l1 <= p1 <= h1 and l2 <= p2 <= h2
    assert l1 < h1
    assert (h2 - l2) < 0.5 * (h1 - l1)


def test_bootstrap_fast_iqm_path_equals_generic_path():
    x = np.random.default_rng(6).normal(size=(9, 3))
    x[7:, 1] = np.nan  # task 1 has fewer runs
    fast = agg.stratified_bootstrap_ci(x, agg.iqm, reps=300, seed=2)
    slow = agg.stratified_bootstrap_ci(x, lambda a: agg.iqm(a), reps=300, seed=2)
    np.testing.assert_allclose(fast, slow)
    assert fast[1] < fast[0] < fast[2]


def test_bootstrap_is_stratified_by_task():
    # task 0 always 0, task 1 always 1. Resampling within tasks keeps half zeros, half ones
    # in every replicate, so the mean never moves; pooled resampling would spread it.
    scores = np.column_stack([np.zeros(6), np.ones(6)])
    point, low, high = agg.stratified_bootstrap_ci(scores, np.mean, reps=300)
    assert point == low == high == pytest.approx(0.5)


def test_bootstrap_handles_nan_padding_for_missing_runs():
    scores = np.array([[1.0, 5.0], [1.0, np.nan], [1.0, np.nan]])
    # every replicate: three 1s in task 0 and one 5 in task 1 -> nanmean = 8 / 4
    point, low, high = agg.stratified_bootstrap_ci(scores, np.nanmean, reps=100)
    assert point == low == high == pytest.approx(2.0)


def test_bootstrap_is_deterministic_given_seed_and_checks_args():
    x = np.random.default_rng(5).normal(size=(6, 2))
    assert agg.stratified_bootstrap_ci(x, agg.iqm, reps=100, seed=7) == agg.stratified_bootstrap_ci(
        x, agg.iqm, reps=100, seed=7
    )
    with pytest.raises(ValueError):
        agg.stratified_bootstrap_ci(x, agg.iqm, confidence=1.5)
    with pytest.raises(ValueError):
        agg.stratified_bootstrap_ci(np.zeros((2, 2, 2)), agg.iqm)


# ----------------------------------------------------------------------------- P(X > Y)


def test_probability_of_improvement_extremes():
    x = np.array([[5.0, 10.0], [6.0, 11.0]])
    y = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    assert agg.probability_of_improvement(x, y) == 1.0
    assert agg.probability_of_improvement(y, x) == 0.0
    assert agg.probability_of_improvement(x, x) == 0.5


def test_probability_of_improvement_ties_count_half_and_average_over_tasks():
    # one task: pairs (1,2) lose, (2,2) tie -> (0 + 0.5) / 2
    assert agg.probability_of_improvement(np.array([1.0, 2.0]), np.array([2.0])) == 0.25
    # task 0: X always better (1.0), task 1: X always worse (0.0) -> 0.5
    x = np.array([[1.0, 0.0]])
    y = np.array([[0.0, 1.0]])
    assert agg.probability_of_improvement(x, y) == 0.5


def test_probability_of_improvement_matches_mann_whitney_and_is_complementary():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=(7, 3)).astype(float)  # integers -> many ties
    y = rng.integers(0, 5, size=(4, 3)).astype(float)
    expected = np.mean([scipy.stats.mannwhitneyu(x[:, j], y[:, j]).statistic / (7 * 4) for j in range(3)])
    p = agg.probability_of_improvement(x, y)
    assert p == pytest.approx(expected)
    assert p + agg.probability_of_improvement(y, x) == pytest.approx(1.0)


def test_probability_of_improvement_task_mismatch_raises():
    with pytest.raises(ValueError):
        agg.probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 3)))


def test_probability_of_improvement_ci():
    x = np.array([[5.0], [6.0], [7.0]])
    y = np.array([[1.0], [2.0]])
    assert agg.probability_of_improvement_ci(x, y, reps=100) == (1.0, 1.0, 1.0)
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    p, lo, hi = agg.probability_of_improvement_ci(a, b, reps=300)
    assert 0.0 <= lo <= p <= hi <= 1.0 and lo < hi


# ----------------------------------------------------------------------------- normalise


def test_normalize_scores_per_task():
    scores = np.array([[0.0, 10.0], [5.0, 30.0], [10.0, 20.0]])
    out = agg.normalize_scores(scores, scores.min(axis=0), scores.max(axis=0))
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.5, 1.0], [1.0, 0.5]])


def test_normalize_scores_degenerate_range_and_nan():
    out = agg.normalize_scores(np.array([[3.0, 1.0], [np.nan, 2.0]]), [3.0, 0.0], [3.0, 2.0])
    np.testing.assert_allclose(out, [[0.0, 0.5], [np.nan, 1.0]])


def test_paired_difference_ci_pairs_by_index():
    from rpo_jax.analysis.aggregate import paired_difference_ci

    x = np.array([100.0, 200.0, 300.0, np.nan])
    y = x - np.array([1.0, 2.0, 3.0, 0.0])  # each pair differs by 1-3, the samples by far more
    point, low, high = paired_difference_ci(x, y)
    assert point == pytest.approx(2.0) and 1.0 <= low <= 2.0 <= high <= 3.0
    with pytest.raises(ValueError):
        paired_difference_ci(x, y[:2])
