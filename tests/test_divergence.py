"""Divergence is a result, not a zero: a member whose update goes non-finite reports NaN, per member.

A diverged member's NaN actions blow up the env, whose adapter zeroes the non-finite reward and
ends the episode, so without the trainer's masking its episode return would read 0.0 -- the best
Pendulum return. The population here (gymnax Pendulum-v1, 2 envs x 64 steps, 6 iterations,
episodes of 32 steps so every iteration ends some) holds two healthy members, one with
learning_rate = 1000 (non-finite after its first update) and one with learning_rate = 30
(non-finite after a few updates, so it has healthy iterations first).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.config import TrainConfig
from rpo_jax.training import population
from rpo_jax.training.train import as_hparams, first_divergence, make_trainer, mask_diverged, stack_hparams

CONFIG = TrainConfig(
    env="gymnax/Pendulum-v1",
    num_envs=2,
    num_steps=64,
    num_minibatches=2,
    update_epochs=1,
    total_timesteps=2 * 64 * 6,
    episode_length=32,
)
N = CONFIG.num_iterations
HEALTHY = [as_hparams(), as_hparams(alpha=0.5, learning_rate=1e-3)]
EXPLODING = [as_hparams(learning_rate=1000.0), as_hparams(learning_rate=30.0)]
SEEDS = (0, 1, 2, 0)


@pytest.fixture(scope="module")
def trainer():
    return make_trainer(CONFIG)


@pytest.fixture(scope="module")
def populations(trainer):
    """(with, without): the population with the two exploding members after the healthy ones, and with two
    healthy members in their place.

    Run as ``run_population`` runs a population: the exploding members end an episode on every step,
    so their start caches force refills of every member's cache at times a healthy population would
    not choose (rpo_jax.envs.starts); the healthy members' numbers must not notice.
    """

    def train(keys, hparams):
        size = len(keys)
        members = population.population_trainer(trainer, size)
        return jax.device_get(jax.jit(population.over_members(members.train, size))(keys, hparams))

    keys = jnp.stack([jax.random.PRNGKey(s) for s in SEEDS])
    with_them = train(keys, stack_hparams(HEALTHY + EXPLODING))
    # The same compiled program with healthy neighbours instead: a population of another size is another
    # program, which XLA may fuse differently (an FMA here or there), so only this comparison is exact.
    without = train(keys, stack_hparams(HEALTHY + HEALTHY))
    return with_them, without


def _member(tree, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def test_healthy_members_are_bit_identical_with_or_without_a_diverging_neighbour(populations):
    (state, metrics), (state_alone, metrics_alone) = populations
    for i in range(2):
        chex.assert_trees_all_equal(_member(metrics, i), _member(metrics_alone, i))
        chex.assert_trees_all_equal(_member(state.params, i), _member(state_alone.params, i))
        chex.assert_trees_all_equal(_member(state.opt_state, i), _member(state_alone.opt_state, i))
        chex.assert_trees_all_equal(_member(state.normalizer, i), _member(state_alone.normalizer, i))
        assert int(state.diverged_at[i]) == -1
        np.testing.assert_array_equal(metrics["diverged"][i], np.zeros(N, np.float32))
        assert np.all(np.isfinite(metrics["episode_return"][i]))  # episodes of 32 steps end every iteration
        assert np.all(metrics["episodes"][i] > 0)
        np.testing.assert_array_equal(metrics["nonfinite_env_steps"][i], 0)
        for leaf in jax.tree.leaves(_member(state.params, i)):
            assert np.all(np.isfinite(leaf))


def test_learning_rate_1000_diverges_in_its_first_iteration_and_reports_nan(populations):
    (state, metrics), _ = populations
    i = 2
    assert int(state.diverged_at[i]) == 0
    assert not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(_member(state.params, i)))
    np.testing.assert_array_equal(metrics["diverged"][i], np.ones(N, np.float32))
    for name, values in metrics.items():
        if np.issubdtype(values.dtype, np.floating) and name != "diverged":
            assert np.all(np.isnan(values[i])), (name, values[i])  # never 0.0
    np.testing.assert_array_equal(metrics["episodes"][i], 0)
    np.testing.assert_array_equal(metrics["env_steps"][i], CONFIG.batch_size * np.arange(1, N + 1))
    # Its NaN actions blow up every env step from the second rollout on; the count stays visible.
    np.testing.assert_array_equal(metrics["nonfinite_env_steps"][i], [0] + [CONFIG.batch_size] * (N - 1))


def test_learning_rate_30_is_healthy_until_diverged_at_then_nan(populations):
    (state, metrics), _ = populations
    i = 3
    at = int(state.diverged_at[i])
    assert 0 < at < N, at  # a few healthy iterations first (iteration 3 on this platform)
    np.testing.assert_array_equal(metrics["diverged"][i], (np.arange(N) >= at).astype(np.float32))
    for name in ("episode_return", "episode_length", "entropy", "policy_loss", "value_loss", "learning_rate_current"):
        assert np.all(np.isfinite(metrics[name][i, :at])), name
        assert np.all(np.isnan(metrics[name][i, at:])), name
    assert np.all(metrics["episodes"][i, :at] > 0)
    np.testing.assert_array_equal(metrics["episodes"][i, at:], 0)
    # The same seed and hyperparameters except the learning rate: identical rollout in iteration 0.
    assert metrics["episode_return"][i, 0] == metrics["episode_return"][0, 0]


def test_a_diverged_policy_would_score_zero_without_the_mask(trainer):
    """Why the mask exists: NaN parameters make NaN actions, the env zeroes their rewards and ends episodes."""
    hparams = as_hparams()
    state = trainer.init(jax.random.PRNGKey(0), hparams)
    state = state.replace(params=jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state.params))
    _, trajectory, (return_sum, _, episodes, reused) = jax.jit(trainer.rollout)(state, hparams, jax.random.PRNGKey(1))
    assert int(episodes) == CONFIG.batch_size and int(reused) == 0  # every step ends an episode, each fresh
    assert float(return_sum) == 0.0
    assert bool(np.all(trajectory.nonfinite))


def test_first_divergence_keeps_the_first_index():
    never = jnp.int32(-1)
    assert int(first_divergence(never, jnp.int32(4), jnp.bool_(True))) == -1
    assert int(first_divergence(never, jnp.int32(4), jnp.bool_(False))) == 4
    assert int(first_divergence(jnp.int32(2), jnp.int32(4), jnp.bool_(False))) == 2
    assert int(first_divergence(jnp.int32(2), jnp.int32(4), jnp.bool_(True))) == 2


def test_mask_diverged_nans_floats_zeroes_episodes_keeps_step_counters():
    metrics = {
        "episode_return": jnp.float32(0.0),
        "episodes": jnp.int32(7),
        "policy_loss": jnp.float32(-0.25),
        "env_steps": jnp.int32(640),
        "nonfinite_env_steps": jnp.int32(3),
    }
    healthy = mask_diverged(metrics, jnp.bool_(False))
    chex.assert_trees_all_equal({k: v for k, v in healthy.items() if k != "diverged"}, metrics)
    assert healthy["diverged"].dtype == jnp.float32 and float(healthy["diverged"]) == 0.0
    bad = mask_diverged(metrics, jnp.bool_(True))
    assert np.isnan(bad["episode_return"]) and np.isnan(bad["policy_loss"])
    assert int(bad["episodes"]) == 0 and bad["episodes"].dtype == jnp.int32
    assert int(bad["env_steps"]) == 640 and int(bad["nonfinite_env_steps"]) == 3
    assert float(bad["diverged"]) == 1.0


def test_a_diverged_member_is_named_and_never_ranked_by_every_command(tmp_path, capsys):
    """`rpo-jax sweep --grid learning_rate=3e-4,1000`: summary.json, report and robustness all name lr 1000."""
    import json

    import pandas as pd

    from rpo_jax import cli

    config = tmp_path / "c.yaml"
    config.write_text(
        "train: {env: gymnax/Pendulum-v1, num_envs: 2, num_steps: 64, num_minibatches: 2, update_epochs: 1,"
        " total_timesteps: 768, episode_length: 32}\nsweep: {seeds: 2}\n"
    )
    out = tmp_path / "run"
    assert cli.main(["sweep", str(config), "--grid", "learning_rate=3e-4,1000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "diverged: member 2, 3" in printed  # the progress line
    summary = json.loads((out / "summary.json").read_text())
    assert [(d["member"], d["learning_rate"], d["diverged_at"]) for d in summary["diverged"]] == [
        (2, 1000.0, 0),
        (3, 1000.0, 0),
    ]
    rows = {row["learning_rate"]: row for row in summary["final_return"]}
    assert rows[1000.0]["n"] == 0 and rows[1000.0]["diverged"] == 2 and rows[1000.0]["mean"] is None
    assert rows[0.0003]["n"] == 2 and rows[0.0003]["diverged"] == 0 and rows[0.0003]["mean"] < 0

    assert cli.main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "final_returns.md").read_text()
    assert "diverged (left out): member 2" in table and "diverged (left out): member 3" in table
    assert "**" not in table.split("learning_rate=1000")[1].split("\n")[0]  # never bolded as best

    assert cli.main(["robustness", str(out), "--eps", "0,0.1", "--attacks", "random", "--episodes", "2"]) == 0
    assert "diverged" in capsys.readouterr().out
    csv = pd.read_csv(out / "robustness" / "robustness.csv")
    assert set(csv.loc[csv["diverged"], "member"]) == {2, 3}
    assert csv.loc[csv["diverged"], "return_mean"].isna().all()
