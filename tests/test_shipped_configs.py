"""Every config under ``configs/`` runs: resolved by ``rpo-jax config show`` and trained, at tiny size,
as a population of at least two members through ``rpo-jax sweep``.

The full form of each config is run -- its own environment (DM Control on MJX, Brax, gymnax), its
algorithm, its static sweep (one compile per static point), its PBT schedule -- with only the sizes
cut down (:func:`tiny_overrides`), so a config that cannot trace, compile or train fails here and
not in a user's hands. One test per file; a new YAML file is picked up by the glob.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from rpo_jax import cli
from rpo_jax.runs import config_io

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml"))
ITERATIONS = 2
NUM_ENVS, NUM_STEPS = 2, 16  # 32 env steps per iteration and member
EPISODE_LENGTH = 8  # short episodes, so each iteration ends some and the returns are numbers


def tiny_overrides(data: dict) -> list[str]:
    """``--set`` flags that shrink the config in ``data`` (its YAML) to :data:`ITERATIONS` small iterations."""
    train = dict(data.get("train") or {})
    sizes = {
        "num_envs": NUM_ENVS,
        "num_steps": NUM_STEPS,
        "num_minibatches": 2,
        "update_epochs": 1,
        "total_timesteps": ITERATIONS * NUM_ENVS * NUM_STEPS,
        "episode_length": EPISODE_LENGTH,
    }
    if train.get("smoothness"):
        sizes["smoothness_steps"] = 2
    if train.get("algorithm") == "ddpg":  # learning starts in the second iteration
        sizes.update(
            buffer_size=256, learning_starts=NUM_ENVS * NUM_STEPS, replay_batch_size=8, updates_per_iteration=2
        )
    flags = [f"train.{k}={v}" for k, v in sizes.items()]
    flags.append("sweep.chunk_iterations=1")
    pbt = (data.get("sweep") or {}).get("pbt")
    if pbt:  # a PBT step after the first iteration
        flags.append("sweep.pbt=" + json.dumps({**pbt, "interval": 1}))
    args = [a for flag in flags for a in ("--set", flag)]
    return args + _first_task(data)


def _first_task(data: dict) -> list[str]:
    """A suite config (``rpo-jax suite``) runs as the sweep of its first task, as ``rpo-jax sweep --env`` does."""
    suite = data.get("suite")
    return ["--env", suite["envs"][0]] if suite else []


def _seeds(path: str, overrides: list[str]) -> int:
    """One seed where the config's sweep already has two or more members per seed, else two."""
    config = cli.resolve_config(cli._build_parser().parse_args(["sweep", path, *overrides]))
    per_seed = len(config.sweep.members(config.hparams)) // len(config.sweep.seeds)
    return 1 if per_seed >= 2 else 2


def test_every_config_is_found():
    assert len(CONFIGS) >= 24 and "configs/paper/dmc_suite.yaml" in CONFIGS


@pytest.mark.parametrize("path", CONFIGS)
def test_config_show_resolves_it(path, capsys):
    text = (REPO / path).read_text()
    task = _first_task(config_io.load_yaml(str(REPO / path)))
    for extra in [[]] + ([["--reduced"]] if "\nreduced:" in text else []):
        assert cli.main(["config", "show", str(REPO / path), *extra, *task]) == 0, extra
        resolved = yaml.safe_load(capsys.readouterr().out)
        assert config_io.config_from_dict(resolved).train.env == resolved["train"]["env"]


class TwoAtATime:
    """Runs the selected configs' sweeps as ``rpo-jax`` processes, two at once.

    A tiny run is almost all XLA compile, which uses one core; on the 2-core CI machine two runs
    side by side take about the time of one. When the test of config ``i`` starts, it makes sure
    its own run and the next selected config's run are going, then waits for its own.
    """

    def __init__(self, paths: list[str], root: pathlib.Path):
        self.paths, self.root = paths, root
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.jobs: dict[str, concurrent.futures.Future] = {}

    def out(self, path: str) -> pathlib.Path:
        return self.root / path.replace("/", "_") / "run"

    def _submit(self, path: str) -> None:
        if path not in self.jobs:
            self.jobs[path] = self.pool.submit(self._run, path)

    def _run(self, path: str) -> subprocess.CompletedProcess:
        overrides = tiny_overrides(config_io.load_yaml(str(REPO / path)))
        seeds = _seeds(str(REPO / path), overrides)
        args = ["sweep", str(REPO / path), *overrides, "--seeds", str(seeds), "--out", str(self.out(path))]
        env = {**os.environ, "RPO_JAX_CPU_DEVICES": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, "-m", "rpo_jax.cli", *args, "--quiet", "--no-tensorboard"]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)

    def result(self, path: str) -> subprocess.CompletedProcess:
        self._submit(path)
        later = self.paths[self.paths.index(path) + 1 :]
        if later:
            self._submit(later[0])
        return self.jobs[path].result()


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    selected = [item.callspec.params["path"] for item in request.session.items if item.originalname == _TRAINS]
    pool = TwoAtATime(selected, tmp_path_factory.mktemp("configs"))
    yield pool
    pool.pool.shutdown(wait=True, cancel_futures=True)


_TRAINS = "test_config_trains_as_a_tiny_population"


@pytest.mark.parametrize("path", CONFIGS)
def test_config_trains_as_a_tiny_population(path, runs):
    done = runs.result(path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = runs.out(path)
    assert json.loads((out / "status.json").read_text())["state"] == "complete"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"] >= 2
    assert summary["diverged"] == []
    table = pd.read_csv(out / "metrics.csv")
    assert table["member"].nunique() == summary["members"]
    assert len(table) == summary["members"] * ITERATIONS
    assert (table["diverged"] == 0).all()
    last = table[table["iteration"] == table["iteration"].max()]
    assert np.isfinite(last["episode_return"]).all(), "every member ended episodes in its last iteration"
    assert np.isfinite(last["value_loss"]).all()
    assert (last["env_steps"] == ITERATIONS * NUM_ENVS * NUM_STEPS).all()


@pytest.mark.parametrize(
    "env, backend", [("dmc/PendulumSwingup", None), ("brax/ant", "mjx")], ids=["dmc-pendulum", "brax-ant-mjx"]
)
def test_an_mjx_population_of_two_trains(env, backend, tmp_path, capsys):
    """MJX states carry zero-size leaves ([n, 0]); a population of two once crashed on them at trace
    (rpo_jax.core.batching). Two seeds of the quickstart on DM Control and on Brax's MJX backend."""
    overrides = tiny_overrides({"train": {}}) + ["--env", env, "--grid", "alpha=0.5", "--seeds", "2"]
    if backend:
        overrides += ["--set", f"train.backend={backend}"]
    out = tmp_path / "run"
    args = ["sweep", str(REPO / "configs" / "quickstart.yaml"), *overrides, "--out", str(out), "--quiet"]
    assert cli.main([*args, "--no-tensorboard"]) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "metrics.csv")
    assert table["member"].nunique() == 2 and len(table) == 2 * ITERATIONS and (table["diverged"] == 0).all()
    last = table[table["iteration"] == ITERATIONS - 1]
    assert np.isfinite(last["episode_return"]).all() and np.isfinite(last["value_loss"]).all()
    resolved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert resolved["env"] == env and resolved["backend"] == backend
