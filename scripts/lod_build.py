"""Build time, peak memory and on-disk size of foveation's periphery level of detail
(gscache.stages.lod) for a scene: the generated city at 1M Gaussians by default.

Usage: python3 scripts/lod_build.py [SCENE] [--city-gaussians 1000000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", nargs="?")
    parser.add_argument("--city-gaussians", type=int, default=1_000_000)
    args = parser.parse_args()
    from gscache.scene import load_scene
    from gscache.scenes import city_scene
    from gscache.stages.lod import load_or_build

    scene = load_scene(args.scene) if args.scene else city_scene(args.city_gaussians)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        lod = load_or_build(scene, Path(tmp), progress=True)
        took = time.perf_counter() - start
        size = sum(p.stat().st_size for p in Path(tmp).glob("*.pt"))
        start = time.perf_counter()
        load_or_build(scene, Path(tmp))
        load = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{scene.source or 'scene'}: {scene.count} Gaussians, {lod.levels} levels {lod.offsets}; build (with the "
          f"content hash and the write) {took:.2f} s, load {load:.2f} s; on disk {size / 2**20:.1f} MiB; peak "
          f"resident memory {peak / 1024:.0f} MiB ({(peak - before) / 1024:.0f} MiB above the scene's); {cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
