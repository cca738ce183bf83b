"""The env step alone, as one batch of E envs and as P members x E/P envs under vmap: what a population's
rollout pays for its extra batch axis before any policy or training runs.

Both programs step the same E env states with the same (zero) actions for ``--steps`` steps in a
``lax.scan`` (rpo_jax's adapter, ``Environment.transition``); the population form reshapes them to
``[P, E/P]`` and vmaps the scan over P, as ``vmap(trainer.run)`` does. Same work, same numbers;
only XLA:CPU's code for the doubly batched ops differs. Prints the median of ``--reps`` interleaved
calls of each and the ratio (flat time / population time; 1.0 = no cost).

    python -m bench.population_env [--env brax/inverted_pendulum] [--envs 256] [--members 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from bench.common import REPO_ROOT, utc_stamp, write_json
from rpo_jax import envs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="brax/inverted_pendulum")
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    if args.envs % args.members:
        raise SystemExit(f"--envs {args.envs} must be a multiple of --members {args.members}")
    env = envs.make_env(args.env)
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), args.envs))
    actions = jnp.zeros((args.envs, env.action_size))

    def flat(s, a):
        return jax.lax.scan(lambda c, _: (jax.vmap(env.transition)(c, a)[0], None), s, None, length=args.steps)[0]

    def population(s, a):
        split = lambda x: x.reshape((args.members, -1) + x.shape[1:])  # noqa: E731
        out = jax.vmap(flat)(jax.tree.map(split, s), split(a))
        return jax.tree.map(lambda x: x.reshape((args.envs,) + x.shape[2:]), out)

    programs = {"flat": jax.jit(flat), "population": jax.jit(population)}
    for fn in programs.values():
        jax.block_until_ready(fn(states, actions))
    times: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(args.reps):
        for name, fn in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(states, actions))
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    record = {
        "env": args.env,
        "envs": args.envs,
        "members": args.members,
        "steps": args.steps,
        "median_ms": {k: round(1000 * v, 2) for k, v in median.items()},
        "ratio_flat_over_population": median["flat"] / median["population"],
    }
    path = Path(args.out) / f"population_env-{utc_stamp()}.json"
    write_json(path, record)
    print(
        f"{args.env}, {args.steps} steps: {args.envs} envs {record['median_ms']['flat']} ms, {args.members} x "
        f"{args.envs // args.members} envs (vmap) {record['median_ms']['population']} ms: "
        f"{record['ratio_flat_over_population']:.3f}x; wrote {path}"
    )
    return record


if __name__ == "__main__":
    main()
