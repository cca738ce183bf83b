"""The off-policy (DDPG) train loop as pure, jit-able and vmap-able functions, replay buffer in the state.

:class:`OffPolicyTrainer` has the interface of :class:`rpo_jax.training.train.Trainer` (``init``, ``run``,
``train``, ``evaluate``, ``algorithm``), so populations, sharding, durable runs, evaluation and
``load_policy`` use it unchanged. One iteration, top to bottom (nested ``lax.scan``s)::

    iteration (scan)
      rollout (scan over num_steps): the behaviour policy clip(mu(s) + N(0, sigma^2)) -- uniform
                 random actions while fewer than train.learning_starts env steps were taken, for
                 whole iterations -- steps all envs (fresh starts, rpo_jax.envs.starts), updates the
                 observation statistics and records (raw s, a, r, raw s', terminated[, env])
      buffer: the iteration's num_envs x num_steps transitions appended in time order (rpo_jax.core.replay)
      updates (scan over updates_per_iteration), once learning has started: a uniform minibatch,
                 observations normalised with the statistics of this iteration, one DDPG step
                 (rpo_jax.algorithms.ddpg: critic, actor, targets)
      divergence check and metrics (losses NaN before learning starts)

The buffer keeps raw observations, and the update normalises them with the statistics as they are
at the end of this iteration's rollout -- the same maps the actor acts through
(``normalization.normalize_observations``). With ``train.normalize_per_env`` and ``num_envs > 1``
each env has its own statistics, so each transition also stores the index of the env it came from
(``Stored.env``) and its ``s`` and ``s'`` are normalised with that env's statistics: what the update
trains on is what the actor would see in that env now, not a view through the statistics merged
over envs (which no env acts on). Pooled statistics, or a single env, need no index: ``Stored.env``
is then ``None`` and the buffer holds exactly the fields it always did. Evaluation and attacks of a
trained member still use the merged statistics (``normalization.evaluation_stats``), as for PPO.

``terminated`` is the true terminal flag (``train.bootstrap_on_truncation``, default), or also a
time-limit cut when that is false (CleanRL's semantics).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp

from rpo_jax import envs
from rpo_jax.config import HParams, TrainConfig
from rpo_jax.core import normalization, replay
from rpo_jax.core.networks import DeterministicActor, QCritic
from rpo_jax.envs import starts
from rpo_jax.training.train import evaluate_policy, first_divergence, mask_diverged, run_iterations, update_is_finite
from rpo_jax.training.train import lr_scale as train_lr_scale


@flax.struct.dataclass
class OffPolicyState:
    """Everything one DDPG member carries from iteration to iteration (the fields the population saves first)."""

    params: Any  # {"actor", "critic", "target_actor", "target_critic"}
    opt_state: Any  # {"actor", "critic"}
    normalizer: normalization.NormalizerState
    key: jax.Array
    iteration: jax.Array
    diverged_at: jax.Array
    env_state: envs.EnvState
    obs: jax.Array  # [num_envs, obs_size]: the agent's (normalised) view of the current obs
    episode_return: jax.Array
    episode_length: jax.Array
    starts: starts.StartCache | None
    buffer: replay.ReplayBuffer


@flax.struct.dataclass
class Stored:
    """One transition as the buffer keeps it: raw observations, the action in ``[-1, 1]`` units.

    ``env``: the index of the env it came from, kept only where each env has its own observation
    statistics (:attr:`OffPolicyTrainer.stores_env`); ``None`` (no leaf) otherwise.
    """

    obs: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    env: jax.Array | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class OffPolicyTrainer:
    config: TrainConfig
    env: envs.Environment
    population_axis: str | None = None

    @property
    def actor(self) -> DeterministicActor:
        return DeterministicActor(action_size=self.env.action_size, hidden=tuple(self.config.actor_hidden))

    @property
    def critic(self) -> QCritic:
        return QCritic(hidden=tuple(self.config.critic_hidden))

    @property
    def num_iterations(self) -> int:
        return self.config.num_iterations

    @functools.cached_property
    def algorithm(self):
        from rpo_jax import algorithms

        return algorithms.get(self.config.algorithm)(self)

    @property
    def stores_env(self) -> bool:
        """Transitions carry their env's index: observations normalised with per-env statistics, 2+ envs."""
        cfg = self.config
        return cfg.normalize_observations and cfg.normalize_per_env and cfg.num_envs > 1

    def to_env(self, unit: jax.Array) -> jax.Array:
        """``[-1, 1]`` -> the env's ``[low, high]`` (affine)."""
        low, high = jnp.asarray(self.env.action_low), jnp.asarray(self.env.action_high)
        return low + (unit + 1.0) * 0.5 * (high - low)

    def _observe(self, normalizer, raw_obs, weights=None):
        if not self.config.normalize_observations:
            return normalizer, raw_obs
        normalizer = normalization.update_observations(normalizer, raw_obs, weights)
        return normalizer, normalization.normalize_observations(normalizer, raw_obs, self.config.obs_clip)

    # ------------------------------------------------------------------ setup
    def init(self, key: jax.Array, hparams: HParams) -> OffPolicyState:
        cfg, size = self.config, self.env.observation_size
        key, k_actor, k_critic, k_env, k_starts = jax.random.split(key, 5)
        obs0, act0 = jnp.zeros((size,), jnp.float32), jnp.zeros((self.env.action_size,), jnp.float32)
        actor, critic = self.actor.init(k_actor, obs0), self.critic.init(k_critic, obs0, act0)
        params = {"actor": actor, "critic": critic, "target_actor": actor, "target_critic": critic}
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, cfg.num_envs))
        normalizer, obs = self._observe(normalization.init(size, cfg.num_envs, cfg.normalize_per_env), env_state.obs)
        zero = jnp.zeros((), jnp.float32)
        env_index = jnp.zeros((), jnp.int32) if self.stores_env else None
        example = Stored(obs=obs0, actions=act0, rewards=zero, next_obs=obs0, terminated=zero, env=env_index)
        cache_size = starts.cache_size(cfg.num_envs, cfg.num_steps, self.env.episode_length)
        return OffPolicyState(
            params=params,
            opt_state=self.algorithm.init_optimizer(params),
            normalizer=normalizer,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            diverged_at=jnp.full((), -1, jnp.int32),
            env_state=env_state,
            obs=obs,
            episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
            episode_length=jnp.zeros((cfg.num_envs,), jnp.int32),
            starts=starts.init(self.env, k_starts, cache_size) if cfg.reset_pool else None,
            buffer=replay.init(cfg.buffer_size, example),
        )

    # ---------------------------------------------------------------- rollout
    def rollout(self, state: OffPolicyState, hparams: HParams, key: jax.Array):
        cfg = self.config
        random_phase = state.iteration * cfg.batch_size < cfg.learning_starts

        def step(carry, step_key):
            state, finished = carry
            noise_key, uniform_key = jax.random.split(step_key)
            unit = self.algorithm.explore(
                self.actor.apply(state.params["actor"], state.obs), hparams.exploration_noise, noise_key
            )
            uniform = jax.random.uniform(uniform_key, unit.shape, minval=-1.0, maxval=1.0)
            unit = jnp.where(random_phase, uniform, unit)
            if cfg.reset_pool:
                env_state, result, cache, reused = starts.step(
                    self.env, state.env_state, state.starts, self.to_env(unit), self.population_axis
                )
            else:
                env_state, result = jax.vmap(self.env.step)(state.env_state, self.to_env(unit))
                cache, reused = state.starts, jnp.zeros((), jnp.int32)
            dones = result.terminated | result.truncated
            episode_return = state.episode_return + result.reward
            episode_length = state.episode_length + 1
            finished = (
                finished[0] + jnp.sum(jnp.where(dones, episode_return, 0.0)),
                finished[1] + jnp.sum(jnp.where(dones, episode_length, 0)),
                finished[2] + jnp.sum(dones.astype(jnp.int32)),
                finished[3] + reused,
                finished[4] + jnp.sum(result.nonfinite.astype(jnp.int32)),
                finished[5] + jnp.sum(result.runaway.astype(jnp.int32)),
            )
            terminated = result.terminated if cfg.bootstrap_on_truncation else dones
            stored = Stored(
                obs=state.env_state.obs,
                actions=unit,
                rewards=result.reward,
                next_obs=result.final_obs,
                terminated=terminated.astype(jnp.float32),
                env=jnp.arange(cfg.num_envs, dtype=jnp.int32) if self.stores_env else None,
            )
            normalizer = state.normalizer
            if cfg.normalize_observations:  # as gym: the terminal observation counts, then the fresh start
                normalizer = normalization.update_observations(normalizer, result.final_obs, dones)
            normalizer, obs = self._observe(normalizer, result.obs)
            state = state.replace(
                env_state=env_state,
                obs=obs,
                normalizer=normalizer,
                episode_return=jnp.where(dones, 0.0, episode_return),
                episode_length=jnp.where(dones, 0, episode_length),
                starts=cache,
            )
            return (state, finished), stored

        zero = (jnp.zeros((), jnp.float32),) + (jnp.zeros((), jnp.int32),) * 5
        (state, finished), stored = jax.lax.scan(step, (state, zero), jax.random.split(key, cfg.num_steps))
        state = state.replace(normalizer=normalization.fold(state.normalizer))
        flat = jax.tree.map(lambda x: x.reshape((cfg.batch_size,) + x.shape[2:]), stored)  # time-major order
        return state.replace(buffer=replay.add(state.buffer, flat)), finished

    # ----------------------------------------------------------------- update
    def _normalize(self, normalizer, raw: jax.Array, env: jax.Array | None) -> jax.Array:
        """Replayed raw observations ``[n, obs_size]`` as the actor sees them (see the module docstring).

        ``env`` (``[n]``, with :attr:`stores_env`): each row through its own env's statistics, the
        elementwise maths of ``normalization.normalize_observations``. Without it, the pooled
        statistics (or, per env at ``num_envs = 1``, the one env's, which merging leaves unchanged).
        """
        clip = self.config.obs_clip
        if not self.config.normalize_observations:
            return raw
        if env is None:
            return normalization.normalize_for_evaluation(normalizer, raw, clip)
        current = jax.vmap(lambda m: m.current)(normalizer.obs)  # [num_envs, obs_size] statistics
        return jax.vmap(lambda e, o: jax.tree.map(lambda x: x[e], current).normalize(o, clip))(env, raw)

    def update(self, state: OffPolicyState, hparams: HParams, key: jax.Array, lr_scale: jax.Array):
        """``updates_per_iteration`` DDPG steps on uniform minibatches; losses averaged over them."""
        from rpo_jax.algorithms.ddpg import Replayed

        cfg = self.config

        def one(carry, step_key):
            params, opt_state = carry
            sample_key, loss_key = jax.random.split(step_key)
            raw = replay.sample(state.buffer, sample_key, cfg.replay_batch_size)
            batch = Replayed(
                obs=self._normalize(state.normalizer, raw.obs, raw.env),
                actions=raw.actions,
                rewards=raw.rewards,
                next_obs=self._normalize(state.normalizer, raw.next_obs, raw.env),
                terminated=raw.terminated,
            )
            params, opt_state, aux = self.algorithm.step(params, opt_state, batch, hparams, loss_key, lr_scale)
            return (params, opt_state), aux

        keys = jax.random.split(key, cfg.updates_per_iteration)
        (params, opt_state), aux = jax.lax.scan(one, (state.params, state.opt_state), keys)
        return params, opt_state, jax.tree.map(jnp.mean, aux)

    # -------------------------------------------------------------- iteration
    def _iteration(self, state: OffPolicyState, hparams: HParams):
        cfg = self.config
        index = state.iteration
        key, rollout_key, update_key = jax.random.split(state.key, 3)
        state, (return_sum, length_sum, episodes, reused, nonfinite, runaway) = self.rollout(
            state, hparams, rollout_key
        )
        lr_scale = train_lr_scale(cfg, index)
        params, opt_state, losses = self.update(state, hparams, update_key, lr_scale)
        learning = (index + 1) * cfg.batch_size >= cfg.learning_starts
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(learning, n, o), new, old)  # noqa: E731
        state = state.replace(params=keep(params, state.params), opt_state=keep(opt_state, state.opt_state))
        losses = {k: jnp.where(learning, v, jnp.nan) for k, v in losses.items()}
        finite = update_is_finite(state.params, {k: jnp.where(learning, v, 0.0) for k, v in losses.items()})
        diverged_at = first_divergence(state.diverged_at, index, finite)
        state = state.replace(key=key, iteration=index + 1, diverged_at=diverged_at)
        some = episodes > 0
        nan = jnp.full((), jnp.nan, jnp.float32)
        metrics = {
            "episode_return": jnp.where(some, return_sum / jnp.maximum(episodes, 1), jnp.nan),
            "episode_length": jnp.where(some, length_sum / jnp.maximum(episodes, 1), jnp.nan),
            "episodes": episodes,
            "entropy": nan,
            "approx_kl": nan,
            "clipfrac": nan,
            **losses,
            "learning_rate_current": hparams.learning_rate * lr_scale,
            "alpha_current": nan,
            "env_steps": state.iteration * cfg.batch_size,
            "nonfinite_env_steps": nonfinite,
            "runaway_episodes": runaway,
            "reused_starts": reused,
        }
        return state, mask_diverged(metrics, diverged_at >= 0)

    def run(self, state: OffPolicyState, hparams: HParams, num_iterations: int, evaluate: jax.Array | bool = False):
        """Advances ``state`` by ``num_iterations`` (static) iterations: :func:`run_iterations`."""
        return run_iterations(self, state, hparams, num_iterations, evaluate)

    def evaluate(self, state: OffPolicyState) -> tuple[jax.Array, jax.Array]:
        return evaluate_policy(self, state)

    def train(self, key: jax.Array, hparams: HParams):
        """The whole run of one member: ``init``, all iterations (with ``eval_every``, an evaluation at the end)."""
        return self.run(self.init(key, hparams), hparams, self.num_iterations, evaluate=True)
