"""The sweeps a report reads: run directories loaded into tables, final returns, the baseline variant.

Used by :mod:`rpo_jax.analysis.report` (see its docstring for the terms: variant, task, final return,
diverged member).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rpo_jax.errors import InputError
from rpo_jax.runs.plots import format_cell as _fmt
from rpo_jax.runs.plots import variant_label
from rpo_jax.runs.results import check_run_dir
from rpo_jax.runs.results import one_line as _one_line

REQUIRED_COLUMNS = ("member", "seed", "iteration", "episode_return")


class ReportError(InputError):
    """Unusable report input; ``str(err)`` is one line naming the problem."""


@dataclasses.dataclass
class RunData:
    """One sweep output directory, loaded."""

    path: pathlib.Path
    config: dict[str, Any]
    metrics: pd.DataFrame
    variant_cols: list[str]
    env: str


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_run(run_dir) -> RunData:
    """Load ``config.yaml`` and ``metrics.csv`` of a sweep output directory.

    The variant columns are the ``metrics.csv`` columns strictly between ``seed`` and
    ``iteration``. The env name comes from ``config.yaml`` (``train.env``), else from
    ``summary.json``, else the directory name. A missing ``config.yaml`` is tolerated.

    Raises:
      ReportError: missing directory or ``metrics.csv``, unreadable/unparsable files, missing
        required columns (``member, seed, iteration, episode_return``), ``seed`` not before
        ``iteration``, or an empty table.
    """
    p = check_run_dir(run_dir, ("metrics.csv",), ReportError)
    metrics_path = p / "metrics.csv"

    config: dict[str, Any] = {}
    config_path = p / "config.yaml"
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ReportError(f"cannot read {config_path}: {_one_line(e)}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ReportError(f"cannot read {config_path}: expected a mapping at top level")
        config = loaded or {}

    try:
        df = pd.read_csv(metrics_path)
    except (OSError, ValueError) as e:  # pandas parser / empty-data / decode errors are ValueErrors
        raise ReportError(f"cannot read {metrics_path}: {_one_line(e)}") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ReportError(f"{metrics_path} lacks column(s) {', '.join(missing)}")
    cols = list(df.columns)
    if cols.index("seed") > cols.index("iteration"):
        raise ReportError(f"{metrics_path}: column 'seed' must come before 'iteration'")
    if df.empty:
        raise ReportError(f"{metrics_path} has no rows")
    variant_cols = cols[cols.index("seed") + 1 : cols.index("iteration")]
    numeric = ["iteration", "episode_return"] + [c for c in ("env_steps", "entropy", "diverged") if c in cols]
    for c in numeric:
        try:
            df[c] = pd.to_numeric(df[c])
        except (ValueError, TypeError) as e:
            raise ReportError(f"{metrics_path}: column {c!r} is not numeric ({_one_line(e)})") from e

    env = None
    train = config.get("train")
    if isinstance(train, dict) and isinstance(train.get("env"), str):
        env = train["env"]
    if env is None:
        try:
            summary = json.loads((p / "summary.json").read_text(encoding="utf-8"))
            if isinstance(summary, dict) and isinstance(summary.get("env"), str):
                env = summary["env"]
        except (OSError, ValueError):
            pass
    if env is None:
        env = p.resolve().name
    return RunData(path=p, config=config, metrics=df, variant_cols=variant_cols, env=env)


# --------------------------------------------------------------------------------------------
# Final returns and variant labels
# --------------------------------------------------------------------------------------------


def final_returns(df: pd.DataFrame, variant_cols: Sequence[str], fraction: float = 0.05) -> pd.DataFrame:
    """Per-member final return: mean ``episode_return`` over its last ``fraction`` of iterations.

    The window is ``max(1, round(I * fraction))`` iterations of the member's ``I``; NaN returns
    (no episode ended) are skipped and a member with none in the window gets NaN. Matches
    ``rpo_jax.training.population.final_returns`` / ``summary.json``.

    Returns:
      One row per member (sorted by ``member``): ``member, seed, *variant_cols, final_return``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    variant_cols = list(variant_cols)
    d = df.sort_values(["member", "iteration"], kind="stable")
    g = d.groupby("member", sort=True)
    sizes = g["iteration"].transform("size").to_numpy()
    windows = np.maximum(1, np.array([int(round(n * fraction)) for n in sizes]))
    from_end = g.cumcount(ascending=False).to_numpy()
    tail = d[from_end < windows]
    finals = tail.groupby("member", sort=True)["episode_return"].mean()  # skips NaN
    first = g[["seed", *variant_cols]].first()
    out = first.assign(final_return=finals).reset_index()
    return out[["member", "seed", *variant_cols, "final_return"]]


def runaway_episodes(df: pd.DataFrame) -> pd.Series:
    """``member -> episodes`` its envs' runaway guard ended (rpo_jax.envs.core), 0 for a table without the column."""
    if "runaway_episodes" not in df.columns:
        return pd.Series(0, index=sorted(df["member"].unique()), dtype="int64", name="runaway_episodes")
    return df.groupby("member", sort=True)["runaway_episodes"].sum().astype("int64").rename("runaway_episodes")


def diverged_iterations(df: pd.DataFrame) -> pd.Series:
    """``member -> iteration`` at which each diverged member diverged: its first row with ``diverged == 1``.

    Members that never diverged are absent; a table without a ``diverged`` column (a run written before
    the trainer flagged divergence) gives an empty Series.
    """
    if "diverged" not in df.columns:
        return pd.Series(dtype="int64", name="diverged_at")
    rows = df[df["diverged"] == 1]
    return rows.groupby("member", sort=True)["iteration"].min().astype("int64").rename("diverged_at")


def _config_value(config: Mapping[str, Any], col: str) -> Any:
    """The value a run that did not sweep ``col`` used: hparams, then train, then top level."""
    for section in ("hparams", "train"):
        sec = config.get(section)
        if isinstance(sec, dict) and col in sec:
            return sec[col]
    value = config.get(col)
    return value if not isinstance(value, (dict, list)) else None


def _safe_name(env: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("_") or "env"


# --------------------------------------------------------------------------------------------
# Baseline selection
# --------------------------------------------------------------------------------------------


_OFF_LIKE = {"", "0", "0.0", "none", "null", "off", "false", "no", "n/a"}


def _values_equal(a: Any, b: Any) -> bool:
    try:
        fa, fb = float(a), float(b)
        if not (isinstance(a, str) or isinstance(b, str)):
            return bool(np.isclose(fa, fb, rtol=1e-9, atol=1e-12))
    except (TypeError, ValueError):
        pass
    return _fmt(a).lower() == _fmt(b).lower()


def _library_default(col: str) -> Any:
    """Default of ``col`` in rpo_jax.config (HParams / TrainConfig); ``_MISSING`` if unknown."""
    try:  # imported lazily: it pulls in flax/jax, needed only to break a baseline tie
        from rpo_jax import config as cfg
    except Exception:  # pragma: no cover - the package always ships config
        return _MISSING
    for klass in (cfg.HParams, cfg.TrainConfig):
        for f in dataclasses.fields(klass):
            if f.name == col and f.default is not dataclasses.MISSING:
                return f.default
    return _MISSING


_MISSING = object()


# Values that make a member plain PPO, for knobs whose library default is a method's own setting
# (e.g. HParams.lambda_s = 1 is SR^2L's weight when the regulariser is on; 0 switches it off).
_PPO_VALUES: dict[str, Any] = {
    "alpha": 0.0,
    "anneal_alpha": 0.0,
    "ent_coef": 0.0,
    "lambda_s": 0.0,
    "augmentation": "none",
    "smoothness": False,
    "action_dist": "gaussian",
    "algorithm": "ppo",
}


def _is_default(col: str, value: Any) -> bool:
    if col in _PPO_VALUES:
        return _values_equal(value, _PPO_VALUES[col])
    default = _library_default(col)
    if default is not _MISSING:
        return _values_equal(value, default)
    return _fmt(value).lower() in _OFF_LIKE


def _select_baseline(
    variants: pd.DataFrame, variant_cols: list[str], baseline: Mapping[str, Any] | None
) -> tuple[str | None, str]:
    """Pick the baseline variant label; returns ``(label or None, explanation)``.

    Raises ReportError for a user-given ``baseline`` that names an unknown column or matches
    no / several variants.
    """
    user = baseline is not None
    if user:
        unknown = [k for k in baseline if k not in variant_cols]
        if unknown:
            raise ReportError(
                f"baseline column(s) {', '.join(unknown)} not among the variant columns "
                f"({', '.join(variant_cols) or 'none'})"
            )
        spec = dict(baseline)
    else:
        if "alpha" not in variant_cols:
            return None, "no `alpha` variant column, so no PPO baseline (alpha = 0) to compare with"
        spec = {"alpha": 0.0}
        if "ent_coef" in variant_cols:
            spec["ent_coef"] = 0.0
    spec_text = variant_label(spec)
    match = variants[[all(_values_equal(row[k], v) for k, v in spec.items()) for _, row in variants.iterrows()]]
    if len(match) > 1:  # prefer the candidate whose other knobs are all at their defaults
        others = [c for c in variant_cols if c not in spec]
        narrowed = match[[all(_is_default(c, row[c]) for c in others) for _, row in match.iterrows()]]
        if len(narrowed) >= 1:
            match = narrowed
    if len(match) == 1:
        how = "given with --baseline" if user else "default: the PPO variant"
        return str(match["variant"].iloc[0]), f"{spec_text} ({how})"
    if len(match) == 0:
        msg = f"no variant matches baseline {spec_text}"
    else:
        msg = f"baseline {spec_text} is ambiguous: {'; '.join(match['variant'])}"
    if user:
        raise ReportError(msg)
    return None, msg + " -- pass e.g. --baseline alpha=0 to choose one"


def _sorted_variants(variants: pd.DataFrame, variant_cols: list[str]) -> pd.DataFrame:
    if not variant_cols:
        return variants
    try:
        return variants.sort_values(variant_cols, kind="stable", na_position="last")
    except TypeError:  # mixed types in a column: keep order of appearance
        return variants
