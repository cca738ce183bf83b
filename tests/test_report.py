"""Tests for rpo_jax.analysis.report on synthetic sweep directories with known final returns."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import yaml

from rpo_jax import cli
from rpo_jax.analysis import report
from rpo_jax.runs import rundir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_ITER = 40  # final window = round(40 * 0.05) = 2 iterations (38, 39)
OFFSETS = {0: -3.0, 1: 0.0, 2: 3.0}  # per-seed offset: mean 0, std (ddof=0) sqrt(6) = 2.449
ENV_A, ENV_B = "gymnax/Pendulum-v1", "brax/hopper"

EFFECT = ["effect", "effect_low", "effect_high"]  # vs the baseline, with a bootstrap CI


def write_run(path, env, members, *, hparams=None, diverged=None, status="complete"):
    """Write a sweep dir. ``members``: list of (variant dict, seed, final level).

    Every member has episode_return = -1000 before iteration 30 and `level + offset(seed)`
    from then on, with NaN (no episode ended) on odd iterations before 38 and at iteration 38
    for seed 1, so the final return of a member is exactly ``level + offset``.

    ``diverged`` ({member index: iteration}) adds the trainer's ``diverged`` column; from its
    iteration on such a member's episode_return is 0.0 -- what a diverged member reported before the
    trainer masked it, and the best Pendulum return, so leaving it in would make it win.
    ``status``: the ``status.json`` state to write (None: no status.json, as in older runs).
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True)
    rows = []
    for m, (variant, seed, level) in enumerate(members):
        for it in range(N_ITER):
            ret = level + OFFSETS[seed] if it >= 30 else -1000.0
            if (it % 2 == 1 and it < 38) or (it == 38 and seed == 1):
                ret = np.nan
            row = {
                "member": m,
                "seed": seed,
                **variant,
                "iteration": it,
                "episode_return": ret,
                "episode_length": 200.0,
                "episodes": 8,
                "entropy": 1.4 - 0.01 * it + variant.get("alpha", 0.0),
                "approx_kl": 0.01,
                "learning_rate_current": 3e-4,
                "env_steps": 2048 * (it + 1),
            }
            if diverged is not None:
                bad = m in diverged and it >= diverged[m]
                row["diverged"] = float(bad)
                row["episode_return"] = 0.0 if bad else ret
            rows.append(row)
    pd.DataFrame(rows).to_csv(path / "metrics.csv", index=False)
    if status is not None:
        rundir.write_status(path, status, iteration=N_ITER if status == "complete" else 12, num_iterations=N_ITER)
    hp = {"alpha": 0.5, "ent_coef": 0.0, "learning_rate": 3e-4, **(hparams or {})}
    config = {
        "train": {"env": env, "num_envs": 8},
        "hparams": hp,
        "sweep": {"seeds": sorted({s for _, s, _ in members}), "grid": {}},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def members_for(levels):
    """levels: list of (variant dict, level) -> members over seeds 0, 1, 2."""
    return [(v, s, lvl) for v, lvl in levels for s in OFFSETS]


BASE = {"alpha": 0.0, "ent_coef": 0.0}
BEST = {"alpha": 0.5, "ent_coef": 0.0}
ENT = {"alpha": 0.0, "ent_coef": 0.01}


@pytest.fixture
def two_env_runs(tmp_path):
    """Env A: one run sweeping alpha and ent_coef. Env B: two runs, one sweeping only alpha
    (ent_coef=0 from its config), one only ent_coef (alpha=0 from its config)."""
    a = write_run(tmp_path / "a", ENV_A, members_for([(BASE, 100.0), (BEST, 200.0), (ENT, 120.0)]))
    b1 = write_run(
        tmp_path / "b1",
        ENV_B,
        members_for([({"alpha": 0.0}, -50.0), ({"alpha": 0.5}, 10.0)]),
        hparams={"ent_coef": 0.0},
    )
    b2 = write_run(tmp_path / "b2", ENV_B, members_for([({"ent_coef": 0.01}, -53.0)]), hparams={"alpha": 0.0})
    return [str(a), str(b1), str(b2)]


def md_table(text, first_col):
    """{row label: [cells]} of the markdown table whose header starts with `first_col`."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_col} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return rows


# ----------------------------------------------------------------------------- load / finals


def test_load_run_finds_generic_variant_columns(tmp_path):
    run = write_run(tmp_path / "r", ENV_A, members_for([({"action_dist": "beta", "alpha": 0.5}, 1.0)]))
    data = report.load_run(run)
    assert data.variant_cols == ["action_dist", "alpha"]
    assert data.env == ENV_A
    assert data.config["hparams"]["ent_coef"] == 0.0
    assert (
        report.variant_label({"action_dist": "beta", "alpha": 0.5, "ent_coef": 0.01})
        == "action_dist=beta, alpha=0.5, ent_coef=0.01"
    )


def test_final_returns_skip_nan_and_use_last_fraction(tmp_path):
    run = write_run(tmp_path / "r", ENV_A, members_for([(BEST, 200.0)]))
    data = report.load_run(run)
    f = report.final_returns(data.metrics, data.variant_cols)
    assert list(f.columns) == ["member", "seed", "alpha", "ent_coef", "final_return"]
    np.testing.assert_allclose(f["final_return"], [197.0, 200.0, 203.0])
    df = data.metrics.copy()
    df.loc[df["iteration"] >= 38, "episode_return"] = np.nan  # nothing in the final window
    assert report.final_returns(df, data.variant_cols)["final_return"].isna().all()
    # fraction 0.5 -> last 20 iterations, which include the -1000 plateau before iteration 30
    half = report.final_returns(data.metrics, data.variant_cols, fraction=0.5)
    assert (half["final_return"] < 0).all()


# ----------------------------------------------------------------------------- make_report


def test_make_report_writes_all_files(two_env_runs, tmp_path):
    out = tmp_path / "report"
    paths = report.make_report(two_env_runs, str(out))
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "learning_curves_gymnax_Pendulum-v1.png",
            "entropy_gymnax_Pendulum-v1.png",
            "learning_curves_brax_hopper.png",
            "entropy_brax_hopper.png",
            "final_returns.md",
            "final_returns.csv",
            "aggregate.md",
        ]
    )
    for p in paths:
        assert p.parent == out and p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temp leftovers


def test_final_returns_table_values_and_bold_best(two_env_runs, tmp_path):
    report.make_report(two_env_runs, str(tmp_path / "out"))
    md = (tmp_path / "out" / "final_returns.md").read_text()
    rows = md_table(md, "env")
    cols = ["alpha=0, ent_coef=0", "alpha=0, ent_coef=0.01", "alpha=0.5, ent_coef=0"]
    assert list(rows[ENV_A]) == cols  # variants aligned across runs, sorted by value
    assert rows[ENV_A]["alpha=0.5, ent_coef=0"] == "**200.00 ± 2.45 (3)**"
    assert rows[ENV_A]["alpha=0, ent_coef=0"] == "100.00 ± 2.45 (3)"
    # env B: the alpha=0 / ent_coef=0.01 cells come from runs that swept only one of them
    assert rows[ENV_B]["alpha=0, ent_coef=0.01"] == "-53.00 ± 2.45 (3)"
    assert rows[ENV_B]["alpha=0.5, ent_coef=0"] == "**10.00 ± 2.45 (3)**"
    assert sum(c.startswith("**") for r in rows.values() for c in r.values()) == 2

    csv = pd.read_csv(tmp_path / "out" / "final_returns.csv")
    assert list(csv.columns) == [
        "env",
        "variant",
        "alpha",
        "ent_coef",
        "mean",
        "std",
        "n",
        "diverged",
        "runaway_episodes",
        *EFFECT,
    ]
    assert len(csv) == 6 and (csv["diverged"] == 0).all()  # no `diverged` column in metrics.csv: none diverged
    cell = csv[(csv["env"] == ENV_B) & (csv["variant"] == "alpha=0, ent_coef=0.01")].iloc[0]
    assert cell["mean"] == pytest.approx(-53.0) and cell["std"] == pytest.approx(np.sqrt(6))
    assert cell["n"] == 3 and cell["alpha"] == 0.0 and cell["ent_coef"] == 0.01


def test_aggregate_md_probability_of_improvement(two_env_runs, tmp_path):
    report.make_report(two_env_runs, str(tmp_path / "out"))
    md = (tmp_path / "out" / "aggregate.md").read_text()
    assert "Only one task" not in md
    assert "Baseline: `alpha=0, ent_coef=0`" in md
    poi = md_table(md, "variant")  # first table: IQM
    iqm = {k: float(v["IQM"]) for k, v in poi.items()}
    assert iqm["alpha=0.5, ent_coef=0"] == max(iqm.values())
    assert all(v["tasks"] == "2/2" and v["runs"] == "6" for v in poi.values())
    start = md.index("## Probability of improvement")
    prob = md_table(md[start:], "variant")
    assert set(prob) == {"alpha=0.5, ent_coef=0", "alpha=0, ent_coef=0.01"}
    assert prob["alpha=0.5, ent_coef=0"]["P(X > baseline)"] == "1.00"
    assert prob["alpha=0.5, ent_coef=0"]["95% CI"] == "[1.00, 1.00]"
    # ent_coef variant: env A 120 vs 100 -> 1.0; env B {-56,-53,-50} vs {-53,-50,-47}:
    # 1 of 9 pairs wins, 2 tie -> (1 + 2/2) / 9; mean over tasks = (1 + 2/9) / 2 = 0.61
    assert prob["alpha=0, ent_coef=0.01"]["P(X > baseline)"] == "0.61"


def test_user_baseline_and_single_task_note(tmp_path):
    run = write_run(tmp_path / "r", ENV_A, members_for([(BASE, 100.0), (BEST, 200.0), (ENT, 120.0)]))
    paths = report.make_report([str(run)], None, baseline={"alpha": 0.5})
    assert all(p.parent == run / "report" for p in paths)  # default out dir
    md = (run / "report" / "aggregate.md").read_text()
    assert "Only one task" in md
    assert "Baseline: `alpha=0.5, ent_coef=0`" in md
    prob = md_table(md[md.index("## Probability") :], "variant")
    assert prob["alpha=0, ent_coef=0"]["P(X > baseline)"] == "0.00"
    with pytest.raises(report.ReportError, match="not among the variant columns"):
        report.make_report([str(run)], str(tmp_path / "x"), baseline={"lambda_s": 0})
    with pytest.raises(report.ReportError, match="no variant matches"):
        report.make_report([str(run)], str(tmp_path / "x"), baseline={"alpha": 3.0})


def test_alpha_ablation_only_with_more_than_two_alphas(tmp_path):
    two = write_run(tmp_path / "two", ENV_A, members_for([({"alpha": 0.0}, 1.0), ({"alpha": 0.5}, 2.0)]))
    paths = report.make_report([str(two)], str(tmp_path / "o2"))
    assert not any(p.name.startswith("alpha_ablation") for p in paths)
    alphas = [0.0, 0.001, 0.1, 0.5, 3.0, 1000.0]
    many = write_run(
        tmp_path / "many", ENV_A, members_for([({"alpha": a}, 10.0 - abs(np.log10(a + 1e-3))) for a in alphas])
    )
    paths = report.make_report([str(many)], str(tmp_path / "o6"))
    abl = [p for p in paths if p.name == "alpha_ablation_gymnax_Pendulum-v1.png"]
    assert len(abl) == 1 and abl[0].read_bytes()[:8] == PNG_MAGIC
    # without an ent_coef column the default baseline is alpha=0 alone
    md = (tmp_path / "o6" / "aggregate.md").read_text()
    assert "Baseline: `alpha=0`" in md


def test_no_alpha_column_means_no_baseline(tmp_path):
    run = write_run(tmp_path / "r", ENV_A, members_for([({"ent_coef": 0.0}, 1.0), ({"ent_coef": 0.1}, 2.0)]))
    report.make_report([str(run)], str(tmp_path / "o"))
    assert "No baseline" in (tmp_path / "o" / "aggregate.md").read_text()


# ----------------------------------------------------------------------------- CLI


def _one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("rpo-jax: error: ") and err.count("\n") == 1
    return err


def test_main_missing_dir(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in _one_error_line(capsys)


def test_main_bad_inputs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty)]) == 2
    assert "no metrics.csv" in _one_error_line(capsys)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x01")
    rundir.write_status(garbage, "complete", iteration=1, num_iterations=1)
    assert cli.main(["report", str(garbage)]) == 2
    _one_error_line(capsys)

    nocols = tmp_path / "nocols"
    nocols.mkdir()
    (nocols / "metrics.csv").write_text("a,b\n1,2\n")
    rundir.write_status(nocols, "complete", iteration=1, num_iterations=1)
    assert cli.main(["report", str(nocols)]) == 2
    assert "lacks column" in _one_error_line(capsys)

    assert (
        cli.main(
            [
                "report",
            ]
        )
        == 2
    )  # argparse error, one line too
    _one_error_line(capsys)


def test_main_success_and_baseline_flag(two_env_runs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["report", *two_env_runs, "--out", str(out), "--baseline", "alpha=0,ent_coef=0.01"]) == 0
    assert "Baseline: `alpha=0, ent_coef=0.01`" in (out / "aggregate.md").read_text()
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["report", *two_env_runs, "--out", str(out), "--baseline", "bogus=1"]) == 2
    _one_error_line(capsys)
    assert cli.main(["report", *two_env_runs]) == 2  # several runs need --out
    assert "--out" in _one_error_line(capsys)


# ----------------------------------------------------------------------------- real run


def test_report_of_a_real_sweep_agrees_with_its_summary(tmp_path):
    """A real (tiny) `rpo-jax sweep`: the report's final returns equal summary.json's per-seed values."""
    from rpo_jax import cli

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "train: {env: gymnax/Pendulum-v1, num_envs: 4, num_steps: 100, num_minibatches: 2, update_epochs: 1,"
        " total_timesteps: 4000}\nsweep: {seeds: 2, grid: {alpha: [0.0, 0.5]}}\n"
    )
    run = tmp_path / "run"
    assert cli.main(["sweep", str(config), "--out", str(run), "--quiet"]) == 0
    assert rundir.read_status(run)["state"] == "complete"
    data = report.load_run(run)
    assert "learning_rate" not in data.metrics.columns  # the metric is learning_rate_current
    assert (data.metrics["diverged"] == 0).all() and (data.metrics["nonfinite_env_steps"] == 0).all()
    f = report.final_returns(data.metrics, data.variant_cols)
    summary = json.loads((run / "summary.json").read_text())
    for row in summary["final_return"]:
        got = f.loc[f["alpha"] == row["alpha"], "final_return"].to_numpy()
        np.testing.assert_allclose(got, row["per_seed"], atol=0.006)  # summary rounds to 0.01
    assert cli.main(["report", str(run), "--out", str(tmp_path / "qs")]) == 0
    assert {p.name for p in (tmp_path / "qs").iterdir()} >= {
        "learning_curves_gymnax_Pendulum-v1.png",
        "final_returns.md",
    }
    assert "Only one task" in (tmp_path / "qs" / "aggregate.md").read_text()


def test_default_baseline_prefers_default_knobs_or_reports_ambiguity(tmp_path):
    # lambda_s = 0 is the "off" value, so alpha=0, lambda_s=0 is the PPO baseline
    run = write_run(
        tmp_path / "l",
        ENV_A,
        members_for(
            [
                ({"alpha": 0.0, "lambda_s": 0.0}, 1.0),
                ({"alpha": 0.0, "lambda_s": 1.0}, 2.0),
                ({"alpha": 0.5, "lambda_s": 0.0}, 3.0),
            ]
        ),
    )
    report.make_report([str(run)], str(tmp_path / "o1"))
    assert "Baseline: `alpha=0, lambda_s=0`" in (tmp_path / "o1" / "aggregate.md").read_text()
    # two alpha=0 variants differing in a knob with no known default: say so, don't guess
    run = write_run(
        tmp_path / "d",
        ENV_A,
        members_for([({"action_dist": "beta", "alpha": 0.0}, 1.0), ({"action_dist": "normal", "alpha": 0.0}, 2.0)]),
    )
    report.make_report([str(run)], str(tmp_path / "o2"))
    md = (tmp_path / "o2" / "aggregate.md").read_text()
    assert "No baseline" in md and "ambiguous" in md and "--baseline" in md


def test_the_same_member_in_two_runs_is_counted_once(tmp_path):
    """Two sweeps that both contain (env, variant, seed) pool it once, not twice."""
    from rpo_jax.analysis import report as rep

    rng = np.random.default_rng(0)
    dirs = []
    for k in range(2):
        d = tmp_path / f"run{k}"
        d.mkdir()
        (d / "config.yaml").write_text(
            yaml.safe_dump({"train": {"env": "gymnax/Pendulum-v1"}, "hparams": {"alpha": 0.5}, "sweep": {}})
        )
        rows = []
        for member, (seed, alpha) in enumerate([(0, 0.0), (1, 0.0), (0, 0.5 + k)]):
            for it in range(10):
                rows.append(
                    {
                        "member": member,
                        "seed": seed,
                        "alpha": alpha,
                        "iteration": it,
                        "episode_return": -100.0 * (seed + 1) + rng.normal(),
                        "entropy": 1.0,
                        "env_steps": (it + 1) * 10,
                    }
                )
        pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
        dirs.append(str(d))
    rep.make_report(dirs, str(tmp_path / "out"))
    finals = pd.read_csv(tmp_path / "out" / "final_returns.csv").set_index("variant")
    assert finals.loc["alpha=0", "n"] == 2  # seeds 0 and 1 of alpha=0 appear in both runs: counted once each
    assert finals.loc["alpha=0.5", "n"] == 1 and finals.loc["alpha=1.5", "n"] == 1


# ----------------------------------------------------------------------------- diverged members


def test_diverged_members_are_left_out_named_and_counted(tmp_path):
    """Member 4 (alpha=0.5, seed 1) diverged at iteration 12 and member 6 (ent_coef=0.01, seed 0) at 35;
    their 0.0 returns would be the best of the table if they were counted."""
    run = write_run(
        tmp_path / "r", ENV_A, members_for([(BASE, -100.0), (BEST, -50.0), (ENT, -80.0)]), diverged={4: 12, 6: 35}
    )
    data = report.load_run(run)
    np.testing.assert_array_equal(report.diverged_iterations(data.metrics).to_dict(), {4: 12, 6: 35})
    report.make_report([str(run)], str(tmp_path / "out"))
    md = (tmp_path / "out" / "final_returns.md").read_text()
    rows = md_table(md, "env")[ENV_A]
    assert rows["alpha=0, ent_coef=0"] == "-100.00 ± 2.45 (3)"
    assert rows["alpha=0.5, ent_coef=0"] == "**-50.00 ± 3.00 (2; 1 diverged)**"  # seeds 0 and 2: -53, -47
    assert rows["alpha=0, ent_coef=0.01"] == "-78.50 ± 1.50 (2; 1 diverged)"  # seeds 1 and 2: -80, -77
    assert "2 member(s) diverged" in md
    assert "- diverged (left out): member 4 (seed 1, alpha=0.5, ent_coef=0) at iteration 12" in md
    assert "- diverged (left out): member 6 (seed 0, alpha=0, ent_coef=0.01) at iteration 35" in md
    assert "finished no episode" not in md
    csv = pd.read_csv(tmp_path / "out" / "final_returns.csv").set_index("variant")
    assert csv["diverged"].to_dict() == {
        "alpha=0, ent_coef=0": 0,
        "alpha=0, ent_coef=0.01": 1,
        "alpha=0.5, ent_coef=0": 1,
    }
    assert csv.loc["alpha=0.5, ent_coef=0", "n"] == 2
    assert csv.loc["alpha=0.5, ent_coef=0", "mean"] == pytest.approx(-50.0)
    agg = (tmp_path / "out" / "aggregate.md").read_text()
    assert "2 diverged member(s) are left out" in agg
    assert {k: v["runs"] for k, v in md_table(agg, "variant").items()} == {
        "alpha=0, ent_coef=0": "3",
        "alpha=0, ent_coef=0.01": "2",
        "alpha=0.5, ent_coef=0": "2",
    }


def test_runaway_episodes_are_counted_and_named(tmp_path):
    """Members whose envs' runaway guard cut episodes (metrics.csv ``runaway_episodes``) are named under
    the table and counted per variant in the CSV; they stay in the table (their learning is healthy)."""
    run = write_run(tmp_path / "r", ENV_A, members_for([(BASE, -100.0), (BEST, -50.0)]))
    table = pd.read_csv(run / "metrics.csv")
    table["runaway_episodes"] = np.where((table["member"] == 4) & (table["iteration"] % 10 == 0), 2, 0)
    table.to_csv(run / "metrics.csv", index=False)
    report.make_report([str(run)], str(tmp_path / "out"))
    md = (tmp_path / "out" / "final_returns.md").read_text()
    assert "- runaway: member 4 (seed 1, alpha=0.5, ent_coef=0): 8 episodes cut by the env's runaway guard" in md
    assert md.count("- runaway:") == 1
    assert md_table(md, "env")[ENV_A]["alpha=0.5, ent_coef=0"] == "**-50.00 ± 2.45 (3)**"
    csv = pd.read_csv(tmp_path / "out" / "final_returns.csv").set_index("variant")
    assert csv["runaway_episodes"].to_dict() == {"alpha=0, ent_coef=0": 0, "alpha=0.5, ent_coef=0": 8}


def test_the_summary_names_members_with_runaway_episodes():
    from rpo_jax.runs import run_outputs

    members = [{"member": 0, "seed": 0}, {"member": 1, "seed": 1}]
    metrics = {"runaway_episodes": np.array([[0, 0, 0], [1, 0, 3]], np.int32)}
    assert run_outputs.runaway_members(members, metrics) == [{"member": 1, "seed": 1, "runaway_episodes": 4}]
    assert run_outputs.runaway_members(members, {}) == []  # a run from before the guard


def test_a_variant_whose_members_all_diverged_keeps_its_column_and_is_never_best(tmp_path):
    alphas = [0.0, 0.1, 0.5, 1000.0]
    members = members_for([({"alpha": a}, -100.0 - a) for a in alphas])
    run = write_run(tmp_path / "r", ENV_A, members, diverged={9: 0, 10: 0, 11: 3})  # all of alpha=1000
    paths = report.make_report([str(run)], str(tmp_path / "out"))
    assert "alpha_ablation_gymnax_Pendulum-v1.png" in {p.name for p in paths}  # 3 healthy alphas remain
    rows = md_table((tmp_path / "out" / "final_returns.md").read_text(), "env")[ENV_A]
    assert rows["alpha=1000"] == "n/a (0; 3 diverged)"
    assert rows["alpha=0"] == "**-100.00 ± 2.45 (3)**"
    csv = pd.read_csv(tmp_path / "out" / "final_returns.csv").set_index("variant")
    assert csv.loc["alpha=1000", "n"] == 0 and csv.loc["alpha=1000", "diverged"] == 3
    assert np.isnan(csv.loc["alpha=1000", "mean"])
    agg = md_table((tmp_path / "out" / "aggregate.md").read_text(), "variant")
    assert agg["alpha=1000"]["runs"] == "0" and agg["alpha=1000"]["IQM"] == "n/a"


def test_every_member_diverged_still_writes_tables(tmp_path):
    run = write_run(tmp_path / "r", ENV_A, members_for([(BASE, -100.0)]), diverged={0: 1, 1: 2, 2: 3})
    paths = report.make_report([str(run)], str(tmp_path / "out"))
    assert {p.name for p in paths} == {"final_returns.md", "final_returns.csv", "aggregate.md"}  # no curves
    assert "3 member(s) diverged" in (tmp_path / "out" / "final_returns.md").read_text()


# ----------------------------------------------------------------------------- incomplete runs


@pytest.mark.parametrize("status", [None, "running", "failed", "interrupted"])
def test_main_refuses_an_incomplete_run_unless_allowed(tmp_path, capsys, status):
    done = write_run(tmp_path / "done", ENV_A, members_for([(BASE, 1.0)]))
    partial = write_run(tmp_path / "partial", ENV_B, members_for([(BASE, 2.0)]), status=status)
    out = tmp_path / "out"
    assert cli.main(["report", str(done), str(partial), "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert str(partial) in err and "--allow-incomplete" in err
    assert not out.exists()  # refused before any work
    assert cli.main(["report", str(done), str(partial), "--out", str(out), "--allow-incomplete"]) == 0
    printed = capsys.readouterr().out
    assert f"note: {partial}" in printed and "wrote" in printed
    table = (out / "final_returns.md").read_text()
    assert f"`{done}` (" not in table  # a complete run carries no status mark
    if status is not None:  # the table says which run was unfinished, and how far it got
        assert f"`{partial}` (**{status if status != 'running' else 'interrupted'}** at iteration" in table


def test_reference_flag_writes_the_comparison_and_a_bad_file_is_one_line(two_env_runs, tmp_path, capsys):
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "env,variant,mean,std,n,baseline_mean,baseline_std,source\n"
        f'{ENV_A},"alpha=0.5, ent_coef=0",300,10,10,100,10,paper A\n'
        f'{ENV_B},"alpha=0.5, ent_coef=0",-90,1,10,-50,1,paper B\n'
    )
    out = tmp_path / "cli"
    assert cli.main(["report", *two_env_runs, "--out", str(out), "--reference", str(ref)]) == 0
    text = (out / "reference.md").read_text()
    assert "| paper A |" in text and "Directions agree on 1 of 2 matched rows." in text
    bad = tmp_path / "bad.csv"
    bad.write_text("env\nx\n")
    assert cli.main(["report", *two_env_runs, "--out", str(tmp_path / "x"), "--reference", str(bad)]) == 2
    assert "lacks column(s)" in _one_error_line(capsys)
    assert not (tmp_path / "x").exists()  # rejected before anything was written
