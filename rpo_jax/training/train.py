"""The PPO / RPO train loop as pure, jit-able and vmap-able functions.

``make_trainer(config)`` fixes the static choices (environment, sizes, switches)
and returns a :class:`Trainer` whose functions take traced hyperparameters::

    trainer = make_trainer(config)
    state, metrics = trainer.train(key, hparams)              # one member
    jax.jit(jax.vmap(trainer.train))(keys, population_hparams)  # a population (see below)

In a population, ``population.over_members(population.population_trainer(trainer, P).train, P)``
names the vmap axis so the members' start caches refill in one real branch (``rpo_jax.envs.starts``);
a plain ``jax.vmap`` gives the same numbers but computes a refill on every step.

The loop, top to bottom (PureJaxRL style, nested ``lax.scan``s)::

    iteration (scan)
      rollout (scan over num_steps): act with the *unperturbed* policy, step all
                                     envs, normalise observations, scale rewards
      critic on all s_t and true successors s'_t; GAE (rpo_jax.core.gae)
      update_epochs (scan)
        shuffle; minibatches (scan): grad of Trainer.loss -- rpo_jax.core.ppo.ppo_loss, where
                                     RPO draws z ~ U(-alpha, alpha) afresh per minibatch,
                                     plus DrAC / SR^2L terms when configured
        (or, with algorithm = trpo: critic epochs, then one natural-gradient step)
      divergence check: a non-finite parameter or loss term sets TrainState.diverged_at
      metrics of the iteration (every float NaN from diverged_at on)

``Trainer.run`` advances a state by a fixed number of iterations so a host loop
can report progress between chunks; ``Trainer.train`` is ``init`` + one
``run`` over all iterations. Both give the same numbers for the same key.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rpo_jax import algorithms, envs
from rpo_jax.config import HParams, TrainConfig
from rpo_jax.core import batching, gae, normalization, ppo
from rpo_jax.core.distributions import action_distribution
from rpo_jax.core.networks import Actor, Critic
from rpo_jax.envs import starts

# Metrics present in every run; components add their own when switched on (drac_policy, drac_value,
# smoothness_penalty, trpo_step_accepted, trpo_step_fraction, trpo_expected_improve). No name may
# equal a member column of metrics.csv (member, seed, a hyperparameter) or "iteration".
METRIC_NAMES: tuple[str, ...] = (
    "episode_return",  # mean undiscounted return of episodes that ended this iteration (NaN if none)
    "episode_length",  # mean length of those episodes (NaN if none)
    "episodes",  # number of episodes that ended this iteration
    "entropy",  # mean policy entropy over the update's minibatches
    "approx_kl",
    "clipfrac",
    "policy_loss",
    "value_loss",
    "learning_rate_current",  # the learning rate of this iteration (annealed if anneal_lr)
    "alpha_current",  # the alpha used in this iteration's loss (annealed if anneal_alpha = 1)
    "env_steps",  # cumulative env steps at the end of the iteration (int32)
    "nonfinite_env_steps",  # env steps of this iteration whose obs or reward was non-finite (int32)
    "runaway_episodes",  # episodes of this iteration the env's runaway guard ended (int32; rpo_jax.envs.core)
    "reused_starts",  # episodes of this iteration that began at a start handed out before (int32; 0 by design)
    "diverged",  # 1.0 from the member's diverged_at iteration on, else 0.0 (see TrainState.diverged_at)
)
# With train.eval_every: the deterministic policy's mean return and episode length on fresh episodes,
# at the last iteration of an evaluated chunk (NaN elsewhere; see Trainer.run).
EVAL_METRIC_NAMES: tuple[str, ...] = ("eval_return", "eval_length")
EVAL_STREAM = 0x45564C  # fold_in data of the evaluation's key ("EVL")
# The aux entries that are terms of the loss (not diagnostics): a non-finite one means divergence.
# TRPO's clipfrac is NaN by design, so diagnostics are not checked.
LOSS_TERM_NAMES: tuple[str, ...] = ("policy_loss", "value_loss", "drac_policy", "drac_value", "smoothness_penalty")
# Metrics left as they are once a member has diverged: the step counters and the flag itself.
KEPT_WHEN_DIVERGED: tuple[str, ...] = (
    "env_steps",
    "nonfinite_env_steps",
    "runaway_episodes",
    "reused_starts",
    "diverged",
)


@flax.struct.dataclass
class TrainState:
    """Everything one population member carries from iteration to iteration."""

    params: Any  # {"actor": ..., "critic": ...}
    opt_state: Any
    normalizer: normalization.NormalizerState
    env_state: envs.EnvState  # batched over num_envs
    obs: jax.Array  # [num_envs, obs_size]: the agent's (normalised) view of the current obs
    episode_return: jax.Array  # [num_envs] raw return of the running episode
    episode_length: jax.Array  # [num_envs]
    key: jax.Array
    iteration: jax.Array  # int32, completed iterations
    starts: starts.StartCache | None  # fresh episode starts (train.reset_pool), else None
    # int32: index (0-based, as the metrics' ``iteration``) of the first iteration after whose update
    # a parameter (actor or critic) or a loss term was non-finite; -1 while that never happened.
    diverged_at: jax.Array
    # population-based training (rpo_jax.training.pbt.PBTState: the hyperparameters in effect, the fitness
    # window) when sweep.pbt is on; None otherwise, so the state is as it was without PBT.
    pbt: Any = None


@flax.struct.dataclass
class Transition:
    obs: jax.Array  # normalised s_t, as the policy saw it
    actions: jax.Array  # a_t before clipping
    logprobs: jax.Array
    rewards: jax.Array  # scaled reward used for learning
    terminations: jax.Array  # no bootstrap from s'_t
    dones: jax.Array  # episode ended (terminated or truncated)
    next_obs: jax.Array  # normalised true successor s'_t (pre-reset)
    nonfinite: jax.Array  # the env's obs or reward was non-finite (zeroed; see rpo_jax.envs.StepResult)
    runaway: jax.Array  # the env's runaway guard ended the episode (rpo_jax.envs.StepResult.runaway)


def make_trainer(config: TrainConfig, env: envs.Environment | None = None) -> "Trainer":
    """Validates ``config`` and builds its trainer (constructs the environment).

    A :class:`Trainer` (the on-policy loop), or the loop an algorithm names as its ``trainer_class``
    (``"module:Class"``; DDPG: :class:`rpo_jax.training.off_policy.OffPolicyTrainer`).
    """
    config.validate()
    algorithms.validate(config)
    if env is None:
        env = envs.make_env(config.env, episode_length=config.episode_length, backend=config.backend)
    named = getattr(algorithms.get(config.algorithm), "trainer_class", None)
    if named is None:
        return Trainer(config, env)
    module, cls = named.split(":")
    return getattr(importlib.import_module(module), cls)(config, env)


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    config: TrainConfig
    env: envs.Environment
    # Name of the vmap axis when members run as a vmapped population (``jax.vmap(..., axis_name=...)``):
    # the start caches of all members then refill together, in a real branch (rpo_jax.envs.starts).
    # None: unbatched, or vmapped without a name (correct, but the refill is then computed every step).
    population_axis: str | None = None

    # ------------------------------------------------------------------ setup
    @property
    def actor(self) -> Actor:
        return Actor(action_size=self.env.action_size, hidden=tuple(self.config.actor_hidden))

    @property
    def critic(self) -> Critic:
        return Critic(hidden=tuple(self.config.critic_hidden))

    @property
    def num_iterations(self) -> int:
        return self.config.num_iterations

    def learning_rate(self, hparams: HParams, iteration: jax.Array) -> jax.Array:
        """``hparams.learning_rate`` times :func:`lr_scale` of iteration ``i`` (0-based)."""
        return hparams.learning_rate * lr_scale(self.config, iteration)

    def optimizer(self, hparams: HParams) -> optax.GradientTransformation:
        """Global-norm gradient clipping, then Adam at :meth:`learning_rate` of the current iteration."""
        updates_per_iteration = self.config.update_epochs * self.config.num_minibatches
        return optax.chain(
            optax.clip_by_global_norm(hparams.max_grad_norm),
            optax.scale_by_adam(eps=self.config.adam_eps),
            optax.scale_by_learning_rate(lambda count: self.learning_rate(hparams, count // updates_per_iteration)),
        )

    def alpha(self, hparams: HParams, iteration: jax.Array) -> jax.Array:
        """RPO's alpha in iteration ``i`` of ``N``: ``alpha * (1 - anneal_alpha * i / (N - 1))``.

        With ``anneal_alpha = 1`` alpha decreases by the same amount at every
        policy update (iteration) and is exactly 0 in the last one (paper §6.2);
        with ``anneal_alpha = 0`` it is constant. Both kinds share a compile.
        ``N`` is ``config.anneal_iterations``, the learning rate's horizon too: the run's
        iterations, or those of ``train.anneal_lr_timesteps`` when a shortened run follows a
        longer run's schedules (alpha then ends above 0, where the longer run is at that point).
        """
        progress = iteration / max(self.config.anneal_iterations - 1, 1)
        return hparams.alpha * (1.0 - hparams.anneal_alpha * progress)

    def _observe(self, normalizer, raw_obs):
        """Updates the observation statistics with ``raw_obs`` and returns the agent's view."""
        if not self.config.normalize_observations:
            return normalizer, raw_obs
        normalizer = normalization.update_observations(normalizer, raw_obs)
        return normalizer, normalization.normalize_observations(normalizer, raw_obs, self.config.obs_clip)

    def init(self, key: jax.Array, hparams: HParams) -> TrainState:
        """Initial state of one member: networks, optimiser, normaliser and ``num_envs`` reset envs."""
        cfg = self.config
        key, k_actor, k_critic, k_env, k_starts = jax.random.split(key, 5)
        dummy = jnp.zeros((self.env.observation_size,), jnp.float32)
        params = {"actor": self.actor.init(k_actor, dummy), "critic": self.critic.init(k_critic, dummy)}
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, cfg.num_envs))
        normalizer = normalization.init(self.env.observation_size, cfg.num_envs, cfg.normalize_per_env)
        normalizer, obs = self._observe(normalizer, env_state.obs)
        return TrainState(
            params=params,
            opt_state=self.optimizer(hparams).init(params),
            normalizer=normalizer,
            env_state=env_state,
            obs=obs,
            episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
            episode_length=jnp.zeros((cfg.num_envs,), jnp.int32),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            starts=starts.init(self.env, k_starts, self.start_cache_size) if cfg.reset_pool else None,
            diverged_at=jnp.full((), -1, jnp.int32),
        )

    # ---------------------------------------------------------------- rollout
    @property
    def start_cache_size(self) -> int:
        """Fresh episode starts computed per refill (:func:`rpo_jax.envs.starts.cache_size`)."""
        return starts.cache_size(self.config.num_envs, self.config.num_steps, self.env.episode_length)

    def _env_step(self, state: TrainState, actions: jax.Array):
        """Steps all envs; episodes that end continue from fresh starts (the cache, or a reset per step)."""
        if not self.config.reset_pool:
            env_state, result = batching.merged_over_members(jax.vmap(self.env.step))(state.env_state, actions)
            return env_state, result, state.starts, jnp.zeros((), jnp.int32)
        return starts.step(self.env, state.env_state, state.starts, actions, self.population_axis)

    def rollout(self, state: TrainState, hparams: HParams, key: jax.Array):
        cfg = self.config
        low = jnp.asarray(self.env.action_low)
        high = jnp.asarray(self.env.action_high)

        def step(carry, step_key):
            state, finished = carry
            loc, log_scale = self.actor.apply(state.params["actor"], state.obs)
            policy = action_distribution(cfg.action_dist, loc, log_scale)  # unperturbed
            actions, logprobs = policy.sample_and_log_prob(seed=step_key)
            env_actions = jnp.clip(actions, low, high) if cfg.clip_actions else actions
            env_state, result, cache, reused = self._env_step(state, env_actions)

            dones = result.terminated | result.truncated
            episode_return = state.episode_return + result.reward
            episode_length = state.episode_length + 1
            finished = (
                finished[0] + jnp.sum(jnp.where(dones, episode_return, 0.0)),
                finished[1] + jnp.sum(jnp.where(dones, episode_length, 0)),
                finished[2] + jnp.sum(dones.astype(jnp.int32)),
                finished[3] + reused,
            )

            normalizer = state.normalizer
            rewards = result.reward
            if cfg.normalize_rewards:
                normalizer, rewards = normalization.scale_rewards(
                    normalizer, rewards, result.terminated, hparams.gamma, cfg.reward_clip
                )
            next_obs = result.final_obs
            if cfg.normalize_observations:  # as gym: the terminal observation counts, then the fresh start
                normalizer = normalization.update_observations(normalizer, result.final_obs, dones)
                final_obs = normalization.normalize_observations(normalizer, result.final_obs, cfg.obs_clip)
            normalizer, obs = self._observe(normalizer, result.obs)
            if cfg.normalize_observations:
                next_obs = jnp.where(dones[:, None], final_obs, obs)
            terminations = result.terminated if cfg.bootstrap_on_truncation else dones
            transition = Transition(
                obs=state.obs,
                actions=actions,
                logprobs=logprobs,
                rewards=rewards,
                terminations=terminations,
                dones=dones,
                next_obs=next_obs,
                nonfinite=result.nonfinite,
                runaway=result.runaway,
            )
            state = state.replace(
                env_state=env_state,
                obs=obs,
                normalizer=normalizer,
                episode_return=jnp.where(dones, 0.0, episode_return),
                episode_length=jnp.where(dones, 0, episode_length),
                starts=cache,
            )
            return (state, finished), transition

        zero = (jnp.zeros((), jnp.float32),) + (jnp.zeros((), jnp.int32),) * 3
        (state, finished), trajectory = jax.lax.scan(step, (state, zero), jax.random.split(key, cfg.num_steps))
        state = state.replace(normalizer=normalization.fold(state.normalizer))  # exact; keeps float32 accurate
        return state, trajectory, finished

    # ----------------------------------------------------------------- update
    @functools.cached_property
    def algorithm(self) -> algorithms.Algorithm:
        """The policy optimiser ``train.algorithm`` names (rpo_jax.algorithms), bound to this trainer."""
        return algorithms.get(self.config.algorithm)(self)

    def update(self, state: TrainState, hparams: HParams, batch: ppo.Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """One iteration's parameter update by :attr:`algorithm`; ``hparams.alpha`` is this iteration's alpha."""
        return self.algorithm.update(state, hparams, batch, key)

    # -------------------------------------------------------------- iteration
    def batch(self, params: Any, traj: Transition, hparams: HParams) -> ppo.Batch:
        """The update's batch: the critic on all ``s_t`` and ``s'_t``, GAE, flattened over (time, env)."""
        critic = functools.partial(self.critic.apply, params["critic"])
        values = critic(traj.obs)
        next_values = critic(traj.next_obs)
        advantages, returns = gae.gae(
            traj.rewards, values, next_values, traj.terminations, traj.dones, hparams.gamma, hparams.gae_lambda
        )
        flat = lambda x: x.reshape((self.config.batch_size,) + x.shape[2:])  # noqa: E731
        return ppo.Batch(
            obs=flat(traj.obs),
            actions=flat(traj.actions),
            logprobs=flat(traj.logprobs),
            advantages=flat(advantages),
            returns=flat(returns),
            values=flat(values),
        )

    def _iteration(self, state: TrainState, hparams: HParams):
        cfg = self.config
        index = state.iteration  # this iteration's 0-based index
        key, rollout_key, update_key = jax.random.split(state.key, 3)
        state, traj, (return_sum, length_sum, episodes, reused) = self.rollout(state, hparams, rollout_key)
        batch = self.batch(state.params, traj, hparams)
        learning_rate = self.learning_rate(hparams, index)
        alpha = self.alpha(hparams, index)
        state, losses = self.update(state, hparams.replace(alpha=alpha), batch, update_key)
        diverged_at = first_divergence(state.diverged_at, index, update_is_finite(state.params, losses))
        state = state.replace(key=key, iteration=index + 1, diverged_at=diverged_at)

        some = episodes > 0
        metrics = {
            "episode_return": jnp.where(some, return_sum / jnp.maximum(episodes, 1), jnp.nan),
            "episode_length": jnp.where(some, length_sum / jnp.maximum(episodes, 1), jnp.nan),
            "episodes": episodes,
            **losses,
            "learning_rate_current": learning_rate,
            "alpha_current": jnp.asarray(alpha, jnp.float32),
            "env_steps": state.iteration * cfg.batch_size,
            "nonfinite_env_steps": jnp.sum(traj.nonfinite.astype(jnp.int32)),
            "runaway_episodes": jnp.sum(traj.runaway.astype(jnp.int32)),
            "reused_starts": reused,
        }
        return state, mask_diverged(metrics, diverged_at >= 0)

    def run(
        self, state: TrainState, hparams: HParams, num_iterations: int, evaluate: jax.Array | bool = False
    ) -> tuple[TrainState, dict]:
        """Advances ``state`` by ``num_iterations`` (static) iterations; see :func:`run_iterations`."""
        return run_iterations(self, state, hparams, num_iterations, evaluate)

    def evaluate(self, state: TrainState) -> tuple[jax.Array, jax.Array]:
        """See :func:`evaluate_policy`."""
        return evaluate_policy(self, state)

    def train(self, key: jax.Array, hparams: HParams) -> tuple[TrainState, dict]:
        """The whole run of one member: ``init``, all iterations (with ``eval_every``, an evaluation at the end)."""
        return self.run(self.init(key, hparams), hparams, self.num_iterations, evaluate=True)


def lr_scale(config: TrainConfig, iteration: jax.Array) -> jax.Array:
    """CleanRL's per-iteration linear annealing factor ``1 - i / N`` with ``train.anneal_lr``, else 1.

    ``N`` is ``config.anneal_iterations``: the run's iterations unless ``train.anneal_lr_timesteps``
    names a longer horizon.
    """
    if not config.anneal_lr:
        return jnp.ones((), jnp.float32)
    return 1.0 - iteration / config.anneal_iterations


def run_iterations(trainer, state, hparams: HParams, num_iterations: int, evaluate: jax.Array | bool = False):
    """``num_iterations`` (static) of ``trainer._iteration`` in a ``lax.scan``: the chunk program of any trainer.

    Returns the new state and metrics, each an array ``[num_iterations]``. With ``train.eval_every``
    the metrics also hold :data:`EVAL_METRIC_NAMES`: NaN, except at the last iteration when
    ``evaluate`` (a bool scalar; unbatched under ``vmap``, so it stays a real branch) -- see
    :func:`evaluate_policy`.
    """
    state, metrics = jax.lax.scan(lambda s, _: trainer._iteration(s, hparams), state, None, length=num_iterations)
    if not trainer.config.eval_every:
        return state, metrics
    nan = jnp.full((), jnp.nan, jnp.float32)
    values = jax.lax.cond(evaluate, trainer.evaluate, lambda _: (nan, nan), state)
    values = [jnp.where(state.diverged_at >= 0, jnp.nan, v) for v in values]
    for name, value in zip(EVAL_METRIC_NAMES, values):
        metrics[name] = jnp.full((num_iterations,), jnp.nan, jnp.float32).at[-1].set(value)
    return state, metrics


def evaluate_policy(trainer, state) -> tuple[jax.Array, jax.Array]:
    """Mean return and length of ``train.eval_episodes`` fresh episodes of the deterministic policy.

    The policy is :func:`rpo_jax.training.acting.make_act` (frozen normaliser statistics, no update); its
    keys are folded from ``state.key`` without consuming it, so training is the same with and
    without evaluation, bit for bit.
    """
    from rpo_jax.envs import episodes
    from rpo_jax.training import acting

    act = functools.partial(acting.make_act(trainer, deterministic=True), state.params, state.normalizer)
    key = jax.random.fold_in(state.key, EVAL_STREAM)
    result = episodes.run_episodes(trainer.env, act, key, trainer.config.eval_episodes)
    return jnp.mean(result.returns), jnp.mean(result.lengths.astype(jnp.float32))


def update_is_finite(params: Any, losses: dict[str, jax.Array]) -> jax.Array:
    """Bool scalar: every parameter leaf (actor and critic) and every loss term (:data:`LOSS_TERM_NAMES`) is finite."""
    leaves = jax.tree.leaves(params) + [v for name, v in losses.items() if name in LOSS_TERM_NAMES]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def first_divergence(diverged_at: jax.Array, index: jax.Array, finite: jax.Array) -> jax.Array:
    """The new ``TrainState.diverged_at``: ``index`` if this is the first non-finite update, else unchanged."""
    return jnp.where((diverged_at < 0) & ~finite, index, diverged_at).astype(jnp.int32)


def mask_diverged(metrics: dict[str, jax.Array], diverged: jax.Array) -> dict[str, jax.Array]:
    """One iteration's metrics of a member, with what a diverged member reports instead.

    ``diverged`` (bool scalar) is ``diverged_at >= 0`` after this iteration's update, so it holds from
    the diverging iteration itself on (whose rollout still used finite parameters). Then every float
    metric is NaN and every other integer metric (the ``episodes`` count) 0, so a diverged member's
    returns never look like results: its NaN actions blow up the env, whose zeroed rewards would
    otherwise read as a return of 0.0. :data:`KEPT_WHEN_DIVERGED` are kept. Adds ``diverged``
    (float32 1.0 / 0.0). When not ``diverged`` every value is returned unchanged, bit for bit.
    """

    def masked(name: str, value: jax.Array) -> jax.Array:
        value = jnp.asarray(value)
        if name in KEPT_WHEN_DIVERGED:
            return value
        if jnp.issubdtype(value.dtype, jnp.floating):
            return jnp.where(diverged, jnp.nan, value).astype(value.dtype)
        return jnp.where(diverged, 0, value).astype(value.dtype)

    out = {name: masked(name, value) for name, value in metrics.items()}
    return {**out, "diverged": diverged.astype(jnp.float32)}


def as_hparams(values: dict[str, Any] | HParams | None = None, **overrides: Any) -> HParams:
    """An :class:`HParams` of float32 scalars (or arrays) from defaults, a dict and keyword overrides."""
    base = values if isinstance(values, HParams) else HParams(**(values or {}))
    base = base.replace(**overrides) if overrides else base
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), base)


def stack_hparams(rows: list[HParams]) -> HParams:
    """Stacks per-member hyperparameters into one HParams with a leading population axis."""
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x, np.float32) for x in xs])), *rows)
