"""``rpo-jax plan CONFIG``: how many members fit on a device, from XLA's memory analysis (nothing runs).

    rpo-jax plan configs/paper/mujoco_brax.yaml --env brax/ant --device-memory 80GB

compiles the sweep's chunk program -- the program that holds a device for the whole run -- for a
population of 2 and of ``--members`` (default 8) on one device (not 1: a population of one runs
unbatched, a different program), reads each compiled program's
memory analysis and reports the device bytes it needs: its arguments (the population's train
state and hyperparameters) plus outputs plus XLA's temporaries, less what donation lets outputs
share with arguments. A line through the two sizes gives the *fixed cost* and the *bytes per
member*; the largest population that fits ``--device-memory`` follows, per device (a sharded
population splits its members evenly over the devices). The init program is smaller than the
chunk program and runs before it; the compile itself uses host memory, not device memory.

The analysis is of the program compiled for *this* machine's backend: on a CPU it predicts CPU
memory (validated against measured peak memory in ``bench/plan_memory.py``); for a GPU's figures
run it on the GPU host (XLA:GPU's buffers and fusions differ). Predicted, not measured: a GPU
also needs room for the CUDA context and XLA's autotuning (leave some 10 % free).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

import jax
import numpy as np

DESCRIPTION = "members that fit on a device: the chunk program's memory from XLA's analysis, compiled, not run"
UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


@dataclasses.dataclass(frozen=True)
class ProgramMemory:
    """Bytes of one compiled program, from ``compiled.memory_analysis()``."""

    members: int
    arguments: int
    outputs: int
    temporaries: int
    aliased: int  # outputs that reuse donated argument buffers
    code: int

    @property
    def peak(self) -> int:
        """Device bytes the program needs while it runs: arguments + outputs + temporaries - aliased."""
        return self.arguments + self.outputs + self.temporaries - self.aliased


@dataclasses.dataclass(frozen=True)
class Plan:
    small: ProgramMemory
    large: ProgramMemory

    @property
    def per_member(self) -> float:
        return (self.large.peak - self.small.peak) / (self.large.members - self.small.members)

    @property
    def fixed(self) -> float:
        return self.small.peak - self.per_member * self.small.members

    def predict(self, members: int) -> float:
        """Predicted peak bytes of a population of ``members`` on one device."""
        return self.fixed + self.per_member * members

    def fits(self, device_bytes: float) -> int:
        """The largest population whose predicted peak is at most ``device_bytes`` (0 if none)."""
        if self.per_member <= 0:
            raise ValueError("memory does not grow with the population; cannot extrapolate")
        return max(0, int((device_bytes - self.fixed) // self.per_member))


def parse_bytes(text: str) -> float:
    """``80GB``, ``141 GiB``, ``5e9`` -> bytes (decimal GB, binary GiB)."""
    from rpo_jax.config import ConfigError

    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in UNITS:
        raise ConfigError(f"--device-memory must be a size such as 80GB or 141GiB, got {text!r}")
    return float(match.group(1)) * UNITS[unit]


def chunk_memory(trainer, members: int, chunk: int, device: Any | None = None) -> ProgramMemory:
    """Compiles (does not run) the chunk program of ``members`` members on ``device`` and reads its memory."""
    from rpo_jax.training import population as pop
    from rpo_jax.training.train import as_hparams, stack_hparams

    device = device or jax.devices()[0]
    trainer = pop.population_trainer(trainer, members)
    init = pop.over_members(trainer.init, members)
    keys = jax.ShapeDtypeStruct((members, 2), np.uint32)
    hparams = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), stack_hparams([as_hparams()] * members)
    )
    state = jax.eval_shape(init, keys, hparams)

    flag = jax.ShapeDtypeStruct((), np.bool_)
    run_chunk = pop.chunk_program(trainer, members, chunk)
    with jax.default_device(device):
        compiled = jax.jit(run_chunk, donate_argnums=0).lower(state, hparams, flag).compile()
    analysis = compiled.memory_analysis()
    return ProgramMemory(
        members=members,
        arguments=int(analysis.argument_size_in_bytes),
        outputs=int(analysis.output_size_in_bytes),
        temporaries=int(analysis.temp_size_in_bytes),
        aliased=int(analysis.alias_size_in_bytes),
        code=int(analysis.generated_code_size_in_bytes),
    )


def make_plan(config, members: int = 8) -> Plan:
    """The plan of ``config``'s first static point: its chunk program at 2 and ``members`` members."""
    from rpo_jax.training import population as pop
    from rpo_jax.training.train import make_trainer

    point = config.sweep.static_points()[0]
    trainer = make_trainer(dataclasses.replace(config.train, **point))
    chunk = pop.chunk_size(
        config.train.num_iterations, config.sweep.chunk_iterations, pbt_interval=config.sweep.pbt.interval
    )
    return Plan(chunk_memory(trainer, 2, chunk), chunk_memory(trainer, members, chunk))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--env", help="shorthand for --set train.env=NAME")
    p.add_argument("--reduced", action="store_true", help="apply the config's 'reduced' section")
    p.add_argument("--device-memory", default="80GB", help="memory of one device, e.g. 80GB, 141GiB (default 80GB)")
    p.add_argument("--members", type=int, default=8, help="the larger population compiled (default 8)")


def run(args: argparse.Namespace) -> int:
    """``rpo-jax plan``: resolve and check everything, then compile twice and print the plan."""
    from rpo_jax.config import ConfigError
    from rpo_jax.runs import cache
    from rpo_jax.runs.launch import resolve_config

    device_bytes = parse_bytes(args.device_memory)
    if args.members < 3:
        raise ConfigError(f"--members must be at least 3 (the line runs through 2 and it), got {args.members}")
    args.command, args.total_timesteps, args.chunk, args.seeds, args.grid = "sweep", None, None, None, []
    config = resolve_config(args)
    cache.enable()
    print(report(config, make_plan(config, args.members), device_bytes))
    return 0


def _size(n: float) -> str:
    return f"{n / 1e9:.3f} GB" if abs(n) >= 1e8 else f"{n / 1e6:.2f} MB"


def report(config, plan: Plan, device_bytes: float) -> str:
    """The plan as text: both programs, the line through them, and what fits."""
    from rpo_jax.runs import launch

    size = launch.members_per_program(config)
    lines = [
        f"{config.train.env}: {config.train.num_envs} envs x {config.train.num_steps} steps per member, "
        f"chunk program on {jax.devices()[0].platform}",
    ]
    for m in (plan.small, plan.large):
        lines.append(
            f"  {m.members:>5} member(s): arguments {_size(m.arguments)}, outputs {_size(m.outputs)}, "
            f"temporaries {_size(m.temporaries)}, aliased {_size(m.aliased)} -> peak {_size(m.peak)}"
        )
    lines += [
        f"  fixed cost {_size(plan.fixed)}, {_size(plan.per_member)} per member",
        f"  this config: {size} member(s) per program -> {_size(plan.predict(size))} predicted",
        f"  fits in {_size(device_bytes)}: {plan.fits(device_bytes)} members per device (predicted)",
    ]
    return "\n".join(lines)
