"""Shared pytest setup: a persistent JAX compilation cache.

Compiling Brax / MuJoCo Playground step functions takes tens of seconds on CPU; the
on-disk cache makes repeated test runs much faster.
"""

import os

# XLA prints pages of harmless warnings when loading cached CPU executables.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The CLI splits the CPU into one device per core (rpo_jax.cli.use_all_cpu_cores). Tests run on one
# device, as before, so in-process runs do not depend on which test first starts JAX's backend;
# tests/test_cli.py checks the default in fresh processes.
os.environ.setdefault("RPO_JAX_CPU_DEVICES", "1")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/rpo_jax_jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
