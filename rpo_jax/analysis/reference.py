"""Our final returns beside published reference numbers: does each effect point the same way?

``rpo-jax report RUN_DIR... --reference FILE.csv`` writes ``reference.md``. The reference file
has one row per (env, variant) with the published result and the baseline it was measured
against (e.g. CleanRL's PPO in the same table)::

    env,variant,mean,std,n,baseline_mean,baseline_std,source
    brax/reacher,alpha=0.5,-66.35,0.66,10,-4.67,0.88,CleanRL Reacher-v4 (alpha 0.5 table)

``variant`` is the report's label (``alpha=0.5``); ``env`` names our env the reference stands for.
For each row found in our results, the *effect* is ``variant - baseline``, ours against our
baseline variant (``--baseline``, default alpha=0), the reference's against its own baseline
row. An effect's *direction* is ``+`` / ``−`` when Welch's ``t = effect / sqrt(s1^2/n1 + s0^2/n0)``
(ddof-1 stds) exceeds 2 in size, ``≈`` otherwise; the table says whether the directions agree and
gives each effect relative to the baseline's magnitude. Rows without a match are listed, not dropped
silently.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np
import pandas as pd

from rpo_jax.errors import InputError

COLUMNS = ("env", "variant", "mean", "std", "n", "baseline_mean", "baseline_std", "source")
T_THRESHOLD = 2.0


class ReferenceError(InputError):
    """An unusable reference file; ``str(err)`` is one line."""


def load(path: str | pathlib.Path) -> pd.DataFrame:
    """The reference table, checked: every column of :data:`COLUMNS`, numbers where numbers belong."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ReferenceError(f"cannot read reference file {path}: {' '.join(str(e).split())}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ReferenceError(f"reference file {path} lacks column(s) {', '.join(missing)}")
    for col in ("mean", "std", "n", "baseline_mean", "baseline_std"):
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any():
            raise ReferenceError(f"reference file {path}: column {col} must hold numbers in every row")
        table[col] = values
    return table


def direction(effect: float, std1: float, n1: float, std0: float, n0: float) -> str:
    """``+``, ``−`` or ``≈``: the sign of ``effect`` when ``|t| > 2`` (Welch, ddof-1 stds), else ``≈``."""
    se = math.sqrt(std1**2 / max(n1, 1) + std0**2 / max(n0, 1))
    if se == 0.0:
        return "≈" if effect == 0 else ("+" if effect > 0 else "−")
    t = effect / se
    return "+" if t > T_THRESHOLD else "−" if t < -T_THRESHOLD else "≈"


def _unbiased(std: float, n: float) -> float:
    """A ddof-0 std (as the report writes it) as ddof 1."""
    return std * math.sqrt(n / (n - 1)) if n > 1 else std


def compare(ours: pd.DataFrame, reference: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per reference row: our and the reference's effect, their directions and agreement.

    ``ours`` is the report's ``final_returns.csv`` (env, variant, mean, std (ddof 0), n);
    ``baseline`` our baseline variant's label.
    """
    rows: list[dict[str, Any]] = []
    for ref in reference.itertuples(index=False):
        mine = ours[(ours["env"] == ref.env) & (ours["variant"] == ref.variant)]
        base = ours[(ours["env"] == ref.env) & (ours["variant"] == baseline)]
        row: dict[str, Any] = {"env": ref.env, "variant": ref.variant, "source": ref.source}
        row.update(ref_mean=ref.mean, ref_std=ref.std, ref_n=ref.n, ref_baseline=ref.baseline_mean)
        ref_effect = ref.mean - ref.baseline_mean
        row["ref_effect"] = ref_effect
        row["ref_direction"] = direction(ref_effect, ref.std, ref.n, ref.baseline_std, ref.n)
        row["ref_relative"] = ref_effect / abs(ref.baseline_mean) if ref.baseline_mean else np.nan
        if len(mine) != 1 or len(base) != 1:
            row.update(ours_mean=np.nan, ours_std=np.nan, ours_n=0, ours_effect=np.nan, ours_direction="", agrees="")
            rows.append(row)
            continue
        m, b = mine.iloc[0], base.iloc[0]
        effect = float(m["mean"] - b["mean"])
        s1, s0 = _unbiased(float(m["std"]), float(m["n"])), _unbiased(float(b["std"]), float(b["n"]))
        row.update(ours_mean=float(m["mean"]), ours_std=float(m["std"]), ours_n=int(m["n"]))
        row.update(ours_baseline=float(b["mean"]), ours_effect=effect)
        row["ours_direction"] = direction(effect, s1, float(m["n"]), s0, float(b["n"]))
        row["ours_relative"] = effect / abs(float(b["mean"])) if float(b["mean"]) else np.nan
        row["agrees"] = "yes" if row["ours_direction"] == row["ref_direction"] else "no"
        row["ours_effect_low"] = float(m.get("effect_low", np.nan))
        row["ours_effect_high"] = float(m.get("effect_high", np.nan))
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:+.0f}%"


def markdown(table: pd.DataFrame, baseline: str) -> str:
    """``reference.md``: the comparison table and the count of agreeing directions."""
    lines = [
        "# Against the reference",
        "",
        f"Effect = variant − baseline ({baseline} here; the reference's own baseline there), also relative to the "
        f"baseline's magnitude; ours with its 95 % bootstrap CI over seeds. Direction: + or − when Welch's "
        f"|t| > {T_THRESHOLD:g} over seeds, ≈ otherwise. Ours: mean ± std (ddof 0) over seeds (n).",
        "",
        "| env | variant | ours: baseline | ours: variant | effect (ours) [95% CI] | reference: baseline "
        "| reference: variant | effect (reference) | directions agree | source |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|---|",
    ]
    for r in table.itertuples(index=False):
        if not r.ours_direction:
            ours_base, ours, ours_effect, agrees = "", "not run", "", ""
        else:
            ours_base = f"{r.ours_baseline:.4g}"
            ours = f"{r.ours_mean:.4g} ± {r.ours_std:.2g} ({r.ours_n})"
            ci = getattr(r, "ours_effect_low", np.nan), getattr(r, "ours_effect_high", np.nan)
            ci_text = f" [{ci[0]:+.4g}, {ci[1]:+.4g}]" if np.isfinite(ci).all() else ""
            ours_effect = f"{r.ours_direction} {r.ours_effect:+.4g}{ci_text} ({_pct(r.ours_relative)})"
            agrees = r.agrees
        ref = f"{r.ref_mean:.4g} ± {r.ref_std:.2g} ({r.ref_n:g})"
        ref_effect = f"{r.ref_direction} {r.ref_effect:+.4g} ({_pct(r.ref_relative)})"
        lines.append(
            f"| {r.env} | {r.variant} | {ours_base} | {ours} | {ours_effect} | {r.ref_baseline:.4g} | {ref} "
            f"| {ref_effect} | {agrees} | {r.source} |"
        )
    matched = table[table["agrees"] != ""]
    lines += ["", f"Directions agree on {int((matched['agrees'] == 'yes').sum())} of {len(matched)} matched rows."]
    unmatched = table[table["agrees"] == ""]
    if len(unmatched):
        lines.append(
            f"{len(unmatched)} reference row(s) have no run here: "
            + ", ".join(f"{r.env} {r.variant}" for r in unmatched.itertuples(index=False))
            + "."
        )
    return "\n".join(lines) + "\n"
