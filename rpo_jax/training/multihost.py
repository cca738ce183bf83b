"""Multi-process runs: one sweep as N processes of JAX's distributed runtime, process 0 writes.

``rpo-jax sweep CONFIG --distributed`` (the same command on every host) calls
:func:`initialize`; the population axis of the compiled program then spans the
devices of all processes, each process computes its own members, and results
are gathered to every process after each chunk (``population.fetch``). Only
process 0 (the *leader*) touches the run directory. Everything else that must be
the same on every process is decided by the leader and shared:

* whether the run may start (the leader claims ``--out``), the config of a resumed
  run and its checkpoint (:func:`share`, :func:`share_text`);
* after each chunk, whether to checkpoint and whether to stop (:func:`agree`): a
  stop signal on any process stops all, after the same chunk.

A process that dies is noticed by the others at the next collective (after the
current chunk at the latest): gloo's "connection reset" becomes :class:`PeerLost`,
which the CLI prints as one line before exiting at once with :data:`EXIT_PEER_LOST`
(without JAX's shutdown barrier, which would wait for the dead process and then
abort with a page of C++ log). If JAX's heartbeat notices first (a chunk longer
than ``--peer-timeout``), JAX itself ends the process, with its own log.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from rpo_jax import errors

EXIT_PEER_LOST = 3
ENV_ADDRESS, ENV_PROCESSES, ENV_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


class PeerLost(RuntimeError):
    """Another process of a multi-process run stopped answering; ``str`` is one line."""


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return None
    if not text.strip().isdigit():
        raise errors.InputError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def initialize(timeout: int) -> None:
    """``jax.distributed.initialize`` from the environment; bad settings are one-line input errors.

    ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` set by hand, or nothing: JAX then detects SLURM, Open MPI and
    Kubernetes (JobSet) itself. ``timeout`` bounds both the wait for every process to
    join and JAX's heartbeat (how long a silent process may stay unnoticed).
    """
    import jax

    if timeout < 1:
        raise errors.InputError(f"--peer-timeout must be at least 1 second, got {timeout}")
    address = os.environ.get(ENV_ADDRESS)
    count, index = _env_int(ENV_PROCESSES), _env_int(ENV_ID)
    if (count is None) != (index is None):
        raise errors.InputError(f"set both {ENV_PROCESSES} and {ENV_ID}, or neither (cluster auto-detection)")
    if count is not None:
        if address is None or ":" not in address:
            raise errors.InputError(f"{ENV_ADDRESS} must be host:port of process 0, got {address!r}")
        if not 0 <= index < count:
            raise errors.InputError(f"{ENV_ID} must be in [0, {ENV_PROCESSES}={count}), got {index}")
    try:
        jax.distributed.initialize(
            address,
            count,
            index,
            initialization_timeout=timeout,
            heartbeat_timeout_seconds=timeout,
            shutdown_timeout_seconds=timeout,
        )
    except (ValueError, RuntimeError) as err:  # no cluster detected, or peers that never joined
        raise errors.InputError(f"--distributed: {errors.one_line(err)}") from None


def initialized() -> bool:
    """Whether this process is one of a multi-process run (``jax.distributed`` started), without starting JAX."""
    if "jax" not in sys.modules:
        return False
    import jax

    return jax.distributed.is_initialized()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_leader() -> bool:
    """Whether this process writes the run directory (process 0; always, for one process)."""
    import jax

    return jax.process_index() == 0


def _broadcast(x: np.ndarray) -> np.ndarray:
    """The leader's ``x`` on every process, bit for bit.

    JAX's ``broadcast_one_to_all`` sums the leader's value with the others' zeros, which turns
    -0.0 into +0.0, and computes in JAX's dtypes, which narrows float64 / int64 to 32 bits. So the
    raw bytes travel instead (uint8: the sum of one value and zeros is exact) and are viewed back
    as ``x``'s dtype and shape.
    """
    from jax.experimental import multihost_utils

    x = np.asarray(x)
    if x.size == 0:
        return x.copy()
    data = np.ascontiguousarray(x.reshape(-1)).view(np.uint8)
    with collective():
        data = np.asarray(multihost_utils.broadcast_one_to_all(data), np.uint8)
    return data.view(x.dtype).reshape(x.shape)


def share(tree: Any) -> Any:
    """The leader's host pytree on every process (the others pass arrays of the same shapes)."""
    if process_count() == 1:
        return tree
    import jax

    return jax.tree.map(lambda x: _broadcast(np.asarray(x)), tree)


def share_text(text: str | None) -> str | None:
    """The leader's string (or None) on every process; the others may pass anything."""
    if process_count() == 1:
        return text
    data = np.frombuffer((text or "").encode(), np.uint8)
    size, missing = (int(v) for v in _broadcast(np.asarray([data.size, text is None], np.int32)))
    if missing or size == 0:
        return None if missing else ""
    return bytes(_broadcast(data if is_leader() else np.zeros(size, np.uint8))).decode()


def agree(flags: dict[str, bool]) -> dict[str, np.ndarray]:
    """Every process's ``flags``, gathered: name -> bool array ``[process_count]``, the same on all."""
    names = sorted(flags)
    local = np.asarray([bool(flags[n]) for n in names], np.int32)
    if process_count() == 1:
        return {n: local[i : i + 1].astype(bool) for i, n in enumerate(names)}
    from jax.experimental import multihost_utils

    with collective():
        gathered = np.asarray(multihost_utils.process_allgather(local)).reshape(-1, len(names))
    return {n: gathered[:, i].astype(bool) for i, n in enumerate(names)}


class collective:
    """Turns a failed cross-process collective into :class:`PeerLost` (one line)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if err is not None and process_count() > 1 and _is_transport_error(err):
            import jax

            raise PeerLost(
                f"process {jax.process_index()} of {jax.process_count()} lost contact with another process "
                f"({errors.one_line(err)[:160]}); the run stopped"
            ) from None
        return False


def _is_transport_error(err: BaseException) -> bool:
    """Gloo's failures surface as JaxRuntimeError or ValueError depending on where the gather failed."""
    text = str(err)
    return isinstance(err, (RuntimeError, ValueError)) and any(
        s in text for s in ("Gloo", "gloo", "Connection reset", "Connection closed", "heartbeat")
    )


def exit_now(code: int) -> None:
    """Ends the process at once, skipping JAX's shutdown barrier (which a dead peer would fail, loudly)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
