"""Write N x N copies of a scene side by side (in the plane of its two widest axes, one scene
width apart) as one PLY: issue 26's larger scenes, made from a real one (playbot_sog: 2x2 is 2M
Gaussians, 4x4 8M). The benchmark's vr trajectory frames the whole grid, so every copy is in view.

Usage: python3 scripts/tiled_scene.py SCENE N OUT.ply
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene")
    ap.add_argument("n", type=int, help="copies per side")
    ap.add_argument("out", help="the PLY to write")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"n: expected at least 1, got {args.n}")
    import torch

    import gscache
    from gscache.scene.record import make_scene

    scene = gscache.load_scene(args.scene)
    lo, hi = scene.bounds(0.01)
    extent = hi - lo
    a, b = torch.argsort(extent, descending=True)[:2].tolist()  # the two widest axes
    parts = []
    for i in range(args.n):
        for j in range(args.n):
            offset = torch.zeros(3)
            offset[a], offset[b] = i * float(extent[a]), j * float(extent[b])
            parts.append(scene.means + offset)
    reps = args.n * args.n
    tiled = make_scene(torch.cat(parts), scene.quats.repeat(reps, 1), scene.scales.repeat(reps, 1),
                       scene.opacities.repeat(reps), scene.sh.repeat(reps, 1, 1),
                       source=f"{args.n}x{args.n} copies of {scene.source}")
    print(f"writing {tiled.count:,} Gaussians ({args.n}x{args.n} copies) to {args.out}")
    gscache.save_scene(tiled, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
