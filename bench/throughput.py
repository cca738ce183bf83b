"""Throughput benchmark of rpo_jax: env steps per second, side by side, in one process.

Usage (from the repository root)::

    python -m bench.throughput                      # full run, sizes picked for the device
    python -m bench.throughput --envs brax/inverted_pendulum,brax/ant
    python -m bench.throughput --tiny --out /tmp/b  # seconds-scale smoke run (tests)

What is measured, on whatever device JAX sees (``jax.default_backend()``):

1. ``raw env``: the ceiling of any trainer on that env and device. ``jit`` of a
   ``lax.scan`` over ``vmap(env.step)`` with uniform random actions, no learning.
   Two variants: ``adapter`` is rpo_jax's ``Environment.step`` as the trainer steps
   it (fresh starts from a start cache with ``rpo_jax.starts.step``, as
   ``train.reset_pool`` does: every episode its own reset, computed in batches) and
   ``library`` is the library env under Brax's own training wrappers
   (``brax.envs.training.wrap`` / ``mujoco_playground.wrapper.wrap_for_brax_training``,
   which auto-reset to a cached first state); the latter is what Brax PPO steps.
2. ``rpo_jax``: the full train loop (rollout + GAE + update) of
   ``rpo_jax.train.make_trainer(config).run`` with PPO (alpha = 0) and RPO
   (alpha = 0.5). alpha is a traced hyperparameter, so both use ONE compiled
   program and cost the same; they are timed apart anyway.

   Timing of 1.-3.: every program is compiled ahead of time
   (``jax.jit(f).lower(...).compile()``, timed as ``compile s``: trace + lower + XLA
   compile) and called once untimed (warm-up; the raw adapter's warm-up call also
   calibrates the iterations per training repetition). Then Brax PPO runs, and after
   each of its ``train_reps + 2`` epochs the raw adapter, the raw library env, rpo_jax
   PPO and rpo_jax RPO are called once each (without Brax: ``train_reps`` such rounds),
   every call ``block_until_ready``-ed. So all five are timed seconds apart under the
   same background load, and the ratios between them are paired in time. The
   reported steps/s is the MEDIAN over the timed repetitions (all are in the JSON).
3. ``Brax PPO``: ``brax.training.agents.ppo.train`` at matched settings (see
   "Brax PPO mapping" below), timed from its own per-epoch timing metrics.
4. ``population``: ``jit(vmap(trainer.run))`` over S members x (N/S) envs each,
   S in {1, 4, 16, 64}, against the single (un-vmapped) run of N envs from 2.
   Same total env count, iterations and env steps per repetition. All population
   and sharding programs (and the single run) are compiled first and then timed
   round-robin, one call each per round, so drifting background load on a shared
   machine hits them alike.
5. ``sharding``: the S-member population program placed exactly as
   ``rpo_jax.population.run_population`` places it (a 1-D ``Mesh`` over the
   population axis, ``NamedSharding`` in and out) over 1 device vs all devices.
6. ``quickstart compile``: the compile time of ``configs/quickstart.yaml`` through
   ``rpo_jax.population.run_population`` (its ``vmap(init)`` and ``vmap(run)``
   chunk programs), with the persistent compilation cache DISABLED so it is a cold
   compile. Measured as wall time from the call to the first progress report
   minus the run time the report gives; the run is then aborted.

Devices on CPU
--------------
JAX can only split a CPU into several devices at process start
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``). So that the sharding
comparison runs in the same process, this module appends
``--xla_force_host_platform_device_count=2`` (``--host-devices``) to ``XLA_FLAGS``
before importing JAX unless the user already set that flag (then it is left
alone; ``--host-devices 0`` also leaves XLA_FLAGS alone). It only changes the CPU
platform: on a GPU host, the GPUs are the devices. Every single-device
measurement (1.-4.) runs on ``jax.devices()[0]`` only; Brax PPO is limited to one
device with ``max_devices_per_host=1``; the quickstart compile uses one device,
as a user's default CPU process has.

Compile cache
-------------
A persistent compilation cache is used (``--cache-dir``, ``--no-cache``). A warm
cache turns compiles into cache loads, so every compile time in the output says
whether its XLA compilations were cache hits (``cold``, ``warm``, ``partly warm``
or ``cache off``), counted from ``jax.monitoring`` events.

Brax PPO mapping
----------------
rpo_jax, per iteration: ``num_envs * num_steps`` env steps (one rollout of
``num_steps`` steps of every env), then ``update_epochs`` passes over that batch,
each in ``num_minibatches`` minibatches of ``num_envs * num_steps /
num_minibatches`` transitions: ``update_epochs * num_minibatches`` gradient steps.

Brax PPO, per training step: it unrolls ``batch_size * num_minibatches /
num_envs`` times ``unroll_length`` steps of all ``num_envs`` envs, i.e.
``batch_size * num_minibatches * unroll_length`` env steps, then runs
``num_updates_per_batch`` passes, each over ``num_minibatches`` minibatches of
``batch_size`` trajectories of ``unroll_length`` steps:
``num_updates_per_batch * num_minibatches`` gradient steps. Hence, matched:

    brax num_envs              = num_envs
    brax unroll_length         = num_steps
    brax num_minibatches       = num_minibatches
    brax batch_size            = num_envs / num_minibatches   (so one unroll per training step)
    brax num_updates_per_batch = update_epochs
    env steps / training step  = batch_size * num_minibatches * unroll_length = num_envs * num_steps
    gradient steps / training step = update_epochs * num_minibatches
    samples per minibatch      = batch_size * unroll_length = num_envs * num_steps / num_minibatches

Networks: ``make_ppo_networks`` with (64, 64) tanh MLPs for both, a Gaussian
(``distribution_type="normal"``) with a state-independent log std
(``noise_std_type="log"``), as rpo_jax's Actor; observation normalisation on;
discount 0.99, GAE lambda 0.95, clip 0.2, lr 3e-4, grad-norm clip 0.5, entropy 0.
Remaining differences (algorithmic, not sizes): Brax shuffles whole trajectories
and recomputes GAE inside the loss of every minibatch; rpo_jax shuffles single
transitions and computes GAE once per iteration; rpo_jax also scales rewards by
a running return std and auto-resets to fresh random states.

Brax timing: ``train`` runs ``num_evals - 1`` epochs of ``num_training_steps_per_epoch``
training steps and calls ``progress_fn`` after each with ``training/sps`` (env
steps of the epoch / its wall time, measured by Brax around the jitted epoch).
With ``run_evals=False`` no evaluation runs at all (``num_eval_envs=1`` only sizes
the evaluator it builds). An epoch here is ``iterations`` training steps, like one
rpo_jax repetition. Brax 0.14 compiles its epoch program in the first epoch and,
on some setups, again in the second (the state's types change after the first
call), so ``train_reps + 2`` epochs are run, epochs during which any XLA compilation
happened (``jax.monitoring``) are excluded, and the MEDIAN of the remaining
epochs' ``training/sps`` is reported. Brax's compile time is estimated as the
time of the compiling epochs minus as many clean-epoch medians.
"""

from __future__ import annotations

import os
import sys

_HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_DEFAULT_HOST_DEVICES = 2


def _host_devices_from_argv(argv: list[str]) -> int:
    """``--host-devices N`` read before argparse runs (JAX must not be imported yet)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--host-devices="):
            return int(arg.split("=", 1)[1])
        if arg == "--host-devices" and i + 1 < len(argv):
            return int(argv[i + 1])
    return _DEFAULT_HOST_DEVICES


def _configure_xla_flags(argv: list[str]) -> str:
    """Adds the forced host device count to XLA_FLAGS unless the user chose one.

    Returns how XLA_FLAGS was treated, for the report.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _HOST_DEVICE_FLAG in flags:
        return "user"
    try:
        count = _host_devices_from_argv(argv)
    except ValueError:
        return "unset"  # argparse reports the bad value later
    if count <= 0:
        return "unset"
    if "jax" in sys.modules:
        return "too-late"  # JAX already imported (e.g. in a test process): cannot change devices
    os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICE_FLAG}={count}".strip()
    return "benchmark"


if __name__ == "__main__":
    _XLA_FLAGS_SOURCE = _configure_xla_flags(sys.argv[1:])
else:
    _XLA_FLAGS_SOURCE = "user" if _HOST_DEVICE_FLAG in os.environ.get("XLA_FLAGS", "") else "unset"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from bench.common import (  # noqa: E402
    CACHE_HIT_EVENT,
    PROFILES,
    CompileLog,
    Profile,
    Timed,
    brax_training_env,
    compile_aot,
    library_batched_env,
    persistent_cache_disabled,
    ratio,
    round_robin,
    train_config,
)
from rpo_jax import envs as rpo_envs  # noqa: E402
from rpo_jax import starts as rpo_starts  # noqa: E402
from rpo_jax.config import HParams, SweepConfig, TrainConfig  # noqa: E402
from rpo_jax.population import POPULATION_AXIS, build_population  # noqa: E402
from rpo_jax.train import as_hparams, make_trainer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
DEFAULT_MARKDOWN = REPO_ROOT / "bench" / "RESULTS.md"
DEFAULT_QUICKSTART = REPO_ROOT / "configs" / "quickstart.yaml"
DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/rpo_jax_bench_cache"))

SECTIONS = ("raw", "train", "brax", "population", "sharding", "quickstart")
TARGETS = {
    "ppo_vs_brax": 1.0,  # rpo_jax PPO / Brax PPO steps/s, every env
    "train_vs_raw_heavy": 0.5,  # rpo_jax PPO / raw adapter limit, heavy env
    "sweep16_vs_single": 0.9,  # 16-member sweep / single run of equal total envs
    "quickstart_compile_s": 60.0,  # cold compile of configs/quickstart.yaml (CPU)
}

# --------------------------------------------------------------------------- 1. raw env


def compile_raw(
    name: str, adapter: rpo_envs.Environment, profile: Profile, num_envs: int, log: CompileLog
) -> tuple[dict[str, Any], dict[str, Timed]]:
    """AOT-compiles and warms up the raw-env programs; the caller times them (see ``main``).

    Returns the compile records and a :class:`Timed` per variant: ``adapter`` always,
    ``library`` unless the library env could not be built (then its record holds the error).
    """
    steps = profile.raw_steps
    low = jnp.asarray(adapter.action_low)
    high = jnp.asarray(adapter.action_high)
    shape = (num_envs, adapter.action_size)
    out: dict[str, Any] = {"num_envs": num_envs, "scan_steps": steps}

    # rpo_jax adapter, auto-resetting to fresh starts from a start cache (rpo_jax.starts.step),
    # exactly as the trainer steps its envs (train.reset_pool). The carry accumulates reward
    # and episode-end sums so nothing of a step is dead code except what no trainer needs.
    cache_size = rpo_starts.cache_size(num_envs, steps, adapter.episode_length)

    def adapter_rollout(carry):
        states, cache, key, total = carry
        key, sub = jax.random.split(key)

        def body(c, k):
            s, cache = c
            action = jax.random.uniform(k, shape, minval=low, maxval=high)
            s, result, cache, _ = rpo_starts.step(adapter, s, cache, action)
            dones = result.terminated | result.truncated
            return (s, cache), result.reward.sum() + result.final_obs.sum() + dones.sum()

        (states, cache), sums = jax.lax.scan(body, (states, cache), jax.random.split(sub, steps))
        return states, cache, key, total + sums.sum()

    states = jax.jit(jax.vmap(adapter.reset))(jax.random.split(jax.random.PRNGKey(0), num_envs))
    cache = jax.jit(rpo_starts.init, static_argnums=(0, 2))(adapter, jax.random.PRNGKey(2), cache_size)
    carry = (states, cache, jax.random.PRNGKey(1), jnp.zeros((), jnp.float32))
    fn, info = compile_aot(jax.jit(adapter_rollout, donate_argnums=0), carry, log=log)
    timeds = {"adapter": Timed(fn, carry, num_envs * steps).warmup()}
    out["adapter"] = info

    # library env with Brax's training wrappers (cached first-state auto-reset)
    try:
        env = library_batched_env(name, adapter)

        def library_rollout(carry):
            state, key, total = carry
            key, sub = jax.random.split(key)

            def body(s, k):
                s = env.step(s, jax.random.uniform(k, shape, minval=low, maxval=high))
                return s, s.reward.sum() + s.done.sum()

            state, sums = jax.lax.scan(body, state, jax.random.split(sub, steps))
            return state, key, total + sums.sum()

        state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))
        carry = (state, jax.random.PRNGKey(1), jnp.zeros((), jnp.float32))
        fn, info = compile_aot(jax.jit(library_rollout, donate_argnums=0), carry, log=log)
        timeds["library"] = Timed(fn, carry, num_envs * steps).warmup()
        out["library"] = info
    except Exception as err:  # noqa: BLE001 - report, keep benchmarking
        out["library"] = {"error": f"{type(err).__name__}: {err}"}
    return out, timeds


def calibrate_iterations(profile: Profile, raw_sps: float | None, num_envs: int) -> int:
    """Iterations per timed repetition: a power of two so a repetition takes ~rep_seconds.

    ``raw_sps`` comes from the raw adapter's warm-up call. Assumes training runs at
    about a third of the raw-env limit.
    """
    if profile.fixed_iterations:
        return profile.fixed_iterations
    if not raw_sps:
        return 1
    estimate = profile.rep_seconds * raw_sps / 3.0 / (num_envs * profile.num_steps)
    iterations = 1
    while iterations * 2 <= min(estimate, profile.max_iterations):
        iterations *= 2
    return iterations


# --------------------------------------------------------------------------- 2. rpo_jax


def compile_rpo(
    adapter: rpo_envs.Environment, config: TrainConfig, iterations: int, log: CompileLog
) -> tuple[dict[str, Any], dict[str, Timed]]:
    """AOT-compiles ``trainer.init`` and ``trainer.run`` (``iterations`` per call).

    Returns the compile records and one :class:`Timed` per algorithm: PPO (alpha 0)
    and RPO (alpha 0.5) share the compiled program (alpha is traced).
    """
    trainer = make_trainer(config, env=adapter)
    hp_ppo = as_hparams(alpha=0.0)
    init_fn, init_info = compile_aot(jax.jit(trainer.init), jax.random.PRNGKey(0), hp_ppo, log=log)
    run = jax.jit(functools.partial(trainer.run, num_iterations=iterations), donate_argnums=0)
    run_fn, run_info = compile_aot(run, init_fn(jax.random.PRNGKey(0), hp_ppo), hp_ppo, log=log)
    steps = config.batch_size * iterations
    timeds = {}
    for label, alpha in (("ppo", 0.0), ("rpo", 0.5)):
        hp = as_hparams(alpha=alpha)
        state = init_fn(jax.random.PRNGKey(0), hp)
        timeds[label] = Timed(lambda c, hp=hp: run_fn(c[0], hp), (state, None), steps)
    info = {"compile_init": init_info, "compile": run_info, "iterations_per_rep": iterations}
    return info, timeds


def rpo_result(info: dict[str, Any], timeds: dict[str, Timed]) -> dict[str, Any]:
    out = dict(info)
    for label, alpha in (("ppo", 0.0), ("rpo", 0.5)):
        metrics = timeds[label].carry[1]
        out[label] = {
            "alpha": alpha,
            **timeds[label].result(),
            "finite_loss": bool(np.all(np.isfinite(np.asarray(metrics["value_loss"])))),
        }
    return out


# --------------------------------------------------------------------------- 3. Brax PPO


def bench_brax_ppo(
    name: str,
    adapter: rpo_envs.Environment,
    config: TrainConfig,
    iterations: int,
    train_reps: int,
    log: CompileLog,
    between_epochs: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Brax PPO at matched settings; ``between_epochs`` runs on the host after each epoch.

    (The benchmark times one rpo_jax repetition there, so the two trainers alternate.)
    """
    from brax.training.agents.ppo import networks as brax_networks
    from brax.training.agents.ppo import train as brax_ppo
    from flax import linen

    if config.num_envs % config.num_minibatches:
        return {"error": "num_envs must be divisible by num_minibatches for the matched Brax batch_size"}
    environment, wrap_env_fn = brax_training_env(name, adapter)
    epochs = train_reps + 2  # the first one or two epochs compile (see module docstring)
    env_steps_per_training_step = config.num_envs * config.num_steps
    steps_per_epoch = iterations * env_steps_per_training_step
    settings = {
        "num_envs": config.num_envs,
        "unroll_length": config.num_steps,
        "batch_size": config.num_envs // config.num_minibatches,
        "num_minibatches": config.num_minibatches,
        "num_updates_per_batch": config.update_epochs,
        "num_timesteps": epochs * steps_per_epoch,
        "num_evals": epochs + 1,
        "episode_length": adapter.episode_length,
    }
    records: list[dict[str, Any]] = []
    callback_seconds: list[float] = []

    def progress(step, metrics):
        records.append(
            {
                "time": time.perf_counter(),
                "step": int(step),
                "mark": log.mark(),
                "sps": float(metrics["training/sps"]),
                "walltime": float(metrics["training/walltime"]),
            }
        )
        if between_epochs is not None:
            begin = time.perf_counter()
            between_epochs()
            callback_seconds.append(time.perf_counter() - begin)

    network_factory = functools.partial(
        brax_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(config.actor_hidden),
        value_hidden_layer_sizes=tuple(config.critic_hidden),
        activation=linen.tanh,
        distribution_type="normal",
        noise_std_type="log",
    )
    mark = log.mark()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        brax_ppo.train(
            environment,
            wrap_env_fn=wrap_env_fn,
            max_devices_per_host=1,
            learning_rate=3e-4,
            entropy_cost=0.0,
            discounting=0.99,
            gae_lambda=0.95,
            clipping_epsilon=0.2,
            max_grad_norm=0.5,
            normalize_advantage=True,
            normalize_observations=True,
            vf_loss_coefficient=0.5,
            reward_scaling=1.0,
            network_factory=network_factory,
            seed=0,
            run_evals=False,
            num_eval_envs=1,
            progress_fn=progress,
            **settings,
        )
    total = time.perf_counter() - start - sum(callback_seconds)  # the callback's time is not Brax's
    epochs_out = []
    previous_mark, previous_wall = mark, 0.0
    for r in records:
        summary = log.summary(previous_mark, r["mark"])
        epochs_out.append(
            {
                "step": r["step"],
                "seconds": round(r["walltime"] - previous_wall, 5),
                "sps": r["sps"],
                "xla_compilations": summary["xla_compilations"],
                "cache": summary["cache"],
            }
        )
        previous_mark, previous_wall = r["mark"], r["walltime"]
    clean = [e for e in epochs_out if e["xla_compilations"] == 0]
    compiling = [e for e in epochs_out if e["xla_compilations"] > 0]
    out: dict[str, Any] = {
        "settings": settings,
        "epochs": epochs_out,
        "wall_s": round(total, 3),
        "compile_log": log.summary(mark),
    }
    if clean:
        median_time = statistics.median(e["seconds"] for e in clean)
        out["steps_per_s"] = statistics.median(e["sps"] for e in clean)  # median clean epoch
        out["steps_per_s_best"] = max(e["sps"] for e in clean)
        out["timed_epochs"] = len(clean)
        out["compile_s_estimate"] = round(sum(e["seconds"] for e in compiling) - len(compiling) * median_time, 3)
        out["setup_s"] = round(total - records[-1]["walltime"], 3)  # reset, init, evaluator, host work
    else:
        out["steps_per_s"] = None
        out["error"] = "every epoch compiled; no clean epoch to time"
    return out


# --------------------------------------------------------------------------- 4./5. populations


def population_hparams(members: int):
    """``members`` members: alpha in {0, 0.5} x members/2 seeds (one PPO member if 1)."""
    if members == 1:
        sweep = SweepConfig(seeds=(0,), grid=(("alpha", (0.0,)),))
    else:
        sweep = SweepConfig(seeds=tuple(range(members // 2)), grid=(("alpha", (0.0, 0.5)),))
    return build_population(sweep, HParams())


def compile_population(
    adapter: rpo_envs.Environment,
    profile: Profile,
    total_envs: int,
    members: int,
    devices: list,
    iterations: int,
    reps: int,
    log: CompileLog,
) -> tuple[dict[str, Any], Timed]:
    """``members`` x ``total_envs / members`` envs, placed as run_population places a population.

    ``jit(vmap(trainer.init))`` and ``jit(vmap(trainer.run))`` (the vmap axis named, as
    run_population names it, so start caches refill together) with the population axis
    sharded over a 1-D mesh of ``devices`` (NamedSharding in and out, state donated).
    """
    config = train_config(profile, adapter.name, total_envs // members, iterations, reps)
    trainer = dataclasses.replace(make_trainer(config, env=adapter), population_axis=POPULATION_AXIS)
    population = population_hparams(members)
    mesh = Mesh(np.asarray(devices), (POPULATION_AXIS,))
    sharding = NamedSharding(mesh, PartitionSpec(POPULATION_AXIS))
    keys = jax.device_put(population.keys, sharding)
    hparams = jax.device_put(population.hparams, sharding)
    init = jax.jit(
        jax.vmap(trainer.init, axis_name=POPULATION_AXIS), in_shardings=(sharding, sharding), out_shardings=sharding
    )
    run = jax.jit(
        jax.vmap(lambda s, h: trainer.run(s, h, iterations), axis_name=POPULATION_AXIS),
        in_shardings=(sharding, sharding),
        out_shardings=sharding,
        donate_argnums=0,
    )
    init_fn, init_info = compile_aot(init, keys, hparams, log=log)
    state = init_fn(keys, hparams)
    run_fn, run_info = compile_aot(run, state, hparams, log=log)
    info = {
        "members": members,
        "envs_per_member": total_envs // members,
        "total_envs": total_envs,
        "devices": len(devices),
        "iterations_per_rep": iterations,
        "compile_init": init_info,
        "compile": run_info,
    }
    return info, Timed(lambda c: run_fn(c[0], hparams), (state, None), total_envs * profile.num_steps * iterations)


# --------------------------------------------------------------------------- 6. quickstart compile


class _StopAfterFirstChunk(Exception):
    pass


def bench_quickstart_compile(path: Path, log: CompileLog, single_device: bool) -> dict[str, Any]:
    """Cold compile of ``run_population`` on the quickstart config (cache disabled)."""
    import yaml

    from rpo_jax.config_io import config_from_dict
    from rpo_jax.population import run_population

    with open(path, encoding="utf-8") as f:
        experiment = config_from_dict(yaml.safe_load(f))
    trainer = make_trainer(experiment.train)
    population = build_population(experiment.sweep, experiment.hparams)
    first: dict[str, float] = {}

    def progress(report):
        first["time"] = time.perf_counter()
        first["elapsed"] = float(report["elapsed"])
        raise _StopAfterFirstChunk

    devices = jax.devices()[:1] if single_device else None
    with persistent_cache_disabled():
        mark = log.mark()
        start = time.perf_counter()
        try:
            run_population(
                trainer,
                population,
                chunk_iterations=experiment.sweep.chunk_iterations,
                devices=devices,
                progress_fn=progress,
            )
        except _StopAfterFirstChunk:
            pass
        summary = log.summary(mark)
    return {
        "config": str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path),
        "env": experiment.train.env,
        "members": population.size,
        "devices": 1 if single_device else len(jax.devices()),
        "compile_s": round(first["time"] - start - first["elapsed"], 3),
        "first_chunk_run_s": round(first["elapsed"], 3),
        **summary,
    }


# --------------------------------------------------------------------------- report


def device_slug() -> str:
    device = jax.devices()[0]
    kind = device.device_kind if device.platform != "cpu" else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or device.platform


def host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_sps(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}"


def _fmt_compile(info: dict[str, Any] | None, key: str = "compile_s") -> str:
    if not info or info.get(key) is None:
        return "—"
    return f"{info[key]:.1f} ({info.get('cache', '?')})"


def _fmt_ratio(x: float | None, label: str) -> str:
    return "" if x is None else f"{x:.2f}x {label}"


def build_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(section, env, what, steps/s, compile s (cache), ratios) rows of the table."""
    rows = []
    for name, env in result["envs"].items():
        raw = env.get("raw") or {}
        a, lib = raw.get("adapter") or {}, raw.get("library") or {}
        n = raw.get("num_envs")
        if a:
            rows.append(
                (
                    "raw env",
                    name,
                    f"rpo_jax adapter step, {n} envs",
                    _fmt_sps(a.get("steps_per_s")),
                    _fmt_compile(a),
                    "",
                )
            )
        if lib:
            rows.append(
                (
                    "raw env",
                    name,
                    "library step (Brax training wrappers)",
                    _fmt_sps(lib.get("steps_per_s")),
                    _fmt_compile(lib),
                    lib.get("error", "")[:60],
                )
            )
        train = env.get("train") or {}
        ratios = env.get("ratios") or {}
        for label, alpha in (("ppo", 0.0), ("rpo", 0.5)):
            t = train.get(label)
            if not t:
                continue
            parts = [
                _fmt_ratio(ratios.get(f"{label}_vs_brax_ppo"), "Brax PPO"),
                _fmt_ratio(ratios.get(f"{label}_vs_raw"), "raw"),
            ]
            rows.append(
                (
                    "train",
                    name,
                    f"rpo_jax {label.upper()} alpha={alpha}",
                    _fmt_sps(t["steps_per_s"]),
                    _fmt_compile(train.get("compile")) if label == "ppo" else "(same program)",
                    ", ".join(p for p in parts if p),
                )
            )
        b = env.get("brax_ppo") or {}
        if b:
            comp = b.get("compile_s_estimate")
            comp_s = "—" if comp is None else f"~{comp:.1f} ({b['compile_log']['cache']})"
            rows.append(
                (
                    "train",
                    name,
                    "Brax PPO (matched)",
                    _fmt_sps(b.get("steps_per_s")),
                    comp_s,
                    _fmt_ratio(ratios.get("brax_ppo_vs_library_raw"), "library raw") or b.get("error", ""),
                )
            )
    pop = result.get("population") or {}
    if pop:
        single = pop["single_run"]
        rows.append(
            (
                "population",
                pop["env"],
                f"single run of {pop['total_envs']} envs (no vmap, timed alongside)",
                _fmt_sps(single.get("steps_per_s")),
                _fmt_compile(single.get("compile")),
                "baseline",
            )
        )
    for p in pop.get("runs", []):
        rows.append(
            (
                "population",
                pop["env"],
                f"{p['members']} x {p['envs_per_member']} envs (vmap)",
                _fmt_sps(p["steps_per_s"]),
                _fmt_compile(p["compile"]),
                _fmt_ratio(p.get("vs_single_run"), f"single run of {p['total_envs']} envs"),
            )
        )
    shard = result.get("sharding") or {}
    for key in ("one_device", "all_devices"):
        s = shard.get(key)
        if s:
            ratio = _fmt_ratio(shard.get("sharded_vs_single_device"), "1 device") if key == "all_devices" else ""
            rows.append(
                (
                    "sharding",
                    shard["env"],
                    f"{s['members']} members on {s['devices']} device(s)",
                    _fmt_sps(s["steps_per_s"]),
                    _fmt_compile(s["compile"]),
                    ratio,
                )
            )
    if shard.get("skipped"):
        rows.append(("sharding", shard.get("env", ""), shard["skipped"], "—", "—", ""))
    q = result.get("quickstart") or {}
    if q.get("compile_s") is not None:
        rows.append(
            (
                "compile",
                q["env"],
                f"{q['config']} via run_population ({q['members']} members)",
                "—",
                _fmt_compile(q),
                f"target < {TARGETS['quickstart_compile_s']:.0f} s",
            )
        )
    return rows


def table_markdown(rows) -> str:
    head = ("section", "env", "what", "env steps/s", "compile s (cache)", "ratios")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def evaluate_targets(result: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for name, env in result["envs"].items():
        r = (env.get("ratios") or {}).get("ppo_vs_brax_ppo")
        targets[f"ppo_vs_brax[{name}]"] = {
            "value": r,
            "target": f">= {TARGETS['ppo_vs_brax']}",
            "pass": None if r is None else r >= TARGETS["ppo_vs_brax"],
        }
    heavy = result.get("heavy_env")
    if heavy:
        r = (result["envs"][heavy].get("ratios") or {}).get("ppo_vs_raw")
        targets[f"train_vs_raw[{heavy}]"] = {
            "value": r,
            "target": f">= {TARGETS['train_vs_raw_heavy']}",
            "pass": None if r is None else r >= TARGETS["train_vs_raw_heavy"],
        }
    pop = result.get("population") or {}
    sixteen = [p for p in pop.get("runs", []) if p["members"] == 16]
    r = sixteen[0].get("vs_single_run") if sixteen else None
    targets["sweep16_vs_single"] = {
        "value": r,
        "target": f">= {TARGETS['sweep16_vs_single']}",
        "pass": None if r is None else r >= TARGETS["sweep16_vs_single"],
    }
    q = (result.get("quickstart") or {}).get("compile_s")
    targets["quickstart_compile_s"] = {
        "value": q,
        "target": f"< {TARGETS['quickstart_compile_s']}",
        "pass": None if q is None else q < TARGETS["quickstart_compile_s"],
    }
    return targets


def targets_markdown(targets: dict[str, Any], tiny: bool = False) -> str:
    lines = ["(--tiny sizes: the verdicts below are not meaningful)"] if tiny else []
    for key, t in targets.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        value = "—" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"- {key}: {value} (target {t['target']}): **{verdict}**")
    return "\n".join(lines)


def update_results_markdown(path: Path, key: str, body: str) -> None:
    """Replaces (or appends) the block of ``key`` in RESULTS.md, keeping other devices' blocks."""
    begin, end = f"<!-- results: {key} -->", f"<!-- end results: {key} -->"
    header = (
        "# Throughput benchmark results\n\n"
        "Latest `python -m bench.throughput` table per device, rewritten by the benchmark "
        "(see `bench/throughput.py` for the method). Full figures: `bench/results/*.json`.\n"
    )
    text = path.read_text(encoding="utf-8") if path.exists() else header
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--envs",
        help="comma-separated env names; the first is also the population env "
        "(default: brax/inverted_pendulum,brax/ant; --tiny: gymnax/Pendulum-v1)",
    )
    p.add_argument("--tiny", action="store_true", help="seconds-scale sizes, for tests")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory of the JSON result")
    p.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help=f"RESULTS.md to update (default {DEFAULT_MARKDOWN.relative_to(REPO_ROOT)}; none with --tiny)",
    )
    p.add_argument(
        "--host-devices",
        type=int,
        default=_DEFAULT_HOST_DEVICES,
        help="CPU devices to force via XLA_FLAGS when the user did not set it (0: leave XLA_FLAGS)",
    )
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="persistent compilation cache")
    p.add_argument("--no-cache", action="store_true", help="disable the persistent compilation cache")
    p.add_argument(
        "--iterations",
        type=int,
        default=0,
        help="training iterations per timed repetition (default: calibrated from the raw-env speed)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=0,
        help="timed repetitions of the raw-env, population and sharding programs (default: CPU 9, GPU 3, --tiny 2)",
    )
    p.add_argument(
        "--train-reps",
        type=int,
        default=0,
        help="timed repetitions of each trainer in the rpo_jax "
        "vs Brax PPO comparison (default: CPU 15, GPU 5, --tiny 2)",
    )
    p.add_argument("--num-envs", type=int, default=0, help="envs of the single runs and population total")
    p.add_argument("--population-env", help="env of the population and sharding sections (default: first env)")
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    p.add_argument("--quickstart", type=Path, default=DEFAULT_QUICKSTART, help="config for the compile-time check")
    args = p.parse_args(argv)
    args.only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        p.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    if min(args.reps, args.train_reps, args.iterations, args.num_envs) < 0:
        p.error("--reps, --train-reps, --iterations and --num-envs must be >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    wall_start = time.perf_counter()
    if not args.no_cache:
        jax.config.update("jax_compilation_cache_dir", str(args.cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    log = CompileLog()

    backend = jax.default_backend()
    profile = PROFILES["tiny" if args.tiny else ("gpu" if backend == "gpu" else "cpu")]
    if args.num_envs:
        profile = dataclasses.replace(profile, num_envs=args.num_envs)
    reps = args.reps or profile.reps
    train_reps = args.train_reps or profile.train_reps
    env_names = tuple(e.strip() for e in args.envs.split(",") if e.strip()) if args.envs else profile.envs
    for name in env_names:
        rpo_envs.check_env_name(name)
    population_env = args.population_env or env_names[0]
    devices = jax.devices()
    load_start = os.getloadavg()

    result: dict[str, Any] = {
        "command": "python -m bench.throughput" + "".join(" " + shlex.quote(a) for a in argv),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {
            "jax": jax.__version__,
            "python": platform.python_version(),
            **_library_versions(),
        },
        "device": {
            "backend": backend,
            "platform": devices[0].platform,
            "device_kind": devices[0].device_kind,
            "device_count": len(devices),
            "devices": [str(d) for d in devices],
            "host_cpu": host_cpu(),
            "host_cpu_count": os.cpu_count(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "host_devices_forced_by": _XLA_FLAGS_SOURCE,
        },
        "settings": {
            "profile": profile.name,
            "tiny": args.tiny,
            "envs": list(env_names),
            "num_envs": profile.num_envs,
            "num_steps": profile.num_steps,
            "num_minibatches": profile.num_minibatches,
            "update_epochs": profile.update_epochs,
            "actor_hidden": list(profile.hidden),
            "critic_hidden": list(profile.hidden),
            "reps": reps,
            "train_reps": train_reps,
            "warmup_reps": 1,
            "statistic": "median over timed repetitions: raw env (adapter, library) and rpo_jax PPO and RPO "
            "one call each after every Brax PPO epoch (train_reps + 2), Brax PPO its compile-free "
            "epochs (>= train_reps); population/sharding programs `reps` each, interleaved "
            "round-robin",
            "raw_scan_steps": profile.raw_steps,
            "population_env": population_env,
            "population_sizes": list(profile.population_sizes),
            "sharded_members": profile.sharded_members,
            "sections": list(args.only),
            "compilation_cache": None if args.no_cache else str(args.cache_dir),
        },
        "envs": {},
        "heavy_env": None,
        "population": None,
        "sharding": None,
        "quickstart": None,
        "load_average": {"start": list(load_start)},
    }

    adapters: dict[str, rpo_envs.Environment] = {}
    iterations: dict[str, int] = {}
    for name in dict.fromkeys(env_names + (population_env,)):
        adapters[name] = rpo_envs.make_env(name)
    rpo_programs: dict[str, dict[str, Timed]] = {}
    for name in env_names:
        adapter = adapters[name]
        entry: dict[str, Any] = {
            "observation_size": adapter.observation_size,
            "action_size": adapter.action_size,
            "episode_length": adapter.episode_length,
            "raw": None,
            "train": None,
            "brax_ppo": None,
            "ratios": None,
        }
        result["envs"][name] = entry
        # The raw-env programs and the rpo_jax trainers are compiled first, then timed in the
        # same rounds (one call each after every Brax PPO epoch), so the ratios between them
        # compare calls made seconds apart under the same background load.
        timed_here: dict[str, Timed] = {}
        raw_timeds: dict[str, Timed] = {}
        raw_sps = None
        if "raw" in args.only:
            _say(f"[{name}] raw env")
            entry["raw"], raw_timeds = compile_raw(name, adapter, profile, profile.num_envs, log)
            timed_here.update({f"raw {k}": t for k, t in raw_timeds.items()})
            raw_sps = raw_timeds["adapter"].steps / raw_timeds["adapter"].warmup_seconds
        iterations[name] = args.iterations or calibrate_iterations(profile, raw_sps, profile.num_envs)
        entry["iterations_per_rep"] = iterations[name]
        # Each trainer's state is called 1 + (train_reps + 2) times here and, for the population
        # env, `reps` more as the single run: the learning rate anneals over all of those calls.
        config = train_config(profile, name, profile.num_envs, iterations[name], train_reps + 2 + reps)
        if "train" in args.only:
            _say(f"[{name}] rpo_jax train ({iterations[name]} iterations/rep)")
            train_info, timeds = compile_rpo(adapter, config, iterations[name], log)
            rpo_programs[name] = timeds
            for t in timeds.values():
                t.warmup()
            timed_here.update(timeds)
        between = None
        if timed_here and "brax" in args.only:
            # One call of each program after every Brax epoch: all alternate with Brax,
            # so drifting background load hits them alike.
            def between():
                for t in timed_here.values():
                    t.rep()

        if "brax" in args.only:
            _say(f"[{name}] Brax PPO" + (" (alternating with rpo_jax repetitions)" if between else ""))
            try:
                entry["brax_ppo"] = bench_brax_ppo(
                    name, adapter, config, iterations[name], train_reps, log, between_epochs=between
                )
            except Exception as err:  # noqa: BLE001 - report, keep benchmarking
                entry["brax_ppo"] = {"error": f"{type(err).__name__}: {err}", "steps_per_s": None}
        if timed_here:
            missing = train_reps - min(len(t.times) for t in timed_here.values())
            if missing > 0:  # no Brax run (or it failed early)
                round_robin(list(timed_here.values()), missing)
        for variant, t in raw_timeds.items():
            entry["raw"][variant].update(t.result())
        if "train" in args.only:
            entry["train"] = rpo_result(train_info, timeds)
        entry["ratios"] = _env_ratios(entry)
        _say(f"[{name}] done at {time.perf_counter() - wall_start:.0f} s")

    raws = {n: ((e["raw"] or {}).get("adapter") or {}).get("steps_per_s") for n, e in result["envs"].items()}
    raws = {n: v for n, v in raws.items() if v}
    if raws:
        result["heavy_env"] = min(raws, key=raws.get)  # the slowest env to simulate

    # ---- population scaling and sharding: compile every program, then time them interleaved
    adapter = adapters[population_env]
    total = profile.num_envs
    if population_env not in iterations:
        iterations[population_env] = args.iterations or profile.fixed_iterations or 1
    pop_iters = iterations[population_env]
    one_device = devices[:1]
    if "population" in args.only or "sharding" in args.only:
        if population_env in rpo_programs and pop_iters == rpo_programs[population_env]["ppo"].steps // (
            total * profile.num_steps
        ):
            old = rpo_programs[population_env]["ppo"]
            single = Timed(old.fn, old.carry, old.steps)  # same compiled program, fresh timings
            single.warmed = True
            single_compile = (result["envs"][population_env]["train"] or {}).get("compile")
        else:
            _say(f"[population] single run of {total} envs")
            info, timeds = compile_rpo(
                adapter, train_config(profile, population_env, total, pop_iters, reps), pop_iters, log
            )
            single, single_compile = timeds["ppo"], info["compile"]
        sizes = [
            s
            for s in profile.population_sizes
            if total % s == 0 and (total // s * profile.num_steps) % profile.num_minibatches == 0
        ]
        if "population" not in args.only:
            sizes = [s for s in sizes if s == profile.sharded_members]
        programs: dict[tuple[int, int], tuple[dict[str, Any], Timed]] = {}
        for members in sizes:
            _say(f"[population] {members} x {total // members} envs")
            programs[(members, 1)] = compile_population(
                adapter, profile, total, members, one_device, pop_iters, reps, log
            )
        members = profile.sharded_members
        shard: dict[str, Any] = {"env": population_env, "members": members, "devices": len(devices)}
        if "sharding" not in args.only:
            shard = None
        elif len(devices) < 2:
            shard["skipped"] = "one device only: nothing to shard over"
        elif members % len(devices) or total % members or (members, 1) not in programs:
            shard["skipped"] = f"{members} members do not split over {len(devices)} devices / {total} envs"
        else:
            _say(f"[sharding] {members} members on {len(devices)} devices")
            programs[(members, len(devices))] = compile_population(
                adapter, profile, total, members, devices, pop_iters, reps, log
            )
        _say(f"[population] timing {len(programs) + 1} programs, interleaved")
        round_robin([single] + [t for _, t in programs.values()], reps)
        single_sps = single.result()["steps_per_s"]
        runs = {}
        for (members, ndev), (info, timed) in programs.items():
            runs[(members, ndev)] = {**info, **timed.result()}
            runs[(members, ndev)]["vs_single_run"] = ratio(runs[(members, ndev)]["steps_per_s"], single_sps)
        if "population" in args.only:
            result["population"] = {
                "env": population_env,
                "total_envs": total,
                "iterations_per_rep": pop_iters,
                "single_run_steps_per_s": single_sps,
                "single_run": {
                    "what": "rpo_jax PPO, jit(trainer.run) of num_envs envs, no vmap",
                    "compile": single_compile,
                    **single.result(),
                },
                "runs": [runs[(m, 1)] for m in sizes],
            }
        if shard is not None and "skipped" not in shard:
            shard["one_device"] = runs[(members, 1)]
            shard["all_devices"] = runs[(members, len(devices))]
            shard["sharded_vs_single_device"] = ratio(
                shard["all_devices"]["steps_per_s"], shard["one_device"]["steps_per_s"]
            )
        result["sharding"] = shard

    if "quickstart" in args.only:
        _say(f"[quickstart] cold compile of {args.quickstart}")
        result["quickstart"] = bench_quickstart_compile(
            args.quickstart, log, single_device=devices[0].platform == "cpu"
        )

    result["targets"] = evaluate_targets(result)
    result["load_average"]["end"] = list(os.getloadavg())
    result["compile_cache_warm"] = any(e[1] == CACHE_HIT_EVENT for e in log.events)
    result["total_seconds"] = round(time.perf_counter() - wall_start, 1)

    rows = build_rows(result)
    table = table_markdown(rows)
    targets = targets_markdown(result["targets"], tiny=args.tiny)
    result["table_markdown"] = table

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{device_slug()}{'-tiny' if args.tiny else ''}-{stamp}.json"
    json_path.write_text(json.dumps(_jsonable(result), indent=2) + "\n", encoding="utf-8")

    summary = _summary_markdown(result, table, targets, json_path)
    print(summary)
    markdown = args.markdown if args.markdown is not None else (None if args.tiny else DEFAULT_MARKDOWN)
    if markdown is not None:
        key = f"{devices[0].platform}: {result['device']['device_kind']}" + (" (tiny)" if args.tiny else "")
        update_results_markdown(markdown, key, summary)
    return result


def _env_ratios(entry: dict[str, Any]) -> dict[str, float | None]:
    raw = entry.get("raw") or {}
    raw_sps = (raw.get("adapter") or {}).get("steps_per_s")
    lib_sps = (raw.get("library") or {}).get("steps_per_s")
    train = entry.get("train") or {}
    brax = (entry.get("brax_ppo") or {}).get("steps_per_s")
    ppo = (train.get("ppo") or {}).get("steps_per_s")
    rpo = (train.get("rpo") or {}).get("steps_per_s")
    return {
        "ppo_vs_brax_ppo": ratio(ppo, brax),
        "rpo_vs_brax_ppo": ratio(rpo, brax),
        "ppo_vs_raw": ratio(ppo, raw_sps),
        "rpo_vs_raw": ratio(rpo, raw_sps),
        "brax_ppo_vs_library_raw": ratio(brax, lib_sps),
        "adapter_vs_library_raw": ratio(raw_sps, lib_sps),
    }


def _summary_markdown(result: dict[str, Any], table: str, targets: str, json_path: Path) -> str:
    d, s = result["device"], result["settings"]
    load = result["load_average"]
    try:
        shown = json_path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        shown = json_path
    iters = ", ".join(f"{n}: {e.get('iterations_per_rep')}" for n, e in result["envs"].items())
    lines = [
        f"## {d['platform']}: {d['device_kind']} x{d['device_count']}" + (" (tiny)" if s["tiny"] else ""),
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date_utc']}, jax {result['versions']['jax']}, brax {result['versions'].get('brax')}, "
        f"host {d['host_cpu']} ({d['host_cpu_count']} cores), XLA_FLAGS=`{d['xla_flags']}` "
        f"(host devices set by: {d['host_devices_forced_by']}), total {result['total_seconds']} s, "
        f"load average {load['start'][0]:.2f} at start / {load['end'][0]:.2f} at end.  ",
        f"Sizes: {s['num_envs']} envs x {s['num_steps']} steps per iteration, {s['num_minibatches']} minibatches, "
        f"{s['update_epochs']} epochs, (64, 64) networks; iterations per repetition: {iters}; "
        f"steps/s = median of the timed repetitions after 1 warm-up (raw env and rpo_jax training: one call "
        f"of each program after each of Brax PPO's {s['train_reps']} + 2 epochs, Brax: its compile-free "
        f"epochs; population and sharding: {s['reps']} per program, interleaved round-robin); "
        f"compile s = trace + lower + XLA "
        f"compile (cache state from jax.monitoring; Brax: estimated from its compiling epochs). "
        f"Persistent cache {'warm for some compiles' if result['compile_cache_warm'] else 'cold (no hits)'}. "
        f"Median spread (slowest - fastest) / median of a program's repetitions: {_median_spread(result)}; "
        f"ratios closer to a target than that are within noise. "
        f"JSON: `{shown}`",
        "",
        table,
        "",
        "Targets:",
        "",
        targets,
        "",
    ]
    return "\n".join(lines)


def _median_spread(result: dict[str, Any]) -> str:
    spreads = []

    def walk(x):
        if isinstance(x, dict):
            if "spread" in x and "rep_seconds" in x:
                spreads.append(x["spread"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk({k: result.get(k) for k in ("envs", "population", "sharding")})
    return f"{statistics.median(spreads):.0%}" if spreads else "n/a"


def _library_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for dist in ("jaxlib", "brax", "playground", "gymnax", "flax", "optax", "mujoco", "mujoco-mjx"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
