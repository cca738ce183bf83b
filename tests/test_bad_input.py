"""Every bad input: exit 2, one line naming the problem, no traceback, nothing created or changed.

One table holds every case the project knows (issue "Durable runs" and earlier ones); each
runs the real CLI entry point with an ``--out`` that must not appear and a run directory
whose bytes must not change.
"""

import pathlib
import subprocess
import sys

import pytest
from test_cli import TINY_YAML  # the tiny config every CLI test starts from

from rpo_jax import cli
from rpo_jax.training import population, train

REPO = pathlib.Path(__file__).resolve().parents[1]

CASES = [
    # (config text, extra CLI args, expected message fragment)
    (TINY_YAML.replace("gymnax/Pendulum-v1", "brax/not_an_env"), [], "unknown environment 'brax/not_an_env'"),
    (TINY_YAML.replace("gymnax/Pendulum-v1", "gymnax/CartPole-v1"), [], "discrete action space"),
    ("train:\n  env: [unclosed\n", [], "malformed YAML"),
    (TINY_YAML + "  colour: blue\n", [], "unknown key 'sweep.colour'"),
    (TINY_YAML.replace("num_envs: 2", "num_envs: 2\n  learning_rat: 0.1"), [], "unknown key 'train.learning_rat'"),
    (TINY_YAML.replace("alpha: 0.5", "alpha: -0.1"), [], "hparams.alpha must be >= 0"),
    (TINY_YAML.replace("alpha: 0.5", "gamma: 1.5"), [], "hparams.gamma must be in (0, 1]"),
    (TINY_YAML.replace("num_minibatches: 2", "num_minibatches: 3"), [], "does not divide the batch"),
    (TINY_YAML.replace("num_envs: 2", "num_envs: 0"), [], "train.num_envs must be a positive integer"),
    (TINY_YAML.replace("num_steps: 64", "num_steps: -5"), [], "train.num_steps must be a positive integer"),
    (TINY_YAML, ["--grid", "alpha=0,-1"], "sweep.grid.alpha must be >= 0"),
    (TINY_YAML, ["--grid", "alfa=0,1"], "unknown hyperparameter 'alfa'"),
    (TINY_YAML, ["--seeds", "two"], "--seeds must be a count"),
    (TINY_YAML, ["--set", "train.num_envs=abc"], "train.num_envs must be a positive integer"),
    (TINY_YAML, ["--set", "model.width=3"], "override key 'model.width'"),
    (TINY_YAML, ["--total-timesteps", "100"], "less than one iteration"),
    ("- just\n- a list\n", [], "must hold a mapping"),
    (TINY_YAML, ["--devices", "999"], "--devices 999 but only"),
    (TINY_YAML, ["--devices", "0"], "--devices must be a positive integer"),
    # issue "Durable runs": each of these crashed, was accepted, or counted seeds twice
    (b"train:\n  env: gymnax/Pendulum-v1\n  backend: \xff\xfe\n", [], "not UTF-8 text"),
    (TINY_YAML.replace("num_envs: 2", "num_envs: 2\n  backend: warp"), [], "train.backend"),
    (TINY_YAML.replace("num_envs: 2", "num_envs: 2\n  backend: spring"), [], "only"),
    (TINY_YAML, ["--set", "train.adam_eps=.inf"], "train.adam_eps"),
    (TINY_YAML, ["--set", "train.obs_clip=.nan"], "train.obs_clip"),
    (TINY_YAML, ["--grid", "alpha=0,0"], "lists 0"),
    (TINY_YAML, ["--grid", "learning_rate=3e-4,0.0003"], "twice"),
    (TINY_YAML, ["--checkpoint-every", "-1"], "--checkpoint-every"),
    (TINY_YAML, ["--keep-checkpoints", "0"], "--keep-checkpoints"),
    (TINY_YAML, ["--set", "train.num_envs=2.5"], "train.num_envs"),
]


@pytest.fixture
def no_compile(monkeypatch):
    """Fails the test if anything would build a trainer or compile."""

    def boom(*args, **kwargs):
        raise AssertionError("bad input reached compilation")

    monkeypatch.setattr(train, "make_trainer", boom)
    monkeypatch.setattr(population, "run_population", boom)


def _snapshot(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(err: str) -> None:
    assert err.startswith("rpo-jax: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("text,args,message", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, no_compile, text, args, message):
    config = tmp_path / "c.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    code = cli.main(["sweep", str(config), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    _one_line(err)
    assert message in err, err
    assert not out.exists() and _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["--out", "/proc/self/fdinfo", "--overwrite"], "cannot write to /proc/self/fdinfo"),
        (["--out", "/proc/self/fdinfo/run"], "cannot create output directory /proc/self/fdinfo/run"),
        (["--out", "/proc/self/fdinfo"], "already exists and is not empty"),
    ],
)
def test_an_out_that_cannot_be_written_is_one_line(tmp_path, capsys, no_compile, args, message):
    config = tmp_path / "c.yaml"
    config.write_text(TINY_YAML)
    assert cli.main(["sweep", str(config), *args]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert message in err, err


def test_scientific_notation_is_a_number_everywhere(tmp_path, no_compile):
    config = tmp_path / "c.yaml"
    config.write_text(TINY_YAML.replace("alpha: 0.5", "alpha: 0.5\n  learning_rate: 3e-4"))
    parse = cli._build_parser().parse_args
    resolved = cli.resolve_config(parse(["sweep", str(config)]))
    assert resolved.hparams.learning_rate == pytest.approx(3e-4)
    resolved = cli.resolve_config(
        parse(
            [
                "sweep",
                str(config),
                "--set",
                "hparams.max_kl=1e-2",
                "--set",
                "train.total_timesteps=2e4",
                "--grid",
                "ent_coef=1e-3,1e-2",
            ]
        )
    )
    assert resolved.hparams.max_kl == pytest.approx(1e-2) and resolved.train.total_timesteps == 20000
    assert resolved.sweep.grid == (("ent_coef", (1e-3, 1e-2)),)


def test_the_console_script_prints_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"train:\n  env: \xff\n")
    exe = pathlib.Path(sys.executable).parent / "rpo-jax"
    proc = subprocess.run(
        [str(exe), "sweep", str(config), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not UTF-8" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_refusal_naming_a_long_path_keeps_its_way_out(tmp_path, capsys):
    """The 'unfinished run' refusal names the directory twice and ends with the resume command; a deep
    path (a test worker's tmp dir was enough) once pushed that command past the line's cut."""
    from rpo_jax.runs import rundir

    out = tmp_path.joinpath(*["a_rather_long_directory_name"] * 6, "run")
    out.mkdir(parents=True)
    rundir.write_status(out, "interrupted", iteration=3, num_iterations=8, reason="stopped by SIGTERM")
    config = REPO / "configs" / "quickstart.yaml"
    assert cli.main(["sweep", str(config), "--out", str(out), "--set", "train.total_timesteps=4096"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) > 300 and err.rstrip().endswith("or pass --overwrite to replace it")
    assert f"rpo-jax resume {out}," in err
