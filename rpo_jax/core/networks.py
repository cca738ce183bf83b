"""Actor and critic networks.

:class:`Actor` / :class:`Critic` are CleanRL's continuous-action PPO (RPO paper, Table 2):
separate multilayer perceptrons with tanh activations and orthogonal initialisation: hidden
layers with gain sqrt(2), the actor's mean head with gain 0.01 and the critic's head with gain 1;
biases zero. The policy's log standard deviation is a state-independent parameter initialised to
zero. :class:`DeterministicActor` / :class:`QCritic` are DDPG's (SR^2L paper §5: 2 x 64 hidden,
ReLU, as garage), with flax's default initialisation.
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


class DeterministicActor(nn.Module):
    """DDPG's actor ``mu(s)`` in ``[-1, 1]^A`` (ReLU MLP, tanh output, as garage's ContinuousMLPPolicy).

    The algorithm maps ``[-1, 1]`` affinely onto the env's action bounds.
    """

    action_size: int
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return jnp.tanh(nn.Dense(self.action_size)(x))


class QCritic(nn.Module):
    """DDPG's critic ``Q(s, a)`` (ReLU MLP on the concatenation, as garage's ContinuousMLPQFunction)."""

    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]
