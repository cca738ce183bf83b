"""Whole episodes of a fixed policy, in one ``lax.scan``: the evaluation used everywhere.

:func:`run_episodes` starts ``episodes`` fresh environments and steps them for the env's
``episode_length`` steps; each slot's return and length are those of its FIRST episode (the
rewards up to and including its first ``terminated`` or ``truncated``). Used by evaluation during
training (``train.eval_every``), ``rpo-jax evaluate`` and ``rpo-jax render``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp

from rpo_jax.envs import Environment

# act(raw_obs [N, obs], key) -> env action [N, act]: normalisation and clipping are the caller's.
ActFn = Callable[[jax.Array, jax.Array], jax.Array]


@flax.struct.dataclass
class Episodes:
    """Per slot: ``returns`` float32 ``[N]`` (undiscounted) and ``lengths`` int32 ``[N]``.

    ``recorded``: with ``run_episodes(..., record=f)``, ``f`` of the initial and of every later env
    state, stacked ``[episode_length + 1, N, ...]``; else None.
    """

    returns: jax.Array
    lengths: jax.Array
    recorded: Any = None


def run_episodes(
    env: Environment, act: ActFn, key: jax.Array, episodes: int, record: Callable[[Any], Any] | None = None
) -> Episodes:
    """``episodes`` first episodes of ``act`` on fresh starts of ``env``; pure and jittable.

    Every slot runs ``env.episode_length`` steps (the time limit ends every episode by then);
    steps after a slot's episode ended are computed and masked. No auto-reset is computed
    (:meth:`Environment.transition`), and the per-step action keys are ``fold_in(key, t)``.
    """
    reset_key, act_key = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))

    def step(carry, t):
        state, alive, returns, lengths = carry
        action = act(state.obs, jax.random.fold_in(act_key, t))
        state, result = jax.vmap(env.transition)(state, action)
        returns = returns + jnp.where(alive, result.reward, 0.0)
        lengths = lengths + alive.astype(jnp.int32)
        alive = alive & ~(result.terminated | result.truncated)
        return (state, alive, returns, lengths), None if record is None else record(state)

    init = (state, jnp.ones((episodes,), bool), jnp.zeros((episodes,), jnp.float32), jnp.zeros((episodes,), jnp.int32))
    (_, _, returns, lengths), steps = jax.lax.scan(step, init, jnp.arange(env.episode_length))
    recorded = None
    if record is not None:
        recorded = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), record(state), steps)
    return Episodes(returns=returns, lengths=lengths, recorded=recorded)
