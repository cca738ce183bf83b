"""How far float32 running statistics drift from gym's float64 ones over a CleanRL-length run.

8M single-sample updates (1 env x 8M steps, a fold per 2048-step rollout) of a 2-d stream
(N(3, 1) and N(-200, 50^2)); prints the relative error of the std for rpo_jax.core.normalization and
for the plain float32 Welford update (Brax's running_statistics) it replaced.

    python -m bench.normalizer_drift [--rollouts 3906]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from brax.training.acme import running_statistics

from rpo_jax.core import normalization

STEPS_PER_ROLLOUT = 2048
ROLLOUTS = 3906  # 8.0M steps


def _float64_moments(stream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = stream.astype(np.float64)
    return x.mean(0), x.var(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=ROLLOUTS, help="rollouts of 2048 steps (default: 8M steps)")
    rollouts = parser.parse_args().rollouts
    rng = np.random.default_rng(3)
    n = STEPS_PER_ROLLOUT * rollouts
    stream = (rng.standard_normal((n, 2)) * [1.0, 50.0] + [3.0, -200.0]).astype(np.float32)
    _, var = _float64_moments(stream)  # gym's prior (count 1e-4) is negligible at this count

    def rollout(state, block):
        step = lambda s, x: (normalization.update_observations(s, x[None]), None)  # noqa: E731
        state, _ = jax.lax.scan(step, state, block)
        return normalization.fold(state), None

    blocks = jnp.asarray(stream.reshape(rollouts, STEPS_PER_ROLLOUT, 2))
    ours, _ = jax.jit(lambda s, b: jax.lax.scan(rollout, s, b))(normalization.init(2, 1), blocks)
    ours_std = np.asarray(normalization.evaluation_stats(ours).std)

    welford = lambda s, x: (running_statistics.update(s, x[None], std_min_value=1e-4), None)  # noqa: E731
    plain, _ = jax.jit(lambda s, xs: jax.lax.scan(welford, s, xs))(
        running_statistics.init_state(jnp.zeros((2,), jnp.float32)), jnp.asarray(stream)
    )
    print(f"{n:,} updates; std relative error vs float64:")
    print(f"  rpo_jax.core.normalization (float32, settled + recent): {ours_std / np.sqrt(var + 1e-8) - 1}")
    print(f"  plain float32 Welford (brax running_statistics):   {np.asarray(plain.std) / np.sqrt(var) - 1}")


if __name__ == "__main__":
    main()
