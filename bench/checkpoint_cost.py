"""What a durable run's periodic checkpoints cost: time per checkpoint and share of the run.

Usage (from the repository root)::

    python -m bench.checkpoint_cost                              # configs/quickstart.yaml, 1/4 of its steps
    python -m bench.checkpoint_cost --config configs/paper/pendulum_v1.yaml --total-timesteps 1e6

Side by side in one process, ``--reps`` rounds each run the same experiment through
:func:`rpo_jax.runs.durable.run_durable` twice, alternating: with a checkpoint after every chunk
(the most a user can ask for) and with checkpoints only at the end, each into a fresh run
directory. Both write ``metrics.csv`` after every chunk, so the difference is the
checkpoints alone. Reported: the median seconds per checkpoint (the whole population state
and the metric history through orbax, synchronous), the size of one checkpoint, the median
run time of both policies and their ratio, and the share of run time at the default period
(one save per ``CheckpointPolicy().every_minutes`` of training: seconds per checkpoint over
that period). Compile time is excluded (the persistent cache serves the repeats). Writes
``bench/results/checkpoint-<backend>-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import pathlib
import statistics
import tempfile
import time

import jax

from bench.common import write_json
from rpo_jax.runs import cache, config_io, durable


@contextlib.contextmanager
def _timed_saves(record: list[float]):
    """Times every checkpoint save of :mod:`rpo_jax.runs.durable` into ``record``."""
    save = durable._save

    def timed(*args, **kwargs):
        start = time.perf_counter()
        save(*args, **kwargs)
        record.append(time.perf_counter() - start)

    durable._save = timed
    try:
        yield
    finally:
        durable._save = save


def _run(config, policy) -> tuple[float, list[float], int]:
    """Run seconds, per-save seconds and bytes of the newest checkpoint of one durable run."""
    saves: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, _timed_saves(saves):
        result = durable.run_durable(config, tmp, policy=policy)
        size = sum(f.stat().st_size for f in (pathlib.Path(tmp) / durable.RESUME_DIR).rglob("*") if f.is_file())
    return result.run_seconds, saves, size // max(policy.keep, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--total-timesteps", type=float, default=262_144)
    parser.add_argument("--chunk", type=int, default=0, help="iterations per chunk (0: the config's, ~20 chunks)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a few iterations, for tests")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument(
        "--cache-dir",
        default=cache.DEFAULT_DIR,
        help="persistent XLA compilation cache ('' for none)",
    )
    args = parser.parse_args(argv)
    cache.enable(args.cache_dir)

    data = config_io.load_yaml(args.config)
    data.pop("reduced", None)
    config_io.set_value(data, "train.total_timesteps", int(args.total_timesteps))
    if args.chunk:
        config_io.set_value(data, "sweep.chunk_iterations", args.chunk)
    if args.tiny:
        for key, value in {
            "train.num_envs": 2,
            "train.num_steps": 64,
            "train.num_minibatches": 2,
            "train.update_epochs": 1,
            "train.total_timesteps": 1024,
            "sweep.seeds": 2,
        }.items():
            config_io.set_value(data, key, value)
    config = config_io.config_from_dict(data)
    every_chunk = durable.CheckpointPolicy(every_chunks=1, every_minutes=0)
    at_end = durable.CheckpointPolicy(every_chunks=0, every_minutes=0)
    default_period_s = 60.0 * durable.CheckpointPolicy().every_minutes
    _run(config, every_chunk)  # compile once (the cache serves the rest) and warm up
    times = {"every_chunk": [], "at_end": []}
    saves: list[float] = []
    size = 0
    for _ in range(args.reps):
        seconds, round_saves, size = _run(config, every_chunk)
        times["every_chunk"].append(seconds)
        saves += round_saves
        times["at_end"].append(_run(config, at_end)[0])
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    chunks = len(saves) // args.reps
    row = {
        "config": args.config,
        "members": len(config.sweep.members(config.hparams)),
        "iterations": config.train.num_iterations,
        "checkpoints_per_run": chunks,
        "seconds_per_checkpoint": statistics.median(saves),
        "checkpoint_bytes": size,
        "run_s_every_chunk": medians["every_chunk"],
        "run_s_at_end": medians["at_end"],
        "overhead_ratio": medians["every_chunk"] / medians["at_end"],
        "default_period_s": default_period_s,
        "default_period_share": statistics.median(saves) / default_period_s,
    }
    print(
        f"checkpoint cost on {jax.devices()[0].device_kind} ({jax.default_backend()}), {args.config}, "
        f"{row['members']} members x {row['iterations']} iterations, median of {args.reps} alternating rounds"
    )
    print(
        f"  {row['seconds_per_checkpoint'] * 1e3:.1f} ms per checkpoint ({size / 1e6:.2f} MB), "
        f"{chunks} per run; run {row['run_s_every_chunk']:.2f} s with a checkpoint every chunk vs "
        f"{row['run_s_at_end']:.2f} s at the end only: x{row['overhead_ratio']:.3f}; at the default period "
        f"(one per {default_period_s:.0f} s) {100 * row['default_period_share']:.2f} % of run time"
    )
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = os.path.join(args.out, f"checkpoint-{jax.default_backend()}{'-tiny' if args.tiny else ''}-{stamp}.json")
    record = {
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "settings": vars(args),
        "result": row,
    }
    write_json(path, record)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
