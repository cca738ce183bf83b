"""DDPG (Lillicrap et al. 2016, as garage runs it for the SR^2L paper) and DDPG-SR-A / DDPG-SR-C.

One gradient step on a minibatch ``B`` of replayed transitions ``(s, a, r, s', terminated)``
(SR^2L paper §2.2 and Algorithms 2-3; garage's ``DDPG``):

1. critic: ``y = r + gamma (1 - terminated) Q'(s', mu'(s'))`` with the target networks;
   ``L_Q = mean_B (Q(s, a) - y)^2`` (+ ``lambda_s`` x the critic smoothness penalty, DDPG-SR-C);
   one Adam step at ``critic_learning_rate``;
2. actor, with the UPDATED critic: ``L_mu = -mean_B Q(s, mu(s))`` (+ ``lambda_s`` x the actor
   smoothness penalty, DDPG-SR-A); one Adam step at ``learning_rate``;
3. targets: ``theta' <- tau theta + (1 - tau) theta'``, ``phi' <- tau phi + (1 - tau) phi'``.

Observations are normalised by the member's running statistics (``train.normalize_observations``) at
the time of the update -- with ``train.normalize_per_env``, each transition by the statistics of the
env it came from, the view the actor acts on (:mod:`rpo_jax.training.off_policy`) -- so the SR^2L eps-ball is
in normalised units as for PPO-SR; actions enter the critic in the actor's ``[-1, 1]`` units.
Exploration (``act(..., deterministic=False)`` and the rollout): Gaussian noise
``N(0, exploration_noise^2)`` in those units, clipped to the bounds -- not garage's Ornstein-Uhlenbeck
process: TD3 (Fujimoto et al. 2018) found uncorrelated Gaussian noise as good, and it needs no state
carried across steps and resets. The loop around it (rollout, replay buffer, targets'
initialisation) is :mod:`rpo_jax.training.off_policy`.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from rpo_jax.algorithms import Trainer
from rpo_jax.config import ConfigError, HParams, TrainConfig
from rpo_jax.core import smoothness


@flax.struct.dataclass
class Replayed:
    """A minibatch of transitions, observations normalised, actions in ``[-1, 1]``."""

    obs: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


class DDPG:
    trainer_class = "rpo_jax.training.off_policy:OffPolicyTrainer"

    def __init__(self, trainer: Trainer) -> None:  # rpo_jax.training.off_policy.OffPolicyTrainer
        self.trainer = trainer
        self.config = trainer.config

    @staticmethod
    def validate(config: TrainConfig) -> None:
        if config.normalize_rewards:
            raise ConfigError(
                "train.algorithm=ddpg learns from raw rewards (as garage): set train.normalize_rewards: false"
            )
        if config.augmentation != "none":
            raise ConfigError("train.augmentation applies to ppo only, not train.algorithm=ddpg")

    # ------------------------------------------------------------------ acting
    def act(self, params: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        """``mu(obs)`` in env units; else with the default exploration noise (``HParams().exploration_noise``)."""
        unit = self.trainer.actor.apply(params["actor"], obs)
        if not deterministic:
            unit = self.explore(unit, HParams().exploration_noise, key)
        return self.trainer.to_env(unit)

    def attack_target(self, params: Any, agent_input, perturbed):
        """:class:`rpo_jax.core.attacks.Target`: ``mu``, ``Q(s, mu(s))``, ``||mu(s) - mu(s')||^2`` (SR-A's D)."""
        from rpo_jax.core import attacks

        actor, critic = self.trainer.actor.apply, self.trainer.critic.apply

        def value(point):
            obs = agent_input(point)
            return critic(params["critic"], obs, actor(params["actor"], obs))

        return attacks.Target(
            policy=lambda point: actor(params["actor"], agent_input(point)),
            value=value,
            divergence=lambda clean, other: jnp.sum((clean - other) ** 2, axis=-1),
            perturbed=perturbed,
        )

    @staticmethod
    def explore(unit_action: jax.Array, noise: jax.Array | float, key: jax.Array) -> jax.Array:
        """The behaviour policy: ``clip(mu + N(0, noise^2), -1, 1)`` in the actor's units."""
        return jnp.clip(unit_action + noise * jax.random.normal(key, unit_action.shape), -1.0, 1.0)

    # ------------------------------------------------------------------ losses
    def critic_loss(self, critic_params: Any, params: Any, batch: Replayed, hparams: HParams) -> tuple[jax.Array, dict]:
        """``mean_B (Q(s, a) - y)^2``, ``y = r + gamma (1 - terminated) Q'(s', mu'(s'))`` (no gradient through y)."""
        trainer = self.trainer
        q_apply = trainer.critic.apply
        next_action = trainer.actor.apply(params["target_actor"], batch.next_obs)
        next_q = q_apply(params["target_critic"], batch.next_obs, next_action)
        target = jax.lax.stop_gradient(batch.rewards + hparams.gamma * (1.0 - batch.terminated) * next_q)
        q = q_apply(critic_params, batch.obs, batch.actions)
        td = jnp.mean((q - target) ** 2)
        return td, {"value_loss": td, "q_mean": jnp.mean(q)}

    def actor_loss(self, actor_params: Any, critic_params: Any, batch: Replayed) -> tuple[jax.Array, dict]:
        """``-mean_B Q(s, mu(s))``."""
        trainer = self.trainer
        policy_loss = -jnp.mean(
            trainer.critic.apply(critic_params, batch.obs, trainer.actor.apply(actor_params, batch.obs))
        )
        return policy_loss, {"policy_loss": policy_loss}

    def penalty(self, target: str, params: Any, batch: Replayed, hparams: HParams, key: jax.Array) -> jax.Array:
        """The SR^2L penalty of ``target`` (``"actor"``: SR-A, ``"critic"``: SR-C) at ``params`` of that network."""
        cfg, trainer = self.config, self.trainer
        options = {"steps": cfg.smoothness_steps, "norm": cfg.smoothness_norm}
        if target == "actor":
            return smoothness.actor_smoothness_penalty(
                trainer.actor.apply, params, batch.obs, key, hparams.sr_eps, **options
            )[0]
        return smoothness.critic_smoothness_penalty(
            trainer.critic.apply, params, batch.obs, batch.actions, key, hparams.sr_eps, **options
        )[0]

    def _grads(self, name: str, loss_fn, params: Any, batch: Replayed, hparams: HParams, key: jax.Array):
        """Gradient of ``loss_fn`` (+ ``lambda_s`` x the penalty when ``name`` is the smoothed network).

        The two gradients are taken apart and summed, ``g + lambda_s g_penalty``: the gradient of the
        sum, and exactly plain DDPG's ``g`` when ``lambda_s = 0``. Whole runs are bit-identical to
        plain DDPG's where the compiler contracts no ``a * b + c`` into a fused multiply-add; with
        FMA, XLA:CPU's contraction follows each program's fusion, and runs agree to float rounding
        (tests/test_ddpg.py).
        """
        grads, aux = jax.grad(loss_fn, has_aux=True)(params)
        if self.config.smoothness and self.config.smoothness_target == name:
            value, penalty_grads = jax.value_and_grad(lambda p: self.penalty(name, p, batch, hparams, key))(params)
            grads = jax.tree.map(lambda g, h: g + hparams.lambda_s * h, grads, penalty_grads)
            aux = {**aux, "smoothness_penalty": value}
        return grads, aux

    # ------------------------------------------------------------------ update
    def init_optimizer(self, params: Any) -> dict:
        adam = optax.scale_by_adam(eps=self.config.adam_eps)
        return {"actor": adam.init(params["actor"]), "critic": adam.init(params["critic"])}

    def _adam(self, grads: Any, state: Any, learning_rate: jax.Array) -> tuple[Any, Any]:
        """Adam (garage: no gradient clipping) at a traced learning rate."""
        updates, state = optax.scale_by_adam(eps=self.config.adam_eps).update(grads, state)
        return jax.tree.map(lambda u: -learning_rate * u, updates), state

    def step(
        self, params: Any, opt_state: Any, batch: Replayed, hparams: HParams, key: jax.Array, lr_scale: jax.Array
    ) -> tuple[Any, Any, dict]:
        """One gradient step of critic, actor and targets; ``lr_scale`` multiplies both learning rates."""
        critic_key, actor_key = jax.random.split(key)
        critic_grads, critic_aux = self._grads(
            "critic",
            lambda c: self.critic_loss(c, params, batch, hparams),
            params["critic"],
            batch,
            hparams,
            critic_key,
        )
        critic_updates, critic_opt = self._adam(
            critic_grads, opt_state["critic"], hparams.critic_learning_rate * lr_scale
        )
        critic = optax.apply_updates(params["critic"], critic_updates)
        actor_grads, actor_aux = self._grads(
            "actor", lambda a: self.actor_loss(a, critic, batch), params["actor"], batch, hparams, actor_key
        )
        actor_updates, actor_opt = self._adam(actor_grads, opt_state["actor"], hparams.learning_rate * lr_scale)
        actor = optax.apply_updates(params["actor"], actor_updates)
        params = {
            "actor": actor,
            "critic": critic,
            "target_actor": soft_update(actor, params["target_actor"], hparams.tau),
            "target_critic": soft_update(critic, params["target_critic"], hparams.tau),
        }
        return params, {"actor": actor_opt, "critic": critic_opt}, {**critic_aux, **actor_aux}


def soft_update(online: Any, target: Any, tau: jax.Array | float) -> Any:
    """``target <- tau * online + (1 - tau) * target``, leaf by leaf."""
    return jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)
