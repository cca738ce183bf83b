"""Wall-time cost of SR^2L's smoothness regulariser (PGD inner loop) relative to plain PPO / TRPO.

Usage (from the repository root)::

    python -m bench.regularizer_cost                       # gymnax/Pendulum-v1, sr2l_ppo sizes
    python -m bench.regularizer_cost --env brax/hopper --steps 10 --reps 5

Side by side in one process, on the same train state and rollout batch:

* ``update``: the update phase of one iteration (``update_epochs`` x
  ``num_minibatches`` gradient steps for PPO; critic epochs + one natural-gradient
  step for TRPO), with and without the regulariser: ``smoothness_steps`` PGD steps
  of 0.2 eps on every minibatch for PPO-SR (``smoothness_pgd: minibatch``), or once
  per iteration on the whole batch (``smoothness_pgd: iteration``; that PGD is
  timed as part of the update), once per update for TRPO-SR;
* ``iteration``: one whole iteration (rollout + GAE + update).

Every program (five configurations x update and iteration) is compiled ahead of
time and run once untimed; then ``--reps`` rounds call each program once, so
background load hits them alike, and the median of each is reported. Prints a table and
writes ``bench/results/regularizer-<device>-<date>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics

import jax
import numpy as np

from bench.common import interleaved, write_json
from rpo_jax.config import TrainConfig
from rpo_jax.training.train import as_hparams, make_trainer


def _interleaved_medians(programs: dict, reps: int) -> dict:
    """Median seconds of each ``(fn, args)``, timed interleaved (bench.common.interleaved)."""
    return {name: statistics.median(ts) for name, ts in interleaved(programs, reps).items()}


def compile_programs(config: TrainConfig) -> dict[str, tuple]:
    """The compiled update phase and whole iteration for ``config``, with their arguments."""
    trainer = make_trainer(config)
    hp = as_hparams(alpha=0.0, lambda_s=1.0, sr_eps=0.05, max_kl=0.01)
    key = jax.random.PRNGKey(0)
    state = jax.jit(trainer.init)(key, hp)

    def batch_of(state):
        # One rollout and GAE, exactly as an iteration builds its batch.
        state, traj, _ = trainer.rollout(state, hp, key)
        return state, trainer.batch(state.params, traj, hp)

    state, batch = jax.jit(batch_of)(state)

    def update_phase(s, b):  # the algorithm's whole update, incl. PPO-SR's once-per-iteration PGD
        return trainer.update(s, hp, b, key)

    update_fn = jax.jit(update_phase).lower(state, batch).compile()
    iteration_fn = jax.jit(lambda s: trainer.run(s, hp, 1)).lower(state).compile()
    return {"update_s": (update_fn, (state, batch)), "iteration_s": (iteration_fn, (state,))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="gymnax/Pendulum-v1")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=256)
    parser.add_argument("--minibatches", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)

    base = TrainConfig(
        env=args.env,
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        num_minibatches=args.minibatches,
        update_epochs=args.epochs,
        total_timesteps=args.num_envs * args.num_steps * 10,
        smoothness_steps=args.steps,
    )
    rows = []
    variants = [("ppo", "minibatch"), ("ppo", "iteration"), ("trpo", "minibatch")]
    configs = {("plain", algorithm): dataclasses.replace(base, algorithm=algorithm) for algorithm in ("ppo", "trpo")}
    for algorithm, where in variants:
        configs[(where, algorithm)] = dataclasses.replace(
            base, algorithm=algorithm, smoothness=True, smoothness_pgd=where
        )
    programs = {}
    for label, config in configs.items():
        for phase, program in compile_programs(config).items():
            programs[(label, phase)] = program
    medians = _interleaved_medians(programs, args.reps)
    measured = {label: {phase: medians[(label, phase)] for phase in ("update_s", "iteration_s")} for label in configs}
    for algorithm, where in variants:
        plain, smooth = measured[("plain", algorithm)], measured[(where, algorithm)]
        rows.append(
            {
                "algorithm": algorithm if algorithm == "trpo" else f"ppo/pgd-per-{where}",
                "update_s": plain["update_s"],
                "update_sr_s": smooth["update_s"],
                "update_ratio": smooth["update_s"] / plain["update_s"],
                "iteration_s": plain["iteration_s"],
                "iteration_sr_s": smooth["iteration_s"],
                "iteration_ratio": smooth["iteration_s"] / plain["iteration_s"],
            }
        )
    device = jax.devices()[0]
    print(
        f"SR^2L regulariser cost on {device.device_kind} ({jax.default_backend()}), env {args.env}, "
        f"{args.num_envs} envs x {args.num_steps} steps, {args.minibatches} minibatches x {args.epochs} epochs, "
        f"{args.steps} PGD steps; median of {args.reps} interleaved rounds"
    )
    print(
        f"{'algorithm':>22} | {'update s':>9} | {'+SR s':>9} | {'ratio':>6} | "
        f"{'iter s':>9} | {'+SR s':>9} | {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['algorithm']:>22} | {r['update_s']:9.4f} | {r['update_sr_s']:9.4f} | {r['update_ratio']:6.2f} | "
            f"{r['iteration_s']:9.4f} | {r['iteration_sr_s']:9.4f} | {r['iteration_ratio']:6.2f}"
        )
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = os.path.join(args.out, f"regularizer-{jax.default_backend()}-{stamp}.json")
    record = {
        "device": device.device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "settings": vars(args),
        "rows": rows,
    }
    write_json(
        path, jax.tree.map(lambda x: float(np.asarray(x)) if isinstance(x, (np.ndarray, jax.Array)) else x, record)
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
