"""Observation attacks as plug-ins: pure functions registered by name (used by rpo_jax.analysis.robustness).

An attack maps the clean point ``base`` ``[N, obs]`` (in the space eps is measured in) to a
perturbation ``delta`` with ``||delta||_inf <= eps``; the agent then sees ``target.perturbed(base,
delta)``. Signature::

    attack(key, base, eps, target: Target, *, steps) -> delta

:class:`Target` is what an attack may use of the attacked member: its policy and value at a point,
the divergence of two action distributions. Every attack is written so that ``eps = 0`` gives
``delta = 0`` exactly. Adding an attack is one function here and one line in :data:`ATTACKS`.

* ``none``   -- ``delta = 0``;
* ``random`` -- ``delta ~ U([-eps, eps]^d)`` (SR^2L's random disturbance);
* ``mad``    -- maximal action difference: ``argmax_delta D_J(pi(.|s) || pi(.|s + delta))`` by PGD
  (:func:`rpo_jax.core.pgd.pgd_perturbation`: random start, ``steps`` signed-gradient steps of 0.2 eps,
  projection) -- SR^2L's adversarial disturbance and the inner problem of its regulariser;
* ``critic`` -- the same PGD on ``-V(s + delta)``;
* ``fgsm``   -- one signed-gradient step on ``-V`` from ``delta = 0``: ``delta = -eps sign(grad V)``
  (Goodfellow et al. 2015's fast gradient sign method, as Huang et al. 2017 attack policies; here
  on the member's critic), with no random start; a coordinate whose gradient is exactly 0 stays.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from rpo_jax.core import pgd


@dataclasses.dataclass(frozen=True)
class Target:
    """The attacked member, as pure functions of a point in the space eps is measured in."""

    policy: Callable[[jax.Array], Any]  # point -> the policy's output: (loc, log_scale), or DDPG's mu
    value: Callable[[jax.Array], jax.Array]  # point -> V (DDPG: Q(s, mu(s)))
    divergence: Callable[[Any, Any], jax.Array]  # D of two policy outputs, per sample (D_J; DDPG: ||.||^2)
    perturbed: Callable[[jax.Array, jax.Array], jax.Array]  # (base, delta) -> the point the agent sees


Attack = Callable[..., jax.Array]


def none(key: jax.Array, base: jax.Array, eps: jax.Array, target: Target, *, steps: int) -> jax.Array:
    return jnp.zeros_like(base)


def random(key: jax.Array, base: jax.Array, eps: jax.Array, target: Target, *, steps: int) -> jax.Array:
    return pgd.random_start(key, base.shape, eps, "linf").astype(base.dtype)


def mad(key: jax.Array, base: jax.Array, eps: jax.Array, target: Target, *, steps: int) -> jax.Array:
    clean = target.policy(base)

    def objective(delta):
        return target.divergence(clean, target.policy(target.perturbed(base, delta)))

    return pgd.pgd_perturbation(objective, jnp.zeros_like(base), key, eps, steps=steps, norm="linf")


def critic(key: jax.Array, base: jax.Array, eps: jax.Array, target: Target, *, steps: int) -> jax.Array:
    def objective(delta):
        return -target.value(target.perturbed(base, delta))

    return pgd.pgd_perturbation(objective, jnp.zeros_like(base), key, eps, steps=steps, norm="linf")


def fgsm(key: jax.Array, base: jax.Array, eps: jax.Array, target: Target, *, steps: int) -> jax.Array:
    grad = jax.grad(lambda delta: jnp.sum(target.value(target.perturbed(base, delta))))(jnp.zeros_like(base))
    return jax.lax.stop_gradient(-eps * jnp.sign(grad))


ATTACKS: dict[str, Attack] = {
    "none": none,
    "random": random,
    "mad": mad,
    "critic": critic,
    "fgsm": fgsm,
}
