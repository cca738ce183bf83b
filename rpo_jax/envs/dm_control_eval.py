"""Our MJX-trained DM Control policies on the original tasks: dm_control itself, on MuJoCo C.

CleanRL's DM Control numbers come from ``dm_control`` (MuJoCo C, float64); we train on MuJoCo
Playground's MJX ports (float32). For the tasks in :data:`MAPPINGS` a Playground observation is
exactly dm_control's flattened observation (its ``OrderedDict`` values concatenated in order),
up to a fixed permutation: every task of ``configs/paper/dmc_suite.yaml``, checked in
tests/test_dmc_fidelity.py (and tests/test_dm_control_eval.py) by putting both simulators in the
same state and comparing the observations (agree to float32 rounding). So the same policy,
with the same frozen normaliser, can act in both, and ``rpo-jax evaluate RUN --on dm_control``
reports the return in each side by side (the sim-to-sim gap).

The ports step with dm_control's timesteps, integrators and friction cones (``rpo_jax.envs.dmc``,
docs/dmc_fidelity.md). What still differs and is part of that gap: MJX's solver (Playground's
fewer iterations, contact culling) and float32 arithmetic; and Playground computes orientation
features from the kinematics of the state before its last physics step (MJX's ``step`` runs the
forward pass, then integrates), while dm_control's observations use the kinematics of the
current state.
The episode starts are dm_control's own (the tasks' ``initialize_episode``), 1000 control steps.

Needs the optional extra ``pip install -e ".[dm-control]"``. dm_control 1.0.50 indexes a few
flex fields that MuJoCo 4 removed; :func:`load` drops them from dm_control's table of array
sizes first (no DM Control Suite model has flexes).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from rpo_jax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Mapping:
    """A dm_control task whose flattened observation, taken at ``order``, is the Playground observation."""

    domain: str
    task: str
    order: tuple[int, ...] | None = None  # None: the identity

    def observation(self, observation: Any) -> np.ndarray:
        """dm_control's ``TimeStep.observation`` as the Playground task's float32 vector."""
        flat = np.concatenate([np.asarray(v, np.float64).reshape(-1) for v in observation.values()])
        return (flat if self.order is None else flat[list(self.order)]).astype(np.float32)


# Playground task -> dm_control task. Pendulum's orientation is [xz, zz] in Playground, [zz, xz] in dm_control.
MAPPINGS: dict[str, Mapping] = {
    "dmc/PendulumSwingup": Mapping("pendulum", "swingup", (1, 0, 2)),
    "dmc/CartpoleBalance": Mapping("cartpole", "balance"),
    "dmc/CartpoleBalanceSparse": Mapping("cartpole", "balance_sparse"),
    "dmc/CartpoleSwingup": Mapping("cartpole", "swingup"),
    "dmc/CartpoleSwingupSparse": Mapping("cartpole", "swingup_sparse"),
    "dmc/AcrobotSwingup": Mapping("acrobot", "swingup"),
    "dmc/AcrobotSwingupSparse": Mapping("acrobot", "swingup_sparse"),
    "dmc/PointMass": Mapping("point_mass", "easy"),
    "dmc/BallInCup": Mapping("ball_in_cup", "catch"),
    "dmc/CheetahRun": Mapping("cheetah", "run"),
    "dmc/FingerSpin": Mapping("finger", "spin"),
    "dmc/FingerTurnEasy": Mapping("finger", "turn_easy"),
    "dmc/FingerTurnHard": Mapping("finger", "turn_hard"),
    "dmc/FishSwim": Mapping("fish", "swim"),
    "dmc/HopperHop": Mapping("hopper", "hop"),
    "dmc/HopperStand": Mapping("hopper", "stand"),
    "dmc/HumanoidStand": Mapping("humanoid", "stand"),
    "dmc/HumanoidWalk": Mapping("humanoid", "walk"),
    "dmc/HumanoidRun": Mapping("humanoid", "run"),
    "dmc/ReacherEasy": Mapping("reacher", "easy"),
    "dmc/ReacherHard": Mapping("reacher", "hard"),
    "dmc/SwimmerSwimmer6": Mapping("swimmer", "swimmer6"),
    "dmc/WalkerRun": Mapping("walker", "run"),
    "dmc/WalkerStand": Mapping("walker", "stand"),
    "dmc/WalkerWalk": Mapping("walker", "walk"),
}
EXTRA = 'pip install -e ".[dm-control]"'


def mapping(env: str) -> Mapping:
    """The mapping of our env ``env``; InputError (one line) if it has none."""
    if env not in MAPPINGS:
        raise InputError(
            f"{env} has no exact observation mapping onto dm_control; --on dm_control works for " + ", ".join(MAPPINGS)
        )
    return MAPPINGS[env]


def check_installed() -> None:
    """InputError (one line) unless dm_control imports."""
    try:
        import dm_control  # noqa: F401
    except ImportError:
        raise InputError(f"--on dm_control needs the dm_control package: {EXTRA}") from None


def _drop_missing_fields() -> None:
    """Removes from dm_control's array-size table the fields this MuJoCo lacks (idempotent)."""
    import mujoco
    from dm_control.mujoco.wrapper.mjbindings import sizes

    model = mujoco.MjModel.from_xml_string("<mujoco/>")
    for struct, obj in (("mjmodel", model), ("mjdata", mujoco.MjData(model))):
        for name in [f for f in sizes.array_sizes[struct] if not hasattr(obj, f)]:
            del sizes.array_sizes[struct][name]


def load(m: Mapping, seed: int):
    """The dm_control environment of ``m``, its task randomness seeded with ``seed``."""
    _drop_missing_fields()
    from dm_control import suite

    return suite.load(m.domain, m.task, task_kwargs={"random": seed})


def run_episodes(
    act: Callable[[np.ndarray], np.ndarray], m: Mapping, *, policies: int, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(returns [P, N], lengths [P, N])`` of ``episodes`` dm_control episodes for each of ``policies`` P.

    ``act`` maps observations ``[P, N, obs]`` (Playground layout) to actions ``[P, N, act]``: all
    policies and episodes step in lockstep, one call per control step. Episode ``i`` starts from
    dm_control's own reset with task seed ``seed + i``, the same for every policy.
    """
    envs = [[load(m, seed + i) for i in range(episodes)] for _ in range(policies)]
    steps = [[env.reset() for env in row] for row in envs]
    returns = np.zeros((policies, episodes))
    lengths = np.zeros((policies, episodes), np.int64)
    live = np.ones((policies, episodes), bool)
    while live.any():
        obs = np.stack([np.stack([m.observation(ts.observation) for ts in row]) for row in steps])
        actions = np.asarray(act(obs), np.float64)
        for p, i in zip(*np.nonzero(live)):
            ts = envs[p][i].step(actions[p, i])
            steps[p][i] = ts
            returns[p, i] += ts.reward or 0.0
            lengths[p, i] += 1
            live[p, i] = not ts.last()
    return returns, lengths
