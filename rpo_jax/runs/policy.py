"""A trained member's policy, as a function: ``rpo_jax.load_policy(run_dir, member=k)``.

    import jax, rpo_jax
    policy = rpo_jax.load_policy("runs/quickstart", member=0)       # deterministic by default
    action = jax.jit(policy)(raw_obs, jax.random.PRNGKey(0))        # raw env observation in

It acts as training's evaluation does: :func:`rpo_jax.training.acting.make_act` (frozen normaliser
statistics, the algorithm's ``act``, actions clipped to the env's bounds as in training).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from rpo_jax.config import TrainConfig
from rpo_jax.training.acting import MemberActFn, make_act


@dataclasses.dataclass(frozen=True, eq=False)
class Policy:
    """One member's policy: ``policy(raw_obs, key) -> action``, pure and jittable (``jax.jit(policy)``).

    Attributes:
      config: the member's training config (its static point applied).
      member: the member's row of the sweep table (``member``, ``seed``, variant columns).
      deterministic: whether it returns the deterministic action.
      env: the :class:`rpo_jax.envs.Environment` it was trained on (a fresh one).
      params, normalizer: the member's trained parameters and normaliser state.
    """

    config: TrainConfig
    member: dict[str, Any]
    deterministic: bool
    env: Any
    params: Any
    normalizer: Any
    _act: MemberActFn

    def __call__(self, raw_obs: jax.Array, key: jax.Array) -> jax.Array:
        return self._act(self.params, self.normalizer, raw_obs, key)


def load_policy(run_dir, member: int = 0, deterministic: bool = True, allow_diverged: bool = False) -> Policy:
    """The policy of member ``member`` of a finished run directory (``rpo-jax train`` / ``sweep --out``).

    Works for every algorithm the project trains. Raises :class:`rpo_jax.runs.finished.RunError` (one
    line) for an unusable directory, an unknown member, or a member that diverged in training
    (non-finite parameters) unless ``allow_diverged``.
    """
    from rpo_jax.runs import finished

    run = finished.load_run(run_dir)
    return member_policy(run, member, deterministic=deterministic, allow_diverged=allow_diverged)


def member_policy(run, member: int, *, deterministic: bool = True, allow_diverged: bool = False) -> Policy:
    """:func:`load_policy` for a run already loaded with :func:`rpo_jax.runs.finished.load_run`."""
    from rpo_jax.runs import finished
    from rpo_jax.training import train

    size = len(run.members)
    if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < size:
        raise finished.RunError(f"member must be an integer in 0..{size - 1} for {run.path}, got {member!r}")
    diverged = finished.diverged_at(run.checkpoint, size)[member]
    if diverged >= 0 and not allow_diverged:
        raise finished.RunError(
            f"member {member} of {run.path} diverged at iteration {diverged}: its parameters are not finite"
        )
    row = run.members[member]
    point = next(p for p in run.static_points if all(row.get(k) == v for k, v in p.items()))
    trainer = train.make_trainer(dataclasses.replace(run.config.train, **point))
    take = lambda tree: jax.tree.map(lambda x: x[member], tree)  # noqa: E731
    return Policy(
        config=trainer.config,
        member=dict(row),
        deterministic=deterministic,
        env=trainer.env,
        params=take(run.checkpoint["params"]),
        normalizer=take(run.checkpoint["normalizer"]),
        _act=make_act(trainer, deterministic),
    )
