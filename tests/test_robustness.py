"""rpo-jax robustness: perturbed evaluation of a real (tiny) trained sweep.

One short PPO/RPO training on gymnax Pendulum-v1 (2 seeds x alpha in {0, 0.5}, 8 envs x 256
steps x 60 iterations) runs once per module; the tests then check the evaluation itself: the
attacked observations stay in the eps-ball, eps = 0 is bit-identical to an unperturbed
evaluation for every attack, the max-action-difference (mad) attack hurts a trained PPO agent
at least as much as random noise, the CLI writes every output and rejects bad input before
compiling.
"""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pandas as pd
import pytest

from rpo_jax import cli
from rpo_jax.analysis import evaluation as evaluation_module
from rpo_jax.analysis import robustness
from rpo_jax.core import normalization
from rpo_jax.runs import rundir
from rpo_jax.training import train

TINY_YAML = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 8
  num_steps: 256
  num_minibatches: 8
  update_epochs: 10
  total_timesteps: 122880   # 60 iterations
hparams:
  learning_rate: 1.0e-3
sweep:
  seeds: 2
  grid:
    alpha: [0.0, 0.5]
"""

EPS = [0.0, 0.05, 0.2, 0.5]  # normalised-observation units
ATTACKS = ("random", "mad", "critic", "fgsm")
EPISODES = 16
# A uniformly random policy scores about -1200 on Pendulum-v1 (episode of 200 steps).
RANDOM_POLICY_RETURN = -1200.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    config = root / "tiny.yaml"
    config.write_text(TINY_YAML)
    out = root / "run"
    assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    assert rundir.read_status(out)["state"] == "complete"
    return out


@pytest.fixture(scope="module")
def run(run_dir):
    return robustness.load_run(run_dir)


@pytest.fixture(scope="module")
def evaluation(run):
    return robustness.evaluate(run, eps=EPS, attacks=ATTACKS, episodes=EPISODES, seed=0)


def _ppo(result):
    return np.asarray([m["alpha"] == 0.0 for m in result.members])


def test_member_table_and_shapes(run, evaluation):
    assert [m["member"] for m in run.members] == [0, 1, 2, 3]
    assert run.variant_cols == ["alpha"]
    assert evaluation.returns.shape == (4, len(EPS), len(ATTACKS), EPISODES)
    assert evaluation.smoothness.shape == evaluation.returns.shape
    assert evaluation.excess.shape == (4, len(EPS), len(ATTACKS))
    assert np.all(np.isfinite(evaluation.returns)) and np.all(np.isfinite(evaluation.smoothness))


def test_trained_policy_is_much_better_than_random(evaluation):
    clean = evaluation.returns[:, 0, 0, :].mean(axis=-1)  # eps = 0
    assert np.all(clean > -400.0), clean
    assert np.all(clean > RANDOM_POLICY_RETURN / 2), clean


def test_attacked_observations_stay_within_eps(evaluation):
    tol = evaluation.tolerance
    assert np.all(tol < 1e-4)  # a float32 rounding allowance, not a loose bound
    assert np.all(evaluation.excess <= tol), evaluation.excess
    assert np.all(evaluation.excess[:, 0] == 0.0)  # eps = 0: no perturbation at all
    # ... and the attacks use their budget: some coordinate reaches the boundary of the ball.
    eps = np.asarray(EPS)[None, 1:, None]
    assert np.all(evaluation.excess[:, 1:] >= -0.01 * eps), evaluation.excess
    robustness.check_ball(evaluation)  # passes
    broken = dataclasses.replace(evaluation, excess=evaluation.excess.copy())
    broken.excess[1, 2, 1] = 1e-3  # a lane 1e-3 outside the ball must be caught
    with pytest.raises(robustness.RobustnessError, match="sanity check failed: attack mad at eps=0.2"):
        robustness.check_ball(broken)


def test_eps_zero_is_bitwise_the_unattacked_evaluation(run, evaluation):
    reference = robustness.evaluate(run, eps=[0.0], attacks=("none",), episodes=EPISODES, seed=0)
    for a, attack in enumerate(ATTACKS):
        assert np.array_equal(evaluation.returns[:, 0, a], reference.returns[:, 0, 0]), attack
        assert np.array_equal(evaluation.smoothness[:, 0, a], reference.smoothness[:, 0, 0]), attack
    # A positive eps does change the outcome (the comparison above is not vacuous).
    assert not np.array_equal(evaluation.returns[:, 1, 1], reference.returns[:, 0, 0])


def test_mad_hurts_ppo_at_least_as_much_as_random(evaluation):
    # eps = 0.2 in normalised units: random noise costs the tiny PPO agents almost nothing
    # (about 0-30 return) while the mad attack costs them hundreds.
    e = EPS.index(0.2)
    ppo = _ppo(evaluation)
    mean = evaluation.returns.mean(axis=-1)  # [P, E, A]
    clean, rand, mad = mean[ppo, 0, 0], mean[ppo, e, 0], mean[ppo, e, 1]
    assert np.all(mad <= rand), (mad, rand)
    assert np.all(mad < clean - 100.0), (mad, clean)
    # Perturbations make the actions less smooth (CAPS Sm grows from eps = 0).
    smooth = evaluation.smoothness.mean(axis=-1)
    assert np.all(smooth[:, e] > smooth[:, :1]), smooth


def test_raw_space_uses_the_fixed_mean_std(run, evaluation):
    std = np.asarray(jax.vmap(lambda n: normalization.evaluation_stats(n).std)(run.checkpoint["normalizer"]))
    scale = robustness.raw_scale(run)
    np.testing.assert_allclose(scale, std.mean(axis=0), rtol=1e-6)
    raw = robustness.evaluate(run, eps=[0.0, 0.2], attacks=("mad",), episodes=EPISODES, space="raw", seed=0)
    np.testing.assert_array_equal(raw.scale, scale)
    assert np.all(raw.excess <= raw.tolerance)
    assert np.all(raw.excess[:, 1] >= -0.01 * 0.2)
    # Without perturbation both spaces feed the agent the same normalised observation.
    assert np.array_equal(raw.returns[:, 0, 0], evaluation.returns[:, 0, 1])
    assert not np.array_equal(raw.returns[:, 1, 0], raw.returns[:, 0, 0])


def test_action_smoothness_formula():
    T = 200
    t = np.arange(T)
    constant = np.full((T, 2), 0.7, np.float32)
    assert float(robustness.action_smoothness(constant)) == pytest.approx(0.0, abs=1e-6)
    amplitude, k = 1.5, 10  # a sinusoid in bin k: |X_k| = A T / 2, so M_k = A / 2 at f_k = k / T
    wave = (amplitude * np.sin(2 * np.pi * k * t / T)).astype(np.float32)[:, None]
    expected = 2.0 / (T // 2 + 1) * (amplitude / 2) * (k / T)
    assert float(robustness.action_smoothness(wave)) == pytest.approx(expected, rel=1e-4)
    fast = (amplitude * np.sin(2 * np.pi * 4 * k * t / T)).astype(np.float32)[:, None]
    assert float(robustness.action_smoothness(fast)) == pytest.approx(4 * expected, rel=1e-4)
    # Two dimensions average; a leading batch axis is kept.
    both = np.stack([np.concatenate([wave, fast], axis=1)] * 3)
    np.testing.assert_allclose(robustness.action_smoothness(both), [2.5 * expected] * 3, rtol=1e-4)
    # After an early end the last action of the episode is held.
    actions = np.arange(6, dtype=np.float32).reshape(3, 2, 1)  # [T=3, N=2, A=1]
    valid = np.array([[True, True], [True, False], [False, False]])
    held = np.asarray(evaluation_module._held_actions(actions, valid))[..., 0]
    np.testing.assert_array_equal(held, [[0, 1], [2, 1], [2, 1]])


def test_cli_writes_every_output(run_dir, evaluation, tmp_path, capsys):
    out = tmp_path / "rob"
    argv = [
        str(run_dir),
        "--eps",
        "0.05,0.2,0.5",
        "--attacks",
        ",".join(ATTACKS),
        "--episodes",
        str(EPISODES),
        "--out",
        str(out),
    ]
    assert cli.main(["robustness", *argv]) == 0
    for name in ("robustness.csv", "robustness_curves.png", "percentiles.png", "smoothness.md", "robustness.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("robustness_curves.png", "percentiles.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "robustness.csv")
    assert list(table.columns) == [
        "member",
        "seed",
        "alpha",
        "attack",
        "eps",
        "return_mean",
        "return_std",
        "action_smoothness",
        "ball_excess",
        "diverged",
    ]
    assert not table["diverged"].any()
    assert len(table) == 4 * len(ATTACKS) * len(EPS)  # eps = 0 was added to the list
    assert sorted(table["eps"].unique()) == EPS
    assert set(table["attack"]) == set(ATTACKS)
    # The CLI computes exactly what the API computed (same seed, same keys).
    for (p, e, a), value in np.ndenumerate(evaluation.returns.mean(axis=-1, dtype=np.float64)):
        row = table[(table["member"] == p) & (table["eps"] == EPS[e]) & (table["attack"] == ATTACKS[a])]
        assert row["return_mean"].item() == pytest.approx(value, rel=1e-12)
    md = (out / "smoothness.md").read_text()
    assert "| alpha=0 | mad |" in md and "| alpha=0.5 | critic |" in md
    capsys.readouterr()
    # The directory is now non-empty: refused without --overwrite, before any work.
    assert cli.main(["robustness", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpo-jax: error: output directory") and err.count("\n") == 1


@pytest.fixture
def no_compile(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("bad input reached trainer construction")

    monkeypatch.setattr(train, "make_trainer", boom)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--eps", "0,abc"], "--eps must be a comma-separated list of numbers"),
        (["--eps", "0.1,-0.2"], "--eps values must be >= 0"),
        (["--eps", "0.1,,0.2"], "--eps must be a comma-separated list"),
        (["--eps", "nan"], "--eps values must be finite"),
        (["--attacks", "random,bogus"], "unknown attack 'bogus'"),
        (["--episodes", "0"], "--episodes must be a positive integer"),
        (["--space", "latent"], "invalid choice: 'latent'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run_dir, tmp_path, capsys, no_compile, args, message):
    code = cli.main(["robustness", str(run_dir), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rpo-jax: error: ") and err.count("\n") == 1 and message in err, err


def test_bad_run_dirs_exit_2_with_one_line(run_dir, tmp_path, capsys, no_compile):
    missing = tmp_path / "nope"
    assert cli.main(["robustness", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    (no_ckpt / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    assert cli.main(["robustness", str(no_ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpo-jax: error: no checkpoint/") and err.count("\n") == 1
    assert not os.path.exists(no_ckpt / "robustness")


def test_a_checkpoint_without_its_data_folder_is_one_line(run_dir, tmp_path, capsys):
    damaged = tmp_path / "damaged"  # a checkpoint without its data folder: one line, no asyncio tracebacks
    shutil.copytree(run_dir, damaged, ignore=shutil.ignore_patterns("robustness"))
    shutil.rmtree(damaged / "checkpoint" / "d")
    assert cli.main(["robustness", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data folder d/ is missing" in err and "Traceback" not in err, err
    assert not os.path.exists(damaged / "robustness")


# ----------------------------------------------------------------------------- diverged members


def test_diverged_at_comes_from_the_checkpoint_when_present():
    np.testing.assert_array_equal(robustness.diverged_at({"params": {}}, 3), [-1, -1, -1])  # older checkpoints
    np.testing.assert_array_equal(robustness.diverged_at({"diverged_at": np.array([-1, 4, -1])}, 3), [-1, 4, -1])


def test_load_run_reads_diverged_at_and_tolerates_checkpoints_without_it(run_dir, run, tmp_path):
    """population.checkpoint_tree saves ``diverged_at``; a checkpoint written before it did still loads."""
    from rpo_jax.runs import results

    assert "diverged_at" in run.checkpoint
    for name, diverged in (("new", np.array([-1, 7, -1, -1], np.int32)), ("old", None)):
        copy = tmp_path / name
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("robustness", "checkpoint"))
        tree = {k: v for k, v in run.checkpoint.items() if k != "diverged_at"}
        results.save_checkpoint(copy / "checkpoint", tree if diverged is None else {**tree, "diverged_at": diverged})
        loaded = robustness.load_run(copy)
        expected = [-1, -1, -1, -1] if diverged is None else diverged
        np.testing.assert_array_equal(robustness.diverged_at(loaded.checkpoint, 4), expected)
        assert ("diverged_at" in loaded.checkpoint) == (diverged is not None)


def test_a_diverged_member_is_named_nan_in_the_csv_and_left_out_of_means(run, tmp_path):
    """Member 3 (alpha = 0.5, seed 1) given NaN parameters and diverged_at = 5, as the trainer leaves it."""

    def nan_member_3(x):
        x = np.array(x, copy=True)
        x[3] = np.nan
        return x

    checkpoint = {
        **run.checkpoint,
        "params": jax.tree.map(nan_member_3, run.checkpoint["params"]),
        "diverged_at": np.array([-1, -1, -1, 5], np.int32),
    }
    broken = dataclasses.replace(run, checkpoint=checkpoint)
    std = np.asarray(jax.vmap(lambda n: normalization.evaluation_stats(n).std)(run.checkpoint["normalizer"]))
    np.testing.assert_allclose(robustness.raw_scale(broken), std[:3].mean(axis=0), rtol=1e-6)
    # The ball check (on by default) skips the diverged member, whose NaN attacks leave every ball.
    result = robustness.evaluate(broken, eps=[0.0, 0.2], attacks=("random", "mad"), episodes=4, seed=0)
    np.testing.assert_array_equal(result.diverged, [False, False, False, True])
    assert np.all(np.isnan(result.excess[3, 1:, 1]))
    assert np.all(np.isfinite(result.returns[:3]))
    assert robustness.diverged_line(result) == (
        "diverged in training (left out of means, NaN in robustness.csv): member 3 (seed 1, alpha=0.5) at iteration 5"
    )
    out = tmp_path / "rob"
    out.mkdir()
    robustness.write_outputs(out, result)
    table = pd.read_csv(out / "robustness.csv")
    bad = table[table["member"] == 3]
    assert bad["diverged"].all() and not table[table["member"] != 3]["diverged"].any()
    assert bad["return_mean"].isna().all() and bad["action_smoothness"].isna().all()  # never a zero
    good = table[table["member"] == 2]
    np.testing.assert_allclose(good["return_mean"], result.returns[2].mean(axis=-1).T.ravel(), rtol=1e-6)
    md = (out / "smoothness.md").read_text()
    assert "member 3 (seed 1, alpha=0.5) at iteration 5" in md
    assert "(n=1)" in md.split("| alpha=0.5 | mad |")[1].splitlines()[0]  # only member 2 in the alpha=0.5 means
    assert "(n=2)" in md.split("| alpha=0 | mad |")[1].splitlines()[0]
    summary = json.loads((out / "robustness.json").read_text())
    assert summary["diverged_members"] == [3] and np.isfinite(summary["max_ball_excess"])


# ----------------------------------------------------------------------------- incomplete runs


@pytest.mark.parametrize("status", [None, "failed", "interrupted"])
def test_an_incomplete_run_is_refused_unless_allowed(run_dir, tmp_path, capsys, no_compile, status):
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial, ignore=shutil.ignore_patterns("robustness", rundir.STATUS_FILE))
    if status is not None:
        rundir.write_status(partial, status, iteration=20, num_iterations=60)
    assert cli.main(["robustness", str(partial), "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpo-jax: error: ") and err.count("\n") == 1
    assert str(partial) in err and "--allow-incomplete" in err
    assert not (partial / "robustness").exists()
    # With the flag it goes on to the work (here: the trainer construction that no_compile forbids).
    with pytest.raises(AssertionError, match="bad input reached trainer construction"):
        cli.main(["robustness", str(partial), "--episodes", "2", "--allow-incomplete"])
