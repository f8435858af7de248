"""``gscache bench``: time stereo rendering along a trajectory for several configurations (or the
--ablation ladder), optionally once per set of devices, and write bench.json and bench.png."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import GscacheError
from ..presets import FOVEATION_LEVELS, RESOLUTION_PRESETS, UP_AXES, foveation_level, parse_size
from ..scene import detect_format
from ._common import add_scene_options, at_least, load_scene, positive


def add_parser(subparsers) -> None:
    b = subparsers.add_parser("bench", help="time stereo rendering along a trajectory and compare configurations")
    b.add_argument("scene", nargs="?", help="scene file or SOG folder (default: the embedded demo scene)")
    b.add_argument("--trajectory", default="vr",
                   help="vr (seeded head motion), turn (a fast head turn, 150 deg/s), orbit, fly, still, altitude "
                        "(street level to an aerial view), or a trajectory file (gscache JSON or cameras.json)")
    b.add_argument("--distance", type=positive(float), default=2.2, help="viewing distance of vr/still/orbit/fly in scene radii")
    b.add_argument("--elevation", type=float, default=20.0, help="viewing elevation of vr/still/orbit/fly, degrees")
    b.add_argument("--frames", type=at_least(1, int), default=60, help="timed stereo frames (a file trajectory has its own)")
    b.add_argument("--warmup", type=at_least(0, int), default=3, help="untimed frames rendered first")
    b.add_argument("--size", default="512x512", help="per-eye WxH, or a preset: " + ", ".join(RESOLUTION_PRESETS))
    b.add_argument("--fov", type=float, default=90.0, help="vertical field of view per eye, degrees")
    b.add_argument("--ipd", type=float, default=0.063, help="interpupillary distance, metres")
    b.add_argument("--configs", default="auto",
                   help="comma-separated configurations to compare (the first is the baseline): BACKEND or "
                        "BACKEND/MODE, BACKEND auto or a backend name, MODE one of none, stereo (default), approx, "
                        "D2, D4, D8, dynamic, reproj-stereo, reproj (pixel reuse), each optionally with -ref "
                        "(structured scenes: the reference derivation instead of the fused kernel), the reproj "
                        "modes with :BOUND (the per-tile error bound in 8-bit levels, default 2; e.g. reproj:8) "
                        "and +fov-LEVEL, optionally +lod-PX (the periphery's level of detail: merged Gaussians "
                        "where the scene's would project under PX periphery pixels; e.g. dynamic+fov-medium+lod-8)")
    b.add_argument("--ablation", action="store_true",
                   help="run the standard ladder instead of --configs: every backend with no reuse (torch "
                        "first), then --backend through stereo, approx, D2, D4, D8, dynamic, reproj-stereo and "
                        "reproj; on a structured "
                        "scene --backend from per-eye derivation through shared derivation, D2, D4, D8, dynamic "
                        "and the fused derivation kernel")
    b.add_argument("--backend", default="auto", help="backend of the ladder's reuse rungs")
    b.add_argument("--devices", nargs="+", default=None, metavar="SET",
                   help="run every configuration once per set of devices, e.g. --devices single proc proc,proc "
                        "local,proc: 'single' is one device without the scheduler; a set lists local (the "
                        "presenting device), cuda:N, proc or proc:THREADS (a CPU worker process)")
    b.add_argument("--quality-frames", type=at_least(0, int), default=4, help="frames compared with the exact reference render")
    b.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    b.add_argument("--seed", type=at_least(0, int), default=0, help="seed of the vr trajectory")
    b.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis")
    b.add_argument("--out", default="bench_out", help="folder for bench.json and bench.png")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--foveation", default="off", choices=list(FOVEATION_LEVELS),
                   help="foveate every configuration at this level (the --ablation ladder has its own foveated rungs)")
    b.add_argument("--sequential", action="store_true",
                   help="run each configuration's whole trajectory in turn (default: interleaved frame by frame, so "
                        "that machine load lands on all of them alike; sequential gives each its own peak memory)")
    add_scene_options(b)
    b.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..api import default_device
    from ..bench.report import build_report, format_table, write_json, write_plot
    from ..bench.runner import BenchSettings, run_bench
    from ..scene.structured import StructuredScene
    from ..trajectory import named_trajectory

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
    scene = load_scene(args)
    structured = isinstance(scene, StructuredScene)
    configs = _configs(args, device, structured)
    traj = named_trajectory(args.trajectory, scene, args.frames, seed=args.seed, up=UP_AXES[args.up],
                            distance=args.distance, elevation_deg=args.elevation)
    settings = BenchSettings(width=width, height=height, fov_y_deg=args.fov, ipd_m=args.ipd, warmup=args.warmup,
                             quality_frames=args.quality_frames, device=str(device))
    results = run_bench(scene, traj, configs, settings, progress=not args.no_progress,
                        device_sets=_device_sets(args.devices), interleave=not args.sequential)
    report = build_report(results, _scene_info(args, scene, structured), _settings_info(args, len(traj), width, height),
                          traj.name, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "bench.json")
    write_plot(report, out / "bench.png")
    print(format_table(report))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


def _configs(args, device, structured: bool) -> list:
    """The (name, RenderConfig) pairs to compare: --configs or the --ablation ladder, each with
    --appearance-index and, where --foveation asks, foveated."""
    from ..bench.runner import FOVEATED, ladder, named_config

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
    return configs


def _device_sets(specs: list[str] | None) -> list[tuple] | None:
    """--devices as one tuple of device names per set (() for 'single'), or None without it."""
    if not specs:
        return None
    from ..multi import parse_devices

    device_sets = [() if d == "single" else tuple(x for x in d.split(",") if x) for d in specs]
    for ds in device_sets:
        if ds:
            parse_devices(list(ds))  # a bad spec fails here, before anything runs
    return device_sets


def _scene_info(args, scene, structured: bool) -> dict:
    info = {"source": scene.source, "sh_degree": scene.sh_degree,
            "format": "demo" if args.scene is None else detect_format(args.scene)}
    if structured:
        info.update(anchors=scene.count, offsets_per_anchor=scene.n_offsets, levels=scene.n_levels)
    else:
        info["gaussians"] = scene.count
    return info


def _settings_info(args, frames: int, width: int, height: int) -> dict:
    return {"frames": frames, "warmup": args.warmup, "width": width, "height": height, "fov_y_deg": args.fov,
            "distance": args.distance, "elevation_deg": args.elevation,
            "ipd_m": args.ipd, "quality_frames": args.quality_frames, "seed": args.seed, "ablation": args.ablation,
            "interleaved": not args.sequential}
