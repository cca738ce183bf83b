"""Bad and unusual config input: one-line ConfigError naming the field, or the right typed value.

Everything goes through the functions the CLI uses (``load_yaml``, ``apply_override``,
``parse_grid``, ``parse_value``, ``config_from_dict``), so nothing here compiles.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from rpo_jax import config as cfgmod
from rpo_jax.config import ConfigError
from rpo_jax.runs import config_io, options


def build(tmp_path, text: str = "", overrides=(), grid=()) -> cfgmod.ExperimentConfig:
    """What ``rpo-jax sweep CONFIG --set ... --grid ...`` does with a config file's text."""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    data = config_io.load_yaml(str(path))
    for section in ("train", "hparams", "sweep"):
        data[section] = data.get(section) or {}
    for assignment in overrides:
        config_io.apply_override(data, assignment)
    if grid:
        data["sweep"]["grid"] = {**(data["sweep"].get("grid") or {}), **config_io.parse_grid(list(grid))}
    return config_io.config_from_dict(data)


def raises_one_line(fragment: str, fn, *args, **kwargs) -> str:
    """Calls fn, which must raise ConfigError with a one-line message containing ``fragment``."""
    with pytest.raises(ConfigError, match=re.escape(fragment)) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


# --------------------------------------------------------------------------- #
# 1. YAML 1.2 numbers: 3e-4 is a float, and an integral float fills an int field.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3e-4", 3e-4),
        ("1e9", 1e9),
        ("2e4", 2e4),
        ("-1e-3", -1e-3),
        ("1E5", 1e5),
        ("+2e3", 2e3),
        ("1.e5", 1e5),
        (".5e3", 500.0),
        ("1_000e-3", 1.0),
        ("3.0e-4", 3e-4),  # YAML 1.1 form, unchanged
        ("0.5", 0.5),
        ("7", 7),
        ("0x1e3", 0x1E3),  # hex integer, not a float with an exponent
        ("[1e-4, 3e-4]", [1e-4, 3e-4]),
        (".inf", float("inf")),
        ("1e", "1e"),  # not a number: stays text for the field's check
        ("e5", "e5"),
        ("._e3", "._e3"),
        ("abc", "abc"),
        ("!!float abc", "!!float abc"),  # PyYAML's constructor raises ValueError
        ("!!timestamp x", "!!timestamp x"),  # ... AttributeError
        ("[" * 3000, "[" * 3000),  # ... RecursionError
    ],
)
def test_parse_value(text, expected):
    value = config_io.parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_global_safe_loader_is_untouched():
    config_io.parse_value("3e-4")
    assert yaml.safe_load("3e-4") == "3e-4"
    assert "tag:yaml.org,2002:float" not in [tag for tag, _ in yaml.SafeLoader.yaml_implicit_resolvers.get("e", [])]
    assert yaml.SafeLoader.yaml_implicit_resolvers is not config_io._Loader.yaml_implicit_resolvers


def test_exponent_floats_in_a_config_file(tmp_path):
    config = build(
        tmp_path,
        "train:\n  total_timesteps: 1e6\n  num_steps: 2e4\n  adam_eps: 1E-5\n  obs_clip: 5\n"
        "hparams:\n  learning_rate: 3e-4\n  ent_coef: +1e-2\n"
        "sweep:\n  grid:\n    max_grad_norm: [5e-1, 1e0]\n",
    )
    assert (config.train.total_timesteps, config.train.num_steps) == (1_000_000, 20_000)
    assert type(config.train.total_timesteps) is int and type(config.train.num_steps) is int
    assert config.train.adam_eps == 1e-5 and config.train.obs_clip == 5.0 and type(config.train.obs_clip) is float
    assert config.hparams.learning_rate == pytest.approx(3e-4) and config.hparams.ent_coef == pytest.approx(0.01)
    assert config.sweep.grid == (("max_grad_norm", (0.5, 1.0)),)


def test_exponent_floats_from_set_and_grid(tmp_path):
    config = build(
        tmp_path,
        overrides=["hparams.learning_rate=3e-4", "train.total_timesteps=1e6", "train.num_steps=2e4"],
        grid=["ent_coef=0,1e-3,1E-2", "alpha=5e-1"],
    )
    assert config.hparams.learning_rate == pytest.approx(3e-4)
    assert config.train.total_timesteps == 1_000_000 and type(config.train.total_timesteps) is int
    assert config.train.num_steps == 20_000 and type(config.train.num_steps) is int
    assert dict(config.sweep.grid) == {"ent_coef": (0.0, 1e-3, 1e-2), "alpha": (0.5,)}
    assert config_io.parse_grid(["learning_rate=1e-4,3e-4"]) == {"learning_rate": [1e-4, 3e-4]}


def test_int_and_float_field_lists():
    assert set(config_io._TRAIN_INT_FIELDS) == {
        "num_envs",
        "num_steps",
        "num_minibatches",
        "update_epochs",
        "total_timesteps",
        "anneal_lr_timesteps",
        "episode_length",
        "smoothness_steps",
        "trpo_cg_iters",
        "trpo_backtrack_iters",
        "eval_every",
        "eval_episodes",
        "buffer_size",
        "learning_starts",
        "replay_batch_size",
        "updates_per_iteration",
    }
    assert set(config_io._TRAIN_FLOAT_FIELDS) == {
        "obs_clip",
        "reward_clip",
        "adam_eps",
        "rad_scale_low",
        "rad_scale_high",
        "trpo_damping",
        "trpo_backtrack_coef",
    }


@pytest.mark.parametrize(
    ("assignment", "attribute", "expected"),
    [
        ("train.num_envs=2e0", ("train", "num_envs"), 2),
        ("train.num_steps=6.4e1", ("train", "num_steps"), 64),
        ("train.num_minibatches=4.0", ("train", "num_minibatches"), 4),
        ("train.update_epochs=3e0", ("train", "update_epochs"), 3),
        ("train.total_timesteps=1e6", ("train", "total_timesteps"), 1_000_000),
        ("train.episode_length=2e2", ("train", "episode_length"), 200),
        ("train.smoothness_steps=5.0", ("train", "smoothness_steps"), 5),
        ("train.trpo_cg_iters=2e1", ("train", "trpo_cg_iters"), 20),
        ("train.trpo_backtrack_iters=1.5e1", ("train", "trpo_backtrack_iters"), 15),
        ("train.actor_hidden=[3.2e1, 32]", ("train", "actor_hidden"), (32, 32)),
        ("sweep.chunk_iterations=5e0", ("sweep", "chunk_iterations"), 5),
        ("sweep.seeds=3.0", ("sweep", "seeds"), (0, 1, 2)),
        ("sweep.seeds=[0.0, 1e1]", ("sweep", "seeds"), (0, 10)),
        ("train.obs_clip=5", ("train", "obs_clip"), 5.0),
    ],
)
def test_integral_values_get_the_field_type(tmp_path, assignment, attribute, expected):
    config = build(tmp_path, "train:\n  num_steps: 64\n  num_minibatches: 4\n", overrides=[assignment])
    value = getattr(getattr(config, attribute[0]), attribute[1])
    assert value == expected
    items = value if isinstance(value, tuple) else (value,)
    assert all(type(v) is type(e) for v, e in zip(items, expected if isinstance(expected, tuple) else (expected,)))


@pytest.mark.parametrize(
    ("assignment", "fragment"),
    [
        ("train.num_envs=1.5", "train.num_envs must be a positive integer, got 1.5"),
        ("train.num_steps=2.55e1", "train.num_steps must be a positive integer, got 25.5"),
        ("train.total_timesteps=1.5", "train.total_timesteps must be a positive integer, got 1.5"),
        ("train.total_timesteps=.inf", "train.total_timesteps must be a positive integer, got inf"),
        ("train.update_epochs=.nan", "train.update_epochs must be a positive integer, got nan"),
        ("train.episode_length=0.5", "train.episode_length must be a positive integer or null, got 0.5"),
        ("train.episode_length=true", "train.episode_length must be a positive integer or null, got True"),
        ("train.trpo_cg_iters=2.5", "train.trpo_cg_iters must be a positive integer, got 2.5"),
        ("train.smoothness_steps=1e-1", "train.smoothness_steps must be a positive integer, got 0.1"),
        ("train.actor_hidden=[64.5]", "train.actor_hidden must be a non-empty list of positive integers, got [64.5]"),
        ("sweep.chunk_iterations=2.5", "sweep.chunk_iterations must be an integer >= 0, got 2.5"),
        ("sweep.chunk_iterations=true", "sweep.chunk_iterations must be an integer >= 0, got True"),
        ("sweep.seeds=2.5", "sweep.seeds must be a positive count or a list of seeds, got 2.5"),
        ("sweep.seeds=[0.5]", "sweep.seeds must be non-negative integers, got [0.5]"),
        ("sweep.seeds=[0, 0.0]", "sweep.seeds has duplicates: [0, 0]"),
        # 6. text where a number is expected names the field and the text.
        ("train.num_envs=abc", "train.num_envs must be a positive integer, got 'abc'"),
        ("train.obs_clip=abc", "train.obs_clip must be a finite number, got 'abc'"),
        ("train.obs_clip=1e", "train.obs_clip must be a finite number, got '1e'"),
        ("hparams.learning_rate=abc", "hparams.learning_rate must be a finite number, got 'abc'"),
        ("hparams.learning_rate=3e-4x", "hparams.learning_rate must be a finite number, got '3e-4x'"),
        ("sweep.chunk_iterations=abc", "sweep.chunk_iterations must be an integer >= 0, got 'abc'"),
        ("sweep.seeds=abc", "sweep.seeds must be a positive count or a list of seeds, got 'abc'"),
    ],
)
def test_bad_numbers_from_set(tmp_path, assignment, fragment):
    raises_one_line(fragment, build, tmp_path, overrides=[assignment])


# --------------------------------------------------------------------------- #
# 2. Files that are not UTF-8 text, directories, YAML PyYAML cannot construct.
# --------------------------------------------------------------------------- #


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"train:\n  env: \xff\xfe\n")
    message = raises_one_line(f"cannot read config file {path}: not UTF-8 text (", config_io.load_yaml, str(path))
    assert message.endswith("not UTF-8 text (byte 0xff at line 2, column 8)")


def test_config_path_is_a_directory(tmp_path):
    raises_one_line(f"cannot read config file {tmp_path}: it is a directory", config_io.load_yaml, str(tmp_path))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hparams:\n  learning_rate: !!float abc\n", "could not convert string to float: 'abc'"),
        ("train:\n  num_envs: !!int 1.5\n", "ValueError"),
        ("sweep:\n  seeds: !!timestamp x\n", "AttributeError"),
        ("train:\n  env: a\x00b\n", "unacceptable character #x0000"),
        ("train: [\n", "at line 2, column 1"),
    ],
)
def test_yaml_pyyaml_cannot_construct(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    message = raises_one_line(f"malformed YAML in {path}", config_io.load_yaml, str(path))
    assert fragment in message


# --------------------------------------------------------------------------- #
# 3. Non-finite floats.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", sorted(config_io._TRAIN_FLOAT_FIELDS))
@pytest.mark.parametrize(("text", "shown"), [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan")])
def test_non_finite_train_floats(tmp_path, name, text, shown):
    fragment = f"train.{name} must be a finite number, got {shown}"
    raises_one_line(fragment, build, tmp_path, overrides=[f"train.{name}={text}"])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("train:\n  obs_clip: .inf\n", "train.obs_clip must be a finite number, got inf"),
        ("train:\n  reward_clip: 1e400\n", "train.reward_clip must be a finite number, got inf"),
        ("train:\n  obs_clip: 1" + "0" * 400 + "\n", "train.obs_clip must be a finite number, got 1000"),
        ("hparams:\n  learning_rate: .nan\n", "hparams.learning_rate must be a finite number, got nan"),
        ("hparams:\n  alpha: 1" + "0" * 400 + "\n", "hparams.alpha must be a finite number, got 1000"),
        ("sweep:\n  grid:\n    alpha: [0, .inf]\n", "sweep.grid.alpha must be a finite number, got inf"),
        ("sweep:\n  variants:\n    - {alpha: .nan}\n", "sweep.variants[0].alpha must be a finite number, got nan"),
    ],
)
def test_non_finite_in_yaml(tmp_path, text, fragment):
    raises_one_line(fragment, build, tmp_path, text)


# --------------------------------------------------------------------------- #
# 4. train.backend.
# --------------------------------------------------------------------------- #


def test_backend_list_matches_envs():
    from rpo_jax.envs.brax import BACKENDS

    assert set(BACKENDS) == {"generalized", "positional", "spring", "mjx"}


@pytest.mark.parametrize("backend", ["generalized", "positional", "spring", "mjx"])
def test_good_backend(tmp_path, backend):
    config = build(tmp_path, f"train:\n  env: brax/ant\n  backend: {backend}\n")
    assert config.train.backend == backend


def test_null_backend(tmp_path):
    assert build(tmp_path, overrides=["train.backend=null"]).train.backend is None


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["train.env=brax/ant", "train.backend=warp"], "train.backend must be null or one of "),
        (["train.env=brax/ant", "train.backend=warp"], "got 'warp'"),
        (["train.env=brax/ant", "train.backend=5"], "got 5"),
        (["train.env=brax/ant", "train.backend=Spring"], "got 'Spring'"),
        (["train.backend=spring"], "train.backend=spring applies to brax/ environments only, got env 'gymnax/Pend"),
        (["train.env=dmc/cartpole-swingup", "train.backend=mjx"], "train.backend=mjx applies to brax/ environments"),
    ],
)
def test_bad_backend(tmp_path, overrides, fragment):
    raises_one_line(fragment, build, tmp_path, overrides=overrides)


# --------------------------------------------------------------------------- #
# 5. Repeated grid values and variants.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("text", "grid", "fragment"),
    [
        ("", ["alpha=0,0"], "sweep.grid.alpha lists 0 twice"),
        ("", ["alpha=0,0.0"], "sweep.grid.alpha lists 0 twice"),
        ("", ["learning_rate=3e-4,1e-3,3.0e-4"], "sweep.grid.learning_rate lists 0.0003 twice"),
        ("sweep:\n  grid:\n    alpha: [0, 0]\n", [], "sweep.grid.alpha lists 0 twice"),
        ("sweep:\n  grid:\n    ent_coef: [0.5, 0, 5e-1]\n", [], "sweep.grid.ent_coef lists 0.5 twice"),
        ("sweep:\n  variants:\n    - {alpha: 0}\n    - {alpha: 0.0}\n", [], "sweep.variants[1] repeats an earlier"),
        (
            "sweep: {variants: [{alpha: 0, ent_coef: 0.01}, {alpha: 0.5}, {ent_coef: 1e-2, alpha: 0}]}",
            [],
            "sweep.variants[2] repeats an earlier variant: {'ent_coef': 0.01, 'alpha': 0.0}",
        ),
        (
            "hparams:\n  ent_coef: 0.0\nsweep:\n  variants:\n    - {alpha: 0.5}\n    - {alpha: 0.5, ent_coef: 0}\n",
            [],
            "sweep.variants[1] trains the same hyperparameters as an earlier variant: {'alpha': 0.5, 'ent_coef': 0.0}",
        ),
    ],
)
def test_repeated_sweep_points(tmp_path, text, grid, fragment):
    raises_one_line(fragment, build, tmp_path, text, grid=grid)


def test_distinct_sweep_points_pass(tmp_path):
    config = build(
        tmp_path,
        "sweep:\n  variants:\n    - {alpha: 0}\n    - {alpha: 0.5}\n    - {alpha: 0.5, ent_coef: 1e-2}\n",
        grid=["learning_rate=3e-4,1e-3"],
    )
    assert config.sweep.grid == (("learning_rate", (3e-4, 1e-3)),)
    assert len(config.sweep.variants) == 3
    assert len(config.sweep.members(config.hparams)) == 6


# ----------------------------------------------------------------------------- presets
RPO_PAPER_CONFIGS = (
    "pendulum_v1",
    "rpo_vs_ppo",
    "alpha_ablation",
    "annealing_inverted_double_pendulum",
    "annealing_reacher",
    "data_augmentation",
    "distributions",
    "entropy_grid",
    "mujoco_brax",
)


@pytest.mark.parametrize("reduced", [False, True])
@pytest.mark.parametrize("name", RPO_PAPER_CONFIGS)
def test_rpo_paper_configs_resolve_to_cleanrl_semantics(name, reduced):
    from rpo_jax import cli

    path = f"configs/paper/{name}.yaml"
    if reduced and "reduced" not in config_io.load_yaml(path):
        pytest.skip(f"{name} has no reduced form")
    config = cli.resolve_config(cli._build_parser().parse_args(["sweep", path] + ["--reduced"] * reduced))
    assert config.train.bootstrap_on_truncation is False
    if reduced and config.train.num_envs > 1:
        # The CPU-sized forms run 8 envs per member (CleanRL: 1) with one normaliser for them, stated in
        # the config: per-env normalisers at 8 envs stall learning (measured, docs/RESULTS.md).
        assert config.train.normalize_per_env is False
    else:
        assert config.train.num_envs == 1 and config.train.normalize_per_env is True
    assert config.hparams.ent_coef == 0.0 or name == "entropy_grid"


def test_reduced_and_set_may_change_a_preset_value_the_config_itself_may_not(tmp_path):
    from rpo_jax import cli

    path = tmp_path / "c.yaml"
    path.write_text("preset: cleanrl\nreduced: {train.normalize_per_env: false}\n")
    args = cli._build_parser().parse_args(["sweep", str(path), "--reduced"])
    assert cli.resolve_config(args).train.normalize_per_env is False
    args = cli._build_parser().parse_args(["sweep", str(path), "--set", "train.bootstrap_on_truncation=true"])
    assert cli.resolve_config(args).train.bootstrap_on_truncation is True
    path.write_text("preset: cleanrl\ntrain: {normalize_per_env: false}\n")
    with pytest.raises(ConfigError, match="contradicts preset cleanrl"):
        cli.resolve_config(cli._build_parser().parse_args(["sweep", str(path)]))


def test_preset_sets_its_switches_and_a_contradiction_is_one_line(tmp_path):
    config = build(tmp_path, "preset: cleanrl\n")
    assert config.train.bootstrap_on_truncation is False and config.train.normalize_per_env is True
    assert build(tmp_path, "preset: cleanrl\ntrain: {bootstrap_on_truncation: false}\n").train.normalize_per_env
    with pytest.raises(ConfigError, match=r"^train.normalize_per_env=False contradicts preset cleanrl"):
        build(tmp_path, "preset: cleanrl\ntrain: {normalize_per_env: false}\n")
    with pytest.raises(ConfigError, match=r"^unknown preset 'gym'; choose from cleanrl$"):
        build(tmp_path, "preset: gym\n")
    assert build(tmp_path, "").train.normalize_per_env is False  # defaults unchanged without a preset


def test_the_readme_option_table_is_generated_from_the_field_metadata():
    import pathlib

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- options -->\n")[1].split("\n<!-- end options -->")[0]
    assert table == options.fields_markdown(), "regenerate the README table with: rpo-jax config --markdown"
    documented = {(r["section"], r["name"]) for r in options.describe_fields() if r["doc"]}
    expected = {("hparams", n) for n in cfgmod.HPARAM_NAMES}
    for section, cls in (("train", cfgmod.TrainConfig), ("sweep", cfgmod.SweepConfig), ("sweep.pbt", cfgmod.PBTConfig)):
        expected |= {(section, f.name) for f in dataclasses.fields(cls) if (section, f.name) != ("sweep", "pbt")}
    assert documented == expected  # sweep.pbt: one row per field of its own
    kinds = {r["section"]: r["kind"] for r in options.describe_fields()}
    assert kinds == {"train": "static", "hparams": "traced", "sweep": "sweep", "sweep.pbt": "sweep"}


def test_allowed_values_follow_the_field_type():
    """The option table's "allowed" column comes from each field's type (or its check / choices), so an
    integer field can never read "a string" (train.learning_starts once did)."""
    texts = {"int": "integer", "float": "number", "str": "string", "bool": "true, false", "tuple[int, ...]": "list"}
    for f in dataclasses.fields(cfgmod.TrainConfig):
        (row,) = [r for r in options.describe_fields() if (r["section"], r["name"]) == ("train", f.name)]
        base = f.type.removesuffix(" | None")
        if not cfgmod.field_choices(f) and f.name not in options.REGISTERED and not f.metadata["check"]:
            assert texts[base] in row["allowed"], (f.name, row["allowed"])
        if base in ("int", "float"):
            assert "string" not in row["allowed"], f.name
        assert row["allowed"].endswith("null") == f.type.endswith("| None"), f.name
    learning_starts = [r for r in options.describe_fields() if r["name"] == "learning_starts"][0]
    assert learning_starts["allowed"] == "a non-negative integer"
    with pytest.raises(KeyError):
        options.allowed_by_type("dict[str, float]")


def test_config_subcommand_prints_options_and_resolved_configs(capsys):
    from rpo_jax import cli

    assert cli.main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "train.normalize_per_env: bool, static = false [true, false]" in shown
    assert "hparams.alpha: float, traced = 0.5 [>= 0]" in shown and "sweep.seeds:" in shown
    assert cli.main(["config"]) == 0 and capsys.readouterr().out == shown
    assert cli.main(["config", "show", "configs/paper/mujoco_brax.yaml", "--reduced", "--env", "brax/hopper"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["env"] == "brax/hopper" and resolved["train"]["total_timesteps"] == 999424
    assert resolved["train"]["normalize_per_env"] is True and resolved["sweep"]["seeds"] == [0, 1, 2, 3, 4]
    assert cli.main(["config", "configs/paper/mujoco_brax.yaml", "--set", "train.num_envs=0"]) == 2
    assert "train.num_envs must be a positive integer" in capsys.readouterr().err
    assert cli.main(["config", "show", "a.yaml", "b.yaml"]) == 2
    assert "config takes one CONFIG file" in capsys.readouterr().err
