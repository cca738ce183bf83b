"""The report of ``python -m bench.throughput``: the table, the targets, RESULTS.md and the JSON.

* :func:`build_rows` / :func:`table_markdown` -- the results table (bench/RESULTS.md format);
* :data:`TARGETS`, :func:`evaluate_targets`, :func:`targets_markdown` -- the performance targets;
* :func:`summary_markdown`, :func:`update_results_markdown` -- one device's block of RESULTS.md;
* :func:`device_slug`, :func:`host_cpu`, :func:`library_versions`, :func:`jsonable` -- the JSON's parts.

Nothing here runs a benchmark; every function reads the result dict ``main`` builds.
"""

from __future__ import annotations

import math
import platform
import re
import statistics
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bench.common import REPO_ROOT

TARGETS = {
    "ppo_vs_brax": 1.0,  # rpo_jax PPO / Brax PPO steps/s, every env
    "train_vs_raw_heavy": 0.5,  # rpo_jax PPO / raw adapter limit, heavy env
    "sweep16_vs_single": 0.9,  # 16-member sweep / single run of equal total envs
    "quickstart_compile_s": 60.0,  # cold compile of configs/quickstart.yaml (CPU)
}

Row = tuple[str, str, str, str, str, str]

# --------------------------------------------------------------------------- the table


def _fmt_sps(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}"


def _fmt_compile(info: dict[str, Any] | None, key: str = "compile_s") -> str:
    if not info or info.get(key) is None:
        return "—"
    return f"{info[key]:.1f} ({info.get('cache', '?')})"


def _fmt_ratio(x: float | None, label: str) -> str:
    return "" if x is None else f"{x:.2f}x {label}"


def build_rows(result: dict[str, Any]) -> list[Row]:
    """(section, env, what, steps/s, compile s (cache), ratios) rows of the table."""
    rows = []
    for name, env in result["envs"].items():
        rows += _raw_rows(name, env)
        rows += _train_rows(name, env)
    rows += _population_rows(result.get("population") or {})
    rows += _sharding_rows(result.get("sharding") or {})
    rows += _quickstart_rows(result.get("quickstart") or {})
    return rows


def _raw_rows(name: str, env: dict[str, Any]) -> list[Row]:
    raw = env.get("raw") or {}
    a, lib = raw.get("adapter") or {}, raw.get("library") or {}
    rows = []
    if a:
        what = f"rpo_jax adapter step, {raw.get('num_envs')} envs"
        rows.append(("raw env", name, what, _fmt_sps(a.get("steps_per_s")), _fmt_compile(a), ""))
    if lib:
        what = "library step (Brax training wrappers)"
        error = lib.get("error", "")[:60]
        rows.append(("raw env", name, what, _fmt_sps(lib.get("steps_per_s")), _fmt_compile(lib), error))
    return rows


def _train_rows(name: str, env: dict[str, Any]) -> list[Row]:
    train = env.get("train") or {}
    ratios = env.get("ratios") or {}
    rows = []
    for label, alpha in (("ppo", 0.0), ("rpo", 0.5)):
        t = train.get(label)
        if not t:
            continue
        parts = [
            _fmt_ratio(ratios.get(f"{label}_vs_brax_ppo"), "Brax PPO"),
            _fmt_ratio(ratios.get(f"{label}_vs_raw"), "raw"),
        ]
        compile_s = _fmt_compile(train.get("compile")) if label == "ppo" else "(same program)"
        what = f"rpo_jax {label.upper()} alpha={alpha}"
        rows.append(("train", name, what, _fmt_sps(t["steps_per_s"]), compile_s, ", ".join(p for p in parts if p)))
    b = env.get("brax_ppo") or {}
    if b:
        comp = b.get("compile_s_estimate")
        comp_s = "—" if comp is None else f"~{comp:.1f} ({b['compile_log']['cache']})"
        vs_raw = _fmt_ratio(ratios.get("brax_ppo_vs_library_raw"), "library raw") or b.get("error", "")
        rows.append(("train", name, "Brax PPO (matched)", _fmt_sps(b.get("steps_per_s")), comp_s, vs_raw))
    return rows


def _population_rows(pop: dict[str, Any]) -> list[Row]:
    rows = []
    if pop:
        single = pop["single_run"]
        what = f"single run of {pop['total_envs']} envs (no vmap, timed alongside)"
        sps, compile_s = _fmt_sps(single.get("steps_per_s")), _fmt_compile(single.get("compile"))
        rows.append(("population", pop["env"], what, sps, compile_s, "baseline"))
    for p in pop.get("runs", []):
        what = f"{p['members']} x {p['envs_per_member']} envs (vmap)"
        vs_single = _fmt_ratio(p.get("vs_single_run"), f"single run of {p['total_envs']} envs")
        rows.append(("population", pop["env"], what, _fmt_sps(p["steps_per_s"]), _fmt_compile(p["compile"]), vs_single))
    return rows


def _sharding_rows(shard: dict[str, Any]) -> list[Row]:
    rows = []
    for key in ("one_device", "all_devices"):
        s = shard.get(key)
        if s:
            ratio = _fmt_ratio(shard.get("sharded_vs_single_device"), "1 device") if key == "all_devices" else ""
            what = f"{s['members']} members on {s['devices']} device(s)"
            rows.append(("sharding", shard["env"], what, _fmt_sps(s["steps_per_s"]), _fmt_compile(s["compile"]), ratio))
    if shard.get("skipped"):
        rows.append(("sharding", shard.get("env", ""), shard["skipped"], "—", "—", ""))
    return rows


def _quickstart_rows(q: dict[str, Any]) -> list[Row]:
    if q.get("compile_s") is None:
        return []
    what = f"{q['config']} via run_population ({q['members']} members)"
    target = f"target < {TARGETS['quickstart_compile_s']:.0f} s"
    return [("compile", q["env"], what, "—", _fmt_compile(q), target)]


def table_markdown(rows) -> str:
    head = ("section", "env", "what", "env steps/s", "compile s (cache)", "ratios")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- targets


def _target(value: float | None, key: str, at_least: bool = True) -> dict[str, Any]:
    limit = TARGETS[key]
    if at_least:
        return {"value": value, "target": f">= {limit}", "pass": None if value is None else value >= limit}
    return {"value": value, "target": f"< {limit}", "pass": None if value is None else value < limit}


def evaluate_targets(result: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for name, env in result["envs"].items():
        targets[f"ppo_vs_brax[{name}]"] = _target((env.get("ratios") or {}).get("ppo_vs_brax_ppo"), "ppo_vs_brax")
    heavy = result.get("heavy_env")
    if heavy:
        value = (result["envs"][heavy].get("ratios") or {}).get("ppo_vs_raw")
        targets[f"train_vs_raw[{heavy}]"] = _target(value, "train_vs_raw_heavy")
    pop = result.get("population") or {}
    sixteen = [p for p in pop.get("runs", []) if p["members"] == 16]
    targets["sweep16_vs_single"] = _target(sixteen[0].get("vs_single_run") if sixteen else None, "sweep16_vs_single")
    quickstart = (result.get("quickstart") or {}).get("compile_s")
    targets["quickstart_compile_s"] = _target(quickstart, "quickstart_compile_s", at_least=False)
    return targets


def targets_markdown(targets: dict[str, Any], tiny: bool = False) -> str:
    lines = ["(--tiny sizes: the verdicts below are not meaningful)"] if tiny else []
    for key, t in targets.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        value = "—" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"- {key}: {value} (target {t['target']}): **{verdict}**")
    return "\n".join(lines)


# --------------------------------------------------------------------------- RESULTS.md


def summary_markdown(result: dict[str, Any], table: str, targets: str, json_path: Path) -> str:
    """One device's block of RESULTS.md: how it was measured, the table and the targets."""
    d, s = result["device"], result["settings"]
    load = result["load_average"]
    try:
        shown = json_path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        shown = json_path
    iters = ", ".join(f"{n}: {e.get('iterations_per_rep')}" for n, e in result["envs"].items())
    lines = [
        f"## {d['platform']}: {d['device_kind']} x{d['device_count']}" + (" (tiny)" if s["tiny"] else ""),
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date_utc']}, jax {result['versions']['jax']}, brax {result['versions'].get('brax')}, "
        f"host {d['host_cpu']} ({d['host_cpu_count']} cores), XLA_FLAGS=`{d['xla_flags']}` "
        f"(host devices set by: {d['host_devices_forced_by']}), total {result['total_seconds']} s, "
        f"load average {load['start'][0]:.2f} at start / {load['end'][0]:.2f} at end.  ",
        f"Sizes: {s['num_envs']} envs x {s['num_steps']} steps per iteration, {s['num_minibatches']} minibatches, "
        f"{s['update_epochs']} epochs, (64, 64) networks; iterations per repetition: {iters}; "
        f"steps/s = median of the timed repetitions after 1 warm-up (raw env and rpo_jax training: one call "
        f"of each program after each of Brax PPO's {s['train_reps']} + 2 epochs, Brax: its compile-free "
        f"epochs; population and sharding: {s['reps']} per program, interleaved round-robin); "
        f"compile s = trace + lower + XLA "
        f"compile (cache state from jax.monitoring; Brax: estimated from its compiling epochs). "
        f"Persistent cache {'warm for some compiles' if result['compile_cache_warm'] else 'cold (no hits)'}. "
        f"Median spread (slowest - fastest) / median of a program's repetitions: {median_spread(result)}; "
        f"ratios closer to a target than that are within noise. "
        f"JSON: `{shown}`",
        "",
        table,
        "",
        "Targets:",
        "",
        targets,
        "",
    ]
    return "\n".join(lines)


def median_spread(result: dict[str, Any]) -> str:
    """The median over every timed program of (slowest - fastest) / median repetition."""
    spreads = []

    def walk(x):
        if isinstance(x, dict):
            if "spread" in x and "rep_seconds" in x:
                spreads.append(x["spread"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk({k: result.get(k) for k in ("envs", "population", "sharding")})
    return f"{statistics.median(spreads):.0%}" if spreads else "n/a"


def update_results_markdown(path: Path, key: str, body: str) -> None:
    """Replaces (or appends) the block of ``key`` in RESULTS.md, keeping other devices' blocks."""
    begin, end = f"<!-- results: {key} -->", f"<!-- end results: {key} -->"
    header = (
        "# Throughput benchmark results\n\n"
        "Latest `python -m bench.throughput` table per device, rewritten by the benchmark "
        "(see `bench/throughput.py` for the method). Full figures: `bench/results/*.json`.\n"
    )
    text = path.read_text(encoding="utf-8") if path.exists() else header
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- the JSON's parts


def device_slug() -> str:
    device = jax.devices()[0]
    kind = device.device_kind if device.platform != "cpu" else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or device.platform


def host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for dist in ("jaxlib", "brax", "playground", "gymnax", "flax", "optax", "mujoco", "mujoco-mjx"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars as Python numbers and non-finite floats as None (JSON null)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
