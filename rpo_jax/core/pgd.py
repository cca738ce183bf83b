"""Projected gradient ascent over an eps-ball of input perturbations (SR^2L, Eq. 4 and Algorithm 1).

SR^2L's smoothness regulariser (paper Eq. 4) needs, for every state ``s`` of a
batch, an approximate maximiser of a per-sample objective over the ball

    B_d(s, eps) = {s + delta : ||delta||_p <= eps},   p in {inf, 2},

which the paper finds with ``K = 10`` steps of projected gradient ascent of
step size ``eta = 0.2 eps`` from a random start (Algorithm 1 lines 6-11, §5).
The same search is the adversarial disturbance of the paper's robustness
evaluation (§5, "Robustness with Disturbance"), so it is written here once, as
pure batched functions of ``(objective, x, key, eps)``.

The feature axis is the last axis; every leading axis indexes independent
samples. ``eps`` may be a traced scalar (a swept hyperparameter under ``vmap``)
and may be zero, in which case the returned point is ``x`` exactly.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

NORMS = ("linf", "l2")

# Below this a gradient (or delta) norm is treated as zero, which avoids 0/0.
_TINY = 1e-30


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _l2_norm(v: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))


def project(delta: jax.Array, eps: jax.Array | float, norm: str = "linf") -> jax.Array:
    """Euclidean projection of each sample's ``delta`` onto ``{||delta||_p <= eps}``.

    ``"linf"``: elementwise clip to ``[-eps, eps]`` (exact: the result never
    exceeds ``eps`` in absolute value). ``"l2"``: rescale by ``eps / ||delta||_2``
    when ``||delta||_2 > eps``, otherwise leave unchanged (the norm of the result is
    ``eps`` up to float rounding). The norm is taken over the last axis.
    """
    _check_norm(norm)
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    length = _l2_norm(delta)
    scale = jnp.where(length > eps, eps / jnp.maximum(length, _TINY), 1.0)
    return delta * scale


def random_start(key: jax.Array, shape: tuple[int, ...], eps: jax.Array | float, norm: str = "linf") -> jax.Array:
    """Draws ``delta`` uniformly from the eps-ball, independently per sample (last axis = features).

    ``"linf"``: ``eps * U(-1, 1)`` per coordinate. ``"l2"``: ``u * eps * U^(1/d)``
    with ``u`` uniform on the unit sphere (a normalised standard normal) and
    ``d = shape[-1]``, which is uniform in the d-dimensional ball. Written as
    ``eps * (...)`` so that ``eps = 0`` gives exact zeros.
    """
    _check_norm(norm)
    if norm == "linf":
        return eps * jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
    k_dir, k_rad = jax.random.split(key)
    direction = jax.random.normal(k_dir, shape)
    direction = direction / jnp.maximum(_l2_norm(direction), _TINY)
    radius = jax.random.uniform(k_rad, shape[:-1] + (1,)) ** (1.0 / shape[-1])
    # Rounding can put ||direction * radius|| a hair above 1; project to stay inside exactly as far as floats allow.
    return project(eps * (direction * radius), eps, "l2")


def _ascent_direction(grad: jax.Array, norm: str) -> jax.Array:
    """Steepest-ascent direction of unit p-norm step: ``sign(g)`` (linf) or ``g / ||g||_2`` (l2)."""
    if norm == "linf":
        return jnp.sign(grad)
    length = _l2_norm(grad)
    return jnp.where(length > _TINY, grad / jnp.maximum(length, _TINY), 0.0)


def pgd_perturbation(
    objective: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    key: jax.Array,
    eps: jax.Array | float,
    *,
    steps: int = 10,
    step_size: jax.Array | float | None = None,
    norm: str = "linf",
) -> jax.Array:
    """The perturbation ``delta`` found by :func:`pgd_maximize` (same arguments); ``x + delta`` is its result.

    Returned with ``stop_gradient``; ``delta`` lies in the ball exactly as
    :func:`project` guarantees (for ``"linf"``, ``max |delta| <= eps`` holds
    exactly, which ``(x + delta) - x`` may miss by a rounding error of ``x``).
    """
    _check_norm(norm)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x = jax.lax.stop_gradient(x)
    eps = jax.lax.stop_gradient(jnp.asarray(eps, x.dtype))
    eta = 0.2 * eps if step_size is None else jax.lax.stop_gradient(jnp.asarray(step_size, x.dtype))

    # Samples are independent, so the gradient of the sum is the per-sample gradient.
    grad_fn = jax.grad(lambda d: jnp.sum(objective(x + d)))

    def ascent_step(_, delta):
        direction = _ascent_direction(grad_fn(delta), norm)
        return project(delta + eta * direction, eps, norm)

    delta = random_start(key, x.shape, eps, norm).astype(x.dtype)
    delta = jax.lax.fori_loop(0, steps, ascent_step, delta)
    return jax.lax.stop_gradient(delta)


def pgd_maximize(
    objective: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    key: jax.Array,
    eps: jax.Array | float,
    *,
    steps: int = 10,
    step_size: jax.Array | float | None = None,
    norm: str = "linf",
) -> jax.Array:
    """Approximate per-sample ``argmax_{x' in B_p(x, eps)} objective(x')`` by projected gradient ascent.

    SR^2L Algorithm 1 lines 6-11 (the inner maximisation of Eq. 4/5/7)::

        delta_0     ~ U(B_p(0, eps))                       (random_start(key, x.shape, eps, norm))
        delta_{l+1} = Pi_{B_p(0, eps)}(delta_l + eta * u_l),  l = 0, ..., steps - 1
        x_adv       = x + delta_steps

    with the step direction

        ``"linf"``: u_l = sign(g_l)            (signed-gradient / FGSM-type step),
        ``"l2"``:   u_l = g_l / ||g_l||_2      (normalised-gradient step; 0 where g_l = 0),

    where ``g_l = d/d delta sum_i objective(x + delta)_i`` (samples are independent,
    so this is each sample's own gradient), and a projection onto the ball after
    every step. ``eta = step_size`` if given, else ``0.2 * eps`` (paper §5, with
    ``steps = 10``). The key is used as is for the random start, so
    ``x + random_start(key, x.shape, eps, norm)`` is the starting point and
    ``steps = 0`` returns it.

    The objective is evaluated with its parameters held fixed: only ``delta`` is
    differentiated, and the result is returned under ``stop_gradient``, so no
    gradient flows from ``x_adv`` back to ``x``, ``eps`` or to any parameter the
    objective closes over. Callers differentiating through the search should
    close over ``stop_gradient``-ed parameters as well, to keep the JVP cheap.

    Args:
      objective: ``x' -> values`` of shape ``x.shape[:-1]`` (e.g. ``[B]`` for ``x`` of ``[B, d]``).
      x: clean inputs ``[..., d]``.
      key: PRNG key for the random start.
      eps: ball radius (scalar, may be traced, may be 0 which returns ``x`` exactly).
      steps: number of ascent steps ``K`` (static).
      step_size: ``eta``; defaults to ``0.2 * eps``.
      norm: ``"linf"`` or ``"l2"``.

    Returns:
      ``x_adv = x + delta`` with ``delta`` in the ball, under ``stop_gradient``.
    """
    delta = pgd_perturbation(objective, x, key, eps, steps=steps, step_size=step_size, norm=norm)
    return jax.lax.stop_gradient(x + delta)
