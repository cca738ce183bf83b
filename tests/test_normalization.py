"""gym-exact running statistics in float32 (rpo_jax.core.normalization)."""

import jax
import jax.numpy as jnp
import numpy as np
from brax.training.acme import running_statistics

from rpo_jax.core import normalization


def _gym_moments(chunks):
    """gymnasium 0.29.1 RunningMeanStd in float64 (mean 0, var 1, count 1e-4; Chan's update)."""
    mean, var, count = np.zeros(chunks.shape[-1]), np.ones(chunks.shape[-1]), 1e-4
    for batch in chunks.astype(np.float64):
        b_mean, b_var, b_count = batch.mean(0), batch.var(0), batch.shape[0]
        delta, tot = b_mean - mean, count + b_count
        mean = mean + delta * b_count / tot
        var = (var * count + b_var * b_count + delta**2 * count * b_count / tot) / tot
        count = tot
    return mean, var, count


def _stream(num_batches, batch, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 50.0, 1e-3])[:dim]
    return (rng.standard_normal((num_batches, batch, dim)) * scale + np.array([3.0, -200.0, 0.01])[:dim]).astype(
        np.float32
    )


def _scan_updates(stream, fold_every):
    """One observation per step through ``update_observations``, folded every ``fold_every`` steps."""

    def iteration(state, block):
        state, _ = jax.lax.scan(lambda s, x: (normalization.update_observations(s, x[None]), None), state, block)
        return normalization.fold(state), None

    blocks = stream.reshape((-1, fold_every) + stream.shape[1:])
    state, _ = jax.jit(lambda s, b: jax.lax.scan(iteration, s, b))(normalization.init(stream.shape[-1], 1), blocks)
    return normalization.evaluation_stats(state)


def test_small_stream_matches_gym_float64():
    chunks = _stream(50, 4)
    mean, var, count = _gym_moments(chunks)
    state = normalization.init(3, 4)
    for i, batch in enumerate(chunks):
        state = normalization.update_observations(state, jnp.asarray(batch))
        state = normalization.fold(state) if i % 7 == 6 else state
    stats = normalization.evaluation_stats(state)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-5, atol=1e-6)
    # atol: float32 rounding of gym's start (var 1) is ~6e-8 absolute, diluted as samples come in; it only
    # shows in a variance as tiny as dimension 2's (3.6e-6).
    np.testing.assert_allclose(stats.var, var, rtol=1e-5, atol=5e-8)
    np.testing.assert_allclose(float(stats.count), count, rtol=1e-7)


def test_folding_changes_no_value():
    state = normalization.init(3, 4)
    state = normalization.update_observations(state, jnp.asarray(_stream(1, 4)[0]))
    before = normalization.evaluation_stats(state)
    after = normalization.evaluation_stats(normalization.fold(state))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(a, b)


def test_long_stream_keeps_float64_accuracy_where_plain_float32_drifts():
    """2M single-sample updates (one env, 2M steps, a fold per 2048-step rollout): within 1e-5 of float64."""
    n = 2048 * 1000
    stream = _stream(n, 1, dim=2, seed=1)[:, 0]
    mean, var, _ = _gym_moments(stream.reshape(1000, -1, 2))  # the same moments (Chan's update is exact)
    stats = _scan_updates(stream, 2048)
    np.testing.assert_allclose(stats.std, np.sqrt(var + 1e-8), rtol=1e-5)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-5, atol=1e-4)

    def brax(state, x):  # the float32 Welford we used before, for contrast: it drifts measurably
        return running_statistics.update(state, x[None], std_min_value=1e-4), None

    state, _ = jax.jit(lambda s, xs: jax.lax.scan(brax, s, xs))(
        running_statistics.init_state(jnp.zeros((2,), jnp.float32)), stream
    )
    assert np.max(np.abs(np.asarray(state.std) / np.sqrt(var) - 1)) > 1e-4


def test_zero_weights_leave_statistics_unchanged_and_weights_select_samples():
    stats = normalization.RunningMeanStd.create((2,)).update(jnp.asarray([[1.0, 2.0], [3.0, 5.0]]))
    same = stats.update(jnp.asarray([[100.0, 100.0]]), jnp.zeros((1,)))
    np.testing.assert_array_equal(same.mean, stats.mean)
    np.testing.assert_array_equal(same.var, stats.var)
    picked = stats.update(jnp.asarray([[7.0, 7.0], [100.0, 100.0]]), jnp.asarray([1.0, 0.0]))
    alone = stats.update(jnp.asarray([[7.0, 7.0]]))
    np.testing.assert_allclose(picked.mean, alone.mean, rtol=1e-6)
    np.testing.assert_allclose(picked.var, alone.var, rtol=1e-6)


def test_per_env_statistics_are_each_envs_own_and_merge_to_the_pooled_ones():
    chunks = _stream(40, 3, dim=3, seed=2)  # [steps, envs, obs]
    per_env = normalization.init(3, 3, per_env=True)
    pooled = normalization.init(3, 3, per_env=False)
    for batch in chunks:
        per_env = normalization.update_observations(per_env, jnp.asarray(batch))
        pooled = normalization.update_observations(pooled, jnp.asarray(batch))
    current = jax.vmap(lambda m: m.current)(per_env.obs)
    for env in range(3):
        mean, var, _ = _gym_moments(chunks[:, env : env + 1])
        np.testing.assert_allclose(current.mean[env], mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(current.var[env], var, rtol=1e-5, atol=2e-7)  # ulp(1): gym starts at var 1
    merged = normalization.evaluation_stats(per_env)
    # The merged per-env moments equal the pooled ones up to the 1e-4 initial pseudo-counts.
    np.testing.assert_allclose(merged.mean, pooled.obs.current.mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(merged.var, pooled.obs.current.var, rtol=1e-4, atol=3e-4 / 120)  # 3 priors of var 1 vs 1
    obs = jnp.asarray(chunks[0])
    expected = jnp.stack([(obs[e] - current.mean[e]) / current.std[e] for e in range(3)])
    np.testing.assert_allclose(normalization.normalize_observations(per_env, obs, 10.0), jnp.clip(expected, -10, 10))


def test_reward_scaling_follows_gyms_recursion():
    """G <- G * gamma * (1 - terminated) + r; a truncation does not reset G; r / sqrt(var(G) + 1e-8)."""
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    terminated = np.array([0, 1, 0, 0, 0], bool)
    gamma = 0.9
    state = normalization.init(1, 1)
    g, returns, scaled = 0.0, [], []
    for r, t in zip(rewards, terminated):
        state, s = normalization.scale_rewards(state, jnp.asarray([r]), jnp.asarray([t]), gamma, 10.0)
        g = g * gamma * (1 - t) + r
        returns.append(g)
        _, var, _ = _gym_moments(np.asarray(returns, np.float32).reshape(-1, 1, 1))
        scaled.append(np.clip(r / np.sqrt(var[0] + 1e-8), -10, 10))
        np.testing.assert_allclose(float(state.discounted_return[0]), g, rtol=1e-6)
    np.testing.assert_allclose(float(s[0]), scaled[-1], rtol=1e-5)
