"""DDPG throughput on one env: env steps/s against the raw env, and what the SR^2L regularisers cost.

Usage (from the repository root)::

    python -m bench.ddpg                              # brax/halfcheetah, 8 members, the sr2l_ddpg sizes
    python -m bench.ddpg --env gymnax/Pendulum-v1 --members 2 --reps 3

A population of ``--members`` DDPG members (one env each, as configs/paper/sr2l_ddpg_*.yaml) is
vmapped as ``rpo-jax sweep`` runs it; one iteration = ``--num-steps`` env steps per member and
``--updates`` gradient steps (critic, actor, targets) on minibatches of 64 from the buffer, after
learning has started. Side by side, in interleaved rounds (bench.common.interleaved), medians:

* ``raw env``: ``--num-steps`` steps of the members' envs with random actions, fresh starts
  as the trainer takes them (rpo_jax.envs.starts) -- the ceiling of any trainer on that env;
* ``ddpg``, ``ddpg-sr-a``, ``ddpg-sr-c``: one whole iteration (rollout, buffer insert, updates),
  ``smoothness_steps`` = ``--pgd-steps`` PGD steps of 0.2 eps per update for the SR variants.

Reports env steps/s of each, DDPG / raw env, and each SR variant's time / DDPG's. Writes
``bench/results/ddpg-<backend>-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics

import jax
import jax.numpy as jnp

from bench.common import REPO_ROOT, interleaved, utc_stamp, write_json
from rpo_jax.config import TrainConfig
from rpo_jax.envs import starts
from rpo_jax.training.population import POPULATION_AXIS
from rpo_jax.training.train import as_hparams, make_trainer, stack_hparams


def iteration_program(config: TrainConfig, members: int):
    """The compiled one-iteration program of ``members`` vmapped members, at a state where learning runs."""
    trainer = make_trainer(config)
    hp = stack_hparams([as_hparams(lambda_s=1.0, sr_eps=0.05)] * members)
    keys = jax.random.split(jax.random.PRNGKey(0), members)
    state = jax.jit(jax.vmap(trainer.init))(keys, hp)
    state = state.replace(iteration=jnp.full((members,), config.num_iterations - 1, jnp.int32))  # past learning_starts
    run = jax.jit(jax.vmap(lambda s, h: trainer.run(s, h, 1), axis_name=POPULATION_AXIS))
    state, _ = run(state, hp)  # fills the buffer with one rollout
    return run.lower(state, hp).compile(), (state, hp), trainer


def raw_program(trainer, members: int, num_steps: int):
    """``num_steps`` steps of ``members`` envs with uniform random actions, fresh starts from the start cache."""
    env, cfg = trainer.env, trainer.config
    size = starts.cache_size(cfg.num_envs, cfg.num_steps, env.episode_length)

    def one(key):
        state = jax.vmap(env.reset)(jax.random.split(key, cfg.num_envs))
        cache = starts.init(env, jax.random.fold_in(key, 1), size)

        def step(carry, k):
            state, cache = carry
            actions = jax.random.uniform(
                k, (cfg.num_envs, env.action_size), minval=env.action_low, maxval=env.action_high
            )
            state, _, cache, _ = starts.step(env, state, cache, actions)
            return (state, cache), None

        (state, _), _ = jax.lax.scan(step, (state, cache), jax.random.split(key, num_steps))
        return state.obs

    keys = jax.random.split(jax.random.PRNGKey(1), members)
    return jax.jit(jax.vmap(one)).lower(keys).compile(), (keys,)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="brax/halfcheetah")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=100)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    base = TrainConfig(
        env=args.env,
        algorithm="ddpg",
        num_envs=1,
        num_steps=args.num_steps,
        total_timesteps=args.num_steps * 10,
        normalize_rewards=False,
        anneal_lr=False,
        buffer_size=args.num_steps * 10,
        learning_starts=0,
        updates_per_iteration=args.updates,
        smoothness_steps=args.pgd_steps,
    )
    variants = {
        "ddpg": base,
        "ddpg-sr-a": dataclasses.replace(base, smoothness=True, smoothness_target="actor"),
        "ddpg-sr-c": dataclasses.replace(base, smoothness=True, smoothness_target="critic"),
    }
    programs = {}
    for name, config in variants.items():
        fn, fn_args, trainer = iteration_program(config, args.members)
        programs[name] = (fn, fn_args)
    programs["raw env"] = raw_program(trainer, args.members, args.num_steps)
    seconds = {name: statistics.median(ts) for name, ts in interleaved(programs, args.reps).items()}
    steps = args.members * args.num_steps
    sps = {name: steps / s for name, s in seconds.items()}
    record = {
        "env": args.env,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "settings": vars(args),
        "seconds": seconds,
        "env_steps_per_s": sps,
        "ddpg_vs_raw": sps["ddpg"] / sps["raw env"],
        "sr_a_cost": seconds["ddpg-sr-a"] / seconds["ddpg"],
        "sr_c_cost": seconds["ddpg-sr-c"] / seconds["ddpg"],
    }
    print(
        f"DDPG on {args.env} ({jax.default_backend()}), {args.members} members x 1 env, {args.num_steps} steps + "
        f"{args.updates} updates per iteration, {args.pgd_steps} PGD steps; median of {args.reps} interleaved rounds"
    )
    for name in ("raw env", "ddpg", "ddpg-sr-a", "ddpg-sr-c"):
        print(f"{name:>10}: {sps[name]:>12,.0f} env steps/s  ({seconds[name]:.4f} s per iteration)")
    print(
        f"ddpg / raw env: {record['ddpg_vs_raw']:.3f}; SR-A costs {record['sr_a_cost']:.2f}x, "
        f"SR-C {record['sr_c_cost']:.2f}x the time of a DDPG iteration"
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"ddpg-{jax.default_backend()}-{utc_stamp()}.json")
    write_json(path, record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
