"""``rpo-jax render``: gif / mp4 / Brax HTML of a real tiny Brax run, a dmc env drawn, and bad input.

One PPO training on brax/inverted_pendulum (2 envs x 16 steps, 1 iteration, episodes of at most
50 steps) runs once per module; its member is rendered through ``cli.main``. The dmc path
(Playground state, model camera) is drawn from a uniformly random policy with the library
functions: a trained dmc member is not needed for that and would cost a second training compile.
"""

import base64
import ctypes.util
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zlib

import jax
import numpy as np
import pytest
import yaml
from PIL import Image, ImageSequence

from rpo_jax import cli, envs
from rpo_jax.analysis import render
from rpo_jax.envs import episodes
from rpo_jax.errors import InputError
from rpo_jax.runs import policy

TINY_YAML = """
train:
  env: brax/inverted_pendulum
  num_envs: 2
  num_steps: 16
  num_minibatches: 1
  update_epochs: 1
  total_timesteps: 32
  episode_length: 50
"""
HAS_VIDEO = all(importlib.util.find_spec(m) for m in ("imageio", "imageio_ffmpeg"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    (root / "tiny.yaml").write_text(TINY_YAML)
    out = root / "run"
    assert cli.main(["train", str(root / "tiny.yaml"), "--out", str(out), "--quiet"]) == 0
    return out


def _render(capsys, *args) -> tuple[list[float], list[int]]:
    """Runs ``rpo-jax render`` (exit 0); the printed returns and lengths of the rendered episodes."""
    capsys.readouterr()
    assert cli.main(["render", *map(str, args)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    found = re.findall(r"return (-?[\d.]+) over (\d+) steps", line)
    assert line.startswith("wrote ") and found, line
    return [float(r) for r, _ in found], [int(n) for _, n in found]


def _check_frames(frames: list[np.ndarray]) -> None:
    for frame in frames:
        assert frame.std() > 5.0  # not blank
    changes = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, frames[1:])]
    assert np.count_nonzero(np.asarray(changes) > 0) >= len(changes) // 2  # it moves
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.05


def test_gif_has_a_frame_per_state_and_the_evaluation_returns(run_dir, tmp_path, capsys):
    out = tmp_path / "member.gif"
    returns, lengths = _render(capsys, run_dir, "--member", 0, "--episodes", 2, "--seed", 1, "--out", out)
    gif = Image.open(out)
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    assert len(frames) == sum(n + 1 for n in lengths)  # each episode: its initial state + one per step
    assert frames[0].shape == (240, 320, 3)
    assert gif.info["duration"] == 40  # Brax inverted_pendulum: dt 0.04 s -> 25 fps
    _check_frames(frames)
    # the same episodes as rpo-jax evaluate / run_episodes with the same seed and count
    member = policy.load_policy(run_dir, member=0)
    expected = jax.jit(lambda k: episodes.run_episodes(member.env, member, k, 2))(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(lengths, np.asarray(expected.lengths))
    np.testing.assert_allclose(returns, np.asarray(expected.returns), rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not HAS_VIDEO, reason='mp4 needs the video extra: pip install -e ".[video]"')
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio's reader starts ffmpeg
def test_mp4_reads_back_with_a_frame_per_state(run_dir, tmp_path, capsys):
    import imageio.v2 as imageio

    out = tmp_path / "member.mp4"
    _, lengths = _render(capsys, run_dir, "--out", out, "--width", 160, "--height", 120, "--fps", 10)
    reader = imageio.get_reader(out)
    frames = [np.asarray(f) for f in reader]
    assert len(frames) == lengths[0] + 1 and frames[0].shape == (120, 160, 3)
    assert reader.get_meta_data()["fps"] == 10
    _check_frames(frames)


def test_html_is_the_brax_viewer_with_every_state(run_dir, tmp_path, capsys):
    out = tmp_path / "member.html"
    _, lengths = _render(capsys, run_dir, "--out", out)
    text = out.read_text()
    assert "<title>Brax visualizer</title>" in text and 'id="brax-viewer"' in text
    encoded = re.search(r'var system = "([^"]+)"', text).group(1)
    system = json.loads(zlib.decompress(base64.b64decode(encoded)))
    assert len(system["states"]["x"]) == lengths[0] + 1
    positions = np.asarray([x["pos"] for x in system["states"]["x"]])
    assert np.ptp(positions, axis=0).max() > 1e-3  # the pendulum moves


class RandomPolicy:
    """Uniform actions in [-1, 1], with the ``env`` attribute of a :class:`rpo_jax.runs.policy.Policy`."""

    def __init__(self, env):
        self.env = env

    def __call__(self, obs, key):
        return jax.random.uniform(key, (*obs.shape[:-1], self.env.action_size), minval=-1.0, maxval=1.0)


def test_dmc_frames_are_drawn_from_the_playground_state():
    member = RandomPolicy(envs.make_env("dmc/CartpoleBalance", episode_length=20))
    frames, returns, lengths = render.collect(member, 2, seed=0)
    assert list(lengths) == [20, 20] and [len(f["qpos"]) for f in frames] == [21, 21]  # balance never terminates
    render.check_gl()
    model = member.env.raw_env.mj_model
    assert render._camera(model, None) == 0 and render._camera(model, "lookatcart") == "lookatcart"
    with pytest.raises(InputError, match="the model's cameras are"):
        render._camera(model, "nope")
    images = list(render.draw(model, frames, 96, 64, 0))
    assert len(images) == 42 and images[0].shape == (64, 96, 3)
    _check_frames(images[:21])


def _fail(capsys, *args) -> str:
    capsys.readouterr()
    assert cli.main(["render", *map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rpo-jax: error: "), err
    return err


@pytest.fixture
def no_loading(monkeypatch):
    """Bad input must be refused before the run is loaded (nothing compiled)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the run was loaded")

    monkeypatch.setattr(policy, "load_policy", refuse)


def _with_env(run_dir, tmp_path, env: str):
    """A copy of the run whose config says ``env`` (refused before the checkpoint is read)."""
    copy = tmp_path / env.replace("/", "_")
    shutil.copytree(run_dir, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["train"]["env"] = env
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


def test_bad_input_is_one_line_before_any_work(run_dir, tmp_path, capsys, monkeypatch, no_loading):
    gymnax = _with_env(run_dir, tmp_path, "gymnax/Pendulum-v1")
    assert "gymnax/Pendulum-v1 has no renderer" in _fail(capsys, gymnax, "--out", tmp_path / "a.gif")
    dmc = _with_env(run_dir, tmp_path, "dmc/CartpoleBalance")
    assert "not a Brax env" in _fail(capsys, dmc, "--out", tmp_path / "a.html")
    assert "unknown extension '.avi'" in _fail(capsys, run_dir, "--out", tmp_path / "a.avi")
    assert "--member must be in 0..0" in _fail(capsys, run_dir, "--member", 1, "--out", tmp_path / "a.gif")
    assert "--episodes must be a positive" in _fail(capsys, run_dir, "--episodes", 0, "--out", tmp_path / "a.gif")
    assert "is not a writable directory" in _fail(capsys, run_dir, "--out", tmp_path / "no" / "a.gif")
    existing = tmp_path / "old.gif"
    existing.write_bytes(b"old")
    assert "pass --overwrite" in _fail(capsys, run_dir, "--out", existing)
    assert existing.read_bytes() == b"old"
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # the video extra not installed
    assert 'pip install -e ".[video]"' in _fail(capsys, run_dir, "--out", tmp_path / "a.mp4")
    assert not any(p.suffix in (".gif", ".mp4", ".html") for p in tmp_path.iterdir() if p != existing)


@pytest.mark.skipif(bool(ctypes.util.find_library("OSMesa")), reason="OSMesa is installed here: it would work")
def test_no_gl_backend_is_one_line(run_dir, tmp_path):
    env = {**os.environ, "MUJOCO_GL": "osmesa"}
    cmd = [sys.executable, "-m", "rpo_jax.cli", "render", str(run_dir), "--out", str(tmp_path / "a.gif")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "MUJOCO_GL=egl (install libegl1)" in err and "osmesa" in err, err
    assert not (tmp_path / "a.gif").exists()
