"""Populations: seeds x hyperparameter grid as one vmapped, sharded, compiled program.

A population of P members is a leading axis on the keys, the hyperparameters
and every leaf of the train state. ``run_population`` compiles two programs
once per sweep -- ``vmap(init)`` and ``vmap(run)`` for a chunk of iterations --
shards the population axis over a 1-D device mesh (all local devices by
default; all devices of all processes after ``jax.distributed.initialize()``),
and calls the chunk program repeatedly so progress is reported while training
runs. Compile time is measured apart from run time.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rpo_jax.config import ExperimentConfig, HParams, PBTConfig, SweepConfig
from rpo_jax.training import multihost, pbt
from rpo_jax.training.train import Trainer, TrainState, as_hparams, make_trainer, stack_hparams

POPULATION_AXIS = "population"  # the vmap axis of the members (collectives over it: rpo_jax.envs.starts)
MESH_AXIS = "devices"  # the device mesh's axis, over which the population axis is split


@dataclasses.dataclass(frozen=True)
class Population:
    """Host-side description of a population."""

    members: list[dict[str, Any]]  # one row per member: member, seed, swept values
    keys: np.ndarray  # [P, 2] uint32 PRNG keys, one per member (from its seed)
    hparams: HParams  # leaves [P] float32
    pbt: PBTConfig | None = None  # population-based training (rpo_jax.training.pbt), if sweep.pbt is on
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()  # sweep.grid: PBT's resampling values

    @property
    def size(self) -> int:
        return len(self.members)

    def pbt_groups(self) -> np.ndarray:
        """``[P]`` each member's PBT population: the index of its seed among this population's seeds.

        A population holds one static point's members (:func:`build_population`), one compiled
        program; members of another static point (other shapes, another compile) cannot exchange
        weights with these. So PBT populations are per static point x seed: the members of one
        seed *and* one static point evolve together, and group ``0`` of two static points are two
        different PBT populations.
        """
        seeds = sorted({m["seed"] for m in self.members})
        return np.asarray([seeds.index(m["seed"]) for m in self.members], np.int32)


def build_population(sweep: SweepConfig, base: HParams, static_point: dict[str, Any] | None = None) -> Population:
    """The members of ``sweep`` (see ``SweepConfig.members``) that share one static point, around ``base``.

    ``static_point`` selects one compile's members when ``sweep.static`` is set
    (default: all members, valid when nothing static is swept). A member's PRNG
    key depends only on its seed, so the same seed with other hyperparameters
    starts from the same initial networks and environments.
    """
    static_point = static_point or {}
    if set(static_point) != {n for n, _ in sweep.static}:
        raise ValueError(f"static_point {static_point} must set exactly the swept static fields")
    members = [m for m in sweep.members(base) if all(m[k] == v for k, v in static_point.items())]
    names = sweep.swept_hparams
    rows = [as_hparams(base, **{n: m[n] for n in names}) for m in members]
    keys = np.stack([np.asarray(jax.random.PRNGKey(m["seed"])) for m in members])
    return Population(
        members=members,
        keys=keys,
        hparams=stack_hparams(rows),
        pbt=sweep.pbt if sweep.pbt.enabled else None,
        grid=sweep.grid,
    )


def chunk_size(num_iterations: int, requested: int = 0, reports: int = 20, pbt_interval: int = 0) -> int:
    """Iterations per compiled chunk: the largest divisor of ``num_iterations`` not above the target.

    Chunks must divide the run so a single compiled chunk program serves the
    whole sweep. The target is ``requested`` or, if 0, about ``reports`` chunks.
    With ``pbt_interval`` the chunk also divides it, so every PBT step ends a chunk.
    """
    target = requested if requested > 0 else max(1, math.ceil(num_iterations / reports))
    target = min(target, num_iterations)
    whole = math.gcd(num_iterations, pbt_interval) if pbt_interval else num_iterations
    return max(d for d in range(1, target + 1) if whole % d == 0)


@dataclasses.dataclass
class SweepResult:
    members: list[dict[str, Any]]
    state: TrainState  # host numpy leaves with leading axis P
    metrics: dict[str, np.ndarray]  # name -> [P, num_iterations]
    compile_seconds: float
    run_seconds: float
    num_devices: int
    iterations: int = 0  # iterations every member has completed


def _mesh(devices: Sequence[jax.Device] | None) -> Mesh:
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (MESH_AXIS,))


def _put(tree: Any, sharding: NamedSharding) -> Any:
    """Places a host pytree (identical on every process) with its leading axis sharded."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda idx: np.asarray(x)[idx]), tree
    )


def fetch(tree: Any) -> Any:
    """Brings a (possibly multi-process) sharded pytree back to host numpy."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    with multihost.collective():  # a dead peer: PeerLost, one line
        return jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree)


def _pad(tree: Any, size: int) -> Any:
    """Pads the leading axis to ``size`` by repeating member 0 (padding is dropped afterwards)."""

    def pad(x):
        x = np.asarray(x)
        extra = size - x.shape[0]
        return x if extra == 0 else np.concatenate([x, np.repeat(x[:1], extra, axis=0)])

    return jax.tree.map(pad, tree)


ProgressFn = Callable[[dict[str, Any]], None]
# Called after every chunk with (iterations done, device state, this chunk's host metrics);
# returns True to stop after this chunk (e.g. on SIGINT, once a checkpoint is written).
ChunkFn = Callable[[int, TrainState, dict[str, np.ndarray]], bool]


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a population restarts: a state saved after ``iteration`` iterations and the metrics so far."""

    iteration: int
    state: TrainState  # host arrays, leading axis = the population's members (unpadded)
    metrics: dict[str, np.ndarray]  # name -> [P, iteration]


def run_population(
    trainer: Trainer,
    population: Population,
    *,
    chunk_iterations: int = 0,
    devices: Sequence[jax.Device] | None = None,
    progress_fn: ProgressFn | None = None,
    resume: Resume | None = None,
    chunk_fn: ChunkFn | None = None,
) -> SweepResult:
    """Trains every member of ``population`` in one compiled, sharded program.

    Args:
      trainer: from :func:`rpo_jax.training.train.make_trainer`.
      population: from :func:`build_population`.
      chunk_iterations: iterations per compiled call (see :func:`chunk_size`).
      devices: devices of the population mesh; default all devices.
      progress_fn: called on the host after every chunk with a dict holding
        ``iteration``, ``num_iterations``, ``env_steps``, ``elapsed`` (seconds of
        run time so far), ``run_iterations`` (iterations run by this call),
        ``members`` and ``metrics`` (name -> ``[P, chunk]`` numpy arrays).
      resume: continue from a saved state instead of ``init``. The same chunk
        program runs the remaining chunks, so on the same devices the result is
        bit for bit the uninterrupted run's.
      chunk_fn: see :data:`ChunkFn`; it runs before ``progress_fn``.

    Returns:
      A :class:`SweepResult`; padding members added to fill the mesh are removed.
      ``result.iterations`` is less than ``trainer.num_iterations`` when
      ``chunk_fn`` stopped the run.
    """
    mesh = _mesh(devices)
    num_devices = mesh.devices.size
    size = population.size
    padded = math.ceil(size / num_devices) * num_devices
    sharding = NamedSharding(mesh, PartitionSpec(MESH_AXIS))

    keys = _put(_pad(population.keys, padded), sharding)
    hparams = _put(_pad(population.hparams, padded), sharding)
    num_iterations = trainer.num_iterations
    interval = population.pbt.interval if population.pbt is not None else 0
    chunk = chunk_size(num_iterations, chunk_iterations, pbt_interval=interval)
    first = 0 if resume is None else resume.iteration
    if first % chunk or not 0 <= first <= num_iterations:
        raise ValueError(f"cannot resume at iteration {first}: not a chunk boundary of {chunk} in {num_iterations}")

    trainer = population_trainer(trainer, padded)
    init = over_members(pbt.with_pbt(trainer.init) if population.pbt else trainer.init, padded)
    init_fn = jax.jit(init, in_shardings=(sharding, sharding), out_shardings=sharding)
    replicated = NamedSharding(mesh, PartitionSpec())

    program = per_device(chunk_program(trainer, padded, chunk), mesh)
    if population.pbt is not None:  # the PBT step runs after the per-device chunk, over the whole population
        pad = padded - size
        program = pbt.chunk_program(
            program,
            population.pbt,
            trainer.config,
            groups=np.concatenate([population.pbt_groups(), np.full(pad, -1, np.int32)]),
            member_ids=np.asarray([m["member"] for m in population.members] + [-1] * pad, np.int32),
            grid=dict(population.grid),
        )
    flag_args = 1 if population.pbt is None else 2
    run_fn = jax.jit(
        program,
        in_shardings=(sharding, sharding) + (replicated,) * flag_args,
        out_shardings=sharding,
        donate_argnums=0,
    )
    flags = {flag: _put(np.asarray(flag), replicated) for flag in (False, True)}

    def chunk_flags(end: int) -> tuple:
        evaluate = flags[_evaluates(trainer.config, end, chunk)]
        if population.pbt is None:
            return (evaluate,)
        return evaluate, flags[pbt.exploit_due(end, population.pbt.interval, num_iterations)]

    start = time.perf_counter()
    state_shape = jax.eval_shape(init, keys, hparams)
    state_spec = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), state_shape)
    init_compiled = init_fn.lower(keys, hparams).compile() if resume is None else None
    run_compiled = run_fn.lower(state_spec, hparams, *(flags[False],) * flag_args).compile()
    compile_seconds = time.perf_counter() - start

    start = time.perf_counter()
    if resume is None:
        state = init_compiled(keys, hparams)
        chunks = []
    else:
        state = _put(_pad(resume.state, padded), sharding)
        chunks = [resume.metrics] if first else []
    done = first
    while done < num_iterations:
        state, metrics = run_compiled(state, hparams, *chunk_flags(done + chunk))
        _wait(metrics)
        metrics = {k: v[:size] for k, v in fetch(metrics).items()}
        chunks.append(metrics)
        done += chunk
        stop = chunk_fn is not None and chunk_fn(done, state, metrics)
        if progress_fn is not None:
            progress_fn(
                {
                    "iteration": done,
                    "num_iterations": num_iterations,
                    "env_steps": done * trainer.config.batch_size,
                    "elapsed": time.perf_counter() - start,
                    "run_iterations": done - first,
                    "members": population.members,
                    "metrics": metrics,
                }
            )
        if stop:
            break
    state = jax.tree.map(lambda x: x[:size], fetch(state))
    run_seconds = time.perf_counter() - start
    return SweepResult(
        members=population.members,
        state=state,
        metrics=concat_metrics(chunks),
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        num_devices=num_devices,
        iterations=done,
    )


def _evaluates(config, end: int, chunk: int) -> bool:
    """Whether the chunk ending at iteration ``end`` evaluates: every ``eval_every``-th chunk, and the last."""
    every = config.eval_every
    return bool(every) and ((end // chunk) % every == 0 or end >= config.num_iterations)


def concat_metrics(chunks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Joins per-chunk metrics ``name -> [P, n_k]`` along the iteration axis."""
    return {name: np.concatenate([c[name] for c in chunks], axis=1) for name in chunks[0]} if chunks else {}


def _wait(tree: Any) -> None:
    """Blocks until every array of ``tree`` is computed, in short sleeps.

    Unlike a blocking fetch, the sleeps let Python run signal handlers while a
    long chunk computes, so a second Ctrl-C can abandon it at once.
    """
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "is_ready")]
    while not all(x.is_ready() for x in leaves):
        time.sleep(0.01)


def chunk_program(trainer: Trainer, size: int, chunk: int) -> Callable:
    """``run_chunk(state, hparams, evaluate)``: ``chunk`` iterations of every member, the program a sweep repeats.

    ``trainer`` comes from :func:`population_trainer` for ``size``; ``evaluate`` is one unbatched flag,
    so it stays a real branch under vmap. A member whose state carries PBT's (``state.pbt``) trains
    with the hyperparameters there, not ``hparams`` (:func:`rpo_jax.training.pbt.hparams_in_effect`).
    """

    def run_chunk(state, hparams, evaluate):
        def member(s, h):
            return trainer.run(s, pbt.hparams_in_effect(s, h), chunk, evaluate)

        return over_members(member, size)(state, hparams)

    return run_chunk


def per_device(program: Callable, mesh: Mesh) -> Callable:
    """``program(state, hparams, evaluate)`` run by each device of ``mesh`` on its own members.

    ``jax.shard_map``: every device runs the vmapped program on its slice of the population,
    with no communication between devices -- the start caches' refill decision (a ``pmax``
    over the vmap axis, :mod:`rpo_jax.envs.starts`) is taken per device. Under plain ``jit`` it
    spanned the whole population, an all-reduce on every env step that kept the devices in
    lockstep (and, across processes, went over the network). The decision only sets when
    starts are computed, not their values, so what is learned is unchanged. One device: the
    program as it is.
    """
    if mesh.devices.size == 1:
        return program
    spec = PartitionSpec(MESH_AXIS)
    return jax.shard_map(program, mesh=mesh, in_specs=(spec, spec, PartitionSpec()), out_specs=spec, check_vma=False)


def population_trainer(trainer: Trainer, size: int) -> Trainer:
    """``trainer`` for a population of ``size`` run by :func:`over_members` (its vmap axis named).

    With the axis named, the members' start caches refill together in one real branch
    (:mod:`rpo_jax.envs.starts`) instead of a select that computes a refill on every step.
    """
    return dataclasses.replace(trainer, population_axis=POPULATION_AXIS if size > 1 else None)


def over_members(fn: Callable, size: int) -> Callable:
    """``jax.vmap(fn)`` over the population axis; for a population of one, ``fn`` unbatched.

    The result has the population axis either way. A population of one (``rpo-jax
    train``) skips vmap because XLA:CPU's code for a vmapped update is slower than
    for the same update unbatched (a quarter, for one member; ``bench/RESULTS.md``).
    """
    if size > 1:
        return jax.vmap(fn, axis_name=POPULATION_AXIS)

    def one(*args):
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: jnp.asarray(x)[None], out)

    return one


def run_experiment(
    config: ExperimentConfig,
    *,
    devices: Sequence[jax.Device] | None = None,
    progress_fn: ProgressFn | None = None,
) -> SweepResult:
    """Trains the whole population of ``config``: one compiled program per static point.

    Without ``sweep.static`` this is one :func:`run_population` call. With it,
    each static point (e.g. ``action_dist = laplace``) is compiled and run in
    turn in this process and the results are joined into one population:
    members keep their global index and carry the static values as columns.
    """
    results = []
    for point in config.sweep.static_points():
        trainer = make_trainer(dataclasses.replace(config.train, **point))
        pop = build_population(config.sweep, config.hparams, point)
        results.append(
            run_population(
                trainer, pop, chunk_iterations=config.sweep.chunk_iterations, devices=devices, progress_fn=progress_fn
            )
        )
    return join_results(results)


def join_results(results: Sequence[SweepResult]) -> SweepResult:
    """One population from the results of its static points, in order (members keep their index)."""
    if len(results) == 1:
        return results[0]
    structures = {jax.tree.structure(r.state) for r in results}
    if len(structures) != 1:
        raise ValueError("static sweep points produced train states of different structure; run them separately")
    metric_names = [n for n in results[0].metrics if all(n in r.metrics for r in results)]
    return SweepResult(
        members=[m for r in results for m in r.members],
        state=jax.tree.map(lambda *xs: np.concatenate(xs), *[r.state for r in results]),
        metrics={n: np.concatenate([r.metrics[n] for r in results]) for n in metric_names},
        compile_seconds=sum(r.compile_seconds for r in results),
        run_seconds=sum(r.run_seconds for r in results),
        num_devices=results[0].num_devices,
        iterations=min(r.iterations for r in results),
    )


def final_returns(metrics: dict[str, np.ndarray], fraction: float = 0.05) -> np.ndarray:
    """Per-member final return: mean episode return over the last ``fraction`` of iterations.

    Iterations in which no episode ended (NaN) are skipped; a member with no
    finished episode in that window gets NaN.
    """
    returns = metrics["episode_return"]
    window = max(1, int(round(returns.shape[1] * fraction)))
    tail = returns[:, -window:]
    counts = np.sum(~np.isnan(tail), axis=1)
    sums = np.nansum(tail, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def diverged_members(result: SweepResult) -> dict[int, int]:
    """``{member index: iteration it diverged at}`` for members whose parameters or losses became non-finite."""
    at = np.asarray(result.state.diverged_at).reshape(-1)
    return {m["member"]: int(i) for m, i in zip(result.members, at) if i >= 0}


def state_shape(trainer: Trainer, size: int, with_pbt: bool = False) -> TrainState:
    """Shapes and dtypes of the :class:`~rpo_jax.training.train.TrainState` of ``size`` members (leading axis ``size``).

    A restore target for checkpoints of a population (``with_pbt``: one trained with ``sweep.pbt``);
    nothing is computed.
    """
    keys = jax.ShapeDtypeStruct((size, 2), np.uint32)
    hparams = jax.tree.map(lambda _: jax.ShapeDtypeStruct((size,), np.float32), HParams())
    return jax.eval_shape(jax.vmap(pbt.with_pbt(trainer.init) if with_pbt else trainer.init), keys, hparams)


def checkpoint_tree(state: TrainState) -> dict[str, Any]:
    """What is saved of each member: parameters, optimiser and normaliser state, key, iteration
    (and, after PBT, the hyperparameters it ended with)."""
    tree = {
        "params": state.params,
        "opt_state": state.opt_state,
        "normalizer": state.normalizer,
        "key": state.key,
        "iteration": state.iteration,
        "diverged_at": state.diverged_at,
    }
    if getattr(state, "pbt", None) is not None:
        tree["hparams"] = state.pbt.hparams
    return tree
