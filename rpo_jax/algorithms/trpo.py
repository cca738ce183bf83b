"""TRPO and TRPO-SR (SR^2L's on-policy base, after garage's TRPO).

Per iteration: fit the critic by Adam minibatch epochs -- a plain regression on the returns, as
garage's baseline fit (clipped around the old values by ``clip_coef`` only with
``train.trpo_clip_vloss``; PPO's ``clip_vloss`` does not apply) -- then one natural-gradient policy
step (rpo_jax.core.trpo.trpo_step: conjugate gradient on Fisher-vector products, backtracking line search)
that maximises ``mean(ratio * A) - lambda_s * R_s`` (SR^2L Eq. 8; the regulariser only with
``train.smoothness``) under ``mean KL(pi_old || pi) <= max_kl``, on the whole batch. SR^2L's
adversarial states are found once, by PGD against the policy before the step, and held fixed
through the line search.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from rpo_jax.algorithms import Trainer, TrainState, loss_terms
from rpo_jax.algorithms.ppo import stochastic_actor_act, stochastic_actor_target, validate_on_policy
from rpo_jax.config import ConfigError, HParams, TrainConfig
from rpo_jax.core import divergences, ppo, trpo
from rpo_jax.core.distributions import action_distribution


class TRPO:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.config = trainer.config
        smooth = trainer.config.smoothness
        self.smoothness = loss_terms.Smoothness(trainer.config, trainer.actor.apply) if smooth else None

    @staticmethod
    def validate(config: TrainConfig) -> None:
        validate_on_policy(config)
        if config.action_dist != "gaussian":
            raise ConfigError("train.algorithm=trpo needs train.action_dist=gaussian")

    def act(self, params: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return stochastic_actor_act(self.trainer, params, obs, key, deterministic)

    def attack_target(self, params: Any, agent_input, perturbed):
        return stochastic_actor_target(self.trainer, params, agent_input, perturbed)

    def _fit_critic(self, state: TrainState, hparams: HParams, batch: ppo.Batch, key: jax.Array):
        cfg = self.config
        tx = self.trainer.optimizer(hparams)
        critic_apply = self.trainer.critic.apply

        def value_loss(critic_params, minibatch):
            clip = hparams.clip_coef if cfg.trpo_clip_vloss else None
            return ppo.critic_loss(critic_apply(critic_params, minibatch.obs), minibatch, clip)

        def minibatch_step(carry, minibatch):
            params, opt_state = carry
            loss, critic_grads = jax.value_and_grad(value_loss)(params["critic"], minibatch)
            grads = {"actor": jax.tree.map(jnp.zeros_like, params["actor"]), "critic": critic_grads}
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def epoch(carry, epoch_key):
            shuffled = ppo.shuffled_minibatches(epoch_key, batch, cfg.num_minibatches)
            return jax.lax.scan(minibatch_step, carry, shuffled)

        return jax.lax.scan(epoch, (state.params, state.opt_state), jax.random.split(key, cfg.update_epochs))

    def update(self, state: TrainState, hparams: HParams, batch: ppo.Batch, key: jax.Array) -> tuple[TrainState, dict]:
        cfg = self.config
        value_key, sr_key = jax.random.split(key)
        (params, opt_state), value_losses = self._fit_critic(state, hparams, batch, value_key)

        actor_apply = self.trainer.actor.apply
        old_mean, old_log_std = jax.lax.stop_gradient(actor_apply(params["actor"], batch.obs))
        advantages = ppo.normalize_advantages(batch.advantages) if cfg.norm_adv else batch.advantages
        if self.smoothness is not None:
            _, obs_adv = self.smoothness.penalty(params["actor"], batch.obs, hparams, sr_key)

        def surrogate_terms(actor_params):
            mean, log_std = actor_apply(actor_params, batch.obs)
            logprob = action_distribution(cfg.action_dist, mean, log_std).log_prob(batch.actions)
            gain = jnp.mean(jnp.exp(logprob - batch.logprobs) * advantages)
            if self.smoothness is None:
                return gain, jnp.zeros(())
            return gain, self.smoothness.at(actor_params, batch.obs, obs_adv)

        def surrogate(actor_params):
            gain, penalty = surrogate_terms(actor_params)
            return gain - hparams.lambda_s * penalty if self.smoothness is not None else gain

        def kl_from_old(actor_params):
            mean, log_std = actor_apply(actor_params, batch.obs)
            return jnp.mean(divergences.gaussian_kl(old_mean, old_log_std, mean, log_std))

        actor_params, info = trpo.trpo_step(
            surrogate,
            kl_from_old,
            params["actor"],
            max_kl=hparams.max_kl,
            cg_iters=cfg.trpo_cg_iters,
            damping=cfg.trpo_damping,
            backtrack_iters=cfg.trpo_backtrack_iters,
            backtrack_coef=cfg.trpo_backtrack_coef,
        )
        gain, penalty = surrogate_terms(actor_params)
        mean, log_std = actor_apply(actor_params, batch.obs)
        aux = {
            "policy_loss": -gain,
            "value_loss": value_losses.mean(),
            "entropy": action_distribution(cfg.action_dist, mean, log_std).entropy().mean(),
            "approx_kl": info["kl"],
            "clipfrac": jnp.full((), jnp.nan),  # no clipping in TRPO
            "trpo_step_accepted": info["step_accepted"].astype(jnp.float32),
            "trpo_step_fraction": info["step_fraction"],
            "trpo_expected_improve": info["expected_improve"],
        }
        if self.smoothness is not None:
            aux["smoothness_penalty"] = penalty
        return state.replace(params={**params, "actor": actor_params}, opt_state=opt_state), aux
