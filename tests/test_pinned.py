"""Pinned numbers: a short run of each algorithm must reproduce these hashes bit for bit.

A refactor that claims "behaviour unchanged" must leave them as they are. Each case trains one
member for 3 iterations on gymnax/Pendulum-v1 (2 envs x 64 steps, episodes of 32 steps; DDPG: 4 updates
per iteration once 128 steps are in its buffer) and hashes
every metric and the final parameters and normaliser. The hashes hold for this project's CPU
machine kind (XLA's CPU code depends on the host's instruction set; on another kind, regenerate
with ``python tests/test_pinned.py`` and say why in the commit). A change that is *meant* to change
what is learned updates them in the same commit, with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import numpy as np
import pytest

from rpo_jax.config import TrainConfig
from rpo_jax.train import as_hparams, make_trainer

BASE = TrainConfig(
    env="gymnax/Pendulum-v1",
    num_envs=2,
    num_steps=64,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=2 * 64 * 3,
    episode_length=32,
)
DDPG_BASE = dataclasses.replace(
    BASE,
    algorithm="ddpg",
    normalize_rewards=False,
    buffer_size=200,
    learning_starts=128,
    replay_batch_size=16,
    updates_per_iteration=4,
)
CASES = {
    "ppo": (BASE, {"alpha": 0.0}),  # HParams defaults to RPO's alpha 0.5
    "rpo": (BASE, {"alpha": 0.5}),
    "ppo_sr": (
        dataclasses.replace(BASE, smoothness=True, smoothness_steps=3),
        {"alpha": 0.0, "lambda_s": 1.0, "sr_eps": 0.1},
    ),
    "trpo": (dataclasses.replace(BASE, algorithm="trpo"), {"alpha": 0.0}),
    "trpo_sr": (
        dataclasses.replace(BASE, algorithm="trpo", smoothness=True, smoothness_steps=3),
        {"alpha": 0.0, "lambda_s": 1.0, "sr_eps": 0.1},
    ),
    "cleanrl_preset": (
        dataclasses.replace(BASE, bootstrap_on_truncation=False, normalize_per_env=True),
        {"alpha": 0.0},
    ),
    "ddpg": (DDPG_BASE, {}),
    "ddpg_sr_a": (
        dataclasses.replace(DDPG_BASE, smoothness=True, smoothness_steps=3),
        {"lambda_s": 1.0, "sr_eps": 0.1},
    ),
    "ddpg_sr_c": (
        dataclasses.replace(DDPG_BASE, smoothness=True, smoothness_steps=3, smoothness_target="critic"),
        {"lambda_s": 1.0, "sr_eps": 0.1},
    ),
}
PINNED = {
    "ppo": "f7e30b187de1b32b",
    "rpo": "db40c30bab0452d9",
    "ppo_sr": "73a2520e2f5fb541",
    "trpo": "e2b0a6beed28d149",
    "trpo_sr": "cfd6fc4fce6acecc",
    "cleanrl_preset": "19ff04483010183b",
    "ddpg": "be63331829861b17",
    "ddpg_sr_a": "1b2fdd6a3880078b",
    "ddpg_sr_c": "64a3574ee8167da7",
}


def run_hash(name: str) -> str:
    config, hparams = CASES[name]
    trainer = make_trainer(config)
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(7), as_hparams(**hparams))
    digest = hashlib.sha256()
    for key in sorted(metrics):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(np.asarray(metrics[key])).tobytes())
    for leaf in jax.tree.leaves((state.params, state.normalizer)):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(CASES))
def test_short_run_reproduces_its_pinned_hash(name):
    assert run_hash(name) == PINNED[name]


if __name__ == "__main__":
    for case in sorted(CASES):
        print(f'    "{case}": "{run_hash(case)}",')
