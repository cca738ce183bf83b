"""Figures shared by results, report and robustness: one label, one palette, one mean ± std band.

* :func:`variant_label` -- ``{"alpha": 0.5, "ent_coef": 0.01}`` -> ``"alpha=0.5, ent_coef=0.01"``;
* :func:`member_band` -- the reduction every curve uses: each member's ``y`` series over ``x``
  (forward-filled over the union of x values when asked, since iterations in which a member finished
  no episode hold NaN), then the mean and the ddof=0 std over the members that have a value;
* :func:`band` -- draws one such curve with its ±1 std band; :func:`palette` -- distinct colours;
* :func:`curves` -- a whole figure of bands, one per variant;
* :func:`save_figure` -- a 120-dpi PNG written atomically.

matplotlib is imported on use, so importing this module stays cheap.
"""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from rpo_jax.runs.results import PathLike, atomic_write_bytes, format_value


def format_cell(v: Any) -> str:
    """A value in a label or table cell: ``n/a`` for None / NaN, booleans as such, else :func:`format_value`."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return format_value(v)


def variant_label(values: Mapping[str, Any]) -> str:
    """``{"alpha": 0.5, "ent_coef": 0.01}`` -> ``"alpha=0.5, ent_coef=0.01"`` (``default`` if empty)."""
    return ", ".join(f"{c}={format_cell(v)}" for c, v in values.items()) or "default"


def palette(n: int):
    """A colormap with ``n`` distinct colours for up to 20 curves (``cmap(i % cmap.N)``)."""
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"]


def member_band(
    df: pd.DataFrame, x: str, y: str, member_col: str = "member", *, ffill: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(xs, mean, std, n)``: the mean and ddof=0 std of ``y`` over the members of ``df`` at each ``x``."""
    wide = df.groupby([x, member_col])[y].mean().unstack(member_col).sort_index()
    if ffill:
        wide = wide.ffill()
    mean = wide.mean(axis=1, skipna=True).to_numpy(dtype=float)
    std = wide.std(axis=1, skipna=True, ddof=0).to_numpy(dtype=float)
    return wide.index.to_numpy(dtype=float), mean, std, wide.shape[1]


def band(ax, xs, mean, std, *, color, label: str, style: str = "-", alpha: float = 0.15) -> None:
    """One mean curve with its ±1 std band."""
    ax.plot(xs, mean, style, color=color, linewidth=1.5, markersize=3, label=label)
    ax.fill_between(xs, mean - std, mean + std, color=color, alpha=alpha, linewidth=0)


def curves(
    df: pd.DataFrame,
    path: PathLike,
    *,
    group_by: Sequence[str],
    x: str,
    y: str,
    title: str | None = None,
    member_col: str = "member",
    over: str = "seeds",
    also: str | None = None,
) -> None:
    """Mean ± std of ``y`` vs ``x`` per combination of ``group_by`` (one curve for all if empty), as a PNG.

    ``also``: a second, sparse column (e.g. ``eval_return``) drawn dashed with markers in the same
    colour where it is not NaN. Distinct colours for up to 20 variants; the legend moves outside the
    axes when there are many.
    """
    from matplotlib.figure import Figure

    group_by = list(group_by)
    missing = [c for c in [member_col, x, y, *group_by] if c not in df.columns]
    if missing:
        raise ValueError(f"cannot plot learning curves: columns {missing} not in table")
    groups = list(df.groupby(group_by, sort=True, dropna=False)) if group_by else [((), df)]
    many = len(groups) > 6
    fig = Figure(figsize=(9.5 if many else 7.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    cmap = palette(len(groups))
    for i, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        xs, mean, std, n = member_band(g, x, y, member_col)
        label = variant_label(dict(zip(group_by, key))) if group_by else "all members"
        band(ax, xs, mean, std, color=cmap(i % cmap.N), label=f"{label} (n={n})")
        sparse = g[g[also].notna()] if also else g.iloc[:0]
        if len(sparse):
            xs, mean, std, _ = member_band(sparse, x, also, member_col, ffill=False)
            band(ax, xs, mean, std, color=cmap(i % cmap.N), label=f"{label}, {also}", style="o--", alpha=0.08)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y}{' and ' + also if also else ''} (mean ± std over {over})")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if many:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    save_figure(fig, path)


def save_figure(fig, path: PathLike) -> None:
    """Writes ``fig`` as a 120-dpi PNG to ``path`` atomically, then clears the figure."""
    png = io.BytesIO()
    try:
        fig.savefig(png, format="png", dpi=120)
    finally:
        fig.clear()  # Figure is not registered with pyplot; dropping it releases it
    atomic_write_bytes(path, png.getvalue())
