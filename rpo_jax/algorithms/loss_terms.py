"""Terms added to a policy optimiser's minibatch loss, composed from the static config.

Each term is a pure function ``term(params, batch, hparams, key, obs_adv) -> (weighted value, aux)``
that the algorithm adds to its own loss, in the order :func:`build` lists them:

* :class:`DrAC` -- ``drac_coef * (KL(pi(s) || pi(f(s))) + (V(f(s)) - V(s))^2)`` with ``f`` RAD's
  random amplitude scaling (``train.augmentation: drac``; RPO paper Table 3, after Raileanu et al.);
* :class:`Smoothness` -- SR^2L's ``lambda_s * mean_s max_{s' in B(s, sr_eps)} D_J(pi(s), pi(s'))``
  (``train.smoothness``; SR^2L Eq. 5), ``s'`` found by PGD on this minibatch, or taken from
  ``obs_adv`` when the algorithm found it once per iteration.

``key`` is the term's own random stream (:attr:`stream`: ``"augmentation"`` or ``"smoothness"``), so
switching one term off leaves the others' draws unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from rpo_jax.config import HParams, TrainConfig
from rpo_jax.core import augmentation, divergences

Term = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class DrAC:
    config: TrainConfig
    actor_apply: Callable
    critic_apply: Callable
    stream: str = "augmentation"

    def __call__(self, params: Any, batch: Any, hparams: HParams, key: jax.Array, obs_adv=None):
        cfg = self.config
        augmented = augmentation.random_amplitude_scaling(key, batch.obs, cfg.rad_scale_low, cfg.rad_scale_high)
        penalty, aux = augmentation.drac_penalty(
            params,
            batch.obs,
            augmented,
            actor_apply=self.actor_apply,
            critic_apply=self.critic_apply,
            action_dist=cfg.action_dist,
        )
        return hparams.drac_coef * penalty, aux


@dataclasses.dataclass(frozen=True)
class Smoothness:
    config: TrainConfig
    actor_apply: Callable
    stream: str = "smoothness"

    def penalty(self, actor_params: Any, obs: jax.Array, hparams: HParams, key: jax.Array):
        """``(mean_s max_{s'} D_J(pi(.|s), pi(.|s')), s')``: the penalty and the PGD points, found here."""
        cfg = self.config
        return divergences.policy_smoothness_penalty(
            self.actor_apply,
            actor_params,
            obs,
            key,
            hparams.sr_eps,
            steps=cfg.smoothness_steps,
            norm=cfg.smoothness_norm,
            stop_grad_sigma=cfg.smoothness_stop_grad_sigma,
        )

    def at(self, actor_params: Any, obs: jax.Array, obs_adv: jax.Array) -> jax.Array:
        """``mean_s D_J(pi(.|s), pi(.|s'))`` at fixed points ``s'``."""
        stop = self.config.smoothness_stop_grad_sigma
        return divergences.policy_divergence_at(self.actor_apply, actor_params, obs, obs_adv, stop_grad_sigma=stop)

    def __call__(self, params: Any, batch: Any, hparams: HParams, key: jax.Array, obs_adv=None):
        if obs_adv is not None:
            penalty = self.at(params["actor"], batch.obs, obs_adv)
        else:
            penalty = self.penalty(params["actor"], batch.obs, hparams, key)[0]
        return hparams.lambda_s * penalty, {"smoothness_penalty": penalty}


def build(config: TrainConfig, actor_apply: Callable, critic_apply: Callable) -> tuple[Term, ...]:
    """The terms ``config`` switches on, in the order their values are added to the loss."""
    terms: list[Term] = []
    if config.augmentation == "drac":
        terms.append(DrAC(config, actor_apply, critic_apply))
    if config.smoothness:
        terms.append(Smoothness(config, actor_apply))
    return tuple(terms)
