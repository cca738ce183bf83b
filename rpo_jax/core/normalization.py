"""Running observation normalisation and return-based reward scaling, as gym's wrappers do them.

CleanRL wraps every env in gymnasium's ``NormalizeObservation`` and ``NormalizeReward``
(``gymnasium/wrappers/normalize.py``, 0.29.1); this module computes the same quantities inside
the jitted loop, one normaliser per population member (never shared across seeds):

* :class:`RunningMeanStd` -- gym's running moments: mean 0, var 1, count 1e-4 at the start, and
  Chan et al.'s parallel update ``mean += delta * n_b / n``, ``var = (var * n_a + var_b * n_b +
  delta^2 * n_a * n_b / n) / n``. gym keeps them in float64. In float32, adding one sample's share
  (``1 / n``) to moments of millions of samples loses most of its digits (the std drifts ~0.5% over
  8M steps), so each statistic is kept in two parts: ``settled`` (everything before this iteration)
  and ``recent`` (this iteration's rollout, small counts). Every step uses their exact union; the
  recent part is folded into the settled one once per iteration (:func:`fold`), where its share is
  large. That matches float64 to ~1e-5 relative after millions of steps (``tests/test_normalization.py``).
* Observations: every observation the env returns -- the terminal observation of an episode that
  ends, then the fresh start that replaces it -- first updates the statistics and is then mapped to
  ``clip((o - mean) / sqrt(var + 1e-8), -c, c)``.
* Rewards: a discounted return ``G <- G * gamma * (1 - terminated) + r`` (not reset by a time-limit
  cut, exactly as gym's recursion), its running variance is updated and the agent is trained on
  ``clip(r / sqrt(var(G) + 1e-8), -c, c)``. The raw rewards are still what the episode metrics report.

``per_env`` (``train.normalize_per_env``): CleanRL's vector env wraps each env separately, so each
env keeps its own statistics (a leading ``[num_envs]`` axis here); ``False`` pools a member's envs
into one set of statistics, as Brax does. The two coincide at ``num_envs = 1``. Evaluation of a
trained member (robustness, loading) uses :func:`evaluation_stats`: the per-env statistics merged.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

EPSILON = 1e-8  # gym: sqrt(var + epsilon)
INITIAL_COUNT = 1e-4  # gym: RunningMeanStd(epsilon=1e-4)


@flax.struct.dataclass
class RunningMeanStd:
    """Running mean / variance (ddof 0) / count of a stream of arrays shaped like ``mean``."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...], *, empty: bool = False) -> RunningMeanStd:
        """gym's start (mean 0, var 1, count 1e-4), or no samples at all (``empty``)."""
        var = jnp.zeros(shape, jnp.float32) if empty else jnp.ones(shape, jnp.float32)
        count = 0.0 if empty else INITIAL_COUNT
        return cls(mean=jnp.zeros(shape, jnp.float32), var=var, count=jnp.full((), count, jnp.float32))

    @property
    def std(self) -> jax.Array:
        return jnp.sqrt(self.var + EPSILON)

    def combine(self, other: RunningMeanStd) -> RunningMeanStd:
        """The moments of both streams together (Chan et al.): with ``n = n_a + n_b``,
        ``mean += delta n_b / n`` and ``var += ((var_b - var) n_b + delta^2 n_a n_b / n) / n``.

        Two empty streams stay empty.
        """
        total = self.count + other.count
        safe_total = jnp.where(total > 0, total, 1.0)
        delta = other.mean - self.mean
        # Every increment ends in a division: a product added to a running value may be fused into an
        # FMA (XLA's CPU backend allows it) in one compiled program and not in another, which would make
        # a member's statistics depend on the population it is vmapped with.
        mean = self.mean + (delta * other.count) / safe_total
        spread = (delta * delta) * (self.count * other.count / safe_total)
        var = self.var + ((other.var - self.var) * other.count + spread) / safe_total
        return RunningMeanStd(mean, var, total)

    def update(self, batch: jax.Array, weights: jax.Array | None = None) -> RunningMeanStd:
        """Adds the samples ``batch[i]`` (leading axis) with 0/1 ``weights`` (default all 1)."""
        if weights is None:
            weights = jnp.ones(batch.shape[:1], jnp.float32)
        weights = weights.astype(jnp.float32)
        w_b = weights.reshape(weights.shape + (1,) * (batch.ndim - 1))
        n_b = jnp.sum(weights)
        safe_n = jnp.maximum(n_b, 1.0)
        batch_mean = jnp.sum(w_b * batch, axis=0) / safe_n
        batch_var = jnp.sum(w_b * (batch - batch_mean) ** 2, axis=0) / safe_n
        return self.combine(RunningMeanStd(batch_mean, batch_var, n_b))

    def normalize(self, x: jax.Array, clip: float) -> jax.Array:
        """``clip((x - mean) / sqrt(var + 1e-8), -clip, clip)``."""
        return jnp.clip((x - self.mean) / self.std, -clip, clip)


def merge(stats: RunningMeanStd) -> RunningMeanStd:
    """Merges statistics stacked on a leading axis into one set (the moments of the union)."""
    total = jnp.sum(stats.count)
    weight = (stats.count / total).reshape((-1,) + (1,) * (stats.mean.ndim - 1))
    mean = jnp.sum(weight * stats.mean, axis=0)
    var = jnp.sum(weight * (stats.var + (stats.mean - mean) ** 2), axis=0)
    return RunningMeanStd(mean, var, total)


@flax.struct.dataclass
class Moments:
    """One statistic in two parts: ``settled`` (before this iteration) and ``recent`` (since)."""

    settled: RunningMeanStd
    recent: RunningMeanStd

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> Moments:
        return cls(settled=RunningMeanStd.create(shape), recent=RunningMeanStd.create(shape, empty=True))

    @property
    def current(self) -> RunningMeanStd:
        """The statistics of every sample so far."""
        return self.settled.combine(self.recent)

    def update(self, batch: jax.Array, weights: jax.Array | None = None) -> Moments:
        return self.replace(recent=self.recent.update(batch, weights))

    def fold(self) -> Moments:
        return Moments(settled=self.current, recent=RunningMeanStd.create(self.recent.mean.shape, empty=True))


@flax.struct.dataclass
class NormalizerState:
    obs: Moments  # per_env: leading [num_envs] axis
    ret: Moments  # statistics of the discounted return G (shape [] or [num_envs])
    discounted_return: jax.Array  # G, [num_envs]
    per_env: bool = flax.struct.field(pytree_node=False, default=False)


def _stacked(num_envs: int, stats: Moments) -> Moments:
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs,) + x.shape), stats)


def init(obs_size: int, num_envs: int, per_env: bool = False) -> NormalizerState:
    obs = Moments.create((obs_size,))
    ret = Moments.create(())
    if per_env:
        obs, ret = _stacked(num_envs, obs), _stacked(num_envs, ret)
    return NormalizerState(obs=obs, ret=ret, discounted_return=jnp.zeros((num_envs,), jnp.float32), per_env=per_env)


def _each_env(per_env: bool, fn):
    """``fn`` over the leading ``[num_envs]`` axis of per-env statistics, or ``fn`` itself for pooled ones."""
    return jax.vmap(fn) if per_env else fn


def _update(stats: Moments, values: jax.Array, weights: jax.Array | None, per_env: bool) -> Moments:
    """Adds one value per env (``values`` ``[num_envs, ...]``) to pooled or per-env statistics."""
    if weights is None:
        weights = jnp.ones(values.shape[:1], jnp.float32)
    if not per_env:
        return stats.update(values, weights)
    return jax.vmap(lambda s, v, w: s.update(v[None], w[None]))(stats, values, weights)


def update_observations(state: NormalizerState, obs: jax.Array, weights: jax.Array | None = None) -> NormalizerState:
    """Adds one observation per env ``[num_envs, obs_size]`` (where ``weights`` is 1) to the statistics."""
    return state.replace(obs=_update(state.obs, obs, weights, state.per_env))


def normalize_observations(state: NormalizerState, obs: jax.Array, clip: float) -> jax.Array:
    """The agent's view of one observation per env ``[num_envs, obs_size]``, with each env's statistics."""
    return _each_env(state.per_env, lambda s, o: s.current.normalize(o, clip))(state.obs, obs)


def evaluation_stats(state: NormalizerState) -> RunningMeanStd:
    """One set of observation statistics for a trained member: the per-env ones merged, or the pooled ones."""
    return merge(jax.vmap(lambda m: m.current)(state.obs)) if state.per_env else state.obs.current


def normalize_for_evaluation(state: NormalizerState, obs: jax.Array, clip: float) -> jax.Array:
    """Observations of any leading shape mapped with :func:`evaluation_stats`."""
    return evaluation_stats(state).normalize(obs, clip)


def fold(state: NormalizerState) -> NormalizerState:
    """Folds the recent samples into the settled statistics (once per iteration; values unchanged)."""
    fold_one = _each_env(state.per_env, Moments.fold)
    return state.replace(obs=fold_one(state.obs), ret=fold_one(state.ret))


def scale_rewards(
    state: NormalizerState,
    rewards: jax.Array,
    terminated: jax.Array,
    gamma: jax.Array | float,
    clip: float,
) -> tuple[NormalizerState, jax.Array]:
    """gym's ``NormalizeReward`` + CleanRL's clip: ``clip(r / sqrt(var(G) + 1e-8), -clip, clip)``.

    Args:
      state: normaliser state with ``discounted_return`` shaped ``[num_envs]``.
      rewards: raw rewards ``[num_envs]`` of this step.
      terminated: the episode terminated at this step ``[num_envs]``. As in gym,
        ``G <- G * gamma * (1 - terminated) + r`` -- a time-limit cut does not reset G.
      gamma: discount of the tracked return.
      clip: bound on the scaled reward.
    """
    discounted = state.discounted_return * gamma * (1.0 - terminated.astype(jnp.float32)) + rewards
    ret = _update(state.ret, discounted, None, state.per_env)
    std = _each_env(state.per_env, lambda m: m.current.std)(ret)
    scaled = jnp.clip(rewards / std, -clip, clip)
    return state.replace(ret=ret, discounted_return=discounted), scaled
