"""The run-directory protocol: one writer at a time, a status file, staged overwrites.

A run directory (``--out``) holds, besides its results::

    .lock          an exclusive ``flock`` held by the one process writing the directory
    status.json    {"state": running | complete | failed | interrupted, "reason", "pid",
                    "iteration", "num_iterations", "command", "started", "updated"}

The kernel drops a ``flock`` when its process dies, so a lock can never be left
stale; a directory whose status still says ``running`` while nobody holds its lock
was left by a process that died (``kill -9``, power loss) and is reported as such,
naming that process, and is resumable like an interrupted one.

``--overwrite`` never touches the old results before the new run has finished: the
new run is staged in a sibling ``.<name>.overwrite/`` directory (locked as well)
and swapped in by two renames only when it is complete; the old directory, with its
derived ``report/`` and ``robustness/`` folders, is then deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import pathlib
import shutil
import uuid
from typing import Any

from rpo_jax.errors import InputError
from rpo_jax.runs.results import atomic_write_text

STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
STATES = ("running", "complete", "failed", "interrupted")


class RunDirError(InputError):
    """A run directory cannot be used as asked; ``str(err)`` is one line naming the problem."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``status.json`` of ``run_dir``, or None when there is none (or it is unreadable).

    A status that says ``running`` while no process holds the directory's lock is
    returned with ``state`` ``"interrupted"`` and a reason naming the dead process.
    """
    path = pathlib.Path(run_dir) / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("state") not in STATES:
        return None
    if status["state"] == "running" and not is_locked(run_dir):
        status = {
            **status,
            "state": "interrupted",
            "reason": f"its writer, pid {status.get('pid')}, died without a word",
        }
    return status


def describe_incomplete(run_dir: str | os.PathLike) -> str | None:
    """None when ``run_dir`` holds a complete run, else one line saying why it is not."""
    status = read_status(run_dir)
    if status is None:
        return f"{run_dir} has no readable {STATUS_FILE}: not a run directory of rpo-jax, or one that never started"
    if status["state"] == "complete":
        return None
    where = f"iteration {status.get('iteration')}/{status.get('num_iterations')}"
    reason = f" ({status['reason']})" if status.get("reason") else ""
    return f"{run_dir} holds an unfinished run: {status['state']} at {where}{reason}"


def check_complete(run_dir: str | os.PathLike, *, allow_incomplete: bool, error: type[Exception]) -> dict | None:
    """Raises ``error`` (one line) unless ``run_dir`` is complete or ``allow_incomplete``; returns its status."""
    problem = describe_incomplete(run_dir)
    if problem is not None and not allow_incomplete:
        raise error(f"{problem}; pass --allow-incomplete to use it anyway")
    return read_status(run_dir)


def is_locked(run_dir: str | os.PathLike) -> bool:
    """Whether some process holds the exclusive lock of ``run_dir``."""
    path = pathlib.Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return False


class RunLock:
    """The exclusive ``flock`` on ``run_dir/.lock``; released by :meth:`release` or by process death."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = pathlib.Path(run_dir)
        path = self.run_dir / LOCK_FILE
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirError(f"cannot write to {run_dir}: {e.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirError(f"cannot lock {path}: {e.strerror}") from None
            holder = _read_pid(path)
            raise RunDirError(
                f"{run_dir} is being written by another rpo-jax process"
                + (f" (pid {holder})" if holder else "")
                + "; wait for it or choose another --out"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(path: pathlib.Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def write_status(run_dir: str | os.PathLike, state: str, **fields: Any) -> dict[str, Any]:
    """Atomically rewrites ``status.json``, keeping earlier fields not given again."""
    assert state in STATES, state
    path = pathlib.Path(run_dir) / STATUS_FILE
    old: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(path.read_text(encoding="utf-8"))
    status = {**old, **fields, "state": state, "pid": os.getpid(), "updated": _now()}
    status.setdefault("started", status["updated"])
    if state in ("running", "complete"):
        status["reason"] = fields.get("reason")
    atomic_write_text(path, json.dumps(status, indent=2) + "\n")
    return status


def staging_dir(out_dir: str | os.PathLike) -> pathlib.Path:
    """Where an ``--overwrite`` run of ``out_dir`` is built before it replaces ``out_dir``."""
    p = pathlib.Path(out_dir).absolute()
    return p.parent / f".{p.name}.overwrite"


def swap_in(staged: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Replaces ``out_dir`` by the complete ``staged`` run: two renames, then the old one is deleted.

    Between the renames ``out_dir`` is briefly absent; the old results sit in a
    ``.<name>.old-<token>`` sibling until the second rename has succeeded (and
    are moved back if it fails).
    """
    staged, out = pathlib.Path(staged), pathlib.Path(out_dir).absolute()
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(staged, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@dataclasses.dataclass
class Claim:
    """A run directory this process may write: ``write_dir`` (``out`` itself, or its staging sibling)."""

    out: pathlib.Path  # where the results end up
    write_dir: pathlib.Path  # where this run writes until it completes
    locks: list[RunLock]
    previous: dict[str, Any] | None = None  # the status found when resuming

    @property
    def staged(self) -> bool:
        return self.write_dir != self.out

    def release(self) -> None:
        for lock in self.locks:
            lock.release()

    def complete(self) -> None:
        """Swaps a staged run in over ``out`` (see :func:`swap_in`) and releases the locks."""
        if self.staged:
            swap_in(self.write_dir, self.out)
        self.release()


def _nonempty(p: pathlib.Path) -> bool:
    return p.is_dir() and any(p.iterdir())


def claim_new(out: str | os.PathLike, *, overwrite: bool) -> Claim:
    """Locks a directory for a new run into ``out``; raises :class:`RunDirError` with one line.

    A new or empty ``out`` is written directly. A non-empty one needs ``overwrite``,
    and then the run is staged (module docstring) while ``out`` stays locked and
    untouched.
    """
    p = pathlib.Path(out).absolute()
    if p.exists() and not p.is_dir():
        raise RunDirError(f"output path {out} exists and is not a directory")
    if not _nonempty(p):
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"cannot create output directory {out}: {e.strerror}") from None
        return Claim(out=p, write_dir=p, locks=[RunLock(p)])
    if not overwrite:
        status = read_status(p)
        if status is not None and status["state"] != "complete":
            reason = f": {status['reason']}" if status.get("reason") else ""
            raise RunDirError(
                f"output directory {out} holds an unfinished run ({status['state']} at iteration "
                f"{status.get('iteration')}/{status.get('num_iterations')}{reason}); resume it with: "
                f"rpo-jax resume {out}, or pass --overwrite to replace it"
            )
        raise RunDirError(
            f"output directory {out} already exists and is not empty; pass --overwrite to replace its results"
        )
    locks = [RunLock(p)]
    try:
        staged = staging_dir(p)
        if staged.exists():
            RunLock(staged).release()  # refuses if another process is still staging there
            shutil.rmtree(staged)
        staged.mkdir()
        locks.append(RunLock(staged))
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return Claim(out=p, write_dir=staged, locks=locks)


def claim_resume(run_dir: str | os.PathLike) -> Claim:
    """Locks an unfinished run for ``rpo-jax resume``: a staged ``--overwrite`` run of it, else itself."""
    p = pathlib.Path(run_dir).absolute()
    if not p.is_dir():
        raise RunDirError(
            f"run directory {run_dir} does not exist"
            if not p.exists()
            else f"run directory {run_dir} is not a directory"
        )
    staged = staging_dir(p)
    target = staged if read_status(staged) is not None else p
    if read_status(target) is None:
        raise RunDirError(f"{run_dir} has no readable {STATUS_FILE}: not a run directory of rpo-jax")
    status = read_status(target)  # before locking: "running" without a lock holder is a dead process's
    locks = [RunLock(p)]
    try:
        if target != p:
            locks.append(RunLock(target))
        if status["state"] == "complete" and target == p:
            raise RunDirError(f"{run_dir} holds a complete run; nothing to resume")
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return Claim(out=p, write_dir=target, locks=locks, previous=status)
