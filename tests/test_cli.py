"""The rpo-jax CLI: bad input exits 2 with one line before compiling; a tiny sweep writes every output."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

from rpo_jax import cli
from rpo_jax import config as cfgmod
from rpo_jax.runs import config_io, results, suite
from rpo_jax.training import population, train

TINY_YAML = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 2
  num_steps: 64
  num_minibatches: 2
  update_epochs: 1
  total_timesteps: 512
hparams:
  alpha: 0.5
sweep:
  seeds: 2
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return str(path)


@pytest.fixture
def no_compile(monkeypatch):
    """Fails the test if anything would build a trainer or compile."""

    def boom(*args, **kwargs):
        raise AssertionError("bad input reached compilation")

    monkeypatch.setattr(train, "make_trainer", boom)
    monkeypatch.setattr(population, "run_population", boom)


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_missing_config_file_and_bad_flags(tmp_path, capsys, no_compile):
    assert cli.main(["sweep", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["sweep", "x.yaml", "--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-flag" in err and err.count("\n") == 1


def test_train_runs_the_hparams_section_and_ignores_the_sweep(tmp_path, no_compile):
    path = _write(tmp_path, TINY_YAML + "  grid:\n    alpha: [0, 0.25]\n  variants: [{ent_coef: 0.01}]\n")
    config = cli.resolve_config(cli._build_parser().parse_args(["train", path, "--seed", "3"]))
    assert config.sweep.seeds == (3,) and config.sweep.grid == () and config.sweep.variants == ()
    assert config.sweep.members(config.hparams) == [{"member": 0, "seed": 3}]
    assert config.hparams.alpha == 0.5


def test_existing_out_is_not_clobbered(tmp_path, capsys, tiny_config, no_compile):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("precious\n")
    assert cli.main(["sweep", tiny_config, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "metrics.csv").read_text() == "precious\n"
    assert sorted(os.listdir(out)) == ["metrics.csv"]


def test_console_script_exit_code_is_2(tmp_path):
    exe = shutil.which("rpo-jax") or os.path.join(os.path.dirname(sys.executable), "rpo-jax")
    bad = _write(tmp_path, TINY_YAML.replace("gymnax/Pendulum-v1", "dmc/NoSuchTask"))
    proc = subprocess.run([exe, "sweep", bad], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("rpo-jax: error: unknown environment 'dmc/NoSuchTask'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_tiny_sweep_writes_config_table_curve_and_checkpoint(tmp_path, capsys, tiny_config):
    out = tmp_path / "sweep"
    code = cli.main(
        ["sweep", tiny_config, "--grid", "alpha=0,0.5", "--seeds", "0,3", "--out", str(out), "--chunk", "2"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "[running 2/4 it" in printed and "[running 4/4 it" in printed  # progress while running
    assert sorted(os.listdir(out)) == [
        ".lock",
        "checkpoint",
        "config.yaml",
        "learning_curve.png",
        "metrics.csv",
        "status.json",
        "summary.json",
        "tensorboard",
    ]
    assert json.loads((out / "status.json").read_text())["state"] == "complete"

    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["sweep"]["grid"] == {"alpha": [0.0, 0.5]} and resolved["sweep"]["seeds"] == [0, 3]
    config = config_io.config_from_dict(resolved)  # the resolved config loads back
    assert config.train.num_envs == 2

    table = pd.read_csv(out / "metrics.csv")
    assert len(table) == 4 * 4  # 4 members x 4 iterations
    assert {"member", "seed", "alpha", "iteration", "episode_return", "entropy", "env_steps"} <= set(table.columns)
    assert sorted(table.groupby(["alpha", "seed"]).size().index.tolist()) == [(0.0, 0), (0.0, 3), (0.5, 0), (0.5, 3)]
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"] == 4 and summary["compile_seconds"] > 0 and summary["run_seconds"] > 0

    # The checkpoint restores into the trainer's own state structure, one slice per member.
    trainer = train.make_trainer(config.train)
    pop = population.build_population(config.sweep, config.hparams)
    target = population.checkpoint_tree(jax.eval_shape(jax.vmap(trainer.init), pop.keys, pop.hparams))
    restored = results.restore_checkpoint(out / "checkpoint", target)
    assert int(np.asarray(restored["iteration"])[0]) == 4
    assert np.asarray(restored["params"]["actor"]["params"]["log_std"]).shape == (4, 1)

    # Running again without --overwrite refuses and leaves everything intact.
    before = (out / "metrics.csv").read_bytes()
    assert cli.main(["sweep", tiny_config, "--out", str(out)]) == 2
    assert (out / "metrics.csv").read_bytes() == before


def test_train_command_runs_one_member(tmp_path, capsys, tiny_config):
    assert cli.main(["train", tiny_config, "--seed", "5", "--quiet"]) == 0
    assert "1 member(s)" in capsys.readouterr().out


def test_variants_and_static_points_make_the_member_table():
    config = config_io.config_from_dict(
        {
            "hparams": {"alpha": 0.5, "ent_coef": 0.0},
            "sweep": {
                "seeds": [0, 1],
                "variants": [{"alpha": 0.5}, {"alpha": 0.0, "ent_coef": 0.05}],
                "static": {"action_dist": ["gaussian", "laplace"]},
            },
        }
    )
    rows = config.sweep.members(config.hparams)
    assert len(rows) == 2 * 2 * 2
    assert rows[0] == {"member": 0, "seed": 0, "action_dist": "gaussian", "alpha": 0.5, "ent_coef": 0.0}
    assert rows[3] == {"member": 3, "seed": 1, "action_dist": "gaussian", "alpha": 0.0, "ent_coef": 0.05}
    assert rows[4]["action_dist"] == "laplace"
    pop = population.build_population(config.sweep, config.hparams, {"action_dist": "laplace"})
    assert [m["member"] for m in pop.members] == [4, 5, 6, 7]
    np.testing.assert_allclose(pop.hparams.ent_coef, [0.0, 0.0, 0.05, 0.05])


@pytest.mark.parametrize(
    "sweep,message",
    [
        ({"static": {"num_envs": [1, 2]}}, "sweep.static.num_envs is not sweepable"),
        ({"static": {"action_dist": ["gaussian", "beta"]}}, "train.action_dist must be one of gaussian, laplace"),
        ({"variants": [{"alpha": -1}]}, "sweep.variants[0].alpha must be >= 0"),
        ({"variants": [{"alpha": 0}], "grid": {"alpha": [0, 1]}}, "which sweep.grid also sweeps"),
        ({"variants": {"alpha": 0}}, "sweep.variants must be a list"),
    ],
)
def test_bad_sweep_sections(sweep, message):
    with pytest.raises(cfgmod.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_io.config_from_dict({"sweep": sweep})


def test_reduced_flag_applies_the_reduced_section(tmp_path, no_compile, capsys):
    path = _write(tmp_path, TINY_YAML + "reduced:\n  train.total_timesteps: 256\n  sweep.seeds: 1\n")
    args = cli._build_parser().parse_args(["sweep", path, "--reduced"])
    config = cli.resolve_config(args)
    assert config.train.total_timesteps == 256 and config.sweep.seeds == (0,)
    assert cli.resolve_config(cli._build_parser().parse_args(["sweep", path])).train.total_timesteps == 512
    assert cli.main(["sweep", _write(tmp_path, TINY_YAML, "plain.yaml"), "--reduced"]) == 2
    assert "has no 'reduced' section" in capsys.readouterr().err


def test_every_shipped_config_resolves(no_compile):
    import glob

    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "**", "*.yaml"), recursive=True))
    assert len(files) >= 8
    for path in files:
        text = open(path).read()
        flags = [[]] + ([["--reduced"]] if "reduced:" in text else [])
        for extra in flags:
            if "suite:" in text:  # every task of a suite: what rpo-jax suite resolves before it compiles
                args = cli._build_parser().parse_args(["suite", path, "--out", "unused", *extra])
                configs = [cli.resolve_config(task) for *_, task in suite._plan(args)]
                data = yaml.safe_load(text)
                envs = data["reduced"].get("suite.envs", data["suite"]["envs"]) if extra else data["suite"]["envs"]
                assert len(configs) == len(envs), path
            else:
                configs = [cli.resolve_config(cli._build_parser().parse_args(["sweep", path, *extra]))]
            for config in configs:
                assert config.sweep.members(config.hparams), path


def test_every_hyperparameter_can_be_swept_and_read_back(tmp_path, capsys):
    """One variant per HParams field; each value comes back from metrics.csv, next to every metric."""
    values = {
        "alpha": 0.25,
        "anneal_alpha": 1.0,
        "ent_coef": 0.01,
        "learning_rate": 1e-3,
        "clip_coef": 0.3,
        "gamma": 0.95,
        "gae_lambda": 0.9,
        "vf_coef": 0.25,
        "max_grad_norm": 1.0,
        "drac_coef": 0.2,
        "lambda_s": 0.5,
        "sr_eps": 0.02,
        "max_kl": 0.02,
        "tau": 0.05,
        "exploration_noise": 0.2,
        "critic_learning_rate": 3e-4,
    }
    assert set(values) == set(cfgmod.HPARAM_NAMES)
    variants = "".join(f"\n    - {{{name}: {value!r}}}" for name, value in values.items())
    path = _write(tmp_path, TINY_YAML.replace("seeds: 2", "seeds: 1\n  variants:" + variants))
    out = tmp_path / "run"
    assert cli.main(["sweep", path, "--out", str(out), "--quiet", "--total-timesteps", "256"]) == 0
    table = pd.read_csv(out / "metrics.csv")
    defaults = cfgmod.HParams(alpha=0.5)
    for member, (name, value) in enumerate(values.items()):
        rows = table[table["member"] == member]
        assert len(rows) == 2
        for column in values:  # the swept value in its own column, the base value in the others
            expected = value if column == name else float(getattr(defaults, column))
            assert (rows[column] == expected).all(), (member, column)
    lr_member = table[(table["member"] == list(values).index("learning_rate")) & (table["iteration"] == 0)]
    assert lr_member["learning_rate_current"].iloc[0] == pytest.approx(1e-3)  # it trained with its value


def _cli_process(args, env):
    cmd = [sys.executable, "-m", "rpo_jax.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_a_sweep_uses_every_core_by_default_and_one_member_one_device(tmp_path, tiny_config):
    env = {k: v for k, v in os.environ.items() if k not in ("RPO_JAX_CPU_DEVICES", "XLA_FLAGS")}
    cores = len(os.sched_getaffinity(0))
    sweep = _cli_process(["sweep", tiny_config, "--seeds", "4", "--out", str(tmp_path / "s"), "--quiet"], env)
    assert sweep.returncode == 0, sweep.stderr
    assert f"{min(cores, 4)} device(s)" in sweep.stdout
    assert json.loads((tmp_path / "s" / "status.json").read_text())["devices"] == min(cores, 4)
    one = _cli_process(["train", tiny_config, "--out", str(tmp_path / "t"), "--quiet"], env)
    assert one.returncode == 0 and "1 device(s)" in one.stdout  # no padding copies for a single member
    bad = _cli_process(["sweep", tiny_config, "--quiet"], {**env, "RPO_JAX_CPU_DEVICES": "zero"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == "rpo-jax: error: RPO_JAX_CPU_DEVICES must be a positive integer, got 'zero'"


def test_help_texts_have_no_raw_rst_and_version_names_jax(capsys):
    parser = cli._build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    assert {"train", "sweep", "resume", "config", "envs", "evaluate", "report", "robustness"} <= set(subparsers)
    for text in [parser.format_help()] + [p.format_help() for p in subparsers.values()]:
        for markup in ("``", ":func:", ":mod:", ":class:", ":data:"):
            assert markup not in text, text
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"rpo-jax {rpo_jax_version()} (jax 0.9")


def rpo_jax_version() -> str:
    import rpo_jax

    return rpo_jax.__version__


def test_envs_lists_every_family(capsys):
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "brax/ant" in out and "dmc/CartpoleSwingup" in out and "gymnax/Pendulum-v1" in out
    assert cli.main(["envs", "gymnax"]) == 0 and "brax/" not in capsys.readouterr().out
    assert cli.main(["envs", "atari"]) == 2
    assert "unknown environment family 'atari'" in capsys.readouterr().err
