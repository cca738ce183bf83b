"""The throughput benchmark runs end to end at tiny sizes and writes every field.

Never asserts on speed: only that each figure exists and is a positive number.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = "gymnax/Pendulum-v1"


def _run_bench(module: str, args: list[str]) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in the repository, its output captured."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _bench_record(module: str, args: list[str], out: Path, pattern: str) -> dict:
    """Runs ``python -m MODULE ARGS --out OUT``; the one JSON in ``out`` matching ``pattern``."""
    proc = _run_bench(module, [*args, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-4000:]
    (path,) = out.glob(pattern)
    return json.loads(path.read_text())


def _positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # let the benchmark force its 2 host devices
    cache = os.path.expanduser("~/.cache/rpo_jax_bench_cache")
    cmd = [
        sys.executable,
        "-m",
        "bench.throughput",
        "--tiny",
        "--envs",
        ENV,
        "--out",
        str(out),
        "--markdown",
        str(out / "RESULTS.md"),
        "--cache-dir",
        cache,
        "--train-reps",
        "3",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = sorted(out.glob("cpu-tiny-*.json")) or sorted(out.glob("*-tiny-*.json"))
    assert len(files) == 1, list(out.iterdir())
    return json.loads(files[0].read_text()), out, proc.stdout


def test_json_has_every_field(tiny_run):
    result, _, _ = tiny_run
    for key in (
        "command",
        "date_utc",
        "versions",
        "device",
        "settings",
        "envs",
        "heavy_env",
        "population",
        "sharding",
        "quickstart",
        "targets",
        "load_average",
        "compile_cache_warm",
        "total_seconds",
        "table_markdown",
    ):
        assert key in result, key
    assert result["versions"]["jax"] and result["versions"]["brax"]
    for key in ("backend", "platform", "device_kind", "device_count", "xla_flags", "host_devices_forced_by"):
        assert key in result["device"], key
    settings = result["settings"]
    for key in (
        "num_envs",
        "num_steps",
        "num_minibatches",
        "update_epochs",
        "reps",
        "train_reps",
        "statistic",
        "population_sizes",
        "sharded_members",
        "compilation_cache",
        "envs",
    ):
        assert key in settings, key
    assert settings["tiny"] is True and settings["reps"] >= 2 and settings["train_reps"] == 3

    entry = result["envs"][ENV]
    for variant in ("adapter", "library"):
        raw = entry["raw"][variant]
        assert _positive(raw["steps_per_s"]), raw
        assert raw["compile_s"] >= 0 and raw["cache"] in ("cold", "warm", "partly warm", "cache off", "none")
        assert len(raw["rep_seconds"]) == settings["train_reps"] + 2  # timed in the same rounds as training
    train = entry["train"]
    assert train["compile"]["compile_s"] > 0
    for label in ("ppo", "rpo"):
        assert _positive(train[label]["steps_per_s"])
        assert len(train[label]["rep_seconds"]) == settings["train_reps"] + 2  # one after each Brax PPO epoch
        assert train[label]["finite_loss"]
    assert train["ppo"]["alpha"] == 0.0 and train["rpo"]["alpha"] == 0.5

    brax = entry["brax_ppo"]
    assert _positive(brax["steps_per_s"]), brax
    assert brax["timed_epochs"] >= settings["train_reps"] and "compile_s_estimate" in brax
    for ratio in ("ppo_vs_brax_ppo", "rpo_vs_brax_ppo", "ppo_vs_raw", "rpo_vs_raw", "brax_ppo_vs_library_raw"):
        assert _positive(entry["ratios"][ratio]), ratio

    population = result["population"]
    assert _positive(population["single_run_steps_per_s"])
    assert population["single_run"]["steps_per_s"] == population["single_run_steps_per_s"]
    assert len(population["single_run"]["rep_seconds"]) == settings["reps"]
    assert [r["members"] for r in population["runs"]] == settings["population_sizes"]
    for run in population["runs"]:
        assert run["members"] * run["envs_per_member"] == run["total_envs"] == settings["num_envs"]
        assert _positive(run["steps_per_s"]) and _positive(run["vs_single_run"])
        assert run["compile"]["compile_s"] > 0

    sharding = result["sharding"]
    assert sharding["devices"] == 2, "the benchmark forces 2 host devices on CPU"
    assert sharding["one_device"]["devices"] == 1 and sharding["all_devices"]["devices"] == 2
    assert _positive(sharding["sharded_vs_single_device"])

    quickstart = result["quickstart"]
    assert quickstart["compile_s"] > 0 and quickstart["cache"] == "cache off"

    for key in (f"ppo_vs_brax[{ENV}]", f"train_vs_raw[{ENV}]", "sweep16_vs_single", "quickstart_compile_s"):
        assert key in result["targets"], key
        assert set(result["targets"][key]) == {"value", "target", "pass"}


def test_brax_settings_match_ours(tiny_run):
    """Brax PPO does the same env steps and gradient steps per iteration as rpo_jax."""
    result, _, _ = tiny_run
    s = result["settings"]
    b = result["envs"][ENV]["brax_ppo"]["settings"]
    assert b["num_envs"] == s["num_envs"] and b["unroll_length"] == s["num_steps"]
    assert b["batch_size"] * b["num_minibatches"] * b["unroll_length"] == s["num_envs"] * s["num_steps"]
    assert b["num_minibatches"] == s["num_minibatches"] and b["num_updates_per_batch"] == s["update_epochs"]


def test_table_printed_and_markdown_written(tiny_run):
    result, out, stdout = tiny_run
    assert "| section | env | what |" in stdout and "Targets:" in stdout
    text = (out / "RESULTS.md").read_text()
    assert result["table_markdown"] in text and result["command"] in text


def test_results_markdown_keeps_other_devices(tmp_path):
    from bench.throughput_report import update_results_markdown

    path = tmp_path / "RESULTS.md"
    update_results_markdown(path, "cpu: cpu", "## cpu\nold")
    update_results_markdown(path, "gpu: H100", "## gpu\nfigures")
    update_results_markdown(path, "cpu: cpu", "## cpu\nnew")
    text = path.read_text()
    assert "new" in text and "old" not in text and "figures" in text
    assert text.count("<!-- results: cpu: cpu -->") == 1


@pytest.mark.slow  # about a minute: three compiled trainers; run with -m slow
def test_breakdown_runs_at_tiny_sizes_and_writes_every_program(tmp_path):
    args = ["--env", ENV, "--num-envs", "8", "--members", "1,2", "--reps", "2"]
    record = _bench_record("bench.breakdown", args, tmp_path, "breakdown-*.json")
    names = [r["program"] for r in record["rows"]]
    assert names == [
        "iteration",
        "rollout",
        "update",
        "raw adapter",
        "raw library",
        "start refill",
        "population 1",
        "population 1 update",
        "population 2",
        "population 2 update",
    ]
    for row in record["rows"]:
        assert _positive(row["median_ms"]) and _positive(row["fastest_ms"]) and len(row["rep_seconds"]) == 2
    bad = _run_bench("bench.breakdown", ["--env", ENV, "--num-envs", "8", "--members", "3", "--out", str(tmp_path)])
    assert bad.returncode == 2 and "--members" in bad.stderr


@pytest.mark.slow  # about a minute: three compiled trainers; run with -m slow
def test_regularizer_cost_runs_at_tiny_sizes(tmp_path):
    args = ["--num-envs", "2", "--num-steps", "8", "--minibatches", "2", "--epochs", "1", "--steps", "2"]
    args += ["--reps", "1"]
    rows = _bench_record("bench.regularizer_cost", args, tmp_path, "regularizer-*.json")["rows"]
    assert [r["algorithm"] for r in rows] == ["ppo/pgd-per-minibatch", "ppo/pgd-per-iteration", "trpo"]
    for r in rows:
        for key in ("update_s", "update_sr_s", "update_ratio", "iteration_s", "iteration_sr_s", "iteration_ratio"):
            assert _positive(r[key]), (r["algorithm"], key)


def test_checkpoint_cost_runs_at_tiny_sizes(tmp_path):
    args = ["--tiny", "--reps", "1"]
    row = _bench_record("bench.checkpoint_cost", args, tmp_path, "checkpoint-*-tiny-*.json")["result"]
    assert row["checkpoints_per_run"] == row["iterations"] // 1 or row["checkpoints_per_run"] >= 2
    for key in ("seconds_per_checkpoint", "checkpoint_bytes", "run_s_every_chunk", "run_s_at_end", "overhead_ratio"):
        assert _positive(row[key]), key


def test_normalizer_drift_runs_and_stays_within_float64_accuracy():
    proc = _run_bench("bench.normalizer_drift", ["--rollouts", "50"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if "rpo_jax.core.normalization" in x)
    errors = [float(v) for v in line.split("[")[1].rstrip("]").split()]
    assert len(errors) == 2 and max(abs(e) for e in errors) < 1e-5, line


def test_cpu_devices_runs_both_settings(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "train: {env: gymnax/Pendulum-v1, num_envs: 2, num_steps: 32, num_minibatches: 2, update_epochs: 1}\n"
        "sweep: {seeds: 2}\n"
    )
    args = ["--config", str(config), "--steps", "128", "--rounds", "1"]
    record = _bench_record("bench.cpu_devices", args, tmp_path, "cpu_devices-*.json")
    assert record["runs"]["one_device"][0]["devices"] == 1
    assert record["runs"]["default"][0]["devices"] == min(2, record["cores"])
    assert _positive(record["ratio_steps_per_s"]) and _positive(record["ratio_wall"])


def test_cleanrl_speed_runs_the_paper_config_end_to_end(tmp_path):
    args = ["--steps", "4096", "--seeds", "2", "--reps", "1"]
    record = _bench_record("bench.cleanrl_speed", args, tmp_path, "cleanrl_speed-*.json")
    (run,) = record["runs"]
    assert run["members"] == 2 and run["member_steps"] == 2 * 4096 and "--grid alpha=0.5" in run["command"]
    assert _positive(run["ratio_vs_cleanrl"]) and run["wall_s"] > run["run_s"]


def test_cleanrl_profile_times_both_phases_per_width_and_bounds_the_sweep(tmp_path):
    args = ["--members", "2", "--hidden", "8,64", "--reps", "1"]
    record = _bench_record("bench.cleanrl_profile", args, tmp_path, "cleanrl_profile-*.json")
    assert set(record["programs"]) == {"rollout h8", "update h8", "rollout h64", "update h64"}
    assert all(_positive(row["ms"]) for row in record["programs"].values())
    assert record["iterations_per_member"] == 1_000_000 // 2048
    # the bound is the 64-wide update's time over every iteration
    expected = record["iterations_per_member"] * record["programs"]["update h64"]["ms"] / 1e3
    assert record["update_only_lower_bound_s"] == pytest.approx(expected, rel=0.01, abs=0.1)
    assert _positive(record["best_ratio_vs_cleanrl_with_nothing_but_the_update"])


def test_population_env_times_the_env_step_both_ways(tmp_path):
    args = ["--env", ENV, "--envs", "8", "--members", "4", "--steps", "4", "--reps", "2"]
    record = _bench_record("bench.population_env", args, tmp_path, "population_env-*.json")
    assert record["members"] == 4 and _positive(record["ratio_flat_over_population"])


@pytest.mark.slow  # ~30 s: two compiled populations
def test_pbt_overhead_times_both_runs(tmp_path):
    args = ["--seeds", "1", "--num-envs", "2", "--num-steps", "32", "--iterations", "4", "--reps", "1"]
    record = _bench_record("bench.pbt_overhead", args, tmp_path, "pbt_overhead-*.json")
    assert record["members"] == 8 and _positive(record["ratio_pbt_over_fixed"])


@pytest.mark.slow  # about a minute: three compiled trainers; run with -m slow
def test_ddpg_bench_runs_at_tiny_sizes(tmp_path):
    args = ["--env", ENV, "--members", "2", "--num-steps", "16", "--updates", "2", "--pgd-steps", "2"]
    record = _bench_record("bench.ddpg", [*args, "--reps", "1"], tmp_path, "ddpg-*.json")
    for name in ("raw env", "ddpg", "ddpg-sr-a", "ddpg-sr-c"):
        assert _positive(record["env_steps_per_s"][name]), name
    assert _positive(record["ddpg_vs_raw"]) and _positive(record["sr_a_cost"]) and _positive(record["sr_c_cost"])


@pytest.mark.slow  # about a minute: a plan and two measuring processes; run with -m slow
def test_plan_memory_runs_at_tiny_sizes(tmp_path):
    args = ["--sizes", "3,6", "--num-envs", "4", "--num-steps", "64"]
    record = _bench_record("bench.plan_memory", args, tmp_path, "plan-memory-cpu-*.json")
    assert [r["members"] for r in record["rows"]] == [3, 6]
    assert all(r["measured_bytes"] > 0 and r["predicted_bytes"] > 0 for r in record["rows"])


def test_scaling_times_every_size_and_plots(tmp_path):
    args = ["--tiny", "--sizes", "1,2"]
    record = _bench_record("bench.scaling", args, tmp_path, "scaling-*-tiny-*.json")
    assert record["settings"]["sizes"] == [1, 2] and record["settings"]["reps"] == 2
    entry = record["envs"][ENV]
    assert entry["finite_value_loss"] and entry["per_agent_flat_from"] in (1, 2)
    assert [r["members"] for r in entry["rows"]] == [1, 2]
    for row in entry["rows"]:
        assert len(row["rep_seconds"]) == len(row["cpu_seconds"]) == 2 and row["compile_s"] > 0
        assert row["agent_steps"] == entry["agent_steps"] > 0  # fixed work per agent, whatever the size
        assert math.isclose(row["per_agent_s"] * row["members"], row["median_s"], rel_tol=1e-3)
        assert math.isclose(row["aggregate_steps_per_s"] * row["median_s"], row["members"] * row["agent_steps"])
        assert _positive(row["cores_busy"]) and row["compile"]["run"]["compile_s"] > 0
    plan = entry["plan"]
    assert plan["fits_members"] > 2 and _positive(plan["per_member_bytes"]), plan
    assert Path(record["plot"]).exists() and Path(record["plot"]).stat().st_size > 10_000
    bad = _run_bench("bench.scaling", ["--sizes", "0,2"])
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--sizes" in bad.stderr
