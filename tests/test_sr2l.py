"""SR^2L inside the train loop: PPO-SR and TRPO(-SR)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.config import TrainConfig
from rpo_jax.training.train import as_hparams, make_trainer, stack_hparams

TINY = TrainConfig(
    env="gymnax/Pendulum-v1",
    num_envs=4,
    num_steps=64,
    num_minibatches=4,
    update_epochs=2,
    total_timesteps=4 * 64 * 4,
)
PPO_SR = dataclasses.replace(TINY, smoothness=True)


def _close(a, b):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(
            np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=str(path)
        )


@pytest.fixture(scope="module")
def ppo_sr():
    return make_trainer(PPO_SR)


def test_lambda_zero_is_plain_ppo_bit_for_bit(ppo_sr):
    key, hp = jax.random.PRNGKey(1), as_hparams(alpha=0.5, lambda_s=0.0, sr_eps=0.05)
    sr_state, sr_metrics = jax.jit(ppo_sr.train)(key, hp)
    state, metrics = jax.jit(make_trainer(TINY).train)(key, hp)
    assert float(np.max(sr_metrics["smoothness_penalty"])) > 0  # the penalty is computed, just not weighted
    sr_metrics = {k: v for k, v in sr_metrics.items() if k != "smoothness_penalty"}
    chex.assert_trees_all_equal(sr_metrics, metrics)
    chex.assert_trees_all_equal(sr_state.params, state.params)


def test_eps_zero_gives_zero_penalty(ppo_sr):
    _, metrics = jax.jit(ppo_sr.train)(jax.random.PRNGKey(0), as_hparams(lambda_s=1.0, sr_eps=0.0))
    np.testing.assert_array_equal(metrics["smoothness_penalty"], 0.0)


def test_vmapped_lambda_eps_grid_equals_members_alone(ppo_sr):
    points = [(0.0, 0.01), (1.0, 0.01), (1.0, 0.1), (10.0, 0.1)]
    rows = [as_hparams(alpha=0.0, lambda_s=lam, sr_eps=eps) for lam, eps in points]
    keys = jnp.stack([jax.random.PRNGKey(7)] * len(rows))
    _, pop = jax.jit(jax.vmap(ppo_sr.train))(keys, stack_hparams(rows))
    alone_fn = jax.jit(ppo_sr.train)
    for i, hp in enumerate(rows):
        _close(jax.tree.map(lambda x: x[i], pop), alone_fn(keys[i], hp)[1])
    # The regulariser works: a larger weight gives a smoother (smaller-penalty) policy at the same eps.
    assert pop["smoothness_penalty"][3, -1] < pop["smoothness_penalty"][2, -1]


@pytest.mark.parametrize("smoothness", [False, True])
def test_trpo_respects_the_trust_region(smoothness):
    cfg = dataclasses.replace(TINY, algorithm="trpo", smoothness=smoothness, total_timesteps=4 * 64 * 6)
    _, metrics = jax.jit(make_trainer(cfg).train)(jax.random.PRNGKey(0), as_hparams(max_kl=0.01, lambda_s=1.0))
    kl = np.asarray(metrics["approx_kl"])
    assert np.all(kl <= 0.01 + 1e-6), kl
    assert np.mean(metrics["trpo_step_accepted"]) > 0.5
    assert np.all(np.isfinite(metrics["value_loss"]))
    assert ("smoothness_penalty" in metrics) == smoothness


def test_pgd_once_per_iteration_mode():
    cfg = dataclasses.replace(PPO_SR, smoothness_pgd="iteration")
    train = jax.jit(make_trainer(cfg).train)
    _, metrics = train(jax.random.PRNGKey(0), as_hparams(lambda_s=1.0, sr_eps=0.05))
    assert np.all(np.asarray(metrics["smoothness_penalty"]) > 0)
    _, zero = train(jax.random.PRNGKey(0), as_hparams(lambda_s=1.0, sr_eps=0.0))
    np.testing.assert_array_equal(zero["smoothness_penalty"], 0.0)
