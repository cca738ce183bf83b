"""Trust Region Policy Optimization's update as pure functions (Schulman et al., 2015, §6 and Appendix C).

One TRPO step approximately solves (SR^2L Eq. 1, or Eq. 8 for TRPO-SR)::

    max_theta  L(theta)   s.t.   KL_bar(theta_old, theta) = E_s KL(pi_old(.|s) || pi_theta(.|s)) <= delta

by linearising ``L`` and taking the quadratic (Fisher) model of the KL at ``theta_old``:

    g = grad L(theta_old),   F = Hessian of KL_bar at theta_old,   s = F^-1 g  (conjugate gradient),
    full step  beta * s  with  beta = sqrt(2 delta / s^T F s)   (the model's KL equals delta),

followed by a backtracking line search on the true ``L`` and KL. For TRPO-SR,
``L = surrogate - lambda_s * smoothness penalty`` (SR^2L Eq. 8), with the
adversarial states held fixed during the step
(:func:`rpo_jax.core.divergences.policy_divergence_at`).

Everything is jittable and vmappable: no Python control flow depends on traced
values, and ``max_kl`` may be traced. Parameters are flattened with
``jax.flatten_util.ravel_pytree``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

_TINY = 1e-30


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    return jnp.where(jnp.abs(den) > _TINY, num / jnp.where(jnp.abs(den) > _TINY, den, 1.0), 0.0)


def conjugate_gradient(matvec: Callable[[Any], Any], b: Any, iters: int = 10, residual_tol: float = 1e-10) -> Any:
    """Solves ``A x = b`` for symmetric positive-definite ``A`` given by ``matvec(v) = A v``.

    Standard conjugate gradient from ``x_0 = 0`` (Nocedal & Wright, Algorithm 5.2),
    at most ``iters`` iterations, stopping early once ``||r||^2 <= residual_tol``.
    ``b`` (and ``matvec``'s argument and result) may be any pytree of arrays; it is
    flattened with ``ravel_pytree`` and the result has ``b``'s structure. Uses a
    ``lax.while_loop`` (forward-mode/vmap compatible, not reverse-differentiable).
    """
    b_flat, unravel = ravel_pytree(b)

    def flat_matvec(v: jax.Array) -> jax.Array:
        return ravel_pytree(matvec(unravel(v)))[0]

    def cond(state):
        i, _, _, _, rdotr = state
        return jnp.logical_and(i < iters, rdotr > residual_tol)

    def body(state):
        i, x, r, p, rdotr = state
        ap = flat_matvec(p)
        alpha = _safe_div(rdotr, jnp.vdot(p, ap))
        x = x + alpha * p
        r = r - alpha * ap
        new_rdotr = jnp.vdot(r, r)
        p = r + _safe_div(new_rdotr, rdotr) * p
        return i + 1, x, r, p, new_rdotr

    init = (jnp.zeros((), jnp.int32), jnp.zeros_like(b_flat), b_flat, b_flat, jnp.vdot(b_flat, b_flat))
    _, x, _, _, _ = jax.lax.while_loop(cond, body, init)
    return unravel(x)


def fisher_vector_product(
    kl_fn: Callable[[Any], jax.Array], params: Any, v: Any, damping: jax.Array | float = 0.1
) -> Any:
    """``(F + damping I) v`` with ``F`` the Hessian of the mean KL ``kl_fn`` at ``params``.

    ``kl_fn(theta) = mean_s KL(pi_old(.|s) || pi_theta(.|s))`` with ``pi_old`` fixed
    (``kl_fn(params_old) = 0``); at ``params = params_old`` its Hessian is the
    Fisher information matrix (Schulman et al., 2015, Appendix C.1). Computed as a
    forward-over-reverse Hessian-vector product (``jvp`` of ``grad``) without
    forming ``F``. ``v`` has the structure of ``params``; so does the result.
    """
    hvp = jax.jvp(jax.grad(kl_fn), (params,), (v,))[1]
    return jax.tree.map(lambda h, x: h + damping * x, hvp, v)


def trpo_step(
    surrogate_fn: Callable[[Any], jax.Array],
    kl_fn: Callable[[Any], jax.Array],
    params: Any,
    *,
    max_kl: jax.Array | float = 0.01,
    cg_iters: int = 10,
    damping: jax.Array | float = 0.1,
    backtrack_iters: int = 10,
    backtrack_coef: float = 0.8,
    accept_ratio: jax.Array | float = 0.0,
) -> tuple[Any, dict[str, jax.Array]]:
    """One TRPO update: natural-gradient step scaled to the trust region, then a backtracking line search.

    1. ``g = grad surrogate_fn(params)``; ``s ~= (F + damping I)^-1 g`` by ``cg_iters`` of conjugate
       gradient with Fisher-vector products of ``kl_fn`` at ``params``.
    2. Full step ``d = sqrt(2 max_kl / s^T (F + damping I) s) * s``; expected improvement ``g^T d``.
    3. For ``f = backtrack_coef^j``, ``j = 0, ..., backtrack_iters - 1``, the first candidate
       ``params + f d`` with ``kl_fn <= max_kl``, an actual improvement
       ``surrogate_fn(candidate) - surrogate_fn(params) > 0`` and
       ``actual >= accept_ratio * f * g^T d`` is returned (a ``lax.while_loop``, so later
       fractions are not evaluated). If none is accepted (or the values are NaN), ``params``
       is returned unchanged. ``accept_ratio = 0`` is garage's rule (as used by SR^2L);
       Schulman's reference code uses 0.1.

    Args:
      surrogate_fn: ``params -> scalar`` to maximise, e.g. ``mean(ratio * advantage)``, minus
        ``lambda_s *`` the smoothness penalty for TRPO-SR (SR^2L Eq. 8).
      kl_fn: ``params -> mean KL(pi_old || pi_params)`` with ``pi_old`` fixed at ``params``.
      params: current (old) parameters, any pytree.
      max_kl: trust-region size ``delta`` (may be traced).
      cg_iters, damping: conjugate-gradient iterations and Fisher damping.
      backtrack_iters, backtrack_coef: line-search length and shrink factor (static).
      accept_ratio: minimum ratio of actual to expected (linear) improvement.

    Returns:
      ``(new_params, info)`` with scalars ``expected_improve`` (of the full step), and for the
      returned parameters ``actual_improve``, ``kl`` and ``step_fraction`` (all 0 when rejected),
      plus ``step_accepted`` (bool).
    """
    flat, unravel = ravel_pytree(params)

    def surrogate_flat(x: jax.Array) -> jax.Array:
        return surrogate_fn(unravel(x))

    def kl_flat(x: jax.Array) -> jax.Array:
        return kl_fn(unravel(x))

    surrogate_old, grad = jax.value_and_grad(surrogate_flat)(flat)

    def fvp(v: jax.Array) -> jax.Array:
        return fisher_vector_product(kl_flat, flat, v, damping)

    direction = conjugate_gradient(fvp, grad, iters=cg_iters)
    shs = jnp.vdot(direction, fvp(direction))
    scale = jnp.sqrt(_safe_div(2.0 * max_kl, jnp.maximum(shs, 0.0)))
    full_step = scale * direction
    expected_improve = jnp.vdot(grad, full_step)

    def evaluate(j):
        fraction = backtrack_coef ** j.astype(flat.dtype)
        candidate = flat + fraction * full_step
        improve = surrogate_flat(candidate) - surrogate_old
        kl = kl_flat(candidate)
        ok = (kl <= max_kl) & (improve > 0.0) & (improve >= accept_ratio * fraction * expected_improve)
        return ok, fraction, improve, kl

    def cond(state):
        j, accepted = state[0], state[1]
        return jnp.logical_and(j < backtrack_iters, jnp.logical_not(accepted))

    def body(state):
        j = state[0]
        ok, fraction, improve, kl = evaluate(j)
        return j + 1, ok, fraction, improve, kl

    zero = jnp.zeros((), flat.dtype)
    init = (jnp.zeros((), jnp.int32), jnp.asarray(False), zero, zero, zero)
    _, accepted, fraction, improve, kl = jax.lax.while_loop(cond, body, init)

    fraction = jnp.where(accepted, fraction, 0.0)
    # A select rather than ``flat + 0 * full_step``, which would turn a non-finite step into NaNs.
    new_params = unravel(jnp.where(accepted, flat + fraction * full_step, flat))
    info = {
        "expected_improve": expected_improve,
        "actual_improve": jnp.where(accepted, improve, 0.0),
        "kl": jnp.where(accepted, kl, 0.0),
        "step_accepted": accepted,
        "step_fraction": fraction,
    }
    return new_params, info
