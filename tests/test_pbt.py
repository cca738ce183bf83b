"""Population-based training inside the compiled program (rpo_jax.training.pbt)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_pinned import l2_norm

from rpo_jax import cli
from rpo_jax.config import ConfigError, PBTConfig
from rpo_jax.runs import config_io
from rpo_jax.training import pbt, population, train

TRAIN = {
    "env": "gymnax/Pendulum-v1",
    "num_envs": 2,
    "num_steps": 64,
    "num_minibatches": 2,
    "update_epochs": 1,
    "episode_length": 32,
}
PBT = {"interval": 2, "explore": {"alpha": [0.01, 3.0]}, "fraction": 0.25, "resample_probability": 0.25}


def _config(iterations=8, pbt_section=PBT, seeds=2, grid=(0.1, 0.5, 1.0, 2.0), **sweep):
    return config_io.config_from_dict(
        {
            "train": {**TRAIN, "total_timesteps": 2 * 64 * iterations},
            "sweep": {"seeds": seeds, "grid": {"alpha": list(grid)}, "pbt": pbt_section, **sweep},
        }
    )


# test_pbt_off_reproduces_the_code_before_pbt: the values of commit dbcdaa0's sweep
PBT_OFF_PINNED = {
    "episode_return": [
        [-238.12428283691406, -157.84759521484375, -177.0904541015625, -226.68211364746094],
        [-224.02377319335938, -206.26455688476562, -180.3765106201172, -201.02508544921875],
        [-238.12428283691406, -158.1690673828125, -177.4717559814453, -227.02279663085938],
        [-224.02377319335938, -206.21572875976562, -180.5357666015625, -200.83584594726562],
    ],
    "value_loss": [
        [1.3995994329452515, 0.21829237043857574, 0.1273801028728485, 0.1508164405822754],
        [1.710163950920105, 0.47523465752601624, 0.20932242274284363, 0.2849072813987732],
        [1.399595022201538, 0.219233900308609, 0.12842708826065063, 0.1506771594285965],
        [1.7101640701293945, 0.47568005323410034, 0.20910650491714478, 0.28375762701034546],
    ],
    "params_norm": [16.400335139921165, 16.399906503453234, 16.40014694218872, 16.399941515192673],
}


def _digest(result) -> str:
    h = hashlib.sha256()
    for k in sorted(result.metrics):
        h.update(k.encode())
        h.update(np.ascontiguousarray(result.metrics[k]).tobytes())
    for leaf in jax.tree.leaves(result.state):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ the pure pieces


def test_truncation_selection_copies_the_top_within_each_group():
    # two groups (seeds) of 4, interleaved as a sweep orders them; fitness decides
    groups = jnp.asarray([0, 1, 0, 1, 0, 1, 0, 1])
    values = jnp.asarray([4.0, -1.0, 3.0, -2.0, 2.0, -3.0, 1.0, -4.0])
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    parent = np.asarray(pbt.choose_parents(values, groups, 0.25, keys))
    # one member per tail: the worst of each group (6, 7) copies its group's best (0, 1)
    np.testing.assert_array_equal(parent, [0, 1, 2, 3, 4, 5, 0, 1])
    # with half: the two worst of a group copy one of its two best, never another group's member
    for seed in range(20):
        keys = jax.random.split(jax.random.PRNGKey(seed), 8)
        parent = np.asarray(pbt.choose_parents(values, groups, 0.5, keys))
        np.testing.assert_array_equal(parent[:4], [0, 1, 2, 3])
        assert set(parent[[4, 6]]) <= {0, 2} and set(parent[[5, 7]]) <= {1, 3}


def test_no_copy_from_a_member_that_is_not_fitter_and_padding_takes_no_part():
    keys = jax.random.split(jax.random.PRNGKey(1), 5)
    same = jnp.full((4,), -jnp.inf)  # nothing measured yet (no episode ended): nobody copies
    np.testing.assert_array_equal(pbt.choose_parents(same, jnp.zeros(4, jnp.int32), 0.25, keys[:4]), np.arange(4))
    values = jnp.asarray([1.0, 2.0, 3.0, 9.0, -9.0])
    parent = pbt.choose_parents(values, jnp.asarray([0, 0, 0, -1, -1]), 0.34, keys)
    np.testing.assert_array_equal(parent, [2, 1, 2, 3, 4])  # the padding (-1) neither copies nor is copied


def test_diverged_members_rank_last():
    state = pbt.PBTState(
        hparams=None, fitness_sum=jnp.asarray([10.0, -50.0, 0.0]), fitness_count=jnp.asarray([2, 1, 0])
    )
    values = pbt.fitness(state, diverged_at=jnp.asarray([3, -1, -1]))
    np.testing.assert_array_equal(values, [-np.inf, -50.0, -np.inf])


@pytest.mark.parametrize("choices", [(), (0.001, 0.5, 3.0)])
def test_explore_keeps_values_in_bounds(choices):
    keys = jax.random.split(jax.random.PRNGKey(2), 4000)
    start = jnp.asarray(np.geomspace(0.001, 3.0, 4000), jnp.float32)
    new = np.asarray(pbt.explore(start, keys, (0.001, 3.0), (0.5, 2.0), 0.5, choices))
    assert new.dtype == np.float32 and np.all(new >= np.float32(0.001)) and np.all(new <= np.float32(3.0))
    moved = new / np.asarray(start)
    perturbed = np.isclose(moved, 0.5) | np.isclose(moved, 2.0)
    at_bound = np.isclose(new, 0.001) | np.isclose(new, 3.0)
    if choices:  # every value is a factor times the start, a clipped one, or a grid value
        assert np.all(perturbed | at_bound | np.isin(new, np.float32(choices)))
        assert 0.4 < np.mean(np.isin(new, np.float32(choices)) & ~perturbed) < 0.6
    else:  # log-uniform draws: spread over the whole range
        drawn = new[~perturbed & ~at_bound]
        assert len(drawn) > 1500 and np.min(drawn) < 0.002 and np.max(drawn) > 2.0


def test_lineage_follows_copies():
    parents = np.full((3, 4), -1)
    parents[2, 1] = 0  # after iteration 1, member 2 continues member 0
    parents[0, 2] = 1  # after iteration 2, member 0 continues member 1
    np.testing.assert_array_equal(pbt.lineage(parents), [[0, 0, 0, 1], [1, 1, 1, 1], [2, 2, 0, 0]])


# ------------------------------------------------------------------ one step on a real population


def test_exploit_copies_exactly_the_chosen_members_state():
    config = _config()
    trainer = population.population_trainer(train.make_trainer(config.train), 8)
    pop = population.build_population(config.sweep, config.hparams)
    init = jax.jit(population.over_members(pbt.with_pbt(trainer.init), 8))
    run = jax.jit(population.chunk_program(trainer, 8, 2))
    state, _ = run(init(pop.keys, pop.hparams), pop.hparams, False)  # two iterations: states differ
    fitness = jnp.asarray([0.0, 7.0, 1.0, 6.0, 2.0, 5.0, 3.0, 4.0])  # group 0: members 0, 2, 4, 6
    state = state.replace(pbt=state.pbt.replace(fitness_sum=fitness, fitness_count=jnp.ones(8, jnp.int32)))
    groups = jnp.asarray(pop.pbt_groups())
    step = jax.jit(lambda s: pbt.exploit_and_explore(s, config.sweep.pbt, config.train, groups, jnp.arange(8), {}))
    new, parent, ranked = step(state)
    np.testing.assert_array_equal(parent, [6, 1, 2, 3, 4, 5, 6, 1])  # each group's worst copies its best
    np.testing.assert_array_equal(ranked, fitness)
    for child, source in [(0, 6), (7, 1)]:
        for field in ("params", "opt_state", "diverged_at"):
            chex.assert_trees_all_equal(
                jax.tree.map(lambda x: x[child], getattr(new, field)),
                jax.tree.map(lambda x: x[source], getattr(state, field)),
            )
        for field in ("obs", "ret"):  # the copied statistics; its own running discounted return
            chex.assert_trees_all_equal(
                jax.tree.map(lambda x: x[child], getattr(new.normalizer, field)),
                jax.tree.map(lambda x: x[source], getattr(state.normalizer, field)),
            )
        chex.assert_trees_all_equal(new.normalizer.discounted_return[child], state.normalizer.discounted_return[child])
        # its own environments, episodes and start stream; the observation re-normalised with the copied statistics
        for field in ("env_state", "episode_return", "episode_length", "iteration", "starts"):
            chex.assert_trees_all_equal(
                jax.tree.map(lambda x: x[child], getattr(new, field)),
                jax.tree.map(lambda x: x[child], getattr(state, field)),
            )
        # a key of its own: its key folded with its member number and the generation (iteration 2 // interval 2)
        expected_key = jax.random.fold_in(jax.random.fold_in(state.key[child], child), 1)
        np.testing.assert_array_equal(new.key[child], expected_key)
        assert not np.array_equal(new.key[child], new.key[source])
        stats = jax.tree.map(lambda x: x[source], state.normalizer.obs).current
        expected = stats.normalize(state.env_state.obs[child], 10.0)
        np.testing.assert_allclose(new.obs[child], expected, rtol=1e-6)
        # the copied hyperparameters, alpha explored within its bounds, the rest as the source's
        copied = jax.tree.map(lambda x: x[child], new.pbt.hparams)
        source_hp = jax.tree.map(lambda x: x[source], state.pbt.hparams)
        assert 0.01 <= float(copied.alpha) <= 3.0 and float(copied.alpha) != float(source_hp.alpha)
        chex.assert_trees_all_equal(copied.replace(alpha=0.0), source_hp.replace(alpha=0.0))
    for other in (1, 2, 3, 4, 5, 6):  # everyone else keeps every value bit for bit
        keep = jax.tree.map(lambda x: x[other], new.replace(pbt=None))
        chex.assert_trees_all_equal(keep, jax.tree.map(lambda x: x[other], state.replace(pbt=None)))
        chex.assert_trees_all_equal(
            jax.tree.map(lambda x: x[other], new.pbt.hparams), jax.tree.map(lambda x: x[other], state.pbt.hparams)
        )
    np.testing.assert_array_equal(new.pbt.fitness_count, 0)  # a new window for everyone


def test_a_copy_draws_its_own_random_stream_not_its_donors():
    """At iteration 0 the members of a seed are identical but for their hyperparameters (one key, one
    network, one environment per seed). A copy that also takes its donor's unexplored hyperparameters
    (factor 1, no resampling) is then its donor's duplicate in everything but the key PBT gives it:
    with that key it trains on differently; with its donor's, it would learn the same bits."""
    config = _config()
    no_change = dataclasses.replace(config.sweep.pbt, factors=(1.0,), resample_probability=0.0)
    trainer = population.population_trainer(train.make_trainer(config.train), 8)
    pop = population.build_population(config.sweep, config.hparams)
    init = jax.jit(population.over_members(pbt.with_pbt(trainer.init), 8))
    run = jax.jit(population.chunk_program(trainer, 8, 2))
    state = init(pop.keys, pop.hparams)
    fitness = jnp.asarray([0.0, 7.0, 1.0, 6.0, 2.0, 5.0, 3.0, 4.0])
    state = state.replace(pbt=state.pbt.replace(fitness_sum=fitness, fitness_count=jnp.ones(8, jnp.int32)))
    groups = jnp.asarray(pop.pbt_groups())
    new, parent, _ = jax.jit(lambda s: pbt.exploit_and_explore(s, no_change, config.train, groups, jnp.arange(8), {}))(
        state
    )
    np.testing.assert_array_equal(parent, [6, 1, 2, 3, 4, 5, 6, 1])
    pairs = [(0, 6), (7, 1)]
    # the copy's observation is re-normalised with its donor's statistics: its donor's, up to rounding;
    # take the donor's bits, so that the copy is its donor's duplicate ...
    np.testing.assert_allclose(new.obs[0], new.obs[6], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new.obs[7], new.obs[1], rtol=1e-4, atol=1e-5)
    new = new.replace(obs=new.obs.at[0].set(new.obs[6]).at[7].set(new.obs[1]))
    for child, donor in pairs:
        copy, original = (jax.tree.map(lambda x: x[i], new.replace(key=None)) for i in (child, donor))
        chex.assert_trees_all_equal(copy, original)
        assert not np.array_equal(new.key[child], new.key[donor])  # ... but for its key
    for other in (1, 2, 3, 4, 5, 6):
        np.testing.assert_array_equal(new.key[other], state.key[other])

    trained, _ = run(new, pop.hparams, False)
    same_key = new.replace(key=new.key.at[0].set(new.key[6]).at[7].set(new.key[1]))
    control, _ = run(same_key, pop.hparams, False)
    for child, donor in pairs:
        params = lambda s, i: jax.tree.map(lambda x: x[i], s.params)  # noqa: E731
        chex.assert_trees_all_equal(params(control, child), params(control, donor))  # the donor's key: same bits
        leaves = zip(jax.tree.leaves(params(trained, child)), jax.tree.leaves(params(trained, donor)))
        assert not all(np.array_equal(a, b) for a, b in leaves)  # its own key: it explores on its own


def test_pbt_populations_are_per_static_point_and_seed(monkeypatch):
    config = _config(iterations=4, grid=(0.1, 0.5), static={"action_dist": ["gaussian", "laplace"]})
    members = config.sweep.members(config.hparams)
    assert len(members) == 8  # 2 static points x 2 seeds x 2 alphas
    for point in config.sweep.static_points():
        pop = population.build_population(config.sweep, config.hparams, point)
        assert {m["action_dist"] for m in pop.members} == {point["action_dist"]} and pop.size == 4
        np.testing.assert_array_equal(pop.pbt_groups(), [m["seed"] for m in pop.members])

    received = []
    original = pbt.chunk_program

    def recording(program, pbt_config, train_config, groups, member_ids, grid):
        received.append((np.asarray(groups), np.asarray(member_ids)))
        return original(program, pbt_config, train_config, groups, member_ids, grid)

    monkeypatch.setattr(pbt, "chunk_program", recording)
    result = population.run_experiment(config, devices=jax.devices()[:1])
    assert len(received) == 2  # one compiled program (one PBT step) per static point
    for groups, ids in received:  # each holds one static point; its groups are that point's seeds
        assert len({members[i]["action_dist"] for i in ids}) == 1
        np.testing.assert_array_equal(groups, [members[i]["seed"] for i in ids])
    parents = result.metrics[pbt.PARENT_METRIC]
    rows, cols = np.nonzero(parents >= 0)
    assert len(rows) >= 2  # copies happened, each within its static point x seed
    for row, col in zip(rows, cols):
        child, donor = result.members[row], members[parents[row, col]]
        assert (child["action_dist"], child["seed"]) == (donor["action_dist"], donor["seed"])


# ------------------------------------------------------------------ whole runs


def test_pbt_off_reproduces_the_code_before_pbt():
    """A 4-member sweep without PBT reproduces the code before rpo_jax.training.pbt existed (commit dbcdaa0):
    once pinned as a hash of every metric and state leaf, equal at dbcdaa0 and at 95020d0; now its
    returns and value losses per member and iteration and its members' parameter norms, within the
    tolerance of tests/test_pinned.py (bit hashes differ between x86-64 CPUs; see there)."""
    config = config_io.config_from_dict(
        {
            "train": {**TRAIN, "total_timesteps": 512},
            "sweep": {"seeds": 2, "grid": {"alpha": [0.0, 0.5]}, "chunk_iterations": 2},
        }
    )
    assert not config.sweep.pbt.enabled and population.build_population(config.sweep, config.hparams).pbt is None
    result = population.run_experiment(config, devices=jax.devices()[:1])
    assert result.state.pbt is None and not any(k.startswith("pbt_") for k in result.metrics)
    m = result.metrics
    np.testing.assert_allclose(m["episode_return"], PBT_OFF_PINNED["episode_return"], rtol=1e-4)
    np.testing.assert_allclose(m["value_loss"], PBT_OFF_PINNED["value_loss"], rtol=1e-4)
    norms = [l2_norm(jax.tree.map(lambda x: x[i], result.state.params)) for i in range(4)]
    # the members' norms differ by ~2e-5 relative; another CPU moves them by ~1e-6 (tests/test_pinned.py)
    np.testing.assert_allclose(norms, PBT_OFF_PINNED["params_norm"], rtol=1e-5)


def test_a_pbt_run_is_deterministic_explores_in_bounds_and_compiles_once(monkeypatch):
    compiles = []
    original = jax.stages.Lowered.compile
    monkeypatch.setattr(
        jax.stages.Lowered, "compile", lambda self, *a, **k: compiles.append(1) or original(self, *a, **k)
    )
    config = _config(iterations=12, seeds=2)
    first = population.run_experiment(config, devices=jax.devices()[:1])
    assert len(compiles) == 2  # init and the chunk program (with its PBT step): 5 PBT steps, no recompile
    second = population.run_experiment(config, devices=jax.devices()[:1])
    assert _digest(first) == _digest(second)

    m = first.metrics
    parents = m[pbt.PARENT_METRIC]
    steps = np.flatnonzero(np.isfinite(m[pbt.FITNESS_METRIC][0]))
    np.testing.assert_array_equal(steps, [1, 3, 5, 7, 9])  # after every 2nd iteration, not after the last
    assert (parents >= 0).sum() >= 4  # copies happened, only at PBT steps, only within a seed
    rows, cols = np.nonzero(parents >= 0)
    assert set(cols) <= set(steps)
    seeds = np.asarray([row["seed"] for row in first.members])
    np.testing.assert_array_equal(seeds[parents[rows, cols]], seeds[rows])
    alpha = m[pbt.hparam_metric("alpha")]
    assert np.all((alpha >= np.float32(0.01)) & (alpha <= np.float32(3.0)))
    np.testing.assert_array_equal(alpha, m["alpha_current"])  # members train with the explored value
    assert np.any(alpha[:, -1] != alpha[:, 0])
    np.testing.assert_array_equal(first.state.pbt.hparams.alpha, alpha[:, -1])  # no step after the last iteration
    # a member's alpha changes only right after it copied
    changed = np.nonzero(alpha[:, 1:] != alpha[:, :-1])
    assert np.all(parents[changed[0], changed[1]] >= 0)


def test_pbt_resume_equals_uninterrupted(tmp_path):
    from rpo_jax.runs import durable

    config = _config(iterations=12, seeds=1, grid=(0.1, 0.5, 1.0), chunk_iterations=2)
    reference = durable.run_durable(config, tmp_path / "reference")
    assert (reference.metrics[pbt.PARENT_METRIC] >= 0).any()

    class StopAt:
        signum = None

        def __call__(self, progress):
            if progress.iteration >= 5:
                self.signum = 2

    stop = StopAt()
    with pytest.raises(durable.Stopped) as stopped:
        durable.run_durable(config, tmp_path / "run", stop=stop, on_progress=stop)
    assert stopped.value.progress.iteration == 8  # the "signal" came after the chunk ending at 6
    resumed = durable.run_durable(config, tmp_path / "run")
    chex.assert_trees_all_equal(resumed.metrics, reference.metrics)
    chex.assert_trees_all_equal(resumed.state, reference.state)


def test_pbt_sharded_over_two_devices_equals_one_device():
    """3 members on 2 devices (one padding member, which takes no part) learn what they learn on one."""
    from tests.test_sharding import _on_two_devices

    script = textwrap.dedent(
        f"""
        import json, jax, numpy as np
        from rpo_jax.runs import config_io
        from rpo_jax.training import population
        config = config_io.config_from_dict({{"train": {{**{TRAIN!r}, "total_timesteps": 1536}},
            "sweep": {{"seeds": 1, "grid": {{"alpha": [0.1, 0.5, 1.0]}}, "pbt": {PBT!r}}}}})
        two = population.run_experiment(config, devices=jax.devices())
        one = population.run_experiment(config, devices=jax.devices()[:1])
        pairs = zip(jax.tree.leaves(two.state), jax.tree.leaves(one.state))
        same = all(np.array_equal(a, b, equal_nan=True) for a, b in pairs)
        same &= all(np.array_equal(two.metrics[k], one.metrics[k], equal_nan=True) for k in one.metrics)
        copies = int((one.metrics["pbt_parent"] >= 0).sum())
        print(json.dumps({{"same": bool(same), "devices": two.num_devices, "copies": copies}}))
        """
    )
    proc = _on_two_devices(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"same": True, "devices": 2, "copies": out["copies"]} and out["copies"] >= 1


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "section, message",
    [
        ({"interval": -1}, "sweep.pbt.interval must be an integer >= 0, got -1"),
        ({"interval": 2}, "sweep.pbt.explore must name at least one hyperparameter"),
        ({"interval": 2, "explore": {"alpah": [0, 1]}}, "unknown hyperparameter 'alpah' in sweep.pbt.explore"),
        ({"interval": 2, "explore": {"anneal_alpha": [0, 1]}}, "sweep.pbt.explore.anneal_alpha cannot be explored"),
        ({"interval": 2, "explore": {"alpha": [3, 0.01]}}, "must be [low, high] with low < high"),
        ({"interval": 2, "explore": {"alpha": [-1, 1]}}, "sweep.pbt.explore.alpha must be >= 0, got -1"),
        ({"interval": 2, "explore": {"alpha": [0.2, 3]}}, "member 0 starts at 0.1, outside [0.2, 3]"),
        ({"interval": 2, "explore": {"alpha": [0, 3]}, "fraction": 0.6}, "sweep.pbt.fraction must be in (0, 0.5]"),
        ({"interval": 2, "explore": {"alpha": [0, 3]}, "factors": [0.8, -1]}, "sweep.pbt.factors must be"),
        ({"interval": 8, "explore": {"alpha": [0, 3]}}, "leaves no PBT step in a run of 8 iterations"),
        ({"interval": 2, "explore": {"alpha": [0, 3]}, "every": 3}, "unknown key 'sweep.pbt.every'"),
        ([2], "sweep.pbt must be a mapping"),
    ],
)
def test_bad_pbt_settings_are_one_line(section, message):
    with pytest.raises(ConfigError) as err:
        _config(pbt_section=section)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_pbt_needs_two_members_per_seed_and_an_on_policy_algorithm():
    with pytest.raises(ConfigError, match="at least 2 members per seed"):
        _config(grid=(0.5,))
    with pytest.raises(ConfigError, match="on-policy algorithms, not train.algorithm=ddpg"):
        config_io.config_from_dict(
            {
                "train": {**TRAIN, "algorithm": "ddpg", "normalize_rewards": False, "total_timesteps": 1024},
                "sweep": {"grid": {"alpha": [0.1, 0.5]}, "pbt": PBT},
            }
        )


def test_cli_refuses_bad_pbt_settings_before_compiling(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "train: {env: gymnax/Pendulum-v1}\n"
        "sweep: {grid: {alpha: [0.1, 0.5]}, pbt: {interval: 5, explore: {alpha: [0.2, 3]}}}\n"
    )
    assert cli.main(["sweep", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "member 0 starts at 0.1, outside [0.2, 3]" in err
    assert not (tmp_path / "run").exists()


def test_pbt_config_round_trips_through_to_dict():
    config = _config()
    again = config_io.config_from_dict(config.to_dict())
    assert (
        again.sweep.pbt
        == config.sweep.pbt
        == PBTConfig(interval=2, explore=(("alpha", (0.01, 3.0)),), fraction=0.25, resample_probability=0.25)
    )
    assert (
        "pbt"
        not in dataclasses.replace(config, sweep=dataclasses.replace(config.sweep, pbt=PBTConfig())).to_dict()["sweep"]
    )


def test_chunks_end_at_every_pbt_step():
    assert population.chunk_size(400, 0, pbt_interval=20) == 20
    assert population.chunk_size(400, 30, pbt_interval=15) == 5  # divides 400 and 15
    assert population.chunk_size(12, 0, pbt_interval=0) == 1


# ------------------------------------------------------------------ the report


def _run_data(tmp_path, name, returns, pbt_section=None, parents=None, alphas=None):
    """A RunData of 2 seeds x 2 members over 4 iterations; ``returns[member]`` is its return per iteration."""
    import pandas as pd

    from rpo_jax.analysis.report_data import RunData

    rows = []
    for member in range(4):
        for it in range(4):
            row = {"member": member, "seed": member % 2, "alpha": [0.1, 0.1, 1.0, 1.0][member], "iteration": it}
            row.update(env_steps=(it + 1) * 10, episode_return=returns[member][it], diverged=0.0)
            if pbt_section:
                row[pbt.PARENT_METRIC] = parents.get((member, it), -1)
                row[pbt.hparam_metric("alpha")] = alphas[member][it]
            rows.append(row)
    sweep = {"seeds": [0, 1], "grid": {"alpha": [0.1, 1.0]}}
    config = {"train": {"env": "gymnax/Pendulum-v1"}, "hparams": {}, "sweep": sweep}
    if pbt_section:
        config = {**config, "sweep": {**sweep, "pbt": pbt_section}}
    return RunData(tmp_path / name, config, pd.DataFrame(rows), ["alpha"], "gymnax/Pendulum-v1")


def test_the_report_compares_pbts_best_member_with_the_grid(tmp_path):
    from rpo_jax.analysis import pbt_report

    section = {"interval": 2, "explore": {"alpha": [0.01, 3.0]}}
    # seed 0: members 0, 2; seed 1: members 1, 3. After iteration 1, member 2 copies member 0.
    pbt_run = _run_data(
        tmp_path,
        "pbt",
        returns=[[0, 0, 0, -10], [0, 0, 0, -30], [0, 0, 0, -12], [0, 0, 0, -20]],
        pbt_section=section,
        parents={(2, 1): 0},
        alphas=[[0.1] * 4, [0.1] * 4, [1.0, 1.0, 0.08, 0.08], [1.0] * 4],
    )
    grid = _run_data(tmp_path, "grid", returns=[[0, 0, 0, -40], [0, 0, 0, -50], [0, 0, 0, -20], [0, 0, 0, -25]])
    other = _run_data(tmp_path, "other", returns=[[0] * 4] * 4)
    other.config["train"] = {"env": "gymnax/Pendulum-v1", "total_timesteps": 5}  # another budget: not comparable
    assert pbt_report.explored(pbt_run) == ["alpha"] and not pbt_report.explored(grid)
    assert pbt_report.same_population(pbt_run, grid) and not pbt_report.same_population(pbt_run, other)

    members, ancestor = pbt_report.ancestors(pbt_run)
    np.testing.assert_array_equal(ancestor[2], [2, 2, 0, 0])
    written = pbt_report.report([pbt_run], [grid, other], tmp_path, fraction=0.25)
    assert [p.name for p in written] == [
        "pbt_schedules_gymnax_Pendulum-v1.png",
        "pbt_lineage_gymnax_Pendulum-v1.png",
        "pbt_against_grid_gymnax_Pendulum-v1.png",
        "pbt.md",
    ]
    text = (tmp_path / "pbt.md").read_text()
    assert "| 0 | 0 | -10.00 | 0.1 | -11.00 |" in text and "| 1 | 3 | -20.00 | 1 | -25.00 |" in text
    assert text.count("Against the grid") == 1  # the run of another budget is not a baseline
    # PBT best per seed: -10, -20 (mean -15); grid best per seed: -20, -25 (mean -22.5); differences +10, +5
    assert "| PBT, best member | -15.00 ± 5.00 (2) | |" in text
    assert "| grid, best member | -22.50 ± 2.50 (2) | **+7.50 [+5.00, +10.00]** |" in text
    # the grid's configurations by mean: alpha=1 (-22.5) best, alpha=0.1 (-45) the other
    assert "| grid, best fixed (alpha=1) | -22.50 ± 2.50 (2) |" in text


def test_the_report_refuses_a_pbt_run_with_a_static_sweep(tmp_path):
    """PBT populations are per static point x seed; the PBT report groups by seed, so it refuses to
    pool a static sweep's points (one line, before it writes anything)."""
    from rpo_jax.analysis import pbt_report
    from rpo_jax.analysis.report_data import ReportError

    section = {"interval": 2, "explore": {"alpha": [0.01, 3.0]}}
    run = _run_data(tmp_path, "pbt", returns=[[0.0] * 4] * 4, pbt_section=section, parents={}, alphas=[[0.1] * 4] * 4)
    run.config["sweep"]["static"] = {"action_dist": ["gaussian", "laplace"]}
    with pytest.raises(ReportError, match="one PBT population per static point and seed"):
        pbt_report.report([run], [], tmp_path / "out", fraction=0.25)
    assert not (tmp_path / "out").exists()
