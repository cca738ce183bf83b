"""Actor and critic networks of CleanRL's continuous-action PPO (RPO paper, Table 2).

Separate multilayer perceptrons with tanh activations and orthogonal
initialisation: hidden layers with gain sqrt(2), the actor's mean head with gain
0.01 and the critic's head with gain 1; biases zero. The policy's log standard
deviation is a state-independent parameter initialised to zero.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)


class Actor(nn.Module):
    """Gaussian policy head: ``obs -> (mean, log_std)`` with state-independent log_std."""

    action_size: int
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = obs
        for width in self.hidden:
            x = jnp.tanh(_dense(width, np.sqrt(2.0))(x))
        mean = _dense(self.action_size, 0.01)(x)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
        return mean, jnp.broadcast_to(log_std, mean.shape)


class Critic(nn.Module):
    """State-value function ``obs -> V(obs)`` (a scalar per observation)."""

    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        for width in self.hidden:
            x = jnp.tanh(_dense(width, np.sqrt(2.0))(x))
        return _dense(1, 1.0)(x)[..., 0]
