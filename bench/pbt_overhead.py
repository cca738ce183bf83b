"""What PBT costs: the same population trained with and without ``sweep.pbt``, side by side.

Both runs are ``population.run_experiment`` of one config (seeds x an alpha grid), the second with
``sweep.pbt`` on (a PBT step after every ``--interval`` iterations: ranking, copies, explore, the
lineage metrics). Compiles are reported apart; the runs alternate ``--reps`` times so background
load hits both alike. Prints the median run seconds of each and the ratio (PBT / fixed; 1.0 = free).

    python -m bench.pbt_overhead [--env gymnax/Pendulum-v1] [--seeds 2] [--iterations 40] [--interval 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import jax

from bench.common import REPO_ROOT, utc_stamp, write_json
from rpo_jax.runs import config_io
from rpo_jax.training import population

ALPHAS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="gymnax/Pendulum-v1")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--interval", type=int, default=2, help="iterations between PBT steps (2: the most often)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    train = {
        "env": args.env,
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "num_minibatches": 4,
        "update_epochs": 10,
        "total_timesteps": args.num_envs * args.num_steps * args.iterations,
    }
    sweep = {"seeds": args.seeds, "grid": {"alpha": ALPHAS}, "chunk_iterations": args.interval}
    fixed = config_io.config_from_dict({"train": train, "sweep": sweep})
    pbt = {"interval": args.interval, "explore": {"alpha": [0.001, 3.0]}}
    with_pbt = dataclasses.replace(
        fixed, sweep=config_io.config_from_dict({"train": train, "sweep": {**sweep, "pbt": pbt}}).sweep
    )
    devices = jax.devices()
    runs: dict[str, list[float]] = {"fixed": [], "pbt": []}
    compile_seconds: dict[str, float] = {}
    for rep in range(args.reps + 1):  # the first round compiles (and warms up); it is not timed
        for name, config in (("fixed", fixed), ("pbt", with_pbt)):
            result = population.run_experiment(config, devices=devices)
            if rep == 0:
                compile_seconds[name] = round(result.compile_seconds, 2)
            else:
                runs[name].append(result.run_seconds)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    record = {
        "benchmark": "pbt_overhead",
        "utc": utc_stamp(),
        "env": args.env,
        "members": len(ALPHAS) * args.seeds,
        "iterations": args.iterations,
        "interval": args.interval,
        "devices": len(devices),
        "compile_seconds": compile_seconds,
        "run_seconds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "median_run_seconds": {k: round(v, 3) for k, v in medians.items()},
        "ratio_pbt_over_fixed": round(medians["pbt"] / medians["fixed"], 3),
    }
    print(
        f"{record['members']} members, {args.iterations} iterations, a PBT step every {args.interval}: "
        f"fixed {medians['fixed']:.2f} s, PBT {medians['pbt']:.2f} s (median of {args.reps}) -> "
        f"PBT / fixed = {record['ratio_pbt_over_fixed']:.3f}; compile {compile_seconds}"
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out) / f"pbt_overhead-{record['utc']}.json", record)
    return record


if __name__ == "__main__":
    main()
