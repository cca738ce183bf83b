"""Durable runs: streaming metrics, periodic checkpoints, exact resume, clean interrupts.

:func:`run_durable` trains a whole experiment into a run directory so that no
result is lost to a crash, a kill or a Ctrl-C:

* after every chunk, ``metrics.csv`` is rewritten (atomically) with every
  iteration so far, and ``status.json`` says how far the run got;
* every ``CheckpointPolicy.every_minutes`` minutes (default 1; an orbax save of a
  small population takes ~0.14 s on a CPU core, ``bench/RESULTS.md``) and/or every
  ``every_chunks`` chunks, at the end of each static point and on a stop signal, the whole population state
  (parameters, optimiser, normaliser, env states, keys, iteration) and the metric
  history are saved with orbax's ``CheckpointManager`` under
  ``resume/point-<k>/<iteration>/`` (the newest ``keep`` kept);
* a run started again over the same directory continues from the newest
  complete checkpoint of each static point. The same compiled chunk program runs
  the remaining chunks from the saved state, so on the same devices the result
  equals the uninterrupted run bit for bit;
* :class:`StopSignals` turns the first SIGINT / SIGTERM into "finish this chunk,
  checkpoint, stop", and a second one into "abandon the chunk now" (the newest
  periodic checkpoint stands).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from rpo_jax.config import ExperimentConfig
from rpo_jax.runs import results
from rpo_jax.training import multihost, population, train

RESUME_DIR = "resume"


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When the population state is saved while training."""

    every_chunks: int = 0  # after every N-th chunk (0: off)
    # after the first chunk that ends this many minutes after the last save (0: off). With both off,
    # saves happen only at the end of each static point and on a stop signal.
    every_minutes: float = 1.0
    keep: int = 2  # newest checkpoints kept per static point

    def due(self, chunks_done: int, seconds_since_save: float) -> bool:
        by_count = self.every_chunks > 0 and chunks_done % self.every_chunks == 0
        by_time = self.every_minutes > 0 and seconds_since_save >= 60.0 * self.every_minutes
        return by_count or by_time


class Abandoned(BaseException):
    """A second stop signal arrived while a chunk was computing; ``signum`` is that signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopped(Exception):
    """A stop signal ended the run after a chunk; everything up to :attr:`progress` is saved."""

    def __init__(self, signum: int, progress: "Progress"):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.progress = progress


class StopSignals:
    """While active, the first SIGINT/SIGTERM sets :attr:`signum`; a second raises :class:`Abandoned`."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Abandoned(signum)
        self.signum = signum
        name = signal.Signals(signum).name
        print(f"({name}: finishing the current chunk, then saving; send it again to stop at once)", flush=True)

    def __enter__(self) -> "StopSignals":
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


@dataclasses.dataclass
class Progress:
    """Where a durable run stands; ``on_progress`` receives it after every chunk."""

    point: int  # static point being trained (0-based)
    points: int
    iteration: int  # iterations done in this point
    num_iterations: int
    checkpoint_iteration: int  # newest saved iteration of this point (0: none)
    runaway_episodes: int = 0  # episodes ended by the envs' runaway guard so far, all members (rpo_jax.envs.core)


def checkpoint_manager(run_dir: str | os.PathLike, point: int, keep: int = 2):
    """Orbax ``CheckpointManager`` of one static point's resume checkpoints (synchronous saves)."""
    import orbax.checkpoint as ocp

    directory = pathlib.Path(run_dir).absolute() / RESUME_DIR / f"point-{point}"
    directory.mkdir(parents=True, exist_ok=True)  # orbax refuses create=True for one process of several
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=False,
        enable_async_checkpointing=False,
        cleanup_tmp_directories=True,
        multiprocessing_options=results.this_process_only(),
    )
    return ocp.CheckpointManager(directory, options=options)


def _without_empty(tree: Any) -> Any:
    """``tree`` with its zero-size arrays as None: orbax cannot save them (MJX states hold some, e.g. ``data.act``)."""
    return jax.tree.map(lambda x: None if np.size(x) == 0 else x, tree)


def _with_empty(restored: Any, target: Any) -> Any:
    """Undoes :func:`_without_empty`: ``target``'s structure, zero-size leaves rebuilt from their shapes."""
    saved = iter(jax.tree.leaves(restored))
    leaves = [np.empty(t.shape, t.dtype) if np.size(t) == 0 else next(saved) for t in jax.tree.leaves(target)]
    return jax.tree.unflatten(jax.tree.structure(target), leaves)


def _save(manager, iteration: int, state: Any, history: dict[str, np.ndarray]) -> None:
    import orbax.checkpoint as ocp

    state = _without_empty(state)
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), history=ocp.args.StandardSave(history))
    manager.save(iteration, args=args, force=True)


def _restore_shared(manager, state_target: Any) -> population.Resume | None:
    """:func:`_restore` on the leader (the only process with ``manager``), shared with every process."""
    resume = _restore(manager, state_target) if manager is not None else None
    if multihost.process_count() == 1:
        return resume
    shapes = None if resume is None else {k: [v.shape, v.dtype.str] for k, v in resume.metrics.items()}
    header = multihost.share_text(None if resume is None else json.dumps([resume.iteration, shapes]))
    if header is None:
        return None
    iteration, shapes = json.loads(header)
    if resume is None:  # the other processes: placeholders of the leader's shapes
        state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), state_target)
        resume = population.Resume(iteration, state, {k: np.zeros(*v) for k, v in shapes.items()})
    state, metrics = multihost.share((resume.state, resume.metrics))
    return population.Resume(iteration=iteration, state=state, metrics=metrics)


def _restore(manager, state_target: Any) -> population.Resume | None:
    """The newest complete checkpoint of ``manager`` as a :class:`population.Resume`, or None."""
    import orbax.checkpoint as ocp

    step = manager.latest_step()
    if step is None:
        return None
    target = jax.tree.map(lambda s: np.empty(s.shape, s.dtype), state_target)
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_without_empty(target)), history=ocp.args.StandardRestore()
            ),
        )
    except Exception as e:  # orbax raises many types for corrupt or mismatched data
        raise ValueError(f"cannot read checkpoint {manager.directory / str(step)}: {results.one_line(e)}") from e
    history = {k: np.asarray(v) for k, v in restored["history"].items()}
    return population.Resume(iteration=int(step), state=_with_empty(restored["state"], target), metrics=history)


def run_durable(
    config: ExperimentConfig,
    run_dir: str | os.PathLike,
    *,
    devices: Sequence[jax.Device] | None = None,
    policy: CheckpointPolicy = CheckpointPolicy(),
    stop: StopSignals | None = None,
    progress_fn: population.ProgressFn | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> population.SweepResult:
    """Trains ``config`` into ``run_dir``, continuing from its checkpoints if it has any.

    Every static point is compiled and trained in turn (as
    :func:`rpo_jax.training.population.run_experiment` does); a point whose newest
    checkpoint is at its last iteration is loaded, not retrained. ``metrics.csv``
    in ``run_dir`` is rewritten after every chunk. When ``stop.signum`` is set
    after a chunk, that chunk is checkpointed and the returned result stops there
    (``result.iterations`` < ``config.train.num_iterations``).
    """
    run_dir = pathlib.Path(run_dir) if run_dir is not None else None
    points = config.sweep.static_points()
    finished: list[population.SweepResult] = []
    for k, point in enumerate(points):
        trainer = train.make_trainer(dataclasses.replace(config.train, **point))
        pop = population.build_population(config.sweep, config.hparams, point)
        manager = checkpoint_manager(run_dir, k, policy.keep) if run_dir is not None else None
        saved = {"iteration": 0}

        def report(iteration: int, k=k, trainer=trainer, runaway: int = 0) -> Progress:
            before = sum(_runaway(r.metrics) for r in finished)
            progress = Progress(k, len(points), iteration, trainer.num_iterations, saved["iteration"], before + runaway)
            if on_progress is not None:
                on_progress(progress)
            return progress

        try:
            resume = _restore_shared(manager, population.state_shape(trainer, pop.size, with_pbt=pop.pbt is not None))
            saved["iteration"] = resume.iteration if resume is not None else 0
            if resume is not None and resume.iteration == trainer.num_iterations:
                finished.append(
                    population.SweepResult(
                        members=pop.members,
                        state=resume.state,
                        metrics=resume.metrics,
                        compile_seconds=0.0,
                        run_seconds=0.0,
                        num_devices=len(devices or jax.devices()),
                        iterations=resume.iteration,
                    )
                )
                continue
            signum = _agreed_stop(stop)
            if signum is not None:  # stopped before this point started
                raise Stopped(signum, report(saved["iteration"]))
            chunk_fn = _chunk_fn(
                trainer,
                pop,
                manager,
                resume,
                config=config,
                run_dir=run_dir,
                done=finished,
                policy=policy,
                stop=stop,
                saved=saved,
                report=report,
            )
            result = population.run_population(
                trainer,
                pop,
                chunk_iterations=config.sweep.chunk_iterations,
                devices=devices,
                progress_fn=progress_fn,
                resume=resume,
                chunk_fn=chunk_fn,
            )
        finally:
            if manager is not None:
                manager.close()
        if result.iterations < trainer.num_iterations:
            raise Stopped(_stop_signal(stop), report(result.iterations))
        finished.append(result)
    return population.join_results(finished)


def _stop_signal(stop: StopSignals | None) -> int:
    """This process's stop signal; SIGTERM for a process stopped because another process got one."""
    return stop.signum if stop is not None and stop.signum is not None else signal.SIGTERM


def _agreed_stop(stop: StopSignals | None) -> int | None:
    """The stop signal if any process got one (all processes then stop together), else None."""
    agreed = multihost.agree({"stop": stop is not None and stop.signum is not None})
    return _stop_signal(stop) if agreed["stop"].any() else None


def _chunk_fn(trainer, pop, manager, resume, *, config, run_dir, done, policy, stop, saved, report):
    """The after-chunk hook of one static point: stream metrics, checkpoint when due, say whether to stop.

    ``run_dir`` and ``manager`` are None on the processes of a multi-process run that do not
    write; whether to checkpoint follows the leader's clock and a stop signal on any process,
    so every process takes part in the same gathers.
    """
    history = [resume.metrics] if resume is not None and resume.iteration else []
    last_save = {"time": time.monotonic()}
    chunk = population.chunk_size(
        trainer.num_iterations, config.sweep.chunk_iterations, pbt_interval=config.sweep.pbt.interval
    )

    def chunk_fn(iteration: int, state: Any, metrics: dict[str, np.ndarray]) -> bool:
        history.append(metrics)
        sofar = population.concat_metrics(history)
        if run_dir is not None:
            write_metrics(run_dir, [*[(r.members, r.metrics) for r in done], (pop.members, sofar)])
        local = {
            "stop": stop is not None and stop.signum is not None,
            "due": policy.due(iteration // chunk, time.monotonic() - last_save["time"]),
        }
        agreed = multihost.agree(local)
        stopping, due = bool(agreed["stop"].any()), bool(agreed["due"][0])
        if iteration == trainer.num_iterations or stopping or due:
            host = jax.tree.map(lambda x: np.asarray(x)[: pop.size], population.fetch(state))
            if manager is not None:
                _save(manager, iteration, host, sofar)
            last_save["time"] = time.monotonic()
            saved["iteration"] = iteration
        report(iteration, runaway=_runaway(sofar))
        return stopping

    return chunk_fn


def _runaway(metrics: dict[str, np.ndarray]) -> int:
    """Episodes the envs' runaway guard ended in ``metrics`` (all members, all iterations)."""
    return int(np.nansum(metrics.get("runaway_episodes", 0)))


def write_metrics(run_dir: str | os.PathLike, parts: Sequence[tuple[list[dict], dict[str, np.ndarray]]]) -> None:
    """Atomically writes ``metrics.csv``: every member of every part, every iteration it has so far.

    Members of different static points may have completed different numbers of
    iterations; the table holds each member's own.
    """
    tables = [results.metrics_table(m, members) for members, m in parts if m]
    if tables:
        import pandas as pd

        results.write_table(pd.concat(tables, ignore_index=True), pathlib.Path(run_dir) / "metrics.csv")
