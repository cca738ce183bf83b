"""Benchmarks of rpo_jax. Run ``python -m bench.throughput`` (see bench/throughput.py).

Nothing here imports JAX at package import time: ``bench.throughput`` must be
able to set ``XLA_FLAGS`` before JAX is first imported.
"""
