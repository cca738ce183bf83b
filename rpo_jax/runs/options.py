"""The table of every option a config can hold (``rpo-jax config show``, the README's option table).

:func:`describe_fields` reads each field's type, default and documentation from the config types'
metadata (:mod:`rpo_jax.config`), and its allowed values from the field's check or choices, a
registry above the config layer (:data:`REGISTERED`), or its type (:func:`allowed_by_type`), so
the table cannot drift from the code; :func:`fields_markdown` renders it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rpo_jax import algorithms
from rpo_jax.config import HPARAM_RULES, HParams, PBTConfig, SweepConfig, TrainConfig, field_choices

# Train fields whose allowed values are the names of a registry above the config layer (which checks them).
REGISTERED = {"algorithm": lambda: tuple(algorithms.ALGORITHMS)}


def describe_fields() -> list[dict[str, str]]:
    """Every setting a config can hold: section, name, type, kind, default, allowed values, documentation.

    ``kind``: ``train`` fields are ``static`` (a new value is a new compile), ``hparams`` fields
    are ``traced`` (sweepable inside one compile), ``sweep`` fields say which population to build.
    """
    rows = []
    for f in dataclasses.fields(TrainConfig):
        choices = field_choices(f) or (REGISTERED[f.name]() if f.name in REGISTERED else None)
        check = f.metadata["check"]
        kind = "integer" if f.type.startswith("int") else "number"
        if choices:
            allowed = ", ".join(choices) + (", null" if f.type.endswith("| None") else "")
        elif check:
            allowed = check[0].format(kind=kind) + (" or null" if f.type.endswith("| None") else "")
        else:
            allowed = allowed_by_type(f.type)
        rows.append(_row("train", f, "static", allowed))
    for f in dataclasses.fields(HParams):
        rows.append(_row("hparams", f, "traced", HPARAM_RULES[f.name][1], type_="float"))
    for f in dataclasses.fields(SweepConfig):
        if f.name == "pbt":  # one row per PBTConfig field
            rows += [_row("sweep.pbt", g, "sweep", "", type_=_PBT_TYPES[g.name]) for g in dataclasses.fields(PBTConfig)]
        else:
            rows.append(_row("sweep", f, "sweep", "", type_=_SWEEP_TYPES[f.name]))
    return rows


# What a train field of each annotated type accepts when its metadata names no check or choices.
_ALLOWED_BY_TYPE = {
    "bool": "true, false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "tuple[int, ...]": "a list of positive integers",
}


def allowed_by_type(annotation: str) -> str:
    """The option table's "allowed" text for a field of type ``annotation`` (``X | None`` adds "or null").

    Raises ``KeyError`` for a type it does not know, so a new kind of field cannot fall through to a
    wrong text."""
    base, optional = (annotation[: -len(" | None")], True) if annotation.endswith(" | None") else (annotation, False)
    return _ALLOWED_BY_TYPE[base] + (" or null" if optional else "")


_SWEEP_TYPES = {
    "seeds": "int or list[int]",
    "grid": "{hparam: list[float]}",
    "variants": "list[{hparam: float}]",
    "static": "{train field: list}",
    "chunk_iterations": "int",
}
_PBT_TYPES = {
    "interval": "int",
    "explore": "{hparam: [low, high]}",
    "fraction": "float",
    "factors": "list[float]",
    "resample_probability": "float",
}


def _row(section: str, f: dataclasses.Field, kind: str, allowed: str, type_: str | None = None) -> dict[str, str]:
    type_ = type_ or f.type.replace("tuple[int, ...]", "list[int]").replace(" | None", " or null")
    return {
        "section": section,
        "name": f.name,
        "type": type_,
        "kind": kind,
        "default": _show(f.default),
        "allowed": allowed,
        "doc": f.metadata.get("doc", ""),
    }


def fields_markdown() -> str:
    """:func:`describe_fields` as a markdown table (the README's option table is this text)."""
    lines = ["| option | type | kind | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for r in describe_fields():
        name = f"{r['section']}.{r['name']}"
        lines.append(f"| `{name}` | {r['type']} | {r['kind']} | `{r['default']}` | {r['allowed']} | {r['doc']} |")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return str(list(value))
    return str(value)
