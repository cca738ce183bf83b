"""The persistent XLA compilation cache every rpo-jax command uses.

``RPO_JAX_COMPILATION_CACHE`` names the directory (default ``~/.cache/rpo_jax/xla``; empty turns it
off). Programs that took at least a second to compile are stored, so a rerun of the same sweep, or
its resume, skips the compile.
"""

from __future__ import annotations

import os

DEFAULT_DIR = os.path.expanduser("~/.cache/rpo_jax/xla")


def enable(path: str | None = None) -> str | None:
    """Turns the cache on at ``path`` (default: the environment variable, else :data:`DEFAULT_DIR`).

    Keeps a cache directory already configured (e.g. by a test harness). Returns the directory in
    use, or None when the cache is off.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    if path is None:
        path = os.environ.get("RPO_JAX_COMPILATION_CACHE", DEFAULT_DIR)
    if not path:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path
