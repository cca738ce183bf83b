"""The ``dmc/<Name>`` family: the DM Control Suite tasks of MuJoCo Playground, on MJX.

Always loaded with ``config_overrides={"impl": "jax"}``: the Playground default
``"warp"`` is several times slower on CPU. Playground's DM Control tasks write the
action straight into ``data.ctrl``, so the action bounds are the MuJoCo actuator
control range (``[-1, 1]`` for every DM Control Suite task). The default
``episode_length`` is the task config's own (1000).
"""

from __future__ import annotations

import numpy as np

from rpo_jax.envs.core import (
    Environment,
    arrays_on_this_process,
    mjx_model_on_this_process,
    observation_size,
    state_step_fns,
)

DESCRIPTION = "MuJoCo Playground DM Control Suite on MJX (impl=jax), actuator control range"
BACKENDS: tuple[str, ...] = ()


def names() -> list[str]:
    from mujoco_playground._src import dm_control_suite

    return list(dm_control_suite.ALL_ENVS)


def unsupported(short: str) -> str | None:
    return None


def make(name: str, short: str, episode_length: int | None, backend: str | None) -> Environment:
    del backend  # one backend
    from mujoco_playground import registry

    env = registry.load(short, config_overrides={"impl": "jax"})
    env._mjx_model = arrays_on_this_process(env._mjx_model, lambda: mjx_model_on_this_process(env.mj_model))
    reset_fn, step_fn = state_step_fns(env)
    size = env.action_size
    # The task's own config (some tasks edit it in __init__, e.g. vision cartpole).
    default_length = int(env._config.episode_length)
    model = env.mj_model
    ctrl = np.asarray(model.actuator_ctrlrange, np.float32).reshape(-1, 2)
    limited = np.asarray(model.actuator_ctrllimited, bool).reshape(-1)
    if ctrl.shape[0] == size:
        low = np.where(limited, ctrl[:, 0], -1.0).astype(np.float32)
        high = np.where(limited, ctrl[:, 1], 1.0).astype(np.float32)
    else:
        low, high = -np.ones(size, np.float32), np.ones(size, np.float32)
    return Environment(
        name=name,
        observation_size=observation_size(name, reset_fn),
        action_size=size,
        action_low=low,
        action_high=high,
        episode_length=episode_length or default_length,
        reset_fn=reset_fn,
        step_fn=step_fn,
        raw_env=env,
    )
