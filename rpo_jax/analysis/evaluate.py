"""``rpo-jax evaluate RUN_DIR``: every member's return on fresh episodes, as a table.

    rpo-jax evaluate runs/quickstart --episodes 100 [--stochastic] [--seed 0] [--out DIR]

Each member acts with :func:`rpo_jax.training.acting.make_act` (the policy ``rpo_jax.load_policy`` returns:
frozen normaliser, deterministic action unless ``--stochastic``) for ``--episodes`` parallel
episodes of :func:`rpo_jax.envs.episodes.run_episodes`; all members of a static point run in one
jitted, vmapped program. Every episode starts from the same keys for every member (``--seed``),
so members are compared on the same starts. Writes ``evaluation.csv`` (one row per member:
return mean / std / min / max, mean episode length, diverged) and ``evaluation.md`` (the same,
with the mean and std over seeds per variant). A member that diverged in training has NaN
statistics and ``diverged`` true.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from rpo_jax.errors import InputError
from rpo_jax.runs import finished, plots

DESCRIPTION = __doc__.split("\n")[0].replace("``", "")
COLUMNS = ("return_mean", "return_std", "return_min", "return_max", "length_mean")


def evaluate_members(run: finished.RunCheckpoint, *, episodes: int, deterministic: bool, seed: int):
    """``(returns [P, N], lengths [P, N], compile_s, run_s)`` of every member of ``run``."""
    import jax

    from rpo_jax.envs import episodes as episodes_mod
    from rpo_jax.training import acting, train

    size = len(run.members)
    returns = np.zeros((size, episodes), np.float32)
    lengths = np.zeros((size, episodes), np.int32)
    key = jax.random.PRNGKey(seed)
    compile_s = run_s = 0.0
    for point in run.static_points:
        index = np.asarray([m["member"] for m in run.members if all(m[k] == v for k, v in point.items())])
        if not index.size:
            continue
        trainer = train.make_trainer(dataclasses.replace(run.config.train, **point))
        act = acting.make_act(trainer, deterministic)

        def one(params, normalizer, trainer=trainer, act=act):
            bound = lambda obs, k: act(params, normalizer, obs, k)  # noqa: E731
            return episodes_mod.run_episodes(trainer.env, bound, key, episodes)

        take = lambda tree: jax.tree.map(lambda x: x[index], tree)  # noqa: E731
        args = (take(run.checkpoint["params"]), take(run.checkpoint["normalizer"]))
        start = time.perf_counter()
        compiled = jax.jit(jax.vmap(one)).lower(*args).compile()
        compile_s += time.perf_counter() - start
        start = time.perf_counter()
        result = jax.device_get(compiled(*args))
        run_s += time.perf_counter() - start
        returns[index], lengths[index] = result.returns, result.lengths
    return returns, lengths, compile_s, run_s


def evaluate_on_dm_control(run: finished.RunCheckpoint, *, episodes: int, deterministic: bool, seed: int):
    """``(returns [P, N], lengths [P, N], seconds)`` of every member on the original dm_control task
    (NaN for a member that diverged in training).

    The same policy as on the training simulator (:func:`rpo_jax.training.acting.make_act`, frozen
    normaliser), fed dm_control's observation in the Playground layout
    (:mod:`rpo_jax.envs.dm_control_eval`); all members step in lockstep, one jitted call per step.
    """
    import jax

    from rpo_jax.envs import dm_control_eval
    from rpo_jax.training import acting, train

    m = dm_control_eval.mapping(run.config.train.env)
    size = len(run.members)
    returns = np.full((size, episodes), np.nan)
    lengths = np.zeros((size, episodes), np.int64)
    healthy = finished.diverged_at(run.checkpoint, size) < 0  # a diverged member's NaN actions would stop MuJoCo
    start = time.perf_counter()
    for point in run.static_points:
        index = np.asarray(
            [r["member"] for r in run.members if all(r[k] == v for k, v in point.items()) and healthy[r["member"]]],
            dtype=int,
        )
        if not index.size:
            continue
        trainer = train.make_trainer(dataclasses.replace(run.config.train, **point))
        act = acting.make_act(trainer, deterministic)
        take = lambda tree: jax.tree.map(lambda x: x[index], tree)  # noqa: E731
        params, normalizer = take(run.checkpoint["params"]), take(run.checkpoint["normalizer"])
        batched = jax.jit(jax.vmap(act, in_axes=(0, 0, 0, None)))
        calls = iter(range(1 << 30))
        keys = jax.random.PRNGKey(seed)

        def step(obs, batched=batched, params=params, normalizer=normalizer):
            return batched(params, normalizer, obs, jax.random.fold_in(keys, next(calls)))

        r, n = dm_control_eval.run_episodes(step, m, policies=index.size, episodes=episodes, seed=seed)
        returns[index], lengths[index] = r, n
    return returns, lengths, time.perf_counter() - start


def member_table(run: finished.RunCheckpoint, returns: np.ndarray, lengths: np.ndarray):
    """One row per member: its columns, ``episodes``, :data:`COLUMNS` and ``diverged``."""
    import pandas as pd

    diverged = finished.diverged_at(run.checkpoint, len(run.members)) >= 0
    rows = []
    for m, r, n, bad in zip(run.members, returns, lengths, diverged):
        values = (r.mean(), r.std(), r.min(), r.max(), n.mean())
        stats = {c: np.nan if bad else float(v) for c, v in zip(COLUMNS, values)}
        rows.append({**m, "episodes": r.size, **stats, "diverged": bool(bad)})
    return pd.DataFrame(rows)


def table_markdown(table, run: finished.RunCheckpoint, *, deterministic: bool, episodes: int) -> str:
    """Per member, then per variant (mean ± std over its seeds that did not diverge)."""
    kind = "deterministic" if deterministic else "stochastic"
    head = f"# Evaluation of {run.path}\n\n{run.config.train.env}, {episodes} episodes per member, {kind} actions.\n"
    cols = ["member", "seed", *run.variant_cols, *COLUMNS, "diverged"]
    return _markdown(head, table, run, cols, {"return_mean": "return (mean ± std over seeds)"}, digits=2)


def _markdown(head: str, table, run: finished.RunCheckpoint, cols: list[str], summaries: dict[str, str], digits: int):
    """``head``, a row per member (``cols``), then per variant the mean ± std over its healthy seeds of
    each column of ``summaries`` (column -> header)."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(plots.format_cell(row[c]) for c in cols) + " |" for _, row in table.iterrows()]
    header = ["variant", "seeds", *summaries.values()]
    per_variant = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    healthy = table[~table["diverged"]]
    groups = healthy.groupby(run.variant_cols, sort=False) if run.variant_cols else [((), healthy)]
    for values, rows in groups:
        values = values if isinstance(values, tuple) else (values,)
        label = plots.variant_label(dict(zip(run.variant_cols, values))) if run.variant_cols else "all"
        cells = [f"{rows[c].mean():.{digits}f} ± {rows[c].std(ddof=0):.{digits}f}" for c in summaries]
        per_variant.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    return head + "\n" + "\n".join(lines + per_variant) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    finished.add_run_arguments(p, "evaluation")
    p.add_argument("--episodes", type=int, default=100, help="episodes per member (default 100)")
    p.add_argument("--stochastic", action="store_true", help="sample actions from the policy (default: its mean)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts and action draws (default 0)")
    p.add_argument(
        "--on",
        choices=("train", "dm_control"),
        default="train",
        help="train: the simulator the run trained on (default); dm_control: also the original DM Control "
        "task on MuJoCo C, side by side (dmc/ tasks with an exact observation mapping; "
        'pip install -e ".[dm-control]")',
    )


def run(args: argparse.Namespace) -> int:
    from rpo_jax.runs import cache, results

    if args.episodes < 1:
        raise InputError(f"--episodes must be a positive integer, got {args.episodes}")
    if args.on == "dm_control":
        from rpo_jax.envs import dm_control_eval

        dm_control_eval.check_installed()
    loaded, out_dir, note = finished.load_for_command(args, "evaluation")
    if args.on == "dm_control":
        dm_control_eval.mapping(loaded.config.train.env)
    cache.enable()
    if note is not None:
        print(f"note: {note}; used anyway (--allow-incomplete)")
    deterministic = not args.stochastic
    print(
        f"rpo-jax evaluate: {loaded.config.train.env}, {len(loaded.members)} member(s), {args.episodes} episodes, "
        f"{'deterministic' if deterministic else 'stochastic'} actions",
        flush=True,
    )
    returns, lengths, compile_s, run_s = evaluate_members(
        loaded, episodes=args.episodes, deterministic=deterministic, seed=args.seed
    )
    table = member_table(loaded, returns, lengths)
    markdown = table_markdown(table, loaded, deterministic=deterministic, episodes=args.episodes)
    print(markdown.split("\n", 2)[2], end="")
    print(f"compile {compile_s:.1f}s, run {run_s:.1f}s")
    name = "evaluation"
    if args.on == "dm_control":
        dm_returns, dm_lengths, seconds = evaluate_on_dm_control(
            loaded, episodes=args.episodes, deterministic=deterministic, seed=args.seed
        )
        table = side_by_side(table, member_table(loaded, dm_returns, dm_lengths))
        markdown = side_by_side_markdown(table, loaded, deterministic=deterministic, episodes=args.episodes)
        print(markdown.split("\n", 2)[2], end="")
        print(f"dm_control: {seconds:.1f}s")
        name = "evaluation_dm_control"
    results.write_table(table, out_dir / f"{name}.csv")
    results.atomic_write_text(out_dir / f"{name}.md", markdown)
    print(f"wrote {out_dir / f'{name}.csv'}, {out_dir / f'{name}.md'}")
    return 0


def side_by_side(ours, dm_control):
    """The training simulator's columns beside dm_control's (``dm_control_*``) and the gap of the means."""
    table = ours.copy()
    for c in COLUMNS:
        table[f"dm_control_{c}"] = dm_control[c].to_numpy()
    table["gap"] = table["dm_control_return_mean"] - table["return_mean"]
    return table


def side_by_side_markdown(table, run: finished.RunCheckpoint, *, deterministic: bool, episodes: int) -> str:
    """Per member and per variant: return on the training simulator, on dm_control, and the gap."""
    from rpo_jax.envs import dm_control_eval

    m = dm_control_eval.MAPPINGS[run.config.train.env]
    kind = "deterministic" if deterministic else "stochastic"
    head = (
        f"# {run.config.train.env} (MJX, as trained) vs dm_control {m.domain}-{m.task} (MuJoCo C)\n\n"
        f"{run.path}: {episodes} episodes per member and simulator, {kind} actions, the same frozen normaliser.\n"
    )
    cols = ["member", "seed", *run.variant_cols, "return_mean", "dm_control_return_mean", "gap", "diverged"]
    summaries = {"return_mean": "MJX", "dm_control_return_mean": "dm_control", "gap": "gap (mean ± std over seeds)"}
    return _markdown(head, table, run, cols, summaries, digits=1)
