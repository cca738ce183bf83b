"""rpo_jax: populations of PPO / RPO agents trained in one jit-compiled JAX function."""
