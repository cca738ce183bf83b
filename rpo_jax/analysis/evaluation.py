"""The jitted robustness evaluation of trained members (see rpo_jax.analysis.robustness for the method).

:func:`make_evaluator` builds one program per static point that runs every member, eps and attack
(rpo_jax.core.attacks) for ``episodes`` parallel episodes; :func:`evaluate` feeds it a loaded run
(rpo_jax.runs.finished) and gathers :class:`RobustnessResult`; :func:`check_ball` is the SA-PPO-style
sanity check that every attacked observation stayed in its eps-ball.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import numpy as np

from rpo_jax.errors import InputError
from rpo_jax.runs.finished import RunCheckpoint, diverged_at, raw_scale


def attack_names() -> tuple[str, ...]:
    """The registered attacks (:data:`rpo_jax.core.attacks.ATTACKS`)."""
    from rpo_jax.core.attacks import ATTACKS

    return tuple(ATTACKS)


SPACES: tuple[str, ...] = ("normalized", "raw")
# Relative float32 rounding allowance of the in-evaluation ball check (rpo_jax.analysis.robustness, "Sanity check").
TOLERANCE_ULPS = 8.0


class RobustnessError(InputError):
    """Unusable input or a failed sanity check; ``str(err)`` is one line."""


# --------------------------------------------------------------------------------------------
# Action smoothness (CAPS)
# --------------------------------------------------------------------------------------------


def action_smoothness(actions):
    """CAPS' frequency-weighted amplitude ``Sm`` of action sequences ``[..., T, A]`` -> ``[...]``.

    Per action dimension: ``M_i = |rfft(a)_i| / T`` at ``f_i = i / T`` (sampling rate 1 per step),
    ``Sm = 2 / (n f_s) sum_i M_i f_i`` with ``n = T // 2 + 1`` bands; then the mean over the ``A``
    dimensions. Works on jax and numpy arrays (uses ``jax.numpy``).
    """
    import jax.numpy as jnp

    actions = jnp.asarray(actions)
    length = actions.shape[-2]
    amplitude = jnp.abs(jnp.fft.rfft(actions, axis=-2)) / length  # [..., n, A]
    n = amplitude.shape[-2]
    freqs = jnp.fft.rfftfreq(length, d=1.0).astype(amplitude.dtype)  # f_s = 1
    per_dim = 2.0 / (n * 1.0) * jnp.sum(amplitude * freqs[:, None], axis=-2)
    return jnp.mean(per_dim, axis=-1)


def _held_actions(actions, valid):
    """``actions [T, N, A]`` with every step after the slot's first episode replaced by its last action.

    ``valid [T, N]`` is true for the steps of the first episode (a prefix, never empty).
    """
    import jax.numpy as jnp

    length = jnp.sum(valid.astype(jnp.int32), axis=0)  # [N] >= 1
    last = jnp.take_along_axis(actions, (length - 1)[None, :, None], axis=0)  # [1, N, A]
    return jnp.where(valid[..., None], actions, last)


# --------------------------------------------------------------------------------------------
# The jitted evaluation
# --------------------------------------------------------------------------------------------


def make_evaluator(
    trainer, *, attacks: Sequence[str], episodes: int, pgd_steps: int = 10, space: str = "normalized"
) -> Callable:
    """The jitted evaluation of one static point's members.

    Returns ``fn(params, normalizer, scale, eps, key) -> dict`` where ``params`` and
    ``normalizer`` carry a leading member axis ``[M]`` (as in the checkpoint), ``scale`` is the
    per-dimension radius ``s [obs_size]`` (ones in normalised space), ``eps [E]`` float32
    (traced), ``key`` one PRNG key shared by all lanes. The dict holds

    * ``returns`` ``[M, E, A, N]`` -- return of each slot's first episode;
    * ``smoothness`` ``[M, E, A, N]`` -- CAPS ``Sm`` of each slot's actions;
    * ``excess`` ``[M, E, A]`` -- max over steps/slots/dims of ``|o_att - o_clean| / s - eps``;
    * ``magnitude`` ``[M, E, A]`` -- max of ``|o| / s`` over clean and attacked points (tolerance).

    ``A`` indexes ``attacks`` in order.
    """
    import jax
    import jax.numpy as jnp

    from rpo_jax.core import attacks as attacks_mod
    from rpo_jax.core import normalization

    attacks = tuple(attacks)
    for name in attacks:
        if name not in attack_names():
            raise RobustnessError(f"unknown attack {name!r}; choose from {', '.join(attack_names())}")
    if space not in SPACES:
        raise RobustnessError(f"unknown space {space!r}; choose normalized or raw")
    cfg = trainer.config
    env = trainer.env
    low = jnp.asarray(env.action_low)
    high = jnp.asarray(env.action_high)
    horizon = env.episode_length
    normalize = cfg.normalize_observations

    def lane(params, normalizer, scale, eps, attack_index, key):
        """One (member, eps, attack): ``episodes`` slots for ``horizon`` steps."""

        def clean_point(raw):  # the vector eps is measured on
            if space == "normalized" and normalize:
                return normalization.normalize_for_evaluation(normalizer, raw, cfg.obs_clip)
            return raw

        def agent_input(point):  # what the agent sees of a (perturbed) point
            if space == "raw" and normalize:
                return normalization.normalize_for_evaluation(normalizer, point, cfg.obs_clip)
            return point

        def perturbed(base, delta):
            return base + delta * scale

        target = trainer.algorithm.attack_target(params, agent_input, perturbed)

        def bound(attack):
            return lambda base, k: attack(k, base, eps, target, steps=pgd_steps)

        chosen = [bound(attacks_mod.ATTACKS[name]) for name in attacks]

        env_key, noise_key = jax.random.split(key)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, episodes))

        def step(carry, t):
            env_state, alive, returns, excess, magnitude = carry
            base = clean_point(env_state.obs)
            k = jax.random.fold_in(noise_key, t)
            if len(chosen) == 1:
                delta = chosen[0](base, k)
            else:
                delta = jax.lax.switch(attack_index, chosen, base, k)
            point = perturbed(base, delta)
            excess = jnp.maximum(excess, jnp.max(jnp.abs(point - base) / scale - eps))
            magnitude = jnp.maximum(magnitude, jnp.max(jnp.maximum(jnp.abs(point), jnp.abs(base)) / scale))
            action = jnp.clip(trainer.algorithm.act(params, agent_input(point), k, True), low, high)
            env_state, result = jax.vmap(env.step)(env_state, action)
            returns = returns + jnp.where(alive, result.reward, 0.0)
            done = result.terminated | result.truncated
            return (env_state, alive & ~done, returns, excess, magnitude), (action, alive)

        init = (
            env_state,
            jnp.ones((episodes,), bool),
            jnp.zeros((episodes,), jnp.float32),
            jnp.full((), -jnp.inf, jnp.float32),
            jnp.zeros((), jnp.float32),
        )
        (_, _, returns, excess, magnitude), (actions, valid) = jax.lax.scan(step, init, jnp.arange(horizon))
        held = _held_actions(actions, valid)  # [T, N, A]
        smooth = action_smoothness(jnp.swapaxes(held, 0, 1))  # [N]
        return {"returns": returns, "smoothness": smooth, "excess": excess, "magnitude": magnitude}

    over_attacks = jax.vmap(lane, in_axes=(None, None, None, None, 0, None))
    over_eps = jax.vmap(over_attacks, in_axes=(None, None, None, 0, None, None))
    over_members = jax.vmap(over_eps, in_axes=(0, 0, None, None, None, None))
    attack_indices = jnp.arange(len(attacks), dtype=jnp.int32)

    @jax.jit
    def evaluate_members(params, normalizer, scale, eps, key):
        return over_members(params, normalizer, scale, jnp.asarray(eps, jnp.float32), attack_indices, key)

    return evaluate_members


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RobustnessResult:
    env: str
    space: str
    members: list[dict[str, Any]]
    variant_cols: list[str]
    eps: list[float]
    attacks: tuple[str, ...]
    episodes: int
    pgd_steps: int
    seed: int
    scale: np.ndarray  # [obs_size] per-dimension radius factor s (ones in normalised space)
    returns: np.ndarray  # [P, E, A, N]
    smoothness: np.ndarray  # [P, E, A, N]
    excess: np.ndarray  # [P, E, A]
    tolerance: np.ndarray  # [P, E, A]
    compile_seconds: float
    run_seconds: float
    diverged_at: np.ndarray  # [P] int, the trainer's iteration at which the member diverged; -1 = never

    @property
    def diverged(self) -> np.ndarray:
        """``[P]`` bool: the member diverged in training (its evaluation numbers are meaningless)."""
        return self.diverged_at >= 0


def _tolerance(magnitude: np.ndarray) -> np.ndarray:
    return TOLERANCE_ULPS * float(np.finfo(np.float32).eps) * np.maximum(1.0, magnitude)


def evaluate(
    run: RunCheckpoint,
    *,
    eps: Sequence[float],
    attacks: Sequence[str],
    episodes: int,
    pgd_steps: int = 10,
    space: str = "normalized",
    seed: int = 0,
    check: bool = True,
) -> RobustnessResult:
    """Evaluates every member of ``run`` under every (eps, attack): one jitted call per static point.

    ``eps`` is used as given (no eps = 0 is added here). With ``check`` (default) a lane whose
    attacked observations left the eps-ball by more than float32 rounding raises
    :class:`RobustnessError`.
    """
    import jax
    import jax.numpy as jnp

    from rpo_jax.training import train

    attacks = tuple(attacks)
    eps = [float(e) for e in eps]
    if space not in SPACES:
        raise RobustnessError(f"unknown space {space!r}; choose normalized or raw")
    if space == "raw":
        scale = raw_scale(run)
    else:
        scale = np.ones(run.checkpoint["normalizer"].obs.settled.mean.shape[-1:], np.float32)
    eps_array = jnp.asarray(np.asarray(eps, np.float32))
    key = jax.random.PRNGKey(seed)
    size = len(run.members)
    out: dict[str, list] = {"returns": [], "smoothness": [], "excess": [], "magnitude": []}
    order: list[int] = []
    compile_seconds = run_seconds = 0.0
    env_name = run.config.train.env
    for point in run.static_points:
        index = [m["member"] for m in run.members if all(m[k] == v for k, v in point.items())]
        if not index:
            continue
        train_config = dataclasses.replace(run.config.train, **point)
        fn = make_evaluator(
            train.make_trainer(train_config),
            attacks=attacks,
            episodes=int(episodes),
            pgd_steps=int(pgd_steps),
            space=space,
        )
        idx = np.asarray(index)
        params = jax.tree.map(lambda x: x[idx], run.checkpoint["params"])
        normalizer = jax.tree.map(lambda x: x[idx], run.checkpoint["normalizer"])
        args = (params, normalizer, jnp.asarray(scale), eps_array, key)
        start = time.perf_counter()
        compiled = fn.lower(*args).compile()
        compile_seconds += time.perf_counter() - start
        start = time.perf_counter()
        values = jax.device_get(compiled(*args))
        run_seconds += time.perf_counter() - start
        for name in out:
            out[name].append(np.asarray(values[name]))
        order += index
    if sorted(order) != list(range(size)):
        raise RobustnessError("the static points of the config do not cover every member")
    inverse = np.argsort(np.asarray(order))
    arrays = {name: np.concatenate(v)[inverse] for name, v in out.items()}
    result = RobustnessResult(
        env=env_name,
        space=space,
        members=run.members,
        variant_cols=run.variant_cols,
        eps=eps,
        attacks=attacks,
        episodes=int(episodes),
        pgd_steps=int(pgd_steps),
        seed=int(seed),
        scale=np.asarray(scale),
        returns=arrays["returns"],
        smoothness=arrays["smoothness"],
        excess=arrays["excess"],
        tolerance=_tolerance(arrays["magnitude"]),
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        diverged_at=diverged_at(run.checkpoint, size),
    )
    if check:
        check_ball(result)
    return result


def check_ball(result: RobustnessResult) -> None:
    """Raises :class:`RobustnessError` if any lane of a member that did not diverge left the eps-ball.

    A diverged member's NaN parameters make NaN attacks; its lanes are not checked.
    """
    bad = np.argwhere(~(result.excess <= result.tolerance) & ~result.diverged[:, None, None])
    if bad.size:
        p, e, a = bad[0]
        raise RobustnessError(
            f"sanity check failed: attack {result.attacks[a]} at eps={result.eps[e]:g} moved member "
            f"{result.members[p]['member']}'s observation {result.excess[p, e, a]:.3g} beyond the eps-ball "
            f"(tolerance {result.tolerance[p, e, a]:.3g}); {len(bad)} lane(s) affected"
        )
