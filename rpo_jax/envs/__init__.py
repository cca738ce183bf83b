"""Environments by ``family/name``: Brax, MuJoCo Playground's DM Control Suite, gymnax.

* ``brax/<name>``   -- every environment registered in ``brax.envs`` except the test
  fixture ``fast`` (:mod:`rpo_jax.envs.brax`).
* ``dmc/<Name>``    -- the 25 DM Control Suite tasks of MuJoCo Playground, on MJX
  with ``impl="jax"`` (:mod:`rpo_jax.envs.dmc`).
* ``gymnax/<Name>`` -- the gymnax environments with a continuous (Box) action space
  (:mod:`rpo_jax.envs.gymnax`).

:func:`make_env` returns an :class:`~rpo_jax.envs.core.Environment`; its
termination / truncation / auto-reset semantics are in :mod:`rpo_jax.envs.core`.

Adding a family is one module and one line of :data:`FAMILIES`. The module provides
``DESCRIPTION`` (one line), ``BACKENDS`` (the physics backends ``make`` accepts;
empty if none), ``names() -> list[str]`` (cheap: imports, no construction),
``make(name, short, episode_length, backend) -> Environment`` and
``unsupported(short) -> str | None`` (why a known-but-unusable name is rejected).
Family modules are imported only when a name of theirs is used.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from rpo_jax.envs.core import Environment, EnvState, StepResult

__all__ = [
    "EnvState",
    "StepResult",
    "Environment",
    "FAMILIES",
    "family",
    "available_envs",
    "check_env_name",
    "make_env",
]

FAMILIES = {
    "brax": "rpo_jax.envs.brax",
    "dmc": "rpo_jax.envs.dmc",
    "gymnax": "rpo_jax.envs.gymnax",
}


def family(name: str) -> ModuleType:
    """The module of family ``name`` (``"brax"``, ``"dmc"``, ``"gymnax"``)."""
    return importlib.import_module(FAMILIES[name])


def available_envs() -> list[str]:
    """All supported ``family/name`` strings. Cheap: imports, no construction."""
    return [f"{fam}/{n}" for fam in FAMILIES for n in family(fam).names()]


def check_env_name(name: str) -> None:
    """Raise ``ValueError`` (one-line message) unless ``name`` is supported.

    Cheap: no environment is constructed and nothing is compiled, so it can
    validate command-line input before any expensive work.
    """
    prefixes = [f"{f}/" for f in FAMILIES]
    choices = ", ".join(prefixes[:-1]) + " or " + prefixes[-1]
    if not isinstance(name, str) or "/" not in name:
        raise ValueError(f"unknown environment family {name!r}; use {choices} (e.g. gymnax/Pendulum-v1)")
    fam, _, short = name.partition("/")
    if fam not in FAMILIES:
        raise ValueError(f"unknown environment family {name!r}; use {choices}")
    module = family(fam)
    names = module.names()
    if short in names:
        return
    reason = module.unsupported(short)
    if reason:
        raise ValueError(f"{name} {reason}")
    close = difflib.get_close_matches(short, names, n=1)
    hint = f"did you mean {fam}/{close[0]}? " if close else ""
    raise ValueError(f"unknown environment {name!r}; {hint}choose one of " + ", ".join(f"{fam}/{n}" for n in names))


def make_env(name: str, *, episode_length: int | None = None, backend: str | None = None) -> Environment:
    """Build the :class:`Environment` for ``name`` (see :func:`available_envs`).

    Args:
      name: ``brax/<name>``, ``dmc/<Name>`` or ``gymnax/<Name>``.
      episode_length: time limit in steps; ``None`` keeps the family's default (1000
        for Brax, the task config's ``episode_length`` for DM Control, the gymnax
        ``params.max_steps_in_episode``).
      backend: physics backend, for families that have several (Brax:
        ``generalized``, ``spring``, ``positional``, ``mjx``); ``None`` keeps the
        environment's default.

    Raises:
      ValueError: unknown or unsupported name, bad backend or episode length.
    """
    check_env_name(name)
    if episode_length is not None and (
        isinstance(episode_length, bool) or int(episode_length) != episode_length or episode_length < 1
    ):
        raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
    fam, _, short = name.partition("/")
    module = family(fam)
    if backend is not None:
        if not module.BACKENDS:
            raise ValueError(f"backend={backend!r} only applies to brax/ environments, not {name}")
        if backend not in module.BACKENDS:
            raise ValueError(f"unknown {fam} backend {backend!r}; choose one of {', '.join(module.BACKENDS)}")
    return module.make(name, short, episode_length, backend)
