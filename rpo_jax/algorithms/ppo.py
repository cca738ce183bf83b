"""PPO and RPO (CleanRL's ``ppo_continuous_action.py`` / ``rpo_continuous_action.py``), PPO-SR.

``update_epochs`` passes over the iteration's batch, each in ``num_minibatches`` shuffled
minibatches, one Adam step (after global-norm clipping) per minibatch on

    ppo_loss (rpo_jax.core.ppo: clipped surrogate under RPO's perturbed mean, value loss, entropy bonus)
    + the configured loss terms (rpo_jax.algorithms.loss_terms: DrAC, SR^2L's smoothness regulariser).

RAD is an input transform: the loss sees augmented minibatch observations, the stored rollout does
not change. PPO-SR with ``train.smoothness_pgd: iteration`` finds SR^2L's adversarial states once,
on the whole batch against the parameters at the start of the update, and keeps them for every
epoch (about 3x cheaper than PGD per minibatch, the definition).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from rpo_jax.algorithms import Trainer, TrainState, loss_terms
from rpo_jax.config import ConfigError, HParams, TrainConfig
from rpo_jax.core import augmentation, ppo
from rpo_jax.core.distributions import action_distribution


def validate_on_policy(config: TrainConfig) -> None:
    """What every on-policy algorithm here needs: minibatches that divide the batch, a smoothed policy."""
    if config.batch_size % config.num_minibatches:
        raise ConfigError(
            f"train.num_minibatches={config.num_minibatches} does not divide the batch "
            f"num_envs*num_steps={config.batch_size}"
        )
    if config.smoothness and config.smoothness_target != "actor":
        raise ConfigError(f"train.smoothness_target={config.smoothness_target} needs train.algorithm=ddpg")


def stochastic_actor_target(trainer: Trainer, params: Any, agent_input, perturbed):
    """:class:`rpo_jax.core.attacks.Target` of a stochastic-actor member: ``pi`` as (loc, log_scale), V, D_J."""
    from rpo_jax.core import attacks, divergences

    dist = trainer.config.action_dist

    def divergence(clean, other):
        if dist == "gaussian":  # closed form
            return divergences.jeffreys_gaussian(clean[0], clean[1], other[0], other[1])
        return divergences.jeffreys(action_distribution(dist, *clean), action_distribution(dist, *other))

    return attacks.Target(
        policy=lambda point: trainer.actor.apply(params["actor"], agent_input(point)),
        value=lambda point: trainer.critic.apply(params["critic"], agent_input(point)),
        divergence=divergence,
        perturbed=perturbed,
    )


def stochastic_actor_act(
    trainer: Trainer, params: Any, obs: jax.Array, key: jax.Array, deterministic: bool
) -> jax.Array:
    """The action of the stochastic actor ``pi(. | s)`` on the agent's (normalised) ``obs``, unclipped.

    ``deterministic``: the location ``loc`` (the mean of the Gaussian, the mode of Laplace and
    Gumbel); else a draw from the UNPERTURBED policy, as in the rollout (RPO's ``z`` only enters
    the loss).
    """
    loc, log_scale = trainer.actor.apply(params["actor"], obs)
    if deterministic:
        return loc
    return action_distribution(trainer.config.action_dist, loc, log_scale).sample(seed=key)


class PPO:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.config = trainer.config
        self.terms = loss_terms.build(trainer.config, trainer.actor.apply, trainer.critic.apply)

    @staticmethod
    def validate(config: TrainConfig) -> None:
        validate_on_policy(config)
        if config.smoothness and config.action_dist != "gaussian":
            raise ConfigError("train.smoothness needs train.action_dist=gaussian (D_J in closed form)")

    def act(self, params: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return stochastic_actor_act(self.trainer, params, obs, key, deterministic)

    def attack_target(self, params: Any, agent_input, perturbed):
        return stochastic_actor_target(self.trainer, params, agent_input, perturbed)

    def loss(
        self, params: Any, batch: ppo.Batch, hparams: HParams, key: jax.Array, obs_adv: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The loss of one minibatch: PPO/RPO plus the configured terms.

        ``key`` feeds independent streams for RPO's ``z``, the augmentation and the smoothness
        regulariser. ``hparams.alpha`` must already be this iteration's alpha.
        """
        cfg, trainer = self.config, self.trainer
        z_key, aug_key, sr_key = jax.random.split(key, 3)
        streams = {"augmentation": aug_key, "smoothness": sr_key}
        ppo_batch = batch
        if cfg.augmentation == "rad":  # the loss sees augmented inputs; the stored rollout is untouched
            scaled = augmentation.random_amplitude_scaling(aug_key, batch.obs, cfg.rad_scale_low, cfg.rad_scale_high)
            ppo_batch = batch.replace(obs=scaled)
        loss, aux = ppo.ppo_loss(
            params,
            ppo_batch,
            hparams,
            z_key if cfg.perturb_mean else None,
            actor_apply=trainer.actor.apply,
            critic_apply=trainer.critic.apply,
            norm_adv=cfg.norm_adv,
            clip_vloss=cfg.clip_vloss,
            action_dist=cfg.action_dist,
        )
        for term in self.terms:
            value, term_aux = term(params, batch, hparams, streams[term.stream], obs_adv)
            loss = loss + value
            aux = {**aux, **term_aux}
        return loss, aux

    def update(self, state: TrainState, hparams: HParams, batch: ppo.Batch, key: jax.Array) -> tuple[TrainState, dict]:
        cfg = self.config
        obs_adv = None
        if cfg.smoothness and cfg.smoothness_pgd == "iteration":
            key, sr_key = jax.random.split(key)
            smoothness = next(t for t in self.terms if isinstance(t, loss_terms.Smoothness))
            obs_adv = smoothness.penalty(state.params["actor"], batch.obs, hparams, sr_key)[1]
        tx = self.trainer.optimizer(hparams)
        grad_fn = jax.grad(self.loss, has_aux=True)

        def minibatch_step(carry, xs):
            params, opt_state = carry
            (minibatch, minibatch_adv), noise_key = xs
            grads, aux = grad_fn(params, minibatch, hparams, noise_key, minibatch_adv)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), aux

        def epoch(carry, epoch_key):
            perm_key, noise_key = jax.random.split(epoch_key)
            shuffled = ppo.shuffled_minibatches(perm_key, (batch, obs_adv), cfg.num_minibatches)
            noise_keys = jax.random.split(noise_key, cfg.num_minibatches)
            return jax.lax.scan(minibatch_step, carry, (shuffled, noise_keys))

        (params, opt_state), aux = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key, cfg.update_epochs)
        )
        return state.replace(params=params, opt_state=opt_state), jax.tree.map(jnp.mean, aux)
