"""``rpo-jax render RUN_DIR --out FILE``: a video (mp4 / gif) or Brax HTML of a trained member's episodes.

    rpo-jax render runs/ant --member 3 --episodes 2 --out ant.mp4    # .mp4, .gif or (Brax) .html

For ``brax/...`` and ``dmc/...`` (MJX / Playground) envs; gymnax envs have no renderer. The
episodes are those of ``rpo-jax evaluate`` with the same ``--seed`` and ``--episodes`` (first
episodes of fresh starts, :func:`rpo_jax.envs.episodes.run_episodes`' keys), collected in one jitted
``lax.scan`` and drawn on the host with MuJoCo's renderer one after the other: an episode of L
steps gives L + 1 frames (its initial state, then the state after each step; a GIF merges
identical consecutive frames). The camera is the model's first (a tracking one for locomotion
tasks), else MuJoCo's free camera; ``--camera`` chooses. ``.html`` is Brax's viewer page: the
trajectory is embedded, its JavaScript loads from CDNs (it needs a network to display).

Headless rendering needs an OpenGL backend: ``MUJOCO_GL=egl`` (EGL, e.g. ``libegl1``; the
default set here when ``MUJOCO_GL`` is unset) or ``MUJOCO_GL=osmesa`` (software, ``libosmesa6``).
mp4 needs the ``video`` extra (``pip install -e ".[video]"``: imageio, imageio-ffmpeg).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import warnings
from typing import Iterable, Iterator

import numpy as np

from rpo_jax.errors import InputError, one_line
from rpo_jax.runs import finished, rundir

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported, where this module is imported first

DESCRIPTION = __doc__.split("\n")[0].replace("``", "")
FORMATS = (".mp4", ".gif", ".html")
GIF_MAX_FPS = 50  # GIF viewers play frames shorter than 20 ms at 100 ms


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="finished train / sweep directory (config.yaml, checkpoint/)")
    p.add_argument("--member", type=int, default=0, help="the member to render (default 0)")
    p.add_argument("--out", required=True, metavar="FILE", help="output file: .mp4, .gif or .html (Brax envs)")
    p.add_argument("--episodes", type=int, default=1, help="episodes, rendered one after the other (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts and action draws (default 0)")
    p.add_argument("--stochastic", action="store_true", help="sample actions from the policy (default: its mean)")
    p.add_argument("--width", type=int, default=320, help="frame width in pixels (default 320)")
    p.add_argument("--height", type=int, default=240, help="frame height in pixels (default 240)")
    p.add_argument(
        "--fps", type=float, help=f"frames per second (default 1 / the env's control step; gif <= {GIF_MAX_FPS})"
    )
    p.add_argument("--camera", help="MuJoCo camera name or index, -1 = free camera (default: the model's first camera)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--allow-incomplete", action="store_true", help="use a run whose status.json does not say complete")


def check_out(out: str, overwrite: bool) -> pathlib.Path:
    """``--out`` as a path, after the cheap checks: extension, not a directory, no overwrite, writable parent."""
    path = pathlib.Path(out)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"--out {out}: unknown extension {path.suffix or '(none)'!r}; use one of {', '.join(FORMATS)}")
    if path.is_dir():
        raise InputError(f"--out {out} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise InputError(f"--out {out} exists; pass --overwrite to replace it")
    parent = path.parent.resolve()
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {parent} is not a writable directory")
    return path


def check_gl() -> None:
    """Imports mujoco and opens a tiny offscreen renderer; one :class:`InputError` line when no GL backend works."""
    gl = os.environ.get("MUJOCO_GL", "")
    try:
        import mujoco
        from mujoco.rendering.classic import gl_context

        if getattr(gl_context, "_MUJOCO_GL", gl.lower().strip()) != gl.lower().strip():
            importlib.reload(gl_context)  # mujoco was imported before MUJOCO_GL was set: choose the backend again
        mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 8, 8).close()
    except Exception as e:
        raise InputError(
            f"no OpenGL backend for MuJoCo's renderer with MUJOCO_GL={gl!r} ({one_line(e)[:120]}); headless, use "
            "MUJOCO_GL=egl (install libegl1) or MUJOCO_GL=osmesa (install libosmesa6)"
        ) from None


def _video_writer():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise InputError(f'mp4 needs imageio and imageio-ffmpeg ({one_line(e)}): pip install -e ".[video]"') from None
    return imageio


def _picker(family: str):
    """What a frame needs from the library state: Brax ``q, qd, x``; Playground ``qpos, qvel, mocap``."""
    if family == "brax":
        return lambda inner: {
            "qpos": inner.pipeline_state.q,
            "qvel": inner.pipeline_state.qd,
            "pos": inner.pipeline_state.x.pos,
            "rot": inner.pipeline_state.x.rot,
        }
    return lambda inner: {
        "qpos": inner.data.qpos,
        "qvel": inner.data.qvel,
        "mocap_pos": inner.data.mocap_pos,
        "mocap_quat": inner.data.mocap_quat,
    }


def collect(policy, episodes: int, seed: int):
    """``(frames, returns [N], lengths [N])``; ``frames[i]`` is a dict of ``[lengths[i] + 1, ...]`` arrays."""
    import jax

    from rpo_jax.envs.episodes import run_episodes

    env = policy.env
    pick = _picker(env.name.split("/")[0])

    def program(key):  # run_episodes' episodes, recording the states
        result = run_episodes(env, policy, key, episodes, record=lambda state: pick(state.inner))
        return result.recorded, result.returns, result.lengths

    states, returns, lengths = jax.device_get(jax.jit(program)(jax.random.PRNGKey(seed)))
    frames = [{k: np.asarray(v[: n + 1, i]) for k, v in states.items()} for i, n in enumerate(lengths)]
    return frames, np.asarray(returns), np.asarray(lengths)


def _camera(model, name: str | None):
    if name is None:
        return 0 if model.ncam > 0 else -1
    try:
        index = int(name)
    except ValueError:
        names = [model.camera(i).name for i in range(model.ncam)]
        if name not in names:
            raise InputError(f"--camera {name!r}: the model's cameras are {names or 'none'} (or an index, -1 free)")
        return name
    if not -1 <= index < model.ncam:
        raise InputError(f"--camera {index}: the model has {model.ncam} camera(s); use -1..{model.ncam - 1}")
    return index


def draw(model, frames, width: int, height: int, camera) -> Iterator[np.ndarray]:
    """RGB ``uint8 [height, width, 3]`` images of the states in ``frames`` (one dict per episode), one by one."""
    import mujoco

    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    data = mujoco.MjData(model)
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        for episode in frames:
            for t in range(len(episode["qpos"])):
                data.qpos, data.qvel = episode["qpos"][t], episode["qvel"][t]
                if model.nmocap and "mocap_pos" in episode:
                    data.mocap_pos, data.mocap_quat = episode["mocap_pos"][t], episode["mocap_quat"][t]
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera=camera)
                yield renderer.render().copy()


def write_html(path: pathlib.Path, sys, frames) -> None:
    from brax.base import Transform
    from brax.io import html

    states = [
        argparse.Namespace(x=Transform(pos=e["pos"][t], rot=e["rot"][t])) for e in frames for t in range(len(e["pos"]))
    ]
    path.write_text(html.render(sys, states), encoding="utf-8")


def write_video(path: pathlib.Path, images: Iterable[np.ndarray], fps: float) -> None:
    if path.suffix.lower() == ".gif":
        from PIL import Image

        pictures = [Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE) for image in images]
        duration = round(1000 / fps)
        pictures[0].save(path, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    else:
        imageio = _video_writer()
        with warnings.catch_warnings():  # ffmpeg is a subprocess: fork + exec at once, not JAX's fork hazard
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2) as writer:
                for image in images:
                    writer.append_data(image)


def run(args: argparse.Namespace) -> int:
    from rpo_jax.runs import cache, policy

    out = check_out(args.out, args.overwrite)
    kind = out.suffix.lower()
    for name in ("episodes", "width", "height"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.fps is not None and not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    run_path, config = finished.check_run(args.run_dir)
    rundir.check_complete(run_path, allow_incomplete=args.allow_incomplete, error=finished.RunError)
    members = config.sweep.members(config.hparams)
    if not 0 <= args.member < len(members):
        raise InputError(f"--member must be in 0..{len(members) - 1} for {run_path}, got {args.member}")
    env_name = members[args.member].get("env", config.train.env)
    family = env_name.split("/")[0]
    if family not in ("brax", "dmc"):
        raise InputError(f"{env_name} has no renderer: render supports brax/... and dmc/... (MuJoCo) envs")
    if kind == ".html" and family != "brax":
        raise InputError(f"--out {args.out}: the HTML viewer is Brax's; {env_name} is not a Brax env (use .mp4 / .gif)")
    if kind == ".mp4":
        _video_writer()
    if kind != ".html":
        check_gl()
    cache.enable()
    member = policy.load_policy(run_path, args.member, deterministic=not args.stochastic)
    raw = member.env.raw_env
    model = raw.sys.mj_model if family == "brax" else raw.mj_model
    camera = _camera(model, args.camera) if kind != ".html" else None
    print(
        f"rpo-jax render: {env_name}, member {args.member}, {args.episodes} episode(s) of at most "
        f"{member.env.episode_length} steps, {'stochastic' if args.stochastic else 'deterministic'} actions",
        flush=True,
    )
    frames, returns, lengths = collect(member, args.episodes, args.seed)
    count = int(sum(len(e["qpos"]) for e in frames))
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        if kind == ".html":
            write_html(partial, raw.sys, frames)
            what = f"Brax viewer, {count} states"
        else:
            images = draw(model, frames, args.width, args.height, camera)
            fps = args.fps or float(np.round(1.0 / float(getattr(raw, "dt", 1 / 30)), 3))
            slowed = kind == ".gif" and fps > GIF_MAX_FPS
            note, fps = (f" (slowed from {fps:g}: GIF plays <= {GIF_MAX_FPS})", GIF_MAX_FPS) if slowed else ("", fps)
            write_video(partial, images, fps)
            what = f"{count} frames of {args.width}x{args.height} at {fps:g} fps{note}"
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    episodes = ", ".join(f"return {r:.2f} over {n} steps" for r, n in zip(returns, lengths))
    print(f"wrote {out}: {what} (each episode's initial state + one per step); {episodes}")
    return 0
