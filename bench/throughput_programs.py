"""The programs ``python -m bench.throughput`` times, compiled ahead of time (see bench/throughput.py).

* :func:`compile_raw` -- 1. the raw env: rpo_jax's adapter and the library env, random actions;
* :func:`compile_rpo` -- 2. rpo_jax's train loop, PPO and RPO in one program;
* :func:`compile_population` -- 4./5. a population, placed as ``run_population`` places it;
* :func:`bench_quickstart_compile` -- 6. the cold compile of ``configs/quickstart.yaml``.

(3., Brax PPO, is in bench/throughput_brax.py.) Each ``compile_*`` returns its compile
records and :class:`bench.common.Timed` programs; bench/throughput_sections.py times them.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bench.common import (
    REPO_ROOT,
    CompileLog,
    Profile,
    Timed,
    compile_aot,
    library_batched_env,
    persistent_cache_disabled,
    train_config,
)
from rpo_jax import envs as rpo_envs
from rpo_jax.config import HParams, SweepConfig, TrainConfig
from rpo_jax.envs import starts as rpo_starts
from rpo_jax.training.population import MESH_AXIS, POPULATION_AXIS, build_population, per_device
from rpo_jax.training.train import as_hparams, make_trainer

# --------------------------------------------------------------------------- 1. raw env


def compile_raw(
    name: str, adapter: rpo_envs.Environment, profile: Profile, num_envs: int, log: CompileLog
) -> tuple[dict[str, Any], dict[str, Timed]]:
    """AOT-compiles and warms up the raw-env programs; the caller times them.

    Returns the compile records and a :class:`Timed` per variant: ``adapter`` always,
    ``library`` unless the library env could not be built (then its record holds the error).
    """
    out: dict[str, Any] = {"num_envs": num_envs, "scan_steps": profile.raw_steps}
    out["adapter"], adapter_timed = _compile_adapter_rollout(adapter, profile.raw_steps, num_envs, log)
    timeds = {"adapter": adapter_timed}
    try:
        out["library"], timeds["library"] = _compile_library_rollout(name, adapter, profile.raw_steps, num_envs, log)
    except Exception as err:  # noqa: BLE001 - report, keep benchmarking
        out["library"] = {"error": f"{type(err).__name__}: {err}"}
    return out, timeds


def _compile_adapter_rollout(
    adapter: rpo_envs.Environment, steps: int, num_envs: int, log: CompileLog
) -> tuple[dict[str, Any], Timed]:
    """rpo_jax's adapter, auto-resetting to fresh starts from a start cache (rpo_jax.envs.starts.step).

    Exactly as the trainer steps its envs (train.reset_pool). The carry accumulates reward
    and episode-end sums so nothing of a step is dead code except what no trainer needs.
    """
    low, high = jnp.asarray(adapter.action_low), jnp.asarray(adapter.action_high)
    shape = (num_envs, adapter.action_size)
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
    return info, Timed(fn, carry, num_envs * steps).warmup()


def _compile_library_rollout(
    name: str, adapter: rpo_envs.Environment, steps: int, num_envs: int, log: CompileLog
) -> tuple[dict[str, Any], Timed]:
    """The library env with Brax's training wrappers (cached first-state auto-reset)."""
    low, high = jnp.asarray(adapter.action_low), jnp.asarray(adapter.action_high)
    shape = (num_envs, adapter.action_size)
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
    return info, Timed(fn, carry, num_envs * steps).warmup()


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
    """The compile records, and per algorithm its timings and whether its last value loss was finite."""
    out = dict(info)
    for label, alpha in (("ppo", 0.0), ("rpo", 0.5)):
        metrics = timeds[label].carry[1]
        out[label] = {
            "alpha": alpha,
            **timeds[label].result(),
            "finite_loss": bool(np.all(np.isfinite(np.asarray(metrics["value_loss"])))),
        }
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
    run_population names it, so start caches refill together; with several devices each runs
    its own members, ``population.per_device``, also as run_population) with the population
    axis sharded over a 1-D mesh of ``devices`` (NamedSharding in and out, state donated).
    """
    config = train_config(profile, adapter.name, total_envs // members, iterations, reps)
    trainer = dataclasses.replace(make_trainer(config, env=adapter), population_axis=POPULATION_AXIS)
    population = population_hparams(members)
    mesh = Mesh(np.asarray(devices), (MESH_AXIS,))
    sharding = NamedSharding(mesh, PartitionSpec(MESH_AXIS))
    evaluate = jax.device_put(np.asarray(False), NamedSharding(mesh, PartitionSpec()))
    keys = jax.device_put(population.keys, sharding)
    hparams = jax.device_put(population.hparams, sharding)
    init = jax.jit(
        jax.vmap(trainer.init, axis_name=POPULATION_AXIS), in_shardings=(sharding, sharding), out_shardings=sharding
    )
    run = jax.jit(
        per_device(
            lambda s, h, e: jax.vmap(lambda s, h: trainer.run(s, h, iterations), axis_name=POPULATION_AXIS)(s, h), mesh
        ),
        in_shardings=(sharding, sharding, evaluate.sharding),
        out_shardings=sharding,
        donate_argnums=0,
    )
    init_fn, init_info = compile_aot(init, keys, hparams, log=log)
    state = init_fn(keys, hparams)
    run_fn, run_info = compile_aot(run, state, hparams, evaluate, log=log)
    info = {
        "members": members,
        "envs_per_member": total_envs // members,
        "total_envs": total_envs,
        "devices": len(devices),
        "iterations_per_rep": iterations,
        "compile_init": init_info,
        "compile": run_info,
    }
    return info, Timed(
        lambda c: run_fn(c[0], hparams, evaluate), (state, None), total_envs * profile.num_steps * iterations
    )


# --------------------------------------------------------------------------- 6. quickstart compile


class _StopAfterFirstChunk(Exception):
    pass


def bench_quickstart_compile(path: Path, log: CompileLog, single_device: bool) -> dict[str, Any]:
    """Cold compile of ``run_population`` on the quickstart config (cache disabled).

    Wall time from the call to the first progress report minus the run time the report
    gives; the run is then aborted.
    """
    import yaml

    from rpo_jax.runs.config_io import config_from_dict
    from rpo_jax.training.population import run_population

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
