"""A fixed-capacity FIFO replay buffer that lives in the jitted state (one per population member).

The buffer is a pytree of arrays with a leading capacity axis plus an insert position and a fill
count: :func:`add` writes a batch at the insert position, wrapping around and overwriting the
OLDEST transitions once full (first in, first out); :func:`sample` draws indices uniformly, with
replacement, from the filled part. Everything is jnp, so it vmaps over members and scans.

Why not flashbax: its item buffer does the same with more machinery (and its own jax pin); the
ring buffer here is a few lines whose FIFO and uniform-sampling behaviour the tests check
directly (tests/test_ddpg.py), and it costs one scatter per insert and one gather per sample.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class ReplayBuffer:
    """``data``: a pytree of ``[capacity, ...]`` arrays; ``position``: next slot; ``size``: slots filled."""

    data: Any
    position: jax.Array  # int32 in [0, capacity)
    size: jax.Array  # int32 in [0, capacity]

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(capacity: int, example: Any) -> ReplayBuffer:
    """An empty buffer for transitions shaped like ``example`` (one transition, no leading axis)."""
    if capacity < 1:
        raise ValueError(f"capacity must be positive, got {capacity}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data=data, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, batch: Any) -> ReplayBuffer:
    """Appends ``batch`` (leading axis ``n <= capacity``) in order, overwriting the oldest when full."""
    capacity = buffer.capacity
    n = jax.tree.leaves(batch)[0].shape[0]
    if n > capacity:
        raise ValueError(f"cannot add {n} transitions to a buffer of capacity {capacity}")
    slots = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % capacity
    data = jax.tree.map(lambda store, x: store.at[slots].set(x.astype(store.dtype)), buffer.data, batch)
    return ReplayBuffer(
        data=data,
        position=(buffer.position + n) % capacity,
        size=jnp.minimum(buffer.size + n, capacity).astype(jnp.int32),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, n: int) -> Any:
    """``n`` transitions drawn uniformly with replacement from the filled slots (the buffer must not be empty)."""
    index = jax.random.randint(key, (n,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[index], buffer.data)
