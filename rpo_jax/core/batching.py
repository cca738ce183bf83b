"""A population's env steps as one batch: members x envs, not a batch of batches.

A population is ``vmap(trainer.run)`` over members, so each member's ``vmap(env.transition)`` over
its envs becomes a doubly batched computation. The work is the same as stepping all members' envs
as one flat batch, but XLA:CPU's code for Brax's doubly batched gathers and scatters is slower:
16 members x 16 envs of brax/inverted_pendulum step at 0.91x the speed of 256 envs
(``python -m bench.population_env``, ``bench/RESULTS.md``). :func:`merged_over_members` gives the
env step a batching rule (``jax.custom_batching.custom_vmap``) that, under the member vmap, merges
the member axis into the env axis, calls the step once, and splits the result again.

What is learned does not change: every env is stepped from the same state with the same action;
the values equal the doubly batched step's up to float rounding (XLA compiles the other batch
shape differently; ``tests/test_batching.py``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.custom_batching
import jax.numpy as jnp


def merged_over_members(fn: Callable) -> Callable:
    """``fn`` (a function of arrays with a leading env axis, returning the same) whose vmap over
    members is one call of ``fn`` on ``[members * envs, ...]``; unbatched inputs are broadcast."""
    merged = jax.custom_batching.custom_vmap(fn)

    @merged.def_vmap
    def rule(axis_size, in_batched, *args):
        def flatten(x, batched):
            x = x if batched else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))
            return x.reshape((axis_size * x.shape[1],) + x.shape[2:])

        out = fn(*jax.tree.map(flatten, args, tuple(in_batched)))
        # y.shape[0] // axis_size, not -1: MJX and DMC states hold zero-size leaves ([n, 0]), which
        # a -1 cannot infer from
        out = jax.tree.map(lambda y: y.reshape((axis_size, y.shape[0] // axis_size) + y.shape[1:]), out)
        return out, jax.tree.map(lambda _: True, out)

    return merged
