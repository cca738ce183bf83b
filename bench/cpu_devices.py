"""The CLI's default of one JAX device per CPU core, against one device: the same sweep, end to end.

Runs ``rpo-jax sweep CONFIG`` as a fresh process with ``RPO_JAX_CPU_DEVICES=1`` and with the
default (one device per core), alternating, ``--rounds`` times each; reports each run's env
steps/s from its ``summary.json`` (run time, compile apart) and its wall time (CLI included), the
medians and the ratio default / one device. The members and their numbers are the same up to
float rounding (XLA compiles a different per-device batch); what is learned does not change.

    python -m bench.cpu_devices [--config configs/quickstart.yaml] [--steps 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench.common import REPO_ROOT, run_cli, utc_stamp, write_json


def run_once(config: str, steps: int, devices: str | None, out: Path) -> dict:
    cmd = ["sweep", config, "--total-timesteps", str(steps)]
    cmd += ["--out", str(out), "--quiet", "--no-tensorboard", "--checkpoint-minutes", "0"]
    summary, wall = run_cli(cmd, out, "bench.cpu_devices", devices)
    return {
        "devices": summary["devices"],
        "wall_s": round(wall, 2),
        "compile_s": summary["compile_seconds"],
        "steps_per_s": summary["env_steps_per_second"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--steps", type=int, default=200_000, help="train.total_timesteps per member")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"one_device": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, devices in (("one_device", "1"), ("default", None)):
                result = run_once(args.config, args.steps, devices, Path(tmp) / f"{name}-{r}")
                runs[name].append(result)
                print(f"round {r + 1}: {name}: {result}", flush=True)
    median = {n: statistics.median(x["steps_per_s"] for x in rs) for n, rs in runs.items()}
    wall = {n: statistics.median(x["wall_s"] for x in rs) for n, rs in runs.items()}
    record = {
        "config": args.config,
        "steps_per_member": args.steps,
        "cores": len(os.sched_getaffinity(0)),
        "runs": runs,
        "median_steps_per_s": median,
        "median_wall_s": wall,
        "ratio_steps_per_s": median["default"] / median["one_device"],
        "ratio_wall": wall["one_device"] / wall["default"],
    }
    path = Path(args.out) / f"cpu_devices-{utc_stamp()}.json"
    write_json(path, record)
    print(
        f"default ({runs['default'][0]['devices']} devices) / one device: {record['ratio_steps_per_s']:.2f}x env "
        f"steps/s (run time), {record['ratio_wall']:.2f}x wall time (CLI included); wrote {path}"
    )
    return record


if __name__ == "__main__":
    main()
