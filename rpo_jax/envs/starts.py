"""Fresh episode starts: every episode of every env begins at its own independent reset.

Computing a reset on every step (what a plain auto-reset does) costs about as much as
the step itself on Brax; computing a few per rollout is what makes training fast. The
:class:`StartCache` keeps the speed and stays exact:

* start number ``j`` of a member is, by definition, ``env.reset(fold_in(key, j))``: an
  independent fresh reset per episode, numbered in the order episodes end (envs in index
  order within a step);
* the cache holds the computed starts ``base .. base + size - 1``; each step hands the
  next ones to the envs whose episode just ended (:func:`take`) and never hands out one
  twice;
* before a step that could run past the cache (fewer than ``num_envs`` left),
  :func:`refill` computes the next ``size`` starts in one batched call.

Because a start's value depends only on its number, *when* a refill happens changes
nothing that is learned, only what it costs. Inside a vmapped population the refill
decision is taken for all members at once (``lax.pmax`` over the population axis), so
``lax.cond`` stays a real branch instead of a select that would compute the refill on
every step; a member whose cache was not yet short simply recomputes starts it had.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp

from rpo_jax.core import batching
from rpo_jax.envs import Environment, EnvState, StepResult


@flax.struct.dataclass
class StartCache:
    """The computed fresh starts of one member."""

    states: EnvState  # [size]: start number base + i in slot i
    base: jax.Array  # int32, the number of the start in slot 0
    used: jax.Array  # int32, starts handed out so far (the next one is number ``used``)
    key: jax.Array  # start j is env.reset(fold_in(key, j))


def cache_size(num_envs: int, num_steps: int, episode_length: int) -> int:
    """``num_envs * (ceil(num_steps / episode_length) + 1)``: a rollout's time-limit ends plus one per env.

    Envs that end only by the time limit then refill about once per rollout; envs that
    terminate more often refill more often, each refill a batch of this size.
    """
    return int(num_envs) * (math.ceil(int(num_steps) / int(episode_length)) + 1)


def _compute(env: Environment, key: jax.Array, first: jax.Array, size: int) -> EnvState:
    numbers = first + jnp.arange(size, dtype=jnp.int32)
    return jax.vmap(lambda j: env.reset(jax.random.fold_in(key, j)))(numbers)


def init(env: Environment, key: jax.Array, size: int) -> StartCache:
    """A cache holding starts ``0 .. size - 1`` of the stream ``key``."""
    zero = jnp.zeros((), jnp.int32)
    return StartCache(states=_compute(env, key, zero, size), base=zero, used=zero, key=key)


def refill(env: Environment, cache: StartCache, num_envs: int, axis_name: str | None = None) -> StartCache:
    """``cache``, recomputed from start ``used`` on when fewer than ``num_envs`` starts are left.

    With ``axis_name`` (a vmapped population), every member refills when any member
    must, so the branch is taken once for the whole population.
    """
    size = jax.tree.leaves(cache.states)[0].shape[0]
    short = cache.used + num_envs > cache.base + size
    if axis_name is not None:
        short = jax.lax.pmax(short.astype(jnp.int32), axis_name) > 0

    def recompute(c: StartCache) -> StartCache:
        return c.replace(states=_compute(env, c.key, c.used, size), base=c.used)

    return jax.lax.cond(short, recompute, lambda c: c, cache)


def take(cache: StartCache, done: jax.Array) -> tuple[EnvState, StartCache, jax.Array]:
    """The next starts for the envs with ``done`` (bool ``[num_envs]``), in env order.

    Returns ``(starts, cache, reused)``: ``starts`` is an ``EnvState [num_envs]`` whose
    rows for done envs are fresh starts (other rows are placeholders the caller
    ignores), the cache with those starts handed out, and the number of done envs
    whose start lay outside the cache -- 0 whenever :func:`refill` ran before this
    step; such an env would get the last cached start again, so this counts reuse.
    """
    size = jax.tree.leaves(cache.states)[0].shape[0]
    done = done.astype(jnp.int32)
    slots = cache.used - cache.base + jnp.cumsum(done) - done  # this env's rank among the done ones
    reused = jnp.sum(done * (slots >= size))
    starts = jax.tree.map(lambda x: x[jnp.clip(slots, 0, size - 1)], cache.states)
    return starts, cache.replace(used=cache.used + jnp.sum(done)), reused


def step(
    env: Environment, states: EnvState, cache: StartCache, actions: jax.Array, axis_name: str | None = None
) -> tuple[EnvState, StepResult, StartCache, jax.Array]:
    """Steps ``num_envs`` envs (``vmap`` of :meth:`Environment.transition`); ended episodes continue from fresh starts.

    :func:`refill` (if short), the transition, :func:`take` for the envs whose episode
    ended, then :meth:`Environment.auto_reset`. Returns the env states, their step
    results, the cache and the reused-start count of :func:`take` (0).
    """
    cache = refill(env, cache, actions.shape[0], axis_name)
    after, result = batching.merged_over_members(jax.vmap(env.transition))(states, actions)
    fresh, cache, reused = take(cache, result.terminated | result.truncated)
    states, result = jax.vmap(env.auto_reset)(after, result, fresh)
    return states, result, cache, reused
