"""Brax's own PPO trainer at settings matched to rpo_jax's, timed from its per-epoch metrics.

Part of ``python -m bench.throughput`` (section 3, ``Brax PPO``; see bench/throughput.py).

Brax PPO mapping
----------------
rpo_jax, per iteration: ``num_envs * num_steps`` env steps (one rollout of
``num_steps`` steps of every env), then ``update_epochs`` passes over that batch,
each in ``num_minibatches`` minibatches of ``num_envs * num_steps /
num_minibatches`` transitions: ``update_epochs * num_minibatches`` gradient steps.

Brax PPO, per training step: it unrolls ``batch_size * num_minibatches /
num_envs`` times ``unroll_length`` steps of all ``num_envs`` envs, i.e.
``batch_size * num_minibatches * unroll_length`` env steps, then runs
``num_updates_per_batch`` passes, each over ``num_minibatches`` minibatches of
``batch_size`` trajectories of ``unroll_length`` steps:
``num_updates_per_batch * num_minibatches`` gradient steps. Hence, matched:

    brax num_envs              = num_envs
    brax unroll_length         = num_steps
    brax num_minibatches       = num_minibatches
    brax batch_size            = num_envs / num_minibatches   (so one unroll per training step)
    brax num_updates_per_batch = update_epochs
    env steps / training step  = batch_size * num_minibatches * unroll_length = num_envs * num_steps
    gradient steps / training step = update_epochs * num_minibatches
    samples per minibatch      = batch_size * unroll_length = num_envs * num_steps / num_minibatches

Networks: ``make_ppo_networks`` with (64, 64) tanh MLPs for both, a Gaussian
(``distribution_type="normal"``) with a state-independent log std
(``noise_std_type="log"``), as rpo_jax's Actor; observation normalisation on;
discount 0.99, GAE lambda 0.95, clip 0.2, lr 3e-4, grad-norm clip 0.5, entropy 0.
Remaining differences (algorithmic, not sizes): Brax shuffles whole trajectories
and recomputes GAE inside the loss of every minibatch; rpo_jax shuffles single
transitions and computes GAE once per iteration; rpo_jax also scales rewards by
a running return std and auto-resets to fresh random states.

Brax timing
-----------
``train`` runs ``num_evals - 1`` epochs of ``num_training_steps_per_epoch``
training steps and calls ``progress_fn`` after each with ``training/sps`` (env
steps of the epoch / its wall time, measured by Brax around the jitted epoch).
With ``run_evals=False`` no evaluation runs at all (``num_eval_envs=1`` only sizes
the evaluator it builds). An epoch here is ``iterations`` training steps, like one
rpo_jax repetition. Brax 0.14 compiles its epoch program in the first epoch and,
on some setups, again in the second (the state's types change after the first
call), so ``train_reps + 2`` epochs are run, epochs during which any XLA compilation
happened (``jax.monitoring``) are excluded, and the MEDIAN of the remaining
epochs' ``training/sps`` is reported. Brax's compile time is estimated as the
time of the compiling epochs minus as many clean-epoch medians.
"""

from __future__ import annotations

import functools
import statistics
import time
import warnings
from typing import Any, Callable

from bench.common import CompileLog, brax_training_env
from rpo_jax import envs as rpo_envs
from rpo_jax.config import TrainConfig


def matched_settings(adapter: rpo_envs.Environment, config: TrainConfig, iterations: int, epochs: int) -> dict:
    """Brax PPO's size arguments matched to ``config`` (see "Brax PPO mapping" above)."""
    steps_per_epoch = iterations * config.num_envs * config.num_steps
    return {
        "num_envs": config.num_envs,
        "unroll_length": config.num_steps,
        "batch_size": config.num_envs // config.num_minibatches,
        "num_minibatches": config.num_minibatches,
        "num_updates_per_batch": config.update_epochs,
        "num_timesteps": epochs * steps_per_epoch,
        "num_evals": epochs + 1,
        "episode_length": adapter.episode_length,
    }


def bench_brax_ppo(
    name: str,
    adapter: rpo_envs.Environment,
    config: TrainConfig,
    iterations: int,
    train_reps: int,
    log: CompileLog,
    between_epochs: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Brax PPO at matched settings; ``between_epochs`` runs on the host after each epoch.

    (The benchmark times one rpo_jax repetition there, so the two trainers alternate.)
    """
    if config.num_envs % config.num_minibatches:
        return {"error": "num_envs must be divisible by num_minibatches for the matched Brax batch_size"}
    epochs = train_reps + 2  # the first one or two epochs compile (see module docstring)
    settings = matched_settings(adapter, config, iterations, epochs)
    records: list[dict[str, Any]] = []
    callback_seconds: list[float] = []

    def progress(step, metrics):
        records.append(
            {
                "time": time.perf_counter(),
                "step": int(step),
                "mark": log.mark(),
                "sps": float(metrics["training/sps"]),
                "walltime": float(metrics["training/walltime"]),
            }
        )
        if between_epochs is not None:
            begin = time.perf_counter()
            between_epochs()
            callback_seconds.append(time.perf_counter() - begin)

    train = _matched_train(name, adapter, config, settings, progress)
    mark = log.mark()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train()
    total = time.perf_counter() - start - sum(callback_seconds)  # the callback's time is not Brax's
    return _result(settings, _epoch_summaries(records, log, mark), records, total, log.summary(mark))


def _matched_train(
    name: str, adapter: rpo_envs.Environment, config: TrainConfig, settings: dict, progress: Callable
) -> Callable[[], Any]:
    """``brax.training.agents.ppo.train`` with every argument bound: one device, no evaluations."""
    from brax.training.agents.ppo import networks as brax_networks
    from brax.training.agents.ppo import train as brax_ppo
    from flax import linen

    environment, wrap_env_fn = brax_training_env(name, adapter)
    network_factory = functools.partial(
        brax_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(config.actor_hidden),
        value_hidden_layer_sizes=tuple(config.critic_hidden),
        activation=linen.tanh,
        distribution_type="normal",
        noise_std_type="log",
    )
    return functools.partial(
        brax_ppo.train,
        environment,
        wrap_env_fn=wrap_env_fn,
        max_devices_per_host=1,
        learning_rate=3e-4,
        entropy_cost=0.0,
        discounting=0.99,
        gae_lambda=0.95,
        clipping_epsilon=0.2,
        max_grad_norm=0.5,
        normalize_advantage=True,
        normalize_observations=True,
        vf_loss_coefficient=0.5,
        reward_scaling=1.0,
        network_factory=network_factory,
        seed=0,
        run_evals=False,
        num_eval_envs=1,
        progress_fn=progress,
        **settings,
    )


def _epoch_summaries(records: list[dict[str, Any]], log: CompileLog, mark: int) -> list[dict[str, Any]]:
    """Per epoch: its seconds, Brax's steps/s and the XLA compilations that happened during it."""
    epochs = []
    previous_mark, previous_wall = mark, 0.0
    for r in records:
        summary = log.summary(previous_mark, r["mark"])
        epochs.append(
            {
                "step": r["step"],
                "seconds": round(r["walltime"] - previous_wall, 5),
                "sps": r["sps"],
                "xla_compilations": summary["xla_compilations"],
                "cache": summary["cache"],
            }
        )
        previous_mark, previous_wall = r["mark"], r["walltime"]
    return epochs


def _result(
    settings: dict, epochs: list[dict[str, Any]], records: list[dict[str, Any]], total: float, compile_log: dict
) -> dict[str, Any]:
    """The median of the compile-free epochs and the compile time estimated from the others."""
    clean = [e for e in epochs if e["xla_compilations"] == 0]
    compiling = [e for e in epochs if e["xla_compilations"] > 0]
    out: dict[str, Any] = {
        "settings": settings,
        "epochs": epochs,
        "wall_s": round(total, 3),
        "compile_log": compile_log,
    }
    if clean:
        median_time = statistics.median(e["seconds"] for e in clean)
        out["steps_per_s"] = statistics.median(e["sps"] for e in clean)  # median clean epoch
        out["steps_per_s_best"] = max(e["sps"] for e in clean)
        out["timed_epochs"] = len(clean)
        out["compile_s_estimate"] = round(sum(e["seconds"] for e in compiling) - len(compiling) * median_time, 3)
        out["setup_s"] = round(total - records[-1]["walltime"], 3)  # reset, init, evaluator, host work
    else:
        out["steps_per_s"] = None
        out["error"] = "every epoch compiled; no clean epoch to time"
    return out
