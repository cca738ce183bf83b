"""Population scaling at fixed per-agent work: per-agent seconds and aggregate env steps/s for 1, 2, 4, ... agents.

Every agent keeps its own envs (``--num-envs``, default 8 x 256 steps per iteration, 10 epochs of 8
minibatches) and trains for the same horizon (env steps per agent, one timed call); the population
grows. Each size is the program a sweep compiles (``rpo_jax.training.population``: ``population_trainer``,
``over_members``, ``chunk_program``, ``per_device`` over ``gcd(size, --devices)`` devices, as
``run_population`` places it), compiled ahead of time (compile time recorded apart), called once
untimed, then timed in ``--reps`` rounds of one call per size (``bench.common.round_robin``), so
background load hits all sizes alike. Per size: the median call's seconds / agents (*per-agent
seconds*), agents x horizon / median seconds (*aggregate env steps/s*), and process CPU seconds /
wall seconds of the calls (*cores busy*). ``per_agent_flat_from``: the smallest size whose per-agent
seconds are within 10 % of the fastest size's.

The largest population that fits one device comes from ``rpo_jax.runs.plan.make_plan`` (what ``rpo-jax
plan`` prints: the chunk program compiled for 2 and 8 members, XLA's memory analysis) against
``--device-memory`` (default: a GPU's allocator limit; a CPU's physical memory). JSON and a log-log
plot (PNG, the plan's fit marked) go to ``--out``, rewritten after every round so a run cut short
keeps what it measured. Sizes per backend (``SCALING``): GPU 1..256 agents, horizon 1M env steps per
agent; CPU 1..64, 16,384 (gymnax) and 2,048 (Brax / DM Control) steps; ``--tiny`` for tests.

    python -m bench.scaling [--envs gymnax/Pendulum-v1,brax/hopper] [--sizes 1,2,4,8] [--horizon STEPS]
                            [--num-envs 8] [--reps 3] [--devices N] [--device-memory 80GB] [--no-cache]
                            [--tiny] [--out bench/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, CompileLog, Timed, compile_aot, round_robin, utc_stamp, write_json

PENDULUM, HOPPER = "gymnax/Pendulum-v1", "brax/hopper"
FLAT_WITHIN = 0.10  # per-agent seconds within 10 % of the fastest size count as flat


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Sizes of one scaling run: per-agent work per iteration, horizons, population sizes."""

    sizes: tuple[int, ...]
    envs: tuple[str, ...]
    horizon_gymnax: int  # env steps per agent per timed call, gymnax envs
    horizon_physics: int  # the same for Brax and DM Control envs
    reps: int
    num_envs: int = 8
    num_steps: int = 256
    num_minibatches: int = 8
    update_epochs: int = 10


POWERS = tuple(2**k for k in range(9))  # 1 .. 256
SCALING = {
    "gpu": Scaling(POWERS, (PENDULUM, HOPPER), 1_000_000, 1_000_000, reps=3),
    "cpu": Scaling(POWERS[:7], (PENDULUM, HOPPER), 16_384, 2_048, reps=3),
    "tiny": Scaling((1, 2), (PENDULUM,), 32, 32, reps=2, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1),
}


class CpuTimed(Timed):
    """:class:`bench.common.Timed` that also records the process CPU seconds of every timed call."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cpu: list[float] = []

    def rep(self) -> float:
        self.warmup()
        start = time.process_time()
        wall = super().rep()
        self.cpu.append(time.process_time() - start)
        return wall


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"bench.scaling: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        fail(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m bench.scaling", description=__doc__.splitlines()[0])
    p.add_argument("--envs", help=f"comma-separated env names (default {PENDULUM},{HOPPER}; --tiny: {PENDULUM})")
    p.add_argument("--sizes", help="comma-separated population sizes (default GPU 1..256, CPU 1..64, --tiny 1,2)")
    p.add_argument("--horizon", type=int, default=0, help="env steps per agent per timed call (whole iterations)")
    p.add_argument("--num-envs", type=int, default=0, help="envs per agent (default 8; --tiny 4)")
    p.add_argument("--reps", type=int, default=0, help="timed rounds after the untimed one (default 3; --tiny 2)")
    p.add_argument("--devices", type=int, default=0, help="devices a population may use (default all)")
    p.add_argument("--device-memory", help="memory of one device for the plan's fit, e.g. 80GB (default: detected)")
    p.add_argument("--no-cache", action="store_true", help="no persistent compilation cache (cold compiles)")
    p.add_argument("--tiny", action="store_true", help="seconds-scale sizes, for tests")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="directory of the JSON and PNG")
    args = p.parse_args(argv)
    try:
        args.sizes = _ints(args.sizes, "--sizes") if args.sizes else None
        args.envs = tuple(e.strip() for e in args.envs.split(",") if e.strip()) if args.envs else None
    except ValueError as err:
        p.error(str(err))
    if args.envs is not None:
        from rpo_jax import envs as rpo_envs

        for name in args.envs or ("",):
            try:
                rpo_envs.check_env_name(name)
            except ValueError as err:
                p.error(f"--envs: {err}")
    for flag in ("horizon", "num_envs", "reps", "devices"):
        if getattr(args, flag) < 0:
            p.error(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    if args.device_memory is not None:
        from rpo_jax.config import ConfigError
        from rpo_jax.runs.plan import parse_bytes

        try:
            args.device_bytes = parse_bytes(args.device_memory)
        except ConfigError as err:
            p.error(str(err))
    return args


def _ints(text: str, flag: str) -> tuple[int, ...]:
    parts = [s.strip() for s in text.split(",") if s.strip()]
    if not parts or not all(s.isdigit() and int(s) > 0 for s in parts):
        raise ValueError(f"{flag} must be comma-separated positive integers, got {text!r}")
    return tuple(sorted(set(int(s) for s in parts)))


def experiment(scaling: Scaling, env: str, horizon: int, size: int):
    """The ExperimentConfig of ``size`` agents, one chunk = the horizon's whole iterations."""
    from rpo_jax.runs import config_io

    iterations = max(1, horizon // (scaling.num_envs * scaling.num_steps))
    train = {
        "env": env,
        "num_envs": scaling.num_envs,
        "num_steps": scaling.num_steps,
        "num_minibatches": scaling.num_minibatches,
        "update_epochs": scaling.update_epochs,
        "total_timesteps": iterations * scaling.num_envs * scaling.num_steps,
    }
    return config_io.config_from_dict({"train": train, "sweep": {"seeds": size, "chunk_iterations": iterations}})


def compile_size(config, devices: list, log: CompileLog) -> tuple[dict[str, Any], CpuTimed]:
    """AOT-compiles the init and chunk programs of ``config``'s population, placed as run_population does."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from rpo_jax.training import population as pop
    from rpo_jax.training.train import make_trainer

    population = pop.build_population(config.sweep, config.hparams)
    size, iterations = population.size, config.train.num_iterations
    mesh = Mesh(np.asarray(devices[: math.gcd(size, len(devices))]), (pop.MESH_AXIS,))
    sharding, replicated = NamedSharding(mesh, PartitionSpec(pop.MESH_AXIS)), NamedSharding(mesh, PartitionSpec())
    trainer = pop.population_trainer(make_trainer(config.train), size)
    init = jax.jit(pop.over_members(trainer.init, size), in_shardings=(sharding, sharding), out_shardings=sharding)
    program = pop.per_device(pop.chunk_program(trainer, size, iterations), mesh)
    run = jax.jit(program, in_shardings=(sharding, sharding, replicated), out_shardings=sharding, donate_argnums=0)
    keys, hparams = jax.device_put(population.keys, sharding), jax.device_put(population.hparams, sharding)
    flag = jax.device_put(np.asarray(False), replicated)
    init_fn, init_info = compile_aot(init, keys, hparams, log=log)
    state = init_fn(keys, hparams)
    run_fn, run_info = compile_aot(run, state, hparams, flag, log=log)
    steps = size * iterations * config.train.batch_size
    record = {
        "members": size,
        "devices": mesh.devices.size,
        "iterations": iterations,
        "agent_steps": iterations * config.train.batch_size,
        "compile_s": round(init_info["compile_s"] + run_info["compile_s"], 3),
        "compile": {"init": init_info, "run": run_info},
    }
    return record, CpuTimed(lambda c: run_fn(c[0], hparams, flag), (state, None), steps)


def device_memory(args: argparse.Namespace) -> tuple[float, str]:
    """Bytes of one device for the plan's fit, and where the figure came from."""
    import jax

    if getattr(args, "device_bytes", None):
        return args.device_bytes, "--device-memory"
    stats = jax.devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return float(stats["bytes_limit"]), "allocator limit (memory_stats bytes_limit)"
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "physical memory of the host"


def planned_fit(config, device_bytes: float, log: CompileLog) -> dict[str, Any]:
    """``rpo_jax.runs.plan.make_plan`` on this config: bytes per member, fixed cost, members that fit one device."""
    from rpo_jax.runs import plan

    mark, start = log.mark(), time.perf_counter()
    try:
        made = plan.make_plan(config)
        fits = made.fits(device_bytes)
    except Exception as err:  # noqa: BLE001 - report, keep benchmarking
        return {"error": f"{type(err).__name__}: {err}"}
    return {
        "per_member_bytes": round(made.per_member),
        "fixed_bytes": round(made.fixed),
        "device_bytes": device_bytes,
        "fits_members": fits,
        "plan_compile_s": round(time.perf_counter() - start, 3),
        **{k: v for k, v in log.summary(mark).items() if k == "cache"},
    }


def summarize(row: dict[str, Any], timed: CpuTimed) -> None:
    """Adds the timed figures of one size to its row (after every round)."""
    if not timed.times:
        return
    median = statistics.median(timed.times)
    row.update(
        rep_seconds=[round(t, 5) for t in timed.times],
        cpu_seconds=[round(t, 5) for t in timed.cpu],
        warmup_s=round(timed.warmup_seconds, 5),
        median_s=median,
        per_agent_s=median / row["members"],
        aggregate_steps_per_s=timed.steps / median,
        cores_busy=round(sum(timed.cpu) / sum(timed.times), 3),
        spread=round((max(timed.times) - min(timed.times)) / median, 3),
    )


def flat_from(rows: list[dict[str, Any]]) -> int | None:
    """The smallest size whose per-agent seconds are within FLAT_WITHIN of the fastest size's."""
    timed = [r for r in rows if "per_agent_s" in r]
    if not timed:
        return None
    best = min(r["per_agent_s"] for r in timed)
    return min(r["members"] for r in timed if r["per_agent_s"] <= (1 + FLAT_WITHIN) * best)


def plot(record: dict[str, Any], path: Path) -> None:
    """Log-log: per-agent seconds and aggregate env steps/s against agents.

    Dotted: perfect parallelism from the smallest size (per-agent seconds / agents); dashed: the plan's fit.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (env, entry) in enumerate(record["envs"].items()):
        rows = [r for r in entry["rows"] if "per_agent_s" in r]
        color = f"C{i}"
        label = f"{env} ({entry['agent_steps']:,} steps/agent)"
        if rows:
            x = [r["members"] for r in rows]
            axes[0].plot(x, [r["per_agent_s"] for r in rows], "o-", color=color, label=label)
            axes[1].plot(x, [r["aggregate_steps_per_s"] for r in rows], "o-", color=color, label=label)
            # perfect parallelism from the smallest size: per-agent seconds fall, steps/s grow, as 1/agents
            first = rows[0]
            axes[0].plot(x, [first["per_agent_s"] * first["members"] / m for m in x], ":", color=color, alpha=0.6)
            axes[1].plot(x, [first["aggregate_steps_per_s"] * m / first["members"] for m in x], ":", color=color,
                         alpha=0.6)  # fmt: skip
        fits = (entry.get("plan") or {}).get("fits_members")
        if fits:
            for ax in axes:
                ax.axvline(fits, color=color, linestyle="--", linewidth=1)
            axes[1].annotate(f"fits {fits:,} (plan)", (fits, 0.95 - 0.08 * i), xycoords=("data", "axes fraction"),
                             color=color, ha="right", fontsize=8)  # fmt: skip
    device = record["device"]
    for ax, ylabel in zip(axes, ("seconds per agent (its horizon)", "aggregate env steps/s")):
        ax.set(xscale="log", yscale="log", xlabel="agents (population size)", ylabel=ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].plot([], [], ":", color="gray", label="perfect parallelism from the smallest size")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Population scaling, fixed per-agent work: {device['device_kind']} ({device['backend']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    from rpo_jax.cli import use_all_cpu_cores

    use_all_cpu_cores()  # as the CLI: one CPU device per core (before anything starts JAX's backends)
    args = parse_args(argv)
    import jax

    from rpo_jax.runs import cache

    if not args.no_cache:
        cache.enable()
    backend = jax.default_backend()
    scaling = SCALING["tiny" if args.tiny else ("gpu" if backend == "gpu" else "cpu")]
    scaling = dataclasses.replace(
        scaling,
        sizes=args.sizes or scaling.sizes,
        envs=args.envs or scaling.envs,
        num_envs=args.num_envs or scaling.num_envs,
        reps=args.reps or scaling.reps,
    )
    if (scaling.num_envs * scaling.num_steps) % scaling.num_minibatches:
        fail(f"--num-envs {scaling.num_envs}: envs x {scaling.num_steps} steps must split into minibatches")
    if args.devices > jax.device_count():
        fail(f"--devices {args.devices}: only {jax.device_count()} device(s) here")
    devices = jax.devices()[: args.devices or jax.device_count()]
    device_bytes, memory_source = device_memory(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scaling-{backend}{'-tiny' if args.tiny else ''}-{utc_stamp()}"
    record: dict[str, Any] = {
        "bench": "scaling",
        "command": "python -m bench.scaling " + " ".join(argv),
        "device": {
            "backend": backend,
            "device_kind": devices[0].device_kind,
            "devices": len(devices),
            "host_cores": len(os.sched_getaffinity(0)),
            "device_memory_bytes": device_bytes,
            "device_memory_source": memory_source,
        },
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
        "settings": dataclasses.asdict(scaling),
        "statistic": "median of the timed rounds (one call per size per round, interleaved) after one untimed call",
        "envs": {},
        "load_average": {"start": list(os.getloadavg())},
        "json": str(stem.with_suffix(".json")),
        "plot": str(stem.with_suffix(".png")),
    }
    log = CompileLog()
    for env in scaling.envs:
        horizon = args.horizon or (scaling.horizon_gymnax if env.startswith("gymnax/") else scaling.horizon_physics)
        record["envs"][env] = {"horizon_requested": horizon, "rows": [], "plan": None}
        run_env(record, env, scaling, horizon, devices, device_bytes, log)
        print(table(env, record["envs"][env]), flush=True)
    print(f"wrote {record['json']} and {record['plot']}")
    return record


def run_env(record: dict, env: str, scaling: Scaling, horizon: int, devices: list, device_bytes: float, log) -> None:
    """Compiles every size of ``env``, plans its fit, then times the sizes round-robin; saves after each step."""
    import numpy as np

    entry, timeds = record["envs"][env], []

    def save() -> None:
        record["load_average"]["end"] = list(os.getloadavg())
        write_json(record["json"], record)

    for size in scaling.sizes:
        row, timed = compile_size(experiment(scaling, env, horizon, size), devices, log)
        entry["rows"].append(row)
        entry["agent_steps"] = row["agent_steps"]
        timeds.append(timed)
        say(f"[{env}] {size} agents on {row['devices']} device(s): compiled in {row['compile_s']:.1f} s")
        save()
    entry["plan"] = planned_fit(experiment(scaling, env, horizon, 8), device_bytes, log)
    for t in timeds:
        t.warmup()
    for r in range(scaling.reps):
        round_robin(timeds, 1)
        for row, timed in zip(entry["rows"], timeds):
            summarize(row, timed)
        entry["per_agent_flat_from"] = flat_from(entry["rows"])
        save()
        plot(record, Path(record["plot"]))
        say(f"[{env}] round {r + 1}/{scaling.reps} done")
    entry["finite_value_loss"] = all(bool(np.all(np.isfinite(np.asarray(t.carry[1]["value_loss"])))) for t in timeds)
    save()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(env: str, entry: dict[str, Any]) -> str:
    """Markdown table of one env's rows."""
    lines = [
        f"{env}, {entry['agent_steps']:,} env steps per agent; per-agent seconds flat (within "
        f"{FLAT_WITHIN:.0%} of the fastest) from {entry.get('per_agent_flat_from')} agents; plan: "
        f"{(entry['plan'] or {}).get('fits_members', 'n/a')} agents fit one device",
        "",
        "| agents | devices | compile s | median call s | per-agent s | aggregate env steps/s | cores busy |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in entry["rows"]:
        lines.append(
            f"| {r['members']} | {r['devices']} | {r['compile_s']:.1f} | {r.get('median_s', float('nan')):.3f} | "
            f"{r.get('per_agent_s', float('nan')):.4f} | {r.get('aggregate_steps_per_s', 0):,.0f} | "
            f"{r.get('cores_busy', float('nan')):.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
