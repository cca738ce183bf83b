"""rpo_jax.core.ppo.shuffled_minibatches: every sample once per epoch, in a key-dependent order."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpo_jax.core.ppo import Batch, shuffled_minibatches


def _batch(size):
    index = jnp.arange(size, dtype=jnp.float32)
    return Batch(
        obs=jnp.stack([index, -index], axis=1),
        actions=index[:, None] * 2.0,
        logprobs=index,
        advantages=index + 0.5,
        returns=index,
        values=index,
    )


class ShuffledMinibatchesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_deals_every_sample_once_with_its_fields_together(self):
        size, num_minibatches = 4096, 4
        fn = self.variant(shuffled_minibatches, static_argnums=2)
        out = fn(jax.random.PRNGKey(0), _batch(size), num_minibatches)
        chex.assert_shape(out.obs, (num_minibatches, size // num_minibatches, 2))
        chex.assert_shape((out.logprobs, out.advantages), (num_minibatches, size // num_minibatches))
        order = np.asarray(out.logprobs).ravel()
        np.testing.assert_array_equal(np.sort(order), np.arange(size))  # a permutation
        assert not np.array_equal(order, np.arange(size))
        # Each sample's fields travel together.
        np.testing.assert_array_equal(out.obs[..., 0], out.logprobs)
        np.testing.assert_array_equal(out.obs[..., 1], -out.logprobs)
        np.testing.assert_array_equal(out.actions[..., 0], 2 * out.logprobs)
        np.testing.assert_array_equal(out.advantages, out.logprobs + 0.5)

    def test_order_depends_on_the_key_and_looks_uniform(self):
        size = 64
        orders = np.stack(
            [
                np.asarray(shuffled_minibatches(k, _batch(size), 1).logprobs[0])
                for k in jax.random.split(jax.random.PRNGKey(1), 2000)
            ]
        )
        assert len({o.tobytes() for o in orders}) == len(orders)
        # Where sample 0 lands is uniform over the 64 positions: chi-square with 63 dof
        # (mean 63, sd 11.2); 130 is 6 sd out.
        positions = np.argmax(orders == 0, axis=1)
        counts = np.bincount(positions, minlength=size)
        expected = len(orders) / size
        assert ((counts - expected) ** 2 / expected).sum() < 130

    def test_rejects_a_batch_that_does_not_split(self):
        with pytest.raises(ValueError, match="does not split"):
            shuffled_minibatches(jax.random.PRNGKey(0), _batch(10), 4)
