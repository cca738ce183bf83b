"""rpo_jax: populations of PPO / RPO agents trained in one jit-compiled JAX function."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rpo_jax")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"


def load_policy(run_dir, member: int = 0, deterministic: bool = True, allow_diverged: bool = False):
    """A trained member's policy ``policy(raw_obs, key) -> action``; see :func:`rpo_jax.policy.load_policy`."""
    from rpo_jax.policy import load_policy as load

    return load(run_dir, member=member, deterministic=deterministic, allow_diverged=allow_diverged)
