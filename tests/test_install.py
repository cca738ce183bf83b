"""A non-editable install works: ``pip install . -c constraints.txt`` in a fresh venv, then the README's
quickstart runs from a directory that holds only ``configs/``, so ``rpo_jax`` can come only from the
venv's site-packages (a module that read files of the source tree next to it would fail here; the
editable install of ``.ci/run`` cannot show that)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

from test_readme import TINY

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if (REPO / line).is_file()]


def test_a_fresh_non_editable_install_runs_the_quickstart(tmp_path):
    source = tmp_path / "source"  # a clean copy: no build/, egg-info or venv of the checkout
    for name in _tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", ".", "-c", "constraints.txt"]
    proc = subprocess.run(pip, cwd=source, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]

    work = tmp_path / "work"
    shutil.copytree(REPO / "configs", work / "configs")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rpo_jax; print(rpo_jax.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "site-packages" in where and not where.startswith(str(REPO)), where

    command = [str(venv / "bin" / "rpo-jax"), "sweep", "configs/quickstart.yaml", "--out", "runs/quickstart", *TINY]
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((work / "runs" / "quickstart" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["members"] == 8
