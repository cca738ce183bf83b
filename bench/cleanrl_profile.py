"""Where one iteration of ``bench.cleanrl_speed``'s sweep spends its time, on one device (one core).

The sweep (``configs/paper/pendulum_v1.yaml``: 1 env x 2048 steps, 32 minibatches of 64, 10
epochs) runs its members on one device per core, so a device's iteration is its share of the
members (``--members``, default 5 of the 10 on 2 cores). This times, interleaved round by round,
the two phases of that iteration for networks of each ``--hidden`` width:

* ``rollout``: 2048 env steps of the members (policy, Pendulum step, normalisers);
* ``update``: 10 epochs x 32 Adam steps on 64-sample minibatches, the shuffles included.

The update's time against the width separates the 64-wide MLPs' arithmetic from the per-step
cost that does not grow with it, and ``update x iterations`` bounds the sweep's wall time from
below: no change to the rest of the program can make the sweep faster than that.

    python -m bench.cleanrl_profile [--members 5] [--hidden 8,64,128] [--reps 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics

import jax
import jax.numpy as jnp

from bench.cleanrl_speed import CLEANRL_WALL_PER_MILLION_ON_2_CORES, CONFIG
from bench.common import REPO_ROOT, interleaved, utc_stamp, write_json
from rpo_jax.runs.config_io import config_from_dict, load_yaml
from rpo_jax.training.population import POPULATION_AXIS
from rpo_jax.training.train import as_hparams, make_trainer


def programs(members: int, hidden: int, total_timesteps: int) -> dict:
    """The ``rollout`` and ``update`` programs of ``members`` members, compiled, with their arguments."""
    experiment = config_from_dict(load_yaml(str(REPO_ROOT / CONFIG)))
    width = (hidden, hidden)
    config = dataclasses.replace(
        experiment.train, total_timesteps=total_timesteps, actor_hidden=width, critic_hidden=width
    )
    trainer = dataclasses.replace(make_trainer(config), population_axis=POPULATION_AXIS)
    population = lambda fn: jax.jit(jax.vmap(fn, axis_name=POPULATION_AXIS))  # noqa: E731
    hps = jax.tree.map(lambda x: jnp.broadcast_to(x, (members,)), as_hparams(experiment.hparams, alpha=0.5))
    keys = jax.random.split(jax.random.PRNGKey(0), members)
    states = population(trainer.init)(keys, hps)

    def batch_of(state, hp, key):
        state, trajectory, _ = trainer.rollout(state, hp, key)
        return trainer.batch(state.params, trajectory, hp)

    batches = population(batch_of)(states, hps, keys)
    rollout = population(lambda s, hp, k: trainer.rollout(s, hp, k)[1].obs)
    update = population(lambda s, hp, b, k: trainer.update(s, hp, b, k)[0].params)
    return {
        f"rollout h{hidden}": (rollout, (states, hps, keys)),
        f"update h{hidden}": (update, (states, hps, batches, keys)),
    }, config.num_iterations


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5, help="members on the device (10 seeds on 2 cores: 5)")
    parser.add_argument("--hidden", default="8,64,128", help="hidden widths of both networks (the config: 64)")
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per member of the sweep bounded")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    table, iterations = {}, 0
    for hidden in (int(h) for h in args.hidden.split(",")):
        progs, iterations = programs(args.members, hidden, args.steps)
        table.update(progs)
    times = interleaved(table, args.reps)
    medians = {name: statistics.median(t) for name, t in times.items()}
    updates_per_iteration = 320  # 10 epochs x 32 minibatches
    rows = {
        name: {
            "ms": round(1e3 * median, 2),
            "fastest_ms": round(1e3 * min(times[name]), 2),
            **(
                {"us_per_member_adam_step": round(1e6 * median / args.members / updates_per_iteration, 1)}
                if name.startswith("update")
                else {}
            ),
        }
        for name, median in medians.items()
    }
    update_64 = medians.get("update h64")
    record = {
        "config": CONFIG,
        "device": str(jax.devices()[0]),
        "members_on_device": args.members,
        "iterations_per_member": iterations,
        "reps": args.reps,
        "programs": rows,
    }
    if update_64 is not None:
        # Every device runs its members' updates in turn, so the sweep's run time is at least this.
        bound = iterations * update_64
        record["update_only_lower_bound_s"] = round(bound, 1)
        members = len(os.sched_getaffinity(0)) * args.members  # one device per core, as the CLI runs them
        record["best_ratio_vs_cleanrl_with_nothing_but_the_update"] = round(
            members * args.steps / 1e6 * CLEANRL_WALL_PER_MILLION_ON_2_CORES / bound, 1
        )
    path = f"{args.out}/cleanrl_profile-{utc_stamp()}.json"
    write_json(path, record)
    for name, row in rows.items():
        print(f"{name:>14}: {row}")
    if update_64 is not None:
        print(
            f"update alone: {record['update_only_lower_bound_s']} s for {iterations} iterations, at most "
            f"{record['best_ratio_vs_cleanrl_with_nothing_but_the_update']}x CleanRL; wrote {path}"
        )
    return record


if __name__ == "__main__":
    main()
