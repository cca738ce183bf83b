"""The sections of ``python -m bench.throughput``: compile their programs, time them, record them.

* :func:`bench_env` -- raw env, rpo_jax training and Brax PPO on one env, timed in the same rounds;
* :func:`bench_population` -- population scaling and sharding, timed round-robin;
* :func:`bench_quickstart` -- the quickstart's cold compile.

Each returns the JSON record of its section; bench/throughput.py's ``main`` assembles them.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import jax

from bench.common import CompileLog, Profile, Timed, ratio, round_robin, train_config
from bench.throughput_brax import bench_brax_ppo
from bench.throughput_programs import (
    bench_quickstart_compile,
    calibrate_iterations,
    compile_population,
    compile_raw,
    compile_rpo,
    rpo_result,
)
from rpo_jax import envs as rpo_envs
from rpo_jax.config import TrainConfig


@dataclasses.dataclass
class Bench:
    """What every section needs: the sections chosen, the sizes, the compile log, the start time."""

    only: tuple[str, ...]
    profile: Profile
    reps: int  # timed repetitions of the population and sharding programs (and the single run)
    train_reps: int  # timed rounds of the raw-env and rpo_jax programs (one after each Brax PPO epoch)
    iterations: int  # training iterations per repetition; 0 = calibrate from the raw-env speed
    log: CompileLog
    wall_start: float


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- raw env, rpo_jax, Brax PPO


def bench_env(bench: Bench, name: str, adapter: rpo_envs.Environment) -> tuple[dict[str, Any], dict[str, Timed]]:
    """The raw-env, rpo_jax and Brax PPO sections of one env; returns its record and rpo_jax's programs.

    The raw-env programs and the rpo_jax trainers are compiled first, then timed in the
    same rounds (one call each after every Brax PPO epoch), so the ratios between them
    compare calls made seconds apart under the same background load.
    """
    profile = bench.profile
    entry: dict[str, Any] = {
        "observation_size": adapter.observation_size,
        "action_size": adapter.action_size,
        "episode_length": adapter.episode_length,
        "raw": None,
        "train": None,
        "brax_ppo": None,
        "ratios": None,
    }
    timed_here: dict[str, Timed] = {}
    raw_timeds: dict[str, Timed] = {}
    raw_sps = None
    if "raw" in bench.only:
        say(f"[{name}] raw env")
        entry["raw"], raw_timeds = compile_raw(name, adapter, profile, profile.num_envs, bench.log)
        timed_here.update({f"raw {k}": t for k, t in raw_timeds.items()})
        raw_sps = raw_timeds["adapter"].steps / raw_timeds["adapter"].warmup_seconds
    iterations = bench.iterations or calibrate_iterations(profile, raw_sps, profile.num_envs)
    entry["iterations_per_rep"] = iterations
    # Each trainer's state is called 1 + (train_reps + 2) times here and, for the population
    # env, `reps` more as the single run: the learning rate anneals over all of those calls.
    config = train_config(profile, name, profile.num_envs, iterations, bench.train_reps + 2 + bench.reps)
    rpo_timeds: dict[str, Timed] = {}
    if "train" in bench.only:
        say(f"[{name}] rpo_jax train ({iterations} iterations/rep)")
        train_info, rpo_timeds = compile_rpo(adapter, config, iterations, bench.log)
        for t in rpo_timeds.values():
            t.warmup()
        timed_here.update(rpo_timeds)
    if "brax" in bench.only:
        entry["brax_ppo"] = _brax_alternating(bench, name, adapter, config, iterations, list(timed_here.values()))
    if timed_here:
        missing = bench.train_reps - min(len(t.times) for t in timed_here.values())
        if missing > 0:  # no Brax run (or it failed early)
            round_robin(list(timed_here.values()), missing)
    for variant, t in raw_timeds.items():
        entry["raw"][variant].update(t.result())
    if "train" in bench.only:
        entry["train"] = rpo_result(train_info, rpo_timeds)
    entry["ratios"] = env_ratios(entry)
    say(f"[{name}] done at {time.perf_counter() - bench.wall_start:.0f} s")
    return entry, rpo_timeds


def _brax_alternating(
    bench: Bench, name: str, adapter: rpo_envs.Environment, config: TrainConfig, iterations: int, timeds: list[Timed]
) -> dict[str, Any]:
    """Brax PPO with one call of each of ``timeds`` after every Brax epoch.

    All of them alternate with Brax, so drifting background load hits them alike.
    """
    between = None
    if timeds:

        def between():
            for t in timeds:
                t.rep()

    say(f"[{name}] Brax PPO" + (" (alternating with rpo_jax repetitions)" if between else ""))
    try:
        return bench_brax_ppo(name, adapter, config, iterations, bench.train_reps, bench.log, between_epochs=between)
    except Exception as err:  # noqa: BLE001 - report, keep benchmarking
        return {"error": f"{type(err).__name__}: {err}", "steps_per_s": None}


def env_ratios(entry: dict[str, Any]) -> dict[str, float | None]:
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


# --------------------------------------------------------------------------- population and sharding


def bench_population(
    bench: Bench,
    env: str,
    adapter: rpo_envs.Environment,
    iterations: int,
    trained: tuple[Timed, dict[str, Any] | None] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The population and sharding sections: every program compiled first, then timed round-robin.

    ``trained`` is the env's rpo_jax PPO program and its compile record from :func:`bench_env`,
    reused as the single run when it runs ``iterations`` per call. Returns the
    ``population`` and ``sharding`` records (None for a section not chosen).
    """
    profile, total, devices = bench.profile, bench.profile.num_envs, jax.devices()
    single, single_compile = _single_run(bench, env, adapter, iterations, trained)
    sizes = [
        s
        for s in profile.population_sizes
        if total % s == 0 and (total // s * profile.num_steps) % profile.num_minibatches == 0
    ]
    if "population" not in bench.only:
        sizes = [s for s in sizes if s == profile.sharded_members]
    programs: dict[tuple[int, int], tuple[dict[str, Any], Timed]] = {}
    for members in sizes:
        say(f"[population] {members} x {total // members} envs")
        programs[(members, 1)] = compile_population(
            adapter, profile, total, members, devices[:1], iterations, bench.reps, bench.log
        )
    shard = _sharding_plan(bench, env, programs)
    if shard is not None and "skipped" not in shard:
        say(f"[sharding] {profile.sharded_members} members on {len(devices)} devices")
        programs[(profile.sharded_members, len(devices))] = compile_population(
            adapter, profile, total, profile.sharded_members, devices, iterations, bench.reps, bench.log
        )
    say(f"[population] timing {len(programs) + 1} programs, interleaved")
    round_robin([single] + [t for _, t in programs.values()], bench.reps)
    single_sps = single.result()["steps_per_s"]
    runs = {}
    for key, (info, timed) in programs.items():
        runs[key] = {**info, **timed.result()}
        runs[key]["vs_single_run"] = ratio(runs[key]["steps_per_s"], single_sps)
    population = None
    if "population" in bench.only:
        population = {
            "env": env,
            "total_envs": total,
            "iterations_per_rep": iterations,
            "single_run_steps_per_s": single_sps,
            "single_run": {
                "what": "rpo_jax PPO, jit(trainer.run) of num_envs envs, no vmap",
                "compile": single_compile,
                **single.result(),
            },
            "runs": [runs[(m, 1)] for m in sizes],
        }
    if shard is not None and "skipped" not in shard:
        shard["one_device"] = runs[(profile.sharded_members, 1)]
        shard["all_devices"] = runs[(profile.sharded_members, len(devices))]
        shard["sharded_vs_single_device"] = ratio(
            shard["all_devices"]["steps_per_s"], shard["one_device"]["steps_per_s"]
        )
    return population, shard


def _single_run(
    bench: Bench,
    env: str,
    adapter: rpo_envs.Environment,
    iterations: int,
    trained: tuple[Timed, dict[str, Any] | None] | None,
) -> tuple[Timed, dict[str, Any] | None]:
    """The un-vmapped run of all envs the populations are compared with, and its compile record.

    The rpo_jax PPO program of :func:`bench_env` when it runs as many iterations (fresh
    timings, same compiled program), else a newly compiled one.
    """
    total = bench.profile.num_envs
    if trained is not None and iterations == trained[0].steps // (total * bench.profile.num_steps):
        old, old_compile = trained
        single = Timed(old.fn, old.carry, old.steps)
        single.warmed = True
        return single, old_compile
    say(f"[population] single run of {total} envs")
    config = train_config(bench.profile, env, total, iterations, bench.reps)
    info, timeds = compile_rpo(adapter, config, iterations, bench.log)
    return timeds["ppo"], info["compile"]


def _sharding_plan(
    bench: Bench, env: str, programs: dict[tuple[int, int], tuple[dict[str, Any], Timed]]
) -> dict[str, Any] | None:
    """The sharding record to fill, ``skipped`` (and why) when it cannot run; None if not chosen."""
    if "sharding" not in bench.only:
        return None
    devices, members, total = jax.devices(), bench.profile.sharded_members, bench.profile.num_envs
    shard: dict[str, Any] = {"env": env, "members": members, "devices": len(devices)}
    if len(devices) < 2:
        shard["skipped"] = "one device only: nothing to shard over"
    elif members % len(devices) or total % members or (members, 1) not in programs:
        shard["skipped"] = f"{members} members do not split over {len(devices)} devices / {total} envs"
    return shard


# --------------------------------------------------------------------------- quickstart compile


def bench_quickstart(bench: Bench, path: Path) -> dict[str, Any]:
    say(f"[quickstart] cold compile of {path}")
    return bench_quickstart_compile(path, bench.log, single_device=jax.devices()[0].platform == "cpu")
