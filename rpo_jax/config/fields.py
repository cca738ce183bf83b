"""What every config type is built from: the error type, field metadata and value checks."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from rpo_jax.errors import InputError


class ConfigError(InputError):
    """Invalid configuration. ``str(err)`` is a single line naming the problem."""


# Checks a field's metadata may name: (description in the error message, predicate).
POSITIVE = ("a positive {kind}", lambda v: v > 0)
NON_NEGATIVE = ("a non-negative {kind}", lambda v: v >= 0)
OPEN_UNIT = ("in (0, 1)", lambda v: 0 < v < 1)


def field(default: Any, doc: str, *, check: tuple | None = None, choices: Any = None) -> Any:
    """A TrainConfig field whose metadata carries its documentation, its check and its allowed values.

    ``choices`` is a tuple, or a callable returning one (read when validating, from the module that
    defines the values). :meth:`TrainConfig.validate` and :func:`describe_fields` read the metadata.
    """
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check, "choices": choices})


def sweep_field(default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc})


def field_choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """A TrainConfig field's allowed values from its metadata (read from their module when callable), or None."""
    choices = f.metadata["choices"]
    return choices() if callable(choices) else choices


def check_field(f: dataclasses.Field, value: Any) -> None:
    """One TrainConfig value against its annotation and metadata (check, choices)."""
    name, kind, meta = f"train.{f.name}", f.type, f.metadata
    optional = kind.endswith("| None")
    if optional and value is None:
        return
    or_null = " or null" if optional else ""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif kind.startswith("int"):
        check = meta["check"] or NON_NEGATIVE
        if not is_int(value) or not check[1](value):
            raise ConfigError(f"{name} must be {check[0].format(kind='integer')}{or_null}, got {value!r}")
    elif kind == "float":
        if not is_finite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        check = meta["check"]
        if check is not None and not check[1](value):
            raise ConfigError(f"{name} must be {check[0].format(kind='number')}, got {value!r}")
    elif kind == "tuple[int, ...]":
        if not value or any(not is_int(v) or v <= 0 for v in value):
            raise ConfigError(f"{name} must be a non-empty list of positive integers, got {list(value)!r}")
    elif kind.startswith("str"):
        choices = field_choices(f)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            listed = f"null or one of {', '.join(choices)}" if optional else f"one of {', '.join(choices)}"
            allowed = listed if choices is not None else f"a string{or_null}"
            raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """True for an int or float (not a bool) that is neither infinite, NaN nor too large for a float."""
    try:
        return is_number(value) and math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def as_int(value: Any) -> Any:
    """A float holding an integer (``1e6`` in YAML) as int; anything else unchanged, for validate to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def first_repeat(values: Sequence[Any]) -> int | None:
    """Index of the first element equal to an earlier one (``0 == 0.0``), or None."""
    for i, value in enumerate(values):
        if value in values[:i]:
            return i
