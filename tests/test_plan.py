"""``rpo-jax plan``: memory of the compiled chunk program, a line through two population sizes, what fits."""

import pytest

from rpo_jax import cli
from rpo_jax.config import ConfigError
from rpo_jax.runs import config_io, plan

TINY = {
    "train": {"env": "gymnax/Pendulum-v1", "num_envs": 4, "num_steps": 64, "num_minibatches": 2, "update_epochs": 1},
    "sweep": {"seeds": 4},
}


@pytest.fixture(scope="module")
def made():
    return plan.make_plan(config_io.config_from_dict(TINY), members=6)


def test_memory_grows_with_the_population_and_the_line_goes_through_both_programs(made):
    assert (made.small.members, made.large.members) == (2, 6)
    assert made.large.peak > made.small.peak > 0 and made.per_member > 0
    assert made.predict(2) == pytest.approx(made.small.peak) and made.predict(6) == pytest.approx(made.large.peak)
    # the donated train state is aliased by the output state: arguments and outputs do not both count
    assert (
        made.large.aliased > 0 and made.large.peak < made.large.arguments + made.large.outputs + made.large.temporaries
    )
    n = made.fits(1e9)
    assert made.predict(n) <= 1e9 < made.predict(n + 1)


@pytest.mark.parametrize("text, value", [("80GB", 80e9), ("141 GiB", 141 * 2**30), ("5e9", 5e9), ("512MB", 512e6)])
def test_sizes_parse(text, value):
    assert plan.parse_bytes(text) == value


def test_bad_plan_input_is_one_line_before_any_compile(capsys):
    assert cli.main(["plan", "configs/quickstart.yaml", "--device-memory", "lots"]) == 2
    assert "--device-memory must be a size such as 80GB" in capsys.readouterr().err
    assert cli.main(["plan", "configs/quickstart.yaml", "--members", "2"]) == 2
    assert "--members must be at least 3" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        plan.parse_bytes("12 parsecs")


def test_plan_prints_what_fits(capsys):
    assert cli.main(["plan", "configs/quickstart.yaml", "--set", "train.num_steps=32", "--members", "4"]) == 0
    out = capsys.readouterr().out
    assert "per member" in out and "members per device (predicted)" in out
