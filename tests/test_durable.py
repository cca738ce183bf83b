"""Fault injection: kill -9, SIGINT, a second writer and a killed --overwrite lose nothing.

Each test runs the real ``rpo-jax`` command in a subprocess, hurts it at a random
chunk (or in the middle of one), resumes it and compares with the same run left
alone: metrics and final parameters must be equal bit for bit.
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pandas as pd
import pytest

from rpo_jax import cli
from rpo_jax.runs import config_io, durable, results, rundir

PENDULUM = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 2
  num_steps: 64
  num_minibatches: 2
  update_epochs: 2
  total_timesteps: {total}
hparams:
  alpha: 0.5
sweep:
  seeds: 2
  grid:
    learning_rate: [3e-4, 1e-3]
  chunk_iterations: {chunk}
"""

# A Brax env with termination (the pole falls): resets inside chunks, env states in the checkpoint.
BRAX = """
train:
  env: brax/inverted_pendulum
  num_envs: 4
  num_steps: 32
  num_minibatches: 2
  update_epochs: 1
  total_timesteps: {total}
sweep:
  seeds: 2
  chunk_iterations: {chunk}
"""


def _config(tmp_path, template, total, chunk, name="c.yaml"):
    path = tmp_path / name
    path.write_text(template.format(total=total, chunk=chunk))
    return str(path)


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.setdefault("RPO_JAX_COMPILATION_CACHE", os.path.expanduser("~/.cache/rpo_jax/xla"))
    return env


def _start(args):
    return subprocess.Popen(
        [sys.executable, "-m", "rpo_jax.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _status(run_dir):
    try:
        return json.loads((pathlib.Path(run_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_for(proc, run_dir, predicate, timeout=300):
    """Polls status.json until ``predicate(status)``; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(run_dir)
        if status and predicate(status):
            return status
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"run ended (rc {proc.returncode}) before the fault could be injected:\n{out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("timed out waiting for the run")


def _assert_same_run(a, b):
    """Metrics tables and final checkpoints of two run directories are equal bit for bit."""
    ta, tb = pd.read_csv(pathlib.Path(a) / "metrics.csv"), pd.read_csv(pathlib.Path(b) / "metrics.csv")
    pd.testing.assert_frame_equal(ta, tb, check_exact=True)
    ca = results.restore_checkpoint(pathlib.Path(a) / "checkpoint")
    cb = results.restore_checkpoint(pathlib.Path(b) / "checkpoint")
    chex.assert_trees_all_equal(ca, cb)
    assert _status(b)["state"] == "complete"


@pytest.fixture(scope="module")
def pendulum_reference(tmp_path_factory):
    """The uninterrupted run: 48 iterations in 6 chunks of 8."""
    tmp = tmp_path_factory.mktemp("reference")
    config = _config(tmp, PENDULUM, total=6144, chunk=8)
    out = tmp / "run"
    assert cli.main(["sweep", config, "--out", str(out), "--quiet"]) == 0
    return config, out


def test_kill9_at_a_chunk_boundary_then_resume_equals_uninterrupted(pendulum_reference, tmp_path):
    config, reference = pendulum_reference
    out = tmp_path / "run"
    at = random.Random(os.getpid()).randrange(8, 48, 8)  # a random chunk boundary, in the message on failure
    proc = _start(
        ["sweep", config, "--out", str(out), "--quiet", "--checkpoint-every", "1", "--checkpoint-minutes", "0"]
    )
    _wait_for(proc, out, lambda s: s.get("checkpoint_iteration", 0) >= at)
    proc.kill()
    proc.wait()
    assert rundir.read_status(out)["state"] == "interrupted", f"killed at {at}"
    assert f"pid {proc.pid}" in rundir.read_status(out)["reason"]  # the dead writer is named
    assert len(pd.read_csv(out / "metrics.csv")) >= 4 * at  # streamed: rows up to the last chunk survive
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    _assert_same_run(reference, out)


def test_kill9_mid_chunk_between_checkpoints_then_resume_equals_uninterrupted(pendulum_reference, tmp_path, capsys):
    config, reference = pendulum_reference
    out = tmp_path / "run"
    proc = _start(
        ["sweep", config, "--out", str(out), "--quiet", "--checkpoint-every", "2", "--checkpoint-minutes", "0"]
    )
    # chunk 3 ends at iteration 24 without a checkpoint (saved: 16); kill while chunk 4 computes
    _wait_for(proc, out, lambda s: s.get("iteration", 0) >= 24)
    time.sleep(0.03)
    proc.kill()
    proc.wait()
    saved = rundir.read_status(out)
    assert saved["iteration"] == 24 and saved["checkpoint_iteration"] == 16, saved
    # a new sweep into it is refused with one line naming the way out
    assert cli.main(["sweep", config, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"rpo-jax resume {out}" in err and f"pid {proc.pid}" in err
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    _assert_same_run(reference, out)


def test_sigint_exits_130_with_one_line_and_resumes_exactly(pendulum_reference, tmp_path):
    config, reference = pendulum_reference
    out = tmp_path / "run"
    proc = _start(["sweep", config, "--out", str(out), "--quiet"])
    _wait_for(proc, out, lambda s: s.get("iteration", 0) >= 8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("rpo-jax: interrupted by SIGINT") and f"rpo-jax resume {out}" in lines[0]
    status = rundir.read_status(out)
    assert status["state"] == "interrupted" and status["checkpoint_iteration"] == status["iteration"]
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    _assert_same_run(reference, out)


def test_sigterm_exits_143(pendulum_reference, tmp_path):
    config, _ = pendulum_reference
    out = tmp_path / "run"
    proc = _start(["sweep", config, "--out", str(out), "--quiet"])
    _wait_for(proc, out, lambda s: s.get("iteration", 0) >= 8)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and len(err.strip().splitlines()) == 1, err
    assert rundir.read_status(out)["reason"].startswith("SIGTERM")


def test_a_second_writer_is_refused_and_the_first_finishes(pendulum_reference, tmp_path, capsys):
    config, reference = pendulum_reference
    out = tmp_path / "run"
    proc = _start(["sweep", config, "--out", str(out), "--quiet"])
    _wait_for(proc, out, lambda s: s.get("iteration", 0) >= 8)
    for args in (["sweep", config, "--out", str(out), "--overwrite"], ["resume", str(out)]):
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "being written by another rpo-jax process" in err, err
        assert f"pid {proc.pid}" in err
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _assert_same_run(reference, out)


def _snapshot(run_dir):
    """Every file of a run directory (but its lock) and its bytes."""
    root = pathlib.Path(run_dir)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != rundir.LOCK_FILE
    }


def test_an_overwrite_killed_midway_leaves_the_old_results_byte_identical(pendulum_reference, tmp_path):
    config, reference = pendulum_reference
    out = tmp_path / "run"
    assert cli.main(["sweep", config, "--out", str(out), "--quiet", "--total-timesteps", "2048"]) == 0
    (out / "report").mkdir()  # a derived folder of the old results
    (out / "report" / "table.md").write_text("old\n")
    before = _snapshot(out)
    proc = _start(["sweep", config, "--out", str(out), "--overwrite", "--quiet"])
    _wait_for(proc, rundir.staging_dir(out), lambda s: s.get("iteration", 0) >= 8)
    proc.kill()
    proc.wait()
    assert _snapshot(out) == before
    # resuming finishes the staged overwrite and swaps it in; the old derived folder is gone
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    assert not rundir.staging_dir(out).exists() and not (out / "report").exists()
    _assert_same_run(reference, out)


def test_resume_refuses_a_complete_run_and_a_stranger(pendulum_reference, tmp_path, capsys):
    _, reference = pendulum_reference
    assert cli.main(["resume", str(reference)]) == 2
    assert "holds a complete run; nothing to resume" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    assert cli.main(["resume", str(tmp_path / "x")]) == 2
    assert "not a run directory of rpo-jax" in capsys.readouterr().err
    assert cli.main(["resume", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_kill9_then_resume_equals_uninterrupted_on_brax(tmp_path):
    config = _config(tmp_path, BRAX, total=3840, chunk=3)  # 30 iterations
    reference = tmp_path / "reference"
    assert cli.main(["sweep", config, "--out", str(reference), "--quiet"]) == 0
    out = tmp_path / "run"
    at = random.Random(os.getpid()).randrange(3, 24, 3)
    proc = _start(
        ["sweep", config, "--out", str(out), "--quiet", "--checkpoint-every", "2", "--checkpoint-minutes", "0"]
    )
    _wait_for(proc, out, lambda s: s.get("iteration", 0) >= at)
    proc.kill()
    proc.wait()
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    _assert_same_run(reference, out)
    episodes = pd.read_csv(out / "metrics.csv")["episodes"]
    assert episodes.sum() > 0  # the pole fell: terminations and resets happened inside chunks


def test_metrics_are_streamed_atomically(tmp_path):
    """A reader polling metrics.csv while a run writes it never sees a torn table."""
    config = _config(tmp_path, PENDULUM, total=6144, chunk=1)
    out = tmp_path / "run"
    proc = _start(["sweep", config, "--out", str(out), "--quiet"])
    sizes = set()
    while proc.poll() is None:
        try:
            table = pd.read_csv(out / "metrics.csv")
        except FileNotFoundError:
            continue
        assert len(table) % 4 == 0 and not table["iteration"].isna().any()
        sizes.add(len(table))
        np.testing.assert_array_equal(table.groupby("member").size().to_numpy(), len(table) // 4)
    assert proc.returncode == 0, proc.communicate()[1]
    assert len(sizes) > 3  # it grew while running


class _StopAt:
    """Stands in for StopSignals: 'receives' SIGINT once a static point reaches an iteration."""

    def __init__(self, point, iteration):
        self.signum, self.target = None, (point, iteration)

    def __call__(self, progress):
        if (progress.point, progress.iteration) >= self.target:
            self.signum = signal.SIGINT


@pytest.mark.parametrize("point", [0, 1])
def test_a_static_sweep_stopped_in_either_point_resumes_exactly(tmp_path, point):
    from rpo_jax.runs import durable

    path = tmp_path / "c.yaml"
    path.write_text(PENDULUM.format(total=2048, chunk=4) + "  static:\n    action_dist: [gaussian, laplace]\n")
    config = config_io.config_from_dict(config_io.load_yaml(str(path)))
    reference = durable.run_durable(config, tmp_path / "reference")
    stop = _StopAt(point, 8)
    with pytest.raises(durable.Stopped) as stopped:
        durable.run_durable(config, tmp_path / "run", stop=stop, on_progress=stop)
    # the 'signal' came during the chunk that ended at 8; the next chunk ends the run and is saved
    assert (stopped.value.progress.point, stopped.value.progress.iteration) == (point, 12)
    assert stopped.value.progress.checkpoint_iteration == 12
    resumed = durable.run_durable(config, tmp_path / "run")
    assert [m["member"] for m in resumed.members] == list(range(8))
    chex.assert_trees_all_equal(resumed.metrics, reference.metrics)
    chex.assert_trees_all_equal(resumed.state, reference.state)
    if point == 1:  # the finished first point was loaded, not trained again
        assert resumed.compile_seconds < reference.compile_seconds


def test_resume_on_fewer_devices_than_the_run_used_is_one_line(pendulum_reference, tmp_path, capsys):
    import shutil

    _, reference = pendulum_reference
    out = tmp_path / "run"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns(rundir.LOCK_FILE))
    rundir.write_status(out, "interrupted", devices=99, reason="test")
    assert cli.main(["resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ran on 99 devices" in err and "--devices" in err, err


def test_checkpoints_keep_zero_size_arrays(tmp_path):
    """MJX states hold zero-size arrays (e.g. ``data.act`` of a model without actuator state), which
    orbax refuses to save; a resume checkpoint must round-trip them (dmc/ runs with --out)."""
    qpos = np.arange(6, dtype=np.float32).reshape(2, 3)
    state = {"qpos": qpos, "act": np.zeros((2, 0), np.float32), "n": np.int32(3)}
    manager = durable.checkpoint_manager(tmp_path, point=0)
    durable._save(manager, 4, state, {"episode_return": np.ones((2, 4), np.float32)})
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), state)
    resume = durable._restore(manager, target)
    assert resume.iteration == 4 and resume.state["act"].shape == (2, 0)
    np.testing.assert_array_equal(resume.state["qpos"], state["qpos"])
    assert int(resume.state["n"]) == 3 and resume.metrics["episode_return"].shape == (2, 4)


# DDPG: the replay buffer, target networks and both optimisers are in the resume checkpoint.
DDPG = """
train:
  env: gymnax/Pendulum-v1
  algorithm: ddpg
  num_envs: 2
  num_steps: 32
  total_timesteps: {total}
  normalize_rewards: false
  buffer_size: 500
  learning_starts: 128
  replay_batch_size: 16
  updates_per_iteration: 4
  smoothness: true
hparams:
  lambda_s: 1.0
sweep:
  seeds: 2
  chunk_iterations: {chunk}
"""


def test_kill9_then_resume_equals_uninterrupted_ddpg(tmp_path):
    config = _config(tmp_path, DDPG, total=64 * 24, chunk=2)  # 24 iterations; the buffer wraps at ~8
    reference = tmp_path / "reference"
    assert cli.main(["sweep", config, "--out", str(reference), "--quiet"]) == 0
    out = tmp_path / "run"
    at = random.Random(os.getpid()).randrange(4, 20, 2)
    proc = _start(
        ["sweep", config, "--out", str(out), "--quiet", "--checkpoint-every", "1", "--checkpoint-minutes", "0"]
    )
    _wait_for(proc, out, lambda s: s.get("checkpoint_iteration", 0) >= at)
    proc.kill()
    proc.wait()
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    _assert_same_run(reference, out)
