"""Tests for rpo_jax.runs.results: output dir, atomic writes, tables, plots, checkpoints."""

from __future__ import annotations

import os

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
import yaml

from rpo_jax.runs import plots, results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _leftovers(directory, name):
    """Temporary siblings of `name` that the atomic writers might leave behind."""
    return [f for f in os.listdir(directory) if f != name and name in f]


# ----------------------------------------------------------------------------- output dir


def test_prepare_out_dir_creates_new_nested_dir(tmp_path):
    target = tmp_path / "a" / "b"
    out = results.prepare_out_dir(str(target), overwrite=False)
    assert out == target and target.is_dir()


def test_prepare_out_dir_empty_existing_dir_ok(tmp_path):
    assert results.prepare_out_dir(tmp_path, overwrite=False) == tmp_path


def test_prepare_out_dir_nonempty_without_overwrite_raises(tmp_path):
    (tmp_path / "metrics.csv").write_text("old")
    with pytest.raises(results.OutputDirError) as exc:
        results.prepare_out_dir(tmp_path, overwrite=False)
    msg = str(exc.value)
    assert str(tmp_path) in msg and "--overwrite" in msg
    assert "\n" not in msg
    assert (tmp_path / "metrics.csv").read_text() == "old"


def test_prepare_out_dir_overwrite_keeps_old_files_until_replaced(tmp_path):
    (tmp_path / "metrics.csv").write_text("old")
    (tmp_path / "config.yaml").write_text("old: 1\n")
    out = results.prepare_out_dir(tmp_path, overwrite=True)
    assert out == tmp_path
    assert (tmp_path / "metrics.csv").read_text() == "old"
    results.atomic_write_text(out / "metrics.csv", "new")
    assert (tmp_path / "metrics.csv").read_text() == "new"
    assert (tmp_path / "config.yaml").read_text() == "old: 1\n"


def test_prepare_out_dir_file_in_the_way_raises(tmp_path):
    f = tmp_path / "x"
    f.write_text("")
    with pytest.raises(results.OutputDirError, match="not a directory"):
        results.prepare_out_dir(f, overwrite=True)


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_and_bytes_roundtrip(tmp_path):
    p = tmp_path / "f.txt"
    results.atomic_write_text(p, "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n"
    results.atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["f.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600


def test_atomic_write_text_failed_replace_keeps_original(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    p.write_text("original")

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(results.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        results.atomic_write_text(p, "new content")
    monkeypatch.undo()
    assert p.read_text() == "original"
    assert os.listdir(tmp_path) == ["f.txt"], "temporary file left behind"


def test_atomic_write_text_failed_encoding_keeps_original(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("original")
    with pytest.raises(UnicodeEncodeError):
        results.atomic_write_text(p, "bad \ud800 surrogate")
    assert p.read_text() == "original"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_bytes_failed_write_removes_temp(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    p.write_bytes(b"original")

    def bad_fsync(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(results.os, "fsync", bad_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        results.atomic_write_bytes(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_write_yaml_preserves_order_and_converts_numpy(tmp_path):
    p = tmp_path / "config.yaml"
    cfg = {"z_first": 1, "alpha": np.float64(0.5), "grid": (np.int32(1), 2), "arr": np.arange(3)}
    results.write_yaml(p, cfg)
    text = p.read_text()
    assert text.index("z_first") < text.index("alpha")
    assert yaml.safe_load(text) == {"z_first": 1, "alpha": 0.5, "grid": [1, 2], "arr": [0, 1, 2]}


# ----------------------------------------------------------------------------- metrics table


def _members(P):
    return [{"member": p, "seed": p % 2, "alpha": [0.5, 1.0][p // 2], "ent_coef": 0.0} for p in range(P)]


def test_metrics_table_shape_columns_and_values():
    P, n_iter = 4, 5
    ret = np.arange(P * n_iter, dtype=np.float32).reshape(P, n_iter) * 10.0
    steps = np.tile(np.arange(1, n_iter + 1) * 100, (P, 1))
    df = results.metrics_table({"episode_return": ret, "env_steps": steps}, _members(P))
    assert len(df) == P * n_iter
    assert list(df.columns) == [
        "member",
        "seed",
        "alpha",
        "ent_coef",
        "iteration",
        "episode_return",
        "env_steps",
    ]
    row = df[(df["member"] == 2) & (df["iteration"] == 3)]
    assert len(row) == 1
    assert row["episode_return"].item() == ret[2, 3] == 130.0
    assert row["env_steps"].item() == 400
    assert row["seed"].item() == 0 and row["alpha"].item() == 1.0
    assert df["iteration"].tolist() == list(range(n_iter)) * P
    assert df["member"].tolist() == [p for p in range(P) for _ in range(n_iter)]


def test_metrics_table_accepts_jax_arrays():
    df = results.metrics_table({"loss": jnp.ones((2, 3))}, _members(2))
    assert df["loss"].tolist() == [1.0] * 6


@pytest.mark.parametrize(
    "metrics, n_members, match",
    [
        ({"a": np.zeros((4, 5)), "b": np.zeros((4, 6))}, 4, "shape"),
        ({"a": np.zeros((4, 5))}, 3, "member"),
        ({"a": np.zeros((4,))}, 4, r"\[P, I\]"),
        ({}, 4, "at least one metric"),
        ({"seed": np.zeros((4, 5))}, 4, "more than once"),
    ],
)
def test_metrics_table_mismatch_raises(metrics, n_members, match):
    with pytest.raises(ValueError, match=match) as exc:
        results.metrics_table(metrics, _members(4)[:n_members])
    assert "\n" not in str(exc.value)


def test_metrics_table_inconsistent_member_keys_raises():
    members = _members(2)
    members[1] = {"member": 1, "seed": 0}
    with pytest.raises(ValueError, match="member 1"):
        results.metrics_table({"a": np.zeros((2, 3))}, members)


def test_write_table_roundtrip(tmp_path):
    df = results.metrics_table({"r": np.arange(6.0).reshape(2, 3)}, _members(2))
    p = tmp_path / "metrics.csv"
    results.write_table(df, p)
    back = pd.read_csv(p)
    assert list(back.columns) == list(df.columns)
    np.testing.assert_array_equal(back["r"].to_numpy(), df["r"].to_numpy())
    assert os.listdir(tmp_path) == ["metrics.csv"]


# ----------------------------------------------------------------------------- plots


def _curve_frame(with_nans=True):
    P, n_iter = 4, 12
    rng = np.random.default_rng(0)
    ret = rng.normal(size=(P, n_iter)).cumsum(axis=1)
    if with_nans:
        ret[:, :2] = np.nan  # no episode finished yet
        ret[1, 5:8] = np.nan  # a gap for one member
        ret[3, ::3] = np.nan
    steps = np.tile(np.arange(1, n_iter + 1) * 1000, (P, 1))
    return results.metrics_table({"episode_return": ret, "env_steps": steps}, _members(P))


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC


@pytest.mark.parametrize("group_by", [["alpha", "ent_coef"], ["alpha"], []])
def test_plot_learning_curves_writes_png(tmp_path, group_by):
    p = tmp_path / "curves.png"
    plots.curves(_curve_frame(), p, group_by=group_by, x="env_steps", y="episode_return", title="test")
    _assert_png(p)
    assert os.listdir(tmp_path) == ["curves.png"]


def test_plot_learning_curves_replaces_existing_and_custom_axes(tmp_path):
    p = tmp_path / "curves.png"
    p.write_bytes(b"old")
    plots.curves(_curve_frame(with_nans=False), p, group_by=["alpha"], x="iteration", y="episode_return")
    _assert_png(p)


def test_plot_learning_curves_missing_column_raises(tmp_path):
    with pytest.raises(ValueError, match="lr"):
        plots.curves(_curve_frame(), tmp_path / "c.png", group_by=["lr"], x="env_steps", y="episode_return")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- checkpoints


@flax.struct.dataclass
class _Normaliser:
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def _population_state(P=3, seed=0):
    def init(key):
        k1, k2 = jax.random.split(key)
        params = {"w": jax.random.normal(k1, (4, 3, 2)), "b": jax.random.normal(k2, (2,))}
        return {
            "params": params,
            "opt": optax.adam(1e-3).init(params),
            "norm": _Normaliser(jnp.zeros(5), jnp.ones(5), jnp.array(7, jnp.int32)),
        }

    tree = jax.vmap(init)(jax.random.split(jax.random.key(seed), P))
    # make the optimiser state non-trivial so a wrong restore would be visible
    tree["opt"] = jax.tree.map(lambda a: a + 1, tree["opt"])
    tree["step"] = np.arange(P, dtype=np.int32)  # a numpy leaf
    return tree


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_checkpoint_roundtrip_with_eval_shape_target(tmp_path):
    tree = _population_state()
    path = tmp_path / "checkpoint"
    results.save_checkpoint(path, tree)
    assert path.is_dir()
    assert os.listdir(tmp_path) == ["checkpoint"]
    target = jax.eval_shape(lambda: tree)
    restored = results.restore_checkpoint(path, target)
    assert isinstance(restored["norm"], _Normaliser)
    assert isinstance(restored["opt"][0], optax.ScaleByAdamState)
    _assert_trees_equal(restored, tree)


def test_checkpoint_numpy_64bit_leaves_keep_dtype_with_concrete_target(tmp_path):
    # jax.eval_shape would canonicalise int64/float64 to 32 bits (x64 disabled); a concrete
    # target or no target keeps the saved dtypes.
    tree = {"step": np.arange(3, dtype=np.int64), "x": np.linspace(0, 1, 4)}
    path = tmp_path / "checkpoint"
    results.save_checkpoint(path, tree)
    _assert_trees_equal(results.restore_checkpoint(path, tree), tree)
    _assert_trees_equal(results.restore_checkpoint(path), tree)


def test_checkpoint_overwrite_replaces_existing(tmp_path):
    path = tmp_path / "checkpoint"
    old, new = _population_state(seed=0), _population_state(seed=1)
    assert not np.array_equal(old["params"]["w"], new["params"]["w"])
    results.save_checkpoint(str(path), old)
    results.save_checkpoint(str(path), new)
    assert os.listdir(tmp_path) == ["checkpoint"], "temporary or old checkpoint left behind"
    _assert_trees_equal(results.restore_checkpoint(path, old), new)


def test_checkpoint_failed_save_keeps_old(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint"
    old = _population_state(seed=0)
    results.save_checkpoint(path, old)
    real_rename = os.rename

    calls = []

    def fail_second_rename(src, dst):
        calls.append((str(src), str(dst)))
        if str(dst) == str(path) and ".tmp-" in str(src):  # moving the new checkpoint in
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(results.os, "rename", fail_second_rename)
    with pytest.raises(OSError, match="rename failed"):
        results.save_checkpoint(path, _population_state(seed=1))
    monkeypatch.undo()
    assert any(dst == str(path) and ".old-" in src for src, dst in calls), "no rollback happened"
    assert os.listdir(tmp_path) == ["checkpoint"]
    _assert_trees_equal(results.restore_checkpoint(path, old), old)


def test_checkpoint_failed_orbax_save_leaves_nothing(tmp_path):
    path = tmp_path / "checkpoint"
    with pytest.raises(Exception):
        results.save_checkpoint(path, {"a": object()})  # not an array: Orbax refuses it
    assert os.listdir(tmp_path) == []


def test_restore_missing_checkpoint_raises(tmp_path):
    path = tmp_path / "nope"
    with pytest.raises(ValueError, match="cannot read checkpoint") as exc:
        results.restore_checkpoint(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_restore_corrupt_or_mismatched_checkpoint_raises(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="cannot read checkpoint") as exc:
        results.restore_checkpoint(empty)
    assert str(empty) in str(exc.value) and "\n" not in str(exc.value)

    path = tmp_path / "checkpoint"
    results.save_checkpoint(path, {"a": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match="cannot read checkpoint") as exc:
        results.restore_checkpoint(path, {"b": jnp.ones((2, 3))})
    assert "\n" not in str(exc.value)
