"""Bad input, reported one way by every ``rpo-jax`` command.

Every error a user can cause -- a config, flag, env name, hyperparameter, checkpoint, run or
output directory -- is an :class:`InputError` whose ``str`` is one line naming the problem. Each
command checks its input before anything compiles, and :func:`report` prints the line as
``rpo-jax: error: ...`` and gives exit status 2. Nothing already written is touched on the way.
"""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Unusable input; ``str(err)`` is one line naming the problem."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are :class:`InputError` (one line, exit 2) instead of a usage dump."""

    def error(self, message: str):
        raise InputError(message)


# An error line longer than this is cut (a library's page-long message); ours name paths, sometimes
# twice, and end with the way out ("resume it with: rpo-jax resume PATH"), which must survive.
MAX_LINE = 2000


def one_line(err: BaseException) -> str:
    """``str(err)`` on one line (whitespace collapsed, at most :data:`MAX_LINE` characters), or the type's name."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


def report(err: BaseException) -> int:
    """Prints ``rpo-jax: error: <one line>`` to stderr; returns :data:`EXIT_BAD_INPUT`."""
    print(f"rpo-jax: error: {one_line(err)}", file=sys.stderr)
    return EXIT_BAD_INPUT
