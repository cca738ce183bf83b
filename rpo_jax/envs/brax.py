"""The ``brax/<name>`` family: every environment registered in ``brax.envs``.

Built with ``brax.envs.get_environment(name, backend=backend)``; ``backend=None``
keeps the environment's own default, which in Brax 0.14 is ``"generalized"`` for
every environment (and the only backend ``swimmer`` supports). Actions are in
``[-1, 1]``, the convention of every Brax environment (which rescales or clips to
its actuators internally). Brax environments have no time limit of their own; the
default ``episode_length`` is 1000, the convention of Brax's training scripts.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rpo_jax.envs.core import (
    Environment,
    arrays_on_this_process,
    max_abs_velocity,
    mjx_model_on_this_process,
    observation_size,
    state_step_fns,
)

DESCRIPTION = "Brax (generalized backend by default), actions in [-1, 1], 1000 steps"
BACKENDS = ("generalized", "spring", "positional", "mjx")
EPISODE_LENGTH = 1000
# The runaway guard (rpo_jax.envs.core): a state with a generalised velocity |qd| above this (rad/s or
# m/s) ends the episode; no Brax task moves near it (DM Control's fastest, humanoid, peaks at 84
# under random bang-bang actions).
MAX_SPEED = 1000.0
# Brax's registry also holds `fast`, a unit-test fixture with Python-side counters
# and no physics; it is not a benchmark task.
_EXCLUDED = frozenset({"fast"})


def names() -> list[str]:
    import brax.envs

    return sorted(n for n in brax.envs._envs if n not in _EXCLUDED)


def unsupported(short: str) -> str | None:
    return None


def make(name: str, short: str, episode_length: int | None, backend: str | None) -> Environment:
    import brax.envs

    kwargs = {} if backend is None else {"backend": backend}
    try:
        env = brax.envs.get_environment(short, **kwargs)
    except ValueError as e:  # e.g. swimmer only supports the generalized backend
        raise ValueError(f"{name} cannot use backend={backend!r}: {e}") from None
    env.sys = _system_on_this_process(env.sys)
    reset_fn, step_fn = state_step_fns(env)
    size = env.action_size
    return Environment(
        name=name,
        observation_size=observation_size(name, reset_fn),
        action_size=size,
        action_low=-np.ones(size, np.float32),
        action_high=np.ones(size, np.float32),
        episode_length=episode_length or EPISODE_LENGTH,
        reset_fn=reset_fn,
        step_fn=step_fn,
        raw_env=env,
        speed_fn=max_abs_velocity(lambda state: state.pipeline_state.qd),
        max_speed=MAX_SPEED,
    )


def _system_on_this_process(sys: Any) -> Any:
    """The env's Brax ``System`` with its MJX model fields on this process's device.

    ``brax.io.mjcf.load`` builds every backend's System from ``mjx.put_model``'s fields, which
    land on process 0's device in a ``--distributed`` run; see
    :func:`rpo_jax.envs.core.arrays_on_this_process` (the same fields, converted as ``mjcf.load``
    converts them).
    """
    import jax.numpy as jnp

    def rebuild():
        model = vars(mjx_model_on_this_process(sys.mj_model))
        return jax.tree.map(jnp.array, sys.replace(**{k: v for k, v in model.items() if hasattr(sys, k)}))

    return arrays_on_this_process(sys, rebuild)
