"""Tests for rpo_jax.envs: names, sizes, termination/truncation and auto-reset.

The persistent compilation cache is configured in tests/conftest.py.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax import envs
from rpo_jax.envs import Environment, EnvState, StepResult, core

N_ENVS = 4


def rollout(env: Environment, key, n_steps: int, n_envs: int = N_ENVS, action_scale=None):
    """jit(vmap) rollout with uniform random actions in the action box.

    Returns (pre-step states, actions, step results, post-step states), each with
    leading axes [n_steps, n_envs].
    """
    low = jnp.asarray(env.action_low)
    high = jnp.asarray(env.action_high)

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, n_envs))

        def body(state, k):
            a = jax.random.uniform(k, (n_envs, env.action_size), minval=low, maxval=high)
            new_state, res = jax.vmap(env.step)(state, a)
            return new_state, (state, a, res, new_state)

        _, out = jax.lax.scan(body, state, jax.random.split(key, n_steps))
        return out

    return jax.tree.map(np.asarray, run(key))


# ------------------------------------------------------------------------- names


def test_available_envs_cover_all_families():
    names = envs.available_envs()
    assert len(names) == len(set(names))
    assert "gymnax/Pendulum-v1" in names
    assert "gymnax/MountainCarContinuous-v0" in names
    assert "brax/inverted_pendulum" in names and "brax/swimmer" in names
    assert "dmc/CartpoleSwingup" in names and "dmc/CheetahRun" in names
    assert sum(n.startswith("dmc/") for n in names) == 25
    assert sum(n.startswith("brax/") for n in names) == 11
    for n in names:
        envs.check_env_name(n)  # must not raise


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("foo/x", ["unknown environment family", "'foo/x'", "brax/, dmc/ or gymnax/"]),
        ("Pendulum-v1", ["unknown environment family", "'Pendulum-v1'"]),
        ("brax/foo", ["unknown environment 'brax/foo'", "brax/ant", "brax/walker2d"]),
        ("dmc/cartpoleswingup", ["'dmc/cartpoleswingup'", "dmc/CartpoleSwingup"]),
        ("gymnax/NoSuchEnv-v0", ["'gymnax/NoSuchEnv-v0'", "gymnax/Pendulum-v1"]),
        ("gymnax/CartPole-v1", ["gymnax/CartPole-v1 has a discrete action space"]),
        ("gymnax/Breakout-MinAtar", ["gymnax/Breakout-MinAtar has a discrete action space"]),
    ],
)
def test_check_env_name_rejects(name, fragments):
    with pytest.raises(ValueError) as info:
        envs.check_env_name(name)
    msg = str(info.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)
    with pytest.raises(ValueError):  # make_env validates the same way
        envs.make_env(name)


def test_gymnax_continuous_list_matches_action_spaces():
    import gymnax
    from gymnax.environments import spaces

    continuous = {n.split("/", 1)[1] for n in envs.available_envs() if n.startswith("gymnax/")}
    for n in gymnax.registered_envs:
        if n == "MNISTBandit-bsuite":  # loads a data set; a (discrete) bandit
            continue
        env, params = gymnax.make(n)
        is_box = isinstance(env.action_space(params), spaces.Box)
        assert is_box == (n in continuous), n


def test_make_env_rejects_bad_arguments():
    with pytest.raises(ValueError, match="only applies to brax"):
        envs.make_env("gymnax/Pendulum-v1", backend="mjx")
    with pytest.raises(ValueError, match="episode_length"):
        envs.make_env("gymnax/Pendulum-v1", episode_length=0)
    with pytest.raises(ValueError, match="unknown brax backend"):
        envs.make_env("brax/swimmer", backend="warp")
    with pytest.raises(ValueError, match="brax/swimmer"):
        envs.make_env("brax/swimmer", backend="positional")


# ------------------------------------------------------- adapter logic (no library)


def _toy_env(episode_length=100, terminate_at=3.0, nan_at=None):
    """x starts at a random value in [0, 1) and grows by the action each step;
    terminated once x >= terminate_at; non-finite obs once x >= nan_at."""

    def reset_fn(key):
        x = jax.random.uniform(key)
        return {"x": x, "r": jnp.float32(0)}, x[None]

    def step_fn(inner, action, key):
        x = inner["x"] + action[0]
        obs = x[None]
        if nan_at is not None:
            obs = jnp.where(x >= nan_at, jnp.nan, obs)
        return {"x": x, "r": 1.0}, obs, 1.0, x >= terminate_at

    return Environment(
        name="toy/counter",
        observation_size=1,
        action_size=1,
        action_low=np.array([0.0]),
        action_high=np.array([1.0]),
        episode_length=episode_length,
        reset_fn=reset_fn,
        step_fn=step_fn,
    )


def test_toy_termination_autoreset_and_fresh_resets():
    env = _toy_env()
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    starts, finals = [float(state.obs[0])], []
    for t in range(30):
        prev = state
        state, res = step(state, jnp.ones(1))
        assert res.reward.dtype == jnp.float32 and res.reward.shape == ()
        assert res.terminated.dtype == jnp.bool_ and not bool(res.truncated)
        np.testing.assert_allclose(res.final_obs, prev.obs + 1.0, rtol=1e-6)
        if bool(res.terminated):
            assert int(state.steps) == 0
            assert float(res.final_obs[0]) >= 3.0
            np.testing.assert_array_equal(res.obs, state.obs)
            assert 0.0 <= float(res.obs[0]) < 1.0
            starts.append(float(res.obs[0]))
            finals.append(float(res.final_obs[0]))
        else:
            assert int(state.steps) == int(prev.steps) + 1
            np.testing.assert_array_equal(res.obs, res.final_obs)
    assert len(finals) >= 8  # an episode lasts 3 or 4 steps
    assert len(set(starts)) == len(starts)  # each reset is a fresh draw


def test_step_is_transition_then_auto_reset():
    env = _toy_env(terminate_at=2.5)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(1), 3))
    start = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(2), 3))
    for _ in range(4):
        stepped, res = jax.vmap(env.step)(state, jnp.ones((3, 1)), start)
        after, partial = jax.vmap(env.transition)(state, jnp.ones((3, 1)))
        np.testing.assert_array_equal(partial.obs, partial.final_obs)  # no reset yet
        composed, res2 = jax.vmap(env.auto_reset)(after, partial, start)
        chex.assert_trees_all_equal((stepped, res), (composed, res2))
        done = np.asarray(res.terminated | res.truncated)
        np.testing.assert_array_equal(np.asarray(res.obs)[done], np.asarray(start.obs)[done])
        state = stepped


def test_toy_nan_counts_as_termination():
    env = _toy_env(terminate_at=100.0, nan_at=2.5)
    state = jax.jit(env.reset)(jax.random.PRNGKey(1))
    state, res = jax.jit(env.step)(state, jnp.array([0.5]))  # x < 2.5: finite
    assert not bool(res.nonfinite) and not bool(res.terminated)
    state, res = jax.jit(env.step)(state, jnp.array([5.0]))
    assert bool(res.nonfinite) and res.nonfinite.dtype == jnp.bool_
    assert bool(res.terminated) and not bool(res.truncated)
    assert np.isfinite(np.asarray(res.final_obs)).all()
    assert np.isfinite(np.asarray(res.obs)).all() and int(state.steps) == 0


def _every_kth_step_nan_env(k=5, episode_length=100, nan_reward=False):
    """The k-th step of every episode returns a NaN observation (or, with ``nan_reward``, reward)."""

    def reset_fn(key):
        return {"t": jnp.int32(0)}, jnp.zeros((1,), jnp.float32)

    def step_fn(inner, action, key):
        t = inner["t"] + 1
        bad = t == k
        obs = jnp.where(bad & (not nan_reward), jnp.nan, action[:1] + t)
        reward = jnp.where(bad & nan_reward, jnp.nan, -1.0)
        return {"t": t}, obs, reward, False

    return _one_dim_env("toy/nan", reset_fn, step_fn, episode_length=episode_length)


def _one_dim_env(name: str, reset_fn, step_fn, **kwargs) -> Environment:
    """A toy env of one observation and one action in [-1, 1]; ``kwargs``: the rest of Environment's."""
    return Environment(
        name=name,
        observation_size=1,
        action_size=1,
        action_low=np.array([-1.0]),
        action_high=np.array([1.0]),
        reset_fn=reset_fn,
        step_fn=step_fn,
        **kwargs,
    )


@pytest.mark.parametrize("nan_reward", [False, True])
def test_nonfinite_flags_exactly_the_blown_up_steps(nan_reward):
    env = _every_kth_step_nan_env(k=3, nan_reward=nan_reward)
    _, _, results, _ = rollout(env, jax.random.PRNGKey(0), n_steps=9, n_envs=2)
    expected = np.array([False, False, True] * 3)[:, None].repeat(2, axis=1)
    np.testing.assert_array_equal(results.nonfinite, expected)
    np.testing.assert_array_equal(results.terminated, expected)  # the episode ends there ...
    assert np.isfinite(results.reward).all() and np.isfinite(results.final_obs).all()  # ... values zeroed
    if nan_reward:
        np.testing.assert_array_equal(results.reward[expected], 0.0)
    else:
        np.testing.assert_array_equal(results.final_obs[expected], 0.0)
    np.testing.assert_array_equal(results.reward[~expected], -1.0)


def test_trainer_counts_nonfinite_env_steps():
    """train.py's metric ``nonfinite_env_steps``: every 5th step of 20 per env blows up -> 4 x 2 envs."""
    from rpo_jax.config import TrainConfig
    from rpo_jax.training.train import as_hparams, make_trainer

    config = TrainConfig(
        env="gymnax/Pendulum-v1",
        num_envs=2,
        num_steps=20,
        num_minibatches=2,
        update_epochs=1,
        total_timesteps=2 * 20 * 2,
    )
    trainer = make_trainer(config, env=_every_kth_step_nan_env(k=5))
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), as_hparams())
    np.testing.assert_array_equal(metrics["nonfinite_env_steps"], [8, 8])
    np.testing.assert_array_equal(metrics["episodes"], [8, 8])
    np.testing.assert_array_equal(metrics["diverged"], [0.0, 0.0])  # a blown-up env is not a diverged learner
    assert int(state.diverged_at) == -1


def _spinning_up_env(max_speed=100.0, episode_length=1000):
    """An unstable integrator: the velocity doubles every step (1, 2, 4, ...) while the observation
    (an angle, wrapped) stays finite -- the runaway a non-finite check cannot see."""

    def reset_fn(key):
        return {"v": jnp.float32(1.0), "angle": jnp.float32(0.0)}, jnp.zeros((1,), jnp.float32)

    def step_fn(inner, action, key):
        v = inner["v"] * 2.0
        angle = jnp.mod(inner["angle"] + 0.01 * v, 2 * jnp.pi)
        return {"v": v, "angle": angle}, angle[None], 1.0, False

    speed = core.max_abs_velocity(lambda inner: inner["v"][None])
    return _one_dim_env(
        "toy/spinning_up", reset_fn, step_fn, episode_length=episode_length, speed_fn=speed, max_speed=max_speed
    )


def test_a_runaway_state_ends_the_episode_as_a_truncation():
    """Speeds 2, 4, ..., 128 > 100 at the 7th step: that step is cut (truncated, runaway), not terminated."""
    _, _, results, after = rollout(_spinning_up_env(max_speed=100.0), jax.random.PRNGKey(0), n_steps=14, n_envs=2)
    expected = np.array(([False] * 6 + [True]) * 2)[:, None].repeat(2, axis=1)
    np.testing.assert_array_equal(results.runaway, expected)
    np.testing.assert_array_equal(results.truncated, expected)
    assert not results.terminated.any() and not results.nonfinite.any()
    assert np.isfinite(results.final_obs).all()
    np.testing.assert_array_equal(after.inner["v"][6], 1.0)  # the episode restarted from a fresh state
    # no guard: the same env runs on (here to 2^14) and never cuts an episode
    unguarded = _spinning_up_env()
    unguarded._speed_fn, unguarded.max_speed = None, None
    _, _, results, _ = rollout(unguarded, jax.random.PRNGKey(0), n_steps=14, n_envs=2)
    assert not results.runaway.any() and not results.truncated.any()


def test_a_nonfinite_step_counts_as_runaway_and_stays_terminated():
    _, _, results, _ = rollout(_every_kth_step_nan_env(k=3), jax.random.PRNGKey(0), n_steps=6, n_envs=1)
    np.testing.assert_array_equal(results.runaway, results.nonfinite)
    assert results.runaway.sum() == 2 and not results.truncated.any()


def test_speed_fn_and_max_speed_go_together():
    with pytest.raises(ValueError, match="go together"):
        _one_dim_env("toy/x", None, None, episode_length=1, max_speed=1.0)


def test_trainer_counts_runaway_episodes():
    """``runaway_episodes``: 20 steps per env, cut every 7th step -> 2 episodes x 2 envs per iteration; the
    cut episodes are counted as episodes and the learner does not diverge."""
    from rpo_jax.config import TrainConfig
    from rpo_jax.training.train import as_hparams, make_trainer

    config = TrainConfig(
        env="gymnax/Pendulum-v1", num_envs=2, num_steps=20, num_minibatches=2, update_epochs=1, total_timesteps=80
    )
    trainer = make_trainer(config, env=_spinning_up_env(max_speed=100.0))
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), as_hparams())
    np.testing.assert_array_equal(metrics["runaway_episodes"][0], 4)
    assert (metrics["runaway_episodes"] >= 4).all() and (metrics["episodes"] == metrics["runaway_episodes"]).all()
    np.testing.assert_array_equal(metrics["nonfinite_env_steps"], 0)
    assert int(state.diverged_at) == -1


def test_a_real_mjx_task_driven_past_its_bound_is_cut():
    """dm_control's pendulum driven bang-bang swings at up to ~8 rad/s: with the guard's bound lowered to
    2 rad/s (its default is 1000) the real MJX state trips it, and each cut episode restarts."""
    from rpo_jax.envs import dmc

    real = envs.make_env("dmc/PendulumSwingup")
    assert real.max_speed == dmc.MAX_SPEED == 1000.0
    low = Environment(
        name=real.name,
        observation_size=real.observation_size,
        action_size=real.action_size,
        action_low=real.action_low,
        action_high=real.action_high,
        episode_length=real.episode_length,
        reset_fn=real._reset_fn,
        step_fn=real._step_fn,
        speed_fn=real._speed_fn,
        max_speed=2.0,
    )

    @jax.jit
    def run(key):
        state = jax.vmap(low.reset)(jax.random.split(key, 2))

        def body(state, i):
            push = jnp.where((i // 25) % 2 == 0, 1.0, -1.0) * jnp.ones((2, 1))  # bang-bang, 25 steps each way
            state, res = jax.vmap(low.step)(state, push)
            return state, (res, jnp.max(jnp.abs(state.inner.data.qvel), axis=-1), state.steps)

        return jax.lax.scan(body, state, jnp.arange(300))[1]

    results, speed, steps = jax.tree.map(np.asarray, run(jax.random.PRNGKey(0)))
    assert results.runaway.any() and (results.truncated == results.runaway).all()
    assert not results.terminated.any() and not results.nonfinite.any()
    np.testing.assert_array_equal(steps[results.runaway], 0)  # cut, then a fresh episode
    assert (speed[~results.runaway] <= 2.0).all()  # every state the episode went on from was within the bound


def test_environment_is_static_and_hashable():
    env = _toy_env()
    assert hash(env) == hash(env) and env == env
    f = jax.jit(lambda e, k: e.reset(k).obs, static_argnums=0)
    assert f(env, jax.random.PRNGKey(0)).shape == (1,)
    assert jax.tree.leaves(env) == [env]  # static: not a pytree of arrays


# ------------------------------------------------------------------------ gymnax


def test_pendulum_sizes():
    env = envs.make_env("gymnax/Pendulum-v1")
    assert (env.observation_size, env.action_size, env.episode_length) == (3, 1, 200)
    assert env.action_low.dtype == np.float32 and env.action_high.dtype == np.float32
    np.testing.assert_array_equal(env.action_low, [-2.0])
    np.testing.assert_array_equal(env.action_high, [2.0])
    state = env.reset(jax.random.PRNGKey(0))
    assert isinstance(state, EnvState)
    assert state.obs.shape == (3,) and state.obs.dtype == jnp.float32
    assert state.steps.dtype == jnp.int32 and int(state.steps) == 0


def test_pendulum_truncation_autoreset_and_final_obs():
    env = envs.make_env("gymnax/Pendulum-v1")
    T = 450
    pre, actions, res, post = rollout(env, jax.random.PRNGKey(42), T)
    assert res.obs.shape == (T, N_ENVS, 3) and res.obs.dtype == np.float32
    assert res.reward.shape == (T, N_ENVS) and res.reward.dtype == np.float32
    assert res.terminated.dtype == np.bool_ and res.truncated.dtype == np.bool_

    # Time limit fires exactly after 200 and 400 steps, for every env; never terminal.
    assert not res.terminated.any()
    for i in range(N_ENVS):
        assert list(np.flatnonzero(res.truncated[:, i])) == [199, 399]

    # The step counter runs 1..200 and restarts at 0 after a truncation.
    expected_steps = (np.arange(1, T + 1) % 200)[:, None]
    np.testing.assert_array_equal(post.steps, np.broadcast_to(expected_steps, (T, N_ENVS)))

    # The returned obs is the next state's obs; away from resets it is final_obs.
    np.testing.assert_array_equal(res.obs, post.obs)
    np.testing.assert_array_equal(pre.obs[1:], post.obs[:-1])
    not_done = ~res.truncated
    np.testing.assert_array_equal(res.obs[not_done], res.final_obs[not_done])

    # At a truncation the agent sees a fresh reset, not the final observation.
    for t in (199, 399):
        assert (np.abs(res.obs[t] - res.final_obs[t]).max(axis=-1) > 1e-3).all()
    # Resets are fresh draws: different across envs and across episodes.
    assert len({tuple(np.round(o, 6)) for o in res.obs[[199, 399]].reshape(-1, 3)}) == 8

    # final_obs (and reward) are exactly what gymnax's un-reset step_env returns.
    raw, params = env.raw_env, env.raw_env.default_params

    def flat(x):
        return x.reshape((T * N_ENVS,) + x.shape[2:])

    obs_ref, _, rew_ref, term_ref, _ = jax.vmap(lambda s, a: raw.step_env(jax.random.PRNGKey(0), s, a, params))(
        jax.tree.map(flat, pre.inner), flat(actions)
    )
    np.testing.assert_allclose(flat(res.final_obs), obs_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(flat(res.reward), rew_ref, rtol=1e-5, atol=1e-5)
    assert not np.asarray(term_ref).any()
    # ... and continuous with the previous observation (cos/sin stay on the circle).
    np.testing.assert_allclose(np.linalg.norm(res.final_obs[..., :2], axis=-1), 1.0, atol=1e-5)


def test_episode_length_override():
    env = envs.make_env("gymnax/Pendulum-v1", episode_length=50)
    assert env.episode_length == 50
    _, _, res, post = rollout(env, jax.random.PRNGKey(3), 120, n_envs=2)
    for i in range(2):
        assert list(np.flatnonzero(res.truncated[:, i])) == [49, 99]
    assert not res.terminated.any()
    assert post.steps[49].tolist() == [0, 0] and post.steps[119].tolist() == [20, 20]


def test_mountain_car_continuous_terminates_without_truncation_flag():
    env = envs.make_env("gymnax/MountainCarContinuous-v0")
    assert (env.observation_size, env.action_size, env.episode_length) == (2, 1, 999)
    np.testing.assert_array_equal(env.action_low, [-1.0])
    np.testing.assert_array_equal(env.action_high, [1.0])
    # Start at the goal with full throttle: the first step is terminal.
    state = env.reset(jax.random.PRNGKey(0))
    inner = state.inner.replace(position=jnp.float32(0.44), velocity=jnp.float32(0.07))
    state = state.replace(inner=inner)
    new_state, res = jax.jit(env.step)(state, jnp.ones(1))
    assert bool(res.terminated) and not bool(res.truncated)
    assert float(res.final_obs[0]) >= 0.45 and float(res.obs[0]) < -0.39
    assert float(res.reward) > 90.0 and int(new_state.steps) == 0


# -------------------------------------------------------------------- brax / dmc


def test_brax_inverted_pendulum_terminates_and_resets():
    env = envs.make_env("brax/inverted_pendulum")
    assert env.raw_env.backend == "generalized"
    assert (env.observation_size, env.action_size, env.episode_length) == (4, 1, 1000)
    np.testing.assert_array_equal(env.action_low, [-1.0])
    np.testing.assert_array_equal(env.action_high, [1.0])
    T = 200
    pre, _, res, post = rollout(env, jax.random.PRNGKey(0), T)
    assert res.obs.shape == (T, N_ENVS, 4) and res.obs.dtype == np.float32
    assert res.reward.dtype == np.float32 and res.reward.shape == (T, N_ENVS)
    assert res.terminated.dtype == np.bool_
    assert res.terminated.any(axis=0).all()  # every env's pole falls at least once
    assert not res.truncated.any()
    assert np.isfinite(res.obs).all() and np.isfinite(res.final_obs).all()
    term = res.terminated
    # Brax ends the episode when the pole angle |obs[1]| exceeds 0.2 ...
    assert (np.abs(res.final_obs[term][:, 1]) > 0.2).all()
    assert (np.abs(res.final_obs[~term][:, 1]) <= 0.2).all()
    # ... and the reset state is near upright (init noise is +-0.01) with steps = 0.
    assert (np.abs(res.obs[term]) <= 0.011).all()
    assert (post.steps[term] == 0).all()
    # Fresh resets (not Brax's cached first state): all reset observations differ.
    resets = res.obs[term]
    assert len({tuple(o) for o in resets}) == len(resets)
    np.testing.assert_array_equal(pre.obs[1:], post.obs[:-1])


@pytest.mark.parametrize("name", ["dmc/CartpoleSwingup"])
def test_dmc_steps_and_truncates(name):
    env = envs.make_env(name, episode_length=20)
    assert env.raw_env.mjx_model.impl.value == "jax"  # never the slow warp default
    assert envs.make_env(name).episode_length == 1000
    assert (env.observation_size, env.action_size) == (5, 1)
    np.testing.assert_array_equal(env.action_low, [-1.0])
    np.testing.assert_array_equal(env.action_high, [1.0])
    T = 45
    _, _, res, post = rollout(env, jax.random.PRNGKey(0), T, n_envs=2)
    assert isinstance(res, StepResult)
    assert res.obs.shape == (T, 2, env.observation_size) and res.obs.dtype == np.float32
    assert res.reward.shape == (T, 2) and res.reward.dtype == np.float32
    assert np.isfinite(res.final_obs).all() and np.isfinite(res.reward).all()
    assert not res.terminated.any()
    for i in range(2):
        assert list(np.flatnonzero(res.truncated[:, i])) == [19, 39]
    assert (np.abs(res.obs[19] - res.final_obs[19]).max(axis=-1) > 1e-4).all()
    assert post.steps[44].tolist() == [5, 5]
