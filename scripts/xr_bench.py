"""Frames per second submitted through OpenXR, and where a frame's time goes, measured against the
project's own test runtime (tests/xr/runtime: built here with g++, loaded by pyopenxr's Khronos
loader; it does not pace frames, so this measures gscache, not a display) under Xvfb.

For each per-eye size (the runtime's recommended size, which the script sets) and each late
reprojection setting, the viewer renders ``--frames`` frames with ``gscache view --xr``'s code
path and reports: submitted frames per second (wall time of the run's frames), the median
milliseconds per stage from xrWaitFrame's call to xrEndFrame's return (wait, locate: xrBeginFrame
and xrLocateViews, render, late warp, upload into the swapchains, submit: xrEndFrame), and the
median age of the submitted poses (from the xrLocateViews whose poses the layer carries to
xrEndFrame's return). ``--late-error`` makes the runtime's first prediction of each display
time that many degrees off, so that late reprojection has something to correct.

Usage: python3 scripts/xr_bench.py [SCENE] [--sizes 256x224,1024x1024] [--frames 40] [--backend cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def start_xvfb():
    """An Xvfb of our own unless $DISPLAY is set; the process or None."""
    if os.environ.get("DISPLAY"):
        return None
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([shutil.which("Xvfb") or "Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                             "1280x1024x24", "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        os.environ["DISPLAY"] = ":" + pipe.readline().strip()
    return proc


def run_once(scene, size, frames: int, backend: str, late_warp: bool, late_error: float, manifest, work: Path,
             distance: float) -> dict:
    from gscache.trajectory import default_head_pose
    from gscache.viewer import Viewer, ViewerOptions
    from tests.xr.runtime import DEFAULT_VIEWS, EyeView, runtime_environment, write_script

    # The runtime's default eyes, at the LOCAL origin's height (gscache puts that origin at the
    # viewer's pose: the eyes see what the benchmark's framing sees).
    eyes = tuple(EyeView(v.orientation, (v.position[0], 0.0, v.position[2]), v.fov) for v in DEFAULT_VIEWS[0])
    script = write_script(work / f"script_{size[0]}x{size[1]}.txt", size=size, frames=frames + 2, views=[eyes])
    os.environ.update(runtime_environment(manifest, script=script, late_error_deg=late_error))
    viewer = Viewer(scene, ViewerOptions(width=1280, height=640, backend=backend, visible=False, xr=True,
                                         frames=frames + 2, xr_late_warp=late_warp, screenshot_dir=work,
                                         record_path=work / "path.json"))
    out = viewer.session.xr
    # Framed close, as in a headset (the benchmark's --distance): the OpenXR origin is this pose.
    viewer.nav.fly.set_pose(default_head_pose(scene, viewer.options.up, distance=distance, elevation_deg=10.0))
    viewer.step()  # the session starts and the first frames warm the caches
    viewer.step()
    out.times.samples.clear()
    out.pose_age_ms.clear()
    start, first = time.perf_counter(), out.frames_submitted
    try:
        viewer.loop.run(frames + 2)
    finally:
        viewer.session.close()
    wall = time.perf_counter() - start
    submitted = out.frames_submitted - first
    import numpy as np

    return {"fps": submitted / wall if wall > 0 else 0.0, "frames": submitted, "stages": out.times.medians(),
            "pose_age_ms": float(np.median(out.pose_age_ms)) if out.pose_age_ms else 0.0,
            "format": out.format.name, "runtime": out.runtime}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", nargs="?", help="scene file (default: the embedded demo scene)")
    parser.add_argument("--sizes", default="256x224,512x512,1024x1024")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--late-error", type=float, default=1.0, help="degrees off in the first prediction")
    parser.add_argument("--distance", type=float, default=0.5, help="viewing distance in scene radii (as bench's)")
    args = parser.parse_args()
    from gscache.presets import parse_size
    from gscache.scene import load_scene
    from gscache.scenes import demo_scene
    from tests.xr.runtime import build_test_runtime

    scene = load_scene(args.scene) if args.scene else demo_scene()
    xvfb = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            manifest = build_test_runtime(work / "runtime")
            cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                       "unknown CPU")
            print(f"{args.scene or 'demo scene'} at distance {args.distance}; backend {args.backend}; "
                  f"{args.frames} frames each; first prediction {args.late_error} degrees off; {cpu}, "
                  f"{os.cpu_count()} cores; the test runtime (no frame pacing) under Xvfb")
            stages = ("wait", "locate", "render", "late warp", "upload", "submit")
            print(f"{'per eye':>10} {'late warp':>9} {'FPS':>6} " + " ".join(f"{s:>9}" for s in stages)
                  + f" {'pose age':>9} format")
            for text in args.sizes.split(","):
                size = parse_size(text)
                for late in (False, True):
                    r = run_once(scene, size, args.frames, args.backend, late, args.late_error, manifest, work,
                                 args.distance)
                    cells = " ".join(f"{r['stages'].get(s, 0.0):9.2f}" for s in stages)
                    print(f"{text:>10} {('on' if late else 'off'):>9} {r['fps']:6.1f} {cells} {r['pose_age_ms']:9.2f} "
                          f"{r['format']}")
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
