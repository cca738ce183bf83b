"""One sweep as several processes of JAX's distributed runtime (gloo collectives on CPU, 127.0.0.1).

Each process owns one CPU device and so part of the population; process 0 writes. The results must
equal the single-process run of the same population on as many devices, bit for bit (the same
per-device program runs on the same members); a process that dies must be reported as one line, and
the run must resume from its last checkpoint.
"""

import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from rpo_jax.runs import results

CONFIG = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 2
  num_steps: 64
  num_minibatches: 2
  update_epochs: 1
  total_timesteps: {steps}
hparams:
  alpha: 0.5
sweep:
  seeds: 4
  grid:
    learning_rate: [0.0003, 0.001]
  chunk_iterations: 1
"""
REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--set", "train.num_envs=2", "--set", "train.num_steps=64", "--set", "train.num_minibatches=2"]
TINY += ["--set", "train.update_epochs=1", "--set", "train.total_timesteps=512", "--quiet"]
TIMEOUT = 240  # seconds any launch may take before the test fails (instead of hanging CI)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RPO_JAX_CPU_DEVICES")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", **extra)
    return env


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "rpo_jax.cli", *args]


def _single(args, devices: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cli(*args), env=_env(RPO_JAX_CPU_DEVICES=str(devices)), capture_output=True, text=True, timeout=TIMEOUT
    )


def _launch(args, processes: int, env=None) -> list[subprocess.Popen]:
    """``processes`` copies of one command, one CPU device each, joined on a free local port.

    ``env(i, address)`` gives process ``i``'s variables (default: the JAX_* variables by hand).
    """
    address = f"127.0.0.1:{_free_port()}"
    env = env or (
        lambda i, a: {"JAX_COORDINATOR_ADDRESS": a, "JAX_NUM_PROCESSES": str(processes), "JAX_PROCESS_ID": str(i)}
    )
    return [
        subprocess.Popen(
            _cli(*args, "--peer-timeout", "60"),
            env=_env(RPO_JAX_CPU_DEVICES="1", **env(i, address)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]


def _wait(procs: list[subprocess.Popen], timeout: float = TIMEOUT) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process of {len(procs)} did not finish within {timeout:.0f} s (a hang)")
        out.append((p.returncode, stdout, stderr))
    return out


def _config(tmp_path, steps: int) -> str:
    path = tmp_path / f"c{steps}.yaml"
    path.write_text(CONFIG.format(steps=steps))
    return str(path)


def _checkpoint(run_dir) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(results.restore_checkpoint(run_dir / "checkpoint"))]


def _assert_same_run(a, b) -> None:
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    ours, theirs = _checkpoint(a), _checkpoint(b)
    assert len(ours) == len(theirs)
    for x, y in zip(ours, theirs):
        np.testing.assert_array_equal(x, y)
    for name in ("final_return", "members"):
        assert json.loads((a / "summary.json").read_text())[name] == json.loads((b / "summary.json").read_text())[name]


@pytest.mark.slow
def test_four_processes_equal_one_process_on_four_devices(tmp_path):
    processes = 4
    config = _config(tmp_path, 512)
    single = _single(["sweep", config, "--out", str(tmp_path / "single"), "--quiet"], devices=processes)
    assert single.returncode == 0, single.stderr
    runs = _wait(_launch(["sweep", config, "--out", str(tmp_path / "multi"), "--quiet", "--distributed"], processes))
    for code, stdout, stderr in runs:
        assert code == 0, stderr
    assert f"in {processes} processes (this is process 1)" in runs[1][1]
    assert "final return" in runs[0][1] and "final return" not in runs[1][1]  # one writer, one report
    _assert_same_run(tmp_path / "single", tmp_path / "multi")


def _readme_launches() -> list[list[str]]:
    """The README's --distributed command lines, each split into words."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)
    return [shlex.split(line.rstrip(" &")) for b in blocks for line in b.splitlines() if "--distributed" in line]


def _rpo_jax_args(words: list[str], out) -> list[str]:
    args = words[words.index("rpo-jax") + 1 :]
    args = [str(REPO / a) if a.startswith("configs/") else a for a in args]
    args[args.index("--out") + 1] = str(out)
    return args + TINY


def test_the_readme_launches_equal_one_process_on_two_devices(tmp_path):
    """The README's two-process launch, and its srun line under an emulated SLURM job step, give the
    single-process result on two devices bit for bit (metrics, checkpoint, summary)."""
    launches = _readme_launches()
    local = [w for w in launches if w[0].startswith("JAX_")]
    (srun,) = [w for w in launches if w[0] == "srun"]
    assert len(local) == 2 and {w[2] for w in local} == {"JAX_PROCESS_ID=0", "JAX_PROCESS_ID=1"}
    assert local[0][:2] == ["JAX_COORDINATOR_ADDRESS=127.0.0.1:45678", "JAX_NUM_PROCESSES=2"]
    single = _rpo_jax_args([w for w in local[0] if w != "--distributed"], tmp_path / "single")
    done = _single(single, devices=2)
    assert done.returncode == 0, done.stderr

    runs = _wait(_launch(_rpo_jax_args(local[0], tmp_path / "two"), 2))  # the README's variables, a free port
    assert all(code == 0 for code, _, _ in runs), runs[0][2] + runs[1][2]
    _assert_same_run(tmp_path / "single", tmp_path / "two")

    assert srun[1:3] == ["--nodes=2", "--ntasks-per-node=1"]
    runs = _wait(_launch(_rpo_jax_args(srun, tmp_path / "srun"), 2, env=_slurm_env(processes=2)))
    assert all(code == 0 for code, _, _ in runs), runs[0][2] + runs[1][2]
    _assert_same_run(tmp_path / "single", tmp_path / "srun")


def _slurm_env(processes: int):
    """What ``srun`` sets for task ``i`` of a one-node job step; JAX derives the port from the job id."""
    job = next(j for j in range(4096 + os.getpid() % 4096, 8192 + 4096) if _port_is_free(j % 4096 + 61440))

    def env(i: int, address: str) -> dict:
        return {
            "SLURM_JOB_ID": str(job),
            "SLURM_STEP_NODELIST": "localhost",
            "SLURM_STEP_NUM_NODES": "1",
            "SLURM_NTASKS": str(processes),
            "SLURM_PROCID": str(i),
            "SLURM_LOCALID": str(i),
        }

    return env


@pytest.mark.slow  # ~40 s: two launches and a single-process reference; run with -m slow
def test_a_dying_process_is_one_line_and_the_run_resumes(tmp_path):
    """Kill -9 one of two processes mid-run: the other says so in one line within seconds and exits 3;
    the status says interrupted; resuming on two processes finishes the run equal to the uninterrupted one."""
    config = _config(tmp_path, 128 * 60)
    out = tmp_path / "multi"
    procs = _launch(["sweep", config, "--out", str(out), "--quiet", "--checkpoint-every", "2", "--distributed"], 2)
    deadline = time.monotonic() + TIMEOUT
    while (json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}).get(
        "checkpoint_iteration", 0
    ) < 4:
        assert time.monotonic() < deadline and procs[0].poll() is None, "the run never got going"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    (code, _, stderr), (killed_code, _, _) = _wait(procs, timeout=90)
    assert time.monotonic() - killed < 90 and killed_code == -signal.SIGKILL
    assert code == 3, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[Gloo]")]
    assert len(lines) == 1 and lines[0].startswith("rpo-jax: error: process 0 of 2 lost contact"), stderr
    assert f"rpo-jax resume {out} --distributed" in lines[0]
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "interrupted" and 4 <= status["checkpoint_iteration"] < status["num_iterations"]

    resumed = _wait(_launch(["resume", str(out), "--quiet", "--distributed"], 2))
    for code, stdout, stderr in resumed:
        assert code == 0, stderr
    assert "continuing from its checkpoint" in resumed[0][1]
    single = _single(["sweep", config, "--out", str(tmp_path / "single"), "--quiet"], devices=2)
    assert single.returncode == 0, single.stderr
    _assert_same_run(tmp_path / "single", out)


@pytest.mark.parametrize(
    "env, flags, message",
    [
        ({"JAX_NUM_PROCESSES": "2"}, [], "set both JAX_NUM_PROCESSES and JAX_PROCESS_ID"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"}, [], "in [0,"),
        ({"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, [], "JAX_NUM_PROCESSES must be a non-negative integer"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, [], "JAX_COORDINATOR_ADDRESS must be host:port"),
        ({}, ["--peer-timeout", "0"], "--peer-timeout must be at least 1 second"),
    ],
)
def test_bad_distributed_settings_are_one_line_before_anything_starts(
    tmp_path, monkeypatch, capsys, env, flags, message
):
    from rpo_jax import cli

    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    assert cli.main(["sweep", _config(tmp_path, 512), "--out", str(out), "--distributed", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.slow  # ~30 s; the PBT step's gathers are the one cross-process exchange of a chunk
def test_pbt_over_two_processes_equals_one_process_on_two_devices(tmp_path):
    """A PBT sweep whose populations span both processes: copies cross process boundaries."""
    path = tmp_path / "pbt.yaml"
    pbt = "  pbt: {interval: 2, explore: {learning_rate: [0.0001, 0.003]}}\n"
    path.write_text(CONFIG.format(steps=128 * 8).replace("  chunk_iterations: 1\n", pbt))
    single = _single(["sweep", str(path), "--out", str(tmp_path / "single"), "--quiet"], devices=2)
    assert single.returncode == 0, single.stderr
    runs = _wait(_launch(["sweep", str(path), "--out", str(tmp_path / "multi"), "--quiet", "--distributed"], 2))
    assert all(code == 0 for code, _, _ in runs), runs[0][2] + runs[1][2]
    _assert_same_run(tmp_path / "single", tmp_path / "multi")
    import pandas as pd

    table = pd.read_csv(tmp_path / "multi" / "metrics.csv")
    copies = table[table["pbt_parent"] >= 0]
    half = table["member"].max() // 2 + 1  # members 0..3 on process 0, 4..7 on process 1
    assert ((copies["member"] < half) != (copies["pbt_parent"] < half)).any()  # some copy crossed processes


SHARE_SCRIPT = """
import sys
import numpy as np
from rpo_jax.training import multihost
multihost.initialize(60)
leader = multihost.is_leader()
nan = np.frombuffer(np.uint32(0x7FC00123).tobytes(), np.float32)[0]  # a NaN with a payload
tree = {
    "f32": np.asarray([-0.0, 1.5, nan, -np.inf], np.float32),
    "f64": np.asarray([-0.0, 1.0 + 2.0**-40], np.float64),
    "i64": np.asarray([2**40 + 1, -3], np.int64),
    "flag": np.asarray(True),
    "empty": np.zeros((2, 0), np.float32),
}
got = multihost.share(tree if leader else {k: np.zeros_like(v) for k, v in tree.items()})
for key, value in tree.items():
    if (value.dtype, value.shape, value.tobytes()) != (got[key].dtype, got[key].shape, got[key].tobytes()):
        sys.exit(f"{key}: {value!r} became {got[key]!r}")
if multihost.share_text("-0.0" if leader else None) != "-0.0":
    sys.exit("share_text")
print("shared bit for bit")
multihost.exit_now(0)
"""


def test_share_is_bit_exact_across_processes():
    """multihost.share delivers the leader's bytes: -0.0 stays -0.0, NaN payloads, float64 and int64 stay
    as they are (JAX's broadcast sums with zeros in 32-bit dtypes, which loses all three)."""
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SHARE_SCRIPT],
            env=_env(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for code, stdout, stderr in _wait(procs, timeout=120):
        assert code == 0 and "shared bit for bit" in stdout, stderr[-2000:]


@pytest.mark.parametrize(
    "config, extra, env",
    [
        ("paper/rpo_vs_ppo.yaml", [], "dmc/PendulumSwingup"),
        ("quickstart.yaml", ["--env", "brax/ant", "--set", "train.backend=mjx", "--grid", "alpha=0,0.5"], "brax/ant"),
    ],
    ids=["dmc-config", "brax-ant-mjx"],
)
def test_an_mjx_population_runs_as_two_processes(tmp_path, config, extra, env):
    """A shipped DM Control config, and Brax on MJX, as --distributed runs of two processes, one
    member each, at the tiny size of tests/test_shipped_configs.py. MJX puts its model on
    jax.devices()[0], process 0's device, which the other process once could not compile against
    (rpo_jax.envs.core.arrays_on_this_process)."""
    import pandas as pd
    from test_shipped_configs import ITERATIONS, tiny_overrides

    from rpo_jax.runs import config_io

    path = REPO / "configs" / config
    out = tmp_path / "two"
    args = ["sweep", str(path), *tiny_overrides(config_io.load_yaml(str(path))), *extra, "--seeds", "1"]
    runs = _wait(_launch([*args, "--out", str(out), "--quiet", "--no-tensorboard", "--distributed"], 2), timeout=600)
    assert all(code == 0 for code, _, _ in runs), runs[0][2][-2000:] + runs[1][2][-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == env and summary["members"] == 2 and summary["devices"] == 2
    table = pd.read_csv(out / "metrics.csv")
    assert len(table) == 2 * ITERATIONS and (table["diverged"] == 0).all()
    assert table["episode_return"].notna().all()
