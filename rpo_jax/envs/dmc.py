"""The ``dmc/<Name>`` family: the DM Control Suite tasks of MuJoCo Playground, on MJX.

Always loaded with ``config_overrides={"impl": "jax"}``: the Playground default
``"warp"`` is several times slower on CPU. Playground's DM Control tasks write the
action straight into ``data.ctrl``, so the action bounds are the MuJoCo actuator
control range (``[-1, 1]`` for every DM Control Suite task). The default
``episode_length`` is the task config's own (1000).

Each task steps as dm_control's own task does (:data:`DM_CONTROL_PHYSICS`): control
timestep, physics timestep (so the number of physics steps per action), integrator
(``eulerdamp`` included), friction cone, episode length and fish's torso inertia are
dm_control's, not the Playground port's where they differ; checked against
``dm_control.suite.load`` in tests/test_dmc_fidelity.py, tabulated in docs/dmc_fidelity.md.
Where a port's observation differs from dm_control's, :data:`OBSERVATIONS` replaces its
observation function with dm_control's layout (walker: the torso's height, not its zz
orientation; fish: joint angles before uprightness). Playground's solver iteration counts and
contact culling (MJX speed settings) and its reward functions are kept.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from rpo_jax.envs.core import (
    Environment,
    arrays_on_this_process,
    max_abs_velocity,
    mjx_model_on_this_process,
    observation_size,
    state_step_fns,
)

DESCRIPTION = "MuJoCo Playground DM Control Suite on MJX (impl=jax), actuator control range"
BACKENDS: tuple[str, ...] = ()
# The runaway guard (rpo_jax.envs.core): a state with |qvel| above this (rad/s or m/s) ends the
# episode. Under bang-bang random actions dm_control's tasks peak at 0.1 (point mass) to 84
# (humanoid); tests/test_dmc_fidelity.py checks that every suite task stays below a tenth of it.
MAX_SPEED = 1000.0


@dataclasses.dataclass(frozen=True)
class Physics:
    """How dm_control's task steps: ``ctrl_dt / sim_dt`` physics steps of ``sim_dt`` seconds per action."""

    ctrl_dt: float  # control timestep (s): dm_control's ``env.control_timestep()``
    sim_dt: float  # physics timestep (s): dm_control's ``physics.model.opt.timestep``
    integrator: str = "EULER"  # mujoco.mjtIntegrator without ``mjINT_``
    cone: str = "PYRAMIDAL"  # mujoco.mjtCone without ``mjCONE_``
    episode_length: int = 1000  # dm_control's time limit / ctrl_dt
    max_speed: float | None = None  # the runaway guard's bound on |qvel|; None: MAX_SPEED
    # (body, mass, principal inertia) where the port's body differs from dm_control's compiled model
    inertials: tuple[tuple[str, float, tuple[float, float, float]], ...] = ()


# dm_control's own physics for every Playground DM Control task (measured with dm_control 1.0.50,
# ``dm_control.suite.load(domain, task)``). Where Playground's port differs (as shipped, 0.2.0):
# acrobot and cartpole integrate with Euler (dm_control: RK4); finger with implicitfast at 0.005 s,
# 4 physics steps per action, pyramidal cones (dm_control: Euler at 0.01 s, 2 steps, elliptic);
# fish at 0.002 s, 20 steps (0.004 s, 10); pendulum at 0.01 s, 2 steps (0.02 s, 1); reacher at
# 0.005 s, 4 steps (0.02 s, 1); swimmer at 0.003 s, 10 steps (0.002 s, 15); fish's torso weighs
# 0.113 kg, 3.9 times dm_control's 0.0288 (its mass geom ``torso_massive`` is a sphere of radius .03
# in the port, dm_control's a box of half-sizes .002 .06 .03 at density 1000). Besides, every
# Playground XML disables ``eulerdamp`` (Euler integrating joint damping implicitly), which
# dm_control never does: it is re-enabled for every task (a no-op under RK4 or without damping).
DM_CONTROL_PHYSICS: dict[str, Physics] = {
    "AcrobotSwingup": Physics(0.01, 0.01, integrator="RK4"),
    "AcrobotSwingupSparse": Physics(0.01, 0.01, integrator="RK4"),
    "BallInCup": Physics(0.02, 0.002),
    "CartpoleBalance": Physics(0.01, 0.01, integrator="RK4"),
    "CartpoleBalanceSparse": Physics(0.01, 0.01, integrator="RK4"),
    "CartpoleSwingup": Physics(0.01, 0.01, integrator="RK4"),
    "CartpoleSwingupSparse": Physics(0.01, 0.01, integrator="RK4"),
    "CheetahRun": Physics(0.01, 0.01),
    "FingerSpin": Physics(0.02, 0.01, cone="ELLIPTIC"),
    "FingerTurnEasy": Physics(0.02, 0.01, cone="ELLIPTIC"),
    "FingerTurnHard": Physics(0.02, 0.01, cone="ELLIPTIC"),
    "FishSwim": Physics(0.04, 0.004, inertials=(("torso", 0.0288, (4.32e-5, 8.6784e-6, 3.45984e-5)),)),
    "HopperHop": Physics(0.02, 0.005),
    "HopperStand": Physics(0.02, 0.005),
    "HumanoidStand": Physics(0.025, 0.005),
    "HumanoidWalk": Physics(0.025, 0.005),
    "HumanoidRun": Physics(0.025, 0.005),
    "PendulumSwingup": Physics(0.02, 0.02),
    "PointMass": Physics(0.02, 0.02),
    "ReacherEasy": Physics(0.02, 0.02),
    "ReacherHard": Physics(0.02, 0.02),
    "SwimmerSwimmer6": Physics(0.03, 0.002),
    "WalkerRun": Physics(0.025, 0.0025),
    "WalkerStand": Physics(0.025, 0.0025),
    "WalkerWalk": Physics(0.025, 0.0025),
}


def _walker_observation(task: Any, data: Any, info: Any):
    """dm_control's walker: orientations (xx, xz of every body but the world), the torso's height z
    (the port observes its zz orientation there, a copy of the xx already observed), velocity."""
    del info
    orientations = data.xmat[1:, [0, 0], [0, 2]].ravel()
    return jnp.concatenate([orientations, data.xpos[task._torso_id, 2:3], data.qvel])


def _fish_observation(task: Any, data: Any, info: Any):
    """dm_control's fish: joint angles, upright (the torso's zz), the target in the mouth's frame,
    velocity (the port puts upright first)."""
    del info
    upright = data.xmat[task._torso_body_id, 2, 2].reshape(1)
    mouth = task._mouth_geom_id
    target = (data.geom_xpos[task._target_geom_id] - data.geom_xpos[mouth]) @ data.geom_xmat[mouth]
    return jnp.concatenate([data.qpos[task._joints_qposadr], upright, target, data.qvel])


# Task -> its observation in dm_control's layout, where the port's differs (``(task, data, info) -> obs``,
# bound as the task's ``_get_obs``); checked against dm_control.suite.load by tests/test_dmc_fidelity.py.
OBSERVATIONS: dict[str, Callable[[Any, Any, Any], Any]] = {
    "FishSwim": _fish_observation,
    "WalkerRun": _walker_observation,
    "WalkerStand": _walker_observation,
    "WalkerWalk": _walker_observation,
}


def load_playground(short: str, physics: Physics | None = None):
    """Playground's task ``short`` (impl ``jax``) stepping with ``physics`` (default: dm_control's, from the table).

    Timesteps and episode length go through the task config (Playground sets the model's
    timestep from ``sim_dt``); integrator, cone, ``eulerdamp`` and body inertials are set on the
    MuJoCo model (``mj_setConst`` then recomputes the constants derived from the inertials), which
    is then put on MJX again (every Playground DM Control task builds its MJX model as
    ``mjx.put_model(self._mj_model)`` and nothing else). A task in :data:`OBSERVATIONS` observes
    in dm_control's layout.
    """
    import mujoco
    from mujoco_playground import registry

    physics = physics or DM_CONTROL_PHYSICS.get(short)
    if physics is None:
        return registry.load(short, config_overrides={"impl": "jax"})
    overrides = {"ctrl_dt": physics.ctrl_dt, "sim_dt": physics.sim_dt, "episode_length": physics.episode_length}
    env = registry.load(short, config_overrides={"impl": "jax", **overrides})
    if short in OBSERVATIONS:
        env._get_obs = types.MethodType(OBSERVATIONS[short], env)
    opt = env._mj_model.opt
    before = (int(opt.integrator), int(opt.cone), int(opt.disableflags))
    opt.integrator = getattr(mujoco.mjtIntegrator, f"mjINT_{physics.integrator}")
    opt.cone = getattr(mujoco.mjtCone, f"mjCONE_{physics.cone}")
    opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
    model = env._mj_model
    for body, mass, inertia in physics.inertials:
        model.body_mass[model.body(body).id] = mass
        model.body_inertia[model.body(body).id] = inertia
    if physics.inertials:
        mujoco.mj_setConst(model, mujoco.MjData(model))
    if physics.inertials or (int(opt.integrator), int(opt.cone), int(opt.disableflags)) != before:
        env._mjx_model = mjx_model_on_this_process(model)
    return env


def max_speed(short: str) -> float:
    """The runaway guard's bound on task ``short``'s ``|qvel|``: its table entry's, else :data:`MAX_SPEED`."""
    physics = DM_CONTROL_PHYSICS.get(short)
    return MAX_SPEED if physics is None or physics.max_speed is None else physics.max_speed


def names() -> list[str]:
    from mujoco_playground._src import dm_control_suite

    return list(dm_control_suite.ALL_ENVS)


def unsupported(short: str) -> str | None:
    return None


def make(name: str, short: str, episode_length: int | None, backend: str | None) -> Environment:
    del backend  # one backend
    env = load_playground(short)
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
        speed_fn=max_abs_velocity(lambda state: state.data.qvel),
        max_speed=max_speed(short),
    )
