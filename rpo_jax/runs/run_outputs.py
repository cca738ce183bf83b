"""What a training command shows and writes: progress lines, the summary, the run directory's files."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from rpo_jax.config import ExperimentConfig
from rpo_jax.runs import results
from rpo_jax.runs.results import format_value as _fmt


def progress_printer(group_names: list[str]):
    def report(info: dict[str, Any]) -> None:
        returns = info["metrics"]["episode_return"]
        flags = info["metrics"].get("diverged")
        gone = set() if flags is None else {i for i in range(len(returns)) if flags[i, -1] > 0}
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(info["members"]):
            if i not in gone:
                groups.setdefault(tuple(m[n] for n in group_names), []).append(i)
        parts = []
        for values, idx in groups.items():
            rows = returns[idx]
            last = np.array([r[~np.isnan(r)][-1] if np.any(~np.isnan(r)) else np.nan for r in rows])
            label = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(group_names, values)) or "return"
            if np.all(np.isnan(last)):
                parts.append(f"{label}: n/a")
            else:
                parts.append(f"{label}: {np.nanmean(last):.1f} ± {np.nanstd(last):.1f}")
        if gone:
            parts.append("diverged: member " + ", ".join(str(info["members"][i]["member"]) for i in sorted(gone)))
        runaway = info["metrics"].get("runaway_episodes")
        if runaway is not None and np.nansum(runaway) > 0:
            parts.append(f"runaway episodes: {int(np.nansum(runaway))}")
        evaluated = info["metrics"].get("eval_return")
        if evaluated is not None and np.any(np.isfinite(evaluated[:, -1])):
            parts.append(f"eval: {np.nanmean(evaluated[:, -1]):.1f} ± {np.nanstd(evaluated[:, -1]):.1f}")
        sps = info["run_iterations"] * info["env_steps"] / info["iteration"] * len(returns) / max(info["elapsed"], 1e-9)
        print(
            f"[running {info['iteration']}/{info['num_iterations']} it | {info['env_steps']:,} steps/member | "
            f"{info['elapsed']:.0f}s, ETA {eta(info):.0f}s | {sps:,.0f} steps/s] " + " | ".join(parts),
            flush=True,
        )

    return report


def progress_with_tracking(printer, trackers):
    """The progress function of a run directory: log the chunk to the trackers, then print it."""

    def report(info: dict[str, Any]) -> None:
        trackers.log_chunk(info["members"], info["metrics"])
        if printer is not None:
            printer(info)

    return report


def eta(info: dict[str, Any]) -> float:
    """Seconds left at the run's pace so far: run time only (compile time is reported apart)."""
    left = info["num_iterations"] - info["iteration"]
    return info["elapsed"] / max(info["run_iterations"], 1) * left


def summarize(config: ExperimentConfig, result, size: int, group_names: list[str]) -> dict[str, Any]:
    """``summary.json``'s content: timings, throughput, final return per configuration, diverged members."""
    from rpo_jax.training import population

    finals = population.final_returns(result.metrics)
    diverged = population.diverged_members(result)
    total_steps = config.train.num_iterations * config.train.batch_size * size
    return {
        "status": "complete",
        "env": config.train.env,
        "members": size,
        "devices": result.num_devices,
        "compile_seconds": round(result.compile_seconds, 2),
        "run_seconds": round(result.run_seconds, 2),
        "env_steps_total": total_steps,
        "env_steps_per_second": round(total_steps / max(result.run_seconds, 1e-9), 1),
        "final_return": group_summary(result.members, group_names, finals, diverged),
        "diverged": [{**m, "diverged_at": diverged[m["member"]]} for m in result.members if m["member"] in diverged],
        "runaway_episodes": runaway_members(result.members, result.metrics),
        **({"pbt": pbt_summary(config, result, finals, diverged)} if config.sweep.pbt.enabled else {}),
    }


def runaway_members(members: list[dict], metrics: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each member whose env's runaway guard ended episodes (rpo_jax.envs.core), with how many."""
    counts = np.nansum(np.asarray(metrics.get("runaway_episodes", np.zeros((len(members), 0)))), axis=-1)
    return [{**m, "runaway_episodes": int(n)} for m, n in zip(members, counts) if n > 0]


def pbt_summary(config: ExperimentConfig, result, finals, diverged: dict[int, int]) -> list[dict[str, Any]]:
    """Per seed (one PBT population each): its best member by final return and the values it ended with."""
    names = [n for n, _ in config.sweep.pbt.explore]
    rows = []
    for seed in config.sweep.seeds:
        candidates = [
            (float(f), i)
            for i, (m, f) in enumerate(zip(result.members, finals))
            if m["seed"] == seed and m["member"] not in diverged and np.isfinite(f)
        ]
        if not candidates:
            rows.append({"seed": seed, "member": None, "final_return": float("nan")})
            continue
        best, i = max(candidates)
        ended = {n: float(np.asarray(getattr(result.state.pbt.hparams, n))[i]) for n in names}
        rows.append({"seed": seed, "member": result.members[i]["member"], "final_return": best, **ended})
    return rows


def print_summary(summary: dict[str, Any], group_names: list[str]) -> None:
    """The lines a finished run prints: timings, each configuration's final return, the diverged members."""
    print(
        f"compile {summary['compile_seconds']:.1f}s, run {summary['run_seconds']:.1f}s "
        f"({summary['env_steps_per_second']:,.0f} env steps/s)"
    )
    started = "members that started at " if "pbt" in summary else ""
    for row in summary["final_return"]:
        label = started + (", ".join(f"{n}={_fmt(row[n])}" for n in group_names) or "all members")
        gone = f"; {row['diverged']} diverged, left out" if row["diverged"] else ""
        print(f"final return {label}: {row['mean']:.1f} ± {row['std']:.1f} over {row['n']} seeds{gone}")
    for row in summary.get("pbt", []):
        ended = ", ".join(f"{n}={_fmt(v)}" for n, v in row.items() if n not in ("seed", "member", "final_return"))
        if row["member"] is None:
            print(f"PBT seed {row['seed']}: no member with a final return")
        else:
            print(
                f"PBT seed {row['seed']}: best member {row['member']} (ended with {ended}): "
                f"final return {row['final_return']:.1f}"
            )
    for row in summary["diverged"]:
        print(f"diverged: member {row['member']} (seed {row['seed']}) at iteration {row['diverged_at']}")
    for row in summary.get("runaway_episodes", []):
        print(
            f"runaway: member {row['member']} (seed {row['seed']}): {row['runaway_episodes']} episodes ended by the "
            "env's runaway guard (a state faster than max_speed, or non-finite)"
        )


def write_outputs(out_dir: str, config: ExperimentConfig, result, summary: dict[str, Any]) -> None:
    from rpo_jax.runs import plots
    from rpo_jax.training import population

    columns = group_names(config)
    table = results.metrics_table(result.metrics, result.members)
    results.write_table(table, os.path.join(out_dir, "metrics.csv"))
    plots.curves(
        table,
        os.path.join(out_dir, "learning_curve.png"),
        group_by=columns,
        x="env_steps",
        y="episode_return",
        title=f"{config.train.env} ({len(config.sweep.seeds)} seeds)",
        also="eval_return" if "eval_return" in table.columns else None,
    )
    results.save_checkpoint(os.path.join(out_dir, "checkpoint"), population.checkpoint_tree(result.state))
    results.atomic_write_text(os.path.join(out_dir, "summary.json"), json.dumps(json_safe(summary), indent=2) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as null (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def group_names(config: ExperimentConfig) -> list[str]:
    """Member-table columns that tell configurations apart (static fields, then hyperparameters)."""
    return [n for n, _ in config.sweep.static] + config.sweep.swept_hparams


def group_summary(members, group_names, finals, diverged: dict[int, int]) -> list[dict[str, Any]]:
    """Final return per configuration over its members that did not diverge (those are counted apart)."""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for m, f in zip(members, finals):
        groups.setdefault(tuple(m[n] for n in group_names), []).append((m["member"], float(f)))
    rows = []
    for values, pairs in groups.items():
        kept = np.asarray([f for member, f in pairs if member not in diverged], dtype=float)
        mean = float(np.nanmean(kept)) if np.any(np.isfinite(kept)) else float("nan")
        std = float(np.nanstd(kept)) if np.any(np.isfinite(kept)) else float("nan")
        rows.append(
            {
                **dict(zip(group_names, values)),
                "mean": mean,
                "std": std,
                "n": int(np.isfinite(kept).sum()),
                "diverged": len(pairs) - len(kept),
                "per_seed": [round(f, 2) for _, f in pairs],
            }
        )
    return rows
