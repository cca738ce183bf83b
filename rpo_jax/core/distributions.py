"""Action distributions of the policy: Gaussian, Laplace and Gumbel (RPO paper §6.3, App. I).

Each is a location-scale family over every action dimension, built with distrax
and treated as one event over the last axis (log-probs and entropies are summed
over action dimensions). The actor outputs the *location* ``loc`` and a
state-independent ``log_scale``:

* ``gaussian``: ``N(loc, exp(log_scale))``; mean = mode = ``loc``.
* ``laplace``:  ``Laplace(loc, exp(log_scale))``; mean = mode = ``loc``.
* ``gumbel``:   ``Gumbel(loc, exp(log_scale))``; mode = ``loc`` but
  mean = ``loc + euler_gamma * scale`` -- the location is *not* the mean.

RPO's perturbation ``mu + z`` is applied to ``loc`` for every family (what the
network outputs and what the paper's Algorithm 1 calls mu). For the symmetric
families that is the mean; for Gumbel it shifts the location -- and with it the
mean -- by exactly ``z``, leaving the ``euler_gamma * scale`` offset unchanged.
Deterministic (evaluation) actions are ``loc`` for all three (the mode).
"""

from __future__ import annotations

from typing import Callable

import distrax
import jax
import jax.numpy as jnp


def _independent(family):
    return lambda loc, scale: distrax.Independent(family(loc=loc, scale=scale), reinterpreted_batch_ndims=1)


# name -> (loc, scale) -> distribution with one event over the last axis; ``train.action_dist`` picks one.
ACTION_DISTRIBUTIONS: dict[str, Callable[[jax.Array, jax.Array], distrax.Distribution]] = {
    "gaussian": lambda loc, scale: distrax.MultivariateNormalDiag(loc=loc, scale_diag=scale),
    "laplace": _independent(distrax.Laplace),
    "gumbel": _independent(distrax.Gumbel),
}


def action_distribution(kind: str, loc: jax.Array, log_scale: jax.Array) -> distrax.Distribution:
    """The policy ``pi(. | s)`` of family ``kind`` with one event over the last axis."""
    if kind not in ACTION_DISTRIBUTIONS:
        raise ValueError(f"unknown action distribution '{kind}'; choose one of {', '.join(ACTION_DISTRIBUTIONS)}")
    return ACTION_DISTRIBUTIONS[kind](loc, jnp.exp(log_scale))
