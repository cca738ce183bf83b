"""``rpo-jax plan``'s prediction against measured peak memory, on this machine's CPU.

For each population size, a fresh process compiles the init and chunk programs first (compiling
uses host memory of its own), then resets the kernel's peak-RSS counter (``/proc/self/clear_refs``),
creates the population state and runs one chunk; the measured peak is the peak RSS during that
minus the RSS before it. The prediction is :func:`rpo_jax.runs.plan.make_plan`'s line through the
compiled chunk program at two sizes. Reports both and the relative error per size.

    python -m bench.plan_memory [--sizes 4,16,48] [--num-envs 64] [--num-steps 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench.common import REPO_ROOT, utc_stamp, write_json

MEASURE = r"""
import json, sys
import jax, numpy as np
from rpo_jax.runs import config_io
from rpo_jax.training import population as pop
from rpo_jax.training.train import make_trainer
cfg = config_io.config_from_dict(json.loads(sys.argv[1]))
size = int(sys.argv[2])
trainer = pop.population_trainer(make_trainer(cfg.train), size)
popl = pop.build_population(cfg.sweep, cfg.hparams)
chunk = pop.chunk_size(cfg.train.num_iterations, cfg.sweep.chunk_iterations)
init = jax.jit(pop.over_members(trainer.init, size))
run = jax.jit(pop.chunk_program(trainer, size, chunk), donate_argnums=0)
keys, hparams = jax.device_put(popl.keys), jax.device_put(popl.hparams)
init_c = init.lower(keys, hparams).compile()
state_shape = jax.eval_shape(init, keys, hparams)
run_c = run.lower(state_shape, hparams, jax.ShapeDtypeStruct((), np.bool_)).compile()
flag = jax.device_put(np.asarray(False))

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

import gc; gc.collect()
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
state = init_c(keys, hparams)
state, metrics = run_c(state, hparams, flag)
jax.block_until_ready((state, metrics))
print(json.dumps({"members": size, "measured": status("VmHWM") - before}))
"""


def config_dict(env: str, num_envs: int, num_steps: int, members: int) -> dict:
    return {
        "train": {
            "env": env,
            "num_envs": num_envs,
            "num_steps": num_steps,
            "num_minibatches": 4,
            "update_epochs": 1,
            "total_timesteps": num_envs * num_steps,
        },
        "sweep": {"seeds": members},
    }


def measure(env: str, num_envs: int, num_steps: int, members: int) -> int:
    data = json.dumps(config_dict(env, num_envs, num_steps, members))
    envs = {**os.environ, "RPO_JAX_CPU_DEVICES": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, data, str(members)], capture_output=True, text=True, env=envs, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench.plan_memory: measuring {members} members failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["measured"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="gymnax/Pendulum-v1")
    parser.add_argument("--sizes", default="4,16,48", help="population sizes measured")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=1024)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    os.environ.setdefault("RPO_JAX_CPU_DEVICES", "1")
    from rpo_jax.runs import config_io, plan

    config = config_io.config_from_dict(config_dict(args.env, args.num_envs, args.num_steps, max(sizes)))
    made = plan.make_plan(config)
    rows = []
    for size in sizes:
        measured = measure(args.env, args.num_envs, args.num_steps, size)
        predicted = made.predict(size)
        rows.append(
            {
                "members": size,
                "predicted_bytes": int(predicted),
                "measured_bytes": measured,
                "error": round(predicted / measured - 1, 4),
            }
        )
        print(
            f"{size:>4} members: predicted {predicted / 1e6:9.1f} MB, measured {measured / 1e6:9.1f} MB, "
            f"error {100 * (predicted / measured - 1):+.1f} %",
            flush=True,
        )
    result = {
        "bench": "plan_memory",
        "env": args.env,
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "plan": {
            "fixed_bytes": made.fixed,
            "per_member_bytes": made.per_member,
            "compiled_sizes": [made.small.members, made.large.members],
        },
        "rows": rows,
    }
    write_json(os.path.join(args.out, f"plan-memory-cpu-{utc_stamp()}.json"), result)
    return result


if __name__ == "__main__":
    main()
