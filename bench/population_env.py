"""The env step alone, as one batch of E envs and as P members x E/P envs under vmap: what a population's
rollout pays for its extra batch axis before any policy or training runs.

Both programs step the same E env states with the same (zero) actions for ``--steps`` steps in a
``lax.scan`` (rpo_jax's adapter, ``Environment.transition``); the population form reshapes them to
``[P, E/P]`` and vmaps the scan over P, as ``vmap(trainer.run)`` does. Same work, same numbers;
only XLA:CPU's code for the doubly batched ops differs. A third program, ``merged``, is
the population form with ``rpo_jax.core.batching.merged_over_members``, whose batching rule turns the
env step back into one flat call over members x envs under the member vmap -- what rpo_jax's
rollout does (its results equal the vmapped step up to float rounding; the largest difference
after 4 steps is printed). Prints the median of ``--reps`` interleaved calls of
each and the ratios (flat time / population time; 1.0 = no cost).

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
from rpo_jax.core.batching import merged_over_members


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

    step = lambda s, a: jax.vmap(env.transition)(s, a)  # noqa: E731

    def scan(step_fn, steps):
        return lambda s, a: jax.lax.scan(lambda c, _: (step_fn(c, a)[0], None), s, None, length=steps)[0]

    def population(step_fn, steps=args.steps):
        def run(s, a):
            split = lambda x: x.reshape((args.members, -1) + x.shape[1:])  # noqa: E731
            out = jax.vmap(scan(step_fn, steps))(jax.tree.map(split, s), split(a))
            return jax.tree.map(lambda x: x.reshape((args.envs,) + x.shape[2:]), out)

        return run

    merged = merged_over_members(step)
    programs = {"flat": jax.jit(flat), "population": jax.jit(population(step)), "merged": jax.jit(population(merged))}
    small = 0.1 * jax.random.uniform(jax.random.PRNGKey(1), actions.shape, minval=-1, maxval=1)
    a, b = (jax.jit(population(f, 4))(states, small) for f in (step, merged))
    gap = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
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
        "ratio_flat_over_merged": median["flat"] / median["merged"],
        "merged_vs_population_max_abs_difference_after_4_steps": gap,
    }
    path = Path(args.out) / f"population_env-{utc_stamp()}.json"
    write_json(path, record)
    print(
        f"{args.env}, {args.steps} steps: {args.envs} envs {record['median_ms']['flat']} ms, {args.members} x "
        f"{args.envs // args.members} envs (vmap) {record['median_ms']['population']} ms: "
        f"{record['ratio_flat_over_population']:.3f}x; merged {record['median_ms']['merged']} ms: "
        f"{record['ratio_flat_over_merged']:.3f}x (max difference {gap:.2g}); wrote {path}"
    )
    return record


if __name__ == "__main__":
    main()
