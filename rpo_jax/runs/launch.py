"""``train``, ``sweep`` and ``resume``: from a resolved config to a finished run directory.

:func:`run` claims ``--out`` (:mod:`rpo_jax.runs.rundir`: one locked writer, a status file, staged
``--overwrite``) and trains with :func:`rpo_jax.runs.durable.run_durable` (streamed metrics, periodic
checkpoints, exact resume, clean SIGINT / SIGTERM), logging every chunk to the trackers
(:mod:`rpo_jax.runs.tracking`); :func:`resume_run` continues an interrupted run directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from typing import Any

import numpy as np

from rpo_jax import errors
from rpo_jax.config import ConfigError, ExperimentConfig
from rpo_jax.runs import config_io, results, run_outputs, rundir
from rpo_jax.training import multihost


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """Config file + overrides -> a validated ExperimentConfig (raises ConfigError)."""
    data = config_io.load_yaml(args.config)
    reduced = data.pop("reduced", None)
    config_io.expand_preset(data)
    if args.reduced:
        if not isinstance(reduced, dict) or not reduced:
            raise ConfigError(f"--reduced: {args.config} has no 'reduced' section of section.key: value overrides")
    tasks = config_io.suite_tasks(data, reduced if args.reduced else None)
    if tasks is not None and args.env is None:
        raise ConfigError(
            f"{args.config} is a suite of {len(tasks)} tasks: train them with `rpo-jax suite {args.config}`, "
            "or one of them with --env NAME"
        )
    if args.reduced:
        for key, value in reduced.items():
            if not key.startswith(f"{config_io.SUITE_SECTION}."):
                config_io.set_value(data, key, value)
    for section in ("train", "hparams", "sweep"):
        if data.get(section) is None:
            data[section] = {}
        elif not isinstance(data[section], dict):
            raise ConfigError(f"config section '{section}' must be a mapping, got {type(data[section]).__name__}")
    for assignment in args.overrides:
        config_io.apply_override(data, assignment)
    if args.env is not None:
        data["train"]["env"] = args.env
    if args.total_timesteps is not None:
        if not float(args.total_timesteps).is_integer():
            raise ConfigError(f"--total-timesteps must be an integer, got {args.total_timesteps}")
        data["train"]["total_timesteps"] = int(args.total_timesteps)
    if args.chunk is not None:
        data["sweep"]["chunk_iterations"] = args.chunk
    if args.command == "sweep":
        if args.seeds is not None:
            data["sweep"]["seeds"] = _parse_seeds(args.seeds)
        if args.grid:
            grid = dict(data["sweep"].get("grid") or {})
            grid.update(config_io.parse_grid(args.grid))
            data["sweep"]["grid"] = grid
    else:  # one member: the hparams section as given; the sweep's grid, variants and static points are not used
        for key in ("grid", "variants", "static"):
            data["sweep"].pop(key, None)
        if args.seed is not None:
            data["sweep"]["seeds"] = [args.seed]
        else:
            seeds = data["sweep"].get("seeds", [0])
            data["sweep"]["seeds"] = [seeds[0] if isinstance(seeds, list) and seeds else 0]
    config = config_io.config_from_dict(data)
    from rpo_jax import envs  # cheap name check, no env construction

    try:
        envs.check_env_name(config.train.env)
        for point in config.sweep.static_points():
            if "env" in point:
                envs.check_env_name(point["env"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return config


def _parse_seeds(text: str) -> Any:
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        return int(text)
    except ValueError:
        raise ConfigError(f"--seeds must be a count or a comma-separated list of integers, got '{text}'") from None


def _select_devices(args: argparse.Namespace, members: int | None = None) -> list:
    """``--devices N``, else every visible device, but no more than a compiled program's ``members``.

    More devices than members would only pad the population with copies (a population of one
    would even turn vmapped); multi-process runs (``--distributed``) keep all devices.
    """
    import jax

    requested, distributed = args.devices, args.distributed
    if requested is not None and requested <= 0:
        raise ConfigError(f"--devices must be a positive integer, got {requested}")
    if distributed and requested is not None:
        raise ConfigError("--devices cannot be combined with --distributed (every process's devices take part)")

    devices = jax.devices()
    if requested is not None:
        if requested > len(devices):
            raise ConfigError(f"--devices {requested} but only {len(devices)} devices are visible")
        return devices[:requested]
    if members is not None and not distributed:
        devices = devices[: max(1, min(len(devices), members))]
    return devices


def members_per_program(config: ExperimentConfig) -> int:
    """Members of one compiled program: the population of one static point."""
    return len(config.sweep.members(config.hparams)) // len(config.sweep.static_points())


def _checkpoint_policy(args: argparse.Namespace):
    from rpo_jax.runs.durable import CheckpointPolicy

    if args.track:  # before any work: the optional extra must be installed
        from rpo_jax.runs.tracking import import_wandb

        import_wandb()
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 chunks, got {args.checkpoint_every}")
    if not args.checkpoint_minutes >= 0:
        raise ConfigError(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}")
    if args.keep_checkpoints < 1:
        raise ConfigError(f"--keep-checkpoints must be >= 1, got {args.keep_checkpoints}")
    return CheckpointPolicy(args.checkpoint_every, args.checkpoint_minutes, args.keep_checkpoints)


def run(args: argparse.Namespace) -> int:
    """``train`` / ``sweep``: check everything, claim ``--out``, then train (see :func:`_train`)."""
    claim = None
    try:
        _start_distributed(args)
        config = resolve_config(args)
        policy = _checkpoint_policy(args)
        devices = _select_devices(args, members_per_program(config))
        try:
            claim = _claim_new(args) if args.out else None
        except errors.InputError as err:
            _all_ready(err)
        _all_ready()
    except errors.InputError as err:
        if claim is not None:
            claim.release()
        return errors.report(err)
    return _train(config, claim, devices, policy, args)


def _start_distributed(args: argparse.Namespace) -> None:
    """``--distributed``: join the other processes, first (env packages such as gymnax run JAX on import)."""
    import jax

    if args.distributed and not jax.distributed.is_initialized():
        multihost.initialize(args.peer_timeout)


def _all_ready(error: BaseException | None = None) -> None:
    """Multi-process: every process passed its checks, or each raises (one line, exit 2) before any compile."""
    import jax

    if not jax.distributed.is_initialized():
        if error is not None:
            raise error
        return
    ready = multihost.agree({"ready": error is None})["ready"]
    if error is not None:
        raise error
    if not ready.all():
        bad = int(np.flatnonzero(~ready)[0])
        raise errors.InputError(f"process {bad} of {len(ready)} refused to start (its output says why)")


def resume_run(args: argparse.Namespace) -> int:
    """``resume RUN_DIR``: continue an interrupted run from its newest checkpoint.

    Multi-process: the leader claims the run directory and shares its config and status.
    """
    claim = None
    try:
        _start_distributed(args)
        policy = _checkpoint_policy(args)
        try:
            claim = rundir.claim_resume(args.run_dir) if multihost.is_leader() else None
        except errors.InputError as err:
            _all_ready(err)
        _all_ready()
        status = json.loads(multihost.share_text(json.dumps(claim.previous) if claim else None))
        if status["state"] == "complete":  # a staged --overwrite that finished but was not swapped in
            if claim is not None:
                claim.complete()
            print(f"rpo-jax resume: the complete --overwrite run now replaces {args.run_dir}")
            return 0
        data = config_io.load_yaml(str(claim.write_dir / "config.yaml")) if claim is not None else None
        config = config_io.config_from_dict(json.loads(multihost.share_text(json.dumps(data))))
        ran_on = status.get("devices")
        devices = _select_devices(args, members_per_program(config))
        if args.devices is None and isinstance(ran_on, int):
            if ran_on > len(devices):
                raise ConfigError(
                    f"{args.run_dir} ran on {ran_on} devices but {len(devices)} are visible; pass --devices "
                    f"{len(devices)} to continue on them (then equal up to rounding, not bit for bit)"
                )
            devices = devices[:ran_on]
    except errors.InputError as err:
        if claim is not None:
            claim.release()
        return errors.report(err)
    where = f"iteration {status.get('checkpoint_iteration', 0)}/{status.get('num_iterations')}"
    note = f" ({status['reason']})" if status.get("reason") else ""
    print(
        f"rpo-jax resume: {args.run_dir} was {status['state']}{note}; continuing from its checkpoint at {where}"
        + (f" on {len(devices)} devices instead of {ran_on}: not bit for bit" if ran_on != len(devices) else ""),
        flush=True,
    )
    return _train(config, claim, devices, policy, args)


def _claim_new(args: argparse.Namespace):
    if not multihost.is_leader():
        return None  # multi-process: every process trains its shard, process 0 writes
    return rundir.claim_new(args.out, overwrite=args.overwrite)


def _train(config: ExperimentConfig, claim, devices, policy, args: argparse.Namespace) -> int:
    """Trains ``config`` into ``claim.write_dir`` (or nowhere); writes results and the status on the way.

    In a multi-process run every process trains (its shard of) the population through the same
    durable loop; only the leader, which holds the claim, writes.
    """
    from rpo_jax.runs import cache, durable
    from rpo_jax.training import population

    cache.enable()

    group_names = run_outputs.group_names(config)
    size = len(config.sweep.members(config.hparams))
    compiles = len(config.sweep.static_points())
    leader, processes = multihost.is_leader(), multihost.process_count()
    print(
        f"rpo-jax {args.command}: {config.train.env}, {size} member(s) "
        f"({len(config.sweep.seeds)} seeds x {size // len(config.sweep.seeds)} configurations), "
        f"{config.train.num_iterations} iterations of {config.train.batch_size} steps, {len(devices)} device(s)"
        + (f" in {processes} processes (this is process {_process_index()})" if processes > 1 else "")
        + (f", {compiles} compiled programs (static sweep)" if compiles > 1 else ""),
        flush=True,
    )
    printer = None if args.quiet or not leader else run_outputs.progress_printer(group_names)
    if claim is not None and args.command != "resume":
        results.write_yaml(claim.write_dir / "config.yaml", config.to_dict())
    if getattr(args, "out", None) is None and args.command != "resume":  # nothing to write into
        result = population.run_experiment(config, devices=devices, progress_fn=printer)
        return _finish(config, result, claim, size, group_names)

    run_dir = claim.write_dir if claim is not None else None
    trackers = _trackers(config, run_dir, group_names, args) if run_dir is not None else _no_trackers()
    progress_fn = run_outputs.progress_with_tracking(printer, trackers)

    def on_progress(progress) -> None:
        if run_dir is not None:
            rundir.write_status(run_dir, "running", **_status_fields(progress))

    start = (
        {} if args.command == "resume" else {"iteration": 0, "checkpoint_iteration": 0, "point": 0, "points": compiles}
    )
    if run_dir is not None:
        rundir.write_status(
            run_dir,
            "running",
            command=" ".join(["rpo-jax", *args.argv]),
            devices=len(devices),
            num_iterations=config.train.num_iterations,
            **start,
        )
    try:
        with durable.StopSignals() as stop:  # a signal while finishing waits for the results to be written
            result = durable.run_durable(
                config,
                run_dir,
                devices=devices,
                policy=policy,
                stop=stop,
                progress_fn=progress_fn,
                on_progress=on_progress,
            )
            trackers.close()
            return _finish(config, result, claim, size, group_names)
    except durable.Stopped as err:
        stopped, how = err.signum, "stopped after the current chunk"
    except durable.Abandoned as err:
        stopped, how = err.signum, "abandoned the current chunk"
    except multihost.PeerLost as err:
        trackers.close()
        if run_dir is not None:
            rundir.write_status(run_dir, "interrupted", reason=str(err))
            claim.release()
        target = getattr(args, "out", None) or getattr(args, "run_dir", None)
        raise multihost.PeerLost(f"{err}; resume with: rpo-jax resume {target} --distributed (on every process)")
    except BaseException as err:
        trackers.close()
        if run_dir is not None:
            rundir.write_status(run_dir, "failed", reason=results.one_line(err))
            claim.release()
        raise
    trackers.close()
    name = signal.Signals(stopped).name
    if run_dir is None:  # multi-process, not the leader: the leader saved and says how to resume
        print(f"rpo-jax: interrupted ({name}: {how})", file=sys.stderr, flush=True)
        return 128 + stopped
    status = rundir.write_status(run_dir, "interrupted", reason=f"{name}: {how}")
    claim.release()
    point = f" of static point {status['point'] + 1}/{status['points']}" if status.get("points", 1) > 1 else ""
    distributed = " --distributed (on every process)" if processes > 1 else ""
    print(
        f"rpo-jax: interrupted by {name} ({how}); saved up to iteration {status.get('checkpoint_iteration', 0)}/"
        f"{status['num_iterations']}{point}; resume with: rpo-jax resume {claim.out}{distributed}",
        file=sys.stderr,
        flush=True,
    )
    return 128 + stopped


def _process_index() -> int:
    import jax

    return jax.process_index()


def _no_trackers():
    from rpo_jax.runs import tracking

    return tracking.Trackers([])


def _trackers(config: ExperimentConfig, run_dir, group_names: list[str], args: argparse.Namespace):
    """TensorBoard (unless --no-tensorboard) and W&B (--track) for the members of ``config``."""
    from rpo_jax.runs import tracking

    members = config.sweep.members(config.hparams)
    chosen = []
    if args.tensorboard:
        status = rundir.read_status(run_dir) or {}
        purge = status.get("checkpoint_iteration", 0) * config.train.batch_size + 1 if args.command == "resume" else 0
        chosen.append(tracking.TensorBoard(run_dir / "tensorboard", members, group_names, purge_step=purge))
    if args.track:
        chosen.append(tracking.WandB(run_dir, members, group_names, config.to_dict(), args.wandb_project))
    return tracking.Trackers(chosen)


def _status_fields(progress) -> dict[str, Any]:
    return {
        "point": progress.point,
        "points": progress.points,
        "iteration": progress.iteration,
        "checkpoint_iteration": progress.checkpoint_iteration,
        "runaway_episodes": progress.runaway_episodes,
    }


def _finish(config: ExperimentConfig, result, claim, size: int, group_names: list[str]) -> int:
    """Prints the final returns and, with a claim, writes every result, marks the run complete and swaps it in."""
    from rpo_jax.runs import durable

    summary = run_outputs.summarize(config, result, size, group_names)
    if multihost.is_leader():  # multi-process: the others computed the same summary
        run_outputs.print_summary(summary, group_names)
    if claim is None:
        return 0
    run_dir = claim.write_dir
    run_outputs.write_outputs(str(run_dir), config, result, summary)
    shutil.rmtree(run_dir / durable.RESUME_DIR, ignore_errors=True)
    rundir.write_status(
        run_dir, "complete", iteration=config.train.num_iterations, checkpoint_iteration=config.train.num_iterations
    )
    claim.complete()
    print(f"wrote {claim.out}/ (config.yaml, status.json, metrics.csv, learning_curve.png, checkpoint/, summary.json)")
    return 0
