"""Static settings of one training run (:class:`TrainConfig`): each value is its own compile."""

from __future__ import annotations

import dataclasses

from rpo_jax.config.fields import NON_NEGATIVE, OPEN_UNIT, POSITIVE, ConfigError, check_field, field
from rpo_jax.core import pgd
from rpo_jax.core.augmentation import AUGMENTATIONS
from rpo_jax.core.distributions import ACTION_DISTRIBUTIONS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of one training run (one compile).

    Defaults are the RPO paper's Table 2 / CleanRL's ``ppo_continuous_action.py``. Each field's
    documentation, check and allowed values live in its metadata (:func:`describe_fields`).
    """

    env: str = field("gymnax/Pendulum-v1", "environment: brax/NAME, dmc/TASK or gymnax/ENV")
    backend: str | None = field(None, "Brax physics backend; null = the env's default", choices=lambda: _backends())
    episode_length: int | None = field(None, "episode time limit; null = the environment's own", check=POSITIVE)
    num_envs: int = field(1, "parallel envs per member", check=POSITIVE)
    num_steps: int = field(2048, "rollout length per env per iteration", check=POSITIVE)
    num_minibatches: int = field(32, "minibatches per epoch (must divide num_envs * num_steps)", check=POSITIVE)
    update_epochs: int = field(10, "passes over each iteration's batch", check=POSITIVE)
    total_timesteps: int = field(1_000_000, "env steps per member (iterations = this // batch)", check=POSITIVE)
    actor_hidden: tuple[int, ...] = field((64, 64), "actor MLP hidden sizes (tanh)")
    critic_hidden: tuple[int, ...] = field((64, 64), "critic MLP hidden sizes (tanh)")
    normalize_observations: bool = field(True, "gym's NormalizeObservation (running mean / std, then clip)")
    normalize_rewards: bool = field(True, "gym's NormalizeReward (scale by the std of the discounted return)")
    obs_clip: float = field(10.0, "bound of normalised observations", check=POSITIVE)
    reward_clip: float = field(10.0, "bound of scaled rewards", check=POSITIVE)
    normalize_per_env: bool = field(
        False,
        "one set of normalisation statistics per env (CleanRL's vector env) instead of one per member "
        "pooled over its envs (Brax); the same at num_envs = 1",
    )
    bootstrap_on_truncation: bool = field(
        True, "bootstrap V(s_T) when the time limit cuts an episode; false: a cut is a termination (CleanRL)"
    )
    reset_pool: bool = field(
        True,
        "episodes restart from a cache of fresh starts computed in batches (rpo_jax.envs.starts; every episode its "
        "own reset, never reused); false: a reset computed every step (same distribution, slower)",
    )
    clip_actions: bool = field(True, "clip actions to the env's bounds before stepping (stored unclipped)")
    norm_adv: bool = field(True, "normalise advantages per minibatch (torch's unbiased std)")
    clip_vloss: bool = field(True, "PPO's value loss clipped around the old values by clip_coef (not TRPO)")
    anneal_lr: bool = field(True, "learning rate annealed linearly to 0 over the iterations (CleanRL)")
    anneal_lr_timesteps: int | None = field(
        None,
        "env steps per member over which anneal_lr takes the learning rate, and anneal_alpha takes alpha, to 0 "
        "(one horizon for both); null = total_timesteps. A shortened run of a longer experiment sets the full "
        "length, so it follows the full run's schedules",
        check=POSITIVE,
    )
    adam_eps: float = field(1e-5, "Adam's epsilon", check=POSITIVE)
    perturb_mean: bool = field(
        True, "RPO's perturbation code path; alpha = 0 is PPO bit for bit with it on; off saves drawing z"
    )
    action_dist: str = field(
        "gaussian", "policy family (rpo_jax.core.distributions)", choices=lambda: tuple(ACTION_DISTRIBUTIONS)
    )
    augmentation: str = field("none", "RAD or DrAC (rpo_jax.core.augmentation)", choices=lambda: AUGMENTATIONS)
    rad_scale_low: float = field(0.6, "random amplitude scaling: U[low, high] per sample and dim", check=POSITIVE)
    rad_scale_high: float = field(1.2, "upper end of that range", check=POSITIVE)
    algorithm: str = field(
        "ppo",
        "policy optimiser registered in rpo_jax.algorithms: ppo (RPO when alpha > 0), trpo or ddpg",
    )
    trpo_cg_iters: int = field(10, "TRPO: conjugate-gradient iterations", check=POSITIVE)
    trpo_damping: float = field(0.1, "TRPO: Fisher damping", check=NON_NEGATIVE)
    trpo_backtrack_iters: int = field(10, "TRPO: line-search steps", check=POSITIVE)
    trpo_backtrack_coef: float = field(0.8, "TRPO: line-search shrink factor", check=OPEN_UNIT)
    trpo_clip_vloss: bool = field(
        False,
        "TRPO's critic fit clipped around the old values by clip_coef like PPO's; garage (SR^2L's code) fits it "
        "unclipped, which tracks returns of unnormalised rewards",
    )
    smoothness: bool = field(
        False,
        "SR^2L regulariser lambda_s * E_s max_{s' in eps-ball} D_J(pi(s), pi(s')) (PPO-SR / TRPO-SR); eps in the "
        "agent's (normalised) input space",
    )
    smoothness_steps: int = field(10, "SR^2L: PGD steps (of 0.2 eps)", check=POSITIVE)
    smoothness_norm: str = field("linf", "SR^2L: the ball's norm", choices=lambda: pgd.NORMS)
    smoothness_stop_grad_sigma: bool = field(True, "SR^2L: sigma cannot shrink the penalty by growing")
    smoothness_pgd: str = field(
        "minibatch",
        "PPO-SR: PGD against the current parameters per minibatch (the definition), or once per iteration "
        "(about 3x cheaper)",
        choices=lambda: SMOOTHNESS_PGD,
    )
    smoothness_target: str = field(
        "actor",
        "SR^2L: what is smoothed: the policy (PPO-SR, TRPO-SR, DDPG-SR-A) or DDPG's critic Q (DDPG-SR-C)",
        choices=("actor", "critic"),
    )
    buffer_size: int = field(1_000_000, "DDPG: replay buffer capacity (FIFO)", check=POSITIVE)
    learning_starts: int = field(
        10_000,
        "DDPG: env steps per member of uniform random actions before any update (garage's min_buffer_size)",
        check=NON_NEGATIVE,
    )
    replay_batch_size: int = field(64, "DDPG: transitions per gradient step, uniform from the buffer", check=POSITIVE)
    updates_per_iteration: int = field(
        50, "DDPG: gradient steps (critic, actor, targets) after each rollout of num_envs x num_steps", check=POSITIVE
    )
    eval_every: int = field(
        0,
        "evaluate the deterministic policy on fresh episodes after every N-th chunk and the last "
        "(eval_return, eval_length columns); 0 = off",
        check=NON_NEGATIVE,
    )
    eval_episodes: int = field(10, "episodes per evaluation (run in parallel)", check=POSITIVE)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def anneal_iterations(self) -> int:
        """Iterations over which ``anneal_lr`` takes the learning rate, and ``anneal_alpha`` alpha, to 0."""
        return (self.anneal_lr_timesteps or self.total_timesteps) // self.batch_size

    def validate(self) -> None:
        """Raises ConfigError on the first invalid value: each field by its metadata, then across fields."""
        for f in dataclasses.fields(self):
            check_field(f, getattr(self, f.name))
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"train.total_timesteps={self.total_timesteps} is less than one iteration "
                f"(num_envs*num_steps={self.batch_size})"
            )
        if self.anneal_lr_timesteps is not None and self.anneal_lr_timesteps < self.total_timesteps:
            raise ConfigError(
                f"train.anneal_lr_timesteps={self.anneal_lr_timesteps} is less than train.total_timesteps="
                f"{self.total_timesteps}: the learning rate would turn negative"
            )
        if not self.rad_scale_low <= self.rad_scale_high:
            raise ConfigError(
                f"train.rad_scale_low={self.rad_scale_low} must not exceed train.rad_scale_high={self.rad_scale_high}"
            )
        if self.backend is not None and not self.env.startswith("brax/"):
            raise ConfigError(f"train.backend={self.backend} applies to brax/ environments only, got env {self.env!r}")


def _backends() -> tuple[str, ...]:
    from rpo_jax.envs import brax  # cheap: no environment is built

    return brax.BACKENDS


SMOOTHNESS_PGD: tuple[str, ...] = ("minibatch", "iteration")  # where PPO-SR runs its PGD (rpo_jax.algorithms.ppo)
