"""Throughput benchmark of rpo_jax: env steps per second, side by side, in one process.

Usage (from the repository root)::

    python -m bench.throughput                      # full run, sizes picked for the device
    python -m bench.throughput --envs brax/inverted_pendulum,brax/ant
    python -m bench.throughput --tiny --out /tmp/b  # seconds-scale smoke run (tests)

What is measured, on whatever device JAX sees (``jax.default_backend()``):

1. ``raw env``: the ceiling of any trainer on that env and device. ``jit`` of a
   ``lax.scan`` over ``vmap(env.step)`` with uniform random actions, no learning.
   Two variants: ``adapter`` is rpo_jax's ``Environment.step`` as the trainer steps
   it (fresh starts from a start cache with ``rpo_jax.envs.starts.step``, as
   ``train.reset_pool`` does: every episode its own reset, computed in batches) and
   ``library`` is the library env under Brax's own training wrappers
   (``brax.envs.training.wrap`` / ``mujoco_playground.wrapper.wrap_for_brax_training``,
   which auto-reset to a cached first state); the latter is what Brax PPO steps.
2. ``rpo_jax``: the full train loop (rollout + GAE + update) of
   ``rpo_jax.training.train.make_trainer(config).run`` with PPO (alpha = 0) and RPO
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
   "Brax PPO mapping" in bench/throughput_brax.py), timed from its own per-epoch
   timing metrics ("Brax timing" there).
4. ``population``: ``jit(vmap(trainer.run))`` over S members x (N/S) envs each,
   S in {1, 4, 16, 64}, against the single (un-vmapped) run of N envs from 2.
   Same total env count, iterations and env steps per repetition. All population
   and sharding programs (and the single run) are compiled first and then timed
   round-robin, one call each per round, so drifting background load on a shared
   machine hits them alike.
5. ``sharding``: the S-member population program placed exactly as
   ``rpo_jax.training.population.run_population`` places it (a 1-D ``Mesh`` over the
   population axis, ``NamedSharding`` in and out) over 1 device vs all devices.
6. ``quickstart compile``: the compile time of ``configs/quickstart.yaml`` through
   ``rpo_jax.training.population.run_population`` (its ``vmap(init)`` and ``vmap(run)``
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

Modules
-------
This module sets up the devices, parses the command line and assembles the result;
``bench/throughput_sections.py`` runs the sections, ``bench/throughput_programs.py``
compiles the programs they time, ``bench/throughput_brax.py`` runs Brax PPO, and
``bench/throughput_report.py`` writes the table, the targets, RESULTS.md and the JSON.
Shared timing and compile plumbing: ``bench/common.py``.
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

# XLA_FLAGS is final here: what follows may import JAX. (No bench.throughput_* module imports
# this one: under ``python -m`` that would execute it a second time, as ``bench.throughput``.)
import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402

from bench.common import (  # noqa: E402
    CACHE_HIT_EVENT,
    PROFILES,
    REPO_ROOT,
    CompileLog,
    Profile,
    utc_stamp,
    write_json,
)
from bench.throughput_report import (  # noqa: E402
    build_rows,
    device_slug,
    evaluate_targets,
    host_cpu,
    jsonable,
    library_versions,
    summary_markdown,
    table_markdown,
    targets_markdown,
    update_results_markdown,
)
from bench.throughput_sections import Bench, bench_env, bench_population, bench_quickstart  # noqa: E402
from rpo_jax import envs as rpo_envs  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench" / "results"
DEFAULT_MARKDOWN = REPO_ROOT / "bench" / "RESULTS.md"
DEFAULT_QUICKSTART = REPO_ROOT / "configs" / "quickstart.yaml"
DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/rpo_jax_bench_cache"))

SECTIONS = ("raw", "train", "brax", "population", "sharding", "quickstart")


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

    profile = PROFILES["tiny" if args.tiny else ("gpu" if jax.default_backend() == "gpu" else "cpu")]
    if args.num_envs:
        profile = dataclasses.replace(profile, num_envs=args.num_envs)
    env_names = tuple(e.strip() for e in args.envs.split(",") if e.strip()) if args.envs else profile.envs
    for name in env_names:
        rpo_envs.check_env_name(name)
    population_env = args.population_env or env_names[0]
    bench = Bench(
        only=args.only,
        profile=profile,
        reps=args.reps or profile.reps,
        train_reps=args.train_reps or profile.train_reps,
        iterations=args.iterations,
        log=log,
        wall_start=wall_start,
    )
    result = describe_run(argv, args, bench, env_names, population_env)

    adapters = {name: rpo_envs.make_env(name) for name in dict.fromkeys(env_names + (population_env,))}
    trained = {}  # env: (its rpo_jax PPO program, its compile record)
    for name in env_names:
        result["envs"][name], timeds = bench_env(bench, name, adapters[name])
        if timeds:
            trained[name] = (timeds["ppo"], result["envs"][name]["train"]["compile"])
    result["heavy_env"] = heavy_env(result["envs"])
    if "population" in args.only or "sharding" in args.only:
        if population_env in result["envs"]:
            iterations = result["envs"][population_env]["iterations_per_rep"]
        else:
            iterations = args.iterations or profile.fixed_iterations or 1
        result["population"], result["sharding"] = bench_population(
            bench, population_env, adapters[population_env], iterations, trained.get(population_env)
        )
    if "quickstart" in args.only:
        result["quickstart"] = bench_quickstart(bench, args.quickstart)
    write_results(result, args, log, wall_start)
    return result


def describe_run(
    argv: list[str], args: argparse.Namespace, bench: Bench, env_names: tuple[str, ...], population_env: str
) -> dict[str, Any]:
    """The result record before any section ran: command, versions, device, settings."""
    devices = jax.devices()
    return {
        "command": "python -m bench.throughput" + "".join(" " + shlex.quote(a) for a in argv),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {
            "jax": jax.__version__,
            "python": platform.python_version(),
            **library_versions(),
        },
        "device": {
            "backend": jax.default_backend(),
            "platform": devices[0].platform,
            "device_kind": devices[0].device_kind,
            "device_count": len(devices),
            "devices": [str(d) for d in devices],
            "host_cpu": host_cpu(),
            "host_cpu_count": os.cpu_count(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "host_devices_forced_by": _XLA_FLAGS_SOURCE,
        },
        "settings": _settings(args, bench, env_names, population_env),
        "envs": {},
        "heavy_env": None,
        "population": None,
        "sharding": None,
        "quickstart": None,
        "load_average": {"start": list(os.getloadavg())},
    }


def _settings(
    args: argparse.Namespace, bench: Bench, env_names: tuple[str, ...], population_env: str
) -> dict[str, Any]:
    profile: Profile = bench.profile
    return {
        "profile": profile.name,
        "tiny": args.tiny,
        "envs": list(env_names),
        "num_envs": profile.num_envs,
        "num_steps": profile.num_steps,
        "num_minibatches": profile.num_minibatches,
        "update_epochs": profile.update_epochs,
        "actor_hidden": list(profile.hidden),
        "critic_hidden": list(profile.hidden),
        "reps": bench.reps,
        "train_reps": bench.train_reps,
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
    }


def heavy_env(envs: dict[str, Any]) -> str | None:
    """The env slowest to simulate (lowest raw adapter steps/s); None without raw-env figures."""
    raws = {n: ((e["raw"] or {}).get("adapter") or {}).get("steps_per_s") for n, e in envs.items()}
    raws = {n: v for n, v in raws.items() if v}
    return min(raws, key=raws.get) if raws else None


def write_results(result: dict[str, Any], args: argparse.Namespace, log: CompileLog, wall_start: float) -> None:
    """Adds the targets and totals, writes the JSON, prints the summary and updates RESULTS.md."""
    result["targets"] = evaluate_targets(result)
    result["load_average"]["end"] = list(os.getloadavg())
    result["compile_cache_warm"] = any(e[1] == CACHE_HIT_EVENT for e in log.events)
    result["total_seconds"] = round(time.perf_counter() - wall_start, 1)
    table = table_markdown(build_rows(result))
    targets = targets_markdown(result["targets"], tiny=args.tiny)
    result["table_markdown"] = table

    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{device_slug()}{'-tiny' if args.tiny else ''}-{utc_stamp()}.json"
    write_json(json_path, jsonable(result))

    summary = summary_markdown(result, table, targets, json_path)
    print(summary)
    markdown = args.markdown if args.markdown is not None else (None if args.tiny else DEFAULT_MARKDOWN)
    if markdown is not None:
        key = f"{result['device']['platform']}: {result['device']['device_kind']}" + (" (tiny)" if args.tiny else "")
        update_results_markdown(markdown, key, summary)


if __name__ == "__main__":
    main()
