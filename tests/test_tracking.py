"""TensorBoard and Weights & Biases tracking, read back from the files a real tiny sweep wrote.

TensorBoard event files are parsed with tensorboardX's protos; W&B runs are written offline
(``WANDB_MODE=offline``) and their ``.wandb`` record log is parsed with W&B's own protos.
"""

import pathlib
import struct
import sys

import numpy as np
import pandas as pd
import pytest

from rpo_jax import cli
from rpo_jax.runs import tracking

TINY_YAML = """
train:
  env: gymnax/Pendulum-v1
  num_envs: 2
  num_steps: 100
  num_minibatches: 2
  update_epochs: 1
  total_timesteps: 1600   # 8 iterations; a Pendulum episode (200 steps) ends every 2nd
  eval_every: 1
  eval_episodes: 2
sweep:
  seeds: 2
  chunk_iterations: 4
  grid:
    alpha: [0.0, 0.5]
"""


def tensorboard_scalars(run: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list] = {}
    for path in sorted(run.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):  # TFRecord: u64 length, u32 crc, data, u32 crc
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 16 + length
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def wandb_records(path: pathlib.Path):
    """The protobuf records of an offline ``.wandb`` file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending = path.read_bytes(), 7, b""  # 7-byte W&B header
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # full, last
            yield wandb_internal_pb2.Record.FromString(pending + chunk)
            pending = b""
        elif kind in (2, 3):  # first, middle
            pending += chunk


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("tracking")
    (root / "tiny.yaml").write_text(TINY_YAML)
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    try:
        assert cli.main(["sweep", str(root / "tiny.yaml"), "--out", str(root / "run"), "--quiet", "--track"]) == 0
    finally:
        mp.undo()
    return root / "run"


def test_tensorboard_has_one_run_per_member_with_cleanrl_tags(run_dir):
    metrics = pd.read_csv(run_dir / "metrics.csv")
    runs = {p.relative_to(run_dir / "tensorboard").as_posix() for p in (run_dir / "tensorboard").glob("*/*")}
    members = metrics.groupby("member")[["seed", "alpha"]].first()
    assert runs == {f"alpha={r.alpha:g}/member{m}_seed{int(r.seed)}" for m, r in members.iterrows()}
    for member, rows in metrics.groupby("member"):
        alpha = rows["alpha"].iloc[0]
        (run,) = (run_dir / "tensorboard").glob(f"alpha={alpha:g}/member{member}_seed*")
        scalars = tensorboard_scalars(run)
        for name, tag in tracking.TAGS.items():
            kept = rows[rows[name].notna()]
            assert [s for s, _ in scalars[tag]] == list(kept["env_steps"]), tag  # x axis = global_step
            np.testing.assert_allclose([v for _, v in scalars[tag]], kept[name], rtol=1e-6, err_msg=tag)


def test_wandb_offline_runs_are_grouped_by_variant_and_hold_the_metrics(run_dir):
    metrics = pd.read_csv(run_dir / "metrics.csv")
    files = sorted((run_dir / "wandb").glob("offline-run-*/*.wandb"))
    assert len(files) == 4
    seen = set()
    for path in files:
        records = list(wandb_records(path))
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        member = int(run.display_name.split("_")[0].removeprefix("member"))
        rows = metrics[metrics["member"] == member]
        assert run.run_group == f"alpha={rows['alpha'].iloc[0]:g}"
        history = [
            {(item.key or "/".join(item.nested_key)): float(item.value_json) for item in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        assert [h["global_step"] for h in history] == list(rows["env_steps"])
        np.testing.assert_allclose(
            [h.get("charts/episodic_return", np.nan) for h in history], rows["episode_return"], rtol=1e-6
        )
        assert sum("charts/eval_return" in h for h in history) == rows["eval_return"].notna().sum() == 2
        seen.add(member)
    assert seen == {0, 1, 2, 3}


def test_no_tensorboard_and_a_missing_wandb_are_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML.replace("seeds: 2", "seeds: 1"))
    config = str(tmp_path / "tiny.yaml")
    assert cli.main(["train", config, "--out", str(tmp_path / "a"), "--quiet", "--no-tensorboard"]) == 0
    assert not (tmp_path / "a" / "tensorboard").exists() and (tmp_path / "a" / "metrics.csv").is_file()
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the extra were not installed
    capsys.readouterr()
    assert cli.main(["train", config, "--out", str(tmp_path / "b"), "--track"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'rpo-jax: error: --track needs Weights & Biases: pip install -e ".[wandb]"'
    assert not (tmp_path / "b").exists()  # refused before anything was written
