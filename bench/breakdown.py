"""Where the time of one rpo_jax training iteration goes, side by side in one process.

Usage (from the repository root)::

    python -m bench.breakdown                                   # brax/ant, bench.throughput's CPU sizes
    python -m bench.breakdown --env brax/inverted_pendulum --members 1,16

The profile behind ``bench/RESULTS.md``'s explanations. Every program does the env
steps of one iteration (``num_envs x num_steps``) or the part of it named, and all
are compiled ahead of time, called once untimed, then timed ``--reps`` rounds,
one call of each per round (so background load hits them alike):

* ``iteration``: ``Trainer.run`` for one iteration (rollout + GAE + update);
* ``rollout``: ``Trainer.rollout`` alone (policy, env step, normaliser, fresh starts);
* ``update``: the update phase alone (``update_epochs x num_minibatches`` gradient
  steps, shuffling included) on a real rollout batch;
* ``raw adapter``: rpo_jax's env step with the start cache (``rpo_jax.envs.starts.step``) and random actions, no policy;
* ``raw library``: the library env under Brax's training wrappers, random actions
  (what Brax PPO steps);
* ``start refill``: computing one batch of fresh starts (a cache refill) alone;
* for each S in ``--members``: ``population S``, one iteration of S members x
  ``num_envs / S`` envs under ``jit(vmap)``, and ``population S update``, its update
  phase alone.

Prints ms per call (median and fastest) and writes ``bench/results/breakdown-<device>-<date>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp

from bench.common import PROFILES, interleaved, library_batched_env, train_config, utc_stamp, write_json
from rpo_jax import envs
from rpo_jax.envs import starts
from rpo_jax.training.population import POPULATION_AXIS
from rpo_jax.training.train import as_hparams, make_trainer


def _population(adapter, config, members: int, hp, key):
    """(iteration, update, args) programs of ``members`` members sharing ``config.num_envs`` envs."""
    config = dataclasses.replace(config, num_envs=config.num_envs // members)
    trainer = dataclasses.replace(make_trainer(config, env=adapter), population_axis=POPULATION_AXIS)
    hps = jax.tree.map(lambda x: jnp.broadcast_to(x, (members,)), hp)
    states = jax.jit(jax.vmap(trainer.init, axis_name=POPULATION_AXIS))(jax.random.split(key, members), hps)
    keys = jax.random.split(key, members)

    def batch_of(state, h, k):
        state, traj, _ = trainer.rollout(state, h, k)
        return trainer.batch(state.params, traj, h)

    batches = jax.jit(jax.vmap(batch_of, axis_name=POPULATION_AXIS))(states, hps, keys)
    iteration = jax.vmap(lambda s, h: trainer.run(s, h, 1)[0], axis_name=POPULATION_AXIS)
    update = jax.vmap(lambda s, h, b, k: trainer.update(s, h, b, k)[0], axis_name=POPULATION_AXIS)
    return (iteration, (states, hps)), (update, (states, hps, batches, keys))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="brax/ant")
    parser.add_argument("--num-envs", type=int, default=PROFILES["cpu"].num_envs)
    parser.add_argument("--members", default="", help="comma-separated population sizes to add, e.g. 1,16")
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    try:
        envs.check_env_name(args.env)
    except ValueError as err:
        parser.error(str(err))
    members = [int(m) for m in args.members.split(",") if m.strip()]
    if args.reps < 1 or args.num_envs < 1 or any(m < 1 or args.num_envs % m for m in members):
        parser.error("--reps and --num-envs must be >= 1, and every --members value must divide --num-envs")

    profile = PROFILES["cpu"]
    adapter = envs.make_env(args.env)
    config = train_config(profile, args.env, args.num_envs, 1, 1000)
    trainer = make_trainer(config, env=adapter)
    hp = as_hparams()
    key = jax.random.PRNGKey(0)
    state = jax.jit(trainer.init)(key, hp)
    batch = jax.jit(lambda s: trainer.batch(s.params, trainer.rollout(s, hp, key)[1], hp))(state)
    n, steps = config.num_envs, config.num_steps
    low, high = jnp.asarray(adapter.action_low), jnp.asarray(adapter.action_high)

    def raw_adapter(env_state, cache, k):
        def body(c, k):
            s, cache = c
            a = jax.random.uniform(k, (n, adapter.action_size), minval=low, maxval=high)
            s, r, cache, _ = starts.step(adapter, s, cache, a)
            return (s, cache), r.reward

        return jax.lax.scan(body, (env_state, cache), jax.random.split(k, steps))

    library = library_batched_env(args.env, adapter)

    def raw_library(lib_state, k):
        def body(s, k):
            s = library.step(s, jax.random.uniform(k, (n, adapter.action_size), minval=low, maxval=high))
            return s, s.reward

        return jax.lax.scan(body, lib_state, jax.random.split(k, steps))

    programs = {
        "iteration": (lambda s, h: trainer.run(s, h, 1)[0], (state, hp)),
        "rollout": (lambda s, h, k: trainer.rollout(s, h, k)[0], (state, hp, key)),
        "update": (lambda s, h, b, k: trainer.update(s, h, b, k)[0], (state, hp, batch, key)),
        "raw adapter": (raw_adapter, (state.env_state, state.starts, key)),
        "raw library": (raw_library, (jax.jit(library.reset)(jax.random.split(key, n)), key)),
        "start refill": (lambda k: starts.init(adapter, k, trainer.start_cache_size), (key,)),
    }
    for m in members:
        (it, it_args), (up, up_args) = _population(adapter, config, m, hp, key)
        programs[f"population {m}"] = (it, it_args)
        programs[f"population {m} update"] = (up, up_args)

    compiled, compile_s = {}, {}
    for name, (fn, fn_args) in programs.items():
        start = time.perf_counter()
        compiled[name] = (jax.jit(fn).lower(*fn_args).compile(), fn_args)
        compile_s[name] = time.perf_counter() - start
    times = interleaved(compiled, args.reps)

    device = jax.devices()[0]
    print(
        f"{args.env}: {n} envs x {steps} steps per iteration, {config.num_minibatches} minibatches x "
        f"{config.update_epochs} epochs, on {device.device_kind} ({jax.default_backend()}); "
        f"{args.reps} interleaved rounds"
    )
    print(f"{'program':>22} | {'median ms':>9} | {'fastest ms':>10} | {'compile s':>9}")
    rows = []
    for name, ts in times.items():
        row = {
            "program": name,
            "median_ms": 1e3 * statistics.median(ts),
            "fastest_ms": 1e3 * min(ts),
            "compile_s": compile_s[name],
            "rep_seconds": ts,
        }
        rows.append(row)
        print(f"{name:>22} | {row['median_ms']:9.1f} | {row['fastest_ms']:10.1f} | {row['compile_s']:9.1f}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"breakdown-{jax.default_backend()}-{utc_stamp()}.json")
    record = {
        "env": args.env,
        "device": device.device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "num_envs": n,
        "num_steps": steps,
        "num_minibatches": config.num_minibatches,
        "update_epochs": config.update_epochs,
        "members": members,
        "reps": args.reps,
        "rows": rows,
    }
    write_json(path, record)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
