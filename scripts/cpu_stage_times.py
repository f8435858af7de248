"""Each stage of one backend on one stereo frame, timed alone: the minimum of several runs of the
stage on the same inputs, with its cost per Gaussian, per intersection and per evaluation (the
figures of issue 26's table in the README).

Usage: python3 scripts/cpu_stage_times.py [SCENE] [--size 1024] [--runs 7] [--backend cpu]
        [--before DIR]
SCENE defaults to ../shared/data/playbot_sog; the frame is frame 0 of the benchmark's vr
trajectory (seed 0) with the benchmark's rig. --before DIR also times a checkout of the project
(e.g. `git worktree add /tmp/before REV`) in its own process, run after this one, for a side by
side table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(scene_path: str, size: int, runs: int, backend_name: str) -> dict:
    import gscache
    from gscache import backends
    from gscache.bench.runner import BenchSettings
    from gscache.camera import StereoRig, views_of
    from gscache.config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
    from gscache.trajectory import named_trajectory

    scene = gscache.open_scene(scene_path)
    settings = BenchSettings(width=size, height=size)
    pose = named_trajectory("vr", scene, 1, seed=0).T_world_head[0]
    views = views_of(StereoRig.symmetric(pose, size, size, settings.fov_y_deg, settings.ipd_m))
    b = backends.get(backend_name, "cpu")

    def best(fn):
        times, out = [], None
        for _ in range(runs):
            start = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - start) * 1e3)
        return out, min(times)

    visible, cull_ms = best(lambda: b.cull(scene, views, CullConfig(), ProjectConfig()))
    shaded, shade_ms = best(lambda: b.shade(visible, views, ShadeConfig()))
    projected, project_ms = best(lambda: b.project(visible, shaded, views, ProjectConfig()))
    bins, bin_ms = best(lambda: b.bin(projected, views, BinConfig()))
    images, raster_ms = best(lambda: b.rasterize(visible, shaded, projected, bins, views, RasterConfig()))
    return dict(gaussians=scene.count, visible=visible.count, views=views.n_views,
                intersections=int(bins.gaussian_ids.numel()), evaluations=images.evaluations,
                cull_ms=cull_ms, shade_ms=shade_ms, project_ms=project_ms, bin_ms=bin_ms, rasterize_ms=raster_ms)


def rows(r: dict) -> list[tuple[str, str]]:
    N, V, E, I, ev = r["gaussians"], r["visible"], r["views"], r["intersections"], r["evaluations"]
    out = [("cull", f"{r['cull_ms']:.1f} ms, {r['cull_ms'] * 1e6 / max(N, 1):.1f} ns per Gaussian"),
           ("shade", f"{r['shade_ms']:.1f} ms, {r['shade_ms'] * 1e6 / max(V, 1):.1f} ns per visible Gaussian"),
           ("project", f"{r['project_ms']:.1f} ms, {r['project_ms'] * 1e6 / max(V * E, 1):.1f} ns per Gaussian "
                       "and eye"),
           ("bin", f"{r['bin_ms']:.1f} ms, {r['bin_ms'] * 1e6 / max(I, 1):.2f} ns per intersection ({I:,})")]
    rate = f"{ev / r['rasterize_ms'] / 1e6:.2f} G evaluations/s ({ev / 1e6:.1f}M)" if ev else "no evaluation count"
    return out + [("rasterize", f"{r['rasterize_ms']:.1f} ms, {rate}")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene", nargs="?", default=str(REPO.parent / "shared" / "data" / "playbot_sog"))
    ap.add_argument("--size", type=int, default=1024, help="pixels per eye, square")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--before", type=Path, help="a checkout to time too, in its own process")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.json:
        print(json.dumps(measure(args.scene, args.size, args.runs, args.backend)))
        return 0
    results = {"now": measure(args.scene, args.size, args.runs, args.backend)}
    if args.before:
        root = args.before.resolve()
        env = dict(os.environ, PYTHONPATH=str(root), GSCACHE_KERNEL_DIR=str(root / "cuda"))
        proc = subprocess.run([sys.executable, __file__, args.scene, "--size", str(args.size), "--runs",
                               str(args.runs), "--backend", args.backend, "--json"], env=env, cwd=root,
                              capture_output=True, text=True, check=True)
        results["before"] = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, r in results.items():
        print(f"{name}: {r['gaussians']:,} Gaussians, {r['visible']:,} visible, {args.size}x{args.size} per eye")
        for stage, text in rows(r):
            print(f"  {stage:10s} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
