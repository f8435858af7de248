"""Predicted frame time of a scene on 1..N devices, from measured per-tile costs.

Renders a VR trajectory on one device, records each frame's intersections per tile and its stage
times, and models a device's frame as the replicated front end (every device runs derive, cull,
shade, project and bin in full) plus its bands' rasterization, at the measured milliseconds per
intersection; the bands are the planner's (gscache.multi.plan_tiles, equal devices). Prints the
median predicted frame time, speed-up and balance per device count, and plots them.

    python scripts/simulate_devices.py ../shared/data/plant.splat --devices 1,2,4,8 --frames 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path


from gscache import Renderer, RenderConfig, StereoRig
from gscache.api import open_scene
from gscache.presets import parse_size
from gscache.multi import plan_tiles, row_costs
from gscache.trajectory import named_trajectory


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scene", nargs="?")
    p.add_argument("--devices", default="1,2,4,8")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--size", default="512x512")
    p.add_argument("--fov", type=float, default=90.0)
    p.add_argument("--backend", default="auto")
    p.add_argument("--trajectory", default="vr")
    p.add_argument("--plot", default="simulate_devices.png")
    args = p.parse_args(argv)
    counts = [int(n) for n in args.devices.split(",")]
    scene = open_scene(args.scene)
    width, height = parse_size(args.size)
    traj = named_trajectory(args.trajectory, scene, args.frames)
    template = StereoRig.symmetric(traj.T_world_head[0], width, height, args.fov)
    renderer = Renderer(scene, RenderConfig(backend=args.backend))
    tiles_x, tiles_y = -(-width // 16), -(-height // 16)
    frames = []
    for i, pose in enumerate(traj.T_world_head):
        f = renderer.render(template.with_pose(pose))
        if i >= 2:  # warm-up
            frames.append((row_costs(f.tile_costs, tiles_x, tiles_y), f.times.total_ms - f.times.rasterize_ms,
                           f.times.rasterize_ms))
    print(f"{scene.source}: {len(frames)} frames of {width}x{height} per eye, backend {renderer.backend.name}; "
          f"measured front end {statistics.median(f[1] for f in frames):.1f} ms, rasterize "
          f"{statistics.median(f[2] for f in frames):.1f} ms (medians)")
    print(f"{'devices':>7} {'frame ms':>9} {'speed-up':>8} {'balance':>8} {'ideal ms':>9}")
    rows = []
    for n in counts:
        predicted, balance, ideal = [], [], []
        for costs, front, raster in frames:
            plan = plan_tiles(costs, [1.0] * n)
            per_isect = raster / max(float(costs.sum()), 1.0)
            predicted.append(front + max(plan.loads) * per_isect)
            balance.append(plan.balance())
            ideal.append(front + raster / n)
        rows.append((n, statistics.median(predicted), statistics.median(balance), statistics.median(ideal)))
    base = rows[0][1] if rows and rows[0][0] == 1 else None
    for n, ms, bal, ideal in rows:
        speed = f"{base / ms:7.2f}x" if base else "      -"
        print(f"{n:7d} {ms:9.1f} {speed} {bal:8.2f} {ideal:9.1f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="planned bands")
        ax.plot([r[0] for r in rows], [r[3] for r in rows], "--", label="perfect split of rasterization")
        ax.set_xlabel("devices")
        ax.set_ylabel("predicted ms per stereo frame")
        ax.set_xscale("log", base=2)
        ax.legend()
        ax.set_title(Path(str(scene.source)).name, fontsize=9)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
