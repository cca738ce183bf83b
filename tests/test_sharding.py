"""A population sharded over devices: each device runs its own members, with no communication.

``population.per_device`` (``jax.shard_map``) takes the start caches' refill decision per device
instead of over the whole population. It must change nothing learned: the same run as the plain
``jit`` program (one refill decision for all members, an all-reduce on every env step), bit for
bit, on 2 CPU devices in a fresh process.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from rpo_jax.runs import config_io
    from rpo_jax.training import population

    config = config_io.config_from_dict({
        "train": {"env": "gymnax/Pendulum-v1", "num_envs": 4, "num_steps": 128, "num_minibatches": 2,
                  "update_epochs": 1, "total_timesteps": 4 * 128 * 4},
        "hparams": {"alpha": 0.5},
        "sweep": {"seeds": 3, "grid": {"learning_rate": [0.0003, 0.001]}},
    })
    assert len(jax.devices()) == 2 and config.train.reset_pool

    def run():
        return population.run_experiment(config, devices=jax.devices())

    ours = run()
    plain = population.per_device
    population.per_device = lambda program, mesh: program  # the program before: one jit over all devices
    before = run()
    population.per_device = plain
    pairs = zip(jax.tree.leaves(ours.state), jax.tree.leaves(before.state))
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in pairs)
    same &= all(np.array_equal(ours.metrics[k], before.metrics[k], equal_nan=True) for k in ours.metrics)
    episodes = int(ours.metrics["episodes"].sum())
    reused = int(ours.metrics["reused_starts"].sum())
    print(json.dumps({"same": bool(same), "episodes": episodes, "reused": reused}))
    """
)


def _on_two_devices(script: str) -> subprocess.CompletedProcess:
    """``script`` in a fresh Python process with 2 CPU devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("RPO_JAX_CPU_DEVICES", None)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)


def test_per_device_program_learns_what_one_program_over_all_devices_learns(tmp_path):
    proc = _on_two_devices(SCRIPT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["episodes"] > 0 and out["reused"] == 0  # episodes ended, each from a fresh start
    assert out["same"]


@pytest.mark.slow  # the equality test above is the guarantee; this one says why it is fast
def test_the_per_device_program_has_no_collectives():
    """Compiled for 2 devices, the chunk program holds no all-reduce (the plain jit one does)."""
    script = textwrap.dedent(
        """
        import jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from rpo_jax.runs import config_io
        from rpo_jax.training import population, train

        cfg = config_io.config_from_dict({"train": {"env": "gymnax/Pendulum-v1", "num_envs": 2, "num_steps": 8,
            "num_minibatches": 2, "update_epochs": 1, "total_timesteps": 16}, "sweep": {"seeds": 4}})
        trainer = population.population_trainer(train.make_trainer(cfg.train), 4)
        pop = population.build_population(cfg.sweep, cfg.hparams)
        mesh = Mesh(np.asarray(jax.devices()), (population.MESH_AXIS,))
        sharded, replicated = NamedSharding(mesh, P(population.MESH_AXIS)), NamedSharding(mesh, P())
        state = jax.eval_shape(population.over_members(trainer.init, 4), pop.keys, pop.hparams)
        spec = lambda t: jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharded), t)
        flag = jax.ShapeDtypeStruct((), bool, sharding=replicated)
        program = population.chunk_program(trainer, 4, 1)
        for name, fn in (("per_device", population.per_device(program, mesh)), ("plain", program)):
            text = jax.jit(fn).lower(spec(state), spec(pop.hparams), flag).compile().as_text()
            print(name, text.count("all-reduce("))
        """
    )
    proc = _on_two_devices(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(line.split() for line in proc.stdout.strip().splitlines()[-2:])
    assert counts["per_device"] == "0" and int(counts["plain"]) > 0, counts
