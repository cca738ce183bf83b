"""``rpo-jax suite``: a config's task list trained task by task into run directories, continued, reported."""

import json

import numpy as np
import pandas as pd
import pytest

from rpo_jax import cli
from rpo_jax.analysis import aggregate
from rpo_jax.config import ConfigError
from rpo_jax.runs import config_io, rundir, suite

SUITE = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 2
  num_steps: 64
  num_minibatches: 2
  update_epochs: 1
  total_timesteps: 1280
sweep:
  seeds: 2
  variants: [{alpha: 0.0}, {alpha: 0.5}]
suite:
  envs: [gymnax/Pendulum-v1, gymnax/MountainCarContinuous-v0, brax/reacher]
reduced:
  suite.envs: [gymnax/Pendulum-v1, gymnax/MountainCarContinuous-v0]
  train.total_timesteps: 1536
"""
REFERENCE = """env,variant,mean,std,n,baseline_mean,baseline_std,source
gymnax/Pendulum-v1,alpha=0.5,-900,50,10,-1000,60,made up for the test
gymnax/Acrobot-v1,alpha=0.5,-90,5,10,-100,6,a task not run
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    config = tmp / "suite.yaml"
    config.write_text(SUITE)
    out = tmp / "out"
    code = cli.main(["suite", str(config), "--reduced", "--out", str(out), "--quiet", "--no-tensorboard"])
    return config, out, code


def test_every_task_is_an_ordinary_complete_run_directory(finished):
    config, out, code = finished
    assert code == 0
    assert [p.name for p in suite.task_dirs(out)] == ["Pendulum-v1", "MountainCarContinuous-v0"]
    for task, env in (
        ("Pendulum-v1", "gymnax/Pendulum-v1"),
        ("MountainCarContinuous-v0", "gymnax/MountainCarContinuous-v0"),
    ):
        status = json.loads((out / task / "status.json").read_text())
        assert status["state"] == "complete" and status["num_iterations"] == 12
        # the exact sweep command that trains this task alone
        assert status["command"] == f"rpo-jax sweep {config} --reduced --env {env} --out {out / task}"
        metrics = pd.read_csv(out / task / "metrics.csv")
        assert sorted(metrics["member"].unique()) == [0, 1, 2, 3] and metrics["iteration"].max() == 11


def test_rerunning_skips_finished_tasks_and_refuses_another_config(finished, capsys):
    config, out, _ = finished
    before = (out / "Pendulum-v1" / "metrics.csv").read_bytes()
    assert cli.main(["suite", str(config), "--reduced", "--out", str(out), "--quiet"]) == 0
    assert "Pendulum-v1 is complete; skipped" in capsys.readouterr().out
    assert (out / "Pendulum-v1" / "metrics.csv").read_bytes() == before
    assert cli.main(["suite", str(config), "--reduced", "--out", str(out), "--set", "hparams.gamma=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a run of another config than this suite's" in err
    assert (out / "Pendulum-v1" / "metrics.csv").read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "{config}"], "is a suite of 3 tasks: train them with `rpo-jax suite"),
        (["suite", "{config}", "--out", "{out}", "--tasks", "Hopper"], "--tasks Hopper: not in the suite"),
        (["suite", "{config}", "--out", "{out}", "--env", "gymnax/Pendulum-v1"], "--env: a suite trains the tasks"),
        (["suite", "{config}"], "rpo-jax suite needs --out DIR"),
        (["suite", "{config}", "--out", "{out}", "--reduced", "--overwrite"], "--overwrite: a suite never replaces"),
    ],
)
def test_bad_suite_input_is_one_line_before_any_compile(tmp_path, capsys, argv, message):
    config = tmp_path / "suite.yaml"
    config.write_text(SUITE)
    argv = [a.format(config=config, out=tmp_path / "out") for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_suite_section_is_checked():
    with pytest.raises(ConfigError, match="suite.envs lists an env twice"):
        config_io.suite_tasks({"suite": {"envs": ["a/b", "a/b"]}}, None)
    with pytest.raises(ConfigError, match="must be a mapping with one key, envs"):
        config_io.suite_tasks({"suite": {"envs": ["a/b"], "more": 1}}, None)
    with pytest.raises(ConfigError, match="sets suite.envs but the config has no 'suite' section"):
        config_io.suite_tasks({}, {"suite.envs": ["a/b"]})
    assert config_io.suite_tasks({"suite": {"envs": ["a/b"]}}, {"suite.envs": ["c/d"], "train.x": 1}) == ["c/d"]


def test_an_interrupted_task_is_resumed(finished, tmp_path):
    _, out, _ = finished
    status = rundir.read_status(out / "Pendulum-v1")
    assert status["state"] == "complete"
    from rpo_jax.runs import config_io

    config = config_io.config_from_dict(config_io.load_yaml(str(out / "Pendulum-v1" / "config.yaml")))
    assert suite._action(out / "Pendulum-v1", config) == "skip"
    assert suite._action(tmp_path / "nothing", config) == "start"
    rundir.write_status(out / "MountainCarContinuous-v0", "interrupted", reason="SIGINT: test")
    other = config_io.config_from_dict(config_io.load_yaml(str(out / "MountainCarContinuous-v0" / "config.yaml")))
    try:
        assert suite._action(out / "MountainCarContinuous-v0", other) == "resume"
    finally:
        rundir.write_status(out / "MountainCarContinuous-v0", "complete")


def test_report_of_a_suite_has_every_task_and_effects_with_cis(finished, tmp_path):
    _, out, _ = finished
    ref = tmp_path / "ref.csv"
    ref.write_text(REFERENCE)
    assert cli.main(["report", str(out), "--reference", str(ref), "--fraction", "0.5"]) == 0
    report = out / "report"
    table = pd.read_csv(report / "final_returns.csv")
    assert set(table["env"]) == {"gymnax/Pendulum-v1", "gymnax/MountainCarContinuous-v0"}
    rpo = table[(table["env"] == "gymnax/Pendulum-v1") & (table["variant"] == "alpha=0.5")].iloc[0]
    assert rpo["n"] == 2 and rpo["effect_low"] <= rpo["effect"] <= rpo["effect_high"]
    text = (report / "reference.md").read_text()
    assert "| gymnax/Pendulum-v1 | alpha=0.5 |" in text and "[" in text.split("gymnax/Pendulum-v1 | alpha=0.5")[1]
    assert "gymnax/Acrobot-v1 alpha=0.5" in text  # listed as not run
    assert "Tasks (2)" in (report / "aggregate.md").read_text()


def test_mean_difference_ci():
    assert aggregate.mean_difference_ci(np.ones(3), np.zeros(4)) == (1.0, 1.0, 1.0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)
    point, low, high = aggregate.mean_difference_ci(x, y, seed=1)
    assert low < point < high and low > 0.6 and high < 1.4 and high - low == pytest.approx(0.39, abs=0.08)
    assert aggregate.mean_difference_ci(x, y, seed=1) == (point, low, high)
