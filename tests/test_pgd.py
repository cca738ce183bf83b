"""PGD over an eps-ball: stays in the ball (both norms, traced eps), eps = 0 is the identity, beats random search."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.core import divergences, pgd
from rpo_jax.core.networks import Actor

EPSILONS = (0.0, 1e-3, 0.05, 0.3, 2.0)
OBS_SIZE = 6
BATCH = 32


def _wiggly(x):
    """A non-linear, non-concave per-sample objective [B, d] -> [B]."""
    return jnp.sum(jnp.sin(3.0 * x) * jnp.cos(x[..., ::-1]), axis=-1) + jnp.sum(x**2, axis=-1)


def _in_ball(delta, eps, norm):
    delta = np.asarray(delta)
    eps = np.asarray(eps, delta.dtype)  # the radius as the float32 computation sees it
    if norm == "linf":
        return np.max(np.abs(delta)) <= eps  # exact: clipping never overshoots
    return np.max(np.linalg.norm(delta, axis=-1)) <= eps * (1 + 1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_project_and_random_start_stay_in_ball(norm):
    key = jax.random.PRNGKey(0)
    big = 10.0 * jax.random.normal(key, (BATCH, OBS_SIZE))
    for eps in EPSILONS:
        projected = pgd.project(big, eps, norm)
        assert _in_ball(projected, eps, norm)
        start = pgd.random_start(jax.random.PRNGKey(1), (BATCH, OBS_SIZE), eps, norm)
        assert _in_ball(start, eps, norm)
        # Projection is the identity inside the ball.
        np.testing.assert_array_equal(pgd.project(start, eps, norm), start)
    # l2 projection of a point outside lands on the sphere, in the same direction.
    if norm == "l2":
        projected = pgd.project(big, 0.3, norm)
        np.testing.assert_allclose(np.linalg.norm(projected, axis=-1), 0.3, rtol=1e-5)
        np.testing.assert_allclose(projected / 0.3, big / np.linalg.norm(big, axis=-1, keepdims=True), atol=1e-5)


def test_l2_random_start_is_uniform_in_ball():
    """Radius of a uniform point in the d-ball: P(r <= t eps) = t^d."""
    d = 3
    start = pgd.random_start(jax.random.PRNGKey(2), (20_000, d), 2.0, "l2")
    radius = np.linalg.norm(np.asarray(start), axis=-1) / 2.0
    for t in (0.5, 0.8, 0.95):
        np.testing.assert_allclose(np.mean(radius <= t), t**d, atol=0.015)
    np.testing.assert_allclose(np.mean(np.asarray(start), axis=0), 0.0, atol=0.03)


class PgdTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_stays_in_ball_and_eps_zero_is_identity(self):
        x = jax.random.normal(jax.random.PRNGKey(3), (BATCH, OBS_SIZE))
        for norm in ("linf", "l2"):

            @self.variant
            def both(x, k, e, norm=norm):
                kwargs = dict(steps=7, norm=norm)
                return pgd.pgd_perturbation(_wiggly, x, k, e, **kwargs), pgd.pgd_maximize(_wiggly, x, k, e, **kwargs)

            for eps in EPSILONS:
                delta, x_adv = both(x, jax.random.PRNGKey(4), eps)
                assert _in_ball(delta, eps, norm), (norm, eps)
                np.testing.assert_array_equal(x_adv, x + delta)
                # (x + delta) - x only differs from delta by the rounding of x + delta.
                ulp = np.spacing(np.abs(np.asarray(x)) + np.float32(eps))
                if norm == "linf":
                    assert np.all(np.abs(np.asarray(x_adv) - np.asarray(x)) <= np.float32(eps) + ulp)
            np.testing.assert_array_equal(both(x, jax.random.PRNGKey(5), 0.0)[1], x)

    def test_traced_eps_under_jit_and_vmap(self):
        x = jax.random.normal(jax.random.PRNGKey(6), (BATCH, OBS_SIZE))
        epsilons = jnp.asarray(EPSILONS)
        keys = jax.random.split(jax.random.PRNGKey(7), len(EPSILONS))
        for norm in ("linf", "l2"):
            sweep = jax.jit(jax.vmap(lambda k, e, norm=norm: pgd.pgd_perturbation(_wiggly, x, k, e, norm=norm)))
            deltas = sweep(keys, epsilons)
            chex.assert_shape(deltas, (len(EPSILONS), BATCH, OBS_SIZE))
            for delta, eps in zip(deltas, epsilons):
                assert _in_ball(delta, eps, norm), (norm, float(eps))
            np.testing.assert_array_equal(deltas[0], 0.0)  # eps = 0 entry
            # Same as running each eps alone.
            alone = pgd.pgd_perturbation(_wiggly, x, keys[3], epsilons[3], norm=norm)
            np.testing.assert_allclose(deltas[3], alone, atol=1e-6)
            # The ascent actually uses the ball: most coordinates (linf) / samples (l2) end on its boundary.
            if norm == "linf":
                assert np.mean(np.isclose(np.abs(deltas[3]), epsilons[3])) > 0.5
            else:
                assert np.mean(np.isclose(np.linalg.norm(deltas[3], axis=-1), epsilons[3], rtol=1e-4)) > 0.5

    def test_step_rules(self):
        """One step on a linear objective: delta_1 = Pi(delta_0 + 0.2 eps * u), u = sign(g) or g/||g||."""
        w = jnp.array([[0.5, -2.0, 0.0, 1.0]])
        x = jnp.zeros((1, 4))
        objective = lambda z: jnp.sum(w * z, axis=-1)  # noqa: E731
        eps = 1.0
        for norm in ("linf", "l2"):
            start = pgd.random_start(jax.random.PRNGKey(8), x.shape, eps, norm)
            delta = pgd.pgd_perturbation(objective, x, jax.random.PRNGKey(8), eps, steps=1, norm=norm)
            step = jnp.sign(w) if norm == "linf" else w / jnp.linalg.norm(w)
            np.testing.assert_allclose(delta, pgd.project(start + 0.2 * eps * step, eps, norm), atol=1e-6)
            np.testing.assert_array_equal(
                pgd.pgd_perturbation(objective, x, jax.random.PRNGKey(8), eps, steps=0, norm=norm), start
            )


def _actor_setup(seed=0):
    actor = Actor(action_size=3, hidden=(32, 32))
    k_params, k_obs, k_std = jax.random.split(jax.random.PRNGKey(seed), 3)
    obs = jax.random.normal(k_obs, (BATCH, OBS_SIZE))
    params = actor.init(k_params, obs)
    params["params"]["log_std"] = jax.random.uniform(k_std, (3,), minval=-1.0, maxval=0.0)
    return actor, params, obs


class PgdBeatsRandomSearchTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_pgd_beats_its_start_and_best_of_64_random_points(self):
        """On a random non-linear Actor, the batch-mean Jeffrey's divergence reached by PGD exceeds
        the one at its own random start and the per-sample best of 64 uniform points of the ball."""
        actor, params, obs = _actor_setup()
        mean0, log_std0 = actor.apply(params, obs)

        def objective(o):
            return divergences.jeffreys_gaussian(mean0, log_std0, *actor.apply(params, o))

        penalty_fn = jax.jit(
            lambda k, e, norm: divergences.policy_smoothness_penalty(actor.apply, params, obs, k, e, norm=norm),
            static_argnums=2,
        )

        @jax.jit
        def at_random_points(keys, eps):  # [K, B] objective at K uniform points of each linf and l2 ball
            return {
                norm: jax.vmap(lambda k: objective(obs + pgd.random_start(k, obs.shape, eps, norm)))(keys)
                for norm in ("linf", "l2")
            }

        for norm in ("linf", "l2"):
            search = self.variant(lambda o, k, e, norm=norm: pgd.pgd_maximize(objective, o, k, e, norm=norm))
            for eps in (0.05, 0.5):
                key = jax.random.PRNGKey(11)
                x_adv = search(obs, key, eps)
                pgd_value = float(jnp.mean(objective(x_adv)))
                start_value = float(jnp.mean(at_random_points(key[None], eps)[norm]))
                randoms = at_random_points(jax.random.split(jax.random.PRNGKey(12), 64), eps)[norm]
                best_random = float(jnp.mean(jnp.max(randoms, axis=0)))
                assert pgd_value > 1.5 * start_value, (norm, eps, pgd_value, start_value)
                assert pgd_value > best_random, (norm, eps, pgd_value, best_random)
                # The policy-penalty wrapper finds the same point with the same key.
                penalty, obs_adv = penalty_fn(key, eps, norm)
                np.testing.assert_allclose(obs_adv, x_adv, atol=1e-4)  # fusion-level rounding only
                np.testing.assert_allclose(float(penalty), pgd_value, rtol=1e-4)
