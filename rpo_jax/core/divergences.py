"""Divergences and SR^2L's adversarial smoothness penalties (Shen et al., 2020, Eq. 4-7; Algorithms 1 and 3).

The smoothness-inducing regulariser of a policy (paper Eq. 4/5) is

    R_s(theta) = E_s max_{s' in B(s, eps)} D_J(pi_theta(.|s) || pi_theta(.|s')),

estimated on a batch by finding ``s'`` with projected gradient ascent at the
current parameters (:mod:`rpo_jax.core.pgd`), holding it fixed, and differentiating
``D_J(pi_theta(.|s) || pi_theta(.|s'))`` with respect to ``theta`` (Algorithm 1,
last line). Deterministic actors use ``||mu(s) - mu(s')||^2`` (Eq. 7) and
critics ``(V(s) - V(s'))^2`` (§3.2, Algorithm 3).

Jeffrey's divergence is used here as ``KL(p||q) + KL(q||p)``. Eq. 6 of the
paper writes it with factors 1/2, but §5's Gaussian form of the regulariser,
``||mu(s) - mu(s')||^2 / sigma^2``, is the unhalved sum (each KL contributes
``||dmu||^2 / (2 sigma^2)`` for a shared sigma), so the sum matches the scale of
the experiments' ``lambda_s`` grid. Halve ``lambda_s`` to use Eq. 6 literally.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import distrax
import jax
import jax.numpy as jnp

from rpo_jax.core import pgd


def gaussian_kl(mean_p: jax.Array, log_std_p: jax.Array, mean_q: jax.Array, log_std_q: jax.Array) -> jax.Array:
    """``KL(N(mean_p, diag sigma_p^2) || N(mean_q, diag sigma_q^2))``, summed over the last axis.

    Closed form per dimension: ``log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2``.
    Shapes broadcast; the result has the broadcast shape without the last axis.
    """
    var_ratio = jnp.exp(2.0 * (log_std_p - log_std_q))  # sigma_p^2 / sigma_q^2
    mahalanobis = jnp.square(mean_p - mean_q) * jnp.exp(-2.0 * log_std_q)
    return jnp.sum(log_std_q - log_std_p + 0.5 * (var_ratio + mahalanobis - 1.0), axis=-1)


def jeffreys_gaussian(mean_p: jax.Array, log_std_p: jax.Array, mean_q: jax.Array, log_std_q: jax.Array) -> jax.Array:
    """SR^2L's ``D_J = KL(p||q) + KL(q||p)`` of two diagonal Gaussians, summed over the last axis.

    Closed form per dimension (the log terms cancel)::

        0.5 (mu_p - mu_q)^2 (1/sigma_p^2 + 1/sigma_q^2) + 0.5 (sigma_p^2/sigma_q^2 + sigma_q^2/sigma_p^2) - 1

    For equal standard deviations (e.g. a state-independent log_std compared at
    ``s`` and ``s'``) this reduces to the mean term ``(mu_p - mu_q)^2 / sigma^2``,
    the form in paper §5; the general formula is kept for state-dependent sigma.
    The result is exactly 0 for identical inputs. See the module docstring on
    the factor 1/2 of Eq. 6.
    """
    log_ratio = 2.0 * (log_std_p - log_std_q)
    mean_term = 0.5 * jnp.square(mean_p - mean_q) * (jnp.exp(-2.0 * log_std_p) + jnp.exp(-2.0 * log_std_q))
    scale_term = 0.5 * (jnp.exp(log_ratio) + jnp.exp(-log_ratio)) - 1.0  # cosh(log_ratio) - 1 >= 0
    return jnp.sum(mean_term + scale_term, axis=-1)


def jeffreys(dist_p: distrax.Distribution, dist_q: distrax.Distribution) -> jax.Array:
    """``KL(p||q) + KL(q||p)`` for any pair of distrax distributions with a registered KL (batch shape)."""
    return dist_p.kl_divergence(dist_q) + dist_q.kl_divergence(dist_p)


def squared_l2(a: jax.Array, b: jax.Array) -> jax.Array:
    """``||a - b||_2^2`` over the last axis: the discrepancy of deterministic actors (paper Eq. 7)."""
    return jnp.sum(jnp.square(a - b), axis=-1)


def squared_difference(v: jax.Array, w: jax.Array) -> jax.Array:
    """``(v - w)^2`` elementwise: the discrepancy of value functions (paper §3.2, Algorithm 3)."""
    return jnp.square(v - w)


def _apply_pair(apply: Callable[[Any, jax.Array], Any], params: Any, obs: jax.Array, obs_adv: jax.Array):
    """``(apply(params, obs), apply(params, obs_adv))`` from one forward pass over the concatenated batch.

    One pass means identical rows go through identical arithmetic, so ``obs_adv == obs`` (e.g. ``eps = 0``)
    gives bit-identical outputs and an exactly zero penalty, also under ``jit`` (two separately compiled
    passes may round differently). Assumes ``apply`` treats samples independently, as the MLPs here do.
    """
    chex.assert_equal_shape((obs, obs_adv))
    both = apply(params, jnp.concatenate([obs, obs_adv], axis=0))
    n = obs.shape[0]
    return jax.tree.map(lambda y: y[:n], both), jax.tree.map(lambda y: y[n:], both)


def policy_divergence_at(
    actor_apply: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]],
    actor_params: Any,
    obs: jax.Array,
    obs_adv: jax.Array,
    *,
    stop_grad_sigma: bool = True,
) -> jax.Array:
    """Batch mean of ``D_J(pi_theta(.|obs) || pi_theta(.|obs_adv))`` for fixed ``obs_adv``.

    Differentiable with respect to ``actor_params`` through both the clean and the
    perturbed branch (SR^2L Algorithm 1, last line). With ``stop_grad_sigma`` the
    log standard deviations of both branches are under ``stop_gradient``, so only
    the mean network is regularised; see :func:`policy_smoothness_penalty`.

    For TRPO-SR, find ``obs_adv`` once per update with :func:`policy_smoothness_penalty`
    and use this function inside the surrogate, so that the line search evaluates
    the penalty at a fixed adversarial point.
    """
    (mean, log_std), (mean_adv, log_std_adv) = _apply_pair(actor_apply, actor_params, obs, obs_adv)
    chex.assert_equal_shape((mean, log_std, mean_adv, log_std_adv))
    if stop_grad_sigma:
        log_std = jax.lax.stop_gradient(log_std)
        log_std_adv = jax.lax.stop_gradient(log_std_adv)
    return jnp.mean(jeffreys_gaussian(mean, log_std, mean_adv, log_std_adv))


def policy_smoothness_penalty(
    actor_apply: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]],
    actor_params: Any,
    obs: jax.Array,
    key: jax.Array,
    eps: jax.Array | float,
    *,
    steps: int = 10,
    norm: str = "linf",
    stop_grad_sigma: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """SR^2L's policy smoothness regulariser (Eq. 5) on a batch of observations, for a Gaussian policy.

    1. ``obs_adv = argmax_{s' in B_p(obs, eps)} D_J(pi(.|obs) || pi(.|s'))`` per sample, found by
       :func:`rpo_jax.core.pgd.pgd_maximize` (``steps`` ascent steps of size ``0.2 eps``) with the current
       parameters under ``stop_gradient``: no gradient flows through the search to ``actor_params``.
    2. ``penalty = mean_batch D_J(pi_theta(.|obs) || pi_theta(.|obs_adv))`` with ``obs_adv`` held fixed,
       differentiable with respect to ``actor_params`` through both branches (Algorithm 1).

    ``stop_grad_sigma=True`` (default) stop-gradients the policy's log_std inside the
    regulariser: ``D_J`` of two Gaussians with a shared sigma is ``||dmu||^2 / sigma^2``,
    which the optimiser could otherwise shrink by inflating sigma instead of
    smoothing the mean; the penalty's value is unchanged, only its log_std
    gradient (and, for a state-dependent log_std head, the gradient through it) is removed.
    With ``eps = 0`` the penalty is exactly 0 and ``obs_adv == obs``.

    Args:
      actor_apply: ``(params, obs) -> (mean, log_std)``, both ``[B, A]``.
      actor_params: actor parameters.
      obs: observations ``[B, obs_size]``.
      key: PRNG key of PGD's random start.
      eps: perturbation radius (may be traced).
      steps: PGD steps (static).
      norm: ``"linf"`` or ``"l2"`` ball.
      stop_grad_sigma: see above.

    Returns:
      ``(penalty, obs_adv)``: a scalar and the fixed adversarial observations ``[B, obs_size]``.
    """
    frozen = jax.lax.stop_gradient(actor_params)
    clean_mean, clean_log_std = actor_apply(frozen, obs)

    def objective(obs_perturbed: jax.Array) -> jax.Array:
        mean, log_std = actor_apply(frozen, obs_perturbed)
        return jeffreys_gaussian(clean_mean, clean_log_std, mean, log_std)

    obs_adv = pgd.pgd_maximize(objective, obs, key, eps, steps=steps, norm=norm)
    penalty = policy_divergence_at(actor_apply, actor_params, obs, obs_adv, stop_grad_sigma=stop_grad_sigma)
    return penalty, obs_adv


def value_smoothness_penalty(
    critic_apply: Callable[[Any, jax.Array], jax.Array],
    critic_params: Any,
    obs: jax.Array,
    key: jax.Array,
    eps: jax.Array | float,
    *,
    steps: int = 10,
    norm: str = "linf",
    fixed_clean: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """SR^2L's value smoothness regulariser (§3.2) ``mean_batch max_{s'} (V(s) - V(s'))^2``.

    ``obs_adv`` is found by PGD with the current parameters held fixed (as in
    :func:`policy_smoothness_penalty`), then the mean squared difference at the
    fixed ``obs_adv`` is returned, differentiable with respect to ``critic_params``
    through both branches. ``fixed_clean=True`` instead stop-gradients the clean
    branch ``V(s)``, as written in Algorithm 3 (``Q_phi(s, a) - Q_phi~(s~, a)`` with
    only ``phi~`` optimised). With ``eps = 0`` the penalty is exactly 0.

    Returns:
      ``(penalty, obs_adv)``.
    """
    frozen = jax.lax.stop_gradient(critic_params)
    clean_value = critic_apply(frozen, obs)

    def objective(obs_perturbed: jax.Array) -> jax.Array:
        return squared_difference(clean_value, critic_apply(frozen, obs_perturbed))

    obs_adv = pgd.pgd_maximize(objective, obs, key, eps, steps=steps, norm=norm)
    value, value_adv = _apply_pair(critic_apply, critic_params, obs, obs_adv)
    if fixed_clean:
        value = jax.lax.stop_gradient(value)
    chex.assert_equal_shape((value, value_adv))
    return jnp.mean(squared_difference(value, value_adv)), obs_adv
