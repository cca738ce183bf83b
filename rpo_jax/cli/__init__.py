"""``rpo-jax``: one command line, subcommands registered here, one error path.

    rpo-jax sweep configs/quickstart.yaml --seeds 8 --grid alpha=0,0.5 --out runs/qs
    rpo-jax resume runs/qs
    rpo-jax suite configs/paper/dmc_suite.yaml --reduced --out runs/dmc
    rpo-jax evaluate runs/qs --episodes 100
    rpo-jax config show | rpo-jax envs | rpo-jax --version

``train`` / ``sweep`` / ``resume`` are :mod:`rpo_jax.runs.launch`; ``evaluate``, ``render``,
``report`` and ``robustness`` live in their own modules (``add_arguments`` / ``run``). Every
input is checked before anything is compiled; a bad one raises :class:`rpo_jax.errors.InputError`,
which :func:`main` prints as one line ``rpo-jax: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from typing import Any, Sequence

# XLA's C++ logging prints pages of harmless warnings when loading cached CPU
# executables; keep them out of the progress output unless the user asks.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from rpo_jax import errors
from rpo_jax.config import ConfigError
from rpo_jax.runs import launch, options
from rpo_jax.runs.launch import resolve_config
from rpo_jax.training import multihost

EXIT_BAD_INPUT = 2


DESCRIPTION = (
    "Train populations of PPO / RPO / TRPO agents (seeds x hyperparameters) in one compiled JAX program, "
    "evaluate, render and report them."
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("rpo_jax")
    except PackageNotFoundError:  # a source tree that is not installed
        ours = "0+unknown"
    return f"rpo-jax {ours} (jax {version('jax')}, jaxlib {version('jaxlib')})"


def _build_parser() -> argparse.ArgumentParser:
    parser = errors.ArgumentParser(prog="rpo-jax", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=errors.ArgumentParser)

    def running(p: argparse.ArgumentParser) -> None:
        p.add_argument("--devices", type=int, help="shard the population over the first N devices (default all)")
        p.add_argument(
            "--distributed",
            action="store_true",
            help="one run as several processes (hosts): jax.distributed from JAX_COORDINATOR_ADDRESS, "
            "JAX_NUM_PROCESSES, JAX_PROCESS_ID or a detected SLURM / Open MPI / Kubernetes job; process 0 writes",
        )
        p.add_argument(
            "--peer-timeout",
            type=int,
            default=120,
            metavar="S",
            help="--distributed: seconds to wait for every process to join, and for a silent one before "
            "JAX ends the run (default 120)",
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
    from rpo_jax.runs import suite

    tasks = sub.add_parser("suite", help=suite.DESCRIPTION, description=suite.DESCRIPTION)
    common(tasks)
    tasks.add_argument("--seeds", help="number of seeds (0..N-1) or a comma-separated list")
    suite.add_arguments(tasks)
    tasks.set_defaults(handler=suite.run, grid=[])
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
    train.set_defaults(handler=launch.run)
    sweep.set_defaults(handler=launch.run)
    resume.set_defaults(handler=launch.resume_run)
    for name, (module, text) in _subcommands().items():
        p = sub.add_parser(name, help=text, description=module.DESCRIPTION)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def _subcommands() -> dict[str, tuple[Any, str]]:
    """Subcommands that live in their own modules: name -> (module with add_arguments / run, help)."""
    from rpo_jax.analysis import evaluate, render
    from rpo_jax.cli import report, robustness
    from rpo_jax.runs import plan

    return {
        "plan": (plan, "how many members fit on a device: the chunk program's memory, compiled, not run"),
        "evaluate": (evaluate, "every member's return on fresh episodes (deterministic by default), as a table"),
        "render": (render, "video (mp4 / gif) or Brax HTML of a trained member's episodes"),
        "report": (report, "figures and tables from finished sweep directories (rpo-jax report RUN_DIR ... --out DIR)"),
        "robustness": (robustness, "returns of a finished sweep's members under observation perturbations"),
    }


def show_config(args: argparse.Namespace) -> int:
    """``config``: the option table, or ``CONFIG`` resolved (preset, reduced, overrides) and checked, as YAML."""
    words = args.words[1:] if args.words[:1] == ["show"] else args.words
    if len(words) > 1:
        raise ConfigError(f"config takes one CONFIG file, got {' '.join(words)}")
    args.config = words[0] if words else None
    if args.config is None:
        if args.markdown:
            print(options.fields_markdown())
        else:
            for row in options.describe_fields():
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


CPU_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def use_all_cpu_cores() -> None:
    """Split the CPU into one JAX device per core, so a population is sharded over all of them.

    Only the CPU platform is affected (on a GPU host the GPUs are the devices). The count is
    ``RPO_JAX_CPU_DEVICES`` if set, else the cores this process may use; an ``XLA_FLAGS`` that
    already names a count wins. It must run before JAX starts its backends (the first
    ``jax.devices()``); later it has no effect.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if CPU_DEVICES_FLAG in flags:
        return
    text = os.environ.get("RPO_JAX_CPU_DEVICES", "")
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if text:
        if not text.isdigit() or int(text) < 1:
            raise errors.InputError(f"RPO_JAX_CPU_DEVICES must be a positive integer, got {text!r}")
        count = int(text)
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_DEVICES_FLAG}={count}".strip()


def main(argv: Sequence[str] | None = None) -> int:
    """``rpo-jax``: dispatches to the subcommand; returns its exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        use_all_cpu_cores()
        args = _build_parser().parse_args(argv)
        args.argv = argv
        return args.handler(args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except errors.InputError as err:  # every bad input, of every subcommand: one line, exit 2
        return errors.report(err)
    except multihost.PeerLost as err:  # one line, then out at once: JAX's exit would wait for the dead process
        print(f"rpo-jax: error: {err}", file=sys.stderr)
        multihost.exit_now(multihost.EXIT_PEER_LOST)
    except KeyboardInterrupt:  # before or outside a run directory: nothing to save
        print("rpo-jax: interrupted (SIGINT)", file=sys.stderr)
        if multihost.initialized():
            multihost.exit_now(128 + signal.SIGINT)
        return 128 + signal.SIGINT
    except BaseException:
        if not multihost.initialized():
            raise
        # Multi-process: leave at once, so the other processes' next gather fails (PeerLost, one line)
        # instead of waiting for this one until JAX's timeouts.
        traceback.print_exc()
        multihost.exit_now(1)
