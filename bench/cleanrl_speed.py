"""rpo_jax at CleanRL's own settings against CleanRL itself: the RPO paper's Pendulum-v1 sweep, end to end.

Runs ``rpo-jax sweep configs/paper/pendulum_v1.yaml`` (1 env x 2048 steps, 32 minibatches of 64,
10 epochs, ``preset: cleanrl``) at ``--steps`` per member as a fresh process, ``--reps`` times:
``--seeds`` seeds of RPO alpha 0.5 (``--grid alpha=0.5``; default 10, the issue's "10 x 1M"), or
with ``--both-alphas`` the config's 20 members (alpha 0 and 0.5). Wall time is measured around the
whole command (Python start, imports, compile, training, writing results, CLI included).

CleanRL's figure (``../shared/reference/cleanrl-rpo-vs-ppo.md``, measured on this machine kind, 2 cores):
``rpo_continuous_action.py`` at these settings makes about 1,950 env steps/s per process, one 1M-step
run taking ~508 s wall; 10 runs on 2 cores (5 rounds of 2 processes) take ~2,540 s. The ratio is
CleanRL's wall time for the same number of member-steps over ours: (members x steps / 1M) x 254 s / ours.

    python -m bench.cleanrl_speed [--steps 1000000] [--seeds 10] [--reps 3] [--both-alphas]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench.common import REPO_ROOT, run_cli, utc_stamp, write_json

CONFIG = "configs/paper/pendulum_v1.yaml"
CLEANRL_WALL_PER_MILLION_ON_2_CORES = 2540.0 / 10  # s per 1M member-steps: 10 runs x 1M take ~2,540 s
TARGET_RATIO = 30.0


def run_once(args: argparse.Namespace, out: Path) -> dict:
    cmd = ["sweep", CONFIG, "--total-timesteps", str(args.steps), "--seeds", str(args.seeds)]
    cmd += [] if args.both_alphas else ["--grid", "alpha=0.5"]
    cmd += ["--out", str(out), "--quiet"]
    summary, wall = run_cli(cmd, out, "bench.cleanrl_speed")
    members, member_steps = summary["members"], summary["env_steps_total"]
    return {
        "command": " ".join(["rpo-jax", *cmd]),
        "members": members,
        "devices": summary["devices"],
        "member_steps": member_steps,
        "wall_s": round(wall, 2),
        "compile_s": summary["compile_seconds"],
        "run_s": summary["run_seconds"],
        "wall_steps_per_s": round(member_steps / wall),
        "ratio_vs_cleanrl": round(member_steps / 1e6 * CLEANRL_WALL_PER_MILLION_ON_2_CORES / wall, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="train.total_timesteps per member")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--both-alphas", action="store_true", help="the config's alpha grid (0, 0.5): 2x the members")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.reps):
            runs.append(run_once(args, Path(tmp) / f"run-{r}"))
            print(f"rep {r + 1}: {runs[-1]}", flush=True)
    ratio = statistics.median(r["ratio_vs_cleanrl"] for r in runs)
    record = {
        "config": CONFIG,
        "steps_per_member": args.steps,
        "cores": len(os.sched_getaffinity(0)),
        "cleanrl_wall_s_per_million_member_steps_on_2_cores": CLEANRL_WALL_PER_MILLION_ON_2_CORES,
        "runs": runs,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_ratio_vs_cleanrl": ratio,
        "target_ratio": TARGET_RATIO,
    }
    path = Path(args.out) / f"cleanrl_speed-{utc_stamp()}.json"
    write_json(path, record)
    print(
        f"{runs[0]['members']} members x {args.steps:,} steps: median wall {record['median_wall_s']:.1f} s, "
        f"{ratio:.1f}x CleanRL (target {TARGET_RATIO:.0f}x); wrote {path}"
    )
    return record


if __name__ == "__main__":
    main()
