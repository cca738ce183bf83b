"""Evaluation during training, ``rpo_jax.load_policy`` and ``rpo-jax evaluate``, on a real tiny run.

One PPO/RPO training on gymnax Pendulum-v1 (2 seeds, 8 envs x 256 steps x 60 iterations, an
evaluation of 16 episodes after every 2nd chunk of 10 iterations) runs once per module.
"""

import dataclasses
import math

import jax
import numpy as np
import pandas as pd
import pytest

import rpo_jax
from rpo_jax import cli
from rpo_jax.analysis import evaluate
from rpo_jax.config import TrainConfig
from rpo_jax.envs import episodes
from rpo_jax.runs import finished, policy
from rpo_jax.training import train

TINY_YAML = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 8
  num_steps: 256
  num_minibatches: 8
  update_epochs: 10
  total_timesteps: 122880   # 60 iterations
  eval_every: 2
  eval_episodes: 16
hparams:
  learning_rate: 1.0e-3
sweep:
  seeds: 2
  chunk_iterations: 10
"""
# A uniformly random policy scores about -1200 on Pendulum-v1 (episodes of 200 steps).
RANDOM_POLICY_RETURN = -1200.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    (root / "tiny.yaml").write_text(TINY_YAML)
    out = root / "run"
    assert cli.main(["sweep", str(root / "tiny.yaml"), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def metrics(run_dir):
    return pd.read_csv(run_dir / "metrics.csv")


def test_eval_return_is_written_after_every_second_chunk_and_the_last(metrics):
    for _, rows in metrics.groupby("member"):
        evaluated = rows[rows["eval_return"].notna()]
        assert list(evaluated["iteration"]) == [19, 39, 59]
        assert (evaluated["eval_length"] == 200).all()  # Pendulum never terminates
        assert evaluated["eval_return"].iloc[-1] > RANDOM_POLICY_RETURN / 2  # it learned


def _tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(env="gymnax/Pendulum-v1", num_envs=4, num_steps=64, num_minibatches=4, update_epochs=2)
    return dataclasses.replace(base, total_timesteps=3 * 4 * 64, **changes)


def test_evaluation_does_not_change_training_bit_for_bit():
    hparams = train.as_hparams()
    key = jax.random.PRNGKey(3)
    plain = jax.jit(train.make_trainer(_tiny_config()).train)(key, hparams)
    with_eval = jax.jit(train.make_trainer(_tiny_config(eval_every=1, eval_episodes=4)).train)(key, hparams)
    for a, b in zip(jax.tree.leaves(plain[0]), jax.tree.leaves(with_eval[0])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name, value in plain[1].items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(with_eval[1][name]), err_msg=name)
    assert set(with_eval[1]) - set(plain[1]) == {"eval_return", "eval_length"}
    evaluated = np.asarray(with_eval[1]["eval_return"])
    assert np.isnan(evaluated[:-1]).all() and np.isfinite(evaluated[-1])  # train() evaluates at its end


def test_load_policy_reproduces_the_training_evaluation(run_dir, metrics):
    last = metrics[metrics["iteration"] == 59].set_index("member")
    for member in (0, 1):
        act = rpo_jax.load_policy(run_dir, member=member)
        assert act.member["member"] == member and act.deterministic
        result = jax.jit(lambda k, act=act: episodes.run_episodes(act.env, act, k, 128))(jax.random.PRNGKey(11))
        returns = np.asarray(result.returns)
        trained = last.loc[member, "eval_return"]  # mean of 16 other episodes of the same policy
        tolerance = 4 * returns.std() * math.sqrt(1 / 16 + 1 / 128) + 1.0
        assert abs(returns.mean() - trained) < tolerance, (member, returns.mean(), trained, tolerance)


def test_policy_is_pure_and_deterministic_unless_asked(run_dir):
    deterministic = rpo_jax.load_policy(run_dir, member=1)
    stochastic = rpo_jax.load_policy(run_dir, member=1, deterministic=False)
    obs = jax.numpy.asarray([[0.5, -0.3, 1.0], [-1.0, 0.0, -2.0]], jax.numpy.float32)
    k1, k2 = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
    a = jax.jit(deterministic)(obs, k1)
    assert a.shape == (2, 1) and np.all(np.abs(np.asarray(a)) <= 2.0)  # clipped to Pendulum's bounds
    np.testing.assert_array_equal(np.asarray(a), np.asarray(jax.jit(deterministic)(obs, k2)))  # the key is unused
    # eager and jitted: the same function, up to XLA's fusion-dependent rounding (FMA contraction)
    np.testing.assert_allclose(np.asarray(a), np.asarray(deterministic(obs, k2)), rtol=1e-6, atol=1e-6)
    assert not np.array_equal(np.asarray(stochastic(obs, k1)), np.asarray(stochastic(obs, k2)))


def test_load_policy_rejects_a_bad_member_in_one_line(run_dir, tmp_path):
    for member in (2, -1, "0"):
        with pytest.raises(finished.RunError, match="member must be an integer in 0..1") as info:
            rpo_jax.load_policy(run_dir, member=member)
        assert "\n" not in str(info.value)
    with pytest.raises(finished.RunError, match="does not exist"):
        rpo_jax.load_policy(tmp_path / "nowhere")


def test_evaluate_command_writes_the_member_table(run_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(run_dir), "--episodes", "32", "--out", str(out)]) == 0
    table = pd.read_csv(out / "evaluation.csv")
    assert list(table["member"]) == [0, 1] and (table["episodes"] == 32).all()
    for col in evaluate.COLUMNS:
        assert table[col].notna().all(), col
    assert (table["return_min"] <= table["return_mean"]).all() and (table["return_mean"] <= table["return_max"]).all()
    assert (table["return_mean"] > RANDOM_POLICY_RETURN / 2).all()
    assert (table["length_mean"] == 200).all() and not table["diverged"].any()
    # the same numbers as the policy load_policy returns, run alone on the same keys
    act = policy.load_policy(run_dir, member=1)
    alone = episodes.run_episodes(act.env, act, jax.random.PRNGKey(0), 32)
    np.testing.assert_allclose(table["return_mean"][1], np.asarray(alone.returns).mean(), rtol=1e-5)
    markdown = (out / "evaluation.md").read_text()
    assert "| member | seed |" in markdown and "deterministic actions" in markdown
    assert "return_mean" in capsys.readouterr().out
    # the output is not overwritten without --overwrite; bad input is one line, exit 2
    assert cli.main(["evaluate", str(run_dir), "--out", str(out)]) == 2
    assert cli.main(["evaluate", str(run_dir), "--episodes", "0"]) == 2
    assert cli.main(["evaluate", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("rpo-jax: error:") for line in err)


def test_eval_fields_are_checked():
    with pytest.raises(Exception, match="eval_episodes"):
        _tiny_config(eval_episodes=0).validate()
    with pytest.raises(Exception, match="eval_every"):
        _tiny_config(eval_every=-1).validate()
