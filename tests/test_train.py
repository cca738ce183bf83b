"""The train function: PPO/RPO equivalences, population == members alone, determinism, sharding, learning."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.config import HPARAM_NAMES, ConfigError, HParams, SweepConfig, TrainConfig
from rpo_jax.training import population
from rpo_jax.training.train import METRIC_NAMES, as_hparams, make_trainer, stack_hparams

TINY = TrainConfig(
    env="gymnax/Pendulum-v1",
    num_envs=4,
    num_steps=64,
    num_minibatches=4,
    update_epochs=2,
    total_timesteps=4 * 64 * 6,
    bootstrap_on_truncation=True,
)


@pytest.fixture(scope="module")
def trainer():
    return make_trainer(TINY)


@pytest.fixture(scope="module")
def train_jit(trainer):
    return jax.jit(trainer.train)


def _assert_trees_close(a, b, atol=1e-5, rtol=1e-5):
    """|a - b| <= atol + rtol |b| leaf by leaf: returns are ~1e3, where one float32 ulp is ~1e-4."""
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, atol=atol, rtol=rtol, equal_nan=True, err_msg=str(path))
        else:
            np.testing.assert_array_equal(x, y, err_msg=str(path))


def test_metrics_have_one_value_per_iteration(trainer, train_jit):
    state, metrics = train_jit(jax.random.PRNGKey(0), as_hparams())
    assert set(metrics) == set(METRIC_NAMES)
    chex.assert_tree_shape_prefix(metrics, (TINY.num_iterations,))
    np.testing.assert_array_equal(metrics["env_steps"], TINY.batch_size * np.arange(1, TINY.num_iterations + 1))
    assert int(state.iteration) == TINY.num_iterations
    lr = np.asarray(metrics["learning_rate_current"])
    np.testing.assert_allclose(lr, 3e-4 * (1 - np.arange(TINY.num_iterations) / TINY.num_iterations), rtol=1e-5)
    # 4 envs x 64 steps x 6 iterations = 1536 steps, episodes of 200 -> 4 episodes end at steps 200, 400, ...
    assert int(np.sum(metrics["episodes"])) == 4 * (TINY.total_timesteps // 4 // 200)
    finished = np.asarray(metrics["episode_length"])
    np.testing.assert_array_equal(finished[~np.isnan(finished)], 200.0)
    for name in ("entropy", "approx_kl", "clipfrac", "policy_loss", "value_loss"):
        assert np.all(np.isfinite(metrics[name])), name
    np.testing.assert_array_equal(metrics["diverged"], 0.0)
    np.testing.assert_array_equal(metrics["nonfinite_env_steps"], 0)
    assert int(state.diverged_at) == -1


def test_a_shortened_run_on_the_full_lr_schedule_is_a_prefix_of_the_full_run(trainer, train_jit):
    """``anneal_lr_timesteps``: 3 of 6 iterations, annealed over 6, are the full run's first 3 bit for bit."""
    short = make_trainer(
        dataclasses.replace(TINY, total_timesteps=TINY.total_timesteps // 2, anneal_lr_timesteps=TINY.total_timesteps)
    )
    state, metrics = jax.jit(short.train)(jax.random.PRNGKey(0), as_hparams())
    _, full = train_jit(jax.random.PRNGKey(0), as_hparams())
    chex.assert_trees_all_equal(metrics, jax.tree.map(lambda x: x[:3], full))
    np.testing.assert_allclose(metrics["learning_rate_current"], 3e-4 * np.array([1, 5 / 6, 4 / 6]), rtol=1e-5)
    with pytest.raises(ConfigError, match="anneal_lr_timesteps=100 is less than"):
        dataclasses.replace(TINY, anneal_lr_timesteps=100).validate()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"augmentation": "drac"},
        {"smoothness": True},
        {"algorithm": "trpo"},
        {"algorithm": "trpo", "smoothness": True},
    ],
)
def test_no_metric_is_named_like_a_member_column(overrides):
    """metrics.csv puts member columns (member, seed, swept hparams) and iteration next to the metrics:
    a shared name would make a sweep over that hyperparameter fail when its table is written."""
    trainer = make_trainer(dataclasses.replace(TINY, **overrides))
    hparams = as_hparams()
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), hparams)
    _, metrics = jax.eval_shape(lambda s: trainer.run(s, hparams, 1), state)
    assert set(METRIC_NAMES) <= set(metrics)
    reserved = set(HPARAM_NAMES) | {"member", "seed", "iteration"}
    assert not set(metrics) & reserved, sorted(set(metrics) & reserved)
    assert "learning_rate_current" in metrics and "learning_rate" in HPARAM_NAMES  # the clash this guards against


def test_alpha_zero_is_ppo_bit_for_bit(train_jit):
    """RPO's perturbation code path with alpha = 0 reproduces plain PPO exactly."""
    ppo_trainer = make_trainer(TINY.__class__(**{**TINY.__dict__, "perturb_mean": False}))
    key, hp = jax.random.PRNGKey(3), as_hparams(alpha=0.0)
    rpo_state, rpo_metrics = train_jit(key, hp)
    ppo_state, ppo_metrics = jax.jit(ppo_trainer.train)(key, hp)
    chex.assert_trees_all_equal(rpo_metrics, ppo_metrics)
    chex.assert_trees_all_equal(rpo_state.params, ppo_state.params)
    # ... and alpha > 0 really changes the update.
    _, rpo_half = train_jit(key, as_hparams(alpha=0.5))
    assert not np.allclose(rpo_half["policy_loss"], ppo_metrics["policy_loss"])


def test_same_seed_twice_gives_identical_metrics(train_jit):
    a = train_jit(jax.random.PRNGKey(11), as_hparams(alpha=0.5))
    b = train_jit(jax.random.PRNGKey(11), as_hparams(alpha=0.5))
    chex.assert_trees_all_equal(a, b)
    c = train_jit(jax.random.PRNGKey(12), as_hparams(alpha=0.5))
    assert not np.allclose(a[1]["policy_loss"], c[1]["policy_loss"])


def test_vmapped_member_equals_the_same_member_alone(trainer):
    """Every member of a vmapped population follows its own key and hyperparameters.

    Compared over the first 3 of the 6 iterations, on the metrics and the learner's
    state: batched and unbatched matmuls round differently, and a 1-ulp change in an
    action grows through the pendulum's dynamics, so the env states and, later, the
    learner drift apart by more than float32 rounding (after 3 iterations 3e-5 relative
    in one env's angular speed; after 6, 7e-4 in the lr = 1e-3 member's observation
    mean). A member run with another member's hyperparameters differs far more.
    """
    rows = [
        as_hparams(alpha=0.0),
        as_hparams(alpha=0.5, learning_rate=1e-3),
        as_hparams(alpha=1.0, ent_coef=0.01, clip_coef=0.1, gamma=0.95, gae_lambda=0.9, vf_coef=1.0, max_grad_norm=1.0),
    ]
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 1, 2)])

    def three_iterations(key, hp):
        return trainer.run(trainer.init(key, hp), hp, 3)

    pop_state, pop_metrics = jax.jit(jax.vmap(three_iterations))(keys, stack_hparams(rows))
    alone = jax.jit(three_iterations)
    for i, hp in enumerate(rows):
        alone_state, alone_metrics = alone(keys[i], hp)
        _assert_trees_close(jax.tree.map(lambda x: x[i], pop_metrics), alone_metrics)
        # The learner's state; the env states are where a rounding difference shows first.
        learner = lambda state: (state.params, state.opt_state, state.normalizer)  # noqa: E731
        _assert_trees_close(jax.tree.map(lambda x: x[i], learner(pop_state)), learner(alone_state))
    # The comparison can fail: a member run with its neighbour's hyperparameters does.
    swapped_state, _ = alone(keys[1], rows[2])
    with pytest.raises(AssertionError):
        _assert_trees_close(jax.tree.map(lambda x: x[1], pop_state.params), swapped_state.params)


def test_chunked_population_run_equals_train_and_reports_progress(trainer, train_jit):
    sweep = SweepConfig(seeds=(4, 5), grid=(("alpha", (0.0, 0.5)),))
    pop = population.build_population(sweep, HParams())
    assert [m["seed"] for m in pop.members] == [4, 5, 4, 5]
    assert [m["alpha"] for m in pop.members] == [0.0, 0.0, 0.5, 0.5]
    reports = []
    result = population.run_population(trainer, pop, chunk_iterations=2, progress_fn=reports.append)
    assert [r["iteration"] for r in reports] == [2, 4, 6]
    assert reports[0]["metrics"]["episode_return"].shape == (4, 2)
    assert result.compile_seconds > 0 and result.run_seconds > 0
    for i, member in enumerate(pop.members):
        _, alone = train_jit(jax.random.PRNGKey(member["seed"]), as_hparams(alpha=member["alpha"]))
        _assert_trees_close({k: v[i] for k, v in result.metrics.items()}, alone)


def test_population_of_one_runs_unbatched_and_equals_train(trainer, train_jit):
    """``rpo-jax train`` is a population of one: it skips vmap but keeps the population axis."""
    pop = population.build_population(SweepConfig(seeds=(7,), grid=(("alpha", (0.5,)),)), HParams())
    result = population.run_population(trainer, pop, chunk_iterations=3)
    state, alone = train_jit(jax.random.PRNGKey(7), as_hparams(alpha=0.5))
    assert result.metrics["episode_return"].shape == (1, TINY.num_iterations)
    _assert_trees_close({k: v[0] for k, v in result.metrics.items()}, alone)
    _assert_trees_close(jax.tree.map(lambda x: x[0], result.state.params), state.params)
    vmapped = population.over_members(lambda x: jnp.stack([x.sum(), x.max()]), 2)(jnp.ones((2, 3)))
    one = population.over_members(lambda x: jnp.stack([x.sum(), x.max()]), 1)(jnp.ones((1, 3)))
    np.testing.assert_array_equal(vmapped, [[3.0, 1.0], [3.0, 1.0]])
    np.testing.assert_array_equal(one, [[3.0, 1.0]])


def test_chunk_size_divides_the_run():
    assert population.chunk_size(3906, 126) == 126
    assert population.chunk_size(100, 0) == 5
    assert population.chunk_size(97, 10) == 1
    assert population.chunk_size(12, 50) == 12


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from rpo_jax.training import population
    from rpo_jax.config import HPARAM_NAMES, ConfigError, HParams, SweepConfig, TrainConfig
    from rpo_jax.training.train import make_trainer
    assert len(jax.devices()) == 8, jax.devices()
    cfg = TrainConfig(env="gymnax/Pendulum-v1", num_envs=4, num_steps=64, num_minibatches=4,
                      update_epochs=2, total_timesteps=4 * 64 * 4)
    trainer = make_trainer(cfg)
    pop = population.build_population(SweepConfig(seeds=(0, 1, 2), grid=(("alpha", (0.0, 0.5)),)), HParams())
    sharded = population.run_population(trainer, pop, chunk_iterations=2)           # 6 members padded to 8
    single = population.run_population(trainer, pop, chunk_iterations=2, devices=jax.devices()[:1])
    # relative to magnitude: episode returns are ~1e3, where one float32 ulp is ~1e-4
    diff = max(float(np.nanmax(np.abs(sharded.metrics[k] - single.metrics[k]) / (1 + np.abs(single.metrics[k]))))
               for k in sharded.metrics)
    pdiff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(sharded.state.params),
                                                           jax.tree.leaves(single.state.params)))
    print(json.dumps({"devices": sharded.num_devices, "metric_diff": diff, "param_diff": pdiff,
                      "members": len(sharded.members), "shape": list(sharded.metrics["episode_return"].shape)}))
    """
)


def test_population_sharded_over_8_cpu_devices_equals_unsharded(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8
    assert report["members"] == 6 and report["shape"] == [6, 4]
    assert report["metric_diff"] <= 1e-5, report  # |a - b| / (1 + |b|)
    assert report["param_diff"] <= 1e-5, report


def test_short_real_training_improves_return():
    """RPO on gymnax Pendulum-v1 (8 envs, 300k steps): the return climbs well above a random policy's."""
    cfg = TrainConfig(
        env="gymnax/Pendulum-v1",
        num_envs=8,
        num_steps=256,
        num_minibatches=8,
        update_epochs=10,
        total_timesteps=8 * 256 * 150,
    )
    state, metrics = jax.jit(make_trainer(cfg).train)(jax.random.PRNGKey(0), as_hparams(alpha=0.5))
    returns = np.asarray(metrics["episode_return"])
    first = np.nanmean(returns[:10])
    last = np.nanmean(returns[-10:])
    print(f"Pendulum return: first 10 iterations {first:.0f}, last 10 {last:.0f}")
    assert first < -900  # a random Pendulum policy scores about -1200
    assert last > first + 400, (first, last)
