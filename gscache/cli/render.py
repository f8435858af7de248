"""``gscache render``: render a scene to PNG files, side-by-side stereo or mono, along a trajectory,
and print the time per frame and the peak memory."""

from __future__ import annotations

import time
from pathlib import Path

from ..api import open_renderer
from ..errors import GscacheError
from ..presets import FOVEATION_LEVELS, RESOLUTION_PRESETS, REUSE_MODES, UP_AXES, foveation_level, parse_size
from ._common import add_scene_options, at_least, load_scene, parse_color, parse_gaze_text, positive, rss_mib, write_png


def add_parser(subparsers) -> None:
    r = subparsers.add_parser("render", help="render a scene to PNG (side-by-side stereo, or mono)")
    r.add_argument("scene", nargs="?", help="scene file or SOG folder (default: the embedded demo scene)")
    r.add_argument("--out", required=True, help="output .png; several frames get _0000, _0001, ... suffixes")
    r.add_argument("--size", default="512x512", help="per-eye WxH, or a preset: " + ", ".join(RESOLUTION_PRESETS))
    r.add_argument("--fov", type=float, default=70.0, help="vertical field of view per eye, degrees")
    r.add_argument("--ipd", type=float, default=0.063, help="interpupillary distance, metres")
    r.add_argument("--mono", action="store_true", help="render one centred camera instead of two eyes")
    r.add_argument("--trajectory", default="still",
                   help="still, vr (seeded head motion), turn (a fast head turn, 150 deg/s), orbit, fly, altitude "
                        "(street level to an aerial view), or a trajectory file (gscache JSON or Inria cameras.json)")
    r.add_argument("--frames", type=at_least(1, int), default=1, help="frames along the trajectory")
    r.add_argument("--seed", type=at_least(0, int), default=0, help="seed of the vr trajectory")
    r.add_argument("--distance", type=positive(float), default=2.2, help="viewing distance in scene radii")
    r.add_argument("--elevation", type=float, default=20.0, help="viewing elevation, degrees")
    r.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis (OpenCV worlds: -y)")
    r.add_argument("--background", default="0,0,0", help="background colour r,g,b in [0, 1]")
    r.add_argument("--backend", default="auto", help="stage implementations: auto, or a name from gscache.backends.available()")
    r.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if present)")
    r.add_argument("--foveation", default="off", choices=list(FOVEATION_LEVELS),
                   help="foveated rendering: an exact full-resolution fovea over a reduced-resolution periphery")
    r.add_argument("--gaze", default=None, metavar="X,Y",
                   help="--foveation: the fovea's centre as fractions of the image (default 0.5,0.5)")
    r.add_argument("--reuse", default="stereo", choices=list(REUSE_MODES),
                   help="what is computed once and reused (README, Reuse); reproj-stereo and reproj reuse "
                        "rasterized pixels between the eyes or across frames")
    r.add_argument("--reuse-bound", type=at_least(0.0, float), default=None, metavar="LEVELS",
                   help="reproj modes: the largest predicted RMS error of a reused tile, 8-bit levels (default 2)")
    add_scene_options(r)
    r.set_defaults(func=run)


def run(args) -> int:
    import statistics

    import torch
    from tqdm import tqdm

    from ..camera import Camera, Intrinsics, StereoRig, rigid_inverse
    import dataclasses

    from ..config import DeriveConfig, RasterConfig, RenderConfig
    from ..scene.structured import StructuredScene
    from ..trajectory import named_trajectory

    if args.frames < 1:
        raise GscacheError(f"--frames: expected >= 1, got {args.frames}")
    width, height = parse_size(args.size)
    up = UP_AXES[args.up]
    scene = load_scene(args)
    cache = REUSE_MODES[args.reuse]
    if args.reuse_bound is not None:
        if cache.pixel_reuse == "off":
            raise GscacheError(f"--reuse-bound: only the reproj modes reuse pixels, not --reuse {args.reuse}")
        cache = dataclasses.replace(cache, reuse_error_bound=args.reuse_bound)
    config = RenderConfig(backend=args.backend, device=args.device, cache=cache,
                          raster=RasterConfig(background=parse_color(args.background)),
                          derive=DeriveConfig(appearance_index=args.appearance_index),
                          foveation=foveation_level(args.foveation))
    gaze = parse_gaze_text(args.gaze)
    renderer = open_renderer(scene, config)
    traj = named_trajectory(args.trajectory, scene, args.frames, seed=args.seed, up=up, distance=args.distance,
                            elevation_deg=args.elevation)
    intr = Intrinsics.from_fov(args.fov, width, height)
    out = Path(args.out)
    names = [out] if len(traj) == 1 else [out.with_name(f"{out.stem}_{i:04d}{out.suffix}") for i in range(len(traj))]
    rss_loaded, _ = rss_mib()
    if renderer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(renderer.device)
    start = time.perf_counter()
    frame_ms, reused = [], []
    for i, T in enumerate(tqdm(traj.T_world_head, desc="render", unit="frame", disable=len(traj) == 1)):
        if args.mono:
            view = Camera(traj.intrinsics[i] if traj.intrinsics else intr, rigid_inverse(T))
        else:
            view = StereoRig(T, intr, intr, ipd_m=args.ipd)
        frame = renderer.render(view, gaze=gaze)
        frame_ms.append(frame.times.total_ms)
        if frame.reuse is not None:
            reused.append(sum(frame.reuse.tiles_reused) / len(frame.reuse.tiles_reused))
        write_png(frame.to_uint8(side_by_side=True), names[i])
    elapsed = time.perf_counter() - start
    kind = "mono" if args.mono else "stereo"
    what = "anchors" if isinstance(scene, StructuredScene) else "Gaussians"
    print(f"{scene.source}: {scene.count} {what}, {len(traj)} {kind} frame(s) of {width}x{height} per eye "
          f"with backend {renderer.backend.name} on {renderer.device} in {elapsed:.1f} s "
          f"-> {names[0]}{' ...' if len(names) > 1 else ''}")
    # The first frame pays one-off costs (allocator growth, lazy initialisation): leave it out.
    steady = frame_ms[1:] or frame_ms
    print(f"render time per frame: median {statistics.median(steady):.0f} ms over {len(steady)} frame(s); "
          f"{_peak_memory(renderer.device, rss_loaded)}")
    if reused:
        print(f"pixel reuse ({args.reuse}): {statistics.mean(reused):.1%} of the tiles taken from the warp on average")
    return 0


def _peak_memory(device, rss_loaded: float) -> str:
    """The peak memory of the frames: CUDA memory on a GPU, else the process's resident memory."""
    if device.type == "cuda":
        import torch

        return f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    _, peak = rss_mib()
    return f"peak RSS {peak:.0f} MiB ({peak - rss_loaded:+.0f} MiB over the loaded scene)"
