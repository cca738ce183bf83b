"""Configs in: YAML files, command-line overrides, presets, a suite's task list.

:func:`config_from_dict` builds and validates an :class:`rpo_jax.config.ExperimentConfig` from parsed
YAML (with :data:`PRESETS` expanded), the registered algorithm's checks included
(:func:`rpo_jax.algorithms.validate_experiment`); :func:`load_yaml`, :func:`apply_override`,
:func:`set_value` and :func:`parse_grid` are what the CLI applies on the way. Every problem is a
one-line :class:`rpo_jax.config.ConfigError`. The table of every option is :mod:`rpo_jax.runs.options`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Sequence

import yaml

from rpo_jax import algorithms
from rpo_jax.config import (
    HPARAM_NAMES,
    ConfigError,
    ExperimentConfig,
    HParams,
    PBTConfig,
    SweepConfig,
    TrainConfig,
    validate_hparam,
)
from rpo_jax.config.fields import as_int, is_finite, is_int

# --------------------------------------------------------------------------- #
# Building configs from YAML / dicts / command-line overrides.
# --------------------------------------------------------------------------- #

_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Field kinds read from the annotations (strings, under ``from __future__ import annotations``).
_TRAIN_INT_FIELDS = tuple(n for n, f in _TRAIN_FIELDS.items() if f.type in ("int", "int | None"))
_TRAIN_FLOAT_FIELDS = tuple(n for n, f in _TRAIN_FIELDS.items() if f.type == "float")
_SECTIONS = ("train", "hparams", "sweep")


# Presets: named sets of ``train`` switches a config selects with a top-level ``preset: <name>``.
# ``cleanrl`` -- the semantics of CleanRL's ppo_continuous_action.py / rpo_continuous_action.py
# where ours default otherwise (what else differs, and by how much: the README's "CleanRL's
# semantics are a preset"). Every RPO-paper config uses it (tests/test_config_input.py).
PRESETS: dict[str, dict[str, Any]] = {
    "cleanrl": {
        "bootstrap_on_truncation": False,  # a time-limit cut is a termination
        "normalize_per_env": True,  # gym.vector wraps each env in its own normalisers
    },
}


def _coerce_train(name: str, value: Any) -> Any:
    """Normalises one ``train`` value from YAML: lists to tuples, ``2e4`` to int, ints to float fields."""
    if name in ("actor_hidden", "critic_hidden"):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"train.{name} must be a list of positive integers, got {value!r}")
        return tuple(as_int(v) for v in value)
    if name in _TRAIN_FLOAT_FIELDS and is_finite(value):
        return float(value)
    if name in _TRAIN_INT_FIELDS:
        return as_int(value)
    return value


def _seeds(value: Any) -> tuple[int, ...]:
    """``sweep.seeds``: a count (seeds 0..n-1) or a list of seeds; integral floats become ints."""
    value = as_int(value)
    if is_int(value):
        if value <= 0:
            raise ConfigError(f"sweep.seeds must be a positive count or a list of seeds, got {value!r}")
        return tuple(range(value))
    if isinstance(value, (list, tuple)):
        return tuple(as_int(v) for v in value)
    raise ConfigError(f"sweep.seeds must be a positive count or a list of seeds, got {value!r}")


_PBT_FIELDS = {f.name: f for f in dataclasses.fields(PBTConfig)}


def _pbt(value: Any) -> PBTConfig:
    """``sweep.pbt``: a mapping of :class:`PBTConfig` fields (null: off); lists become tuples."""
    if value is None:
        return PBTConfig()
    if not isinstance(value, Mapping):
        raise ConfigError(f"sweep.pbt must be a mapping of {', '.join(_PBT_FIELDS)}, got {value!r}")
    kwargs: dict[str, Any] = {}
    for key, item in value.items():
        if key not in _PBT_FIELDS:
            raise ConfigError(f"unknown key 'sweep.pbt.{key}'; choose from {', '.join(_PBT_FIELDS)}")
        if key == "interval":
            item = as_int(item)
        elif key == "explore":
            if not isinstance(item, Mapping) or not all(isinstance(b, (list, tuple)) for b in item.values()):
                raise ConfigError(f"sweep.pbt.explore must map hyperparameter names to [low, high], got {item!r}")
            for name in item:
                if name not in HPARAM_NAMES:
                    raise ConfigError(
                        f"unknown hyperparameter '{name}' in sweep.pbt.explore; choose from {', '.join(HPARAM_NAMES)}"
                    )
            item = tuple((n, tuple(b)) for n, b in item.items())
        elif key == "factors":
            item = tuple(item) if isinstance(item, (list, tuple)) else (item,)
        kwargs[key] = item
    return PBTConfig(**kwargs)


def expand_preset(data: dict[str, Any]) -> None:
    """Replaces a config dict's ``preset: NAME`` by its ``train`` values, in place.

    The config's own ``train`` section may not contradict its preset (ConfigError); what is applied
    afterwards -- a ``reduced`` section, ``--set`` -- may, visibly, like any other value.
    """
    if "preset" not in data:
        return
    train = data.get("train") or {}
    if not isinstance(train, Mapping):
        raise ConfigError(f"config section 'train' must be a mapping, got {type(train).__name__}")
    data["train"] = {**train, **_preset(data.pop("preset"), train)}


def _preset(name: Any, train: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train`` values of preset ``name`` (None: none); a ``train`` key that contradicts one is an error."""
    if name is None:
        return {}
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    for key, value in PRESETS[name].items():
        if key in train and train[key] != value:
            raise ConfigError(f"train.{key}={train[key]!r} contradicts preset {name} (which sets {value!r})")
    return dict(PRESETS[name])


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Builds and validates an ExperimentConfig from a nested mapping (parsed YAML)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config must be a mapping with sections {', '.join(_SECTIONS)}, got {type(data).__name__}")
    for key in data:
        if key not in _SECTIONS and key != "preset":
            raise ConfigError(f"unknown config section '{key}'; expected one of {', '.join(_SECTIONS)} or preset")
    sections = {}
    for section in _SECTIONS:
        value = data.get(section) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section '{section}' must be a mapping, got {type(value).__name__}")
        sections[section] = value

    train_kwargs = {}
    for key, value in sections["train"].items():
        if key not in _TRAIN_FIELDS:
            raise ConfigError(f"unknown key 'train.{key}'; choose from {', '.join(_TRAIN_FIELDS)}")
        train_kwargs[key] = _coerce_train(key, value)
    train_kwargs.update(_preset(data.get("preset"), train_kwargs))
    train = TrainConfig(**train_kwargs)

    hp_kwargs = {}
    for key, value in sections["hparams"].items():
        hp_kwargs[key] = validate_hparam(key, value)
    hparams = HParams(**hp_kwargs)

    sweep_kwargs: dict[str, Any] = {}
    for key, value in sections["sweep"].items():
        if key == "seeds":
            sweep_kwargs["seeds"] = _seeds(value)
        elif key == "grid":
            if not isinstance(value, Mapping):
                raise ConfigError(f"sweep.grid must map hyperparameter names to lists of values, got {value!r}")
            grid = []
            for name, values in value.items():
                if name not in HPARAM_NAMES:
                    raise ConfigError(
                        f"unknown hyperparameter '{name}' in sweep.grid; choose from {', '.join(HPARAM_NAMES)}"
                    )
                if not isinstance(values, (list, tuple)):
                    values = [values]
                grid.append((name, tuple(validate_hparam(name, v, where="sweep.grid") for v in values)))
            sweep_kwargs["grid"] = tuple(grid)
        elif key == "variants":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
                raise ConfigError(f"sweep.variants must be a list of mappings name: value, got {value!r}")
            points = []
            for i, point in enumerate(value):
                points.append(tuple((n, validate_hparam(n, v, where=f"sweep.variants[{i}]")) for n, v in point.items()))
            sweep_kwargs["variants"] = tuple(points)
        elif key == "static":
            if not isinstance(value, Mapping):
                raise ConfigError(f"sweep.static must map train fields to lists of values, got {value!r}")
            sweep_kwargs["static"] = tuple(
                (n, tuple(vs) if isinstance(vs, (list, tuple)) else (vs,)) for n, vs in value.items()
            )
        elif key == "chunk_iterations":
            sweep_kwargs["chunk_iterations"] = as_int(value)
        elif key == "pbt":
            sweep_kwargs["pbt"] = _pbt(value)
        else:
            raise ConfigError(
                f"unknown key 'sweep.{key}'; choose from seeds, grid, variants, static, chunk_iterations, pbt"
            )
    config = ExperimentConfig(train=train, hparams=hparams, sweep=SweepConfig(**sweep_kwargs))
    config.validate()
    algorithms.validate_experiment(config)
    return config


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats such as ``3e-4``, ``1E5``, ``+2e3``.

    YAML 1.1 (PyYAML) wants a dot in a float (``3.0e-4``) and reads ``3e-4`` as a
    string. A subclass, so the global SafeLoader stays as it is.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _parse_yaml(text: str) -> Any:
    """``yaml.load`` with :class:`_Loader`; every failure is a ``yaml.YAMLError``.

    Explicit tags with bad content (``!!float abc``, ``!!timestamp x``) make PyYAML's
    constructors raise ValueError, KeyError or AttributeError, and deep nesting
    RecursionError; they are reported as YAML errors too.
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except (ValueError, KeyError, AttributeError, RecursionError) as err:
        raise yaml.YAMLError(f"cannot construct a value ({type(err).__name__}: {err})") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """Position and problem of a YAML error, on one line."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or str(err).split("\n")[0] or "invalid YAML"
    return f"{where}: {' '.join(problem.split())}"


def _bad_byte(err: UnicodeDecodeError) -> str:
    """Where decoding failed, as ``byte 0xff at line 2, column 8``."""
    before = err.object[: err.start]
    line, column = before.count(b"\n") + 1, err.start - before.rfind(b"\n")
    return f"byte 0x{err.object[err.start]:02x} at line {line}, column {column}"


def _read_text(path: str) -> str:
    """A config file's text, or ConfigError (missing, a directory, unreadable, not UTF-8)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read config file {path}: it is a directory") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text ({_bad_byte(err)})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None


def load_yaml(path: str) -> dict[str, Any]:
    """Reads a YAML config file into a dict, with one-line errors."""
    text = _read_text(path)
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"malformed YAML in {path}{_yaml_problem(err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping with sections {', '.join(_SECTIONS)}")
    return data


def parse_value(text: str) -> Any:
    """Parses a command-line value with YAML rules (numbers incl. ``3e-4``, booleans, lists, null).

    Text that is not valid YAML stays a string, for the field's check to name.
    """
    try:
        return _parse_yaml(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Applies ``section.key=value`` (e.g. ``train.num_envs=8``) to a config dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' must look like section.key=value")
    dotted, text = assignment.split("=", 1)
    set_value(data, dotted, parse_value(text))


def set_value(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Sets ``section.key`` (e.g. ``train.num_envs``) of a config dict in place."""
    parts = dotted.strip().split(".")
    if len(parts) != 2 or parts[0] not in _SECTIONS or not parts[1]:
        raise ConfigError(f"override key '{dotted}' must be section.key with section one of {', '.join(_SECTIONS)}")
    section = data.get(parts[0]) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config section '{parts[0]}' must be a mapping, got {type(section).__name__}")
    data[parts[0]] = section
    section[parts[1]] = value


def parse_grid(assignments: Sequence[str]) -> dict[str, list[Any]]:
    """Parses ``--grid alpha=0,0.5 ent_coef=0,0.01`` into {name: [values]}."""
    grid: dict[str, list[Any]] = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--grid entry '{assignment}' must look like name=v1,v2,...")
        name, text = assignment.split("=", 1)
        name = name.strip()
        values = [parse_value(v) for v in text.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--grid entry '{assignment}' has no values")
        grid[name] = values
    return grid


# A config's list of tasks for ``rpo-jax suite`` (rpo_jax.runs.suite): suite: {envs: [...]}.
SUITE_SECTION = "suite"


def suite_tasks(data: dict[str, Any], reduced: dict[str, Any] | None) -> list[str] | None:
    """Pops ``data``'s ``suite: {envs: [...]}`` section and returns its tasks (``reduced``'s ``suite.envs``
    wins); None without a suite section."""
    section = data.pop(SUITE_SECTION, None)
    keys = [k for k in (reduced or {}) if k.startswith(f"{SUITE_SECTION}.")]
    if section is None:
        if keys:
            raise ConfigError(f"the 'reduced' section sets {keys[0]} but the config has no '{SUITE_SECTION}' section")
        return None
    if not isinstance(section, dict) or set(section) != {"envs"}:
        raise ConfigError(f"config section '{SUITE_SECTION}' must be a mapping with one key, envs: a list of env names")
    envs = section["envs"]
    for key in keys:
        if key != f"{SUITE_SECTION}.envs":
            raise ConfigError(f"unknown reduced key '{key}'; the {SUITE_SECTION} section has one key, envs")
        envs = reduced[key]
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) and e for e in envs):
        raise ConfigError(f"{SUITE_SECTION}.envs must be a non-empty list of env names, got {envs!r}")
    if len(set(envs)) != len(envs):
        raise ConfigError(f"{SUITE_SECTION}.envs lists an env twice: {envs!r}")
    return envs
