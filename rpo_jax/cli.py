"""``rpo-jax`` command line: ``train`` (one member) and ``sweep`` (a population).

    rpo-jax sweep configs/quickstart.yaml --seeds 8 --grid alpha=0,0.5 --out runs/qs

Every input is checked before anything is compiled; a bad one prints a single
line ``rpo-jax: error: ...`` and exits with status 2. An existing, non-empty
``--out`` is never written into unless ``--overwrite`` is given, and every
result file is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

# XLA's C++ logging prints pages of harmless warnings when loading cached CPU
# executables; keep them out of the progress output unless the user asks.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from rpo_jax import config as cfgmod
from rpo_jax import results
from rpo_jax.results import format_value as _fmt
from rpo_jax.config import ConfigError, ExperimentConfig

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"rpo-jax: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rpo-jax", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="YAML config (see configs/)")
        p.add_argument("--out", help="output directory (config, metrics, curves, checkpoint)")
        p.add_argument("--overwrite", action="store_true", help="replace results in an existing --out")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a config value, e.g. --set train.num_envs=8 (repeatable)")
        p.add_argument("--env", help="shorthand for --set train.env=NAME")
        p.add_argument("--total-timesteps", type=float, help="shorthand for --set train.total_timesteps=N")
        p.add_argument("--chunk", type=int, help="iterations per progress report (sweep.chunk_iterations)")
        p.add_argument("--devices", type=int, help="shard the population over the first N devices (default all)")
        p.add_argument("--distributed", action="store_true",
                       help="call jax.distributed.initialize() first (multi-host; reads the usual env variables)")
        p.add_argument("--quiet", action="store_true", help="no per-chunk progress lines")
        p.add_argument("--reduced", action="store_true",
                       help="apply the config's 'reduced' section: the same experiment at a CPU-sized budget")

    train = sub.add_parser("train", help="train one member (seed and hparams from the config)")
    common(train)
    train.add_argument("--seed", type=int, default=None, help="the member's seed (default: first of sweep.seeds)")

    sweep = sub.add_parser("sweep", help="train a population: seeds x grid in one compiled program")
    common(sweep)
    sweep.add_argument("--seeds", help="number of seeds (0..N-1) or a comma-separated list")
    sweep.add_argument("--grid", nargs="+", default=[], metavar="NAME=V1,V2",
                       help="sweep hyperparameters, e.g. --grid alpha=0,0.5 ent_coef=0,0.01")
    # Listed for --help; dispatched to their own modules' parsers in main().
    for name, text in _DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False).add_argument("args", nargs=argparse.REMAINDER)
    return parser


# Subcommands with their own parser: name -> (help text); module rpo_jax.<name> provides main(argv).
_DELEGATED = {
    "report": "figures and tables from finished sweep directories (rpo-jax report RUN_DIR ... [--out DIR])",
    "robustness": "returns of a finished sweep's members under random and adversarial observation perturbations",
}


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """Config file + overrides -> a validated ExperimentConfig (raises ConfigError)."""
    data = cfgmod.load_yaml(args.config)
    reduced = data.pop("reduced", None)
    if args.reduced:
        if not isinstance(reduced, dict) or not reduced:
            raise ConfigError(f"--reduced: {args.config} has no 'reduced' section of section.key: value overrides")
        for key, value in reduced.items():
            cfgmod.set_value(data, key, value)
    for section in ("train", "hparams", "sweep"):
        if data.get(section) is None:
            data[section] = {}
        elif not isinstance(data[section], dict):
            raise ConfigError(f"config section '{section}' must be a mapping, got {type(data[section]).__name__}")
    for assignment in args.overrides:
        cfgmod.apply_override(data, assignment)
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
            grid.update(cfgmod.parse_grid(args.grid))
            data["sweep"]["grid"] = grid
    else:
        grid = data["sweep"].get("grid") or {}
        if grid:
            raise ConfigError("'train' runs one member but the config has sweep.grid; use 'rpo-jax sweep'")
        if args.seed is not None:
            data["sweep"]["seeds"] = [args.seed]
        else:
            seeds = data["sweep"].get("seeds", [0])
            data["sweep"]["seeds"] = [seeds[0] if isinstance(seeds, list) and seeds else 0]
    config = cfgmod.config_from_dict(data)
    from rpo_jax import envs  # cheap name check, no env construction

    try:
        envs.check_env_name(config.train.env)
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


def _progress_printer(group_names: list[str]):
    def report(info: dict[str, Any]) -> None:
        members = info["members"]
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(members):
            groups.setdefault(tuple(m[n] for n in group_names), []).append(i)
        returns = info["metrics"]["episode_return"]
        parts = []
        for values, idx in groups.items():
            rows = returns[idx]
            last = np.array([r[~np.isnan(r)][-1] if np.any(~np.isnan(r)) else np.nan for r in rows])
            label = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(group_names, values)) or "return"
            if np.all(np.isnan(last)):
                parts.append(f"{label}: n/a")
            else:
                parts.append(f"{label}: {np.nanmean(last):.1f} ± {np.nanstd(last):.1f}")
        sps = info["env_steps"] * len(members) / max(info["elapsed"], 1e-9)
        print(
            f"[{info['iteration']}/{info['num_iterations']} it | {info['env_steps']:,} steps/member | "
            f"{info['elapsed']:.0f}s | {sps:,.0f} steps/s] " + " | ".join(parts),
            flush=True,
        )

    return report


def _write_outputs(out_dir: str, config: ExperimentConfig, result, summary: dict[str, Any]) -> None:
    from rpo_jax import population

    group_names = _group_names(config)
    table = results.metrics_table(result.metrics, result.members)
    results.write_table(table, os.path.join(out_dir, "metrics.csv"))
    results.plot_learning_curves(
        table,
        os.path.join(out_dir, "learning_curve.png"),
        group_by=group_names,
        title=f"{config.train.env} ({len(config.sweep.seeds)} seeds)",
    )
    results.save_checkpoint(os.path.join(out_dir, "checkpoint"), population.checkpoint_tree(result.state))
    results.atomic_write_text(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    import jax

    try:
        config = resolve_config(args)
        if args.devices is not None and args.devices <= 0:
            raise ConfigError(f"--devices must be a positive integer, got {args.devices}")
        if args.distributed:
            jax.distributed.initialize()
        devices = jax.devices()
        if args.devices is not None:
            if args.devices > len(devices):
                raise ConfigError(f"--devices {args.devices} but only {len(devices)} devices are visible")
            devices = devices[: args.devices]
        out_dir = None
        if args.out:
            out_dir = str(results.prepare_out_dir(args.out, overwrite=args.overwrite))
    except (ConfigError, results.OutputDirError) as err:
        print(f"rpo-jax: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # Compiled programs are cached on disk (RPO_JAX_COMPILATION_CACHE="" turns this off).
    cache = os.environ.get("RPO_JAX_COMPILATION_CACHE", os.path.expanduser("~/.cache/rpo_jax/xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

    from rpo_jax import population

    if jax.process_index() != 0:  # multi-host: every process trains its shard, process 0 writes
        out_dir = None
    if out_dir is not None:
        results.write_yaml(os.path.join(out_dir, "config.yaml"), config.to_dict())
    group_names = _group_names(config)
    size = len(config.sweep.members(config.hparams))
    compiles = len(config.sweep.static_points())
    print(
        f"rpo-jax {args.command}: {config.train.env}, {size} member(s) "
        f"({len(config.sweep.seeds)} seeds x {size // len(config.sweep.seeds)} configurations), "
        f"{config.train.num_iterations} iterations of {config.train.batch_size} steps, {len(devices)} device(s)"
        + (f", {compiles} compiled programs (static sweep)" if compiles > 1 else ""),
        flush=True,
    )
    result = population.run_experiment(
        config, devices=devices, progress_fn=None if args.quiet else _progress_printer(group_names)
    )
    finals = population.final_returns(result.metrics)
    total_steps = config.train.num_iterations * config.train.batch_size * size
    summary = {
        "env": config.train.env,
        "members": size,
        "devices": result.num_devices,
        "compile_seconds": round(result.compile_seconds, 2),
        "run_seconds": round(result.run_seconds, 2),
        "env_steps_total": total_steps,
        "env_steps_per_second": round(total_steps / result.run_seconds, 1),
        "final_return": _group_summary(result.members, group_names, finals),
    }
    print(f"compile {result.compile_seconds:.1f}s, run {result.run_seconds:.1f}s "
          f"({summary['env_steps_per_second']:,.0f} env steps/s)")
    for row in summary["final_return"]:
        label = ", ".join(f"{n}={_fmt(row[n])}" for n in group_names) or "all members"
        print(f"final return {label}: {row['mean']:.1f} ± {row['std']:.1f} over {row['n']} seeds")
    if out_dir is not None:
        _write_outputs(out_dir, config, result, summary)
        print(f"wrote {out_dir}/ (config.yaml, metrics.csv, learning_curve.png, checkpoint/, summary.json)")
    return 0


def _group_names(config: ExperimentConfig) -> list[str]:
    """Member-table columns that tell configurations apart (static fields, then hyperparameters)."""
    return [n for n, _ in config.sweep.static] + config.sweep.swept_hparams


def _group_summary(members, group_names, finals) -> list[dict[str, Any]]:
    groups: dict[tuple, list[float]] = {}
    for m, f in zip(members, finals):
        groups.setdefault(tuple(m[n] for n in group_names), []).append(float(f))
    rows = []
    for values, fs in groups.items():
        arr = np.asarray(fs)
        rows.append({**dict(zip(group_names, values)), "mean": float(np.nanmean(arr)),
                     "std": float(np.nanstd(arr)), "n": len(fs), "per_seed": [round(x, 2) for x in fs]})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATED:
        import importlib

        return importlib.import_module(f"rpo_jax.{argv[0]}").main(argv[1:])
    args = _build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
