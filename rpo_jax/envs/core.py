"""The environment interface every family adapts to: one env, pure ``reset``/``step``.

An :class:`Environment` acts on ONE environment (unbatched); ``reset`` and ``step``
are pure and can be ``jax.jit``-ed and ``jax.vmap``-ed. The families that build one
(Brax, Playground's DM Control Suite, gymnax) are the sibling modules of this one;
:mod:`rpo_jax.envs` chooses between them by the ``family/name`` string.

Termination versus truncation
-----------------------------
Every :meth:`Environment.step` returns a :class:`StepResult` with two flags:

* ``terminated`` -- the library reported a true terminal state (a Brax hopper fell,
  the gymnax mountain car reached the goal, ...). The value of the next state is
  zero: a learner must NOT bootstrap. A transition whose observation or reward is
  not finite (the physics blew up, or a diverged policy sent a NaN action) is also
  reported as ``terminated``; its non-finite observation entries and reward are
  replaced by 0 so they cannot poison running statistics, and ``nonfinite`` is set
  so the replacement is visible (the trainer counts it as ``nonfinite_env_steps``).
* ``truncated`` -- the time limit was hit (``steps >= episode_length``) and the
  state is not terminal. The episode is cut for practical reasons only, so a
  learner SHOULD bootstrap from ``StepResult.final_obs``.

Runaway guard
-------------
A simulator can run away without producing a non-finite number: an unstable
integration spins a joint ever faster (MJX's acrobot under semi-implicit Euler reached
angular velocities of 1e13 with finite observations, and the observation normaliser's
variance then became ``inf - inf``). A family that knows its state's generalised
velocities gives a ``speed_fn`` (the largest absolute velocity of the state) and a
``max_speed`` bound, far above anything the task reaches physically. A step whose
state exceeds it ends the episode as a **truncation** (the state is not terminal in
the task; the episode is cut because the simulation is no longer physical) and sets
``StepResult.runaway``; so does a non-finite step (still ``terminated``, since its
observation is unusable). The trainers count these episodes as ``runaway_episodes``.

The adapter counts episode steps itself (``EnvState.steps``); no library time limit
is used (Brax and the Playground DM Control tasks have none inside ``step``; for
gymnax we call ``step_env``, which in gymnax 1.0 reports natural termination only,
and never ``is_truncated``). So the limit fires exactly once, after
``episode_length`` steps, and ``episode_length`` can be overridden freely.

Auto-reset
----------
When a step ends an episode (``terminated | truncated``), the returned
:class:`EnvState` is a FRESH reset drawn with a key split from ``EnvState.key`` (the
remaining key is stored for the next one), ``steps`` restarts at 0 and
``StepResult.obs`` is the first observation of the new episode, while
``StepResult.final_obs`` holds the real next observation of the transition (before
the reset), which is what a learner bootstraps from on truncation. The reset is
computed on every step and merged with ``jnp.where`` (no ``lax.cond``), which is
what a ``cond`` would turn into under ``vmap`` anyway.

Computing a reset on every step costs a reset per env step. A batched loop can
instead compute its fresh starts in batches: :meth:`Environment.transition` steps
without the reset, and :meth:`Environment.auto_reset` continues the ended episodes
from given starts (``step`` is the two together); :mod:`rpo_jax.envs.starts` hands out a
new, never-used start for every episode end that way.

We do not use Brax's ``AutoResetWrapper``: it resets to a cached copy of the FIRST
state of the episode instead of drawing a new initial state, so every episode of an
environment slot starts from the same state; it also hides the final observation
and folds the time limit into ``done``.

Actions and observations
------------------------
Observations are flat float32 vectors of ``observation_size``. Actions are float32
vectors of ``action_size`` and are NOT clipped here: the trainer clips them to
``[action_low, action_high]``. The bounds are ``[-1, 1]`` for Brax (the convention of
every Brax environment, which rescales or clips to its actuators internally),
the MuJoCo actuator control range for the Playground tasks (``[-1, 1]`` for all
DM Control Suite tasks) and the gymnax ``action_space(params)`` Box bounds.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["EnvState", "StepResult", "Environment", "state_step_fns", "observation_size"]


@flax.struct.dataclass
class EnvState:
    """State of ONE environment (unbatched; add a leading axis with ``vmap``).

    Attributes:
      inner: the library's own state (Brax ``State``, Playground ``State`` or a gymnax
        ``EnvState``).
      obs: current observation, float32 ``[observation_size]``.
      steps: int32 number of steps taken in the current episode.
      key: PRNG key consumed by the next step (stochastic dynamics and auto-reset).
    """

    inner: Any
    obs: jax.Array
    steps: jax.Array
    key: jax.Array


@flax.struct.dataclass
class StepResult:
    """What one :meth:`Environment.step` reports about the transition.

    Attributes:
      obs: observation to act on next; the first observation of a new episode if
        this step ended one (then equal to the returned ``EnvState.obs``).
      reward: float32 scalar reward of the transition.
      terminated: bool, true terminal state; do not bootstrap.
      truncated: bool, the time limit was hit and the state is not terminal;
        bootstrap from ``final_obs``.
      final_obs: the true next observation of the transition, before any auto-reset.
      nonfinite: bool, the library's observation or reward of this step was not
        finite; their non-finite values were replaced by 0 and ``terminated`` is set.
      runaway: bool, the runaway guard ended the episode: the state's speed exceeded
        the environment's ``max_speed`` (then ``truncated``), or ``nonfinite``.
    """

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    nonfinite: jax.Array
    runaway: jax.Array


# reset_fn(key) -> (inner, raw_obs)
ResetFn = Callable[[jax.Array], tuple[Any, Any]]
# step_fn(inner, action, key) -> (inner, raw_obs, reward, terminated)
StepFn = Callable[[Any, jax.Array, jax.Array], tuple[Any, Any, Any, Any]]
# speed_fn(inner) -> the largest absolute generalised velocity of the state (a scalar)
SpeedFn = Callable[[Any], jax.Array]


class Environment:
    """A single-environment adapter with a uniform, jittable ``reset``/``step``.

    Built by :func:`rpo_jax.envs.make_env`. Instances are static configuration, not pytrees:
    close over them or pass them as static arguments to ``jax.jit`` (they hash and
    compare by identity).

    Attributes:
      name: the ``family/name`` string, e.g. ``"gymnax/Pendulum-v1"``.
      observation_size: length of the flat float32 observation.
      action_size: length of the float32 action vector.
      action_low, action_high: float32 numpy arrays ``[action_size]`` with the valid
        action range; actions are not clipped by the adapter.
      episode_length: time limit in steps; ``truncated`` fires when reached.
      raw_env: the underlying library environment (for rendering, inspection).
      max_speed: the runaway guard's bound on ``speed_fn(state)`` (see the module
        docstring); None: no guard beyond the non-finite check.
    """

    def __init__(
        self,
        *,
        name: str,
        observation_size: int,
        action_size: int,
        action_low: np.ndarray,
        action_high: np.ndarray,
        episode_length: int,
        reset_fn: ResetFn,
        step_fn: StepFn,
        raw_env: Any = None,
        speed_fn: SpeedFn | None = None,
        max_speed: float | None = None,
    ):
        if (speed_fn is None) != (max_speed is None):
            raise ValueError("speed_fn and max_speed go together")
        self.name = name
        self.observation_size = int(observation_size)
        self.action_size = int(action_size)
        self.action_low = np.asarray(action_low, np.float32).reshape(self.action_size)
        self.action_high = np.asarray(action_high, np.float32).reshape(self.action_size)
        self.episode_length = int(episode_length)
        self.raw_env = raw_env
        self._reset_fn = reset_fn
        self._step_fn = step_fn
        self._speed_fn = speed_fn
        self.max_speed = None if max_speed is None else float(max_speed)

    def __repr__(self) -> str:
        return (
            f"Environment({self.name!r}, observation_size={self.observation_size}, "
            f"action_size={self.action_size}, episode_length={self.episode_length})"
        )

    def _reset_inner(self, key: jax.Array) -> tuple[Any, jax.Array]:
        inner, obs = self._reset_fn(key)
        # Python scalars in library states (e.g. gymnax `time=0`) become arrays so
        # the state is a valid jit/vmap/scan value.
        return jax.tree.map(jnp.asarray, inner), _flat_obs(obs)

    def reset(self, key: jax.Array) -> EnvState:
        """Start an episode of ONE environment. Pure; jit- and vmap-able."""
        key, reset_key = jax.random.split(key)
        inner, obs = self._reset_inner(reset_key)
        return EnvState(inner=inner, obs=obs, steps=jnp.zeros((), jnp.int32), key=key)

    def step(
        self, state: EnvState, action: jax.Array, reset_state: EnvState | None = None
    ) -> tuple[EnvState, StepResult]:
        """Advance ONE environment by one step, auto-resetting at episode end.

        Pure; jit- and vmap-able. See the module docstring for the exact
        termination, truncation and auto-reset semantics. ``reset_state``, if
        given, is the fresh episode start to use when this step ends an episode
        (e.g. from :mod:`rpo_jax.envs.starts`); otherwise a reset is computed here, on
        every step. Equal to :meth:`transition` then :meth:`auto_reset`.
        """
        if reset_state is None:
            reset_state = self.reset(jax.random.split(state.key, 3)[2])
        return self.auto_reset(*self.transition(state, action), reset_state)

    def transition(self, state: EnvState, action: jax.Array) -> tuple[EnvState, StepResult]:
        """One step without the auto-reset: the state after the step, and what it reports.

        The returned state is where the episode ended if it did (``result.obs`` is then
        still the final observation); :meth:`auto_reset` continues it from a fresh start.
        """
        action = jnp.asarray(action, jnp.float32).reshape(self.action_size)
        key, step_key, _ = jax.random.split(state.key, 3)  # the third key: step's own reset

        inner, next_obs, reward, terminated = self._step_fn(state.inner, action, step_key)
        next_obs = _flat_obs(next_obs)
        reward = jnp.asarray(reward, jnp.float32).reshape(())
        terminated = jnp.asarray(terminated).reshape(()) > 0.5

        # A blown-up simulation ends the episode; zero its non-finite values.
        obs_finite = jnp.isfinite(next_obs)
        reward_finite = jnp.isfinite(reward)
        nonfinite = ~jnp.all(obs_finite) | ~reward_finite
        terminated = terminated | nonfinite
        next_obs = jnp.where(obs_finite, next_obs, 0.0)
        reward = jnp.where(reward_finite, reward, 0.0)

        # The runaway guard: a state faster than physics allows (or a NaN speed) is cut as a truncation.
        runaway = nonfinite
        too_fast = jnp.zeros((), bool)
        if self._speed_fn is not None:
            too_fast = ~(jnp.asarray(self._speed_fn(inner), jnp.float32) <= self.max_speed)
            runaway = runaway | too_fast

        steps = state.steps + 1
        truncated = ((steps >= self.episode_length) | too_fast) & ~terminated
        after = EnvState(inner=inner, obs=next_obs, steps=steps.astype(jnp.int32), key=key)
        result = StepResult(
            obs=next_obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_obs=next_obs,
            nonfinite=nonfinite,
            runaway=runaway,
        )
        return after, result

    def auto_reset(self, state: EnvState, result: StepResult, start: EnvState) -> tuple[EnvState, StepResult]:
        """Where ``result`` ended the episode, continue from ``start`` (a fresh :meth:`reset` state).

        The env keeps its own key; ``result.obs`` becomes the observation to act on next.
        """
        done = result.terminated | result.truncated
        new_state = EnvState(
            inner=_select_like(done, start.inner, state.inner, state.inner),
            obs=jnp.where(done, start.obs, state.obs),
            steps=jnp.where(done, 0, state.steps).astype(jnp.int32),
            key=state.key,
        )
        return new_state, result.replace(obs=new_state.obs)


def _flat_obs(obs: Any) -> jax.Array:
    if not isinstance(obs, (jax.Array, np.ndarray)):
        raise TypeError(f"expected an array observation, got {type(obs).__name__}; dict observations are not supported")
    return jnp.asarray(obs, jnp.float32).reshape(-1)


def _select_like(pred: jax.Array, on_true: Any, on_false: Any, like: Any) -> Any:
    """Leafwise ``where(pred, on_true, on_false)`` cast to the shapes/dtypes of ``like``.

    Casting keeps the state's type fixed across steps (a requirement of
    ``lax.scan`` carries) even when a library returns e.g. a Python float reward
    from ``step`` but a float32 array from ``reset``.
    """

    def select(t, f, ref):
        ref = jnp.asarray(ref)
        out = jnp.where(pred, t, f)
        return out.reshape(ref.shape).astype(ref.dtype)

    return jax.tree.map(select, on_true, on_false, like)


# --------------------------------------------------------------------------- helpers for families


def state_step_fns(env: Any) -> tuple[ResetFn, StepFn]:
    """Adapters for Brax / Playground style envs: reset(rng)->State, step(State, a)."""

    def reset_fn(key):
        s = env.reset(key)
        return s, s.obs

    def step_fn(inner, action, key):
        del key  # Brax and Playground steps are deterministic given the state
        s = env.step(inner, action)
        return s, s.obs, s.reward, s.done

    return reset_fn, step_fn


def max_abs_velocity(velocities: Callable[[Any], jax.Array]) -> SpeedFn:
    """A :data:`SpeedFn` from a getter of the state's generalised velocities (e.g. MuJoCo's ``qvel``)."""

    def speed(inner):
        v = velocities(inner)
        return jnp.max(jnp.abs(v)) if v.size else jnp.zeros((), v.dtype)

    return speed


def observation_size(name: str, reset_fn: ResetFn) -> int:
    """Observation length from an abstract (traced, not run) reset."""
    abstract_obs = jax.eval_shape(lambda k: reset_fn(k)[1], jax.random.PRNGKey(0))
    if not isinstance(abstract_obs, jax.ShapeDtypeStruct):
        raise ValueError(f"{name} returns a structured (dict) observation; rpo_jax needs a flat array")
    return int(np.prod(abstract_obs.shape))


def mjx_model_on_this_process(mj_model: Any) -> Any:
    """``mjx.put_model(mj_model)`` (impl ``jax``) on this process's first device."""
    from mujoco import mjx

    return mjx.put_model(mj_model, impl="jax", device=jax.local_devices()[0])


def arrays_on_this_process(tree: Any, rebuild: Callable[[], Any]) -> Any:
    """``tree`` with each array this process cannot address replaced by ``rebuild()``'s leaf at its path.

    Without a device ``mjx.put_model`` picks ``jax.devices()[0]``, which in a multi-process run
    (``--distributed``) is process 0's device: on every other process, an env whose model came
    from it holds arrays without local data, and its step function fails to compile (it closes
    over them). ``rebuild`` makes the same tree from the model put on this process's device
    (:func:`mjx_model_on_this_process`); leaves the library changed after putting the model
    were computed on this process and are kept. In one process nothing is replaced (and nothing
    rebuilt): the env is exactly the library's.
    """
    local = lambda x: not isinstance(x, jax.Array) or x.is_fully_addressable  # noqa: E731
    if all(local(x) for x in jax.tree.leaves(tree)):
        return tree
    fresh = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(rebuild())[0]}
    return jax.tree_util.tree_map_with_path(lambda p, x: x if local(x) else fresh[jax.tree_util.keystr(p)], tree)
