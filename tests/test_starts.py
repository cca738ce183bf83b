"""Every episode starts at its own fresh reset: the start cache is exact, not probable (issue "Fidelity").

Toy environments whose observation is the episode's start value (uniform in [0, 1)) make
every episode's start visible in the trajectory: two episodes with the same value share
a start. Episodes end every step, every 3 steps, or only by the time limit.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.config import HParams, SweepConfig, TrainConfig
from rpo_jax.envs import Environment, starts
from rpo_jax.training import population
from rpo_jax.training.train import as_hparams, make_trainer


def _start_env(every: int | None, episode_length: int = 5) -> Environment:
    """Observation: the episode's start value, constant through the episode; ends every ``every`` steps."""

    def reset_fn(key):
        x = jax.random.uniform(key)
        return {"x": x, "t": jnp.int32(0)}, x[None]

    def step_fn(inner, action, key):
        t = inner["t"] + 1
        ends = t >= every if every is not None else jnp.bool_(False)
        return {"x": inner["x"], "t": t}, inner["x"][None], 1.0, ends

    return Environment(
        name="toy/start",
        observation_size=1,
        action_size=1,
        action_low=np.array([-1.0]),
        action_high=np.array([1.0]),
        episode_length=episode_length,
        reset_fn=reset_fn,
        step_fn=step_fn,
    )


def _config(**kw) -> TrainConfig:
    base = dict(
        env="gymnax/Pendulum-v1",
        num_envs=3,
        num_steps=12,
        num_minibatches=1,
        update_epochs=1,
        total_timesteps=3 * 12 * 4,
        normalize_observations=False,
    )
    return TrainConfig(**{**base, **kw})


def _episode_starts(trainer, rollouts=4):
    """The start value of every episode begun in ``rollouts`` rollouts, and the reused-start counts."""
    hparams = as_hparams()
    state = jax.jit(trainer.init)(jax.random.PRNGKey(3), hparams)
    rollout = jax.jit(trainer.rollout)
    begun = [float(x) for x in state.obs[:, 0]]
    reused = 0
    for key in jax.random.split(jax.random.PRNGKey(4), rollouts):
        state, trajectory, (_, _, episodes, reused_now) = rollout(state, hparams, key)
        dones, obs = np.asarray(trajectory.dones), np.asarray(trajectory.obs[..., 0])
        assert int(episodes) == int(dones.sum())
        reused += int(reused_now)
        for t, i in zip(*np.nonzero(dones)):
            begun.append(float(obs[t + 1, i]) if t + 1 < len(obs) else float(state.obs[i, 0]))
    return begun, reused


@pytest.mark.parametrize("every", [1, 3, None])
def test_every_episode_begins_at_a_start_never_used_before(every):
    trainer = make_trainer(_config(), env=_start_env(every))
    begun, reused = _episode_starts(trainer)
    per_rollout = {1: 12, 3: 4, None: 12 / 5}[every]
    assert len(begun) >= 3 + 4 * 3 * int(per_rollout)  # the first starts, then every episode end
    assert len(set(begun)) == len(begun), "an episode began at a start used before"
    assert reused == 0
    assert trainer.start_cache_size == 3 * (3 + 1)  # sized from the rollout: ceil(12 / 5) + 1 per env


def test_without_refills_starts_would_repeat_and_be_counted(monkeypatch):
    """The check above can fail: a cache that is never refilled hands out its last start again."""
    monkeypatch.setattr(starts, "refill", lambda env, cache, num_envs, axis_name=None: cache)
    begun, reused = _episode_starts(make_trainer(_config(), env=_start_env(1)))
    assert reused > 0 and len(set(begun)) < len(begun)


def test_a_reset_every_step_begins_every_episode_fresh_too():
    begun, reused = _episode_starts(make_trainer(_config(reset_pool=False), env=_start_env(3)))
    assert len(set(begun)) == len(begun) and reused == 0


def test_take_hands_out_starts_in_env_order_and_refill_recomputes_by_number():
    env = _start_env(1)
    key = jax.random.PRNGKey(0)
    cache = starts.init(env, key, 4)
    number = lambda j: float(env.reset(jax.random.fold_in(key, j)).obs[0])  # noqa: E731
    got, cache, reused = starts.take(cache, jnp.array([True, False, True]))
    assert [float(got.obs[0, 0]), float(got.obs[2, 0])] == [number(0), number(1)] and int(reused) == 0
    assert int(cache.used) == 2
    cache = starts.refill(env, cache, num_envs=3)  # 2 left < 3 envs: recompute from start 2
    assert int(cache.base) == 2
    got, cache, _ = starts.take(cache, jnp.array([True, True, True]))
    assert [float(x) for x in got.obs[:, 0]] == [number(2), number(3), number(4)]
    same = starts.refill(env, cache, num_envs=1)  # enough left: unchanged
    chex.assert_trees_all_equal(same, cache)


def test_members_refilling_together_equal_their_solo_runs():
    """In a population, a refill any member needs recomputes every member's cache: values must not change.

    Members with different learning rates end episodes at different times (x grows by the action and
    ends at 3), so the shared refills come at times a solo run would not choose.
    """
    from test_envs import _toy_env

    config = _config(num_envs=2, num_steps=16, num_minibatches=2, total_timesteps=2 * 16 * 3, episode_length=50)
    trainer = make_trainer(config, env=_toy_env(episode_length=50))
    sweep = SweepConfig(seeds=(0, 1), grid=(("learning_rate", (1e-4, 3e-2)),))
    pop = population.build_population(sweep, HParams())
    together = population.run_population(trainer, pop)
    for i, member in enumerate(pop.members):
        solo = jax.jit(trainer.train)(jnp.asarray(pop.keys[i]), jax.tree.map(lambda x: x[i], pop.hparams))[1]
        for name in ("episode_return", "episodes", "reused_starts", "policy_loss"):
            np.testing.assert_allclose(
                together.metrics[name][i], np.asarray(solo[name]), rtol=1e-5, atol=1e-5, err_msg=f"{name} of {member}"
            )
    assert together.metrics["episodes"].sum() > 0 and (together.metrics["reused_starts"] == 0).all()
