"""A population's env steps merged into one batch (rpo_jax.core.batching): the same steps, only faster."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax import envs
from rpo_jax.core import batching


def _states_and_actions(env, members: int, per_member: int):
    keys = jax.random.split(jax.random.PRNGKey(0), members * per_member)
    states = jax.jit(jax.vmap(env.reset))(keys)
    actions = 0.5 * jax.random.uniform(jax.random.PRNGKey(1), (members * per_member, env.action_size), minval=-1)
    split = lambda x: x.reshape((members, per_member) + x.shape[1:])  # noqa: E731
    return jax.tree.map(split, states), split(actions)


@pytest.mark.parametrize("name", ["gymnax/Pendulum-v1", pytest.param("brax/inverted_pendulum", marks=pytest.mark.slow)])
def test_merged_step_equals_the_per_member_step(name):
    """Under a member vmap, merged = the doubly batched step (up to float rounding); each member's
    envs stay its own; unbatched, merged is the step itself."""
    env = envs.make_env(name)
    step = jax.vmap(env.transition)
    states, actions = _states_and_actions(env, members=4, per_member=3)
    plain = jax.jit(jax.vmap(step))(states, actions)
    merged = jax.jit(jax.vmap(batching.merged_over_members(step)))(states, actions)
    assert jax.tree.structure(plain) == jax.tree.structure(merged)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(merged)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5, atol=1e-5)
    one = jax.tree.map(lambda x: x[1], (states, actions))
    alone = jax.jit(step)(*one)  # member 1 stepped on its own
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(jax.tree.map(lambda x: x[1], merged))):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5, atol=1e-5)
    unbatched = jax.jit(batching.merged_over_members(step))(*one)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(unbatched)):
        np.testing.assert_array_equal(a, b)


def test_unbatched_inputs_are_broadcast_to_every_member():
    def shift(x, y):
        return x + y

    x = jnp.arange(6.0).reshape(2, 3)  # 2 members x 3 envs
    y = jnp.asarray([10.0, 20.0, 30.0])  # the same for every member
    out = jax.vmap(batching.merged_over_members(shift), in_axes=(0, None))(x, y)
    np.testing.assert_array_equal(out, x + y[None])


def test_zero_size_leaves_keep_their_shape():
    """MJX / DMC env states carry ``[n, 0]`` leaves; the split after the merged call must keep them."""

    def step(state):
        return {"q": state["q"] + 1.0, "empty": state["empty"] * 2.0}

    state = {"q": jnp.ones((2, 3, 4)), "empty": jnp.zeros((2, 3, 0))}  # 2 members x 3 envs
    out = jax.jit(jax.vmap(batching.merged_over_members(step)))(state)
    assert out["empty"].shape == (2, 3, 0)
    np.testing.assert_array_equal(out["q"], state["q"] + 1.0)
