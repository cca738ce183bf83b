"""Every command shown in README.md is executed here, at tiny sizes, so the README cannot drift from the CLI.

Commands are read from the README itself: each line of a ```bash block and each inline
`rpo-jax ...` example. ``rpo-jax`` commands run through the real entry point in a scratch
directory, with overrides that shrink the run; the set-up commands must be what ``.ci/run``
runs; ``python -m bench.*`` commands are run by ``tests/test_bench.py`` at tiny sizes; a
``python`` block runs with a smaller ``total_timesteps``.
"""

import json
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from rpo_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SETUP = ("python3 -m venv .venv", ". .venv/bin/activate")
TINY = [
    "--set",
    "train.num_envs=2",
    "--set",
    "train.num_steps=64",
    "--set",
    "train.num_minibatches=2",
    "--set",
    "train.update_epochs=1",
    "--set",
    "train.total_timesteps=1024",
    "--quiet",
]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _bash_commands() -> list[str]:
    """Each command line of the README's bash blocks, comments stripped."""
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                lines.append(line)
    return lines


def _inline_examples() -> list[str]:
    """Inline `rpo-jax ...` spans that are runnable examples (no RUN_DIR-style placeholders)."""
    spans = re.findall(r"`(rpo-jax [^`]+)`", README)
    return [s for s in spans if not re.search(r"[A-Z]{3,}|\[", s) and len(s.split()) > 2]


def _rpo_jax_commands() -> list[list[str]]:
    commands = []
    for line in _bash_commands() + _inline_examples():
        last = line.split(" && ")[-1]
        if last.startswith("rpo-jax "):
            commands.append(shlex.split(last)[1:])
    return commands


def test_the_readme_shows_the_commands_this_test_knows():
    names = {c[0] for c in _rpo_jax_commands()}
    assert {"sweep", "train", "resume", "report", "robustness", "evaluate", "render", "config", "envs"} <= names, names
    for span in re.findall(r"`rpo-jax (\w+)", README):  # every subcommand named in prose exists
        assert span in cli._build_parser()._subparsers._group_actions[0].choices, span


def test_the_setup_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    setup_lines = [line for line in _bash_commands() if line.startswith(SETUP[0])]
    assert len(setup_lines) == 2, setup_lines
    main_job, tests = setup_lines
    assert tests in ci  # .ci/run runs the README's test command word for word
    assert tests.endswith("python -m pytest -q -n 2 --dist loadfile")
    assert main_job.split(" && ")[:2] == list(SETUP) and main_job.split(" && ")[2].startswith("pip install")
    assert main_job.endswith("rpo-jax sweep configs/quickstart.yaml --out runs/quickstart")


def test_every_bench_command_is_run_by_the_bench_tests():
    bench_tests = (REPO / "tests" / "test_bench.py").read_text()
    modules = {line.split()[2] for line in _bash_commands() if line.startswith("python -m bench.")}
    modules |= set(re.findall(r"`python -m (bench\.\w+)", README))
    assert modules, "no benchmark command found"
    for module in modules:
        assert f'"{module}"' in bench_tests, f"{module} is shown in the README but no test runs it"


def _tiny(args: list[str]) -> list[str]:
    """A README command at test size, with paths resolved against the repository."""
    args = [str(REPO / a) if a.startswith("configs/") else a for a in args]
    if args[0] in ("sweep", "train"):
        if any(a.endswith("pbt_alpha.yaml") for a in args) and "sweep.pbt=null" not in args:
            return args + TINY + ["--set", "sweep.pbt={interval: 2, explore: {alpha: [0.001, 3]}}"]  # 8 iterations
        return args + TINY
    if args[0] == "robustness":
        i = args.index("--episodes")
        return args[: i + 1] + ["2"] + args[i + 2 :]
    return args


def _interrupt(args: list[str]) -> None:
    """Runs a sweep in a subprocess and stops it with SIGINT after its first chunk."""
    out = pathlib.Path(args[args.index("--out") + 1])
    cmd = [sys.executable, "-m", "rpo_jax.cli", *args, "--set", "train.total_timesteps=16384", "--chunk", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((out / "status.json").read_text()).get("iteration", 0) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err


def test_every_rpo_jax_command_of_the_readme_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")  # --track without an account
    commands = [_tiny(c) for c in _rpo_jax_commands()]
    resumed = {c[1] for c in commands if c[0] == "resume"}
    for args in commands:
        out = args[args.index("--out") + 1] if "--out" in args else None
        if args[0] == "sweep" and out in resumed:  # stopped here, so that the README's resume continues it
            _interrupt([*args[:1], *[str(tmp_path / a) if a == out else a for a in args[1:]]])
            continue
        code = cli.main(args)
        assert code == 0, (args, capsys.readouterr().err)
    for run in ("runs/quickstart", "runs/qs", "runs/one", "runs/pendulum_v1"):
        assert json.loads((tmp_path / run / "status.json").read_text())["state"] == "complete", run
    assert (tmp_path / "runs/qs/robustness/robustness.csv").is_file()
    assert (tmp_path / "runs/report").is_dir()
    pbt_md = (tmp_path / "runs/pbt_report/pbt.md").read_text()
    assert "| PBT, best member |" in pbt_md and "grid, best member" in pbt_md
    assert (tmp_path / "runs/qs/evaluation/evaluation.csv").is_file()
    assert (tmp_path / "runs/ip/episode.gif").stat().st_size > 0
    assert json.loads((tmp_path / "runs/ddpg_swimmer/status.json").read_text())["state"] == "complete"
    assert list((tmp_path / "runs/tracked/wandb").glob("offline-run-*/*.wandb"))
    assert list((tmp_path / "runs/tracked/tensorboard").glob("*/*/events.out.tfevents.*"))
    (code,) = [b for b in _blocks("python") if "load_policy" in b]  # the load-and-act example, on runs/qs
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["action"].shape == (1,) and namespace["returns"].shape == (8,)


def test_the_library_example_runs():
    (code,) = [b for b in _blocks("python") if "make_trainer" in b]
    code = code.replace("total_timesteps=500_000", "total_timesteps=4096")
    assert "4096" in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["metrics"]["episode_return"].shape == (8, 2)


@pytest.mark.slow  # about a minute of PyPI metadata downloads
def test_the_gpu_install_resolves():
    """The README's GPU install line, as a dry run (needs PyPI, as every install does; downloads no CUDA wheel)."""
    (line,) = [c for c in _bash_commands() if "[cuda12]" in c]
    args = shlex.split(line)
    assert args[:3] == ["pip", "install", "-e"]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", *args[2:]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("span", ["rpo-jax resume RUN_DIR"])
def test_synopses_are_not_taken_for_examples(span):
    assert span not in _inline_examples()


def test_the_compile_cache_paths_in_the_readme_are_the_codes():
    import os

    from rpo_jax.runs import cache

    conftest = (REPO / "tests" / "conftest.py").read_text()
    assert cache.DEFAULT_DIR == os.path.expanduser("~/.cache/rpo_jax/xla") and "`~/.cache/rpo_jax/xla`" in README
    assert '"~/.cache/rpo_jax_jax_cache"' in conftest and "`~/.cache/rpo_jax_jax_cache`" in README
    for path in re.findall(r"`(~/\.cache/[^`]+)`", README):
        assert path in ("~/.cache/rpo_jax/xla", "~/.cache/rpo_jax_jax_cache"), path
