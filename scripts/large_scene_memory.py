"""Peak memory and stage times of loading and rendering a large scene (issue 26's 8M Gaussians).

    python3 scripts/large_scene_memory.py --gaussians 8000000 --modes none,stereo,dynamic

Writes a random degree-3 scene of N Gaussians as a PLY once (``--ply``, kept for later runs),
then for each reuse mode runs a fresh process that loads it and renders ``--frames`` stereo
frames through a Renderer (cpu backend), and prints its peak resident set size (VmHWM) after
the interpreter's imports, after loading and after the frames, against the scene's own size,
with each frame's stage times. Each mode in its own process: a peak only ever grows."""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _peak_mib() -> float:
    """This process's peak resident set: VmHWM, the high-water mark of its own address space
    (getrusage's ru_maxrss can carry a larger figure over from before the process's exec, and
    did for the second of two modes), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(ply: str, mode: str, size: int, frames: int) -> dict:
    import torch

    import gscache
    from gscache import Renderer, RenderConfig, StereoRig
    from gscache.camera import look_at
    from gscache.presets import REUSE_MODES

    out = {"mode": mode, "import_mib": _peak_mib()}
    start = time.perf_counter()
    scene = gscache.load_scene(ply)
    out["load_s"], out["load_peak_mib"] = time.perf_counter() - start, _peak_mib()
    out["scene_mib"] = scene.nbytes / 2**20
    rig = StereoRig.symmetric(torch.linalg.inv(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 5.0))), size, size, 90.0)
    out["frames"] = []
    with Renderer(scene, RenderConfig(backend="cpu", cache=REUSE_MODES[mode])) as renderer:
        for _ in range(frames):
            start = time.perf_counter()
            frame = renderer.render(rig)
            out["frames"].append({"ms": (time.perf_counter() - start) * 1e3, "visible": frame.counters.n_visible,
                                  "intersections": frame.counters.n_intersections,
                                  "stages_ms": {k: round(v, 1) for k, v in dataclasses.asdict(frame.times).items()}})
    out["peak_mib"] = _peak_mib()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=8_000_000)
    ap.add_argument("--ply", default="/tmp/gscache_large_scene.ply", help="the scene's PLY (written if absent)")
    ap.add_argument("--modes", default="none,stereo,dynamic", help="reuse modes (gscache.presets.REUSE_MODES)")
    ap.add_argument("--size", type=int, default=1024, help="pixels per eye, square")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.ply, args.child, args.size, args.frames)))
        return 0
    if not Path(args.ply).exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from gscache import save_scene
        from tests._helpers import random_scene

        print(f"writing {args.gaussians:,} Gaussians to {args.ply}", flush=True)
        save_scene(random_scene(args.gaussians, seed=2, sh_degree=3, spread=4.0, depth=5.0, scale=(0.005, 0.05)),
                   args.ply)
    for mode in args.modes.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--ply", args.ply, "--size", str(args.size),
                               "--frames", str(args.frames)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        above = r["peak_mib"] - r["import_mib"]
        print(f"{mode:8} scene {r['scene_mib']:.0f} MiB; load {r['load_s']:.1f} s, peak "
              f"{(r['load_peak_mib'] - r['import_mib']) / r['scene_mib']:.2f}x; render peak {above:.0f} MiB above "
              f"the interpreter = {above / r['scene_mib']:.2f}x the scene")
        for f in r["frames"]:
            print(f"         {f['ms']:.0f} ms, {f['visible']:,} visible, {f['intersections']:,} intersections; "
                  f"{f['stages_ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
