"""The GPU run kit (bench/gpu/): pack.sh splits and checksums, run.sh checks and reassembles, and the
dry run of run.sh runs every section on this CPU at tiny sizes."""

import hashlib
import os
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KIT = REPO / "bench" / "gpu"
SECTIONS = {  # section -> the output file run.sh records for it (as in run.sh)
    "a_ant_vs_brax": "a_ant_vs_brax/*.json",
    "b_population": "b_population/*.json",
    "c_scaling": "c_scaling/scaling-*.png",
    "d_sweep_ant16": "d_sweep_ant16/summary.json",
    "e_unit_tests": "e_unit_tests.xml",
}


def _bash(*args, timeout=120, env=None):
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _packed(tmp_path, part_size="64K"):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    rng = random.Random(0)
    for name, size in (("alpha-1.0-py3-none-any.whl", 150_000), ("beta-2.0-py3-none-any.whl", 90_000), ("c.whl", 10)):
        (wheels / name).write_bytes(rng.randbytes(size))
    out = tmp_path / "kit"
    proc = _bash(KIT / "pack.sh", out, "--no-download", wheels, "--part-size", part_size)
    assert proc.returncode == 0, proc.stderr
    return wheels, out


def test_pack_splits_into_checksummed_parts(tmp_path):
    _, out = _packed(tmp_path)
    parts = sorted(out.glob("rpo_gpu_kit.tar.part-*"))
    assert len(parts) >= 4 and all(p.stat().st_size <= 64 * 1024 for p in parts)
    manifest = dict(reversed(line.split()) for line in (out / "MANIFEST.sha256").read_text().splitlines())
    assert set(manifest) == {p.name for p in parts} | {"rpo_gpu_kit.tar"}
    for p in parts:
        assert manifest[p.name] == hashlib.sha256(p.read_bytes()).hexdigest()
    whole = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    assert manifest["rpo_gpu_kit.tar"] == whole
    assert (out / "run.sh").read_text() == (KIT / "run.sh").read_text()


def test_run_reassembles_and_verifies_the_parts(tmp_path):
    wheels, out = _packed(tmp_path)
    work = tmp_path / "work"
    proc = _bash(out / "run.sh", "--assemble-only", "--work", work)  # the kit: run.sh's own folder
    assert proc.returncode == 0, proc.stderr
    for w in wheels.iterdir():
        assert (work / "kit" / "wheels" / w.name).read_bytes() == w.read_bytes()
    with tarfile.open(work / "kit" / "rpo_jax-src.tar") as src:
        names = src.getnames()
    assert "rpo_jax/pyproject.toml" in names and "rpo_jax/bench/gpu/run.sh" in names
    assert "rpo_jax/rpo_jax/training/population.py" in names and not any(n.startswith("rpo_jax/docs") for n in names)

    part = sorted(out.glob("rpo_gpu_kit.tar.part-*"))[1]
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    bad = _bash(out / "run.sh", "--assemble-only", "--work", work)
    assert bad.returncode == 1 and "missing or damaged" in bad.stderr
    part.unlink()
    assert _bash(out / "run.sh", "--assemble-only", "--work", work).returncode == 1


def test_run_checks_the_whole_tar_too(tmp_path):
    _, out = _packed(tmp_path, part_size="1M")
    manifest = out / "MANIFEST.sha256"
    text = re.sub(r"^[0-9a-f]{64}(  rpo_gpu_kit\.tar)$", "0" * 64 + r"\1", manifest.read_text(), flags=re.M)
    assert text != manifest.read_text()
    manifest.write_text(text)
    proc = _bash(out / "run.sh", "--assemble-only", "--work", tmp_path / "work")
    assert proc.returncode == 1 and "joined tar" in proc.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args in ((), (tmp_path / "o", "--part-size", "big"), (tmp_path / "full",), (tmp_path / "o", "--bogus")):
        proc = _bash(KIT / "pack.sh", *args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
    for args in (("--bogus",), ("--kit",), ("--work", tmp_path / "w")):  # the last: no kit beside this run.sh
        proc = _bash(KIT / "run.sh", *args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)


def test_every_kit_wheel_is_pinned():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_normal(name)] = version
    names = [line.split("#")[0].strip() for line in (KIT / "wheels.txt").read_text().splitlines()]
    names = [n for n in names if n]
    assert {"jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "brax", "playground"} <= set(names)
    for name in names:
        if "==" not in name and name not in ("jax-cuda13-plugin", "jax-cuda13-pjrt"):
            assert _normal(name) in pins, f"{name} has no pin in constraints.txt"
    assert not {"warp-lang", "mujoco-studio"} & {_normal(n) for n in names}


def test_dry_run_runs_every_section(tmp_path):
    results, bundle = tmp_path / "results", tmp_path / "results.tgz"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "OUT")}
    env["PYTHON"] = sys.executable
    proc = _bash(KIT / "run.sh", "--dry-run", "--out", results, "--bundle", bundle, timeout=600, env=env)
    summary = (results / "summary.log").read_text() if (results / "summary.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + summary
    for name, pattern in SECTIONS.items():
        line = next((x for x in summary.splitlines() if x.startswith(name + " ")), None)
        assert line is not None and " rc=0 " in line and "MISSING" not in line, (name, summary)
        assert list(results.glob(pattern)), (name, pattern)
        assert (results / f"{name}.log").exists()
    assert list(results.glob("c_scaling/scaling-*.json"))
    with tarfile.open(bundle) as t:
        assert "./summary.log" in t.getnames()


def test_a_section_over_its_budget_loses_only_itself(tmp_path):
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "OUT")}
    env.update(PYTHON=sys.executable, **{f"BUDGET_{x}": "1" for x in "ABCDE"})
    proc = _bash(KIT / "run.sh", "--dry-run", "--out", results, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (results / "summary.log").read_text().splitlines()
    for name in SECTIONS:
        (line,) = [x for x in lines if x.startswith(name + " ")]
        assert "rc=124" in line and "TIMED OUT" in line and "output=MISSING" in line, line
    assert lines[-1].startswith("run.sh: done")
