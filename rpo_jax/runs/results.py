"""Output-directory I/O for population sweeps: atomic files, metric tables, plots, checkpoints.

Everything a sweep writes goes through this module so that an interrupted run never leaves a
half-written file behind:

* every text/binary file is written to a temporary file in the destination directory, flushed,
  ``fsync``-ed and then moved into place with :func:`os.replace` (atomic on POSIX);
* checkpoints are written by Orbax into a temporary sibling directory and swapped in only once
  they are complete.

The only module-level side effect is selecting matplotlib's non-interactive ``Agg`` backend.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from rpo_jax.errors import (
    InputError,  # noqa: E402
    one_line,  # noqa: E402, F401  (re-exported)
)

__all__ = [
    "OutputDirError",
    "one_line",
    "format_value",
    "check_run_dir",
    "prepare_out_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_yaml",
    "metrics_table",
    "write_table",
    "save_checkpoint",
    "restore_checkpoint",
]

PathLike = str | os.PathLike


class OutputDirError(InputError):
    """A problem with the sweep's output directory; the message is a single line naming it."""


def format_value(v: Any) -> str:
    """A swept value for labels and tables: floats as ``%g``, numpy scalars as their Python value."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)


# --------------------------------------------------------------------------------------------
# Output directory and atomic files
# --------------------------------------------------------------------------------------------


def check_run_dir(run_dir: PathLike, required: Sequence[str], error: type[Exception]) -> pathlib.Path:
    """``run_dir`` as a path, once it is an existing directory holding every name in ``required``.

    A name ending in ``/`` must be a directory, any other a file. Raises ``error`` with a
    one-line message naming the first problem.
    """
    p = pathlib.Path(run_dir)
    if not p.exists():
        raise error(f"run directory {run_dir} does not exist")
    if not p.is_dir():
        raise error(f"run directory {run_dir} is not a directory")
    for name in required:
        present = (p / name).is_dir() if name.endswith("/") else (p / name).is_file()
        if not present:
            raise error(f"no {name} in {run_dir} (not a finished sweep directory?)")
    return p


def prepare_out_dir(path: PathLike, *, overwrite: bool) -> pathlib.Path:
    """Create the output directory ``path`` (and its parents) and return it as a ``Path``.

    Args:
      path: directory that will receive the sweep's results.
      overwrite: if False, an existing non-empty directory is an error. If True, an existing
        directory is accepted as is: nothing is deleted up front; each result file is later
        replaced atomically when it is written, so files from an earlier run remain readable
        until (and unless) they are replaced.

    Raises:
      OutputDirError: ``path`` exists and is not a directory, or exists, is non-empty and
        ``overwrite`` is False, or cannot be created.
    """
    p = pathlib.Path(path)
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"output path {path} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise OutputDirError(
            f"output directory {path} already exists and is not empty; pass --overwrite to replace its results"
        )
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirError(f"cannot create output directory {path}: {e}") from e
    return p


def _fsync_dir(directory: pathlib.Path) -> None:
    """Best-effort fsync of a directory so a rename inside it survives a crash."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_file_mode() -> int:
    """Mode a plain ``open(path, "w")`` would give a new file (0o666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory as ``path``; it is flushed,
    ``fsync``-ed and moved over ``path`` with :func:`os.replace`. Readers therefore see either
    the old content or the complete new content, never a partial file. If anything fails the
    temporary file is removed, ``path`` is left untouched and the exception propagates.
    The new file gets the usual permissions (``0o666`` minus the umask).
    """
    p = pathlib.Path(path)
    data = bytes(data)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8 encoded) to ``path`` atomically; see :func:`atomic_write_bytes`.

    Encoding happens before any file is created, so text that cannot be encoded (e.g. a lone
    surrogate) raises ``UnicodeEncodeError`` with ``path`` untouched.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def _yaml_safe(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays, tuples and paths into YAML-safe builtins."""
    if isinstance(obj, Mapping):
        return {_yaml_safe(k): _yaml_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_yaml_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _yaml_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_yaml(path: PathLike, obj: Mapping[str, Any]) -> None:
    """Atomically write ``obj`` as YAML (``yaml.safe_dump``, keys in insertion order).

    Numpy scalars/arrays become Python numbers/lists, tuples become lists and ``os.PathLike``
    values become strings, so a config holding such values can be dumped safely. Any other
    non-YAML type raises ``yaml.representer.RepresenterError`` and nothing is written.
    """
    text = yaml.safe_dump(_yaml_safe(obj), sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)


# --------------------------------------------------------------------------------------------
# Metric tables
# --------------------------------------------------------------------------------------------


def metrics_table(metrics: Mapping[str, np.ndarray], members: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Turn per-member, per-iteration metric arrays into a tidy table.

    Args:
      metrics: metric name -> array of shape ``[P, I]`` (P population members, I training
        iterations). All arrays must have the same 2-D shape. Jax arrays are accepted.
      members: length-P sequence; ``members[p]`` holds the columns describing member ``p``
        (e.g. ``{"member": 0, "seed": 3, "alpha": 0.5, "ent_coef": 0.0}``). Every member must
        have the same keys.

    Returns:
      A DataFrame with ``P * I`` rows ordered member-major (all iterations of member 0, then
      member 1, ...). Columns: the member columns (in the order of ``members[0]``), then
      ``"iteration"`` (0-based int), then one column per metric (in the order of ``metrics``).
      Row ``p * I + i`` holds member ``p`` at iteration ``i``.

    Raises:
      ValueError: no metrics; an array that is not 2-D; arrays of differing shapes; a first
        dimension different from ``len(members)``; members with differing keys; or a column
        name used twice (a metric named like a member column or ``"iteration"``).
    """
    if not metrics:
        raise ValueError("metrics_table needs at least one metric")
    arrays = {name: np.asarray(a) for name, a in metrics.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    first_name, shape = next(iter(shapes.items()))
    for name, s in shapes.items():
        if len(s) != 2:
            raise ValueError(f"metric {name!r} must have shape [P, I], got {s}")
        if s != shape:
            raise ValueError(f"metric {name!r} has shape {s} but metric {first_name!r} has shape {shape}")
    n_members, n_iters = shape
    if len(members) != n_members:
        raise ValueError(f"got {len(members)} member descriptions but metrics have {n_members} members (shape {shape})")
    member_cols = list(members[0].keys()) if n_members else []
    for p, m in enumerate(members):
        if set(m.keys()) != set(member_cols):
            raise ValueError(f"member {p} has columns {sorted(m.keys())} but member 0 has {sorted(member_cols)}")
    all_cols = member_cols + ["iteration"] + list(arrays)
    dupes = sorted({c for c in all_cols if all_cols.count(c) > 1})
    if dupes:
        raise ValueError(f"column names used more than once: {dupes}")

    columns: dict[str, Any] = {}
    for c in member_cols:
        values = pd.Series([m[c] for m in members])  # lets pandas infer one dtype per column
        columns[c] = np.repeat(values.to_numpy(), n_iters)
    columns["iteration"] = np.tile(np.arange(n_iters, dtype=np.int64), n_members)
    for name, a in arrays.items():
        columns[name] = a.reshape(-1)
    return pd.DataFrame(columns, columns=all_cols)


def write_table(df: pd.DataFrame, path: PathLike) -> None:
    """Atomically write ``df`` as CSV (no index column) to ``path``."""
    atomic_write_text(path, df.to_csv(index=False))


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: PathLike, tree: Any) -> None:
    """Save a pytree of arrays to the checkpoint directory ``path`` with Orbax; block until done.

    ``tree`` may hold jax or numpy arrays inside dicts, lists, tuples, namedtuples (optax
    states) and registered dataclasses (``flax.struct``); typically the final state of all
    population members stacked on axis 0.

    The write is atomic from the caller's point of view: the checkpoint is first written
    completely to a temporary sibling directory. If ``path`` does not exist the temporary
    directory is renamed to ``path``; otherwise the old checkpoint is renamed aside, the new
    one renamed in, and only then is the old one deleted (on failure of the second rename the
    old checkpoint is moved back). ``path`` therefore always holds either the old or the new
    complete checkpoint.
    """
    import orbax.checkpoint as ocp

    p = pathlib.Path(path).absolute()
    p.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = p.parent / f".{p.name}.tmp-{token}"
    old = p.parent / f".{p.name}.old-{token}"
    try:
        # Synchronous: an async checkpointer may still create directories after a failed save
        # has raised, racing the cleanup below.
        with ocp.Checkpointer(ocp.StandardCheckpointHandler(), multiprocessing_options=this_process_only()) as ckptr:
            ckptr.save(tmp, args=ocp.args.StandardSave(tree))
        if p.exists() or p.is_symlink():
            os.rename(p, old)
            try:
                os.rename(tmp, p)
            except BaseException:
                os.rename(old, p)
                raise
            _fsync_dir(p.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, p)
            _fsync_dir(p.parent)
    finally:
        # our temporary dir and any ``<tmp>.orbax-checkpoint-tmp*`` dir Orbax left on failure
        for leftover in p.parent.glob(f"{tmp.name}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def this_process_only():
    """Orbax's multi-process options for a checkpoint that this process alone reads or writes.

    Host-side numpy trees only: in a multi-process run the leader writes the gathered
    population (``rpo_jax.training.multihost``) and orbax must not wait at barriers for the others.
    """
    import jax
    import orbax.checkpoint as ocp

    if jax.process_count() == 1:
        return ocp.options.MultiprocessingOptions()
    index = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=index, active_processes={index})


def _missing_checkpoint_parts(p: pathlib.Path) -> str | None:
    """Names what an orbax (OCDBT) checkpoint directory lacks, or None; checked before orbax reads it.

    Orbax fails on a missing data folder only after its background event loop has
    printed pages of tracebacks, so the layout is checked first.
    """
    if not (p / "_METADATA").is_file():
        return "its _METADATA file is"
    if (p / "manifest.ocdbt").is_file():
        data = p / "d"
        if not data.is_dir() or not any(data.iterdir()):
            return "its data folder d/ is"
    return None


def restore_checkpoint(path: PathLike, target: Any = None) -> Any:
    """Restore a checkpoint written by :func:`save_checkpoint`.

    Args:
      path: the checkpoint directory.
      target: optional pytree with the structure of the saved tree; leaves may be arrays or
        ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``). With a target the result has
        exactly its structure (namedtuples, dataclasses, ...) and its dtypes/shapes. Without
        one, Orbax returns plain nested containers (dicts/lists) of arrays.

    Returns:
      The restored pytree (jax arrays; numpy arrays where the target leaf is a numpy array).

    Raises:
      ValueError: ``f"cannot read checkpoint {path}: <reason>"`` (one line) if ``path`` is
        missing, is not a checkpoint, or does not match ``target``.
    """
    import orbax.checkpoint as ocp

    p = pathlib.Path(path).absolute()
    if not p.is_dir():
        reason = "no such checkpoint directory" if not p.exists() else "not a directory"
        raise ValueError(f"cannot read checkpoint {path}: {reason}")
    missing = _missing_checkpoint_parts(p)
    if missing:
        raise ValueError(f"cannot read checkpoint {path}: {missing} missing (an incomplete or damaged checkpoint)")
    try:
        with ocp.StandardCheckpointer(multiprocessing_options=this_process_only()) as ckptr:
            if target is None:
                return ckptr.restore(p)
            return ckptr.restore(p, target)
    except Exception as e:  # orbax raises a variety of types for corrupt/mismatched data
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        if len(reason) > 300:
            reason = reason[:297] + "..."
        raise ValueError(f"cannot read checkpoint {path}: {reason}") from e
