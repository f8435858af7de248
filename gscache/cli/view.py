"""``gscache view``: open the desktop stereo viewer (glfw + OpenGL 3.3) on a scene."""

from __future__ import annotations

from pathlib import Path

from ..presets import FOVEATION_LEVELS, UP_AXES, parse_size
from ._common import add_scene_options, at_least, load_scene

def keys_text() -> str:
    """The keys for ``--help``, from the viewer's own key table (gscache.viewer.keys, which imports
    without glfw), so that the help and the keys cannot disagree."""
    from ..viewer.keys import BINDINGS

    return "Desktop stereo viewer. Keys: " + "; ".join(f"{b.keys}: {b.does}" for b in BINDINGS) + "."


def add_parser(subparsers) -> None:
    v = subparsers.add_parser("view", help="open the desktop stereo viewer (glfw + OpenGL 3.3)",
                              description=keys_text())
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
    v.add_argument("--frames", type=at_least(1, int), default=None, help="render this many frames and exit (scripted use)")
    v.add_argument("--devices", default=None, help="spread the tiles over devices, e.g. local,proc (see bench --devices)")
    v.add_argument("--screenshots", default=".", help="folder of the F12 screenshots")
    v.add_argument("--record", default="viewer_path.json", help="file the K key records the camera path to")
    v.add_argument("--foveation", default="off", choices=list(FOVEATION_LEVELS),
                   help="foveated rendering at this level (F cycles the levels, Z draws the zones)")
    v.add_argument("--screenshot-at-exit", action="store_true",
                   help="after the last frame, write the whole window (overlay included) as a PNG to --screenshots")
    v.add_argument("--xr", action="store_true",
                   help="present in an OpenXR headset (pip install 'gscache[xr]'; the runtime: the platform's active "
                        "one, or XR_RUNTIME_JSON); the window mirrors it")
    v.add_argument("--xr-scale", type=float, default=1.0,
                   help="with --xr: the per-eye size as a multiple of the runtime's recommended size")
    v.add_argument("--no-late-warp", action="store_true",
                   help="with --xr: submit the eyes as rendered, without warping them to the views located again "
                        "just before submission")
    add_scene_options(v)
    v.set_defaults(func=run)


def run(args) -> int:
    from ..trajectory import read_cameras_json
    from ..viewer import Viewer, ViewerOptions

    if args.xr:
        from ..viewer.xr_runtime import probe_runtime

        runtime = probe_runtime()  # no pyopenxr or no runtime: one line, exit 2
        print(f"gscache view: OpenXR runtime {runtime.name} {runtime.version}")

    width, height = parse_size(args.window)
    cameras = read_cameras_json(args.cameras) if args.cameras else None
    options = ViewerOptions(width=width, height=height, fov_y_deg=args.fov, ipd_m=args.ipd, view_mode=args.mode,
                            backend=args.backend, device=args.device, reuse=args.reuse,
                            resolution_scale=args.scale, target_ms=args.target_ms, frames=args.frames,
                            cameras=cameras, up=UP_AXES[args.up], screenshot_dir=Path(args.screenshots),
                            record_path=Path(args.record), devices=tuple(args.devices.split(",")) if args.devices else (),
                            appearance_index=args.appearance_index, foveation=args.foveation, xr=args.xr,
                            xr_scale=args.xr_scale, xr_late_warp=not args.no_late_warp)
    scene = load_scene(args)  # a scene that fails to load ends here, before any window opens
    return Viewer(scene, options).run(capture_window=args.screenshot_at_exit)
