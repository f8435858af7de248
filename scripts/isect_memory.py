"""Peak memory per tile intersection of each backend: the figure each backend states
(``Backend.bytes_per_intersection``) and refuses frames by (gscache.stages.bin.check_intersections).

For each backend, stereo frames of the same random scene are rendered with Gaussians of two
sizes, so with two intersection counts, each frame in a fresh process; the slope of the frame's
peak memory against its intersections is the backend's bytes per intersection (what does not
grow with them, images and projections, cancels). CPU backends: the process's peak RSS
(ru_maxrss) minus its RSS before the frame; CUDA backends: torch.cuda.max_memory_allocated minus
the memory allocated before the frame.

Usage: python3 scripts/isect_memory.py [--backends torch,cpu] [--size 1024] [--gaussians 4000]
                                       [--scales 0.05,0.1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_one(backend: str, size: int, gaussians: int, scale: float) -> dict:
    """One frame in this process: its intersections and the memory it added at its peak."""
    import torch

    from gscache import RenderConfig, Renderer, StereoRig
    from gscache.bench.report import cpu_model
    from gscache.camera import look_at
    from gscache.config import BinConfig
    from gscache.scene.record import make_scene

    g = torch.Generator().manual_seed(0)
    n = gaussians
    means = (torch.rand(n, 3, generator=g) - 0.5) * 2.0
    means[:, 2] += 3.0
    scene = make_scene(means, torch.randn(n, 4, generator=g), torch.full((n, 3), scale) * (0.5 + torch.rand(n, 3, generator=g)),
                       0.2 + 0.8 * torch.rand(n, generator=g), 0.3 * torch.randn(n, 1, 3, generator=g), source="isect_memory")
    device = "cuda" if backend in ("cuda", "gsplat") else "cpu"
    # No budget of our own: the frame must be rendered, not refused, to be measured.
    renderer = Renderer(scene, RenderConfig(backend=backend, device=device, bin=BinConfig(memory_budget_bytes=None)))
    pose = look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0))
    renderer.render(StereoRig.symmetric(pose, 64, 64))  # warm-up: libraries loaded, kernels built
    renderer.reset_cache()
    rig = StereoRig.symmetric(pose, size, size, fov_y_deg=60.0)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        frame = renderer.render(rig)
        torch.cuda.synchronize()
        added = torch.cuda.max_memory_allocated() - before
    else:
        before = _rss_bytes()
        frame = renderer.render(rig)
        added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"backend": backend, "scale": scale, "intersections": int(frame.counters.n_intersections),
            "added_bytes": int(added), "device": torch.cuda.get_device_name() if device == "cuda" else cpu_model()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="torch,cpu")
    ap.add_argument("--size", type=int, default=1024, help="pixels per side of each eye")
    ap.add_argument("--gaussians", type=int, default=4000)
    ap.add_argument("--scales", default="0.05,0.1", help="two Gaussian sizes (metres), so two intersection counts")
    ap.add_argument("--json", help="write the rows here too")
    ap.add_argument("--one", nargs=2, metavar=("BACKEND", "SCALE"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one[0], args.size, args.gaussians, float(args.one[1]))))
        return 0
    rows = []
    print(f"{'backend':10} {'intersections':>28} {'peak added (MiB)':>22} {'bytes / intersection':>21}")
    for backend in args.backends.split(","):
        pair = []
        for scale in args.scales.split(","):
            out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--gaussians", str(args.gaussians),
                                  "--one", backend, scale], capture_output=True, text=True)
            if out.returncode:
                print(f"{backend:10} failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
                break
            pair.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if len(pair) != 2:
            continue
        a, b = pair
        slope = (b["added_bytes"] - a["added_bytes"]) / max(1, b["intersections"] - a["intersections"])
        rows.append({"backend": backend, "device": a["device"], "frames": pair, "bytes_per_intersection": slope})
        print(f"{backend:10} {a['intersections']:>13,} -> {b['intersections']:>12,} "
              f"{a['added_bytes'] / 2**20:>9.0f} -> {b['added_bytes'] / 2**20:>8.0f} {slope:>21.1f}")
    if rows:
        print(f"device: {rows[0]['device']}; {args.size}x{args.size} per eye, {args.gaussians} Gaussians")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
