"""``rpo-jax suite``: one experiment over a list of tasks, each task an ordinary run directory.

A config's ``suite: {envs: [...]}`` section names the tasks (``reduced`` may replace the list with
``suite.envs``)::

    rpo-jax suite configs/paper/dmc_suite.yaml --reduced --out runs/dmc_suite_reduced

trains ``OUT/<Task>/`` for every task in turn, in one process: each is exactly
``rpo-jax sweep CONFIG --env family/Task --out OUT/<Task>`` (its ``status.json`` records that
command), one compiled program per task. Every task's config is resolved and checked before
anything is compiled. Rerunning the same command continues the suite: a finished task is skipped
(after checking that its directory holds this very config), an interrupted one is resumed, a
missing one is started; a stop signal ends the suite after the task it stops. ``rpo-jax report
OUT`` reports every task of the suite together (:func:`task_dirs`).
"""

from __future__ import annotations

import argparse
import copy
import pathlib

from rpo_jax import errors
from rpo_jax.config import ConfigError, ExperimentConfig
from rpo_jax.runs import config_io, results, rundir

MANIFEST = "suite.yaml"

DESCRIPTION = (
    "train every task of a config's suite section, each into OUT/<Task>/ (a sweep run directory); "
    "rerun to continue an interrupted suite"
)


def task_name(env: str) -> str:
    """The task's directory name: the env name after its family (``dmc/WalkerWalk`` -> ``WalkerWalk``)."""
    return env.split("/", 1)[-1].replace("/", "_")


def task_dirs(path: str | pathlib.Path) -> list[pathlib.Path] | None:
    """The task run directories of suite directory ``path``, in suite order; None if it is not one."""
    manifest = pathlib.Path(path) / MANIFEST
    if not manifest.is_file():
        return None
    data = config_io.load_yaml(str(manifest))
    return [pathlib.Path(path) / task_name(env) for env in data.get("tasks", [])]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The suite's options: those of ``sweep`` (launch), less ``--env`` / ``--overwrite``, plus ``--tasks``."""
    p.add_argument(
        "--tasks", help="comma-separated subset of the suite's tasks to train (names as in OUT, e.g. WalkerWalk)"
    )


def _task_args(args: argparse.Namespace, env: str, out: pathlib.Path) -> argparse.Namespace:
    """The ``rpo-jax sweep`` arguments that train ``env`` of the suite into ``out``."""
    task = copy.copy(args)
    task.command, task.env, task.out, task.overwrite = "sweep", env, str(out), False
    argv = ["sweep", args.config, *(["--reduced"] if args.reduced else [])]
    argv += [x for o in args.overrides for x in ("--set", o)]
    for flag, value in (("--total-timesteps", args.total_timesteps), ("--chunk", args.chunk), ("--seeds", args.seeds)):
        if value is not None:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    task.argv = [*argv, "--env", env, "--out", str(out)]
    return task


def _resume_args(args: argparse.Namespace, out: pathlib.Path) -> argparse.Namespace:
    task = copy.copy(args)
    task.command, task.run_dir, task.argv = "resume", str(out), ["resume", str(out)]
    return task


def _plan(args: argparse.Namespace) -> list[tuple[str, pathlib.Path, str, argparse.Namespace]]:
    """``(env, directory, what to do, arguments)`` per task, every config resolved and checked."""
    if args.env is not None:
        raise ConfigError("--env: a suite trains the tasks of its suite section; pick some with --tasks")
    if args.overwrite:
        raise ConfigError("--overwrite: a suite never replaces a finished task; delete OUT/<Task> to train it again")
    if not args.out:
        raise ConfigError("rpo-jax suite needs --out DIR (one run directory per task inside it)")
    data = config_io.load_yaml(args.config)
    reduced = data.get("reduced") if args.reduced else None
    envs = config_io.suite_tasks(data, reduced if isinstance(reduced, dict) else None)
    if envs is None:
        raise ConfigError(
            f"{args.config} has no '{config_io.SUITE_SECTION}' section (suite: {{envs: [...]}}); use rpo-jax sweep"
        )
    if args.tasks is not None:
        wanted = [t for t in args.tasks.split(",") if t]
        names = {task_name(e): e for e in envs}
        unknown = [t for t in wanted if t not in names]
        if unknown or not wanted:
            raise ConfigError(f"--tasks {args.tasks}: not in the suite ({', '.join(names)})")
        envs = [names[t] for t in wanted]
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    from rpo_jax.runs import launch

    plan = []
    for env in envs:
        task_args = _task_args(args, env, out / task_name(env))
        config = launch.resolve_config(task_args)
        plan.append((env, out / task_name(env), _action(out / task_name(env), config), task_args))
    return plan


def _action(run_dir: pathlib.Path, config: ExperimentConfig) -> str:
    """``start``, ``resume`` or ``skip`` for a task's directory; ConfigError if it holds another config."""
    if not run_dir.exists():
        return "start"
    status = rundir.read_status(run_dir)
    if status is None:
        raise ConfigError(f"{run_dir} exists but is no run directory (no status.json): move it away")
    saved = run_dir / "config.yaml"
    if not saved.is_file() or config_io.config_from_dict(config_io.load_yaml(str(saved))) != config:
        raise ConfigError(f"{run_dir} holds a run of another config than this suite's: move it away or pass --out")
    if rundir.is_locked(run_dir):
        raise ConfigError(f"{run_dir} is being written by another process (pid {status.get('pid')})")
    return "skip" if status.get("state") == "complete" else "resume"


def run(args: argparse.Namespace) -> int:
    """``rpo-jax suite``: plan (checks every task), write the manifest, then train task by task."""
    try:
        plan = _plan(args)
    except errors.InputError as err:
        return errors.report(err)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"config": args.config, "reduced": bool(args.reduced), "overrides": list(args.overrides)}
    previous = config_io.load_yaml(str(out / MANIFEST)) if (out / MANIFEST).is_file() else {}
    known = [t for t in previous.get("tasks", []) if t not in [env for env, *_ in plan]]
    results.write_yaml(out / MANIFEST, {**manifest, "tasks": known + [env for env, *_ in plan]})
    what = ", ".join(f"{task_name(env)} ({action})" for env, _, action, _ in plan)
    print(f"rpo-jax suite: {len(plan)} task(s) into {out}/: {what}", flush=True)
    for env, run_dir, action, task_args in plan:
        if action == "skip":
            print(f"rpo-jax suite: {task_name(env)} is complete; skipped", flush=True)
            continue
        from rpo_jax.runs import launch

        handler = launch.run if action == "start" else launch.resume_run
        code = handler(task_args if action == "start" else _resume_args(args, run_dir))
        if code != 0:
            print(f"rpo-jax suite: stopped at {task_name(env)} (exit {code}); rerun the same command to continue")
            return code
    print(f"rpo-jax suite: done; report with: rpo-jax report {out} --out {out}/report")
    return 0
