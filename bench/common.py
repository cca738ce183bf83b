"""What the benchmarks share: sizes, the compile log, AOT compile timing, interleaved timing, env shims.

* :class:`Profile` / :data:`PROFILES` / :func:`train_config` -- the benchmarked sizes per device kind;
* :class:`CompileLog`, :func:`compile_aot`, :class:`persistent_cache_disabled` -- compile times and
  the persistent cache's part in them (``jax.monitoring``);
* :class:`Timed`, :func:`round_robin`, :func:`interleaved`, :func:`rate` -- repetitions of several
  programs interleaved round by round, so drifting background load hits all of them alike;
* :func:`brax_training_env`, :func:`library_batched_env` -- the library envs as Brax PPO steps them;
* :func:`write_json`, :func:`utc_stamp`, :data:`REPO_ROOT` -- result files.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rpo_jax import envs as rpo_envs
from rpo_jax.config import TrainConfig

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_REQUEST_EVENT = "/jax/compilation_cache/compile_requests_use_cache"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- sizes


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark run (chosen from the backend, or ``--tiny``)."""

    name: str
    envs: tuple[str, ...]  # default env list; the first is the population env
    num_envs: int
    num_steps: int
    num_minibatches: int
    update_epochs: int
    reps: int  # timed repetitions after one untimed warm-up (raw env, population, sharding)
    train_reps: int  # timed repetitions of each trainer in the rpo_jax vs Brax PPO comparison
    raw_steps: int  # scan length of one raw-env repetition
    rep_seconds: float  # calibration target for one training repetition
    max_iterations: int  # cap of the calibrated iterations per repetition
    fixed_iterations: int  # 0 = calibrate from the raw-env speed
    population_sizes: tuple[int, ...]
    sharded_members: int
    hidden: tuple[int, ...] = (64, 64)


PROFILES = {
    # 2048-8192 envs is the range of Brax / PureJaxRL GPU setups; 16 steps per
    # env and iteration with 32 minibatches gives 2048-sample minibatches.
    "gpu": Profile(
        name="gpu",
        envs=("brax/inverted_pendulum", "brax/ant"),
        num_envs=4096,
        num_steps=16,
        num_minibatches=32,
        update_epochs=4,
        reps=3,
        train_reps=5,
        raw_steps=128,
        rep_seconds=1.0,
        max_iterations=32,
        fixed_iterations=0,
        population_sizes=(1, 4, 16, 64),
        sharded_members=16,
    ),
    # A 2-core CPU saturates long before this; sizes keep the whole run < 10 min.
    "cpu": Profile(
        name="cpu",
        envs=("brax/inverted_pendulum", "brax/ant"),
        num_envs=256,
        num_steps=16,
        num_minibatches=4,
        update_epochs=4,
        reps=9,
        train_reps=15,
        raw_steps=32,
        rep_seconds=1.5,
        max_iterations=16,
        fixed_iterations=0,
        population_sizes=(1, 4, 16, 64),
        sharded_members=16,
    ),
    "tiny": Profile(
        name="tiny",
        envs=("gymnax/Pendulum-v1",),
        num_envs=8,
        num_steps=8,
        num_minibatches=2,
        update_epochs=1,
        reps=2,
        train_reps=2,
        raw_steps=16,
        rep_seconds=0.0,
        max_iterations=2,
        fixed_iterations=2,
        population_sizes=(1, 4),
        sharded_members=4,
    ),
}


def train_config(profile: Profile, env: str, num_envs: int, iterations: int, reps: int) -> TrainConfig:
    """The rpo_jax config of one benchmarked program; total_timesteps = what is actually run.

    (``total_timesteps`` only sets the learning-rate annealing horizon.)
    """
    batch = num_envs * profile.num_steps
    return TrainConfig(
        env=env,
        num_envs=num_envs,
        num_steps=profile.num_steps,
        num_minibatches=profile.num_minibatches,
        update_epochs=profile.update_epochs,
        total_timesteps=batch * iterations * (reps + 1),
        actor_hidden=profile.hidden,
        critic_hidden=profile.hidden,
    )


# --------------------------------------------------------------------------- compile log


class CompileLog:
    """Records JAX compile and persistent-cache events (``jax.monitoring``) with times."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, float | None]] = []
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)

    def _on_duration(self, event: str, duration: float, **_: Any) -> None:
        if event == BACKEND_COMPILE_EVENT:
            self.events.append((time.perf_counter(), event, float(duration)))

    def _on_event(self, event: str, **_: Any) -> None:
        if event in (CACHE_REQUEST_EVENT, CACHE_HIT_EVENT):
            self.events.append((time.perf_counter(), event, None))

    def mark(self) -> int:
        return len(self.events)

    def summary(self, start: int, stop: int | None = None) -> dict[str, Any]:
        events = self.events[start:stop]
        compiles = [d for _, e, d in events if e == BACKEND_COMPILE_EVENT]
        requests = sum(e == CACHE_REQUEST_EVENT for _, e, _ in events)
        hits = sum(e == CACHE_HIT_EVENT for _, e, _ in events)
        if not compiles:
            cache = "none"
        elif requests == 0:
            cache = "cache off"
        elif hits == 0:
            cache = "cold"
        elif hits >= requests:
            cache = "warm"
        else:
            cache = "partly warm"
        return {
            "xla_compilations": len(compiles),
            "backend_compile_s": round(sum(compiles), 3),
            "cache_requests": requests,
            "cache_hits": hits,
            "cache": cache,
        }


class persistent_cache_disabled:
    """Context manager: no persistent-cache reads or writes inside (cold compiles)."""

    def __enter__(self):
        from jax.experimental.compilation_cache import compilation_cache

        self._cc = compilation_cache
        self._was = bool(jax.config.jax_enable_compilation_cache)
        jax.config.update("jax_enable_compilation_cache", False)
        compilation_cache.reset_cache()
        return self

    def __exit__(self, *exc):
        jax.config.update("jax_enable_compilation_cache", self._was)
        self._cc.reset_cache()
        return False


# --------------------------------------------------------------------------- helpers


def block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


class Timed:
    """A compiled step ``carry = fn(carry)`` doing ``steps`` env steps per call, and its call times."""

    def __init__(self, fn: Callable[[Any], Any], carry: Any, steps: int):
        self.fn, self.carry, self.steps = fn, carry, steps
        self.times: list[float] = []
        self.warmed = False
        self.warmup_seconds: float | None = None

    def warmup(self) -> "Timed":
        if not self.warmed:
            start = time.perf_counter()
            self.carry = block(self.fn(self.carry))
            self.warmup_seconds = time.perf_counter() - start
            self.warmed = True
        return self

    def rep(self) -> float:
        self.warmup()
        start = time.perf_counter()
        self.carry = block(self.fn(self.carry))
        self.times.append(time.perf_counter() - start)
        return self.times[-1]

    def reps(self, n: int) -> "Timed":
        for _ in range(n):
            self.rep()
        return self

    def result(self) -> dict[str, Any]:
        return rate(self.steps, self.times)


def round_robin(timeds: list[Timed], reps: int) -> None:
    """Times ``reps`` calls of each program, interleaved, so drifting background load hits all alike."""
    for t in timeds:
        t.warmup()
    for _ in range(reps):
        for t in timeds:
            t.rep()


def rate(steps: int, times: list[float]) -> dict[str, Any]:
    """Steps/s of the median repetition (and of the best, and every repetition)."""
    median = statistics.median(times)
    return {
        "steps_per_rep": steps,
        "rep_seconds": [round(t, 5) for t in times],
        "steps_per_s": steps / median,  # the reported figure: median repetition
        "steps_per_s_best": steps / min(times),
        "spread": (max(times) - min(times)) / median,  # (slowest - fastest) / median repetition
    }


def compile_aot(jitted, *args, log: CompileLog) -> tuple[Any, dict[str, Any]]:
    """AOT lower + compile, timed; returns the compiled function and its compile record."""
    mark = log.mark()
    start = time.perf_counter()
    lowered = jitted.lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    end = time.perf_counter()
    info = {"compile_s": round(end - start, 3), "lower_s": round(lowered_at - start, 3)}
    info.update(log.summary(mark))
    return compiled, info


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is 0."""
    if a is None or b is None or not b:
        return None
    return a / b


def interleaved(programs: dict[str, tuple[Callable, tuple]], reps: int) -> dict[str, list[float]]:
    """Seconds of ``reps`` calls of each stateless ``fn(*args)``, through :func:`round_robin`."""

    def stateless(fn: Callable) -> Callable:
        def call(args: tuple) -> tuple:
            block(fn(*args))
            return args

        return call

    timeds = {name: Timed(stateless(fn), args, steps=0) for name, (fn, args) in programs.items()}
    round_robin(list(timeds.values()), reps)
    return {name: t.times for name, t in timeds.items()}


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")


def write_json(path: str | os.PathLike, record: dict[str, Any], default: Callable | None = None) -> None:
    """Writes ``record`` as indented JSON, atomically (temporary file, then rename); ``default`` as json.dump's."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, default=default)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- envs for Brax


def _gymnax_brax_env(short: str, episode_length: int):
    """A gymnax env as a ``brax.envs.Env`` (only so Brax PPO can run the --tiny gymnax tests)."""
    import gymnax
    from brax.envs.base import Env, State

    env, params = gymnax.make(short)
    params = params.replace(max_steps_in_episode=episode_length)
    space = env.action_space(params)
    obs_size = int(np.prod(env.observation_space(params).shape))
    act_size = int(np.prod(space.shape))

    class GymnaxAsBrax(Env):
        def reset(self, rng):
            rng, key = jax.random.split(rng)
            obs, s = env.reset_env(key, params)
            s = jax.tree.map(jnp.asarray, s)
            zero = jnp.zeros((), jnp.float32)
            return State(
                pipeline_state=(s, rng),
                obs=jnp.asarray(obs, jnp.float32).reshape(-1),
                reward=zero,
                done=zero,
                metrics={},
                info={},
            )

        def step(self, state, action):
            s, rng = state.pipeline_state
            rng, key = jax.random.split(rng)
            obs, s, reward, done, _ = env.step_env(key, s, action, params)
            s = jax.tree.map(lambda new, old: jnp.asarray(new, jnp.asarray(old).dtype), s, state.pipeline_state[0])
            return state.replace(
                pipeline_state=(s, rng),
                obs=jnp.asarray(obs, jnp.float32).reshape(-1),
                reward=jnp.asarray(reward, jnp.float32).reshape(()),
                done=jnp.asarray(done, jnp.float32).reshape(()),
            )

        @property
        def observation_size(self):
            return obs_size

        @property
        def action_size(self):
            return act_size

        @property
        def backend(self):
            return "gymnax"

    return GymnaxAsBrax()


def brax_training_env(name: str, adapter: rpo_envs.Environment) -> tuple[Any, Callable | None]:
    """``(environment, wrap_env_fn)`` for ``brax.training.agents.ppo.train``.

    Brax envs go in as they are (Brax wraps them with ``brax.envs.training.wrap``);
    Playground DM Control tasks need ``mujoco_playground.wrapper.wrap_for_brax_training``;
    gymnax envs go through a small ``brax.envs.Env`` shim.
    """
    family, _, short = name.partition("/")
    if family == "brax":
        return adapter.raw_env, None
    if family == "dmc":
        from mujoco_playground import wrapper

        return adapter.raw_env, wrapper.wrap_for_brax_training
    return _gymnax_brax_env(short, adapter.episode_length), None


def library_batched_env(name: str, adapter: rpo_envs.Environment):
    """The library env under the same training wrappers Brax PPO uses (batched)."""
    from brax.envs import training as brax_training

    environment, wrap_fn = brax_training_env(name, adapter)
    wrap = wrap_fn or brax_training.wrap
    return wrap(environment, episode_length=adapter.episode_length, action_repeat=1)


def run_cli(args: list[str], out: Path, who: str, devices: str | None = None) -> tuple[dict[str, Any], float]:
    """``rpo-jax ARGS`` (which must write ``--out OUT``) as a fresh process: its ``summary.json`` and wall seconds.

    The CLI's own device default unless ``devices`` (``RPO_JAX_CPU_DEVICES``); a failure ends the
    bench ``who`` with the command and the end of its stderr.
    """
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RPO_JAX_CPU_DEVICES", "XLA_FLAGS")}
    if devices is not None:
        env["RPO_JAX_CPU_DEVICES"] = devices
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rpo_jax.cli", *args], env=env, capture_output=True, text=True, cwd=REPO_ROOT
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{who}: rpo-jax {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return json.loads((out / "summary.json").read_text()), wall
