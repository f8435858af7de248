"""Command line: ``gscache render``, ``gscache bench`` and ``gscache info``.

argparse rather than a config-driven CLI library: the commands take a handful of flat options,
and argparse gives clear errors with no extra dependency.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

from .api import open_renderer, open_scene
from .errors import GscacheError, GscacheRuntimeError, GscacheWarning
from .config import RenderConfig
from .presets import FOVEATION_LEVELS, RESOLUTION_PRESETS, UP_AXES, foveation_level, parse_size
from .scene import detect_format

def _at_least(low, kind):
    """An argparse type: a number of ``kind`` that is >= low (argparse prints the message)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected a value >= {low}, got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _positive(kind):
    """An argparse type: a finite number of ``kind`` that is > 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (value > 0 and value < float("inf")):
            raise argparse.ArgumentTypeError(f"expected a finite value > 0, got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def parse_color(text: str) -> tuple[float, float, float]:
    try:
        rgb = tuple(float(v) for v in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
        raise GscacheError(f"--background: expected three numbers in [0, 1] like 0,0,0, got {text!r}")
    return rgb


def parse_cfg_overrides(text: str | None) -> dict | None:
    """``--cfg-args fork=2,dist2level=round`` -> {"fork": 2, "dist2level": "round"} (values as
    Python literals where they are, else text)."""
    if text is None:
        return None
    import ast

    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise GscacheError(f"--cfg-args: expected NAME=VALUE[,NAME=VALUE...], got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def parse_gaze_text(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise GscacheError(f"--gaze: expected X,Y fractions of the image (e.g. 0.5,0.5), got {text!r}") from None
    return x, y


def _scene_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iteration", type=_at_least(0, int), default=None,
                   help="a training output folder: load point_cloud/iteration_N (default: the highest)")
    p.add_argument("--cfg-args", default=None, metavar="NAME=VALUE,...",
                   help="Octree-GS / Scaffold-GS: cfg_args fields to override or supply, e.g. fork=2,dist2level=round")
    p.add_argument("--appearance-index", type=_at_least(0, int), default=0,
                   help="models with appearance embeddings: the one novel views use (default 0)")


def _open_scene(args):
    return open_scene(args.scene, iteration=args.iteration, cfg_args=parse_cfg_overrides(args.cfg_args))


def _write_png(rgb, path: Path) -> None:
    from PIL import Image

    from .atomic import atomic_write

    suffix = path.suffix.lower()
    if suffix != ".png":
        raise GscacheError(f"--out: expected a .png file name, got {str(path)!r}")
    with atomic_write(path) as f:
        Image.fromarray(rgb).save(f, format="PNG")


def _rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process, MiB (Linux; zeros elsewhere)."""
    import resource

    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        current = 0.0
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_render(args) -> int:
    import statistics

    import torch
    from tqdm import tqdm

    from .camera import Camera, Intrinsics, StereoRig, rigid_inverse
    from .config import DeriveConfig, RasterConfig, RenderConfig
    from .scene.structured import StructuredScene
    from .trajectory import named_trajectory

    if args.frames < 1:
        raise GscacheError(f"--frames: expected >= 1, got {args.frames}")
    width, height = parse_size(args.size)
    up = UP_AXES[args.up]
    scene = _open_scene(args)
    config = RenderConfig(backend=args.backend, device=args.device,
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
    rss_loaded, _ = _rss_mib()
    if renderer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(renderer.device)
    start = time.perf_counter()
    frame_ms = []
    for i, T in enumerate(tqdm(traj.T_world_head, desc="render", unit="frame", disable=len(traj) == 1)):
        if args.mono:
            view = Camera(traj.intrinsics[i] if traj.intrinsics else intr, rigid_inverse(T))
        else:
            view = StereoRig(T, intr, intr, ipd_m=args.ipd)
        frame = renderer.render(view, gaze=gaze)
        frame_ms.append(frame.times.total_ms)
        _write_png(frame.to_uint8(side_by_side=True), names[i])
    elapsed = time.perf_counter() - start
    kind = "mono" if args.mono else "stereo"
    what = "anchors" if isinstance(scene, StructuredScene) else "Gaussians"
    print(f"{scene.source}: {scene.count} {what}, {len(traj)} {kind} frame(s) of {width}x{height} per eye "
          f"with backend {renderer.backend.name} on {renderer.device} in {elapsed:.1f} s "
          f"-> {names[0]}{' ...' if len(names) > 1 else ''}")
    # The first frame pays one-off costs (allocator growth, lazy initialisation): leave it out.
    steady = frame_ms[1:] or frame_ms
    if renderer.device.type == "cuda":
        memory = f"peak CUDA memory {torch.cuda.max_memory_allocated(renderer.device) / 2**20:.0f} MiB"
    else:
        _, peak = _rss_mib()
        memory = f"peak RSS {peak:.0f} MiB ({peak - rss_loaded:+.0f} MiB over the loaded scene)"
    print(f"render time per frame: median {statistics.median(steady):.0f} ms over {len(steady)} frame(s); {memory}")
    return 0


def cmd_info(args) -> int:
    start = time.perf_counter()
    scene = _open_scene(args)
    load_s = time.perf_counter() - start
    from .scene.structured import StructuredScene

    if isinstance(scene, StructuredScene):
        m = scene.mlps
        inputs = ", ".join(n for n, on in (("distance", m.opacity_dist or m.cov_dist or m.color_dist),
                                            ("level", m.add_level)) if on) or "none"
        print(f"scene:       {scene.source} (structured: Scaffold-GS / Octree-GS anchors)")
        print(f"anchors:     {scene.count} x {scene.n_offsets} Gaussians; {scene.features.shape[1]} features; "
              f"{scene.n_levels} level(s)")
        print(f"LOD:         standard_dist {scene.standard_dist:.4g}, voxel_size {scene.voxel_size:.4g}, fork {scene.fork}, "
              f"dist2level {scene.lod_rounding}" if scene.standard_dist > 0 else "LOD:         none (Scaffold-GS)")
        print(f"MLP inputs:  feature{' (feature bank)' if m.feature_bank is not None else ''}, view direction; "
              f"extra: {inputs}" + (f"; appearance embeddings: {m.appearance.shape[0]} x {m.appearance_dim}"
                                    if m.appearance is not None else ""))
        lo, hi = scene.anchors.min(0).values, scene.anchors.max(0).values
        print(f"bounds:      min {[round(v, 4) for v in lo.tolist()]} max {[round(v, 4) for v in hi.tolist()]}")
        print(f"memory:      {scene.nbytes / 2**20:.1f} MiB of anchors (MLPs not counted)")
        print(f"load time:   {load_s:.2f} s")
        return 0
    lo, hi = scene.bounds()
    qlo, qhi = scene.bounds(0.01)
    fmt = "demo" if args.scene is None else detect_format(args.scene)
    print(f"scene:       {scene.source} ({fmt})")
    print(f"gaussians:   {scene.count}")
    print(f"sh degree:   {scene.sh_degree} ({scene.sh.shape[1]} coefficients per channel)")
    print(f"bounds:      min {[round(v, 4) for v in lo.tolist()]} max {[round(v, 4) for v in hi.tolist()]}")
    print(f"bounds 1-99%: min {[round(v, 4) for v in qlo.tolist()]} max {[round(v, 4) for v in qhi.tolist()]}")
    if scene.count:
        print(f"opacity:     mean {scene.opacities.mean():.3f}; scale median {scene.scales.median():.5f}")
    print(f"memory:      {scene.nbytes / 2**20:.1f} MiB as float32 tensors")
    print(f"load time:   {load_s:.2f} s")
    return 0


def cmd_bench(args) -> int:
    import torch

    from .bench.report import build_report, format_table, write_json, write_plot
    from .bench.runner import FOVEATED, BenchSettings, ladder, named_config, run_bench
    from .api import default_device
    from .scene.structured import StructuredScene
    from .trajectory import named_trajectory

    if args.frames < 1:
        raise GscacheError(f"--frames: expected >= 1, got {args.frames}")
    if args.warmup < 0:
        raise GscacheError(f"--warmup: expected >= 0, got {args.warmup}")
    if args.quality_frames < 0:
        raise GscacheError(f"--quality-frames: expected >= 0, got {args.quality_frames}")
    width, height = parse_size(args.size)
    try:
        device = torch.device(args.device) if args.device else default_device()
    except RuntimeError as exc:
        raise GscacheError(f"--device: {exc}") from None
    scene = _open_scene(args)
    structured = isinstance(scene, StructuredScene)
    if args.ablation:
        configs = ladder(device.type, args.backend, structured=structured)
    else:
        names = [n for n in args.configs.split(",") if n]
        if not names:
            raise GscacheError("--configs: expected one or more configuration names")
        configs = [named_config(n, device.type) for n in names]
    # Every rung renders with the same appearance embedding (models that have them).
    configs = [(name, dataclasses.replace(cfg, derive=dataclasses.replace(cfg.derive,
                                                                          appearance_index=args.appearance_index)))
               for name, cfg in configs]
    if args.foveation != "off":  # every configuration foveated at this level (a foveated rung keeps its own)
        level = foveation_level(args.foveation)
        configs = [(name if cfg.foveation.enabled else f"{name}{FOVEATED}{args.foveation}",
                    cfg if cfg.foveation.enabled else dataclasses.replace(cfg, foveation=level))
                   for name, cfg in configs]
    traj = named_trajectory(args.trajectory, scene, args.frames, seed=args.seed, up=UP_AXES[args.up],
                            distance=args.distance, elevation_deg=args.elevation)
    settings = BenchSettings(width=width, height=height, fov_y_deg=args.fov, ipd_m=args.ipd, warmup=args.warmup,
                             quality_frames=args.quality_frames, device=str(device))
    device_sets = None
    if args.devices:
        from .multi import parse_devices

        device_sets = [() if d == "single" else tuple(x for x in d.split(",") if x) for d in args.devices]
        for ds in device_sets:
            if ds:
                parse_devices(list(ds))  # a bad spec fails here, before anything runs
    results = run_bench(scene, traj, configs, settings, progress=not args.no_progress, device_sets=device_sets,
                        interleave=not args.sequential)
    scene_info = {"source": scene.source, "sh_degree": scene.sh_degree,
                  "format": "demo" if args.scene is None else detect_format(args.scene)}
    if structured:
        scene_info.update(anchors=scene.count, offsets_per_anchor=scene.n_offsets, levels=scene.n_levels)
    else:
        scene_info["gaussians"] = scene.count
    settings_info = {"frames": len(traj), "warmup": args.warmup, "width": width, "height": height, "fov_y_deg": args.fov,
                     "distance": args.distance, "elevation_deg": args.elevation,
                     "ipd_m": args.ipd, "quality_frames": args.quality_frames, "seed": args.seed, "ablation": args.ablation,
                     "interleaved": not args.sequential}
    report = build_report(results, scene_info, settings_info, traj.name, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "bench.json")
    write_plot(report, out / "bench.png")
    print(format_table(report))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


def cmd_view(args) -> int:
    from .trajectory import read_cameras_json
    from .viewer import Viewer, ViewerOptions

    width, height = parse_size(args.window)
    cameras = read_cameras_json(args.cameras) if args.cameras else None
    options = ViewerOptions(width=width, height=height, fov_y_deg=args.fov, ipd_m=args.ipd, view_mode=args.mode,
                            backend=args.backend, device=args.device, reuse=args.reuse,
                            resolution_scale=args.scale, target_ms=args.target_ms, frames=args.frames,
                            cameras=cameras, up=UP_AXES[args.up], screenshot_dir=Path(args.screenshots),
                            record_path=Path(args.record), devices=tuple(args.devices.split(",")) if args.devices else (),
                            appearance_index=args.appearance_index, foveation=args.foveation)
    scene = _open_scene(args)  # a scene that fails to load ends here, before any window opens
    return Viewer(scene, options).run(capture_window=args.screenshot_at_exit)


def cmd_convert(args) -> int:
    import json

    from tqdm import tqdm

    from .convert import convert

    bar = tqdm(total=args.views, desc="compare renders", unit="view", disable=args.views == 0 or args.no_progress)
    try:
        report = convert(args.source, args.target, sh_degree=args.sh_degree, spz_version=args.spz_version,
                         views=args.views, size=parse_size(args.size), up=UP_AXES[args.up],
                         config=RenderConfig(backend=args.backend, device=args.device or "cpu"), progress=bar.update)
    finally:
        bar.close()
    print(report.table())
    if args.report:
        from .atomic import atomic_write

        with atomic_write(args.report) as f:
            f.write(json.dumps(report.as_dict(), indent=2).encode())
    return 0


GENERATORS = ("structured-city", "structured-demo")


def cmd_generate(args) -> int:
    import shutil
    import tempfile

    from .atomic import umask
    from .scene.checkpoint import write_structured

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise GscacheError(f"{out}: exists and is not empty; choose a new folder")
    start = time.perf_counter()
    if args.kind == "structured-city":
        from .scenes.structured_city import structured_city

        scene = structured_city(blocks=args.blocks, levels=args.levels, finest_spacing_m=args.spacing, seed=args.seed)
    else:
        from .scenes import structured_demo

        scene = structured_demo(seed=args.seed, view_dependence=args.view_dependence)
    # Written beside the target and renamed into place: no half-written checkpoint is left behind.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700
        write_structured(scene, tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    levels = ", ".join(f"L{level}: {int((scene.levels == level).sum())}" for level in range(scene.n_levels))
    print(f"wrote {out}: {scene.count} anchors x {scene.n_offsets} Gaussians ({levels}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gscache", description="Cache-centric 3DGS renderer for VR stereo.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a scene to PNG (side-by-side stereo, or mono)")
    r.add_argument("scene", nargs="?", help="scene file or SOG folder (default: the embedded demo scene)")
    r.add_argument("--out", required=True, help="output .png; several frames get _0000, _0001, ... suffixes")
    r.add_argument("--size", default="512x512", help="per-eye WxH, or a preset: " + ", ".join(RESOLUTION_PRESETS))
    r.add_argument("--fov", type=float, default=70.0, help="vertical field of view per eye, degrees")
    r.add_argument("--ipd", type=float, default=0.063, help="interpupillary distance, metres")
    r.add_argument("--mono", action="store_true", help="render one centred camera instead of two eyes")
    r.add_argument("--trajectory", default="still",
                   help="still, vr (seeded head motion), orbit, fly, altitude (street level to an aerial view), or a "
                        "trajectory file (gscache JSON or Inria cameras.json)")
    r.add_argument("--frames", type=_at_least(1, int), default=1, help="frames along the trajectory")
    r.add_argument("--seed", type=_at_least(0, int), default=0, help="seed of the vr trajectory")
    r.add_argument("--distance", type=_positive(float), default=2.2, help="viewing distance in scene radii")
    r.add_argument("--elevation", type=float, default=20.0, help="viewing elevation, degrees")
    r.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis (OpenCV worlds: -y)")
    r.add_argument("--background", default="0,0,0", help="background colour r,g,b in [0, 1]")
    r.add_argument("--backend", default="auto", help="stage implementations: auto, or a name from gscache.backends.available()")
    r.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if present)")
    r.add_argument("--foveation", default="off", choices=list(FOVEATION_LEVELS),
                   help="foveated rendering: an exact full-resolution fovea over a reduced-resolution periphery")
    r.add_argument("--gaze", default=None, metavar="X,Y",
                   help="--foveation: the fovea's centre as fractions of the image (default 0.5,0.5)")
    _scene_options(r)
    r.set_defaults(func=cmd_render)

    b = sub.add_parser("bench", help="time stereo rendering along a trajectory and compare configurations")
    b.add_argument("scene", nargs="?", help="scene file or SOG folder (default: the embedded demo scene)")
    b.add_argument("--trajectory", default="vr",
                   help="vr (seeded head motion), orbit, fly, still, altitude (street level to an aerial view), "
                        "or a trajectory file (gscache JSON or cameras.json)")
    b.add_argument("--distance", type=_positive(float), default=2.2, help="viewing distance of vr/still/orbit/fly in scene radii")
    b.add_argument("--elevation", type=float, default=20.0, help="viewing elevation of vr/still/orbit/fly, degrees")
    b.add_argument("--frames", type=_at_least(1, int), default=60, help="timed stereo frames (a file trajectory has its own)")
    b.add_argument("--warmup", type=_at_least(0, int), default=3, help="untimed frames rendered first")
    b.add_argument("--size", default="512x512", help="per-eye WxH, or a preset: " + ", ".join(RESOLUTION_PRESETS))
    b.add_argument("--fov", type=float, default=90.0, help="vertical field of view per eye, degrees")
    b.add_argument("--ipd", type=float, default=0.063, help="interpupillary distance, metres")
    b.add_argument("--configs", default="auto",
                   help="comma-separated configurations to compare (the first is the baseline): BACKEND or "
                        "BACKEND/MODE, BACKEND auto or a backend name, MODE one of none, stereo (default), approx, "
                        "D2, D4, D8, dynamic, each optionally with -ref (structured scenes: the reference "
                        "derivation instead of the fused kernel)")
    b.add_argument("--ablation", action="store_true",
                   help="run the standard ladder instead of --configs: every backend with no reuse (torch "
                        "first), then --backend through stereo, approx, D2, D4, D8 and dynamic; on a structured "
                        "scene --backend from per-eye derivation through shared derivation, D2, D4, D8, dynamic "
                        "and the fused derivation kernel")
    b.add_argument("--backend", default="auto", help="backend of the ladder's reuse rungs")
    b.add_argument("--devices", nargs="+", default=None, metavar="SET",
                   help="run every configuration once per set of devices, e.g. --devices single proc proc,proc "
                        "local,proc: 'single' is one device without the scheduler; a set lists local (the "
                        "presenting device), cuda:N, proc or proc:THREADS (a CPU worker process)")
    b.add_argument("--quality-frames", type=_at_least(0, int), default=4, help="frames compared with the exact reference render")
    b.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    b.add_argument("--seed", type=_at_least(0, int), default=0, help="seed of the vr trajectory")
    b.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis")
    b.add_argument("--out", default="bench_out", help="folder for bench.json and bench.png")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--foveation", default="off", choices=list(FOVEATION_LEVELS),
                   help="foveate every configuration at this level (the --ablation ladder has its own foveated rungs)")
    b.add_argument("--sequential", action="store_true",
                   help="run each configuration's whole trajectory in turn (default: interleaved frame by frame, so "
                        "that machine load lands on all of them alike; sequential gives each its own peak memory)")
    _scene_options(b)
    b.set_defaults(func=cmd_bench)

    v = sub.add_parser("view", help="open the desktop stereo viewer (glfw + OpenGL 3.3)",
                       description="Desktop stereo viewer. Keys: W A S D Q E fly, mouse + button look, wheel speed, "
                                   "Tab fly/orbit, R reset, [ ] IPD, - = speed, , . resolution scale, T target frame "
                                   "time, N P cameras, V side-by-side/anaglyph/mono, H overlay, M reuse mode, "
                                   "B backend, G appearance, F foveation, Z fovea zones, F12 screenshot, K record path, Esc quit.")
    v.add_argument("scene", nargs="?", help="scene file, SOG folder or structured checkpoint (default: the demo scene)")
    v.add_argument("--window", default="1280x640", help="window size WxH in screen pixels (both eyes side by side)")
    v.add_argument("--mode", default="side-by-side", choices=("side-by-side", "anaglyph", "mono"))
    v.add_argument("--fov", type=float, default=90.0, help="vertical field of view per eye, degrees")
    v.add_argument("--ipd", type=float, default=0.063, help="interpupillary distance, metres")
    v.add_argument("--backend", default="auto", help="stage implementations (B cycles them at run time)")
    v.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    v.add_argument("--reuse", default="stereo", help="reuse mode: none, stereo, approx, D2, D4, D8, dynamic (M cycles)")
    v.add_argument("--scale", type=float, default=1.0, help="resolution scale in (0, 1]")
    v.add_argument("--target-ms", type=float, default=None, help="frame-time target: the resolution scale adapts")
    v.add_argument("--cameras", default=None, help="an Inria cameras.json to snap to with N and P")
    v.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis")
    v.add_argument("--frames", type=_at_least(1, int), default=None, help="render this many frames and exit (scripted use)")
    v.add_argument("--devices", default=None, help="spread the tiles over devices, e.g. local,proc (see bench --devices)")
    v.add_argument("--screenshots", default=".", help="folder of the F12 screenshots")
    v.add_argument("--record", default="viewer_path.json", help="file the K key records the camera path to")
    v.add_argument("--foveation", default="off", choices=list(FOVEATION_LEVELS),
                   help="foveated rendering at this level (F cycles the levels, Z draws the zones)")
    v.add_argument("--screenshot-at-exit", action="store_true",
                   help="after the last frame, write the whole window (overlay included) as a PNG to --screenshots")
    _scene_options(v)
    v.set_defaults(func=cmd_view)

    g = sub.add_parser("generate", help="write a procedural structured scene as an Octree-GS checkpoint folder")
    g.add_argument("kind", choices=GENERATORS, help="structured-city: a city of streets and buildings (~470k "
                   "anchors, 4 levels of detail by default); structured-demo: the demo square as ~4k anchors")
    g.add_argument("out", help="the checkpoint folder to create (must not exist, or be empty)")
    g.add_argument("--blocks", type=_at_least(1, int), default=6, help="structured-city: blocks per side (40 m each)")
    g.add_argument("--levels", type=_at_least(1, int), default=4, help="structured-city: levels of detail")
    g.add_argument("--spacing", type=_positive(float), default=1.0, help="structured-city: anchor spacing of the finest level, m")
    g.add_argument("--seed", type=_at_least(0, int), default=0, help="layout, features and MLP weights")
    g.add_argument("--view-dependence", type=_at_least(0.0, float), default=1.0,
                   help="structured-demo: scale of the colour MLP's view dependence (1: a mild sheen; 20: colours that "
                        "swing with the view as an untrained model's do)")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("convert", help="write a scene in another format and report what the format loses",
                       description="Formats by the target's name: .ply (Inria), .compressed.ply (PlayCanvas), .spz "
                                   "(Niantic), .splat (antimatter15). The report gives each attribute's quantisation "
                                   "error and the PSNR of renders of the converted scene against the original.")
    c.add_argument("source", help="any scene gscache reads (format from its content)")
    c.add_argument("target", help="the file to write (format from its name)")
    c.add_argument("--sh-degree", type=_at_least(0, int), default=None, help="drop the SH bands above this degree")
    c.add_argument("--spz-version", type=int, choices=(3, 4), default=3,
                   help="SPZ: 3 (gzip, read by every SPZ loader) or 4 (a ZSTD stream per attribute)")
    c.add_argument("--views", type=_at_least(0, int), default=4, help="stereo views rendered to compare (0: none)")
    c.add_argument("--size", default="256x256", help="per-eye WxH of the compared views")
    c.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis (for the orbit of views)")
    c.add_argument("--backend", default="auto", help="backend of the compared renders")
    c.add_argument("--device", default=None, help="torch device of the compared renders (default: cpu)")
    c.add_argument("--report", default=None, help="also write the report as JSON to this file")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("info", help="print a scene's counts, SH degree, bounds and memory")
    i.add_argument("scene", nargs="?", help="scene file, SOG folder, training output folder or structured checkpoint "
                                            "(default: the embedded demo scene)")
    _scene_options(i)
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line message (or the help)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with warnings.catch_warnings():  # restores showwarning and the filters afterwards
            warnings.simplefilter("always", GscacheWarning)
            warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
            return args.func(args)
    except GscacheError as exc:
        print(f"gscache {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be read or written: the user's to fix
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"gscache {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except GscacheRuntimeError as exc:
        print(f"gscache {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gscache {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
