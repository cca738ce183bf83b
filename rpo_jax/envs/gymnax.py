"""The ``gymnax/<Name>`` family: the gymnax environments with a continuous action space.

Stepped with ``step_env``, which in gymnax 1.0 reports natural termination only
(never ``is_truncated``), so the time limit is the adapter's own. Action bounds are
the ``action_space(params)`` Box bounds. Discrete-action environments are rejected.
"""

from __future__ import annotations

import numpy as np

from rpo_jax.envs.core import Environment, observation_size

DESCRIPTION = "gymnax, continuous (Box) action spaces only, the env's own time limit"
BACKENDS: tuple[str, ...] = ()
# gymnax environments with a Box action space (gymnax 1.0.1). Kept as a constant so
# that name checks need no environment construction; tests/test_envs.py checks it
# against the real action spaces.
CONTINUOUS = (
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "PointRobot-misc",
    "Reacher-misc",
    "Swimmer-misc",
)


def names() -> list[str]:
    import gymnax

    return [n for n in CONTINUOUS if n in gymnax.registered_envs]


def unsupported(short: str) -> str | None:
    import gymnax

    if short in gymnax.registered_envs:
        return (
            "has a discrete action space; rpo_jax needs continuous actions "
            f"(gymnax choices: {', '.join('gymnax/' + n for n in names())})"
        )
    return None


def make(name: str, short: str, episode_length: int | None, backend: str | None) -> Environment:
    del backend  # one backend
    import gymnax
    from gymnax.environments import spaces

    env, params = gymnax.make(short)
    space = env.action_space(params)
    if not isinstance(space, spaces.Box):  # guarded by check_env_name; be safe
        raise ValueError(f"{name} has a discrete action space; rpo_jax needs continuous actions")
    length = int(episode_length or params.max_steps_in_episode)
    # Keep the env's own notion of the horizon (some observe normalised time) in
    # sync with ours; its time limit itself is never used (no is_truncated call).
    params = params.replace(max_steps_in_episode=length)
    size = int(np.prod(space.shape))
    low = np.broadcast_to(np.asarray(space.low, np.float32), (size,))
    high = np.broadcast_to(np.asarray(space.high, np.float32), (size,))

    def reset_fn(key):
        obs, s = env.reset_env(key, params)
        return s, obs

    def step_fn(inner, action, key):
        obs, s, reward, terminated, _ = env.step_env(key, inner, action, params)
        return s, obs, reward, terminated

    return Environment(
        name=name,
        observation_size=observation_size(name, reset_fn),
        action_size=size,
        action_low=low,
        action_high=high,
        episode_length=length,
        reset_fn=reset_fn,
        step_fn=step_fn,
        raw_env=env,
    )
