"""``rpo-jax`` command line: ``train`` (one member), ``sweep`` (a population), ``resume``.

    rpo-jax sweep configs/quickstart.yaml --seeds 8 --grid alpha=0,0.5 --out runs/qs
    rpo-jax resume runs/qs

Every input is checked before anything is compiled; a bad one prints a single
line ``rpo-jax: error: ...`` and exits with status 2. ``--out`` is a run
directory (:mod:`rpo_jax.rundir`: one locked writer, a status file, staged
``--overwrite``) trained by :func:`rpo_jax.durable.run_durable` (streamed
metrics, periodic checkpoints, exact resume, clean SIGINT / SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from typing import Any, Sequence

# XLA's C++ logging prints pages of harmless warnings when loading cached CPU
# executables; keep them out of the progress output unless the user asks.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from rpo_jax import config_io, errors, results, run_outputs, rundir
from rpo_jax.config import ConfigError, ExperimentConfig

EXIT_BAD_INPUT = 2


DESCRIPTION = (
    "Train populations of PPO / RPO / TRPO agents (seeds x hyperparameters) in one compiled JAX program, "
    "evaluate, render and report them."
)


def _version() -> str:
    from importlib.metadata import version

    import rpo_jax

    return f"rpo-jax {rpo_jax.__version__} (jax {version('jax')}, jaxlib {version('jaxlib')})"


def _build_parser() -> argparse.ArgumentParser:
    parser = errors.ArgumentParser(prog="rpo-jax", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=errors.ArgumentParser)

    def running(p: argparse.ArgumentParser) -> None:
        p.add_argument("--devices", type=int, help="shard the population over the first N devices (default all)")
        p.add_argument(
            "--distributed",
            action="store_true",
            help="call jax.distributed.initialize() first (multi-host; reads the usual env variables)",
        )
        p.add_argument("--quiet", action="store_true", help="no per-chunk progress lines")
        p.add_argument(
            "--checkpoint-every",
            type=int,
            default=0,
            metavar="N",
            help="save the whole population state every N chunks (default 0: off)",
        )
        p.add_argument(
            "--checkpoint-minutes",
            type=float,
            default=1.0,
            metavar="M",
            help="save after the first chunk ending M minutes after the last save (default 1; 0: off); "
            "a stop signal and the end of the run always save",
        )
        p.add_argument("--keep-checkpoints", type=int, default=2, metavar="K", help="newest checkpoints kept")
        p.add_argument(
            "--no-tensorboard",
            dest="tensorboard",
            action="store_false",
            help="do not write TensorBoard event files (default: RUN_DIR/tensorboard, one run per member)",
        )
        p.add_argument(
            "--track",
            action="store_true",
            help='also log to Weights & Biases, one run per member (pip install -e ".[wandb]")',
        )
        p.add_argument("--wandb-project", default="rpo_jax", help="W&B project of --track (default rpo_jax)")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="YAML config (see configs/)")
        p.add_argument("--out", help="output directory (config, status, metrics, curves, checkpoints)")
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the results in an existing --out once the new run completes",
        )
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override a config value, e.g. --set train.num_envs=8 (repeatable)",
        )
        p.add_argument("--env", help="shorthand for --set train.env=NAME")
        p.add_argument("--total-timesteps", type=float, help="shorthand for --set train.total_timesteps=N")
        p.add_argument("--chunk", type=int, help="iterations per progress report (sweep.chunk_iterations)")
        running(p)
        p.add_argument(
            "--reduced",
            action="store_true",
            help="apply the config's 'reduced' section: the same experiment at a CPU-sized budget",
        )

    train = sub.add_parser("train", help="train one member (seed and hparams from the config; sweep section ignored)")
    common(train)
    train.add_argument("--seed", type=int, default=None, help="the member's seed (default: first of sweep.seeds)")

    sweep = sub.add_parser("sweep", help="train a population: seeds x grid in one compiled program")
    common(sweep)
    sweep.add_argument("--seeds", help="number of seeds (0..N-1) or a comma-separated list")
    sweep.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="NAME=V1,V2",
        help="sweep hyperparameters, e.g. --grid alpha=0,0.5 ent_coef=0,0.01",
    )
    resume = sub.add_parser("resume", help="continue an interrupted train/sweep from its newest checkpoint")
    resume.add_argument("run_dir", help="the --out directory of the interrupted run")
    running(resume)
    config = sub.add_parser(
        "config",
        help="config show: every option (type, static / traced, default, allowed values, meaning); "
        "config show CONFIG: that config as it would run",
    )
    config.add_argument(
        "words", nargs="*", metavar="show [CONFIG]", help="YAML config to resolve (with --reduced / --set / --env)"
    )
    config.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    config.add_argument("--env", help="shorthand for --set train.env=NAME")
    config.add_argument("--reduced", action="store_true", help="apply the config's 'reduced' section")
    config.add_argument("--markdown", action="store_true", help="the option table as markdown (the README's)")
    config.set_defaults(handler=show_config)
    env_list = sub.add_parser("envs", help="the available environments, by family")
    env_list.add_argument("family", nargs="?", help="only this family (brax, dmc, gymnax)")
    env_list.set_defaults(handler=list_envs)
    train.set_defaults(handler=run)
    sweep.set_defaults(handler=run)
    resume.set_defaults(handler=resume_run)
    for name, (module, text) in _subcommands().items():
        p = sub.add_parser(name, help=text, description=module.DESCRIPTION)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def _subcommands() -> dict[str, tuple[Any, str]]:
    """Subcommands that live in their own modules: name -> (module with add_arguments / run, help)."""
    from rpo_jax import evaluate, render, report, robustness

    return {
        "evaluate": (evaluate, "every member's return on fresh episodes (deterministic by default), as a table"),
        "render": (render, "video (mp4 / gif) or Brax HTML of a trained member's episodes"),
        "report": (report, "figures and tables from finished sweep directories (rpo-jax report RUN_DIR ... --out DIR)"),
        "robustness": (robustness, "returns of a finished sweep's members under observation perturbations"),
    }


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """Config file + overrides -> a validated ExperimentConfig (raises ConfigError)."""
    data = config_io.load_yaml(args.config)
    reduced = data.pop("reduced", None)
    config_io.expand_preset(data)
    if args.reduced:
        if not isinstance(reduced, dict) or not reduced:
            raise ConfigError(f"--reduced: {args.config} has no 'reduced' section of section.key: value overrides")
        for key, value in reduced.items():
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


def _select_devices(requested: int | None, distributed: bool) -> list:
    import jax

    if requested is not None and requested <= 0:
        raise ConfigError(f"--devices must be a positive integer, got {requested}")
    if distributed:
        jax.distributed.initialize()
    devices = jax.devices()
    if requested is not None:
        if requested > len(devices):
            raise ConfigError(f"--devices {requested} but only {len(devices)} devices are visible")
        devices = devices[:requested]
    return devices


def _checkpoint_policy(args: argparse.Namespace):
    from rpo_jax.durable import CheckpointPolicy

    if args.track:  # before any work: the optional extra must be installed
        from rpo_jax.tracking import import_wandb

        import_wandb()
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 chunks, got {args.checkpoint_every}")
    if not args.checkpoint_minutes >= 0:
        raise ConfigError(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}")
    if args.keep_checkpoints < 1:
        raise ConfigError(f"--keep-checkpoints must be >= 1, got {args.keep_checkpoints}")
    return CheckpointPolicy(args.checkpoint_every, args.checkpoint_minutes, args.keep_checkpoints)


def show_config(args: argparse.Namespace) -> int:
    """``config``: the option table, or ``CONFIG`` resolved (preset, reduced, overrides) and checked, as YAML."""
    words = args.words[1:] if args.words[:1] == ["show"] else args.words
    if len(words) > 1:
        raise ConfigError(f"config takes one CONFIG file, got {' '.join(words)}")
    args.config = words[0] if words else None
    if args.config is None:
        if args.markdown:
            print(config_io.fields_markdown())
        else:
            for row in config_io.describe_fields():
                allowed = f" [{row['allowed']}]" if row["allowed"] else ""
                print(
                    f"{row['section']}.{row['name']}: {row['type']}, {row['kind']} = {row['default']}{allowed}\n"
                    f"    {row['doc']}"
                )
        return 0
    for name, value in (("total_timesteps", None), ("chunk", None), ("command", "sweep"), ("seeds", None)):
        setattr(args, name, value)
    args.grid = []
    import yaml

    print(yaml.safe_dump(resolve_config(args).to_dict(), sort_keys=False, default_flow_style=None), end="")
    return 0


def list_envs(args: argparse.Namespace) -> int:
    """``envs [FAMILY]``: every ``family/name`` a config accepts, one family per paragraph."""
    from rpo_jax import envs

    if args.family is not None and args.family not in envs.FAMILIES:
        raise ConfigError(f"unknown environment family {args.family!r}; choose one of {', '.join(envs.FAMILIES)}")
    for name in [args.family] if args.family else envs.FAMILIES:
        family = envs.family(name)
        names = family.names()
        print(f"{name}/ ({len(names)}): {family.DESCRIPTION}")
        print("  " + " ".join(f"{name}/{n}" for n in names))
    return 0


def run(args: argparse.Namespace) -> int:
    """``train`` / ``sweep``: check everything, claim ``--out``, then train (see :func:`_train`)."""
    try:
        config = resolve_config(args)
        policy = _checkpoint_policy(args)
        devices = _select_devices(args.devices, args.distributed)
        claim = _claim_new(args) if args.out else None
    except errors.InputError as err:
        return errors.report(err)
    return _train(config, claim, devices, policy, args)


def resume_run(args: argparse.Namespace) -> int:
    """``resume RUN_DIR``: continue an interrupted run from its newest checkpoint."""
    try:
        policy = _checkpoint_policy(args)
        claim = rundir.claim_resume(args.run_dir)
    except errors.InputError as err:
        return errors.report(err)
    try:
        status = claim.previous
        if status["state"] == "complete":  # a staged --overwrite that finished but was not swapped in
            claim.complete()
            print(f"rpo-jax resume: the complete --overwrite run now replaces {args.run_dir}")
            return 0
        config = config_io.config_from_dict(config_io.load_yaml(str(claim.write_dir / "config.yaml")))
        ran_on = status.get("devices")
        devices = _select_devices(args.devices, args.distributed)
        if args.devices is None and isinstance(ran_on, int):
            if ran_on > len(devices):
                raise ConfigError(
                    f"{args.run_dir} ran on {ran_on} devices but {len(devices)} are visible; pass --devices "
                    f"{len(devices)} to continue on them (then equal up to rounding, not bit for bit)"
                )
            devices = devices[:ran_on]
    except errors.InputError as err:
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
    import jax

    if jax.process_count() > 1 and jax.process_index() != 0:
        return None  # multi-host: every process trains its shard, process 0 writes
    return rundir.claim_new(args.out, overwrite=args.overwrite)


def _train(config: ExperimentConfig, claim, devices, policy, args: argparse.Namespace) -> int:
    """Trains ``config`` into ``claim.write_dir`` (or nowhere); writes results and the status on the way."""
    import jax

    from rpo_jax import cache, durable, population

    cache.enable()

    group_names = run_outputs.group_names(config)
    size = len(config.sweep.members(config.hparams))
    compiles = len(config.sweep.static_points())
    print(
        f"rpo-jax {args.command}: {config.train.env}, {size} member(s) "
        f"({len(config.sweep.seeds)} seeds x {size // len(config.sweep.seeds)} configurations), "
        f"{config.train.num_iterations} iterations of {config.train.batch_size} steps, {len(devices)} device(s)"
        + (f", {compiles} compiled programs (static sweep)" if compiles > 1 else ""),
        flush=True,
    )
    printer = None if args.quiet else run_outputs.progress_printer(group_names)
    if claim is not None and args.command != "resume":
        results.write_yaml(claim.write_dir / "config.yaml", config.to_dict())
    if claim is None or jax.process_count() > 1:  # nothing to checkpoint into (multi-host: issue "Scale out")
        result = population.run_experiment(config, devices=devices, progress_fn=printer)
        return _finish(config, result, claim, size, group_names)

    run_dir = claim.write_dir
    trackers = _trackers(config, run_dir, group_names, args)
    progress_fn = run_outputs.progress_with_tracking(printer, trackers)

    def on_progress(progress) -> None:
        rundir.write_status(run_dir, "running", **_status_fields(progress))

    start = (
        {} if args.command == "resume" else {"iteration": 0, "checkpoint_iteration": 0, "point": 0, "points": compiles}
    )
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
    except BaseException as err:
        trackers.close()
        rundir.write_status(run_dir, "failed", reason=results.one_line(err))
        claim.release()
        raise
    trackers.close()
    name = signal.Signals(stopped).name
    status = rundir.write_status(run_dir, "interrupted", reason=f"{name}: {how}")
    claim.release()
    point = f" of static point {status['point'] + 1}/{status['points']}" if status.get("points", 1) > 1 else ""
    print(
        f"rpo-jax: interrupted by {name} ({how}); saved up to iteration {status.get('checkpoint_iteration', 0)}/"
        f"{status['num_iterations']}{point}; resume with: rpo-jax resume {claim.out}",
        file=sys.stderr,
        flush=True,
    )
    return 128 + stopped


def _trackers(config: ExperimentConfig, run_dir, group_names: list[str], args: argparse.Namespace):
    """TensorBoard (unless --no-tensorboard) and W&B (--track) for the members of ``config``."""
    from rpo_jax import tracking

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
    }


def _finish(config: ExperimentConfig, result, claim, size: int, group_names: list[str]) -> int:
    """Prints the final returns and, with a claim, writes every result, marks the run complete and swaps it in."""
    from rpo_jax import durable

    summary = run_outputs.summarize(config, result, size, group_names)
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


def main(argv: Sequence[str] | None = None) -> int:
    """``rpo-jax``: dispatches to the subcommand; returns its exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser().parse_args(argv)
        args.argv = argv
        return args.handler(args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except errors.InputError as err:  # every bad input, of every subcommand: one line, exit 2
        return errors.report(err)
    except KeyboardInterrupt:  # before or outside a run directory: nothing to save
        print("rpo-jax: interrupted (SIGINT)", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
