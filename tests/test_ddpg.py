"""DDPG and DDPG-SR-A / -SR-C: the replay buffer, target tracking, the regularisers, a population, learning."""

import dataclasses
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from rpo_jax import algorithms
from rpo_jax.algorithms.ddpg import DDPG, Replayed, soft_update
from rpo_jax.config import ConfigError, TrainConfig
from rpo_jax.core import pgd, replay
from rpo_jax.training.train import as_hparams, make_trainer, stack_hparams

TINY = TrainConfig(
    env="gymnax/Pendulum-v1",
    algorithm="ddpg",
    num_envs=2,
    num_steps=32,
    total_timesteps=2 * 32 * 4,
    normalize_rewards=False,
    anneal_lr=False,
    buffer_size=1000,
    learning_starts=64,
    replay_batch_size=16,
    updates_per_iteration=4,
)
# Pendulum-v1 at CleanRL / garage-like settings: 1 env, 100-step iterations, 50 updates each.
LEARN = dataclasses.replace(
    TINY,
    num_envs=1,
    num_steps=100,
    total_timesteps=20_000,
    normalize_observations=False,
    buffer_size=100_000,
    learning_starts=1_000,
    replay_batch_size=64,
    updates_per_iteration=50,
)
EPS = 0.1
LEARN_HP = dict(learning_rate=1e-4, critic_learning_rate=1e-3, tau=0.01, exploration_noise=0.1)


def _close(a, b):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(
            np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=str(path)
        )


# ----------------------------------------------------------------------------- replay buffer


def test_buffer_is_fifo_and_overwrites_the_oldest():
    buffer = replay.init(5, {"x": jnp.zeros((), jnp.int32)})
    buffer = replay.add(buffer, {"x": jnp.arange(3)})
    assert int(buffer.size) == 3 and int(buffer.position) == 3
    np.testing.assert_array_equal(buffer.data["x"], [0, 1, 2, 0, 0])
    buffer = replay.add(buffer, {"x": jnp.arange(3, 7)})  # 3, 4 fill; 5, 6 overwrite the oldest (0, 1)
    assert int(buffer.size) == 5 and int(buffer.position) == 2
    np.testing.assert_array_equal(buffer.data["x"], [5, 6, 2, 3, 4])
    buffer = replay.add(buffer, {"x": jnp.arange(7, 12)})  # a full lap
    np.testing.assert_array_equal(buffer.data["x"], [10, 11, 7, 8, 9])
    with pytest.raises(ValueError, match="cannot add 6"):
        replay.add(buffer, {"x": jnp.arange(6)})


def test_sampling_is_uniform_over_the_filled_slots_only():
    buffer = replay.add(replay.init(100, {"x": jnp.zeros((), jnp.int32)}), {"x": jnp.arange(10) + 1})
    drawn = np.asarray(replay.sample(buffer, jax.random.PRNGKey(0), 50_000)["x"])
    assert drawn.min() == 1 and drawn.max() == 10  # never an empty (zero) slot
    counts = np.bincount(drawn, minlength=11)[1:]
    chi2 = np.sum((counts - 5000) ** 2 / 5000)
    assert chi2 < 27.9, counts  # 99.9 % quantile of chi^2 with 9 degrees of freedom


# ----------------------------------------------------------------------------- the update


def test_soft_update_is_exact():
    online, target = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, -1.0])}
    np.testing.assert_array_equal(soft_update(online, target, 0.25)["w"], [0.25 * 1 + 0.75 * 3, 0.25 * 2 - 0.75])


def test_targets_track_by_tau_in_a_real_step():
    trainer = make_trainer(TINY)
    state = trainer.init(jax.random.PRNGKey(0), as_hparams())
    state = state.replace(params={**state.params, "target_actor": jax.tree.map(jnp.zeros_like, state.params["actor"])})
    state, _ = trainer.rollout(state, as_hparams(), jax.random.PRNGKey(1))
    hp = as_hparams(tau=0.1)
    params, _, _ = jax.jit(lambda s: trainer.update(s, hp, jax.random.PRNGKey(2), 1.0))(state)
    # one step from a zero target actor: exactly tau * online; the critic's target: tau * online + (1 - tau) * old
    one = dataclasses.replace(TINY, updates_per_iteration=1)
    t1 = make_trainer(one)
    p1, _, _ = jax.jit(lambda s: t1.update(s, hp, jax.random.PRNGKey(2), 1.0))(state)
    chex.assert_trees_all_close(p1["target_actor"], jax.tree.map(lambda a: 0.1 * a, p1["actor"]), rtol=1e-6)
    chex.assert_trees_all_close(
        p1["target_critic"],
        jax.tree.map(lambda a, t: 0.1 * a + 0.9 * t, p1["critic"], state.params["target_critic"]),
        rtol=1e-6,
    )
    assert not np.allclose(jax.tree.leaves(params["actor"])[0], jax.tree.leaves(state.params["actor"])[0])


@pytest.mark.parametrize("target", ["actor", "critic"])
def test_lambda_zero_is_plain_ddpg_in_one_update(target):
    sr = make_trainer(dataclasses.replace(TINY, smoothness=True, smoothness_target=target))
    plain = make_trainer(TINY)
    hp = as_hparams(lambda_s=0.0, sr_eps=0.1)
    state, _ = plain.rollout(plain.init(jax.random.PRNGKey(3), hp), hp, jax.random.PRNGKey(4))
    raw = replay.sample(state.buffer, jax.random.PRNGKey(5), 16)
    batch = Replayed(
        obs=raw.obs, actions=raw.actions, rewards=raw.rewards, next_obs=raw.next_obs, terminated=raw.terminated
    )
    one = lambda t: jax.jit(lambda s: t.algorithm.step(s.params, s.opt_state, batch, hp, jax.random.PRNGKey(6), 1.0))  # noqa: E731
    (p_sr, o_sr, aux_sr), (p, o, _) = one(sr)(state), one(plain)(state)
    chex.assert_trees_all_equal((p_sr, o_sr), (p, o))
    assert float(aux_sr["smoothness_penalty"]) > 0  # computed, just not weighted


PER_ENV = dataclasses.replace(TINY, normalize_per_env=True)


def test_per_env_statistics_train_on_the_acting_view(monkeypatch):
    """normalize_per_env with 2 envs: a replayed transition from env e is trained on as env e's
    statistics map it -- the rollout's (acting) view -- not through the statistics merged over envs."""
    from rpo_jax.core import normalization

    trainer = make_trainer(PER_ENV)
    hp = as_hparams()
    state = trainer.init(jax.random.PRNGKey(0), hp)
    for i in range(2):
        state, _ = trainer.rollout(state, hp, jax.random.PRNGKey(10 + i))
    # The acting view of every stored transition with the current statistics: the buffer holds each
    # rollout time-major ([num_steps, num_envs] flattened), so slot i came from env i % num_envs.
    size, clip = int(state.buffer.size), PER_ENV.obs_clip

    def acting_view(stored):  # normalize_observations on each step's [num_envs, obs_size], as the rollout does
        steps = stored[:size].reshape(-1, PER_ENV.num_envs, stored.shape[-1])
        views = jax.vmap(lambda obs: normalization.normalize_observations(state.normalizer, obs, clip))(steps)
        return np.asarray(views.reshape(size, -1))

    acting_obs, acting_next = acting_view(state.buffer.data.obs), acting_view(state.buffer.data.next_obs)
    merged = np.asarray(normalization.normalize_for_evaluation(state.normalizer, state.buffer.data.obs[:size], clip))
    assert np.abs(merged - acting_obs).max() > 0.05  # the two envs' statistics do differ

    captured = []
    step = DDPG.step

    def spy(self, params, opt_state, batch, hparams, key, lr_scale):
        jax.debug.callback(lambda o, n: captured.append((np.asarray(o), np.asarray(n))), batch.obs, batch.next_obs)
        return step(self, params, opt_state, batch, hparams, key, lr_scale)

    monkeypatch.setattr(DDPG, "step", spy)
    jax.block_until_ready(trainer.update(state, hp, jax.random.PRNGKey(2), 1.0))
    assert len(captured) == PER_ENV.updates_per_iteration
    for k, acting in enumerate((acting_obs, acting_next)):
        trained = np.concatenate([c[k] for c in captured])  # every minibatch's obs (k = 0), next_obs (k = 1)
        gap = np.abs(trained[:, None, :] - acting[None, :, :]).max(-1).min(-1)  # to the nearest stored acting view
        assert gap.max() < 1e-6, gap.max()
    np.testing.assert_array_equal(state.buffer.data.env[:size], np.arange(size) % PER_ENV.num_envs)


def test_a_per_env_ddpg_run_trains():
    state, metrics = jax.jit(make_trainer(PER_ENV).train)(jax.random.PRNGKey(3), as_hparams())
    assert int(state.diverged_at) == -1
    for name in ("value_loss", "policy_loss"):  # learning from the first iteration on (learning_starts 64)
        assert np.isfinite(np.asarray(metrics[name])).all(), name
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


WHOLE_RUNS = """
import dataclasses, os, sys
import chex, jax
jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/rpo_jax_jax_cache"))
sys.path.insert(0, sys.argv[1])
from test_ddpg import TINY
from rpo_jax.training.train import as_hparams, make_trainer
hp = as_hparams(lambda_s=0.0, sr_eps=0.1)
plain, plain_metrics = jax.jit(make_trainer(TINY).train)(jax.random.PRNGKey(3), hp)
for target in ("actor", "critic"):
    sr = make_trainer(dataclasses.replace(TINY, smoothness=True, smoothness_target=target))
    state, metrics = jax.jit(sr.train)(jax.random.PRNGKey(3), hp)
    assert float(metrics.pop("smoothness_penalty").max()) > 0
    run, plain_run = (state.params, state.opt_state, metrics), (plain.params, plain.opt_state, plain_metrics)
    chex.assert_trees_all_equal(run, plain_run)
print("bit-identical")
"""


def test_lambda_zero_is_plain_ddpg_bit_for_bit_over_whole_runs():
    """Whole runs (16 updates in loops of 4) with lambda_s = 0 are plain DDPG's bit for bit.

    XLA:CPU always lets LLVM contract ``a * b + c`` into one fused multiply-add (one rounding instead
    of two); which ones it contracts depends on how each program's loop body is fused, and the
    penalty's extra ops change that. On a CPU with FMA the two programs therefore agree to float
    rounding only (about 6e-8 here, from the second update of a loop on). Compiled for a CPU without
    FMA (``--xla_cpu_max_isa=AVX``) nothing is contracted, and the runs are bit-identical: the
    regulariser at weight 0 changes nothing but the compiler's choice of instructions.
    """
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_max_isa=AVX", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", WHOLE_RUNS, os.path.dirname(__file__)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and "bit-identical" in proc.stdout, proc.stderr[-3000:]


def test_vmapped_lambda_eps_grid_equals_members_alone():
    trainer = make_trainer(dataclasses.replace(TINY, smoothness=True))
    rows = [as_hparams(lambda_s=lam, sr_eps=eps) for lam, eps in [(0.0, 0.01), (1.0, 0.01), (10.0, 0.1)]]
    keys = jnp.stack([jax.random.PRNGKey(7)] * len(rows))
    _, pop = jax.jit(jax.vmap(trainer.train))(keys, stack_hparams(rows))
    alone = jax.jit(trainer.train)
    for i, hp in enumerate(rows):
        _close(jax.tree.map(lambda x: x[i], pop), alone(keys[i], hp)[1])


def test_bad_ddpg_settings_are_one_line_config_errors():
    """The registered algorithm checks its settings (rpo_jax.algorithms.validate, run by make_trainer and
    by every config the CLI reads)."""
    with pytest.raises(ConfigError, match="normalize_rewards: false"):
        algorithms.validate(dataclasses.replace(TINY, normalize_rewards=True))
    with pytest.raises(ConfigError, match="smoothness_target=critic needs train.algorithm=ddpg"):
        algorithms.validate(
            dataclasses.replace(
                TINY, algorithm="ppo", normalize_rewards=True, smoothness=True, smoothness_target="critic"
            )
        )
    with pytest.raises(ConfigError, match=r"^train.algorithm must be one of ppo, trpo, ddpg, got 'sac'$"):
        algorithms.validate(dataclasses.replace(TINY, algorithm="sac"))


# ----------------------------------------------------------------------------- learning


def _worst_gaps(trainer, params, obs, eps, key):
    """Per state: max over the eps-ball (PGD, 40 steps) of ||mu(s) - mu(s')||^2 and (Q(s, mu(s)) - Q(s', mu(s)))^2."""
    mu = lambda p: trainer.actor.apply(params["actor"], p)  # noqa: E731
    q = lambda p, a: trainer.critic.apply(params["critic"], p, a)  # noqa: E731
    a = mu(obs)
    actor_obj = lambda p: jnp.sum((a - mu(p)) ** 2, -1)  # noqa: E731
    critic_obj = lambda p: (q(obs, a) - q(p, a)) ** 2  # noqa: E731
    worst_a = actor_obj(obs + pgd.pgd_perturbation(actor_obj, obs, key, eps, steps=40))
    worst_q = critic_obj(obs + pgd.pgd_perturbation(critic_obj, obs, key, eps, steps=40))
    return float(jnp.mean(worst_a)), float(jnp.mean(worst_q))


@pytest.fixture(scope="module")
def learned():
    """DDPG, DDPG-SR-A and DDPG-SR-C on Pendulum-v1, 2 seeds x 20k steps each (one compile per variant)."""
    out = {}
    # lambda_s in the paper's search range [0.01, 100], eps = 0.1 in raw units (cos, sin in [-1, 1]): the
    # strongest weights that still learn here (SR-C at lambda_s = 0.1 already stalls at about -400).
    for name, target, lambda_s in (("ddpg", None, 0.0), ("sr_a", "actor", 10.0), ("sr_c", "critic", 0.01)):
        cfg = LEARN if target is None else dataclasses.replace(LEARN, smoothness=True, smoothness_target=target)
        trainer = make_trainer(cfg)
        hp = stack_hparams([as_hparams(**LEARN_HP, lambda_s=lambda_s, sr_eps=EPS)] * 2)
        keys = jax.random.split(jax.random.PRNGKey(0), 2)
        state, metrics = jax.jit(jax.vmap(trainer.train))(keys, hp)
        out[name] = (trainer, state, metrics)
    return out


@pytest.mark.parametrize("name", ["ddpg", "sr_a", "sr_c"])
def test_ddpg_learns_pendulum(learned, name):
    # A uniformly random policy scores about -1200 and a solved Pendulum about -150 (CleanRL's DDPG:
    # -150 to -200 after 20k+ steps). Above -400 every seed swings up and balances most of the time.
    _, _, metrics = learned[name]
    returns = np.asarray(metrics["episode_return"])[:, -20:]  # the last 2,000 steps = 10 episodes
    final = np.nanmean(returns, axis=1)
    assert np.all(final > -400), final
    assert np.isnan(metrics["value_loss"][:, :9]).all() and np.isfinite(metrics["value_loss"][:, 10:]).all()


def test_sr_a_and_sr_c_smooth_what_they_regularise(learned):
    """At the trained policy, on states spread over Pendulum's observation box: SR-A lowers the
    worst-case action change in the eps-ball, SR-C the worst-case Q change."""
    key = jax.random.PRNGKey(5)
    obs = jax.random.uniform(key, (512, 3), minval=jnp.array([-1.0, -1.0, -8.0]), maxval=jnp.array([1.0, 1.0, 8.0]))
    gaps = {}
    for name, (trainer, state, _) in learned.items():
        per_seed = [_worst_gaps(trainer, jax.tree.map(lambda x: x[i], state.params), obs, EPS, key) for i in range(2)]
        gaps[name] = np.mean(per_seed, axis=0)
    assert gaps["sr_a"][0] < 0.5 * gaps["ddpg"][0], gaps  # measured: 0.048 vs 0.133
    assert gaps["sr_c"][1] < 0.8 * gaps["ddpg"][1], gaps  # measured: 353 vs 507


def test_ddpg_act_is_the_actor_in_env_units():
    trainer = make_trainer(TINY)
    state = trainer.init(jax.random.PRNGKey(0), as_hparams())
    obs = jnp.ones((3, 3))
    action = trainer.algorithm.act(state.params, obs, jax.random.PRNGKey(1), True)
    np.testing.assert_allclose(action, 2.0 * trainer.actor.apply(state.params["actor"], obs), rtol=1e-6)  # [-2, 2]
    noisy = trainer.algorithm.act(state.params, obs, jax.random.PRNGKey(1), False)
    assert not np.allclose(noisy, action) and np.all(np.abs(noisy) <= 2.0)
    assert isinstance(trainer.algorithm, DDPG)


DDPG_SWEEP = """
train:
  env: gymnax/Pendulum-v1
  algorithm: ddpg
  num_envs: 1
  num_steps: 100
  total_timesteps: 6000
  normalize_rewards: false
  buffer_size: 10000
  learning_starts: 1000
  updates_per_iteration: 50
  smoothness: true
  eval_every: 1
  eval_episodes: 4
hparams:
  learning_rate: 1.0e-4
sweep:
  seeds: 2
  chunk_iterations: 20
  grid:
    lambda_s: [0.0, 10.0]
"""


def test_a_ddpg_sweep_is_evaluated_attacked_loaded_and_reported(tmp_path, capsys):
    from rpo_jax import cli, load_policy
    from rpo_jax.envs import episodes

    (tmp_path / "ddpg.yaml").write_text(DDPG_SWEEP)
    run = tmp_path / "run"
    assert cli.main(["sweep", str(tmp_path / "ddpg.yaml"), "--out", str(run), "--quiet"]) == 0
    assert cli.main(["evaluate", str(run), "--episodes", "4"]) == 0
    table = pd.read_csv(run / "evaluation" / "evaluation.csv")
    assert len(table) == 4 and table["return_mean"].notna().all()
    args = ["robustness", str(run), "--eps", "0.1", "--attacks", "random,mad,critic,fgsm", "--episodes", "2"]
    assert cli.main(args) == 0  # the ball check passed for every attack
    rows = pd.read_csv(run / "robustness" / "robustness.csv")
    assert set(rows["attack"]) == {"random", "mad", "critic", "fgsm"} and rows["return_mean"].notna().all()
    policy = load_policy(run, member=3)  # lambda_s = 10
    assert policy.member["lambda_s"] == 10.0
    result = jax.jit(lambda k: episodes.run_episodes(policy.env, policy, k, 4))(jax.random.PRNGKey(0))
    assert np.all(np.isfinite(np.asarray(result.returns)))
    assert cli.main(["report", str(run), "--out", str(tmp_path / "report"), "--baseline", "lambda_s=0"]) == 0
    assert any((tmp_path / "report").iterdir())
