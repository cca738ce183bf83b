"""Population-based training inside the compiled program (Jaderberg et al., 2017, "PBT").

The members of a sweep already carry their hyperparameters as traced values, so PBT needs no
restart and no recompile: every ``sweep.pbt.interval`` iterations the chunk program ends with

1. **fitness** -- each member's mean training return over the iterations since the last step
   (the mean, over iterations in which an episode ended, of that iteration's mean episode
   return; ``-inf`` for a member with none or a diverged one, so a diverged member in the bottom
   fraction continues from a healthy copy, divergence flag included);
2. **exploit** (truncation selection) -- within each PBT population (the members of one static
   point and one seed: a static point is its own compiled program, whose members cannot exchange
   weights with another's, and seeds are independent replicas for confidence intervals), each
   member ranked in the bottom ``fraction`` copies a member drawn uniformly from the top
   ``fraction``, if that one is fitter: its parameters, Adam state, observation and reward
   statistics, divergence flag and hyperparameters. It keeps its own environments, running
   episodes, discounted-return accumulator (of its own episodes) and start stream; its current
   observation is re-normalised with the copied statistics, and it gets a fresh PRNG key of its
   own, ``fold_in(fold_in(key, member), generation)`` (``generation``: the PBT step's number,
   ``iteration // interval``). Members of a seed start from one key, so without it a copy would
   draw exactly its donor's action noise, minibatch shuffles and RPO perturbations
   (:func:`exploit_and_explore` says why the start stream stays shared);
3. **explore** -- each copied hyperparameter named in ``sweep.pbt.explore`` is, with probability
   ``resample_probability``, drawn afresh (uniformly from its ``sweep.grid`` values, else
   log-uniformly in its bounds), otherwise multiplied by one of ``factors``; then clipped to its
   bounds.

All of it is ``jnp`` on the whole population (ranks are an all-pairs comparison, copies a
gather), run under ``jit`` after the per-device chunk (:func:`rpo_jax.training.population.per_device`), so
with the population sharded XLA gathers across devices once per PBT step and the chunk itself
stays free of communication. PBT's own draws come from ``fold_in(state.key, PBT_STREAM)`` and the
member's index, which do not consume the training key: PBT is deterministic for a seed. A member's
random stream is the one it has without PBT until it first copies; from then on it is its own
re-keyed one (so are the keys of its evaluation episodes, folded from it). With PBT off nothing
here runs.

Lineage is recorded as metrics (``metrics.csv``): ``pbt_parent`` (the member copied after this
iteration, -1 if none), ``pbt_fitness`` (the fitness the step ranked, at PBT steps) and
``pbt_<name>`` (each explored value in effect during the iteration).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from rpo_jax.config import HParams, PBTConfig, TrainConfig
from rpo_jax.core import normalization

PBT_STREAM = 0x504254  # fold_in data of PBT's random draws ("PBT")
PARENT_METRIC = "pbt_parent"
FITNESS_METRIC = "pbt_fitness"


def hparam_metric(name: str) -> str:
    """The metric holding the values of explored hyperparameter ``name`` over the iterations."""
    return f"pbt_{name}"


@flax.struct.dataclass
class PBTState:
    """What PBT adds to one member's :class:`~rpo_jax.training.train.TrainState` (``TrainState.pbt``)."""

    hparams: HParams  # in effect now: the member trains with these, not the sweep's
    fitness_sum: jax.Array  # float32: sum of the per-iteration mean returns since the last step
    fitness_count: jax.Array  # int32: iterations since the last step in which an episode ended


def init(hparams: HParams) -> PBTState:
    """One member's PBT state at the start: its sweep hyperparameters, an empty fitness window."""
    return PBTState(hparams=hparams, fitness_sum=jnp.zeros((), jnp.float32), fitness_count=jnp.zeros((), jnp.int32))


def with_pbt(init_fn: Callable) -> Callable:
    """``init_fn(key, hparams)`` of a trainer, returning a state that carries :class:`PBTState`."""

    def init_with_pbt(key, hparams):
        return init_fn(key, hparams).replace(pbt=init(hparams))

    return init_with_pbt


def hparams_in_effect(state: Any, hparams: HParams) -> HParams:
    """The hyperparameters a member trains with: its PBT state's when it has one, else ``hparams``."""
    return state.pbt.hparams if getattr(state, "pbt", None) is not None else hparams


def observe(pbt: PBTState, episode_return: jax.Array) -> PBTState:
    """Adds one chunk's per-iteration mean training returns ``[P, n]`` (NaN: none ended) to the window."""
    finite = jnp.isfinite(episode_return)
    return pbt.replace(
        fitness_sum=pbt.fitness_sum + jnp.sum(jnp.where(finite, episode_return, 0.0), axis=-1),
        fitness_count=pbt.fitness_count + jnp.sum(finite, axis=-1, dtype=jnp.int32),
    )


def fitness(pbt: PBTState, diverged_at: jax.Array) -> jax.Array:
    """``[P]`` mean of the window's returns; ``-inf`` for a member with none, or that diverged."""
    mean = pbt.fitness_sum / jnp.maximum(pbt.fitness_count, 1)
    return jnp.where((pbt.fitness_count > 0) & (diverged_at < 0), mean, -jnp.inf)


def ranks(values: jax.Array, groups: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each member's rank within its group (0 = highest value; ties: lower index first) and its group's size."""
    index = jnp.arange(values.shape[0])
    same = groups[:, None] == groups[None, :]
    ahead = (values[None, :] > values[:, None]) | (
        (values[None, :] == values[:, None]) & (index[None, :] < index[:, None])
    )
    return jnp.sum(same & ahead, axis=1), jnp.sum(same, axis=1)


def choose_parents(values: jax.Array, groups: jax.Array, fraction: float, keys: jax.Array) -> jax.Array:
    """``[P]`` the member each one continues from: a random top-``fraction`` member of its group for
    the bottom ``fraction`` (if fitter), else itself. Members of group -1 (padding) take no part."""
    index = jnp.arange(values.shape[0])
    rank, size = ranks(values, groups)
    count = jnp.maximum(1, jnp.floor(fraction * size).astype(jnp.int32))  # members per tail
    bottom = (rank >= size - count) & (size >= 2) & (groups >= 0)
    target = jax.vmap(lambda k, n: jax.random.randint(k, (), 0, n))(keys, count)
    match = (groups[:, None] == groups[None, :]) & (rank[None, :] == target[:, None])
    parent = jnp.argmax(match, axis=1)
    replace = bottom & (values[parent] > values)
    return jnp.where(replace, parent, index)


def explore(
    values: jax.Array,
    keys: jax.Array,
    bounds: tuple[float, float],
    factors: tuple[float, ...],
    resample_probability: float,
    choices: tuple[float, ...] = (),
) -> jax.Array:
    """``[P]`` perturbed copies of ``values``: resampled with ``resample_probability`` (from
    ``choices`` if given, else log-uniform in ``bounds``, uniform if the low bound is 0), else times
    a random one of ``factors``; clipped to ``bounds``."""
    low, high = bounds

    def one(value, key):
        k_which, k_factor, k_draw = jax.random.split(key, 3)
        perturbed = value * jnp.asarray(factors, jnp.float32)[jax.random.randint(k_factor, (), 0, len(factors))]
        if choices:
            drawn = jnp.asarray(choices, jnp.float32)[jax.random.randint(k_draw, (), 0, len(choices))]
        elif low > 0:
            drawn = jnp.exp(jax.random.uniform(k_draw, (), minval=np.log(low), maxval=np.log(high)))
        else:
            drawn = jax.random.uniform(k_draw, (), minval=low, maxval=high)
        new = jnp.where(jax.random.uniform(k_which) < resample_probability, drawn, perturbed)
        return jnp.clip(new, low, high).astype(jnp.float32)

    return jax.vmap(one)(values, keys)


def exploit_and_explore(
    state: Any,
    config: PBTConfig,
    train: TrainConfig,
    groups: jax.Array,
    member_ids: jax.Array,
    grid: dict[str, tuple[float, ...]],
) -> tuple[Any, jax.Array, jax.Array]:
    """One PBT step on a population's state (leading axis ``P``); see the module docstring.

    Returns the new state, the ``[P]`` index (into the population) each member continued from
    (its own where it did not copy) and the ``[P]`` fitness that was ranked. A member that does
    not copy keeps every value bit for bit.

    Random streams of a copy. ``state.key`` (action noise, minibatch shuffles, RPO's
    perturbations, loss terms' draws) is the same for all members of a seed at the same
    iteration, by construction (:func:`rpo_jax.training.population.build_population`). A copy that kept
    it would hold its donor's parameters *and* its donor's key: the two would draw identical
    noise from then on, one exploration spent twice. So a member that copies gets
    ``fold_in(fold_in(its key, member_id), generation)``, ``generation = iteration // interval``
    (the PBT step's number, derived from the state so old checkpoints need no new field): its
    own stream, different from every other member's and from its own at an earlier copy.

    The start stream (``state.starts``, the fresh episode starts: start ``j`` is
    ``reset(fold_in(starts.key, j))``) stays shared, and each member keeps its own position in
    it. Members of a seed taking their episodes' starts from one stream (start ``j`` is the same
    for all of them) are common random numbers, as in a fixed grid: the next ranking compares
    members on the same starts, so fitness differences are the policies', not the starts'. A
    copy already diverges from its donor through its own key, so re-keying the starts would only
    add noise to the selection.
    """
    size = member_ids.shape[0]
    index = jnp.arange(size)
    keys = jax.vmap(lambda k, m: jax.random.fold_in(jax.random.fold_in(k, PBT_STREAM), m))(state.key, member_ids)
    parent_keys, explore_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
    values = fitness(state.pbt, state.diverged_at)
    parent = choose_parents(values, groups, config.fraction, parent_keys)
    copied = parent != index
    take = lambda tree: jax.tree.map(lambda x: jnp.take(x, parent, axis=0), tree)  # noqa: E731

    hparams = take(state.pbt.hparams)
    for i, (name, bounds) in enumerate(config.explore):
        keys_i = jax.vmap(lambda k: jax.random.fold_in(k, i))(explore_keys)
        new = explore(
            getattr(hparams, name), keys_i, bounds, config.factors, config.resample_probability, grid.get(name, ())
        )
        hparams = hparams.replace(**{name: jnp.where(copied, new, getattr(hparams, name))})

    generation = state.iteration // config.interval  # [P]: this PBT step's number
    rekeyed = jax.vmap(lambda k, m, g: jax.random.fold_in(jax.random.fold_in(k, m), g))(
        state.key, member_ids, generation
    )
    key = jnp.where(copied.reshape((size,) + (1,) * (state.key.ndim - 1)), rekeyed, state.key)

    normalizer = take(state.normalizer).replace(discounted_return=state.normalizer.discounted_return)
    obs = state.obs
    if train.normalize_observations:
        renormalized = jax.vmap(lambda n, o: normalization.normalize_observations(n, o, train.obs_clip))(
            normalizer, state.env_state.obs
        )
        obs = jnp.where(copied.reshape((size,) + (1,) * (obs.ndim - 1)), renormalized, obs)
    state = state.replace(
        params=take(state.params),
        opt_state=take(state.opt_state),
        normalizer=normalizer,
        obs=obs,
        diverged_at=take(state.diverged_at),
        key=key,
        pbt=PBTState(
            hparams=hparams, fitness_sum=jnp.zeros((size,), jnp.float32), fitness_count=jnp.zeros((size,), jnp.int32)
        ),
    )
    return state, parent, values


def chunk_program(
    program: Callable,
    config: PBTConfig,
    train: TrainConfig,
    groups: np.ndarray,
    member_ids: np.ndarray,
    grid: dict[str, tuple[float, ...]],
) -> Callable:
    """``run_chunk(state, hparams, evaluate, exploit)``: ``program``'s chunk, then (if ``exploit``) a PBT step.

    ``program(state, hparams, evaluate)`` is the population's chunk program; its members train with
    ``state.pbt.hparams``. ``groups`` ``[P]`` numbers each member's PBT population (its seed's index
    among the program's members, all of one static point; -1 for padding), ``member_ids`` ``[P]``
    its member number in the whole sweep. ``exploit`` is one unbatched bool, a real
    branch. Adds the lineage metrics (module docstring) to the chunk's.
    """
    groups = jnp.asarray(groups, jnp.int32)
    member_ids = jnp.asarray(member_ids, jnp.int32)

    def run_chunk(state, hparams, evaluate, exploit):
        in_effect = state.pbt.hparams
        state, metrics = program(state, hparams, evaluate)
        state = state.replace(pbt=observe(state.pbt, metrics["episode_return"]))
        size, length = metrics["episode_return"].shape
        index = jnp.arange(size)

        def step(state):
            return exploit_and_explore(state, config, train, groups, member_ids, grid)

        def no_step(state):
            return state, index, jnp.full((size,), jnp.nan, jnp.float32)

        state, parent, ranked = jax.lax.cond(exploit, step, no_step, state)
        last = jnp.arange(length) == length - 1
        parent_id = jnp.where(parent != index, member_ids[parent], -1)
        metrics = dict(metrics)
        metrics[PARENT_METRIC] = jnp.where(last[None, :], parent_id[:, None], -1).astype(jnp.int32)
        metrics[FITNESS_METRIC] = jnp.where(last[None, :], ranked[:, None], jnp.nan).astype(jnp.float32)
        for name, _ in config.explore:
            metrics[hparam_metric(name)] = jnp.broadcast_to(getattr(in_effect, name)[:, None], (size, length))
        return state, metrics

    return run_chunk


def exploit_due(end: int, interval: int, num_iterations: int) -> bool:
    """Whether the chunk ending at iteration ``end`` ends with a PBT step (never after the last iteration)."""
    return end % interval == 0 and end < num_iterations


def lineage(parents: np.ndarray) -> np.ndarray:
    """``[P, T]`` the member whose initial state each member's state descends from, per iteration.

    ``parents`` is the ``pbt_parent`` metric ``[P, T]`` with member numbers 0..P-1 (the population's
    own; -1: no copy). After a copy at iteration ``t``, a member's ancestor from ``t + 1`` on is its
    parent's ancestor at ``t``.
    """
    size, length = parents.shape
    ancestor = np.arange(size)
    out = np.empty((size, length), np.int64)
    for t in range(length):
        out[:, t] = ancestor
        copied = parents[:, t] >= 0
        ancestor = np.where(copied, ancestor[np.where(copied, parents[:, t], 0)], ancestor)
    return out
