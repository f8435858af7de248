"""``gscache info``: print a scene's counts, SH degree (or anchors, levels and MLP inputs of a
structured scene), bounds, memory and load time."""

from __future__ import annotations

import time

from ..scene import detect_format
from ._common import add_scene_options, load_scene


def add_parser(subparsers) -> None:
    i = subparsers.add_parser("info", help="print a scene's counts, SH degree, bounds and memory")
    i.add_argument("scene", nargs="?", help="scene file, SOG folder, training output folder or structured checkpoint "
                                            "(default: the embedded demo scene)")
    add_scene_options(i)
    i.set_defaults(func=run)


def run(args) -> int:
    start = time.perf_counter()
    scene = load_scene(args)
    load_s = time.perf_counter() - start
    from ..scene.structured import StructuredScene

    if isinstance(scene, StructuredScene):
        _print_structured(scene, load_s)
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


def _print_structured(scene, load_s: float) -> None:
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
