"""rpo_jax.analysis.reference: effects beside a published table, directions by Welch's t."""

import pandas as pd
import pytest

from rpo_jax.analysis import reference

OURS = pd.DataFrame(
    {
        "env": ["brax/reacher"] * 3 + ["brax/walker2d"] * 2,
        "variant": ["alpha=0", "alpha=0.01", "alpha=0.5", "alpha=0", "alpha=0.5"],
        "mean": [-100.0, -101.0, -600.0, 1000.0, 1010.0],
        "std": [5.0, 5.0, 6.0, 300.0, 300.0],
        "n": [5, 5, 5, 5, 5],
    }
)


def _ref(tmp_path, rows):
    path = tmp_path / "ref.csv"
    pd.DataFrame(rows, columns=reference.COLUMNS).to_csv(path, index=False)
    return reference.load(path)


def test_directions_and_agreement(tmp_path):
    ref = _ref(
        tmp_path,
        [
            ("brax/reacher", "alpha=0.5", -66.35, 0.66, 10, -4.67, 0.88, "a"),  # big drop, both
            ("brax/reacher", "alpha=0.01", -3.93, 0.19, 10, -4.65, 0.96, "b"),  # + there, ≈ here
            ("brax/walker2d", "alpha=0.5", 3665.0, 278.0, 10, 2872.0, 690.0, "c"),  # + there, ≈ here
            ("brax/hopper", "alpha=0.5", 1557.0, 206.0, 10, 2761.0, 286.0, "d"),  # not run here
        ],
    )
    table = reference.compare(OURS, ref, "alpha=0")
    assert list(table["ref_direction"]) == ["−", "+", "+", "−"]
    assert list(table["ours_direction"]) == ["−", "≈", "≈", ""]
    assert list(table["agrees"]) == ["yes", "no", "no", ""]
    assert table["ours_relative"].iloc[0] == pytest.approx(-5.0)
    text = reference.markdown(table, "alpha=0")
    assert "Directions agree on 1 of 3 matched rows." in text
    assert "1 reference row(s) have no run here: brax/hopper alpha=0.5." in text


def test_direction_uses_welch_t_with_threshold_two():
    assert reference.direction(2.1, 1.0, 1, 0.0, 1) == "+"
    assert reference.direction(-1.9, 1.0, 1, 0.0, 1) == "≈"
    assert reference.direction(-3.0, 1.0, 1, 0.0, 1) == "−"


def test_a_bad_reference_file_is_one_line(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text("env,variant,mean\nbrax/ant,alpha=0,1\n")
    with pytest.raises(reference.ReferenceError, match=r"lacks column\(s\) std, n, baseline_mean"):
        reference.load(path)
    path.write_text(",".join(reference.COLUMNS) + "\nbrax/ant,alpha=0,x,1,10,1,1,s\n")
    with pytest.raises(reference.ReferenceError, match="column mean must hold numbers"):
        reference.load(path)
    with pytest.raises(reference.ReferenceError, match="cannot read reference file"):
        reference.load(tmp_path / "missing.csv")


def test_the_shipped_cleanrl_table_loads():
    table = reference.load("configs/reference/cleanrl_mujoco_v4.csv")
    assert len(table) == 18 and set(table["variant"]) == {"alpha=0.01", "alpha=0.5"}
