"""Experiment tracking while training: TensorBoard event files and (optionally) Weights & Biases.

After every chunk, each member's metrics of that chunk are logged as one run per member, grouped
by variant, under CleanRL's names so CleanRL's runs can be overlaid, with ``global_step`` = the
member's env steps (CleanRL's x axis):

============================  ==========================  ===================================
CleanRL / our tag             rpo_jax metric              note
============================  ==========================  ===================================
``charts/episodic_return``    ``episode_return``          mean of the episodes that ended
``charts/episodic_length``    ``episode_length``
``charts/learning_rate``      ``learning_rate_current``
``losses/value_loss``         ``value_loss``
``losses/policy_loss``        ``policy_loss``
``losses/entropy``            ``entropy``
``losses/approx_kl``          ``approx_kl``
``losses/clipfrac``           ``clipfrac``                NaN (not logged) for TRPO
``charts/alpha``              ``alpha_current``           RPO's alpha of the iteration
``charts/eval_return``        ``eval_return``             with ``train.eval_every``
============================  ==========================  ===================================

NaN values (no episode ended; a diverged member) are not logged. ``metrics.csv`` stays the source
of truth; these are views of it.

* TensorBoard (default with ``--out``): ``RUN_DIR/tensorboard/<variant>/member<k>_seed<s>/``,
  written with tensorboardX (installed with Brax). ``tensorboard --logdir RUN_DIR/tensorboard``.
  A resumed run opens its writers with ``purge_step`` at the checkpoint's step, so the steps it
  redoes replace the ones logged after the checkpoint instead of appearing twice.
* W&B (``--track``; ``pip install -e ".[wandb]"``): one run per member, ``group`` = the variant,
  ``config`` = the resolved config plus the member's row; files under ``RUN_DIR/wandb``. A resumed
  run logs into new W&B runs (the steps since the checkpoint are in both).
  ``WANDB_MODE=offline`` writes offline runs (``wandb sync`` uploads them later).
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import Any, Protocol, Sequence

import numpy as np

from rpo_jax.errors import InputError
from rpo_jax.runs.plots import variant_label

TAGS: dict[str, str] = {
    "episode_return": "charts/episodic_return",
    "episode_length": "charts/episodic_length",
    "learning_rate_current": "charts/learning_rate",
    "alpha_current": "charts/alpha",
    "eval_return": "charts/eval_return",
    "value_loss": "losses/value_loss",
    "policy_loss": "losses/policy_loss",
    "entropy": "losses/entropy",
    "approx_kl": "losses/approx_kl",
    "clipfrac": "losses/clipfrac",
}


class Tracker(Protocol):
    def log(self, member: int, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def member_scalars(metrics: dict[str, np.ndarray], row: int) -> list[tuple[int, dict[str, float]]]:
    """``[(global_step, {tag: value})]`` for member ``row`` of one chunk's metrics ``name -> [P, n]``."""
    steps = np.asarray(metrics["env_steps"])[row]
    out = []
    for j, step in enumerate(steps):
        values = {}
        for name, tag in TAGS.items():
            if name in metrics:
                value = float(np.asarray(metrics[name])[row, j])
                if math.isfinite(value):
                    values[tag] = value
        out.append((int(step), values))
    return out


def run_name(member: dict[str, Any]) -> str:
    return f"member{member['member']}_seed{member['seed']}"


def group_name(member: dict[str, Any], group_cols: Sequence[str]) -> str:
    return variant_label({c: member[c] for c in group_cols})


def _safe(name: str) -> str:
    """A label as a directory name (``alpha=0.5, ent_coef=0`` -> ``alpha=0.5_ent_coef=0``)."""
    return re.sub(r"[^A-Za-z0-9=.+-]+", "_", name).strip("_") or "default"


class TensorBoard:
    """One tensorboardX ``SummaryWriter`` per member, opened on first use."""

    def __init__(self, root: pathlib.Path, members: Sequence[dict], group_cols: Sequence[str], purge_step: int = 0):
        self.root, self.purge_step = pathlib.Path(root), purge_step
        self.dirs = {m["member"]: self.root / _safe(group_name(m, group_cols)) / run_name(m) for m in members}
        self.writers: dict[int, Any] = {}

    def log(self, member: int, step: int, values: dict[str, float]) -> None:
        if member not in self.writers:
            from tensorboardX import SummaryWriter

            purge = self.purge_step if self.purge_step > 0 else None
            self.writers[member] = SummaryWriter(str(self.dirs[member]), purge_step=purge, flush_secs=3600)
        writer = self.writers[member]
        for tag, value in values.items():
            writer.add_scalar(tag, value, global_step=step)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class WandB:
    """One W&B run per member (``group`` = variant), created on first use."""

    def __init__(
        self, root: pathlib.Path, members: Sequence[dict], group_cols: Sequence[str], config: dict, project: str
    ):
        self.wandb = import_wandb()
        self.root, self.config, self.project = pathlib.Path(root), config, project
        self.members = {m["member"]: m for m in members}
        self.group_cols = list(group_cols)
        self.runs: dict[int, Any] = {}

    def log(self, member: int, step: int, values: dict[str, float]) -> None:
        if member not in self.runs:
            row = self.members[member]
            self.root.mkdir(parents=True, exist_ok=True)
            self.runs[member] = self.wandb.init(
                project=self.project,
                group=group_name(row, self.group_cols),
                name=run_name(row),
                config={**self.config, "member": dict(row)},
                dir=str(self.root),
                reinit="create_new",  # one process holds every member's run
                settings=self.wandb.Settings(console="off", silent=True),
            )
        self.runs[member].log({**values, "global_step": step}, step=step)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for run in self.runs.values():
            run.finish()


def import_wandb():
    """``wandb``, or an InputError (one line) naming the extra to install."""
    try:
        import wandb
    except ImportError:
        raise InputError('--track needs Weights & Biases: pip install -e ".[wandb]"') from None
    return wandb


class Trackers:
    """The trackers of one run: ``log_chunk`` after every chunk, ``close`` at the end."""

    def __init__(self, trackers: Sequence[Any]):
        self.trackers = list(trackers)

    def log_chunk(self, members: Sequence[dict], metrics: dict[str, np.ndarray]) -> None:
        for row, member in enumerate(members):
            for step, values in member_scalars(metrics, row):
                for tracker in self.trackers:
                    tracker.log(member["member"], step, values)
        for tracker in self.trackers:
            tracker.flush()

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
