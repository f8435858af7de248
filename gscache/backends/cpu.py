"""The cpu backend: the kernels of cuda/ compiled for the host (C++ and OpenMP), called through
ctypes. All five stages, and the fused derivation of structured scenes, run the shared math of
cuda/common.cuh. Binning needs no key sort on the CPU: each view's Gaussians are radix-sorted by
depth once and scattered into per-tile slots (host.cpp)."""

from __future__ import annotations

import ctypes

import torch

from ..camera import ViewBatch
from ..config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
from ..errors import GscacheError
from ..records import Images, Projected, Reprojected, Shaded, TileBins, Visible
from ..scene.record import Scene
from ..scene.structured import StructuredScene
from ..sh import sh_degree_of
from ..stages.bin import check_intersections, tile_grid
from ..stages.foveate import FoveaLayout
from ..stages.cull import select_visible
from ..stages.reproject import DEPTH_TOLERANCE
from ..stages.reuse import TileGrid
from .table import Backend, BackendUnavailable
from ._boundary import check, gs_views, scale_projection_fields, scaled_projected
from ._foveate import composited, fovea_composite_fields
from ._loader import BuildError, host_library
from ._mlp import packed_mlps, with_reference_fallback
from ._reproject import composite_fields, reprojected, reproject_fields, tile_stats_fields
from ._params import (GsBinParams, GsCullParams, GsDeriveParams, GsFoveaCompositeParams, GsProjectParams,
                      GsRasterParams, GsReprojectParams, GsReuseCompositeParams, GsScaleProjectionParams, GsShadeParams,
                      GsTileStatsParams, GsView, fill)

_P = ctypes.c_void_p
# Every entry point takes its kernel's parameter struct (cuda/common.cuh) by pointer.
_SIGNATURES = {
    "gs_abi_version": ([], ctypes.c_int),
    "gs_view_size": ([], ctypes.c_int),
    "gs_vector_bits": ([], ctypes.c_int),
    "gs_cull_cpu": ([_P], None),
    "gs_shade_cpu": ([_P], None),
    "gs_project_cpu": ([_P], None),
    "gs_scale_projection_cpu": ([_P], None),
    "gs_bin_count_cpu": ([_P], None),
    "gs_bin_sorted_cpu": ([_P], ctypes.c_int),
    "gs_rasterize_cpu": ([_P], ctypes.c_int64),
    "gs_derive_count_cpu": ([_P], None),
    "gs_derive_emit_cpu": ([_P], None),
    "gs_reproject_cpu": ([_P], None),
    "gs_tile_stats_cpu": ([_P], None),
    "gs_reuse_composite_cpu": ([_P], None),
    "gs_fovea_composite_cpu": ([_P], None),
}
ABI_VERSION = 9
BYTES_PER_INTERSECTION = 12
"""The sorted keys (int64) and Gaussian ids (int32): the host library sorts in place through
per-tile cursors, so nothing else grows with the intersections (measured with
scripts/isect_memory.py: see the README)."""


def _lib(extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The host library (built with ``extra_flags``: see host_library) with its signatures
    declared and its ABI checked (once per loaded library)."""
    lib = host_library(extra_flags)
    if getattr(lib, "_gs_checked", False):
        return lib
    for name, (args, res) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    if lib.gs_abi_version() != ABI_VERSION:
        raise BuildError(f"kernel ABI {lib.gs_abi_version()} does not match the wrapper's {ABI_VERSION}")
    if lib.gs_view_size() != ctypes.sizeof(GsView):
        raise BuildError(f"struct GsView is {lib.gs_view_size()} bytes in C but {ctypes.sizeof(GsView)} in ctypes")
    lib._gs_checked = True
    return lib


def vector_bits(extra_flags: tuple[str, ...] = ()) -> int:
    """The widest vector registers the host library uses (512: AVX-512, 256: AVX2, 128: SSE2 or
    NEON, 0: scalar), as it was built for this machine (or with ``extra_flags``)."""
    return int(_lib(extra_flags).gs_vector_bits())


def _call(fn, params) -> int:
    return fn(ctypes.addressof(params))


def cull(scene: Scene, views: ViewBatch, cfg: CullConfig, project_cfg: ProjectConfig) -> Visible:
    check(scene.means, "scene.means", torch.float32, "cpu")
    check(scene.scales, "scene.scales", torch.float32, "cpu")
    keep = torch.empty(scene.count, dtype=torch.uint8)
    gs = gs_views(views)
    _call(_lib().gs_cull_cpu, fill(GsCullParams, means=scene.means, scales=scene.scales, views=gs, keep=keep,
                                   N=scene.count, E=views.n_views, eps2d=project_cfg.eps2d,
                                   extent_sigma=project_cfg.extent_sigma, margin_px=cfg.margin_px))
    return select_visible(scene, keep.bool())


def shade(visible: Visible, views: ViewBatch, cfg: ShadeConfig) -> Shaded:
    V, K = visible.count, visible.sh.shape[1]
    E = views.n_views
    degree = sh_degree_of(K) if cfg.sh_degree is None else min(sh_degree_of(K), cfg.sh_degree)
    for name in ("means", "quats", "scales", "sh"):
        check(getattr(visible, name), f"visible.{name}", torch.float32, "cpu")
    positions = check(views.positions.contiguous(), "views.positions", torch.float32, "cpu", (E, 3))
    covars = torch.empty(V, 6)
    colors = torch.empty(E, V, 3)
    _call(_lib().gs_shade_cpu, fill(GsShadeParams, means=visible.means, quats=visible.quats, scales=visible.scales,
                                    sh=visible.sh, positions=positions, covars=covars, colors=colors, E=E, V=V, K=K,
                                    degree=degree))
    return Shaded(covars=covars, colors=colors)


def project(visible: Visible, shaded: Shaded, views: ViewBatch, cfg: ProjectConfig) -> Projected:
    V, E = visible.count, views.n_views
    check(visible.means, "visible.means", torch.float32, "cpu", (V, 3))
    check(shaded.covars, "shaded.covars", torch.float32, "cpu", (V, 6))
    means2d = torch.empty(E, V, 2)
    conics = torch.empty(E, V, 3)
    depths = torch.empty(E, V)
    radii = torch.empty(E, V, 2, dtype=torch.int32)
    gs = gs_views(views)
    _call(_lib().gs_project_cpu, fill(GsProjectParams, means=visible.means, covars=shaded.covars, views=gs,
                                      means2d=means2d, conics=conics, depths=depths, radii=radii, E=E, V=V,
                                      eps2d=cfg.eps2d, extent_sigma=cfg.extent_sigma))
    return Projected(means2d=means2d, conics=conics, depths=depths, radii=radii)


def scale_projection(projected: Projected, full: ViewBatch, views: ViewBatch, cfg: ProjectConfig) -> Projected:
    """gscache.stages.project.scale_projection in the host library (gs_scale_projection, OpenMP)."""
    fields = scale_projection_fields(projected, full, views, cfg, "cpu")
    if fields["E"] * fields["V"]:
        _call(_lib().gs_scale_projection_cpu, fill(GsScaleProjectionParams, views=gs_views(views), **fields))
    return scaled_projected(fields)


def bin_tiles(projected: Projected, views: ViewBatch, cfg: BinConfig) -> TileBins:
    E, V = projected.depths.shape
    tiles_x, tiles_y = tile_grid(views, cfg)
    if max(tiles_x, tiles_y) >= 1 << 16:  # the host binning keeps tile coordinates in 16 bits
        raise GscacheError(f"cpu bin_tiles: {tiles_x}x{tiles_y} tiles of {cfg.tile_px} px; expected fewer than 65536 "
                           "a side")
    check(projected.means2d, "projected.means2d", torch.float32, "cpu", (E, V, 2))
    check(projected.radii, "projected.radii", torch.int32, "cpu", (E, V, 2))
    check(projected.depths, "projected.depths", torch.float32, "cpu", (E, V))
    lib = _lib()
    counts = torch.empty(E, V, dtype=torch.int32)
    grid = dict(E=E, V=V, tile_px=cfg.tile_px, tiles_x=tiles_x, tiles_y=tiles_y, shared_depth=int(views.shared_depth))
    inputs = dict(means2d=projected.means2d, radii=projected.radii, depths=projected.depths, counts=counts, offsets=0)
    _call(lib.gs_bin_count_cpu, fill(GsBinParams, **inputs, keys=0, ids=0, ranges=0, n_isect=0, **grid))
    n_isect = int(counts.sum(dtype=torch.int64))
    check_intersections(n_isect, cfg, BYTES_PER_INTERSECTION, "cpu", torch.device("cpu"))
    keys = torch.empty(n_isect, dtype=torch.int64)
    gaussian_ids = torch.empty(n_isect, dtype=torch.int32)
    ranges = torch.empty(E * tiles_x * tiles_y, 2, dtype=torch.int32)
    if _call(lib.gs_bin_sorted_cpu, fill(GsBinParams, **inputs, keys=keys, ids=gaussian_ids, ranges=ranges,
                                         n_isect=n_isect, **grid)):
        raise MemoryError(f"cpu bin_tiles: no memory for the depth order of {V} Gaussians in {E} views")
    return TileBins(
        isect_keys=keys,
        gaussian_ids=gaussian_ids,
        tile_ranges=ranges.reshape(E, tiles_x * tiles_y, 2),
        tiles_per_gaussian=counts,
        tile_px=cfg.tile_px,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
    )


def rasterize(visible: Visible, shaded: Shaded, projected: Projected, bins: TileBins, views: ViewBatch,
              cfg: RasterConfig) -> Images:
    E, V = projected.depths.shape
    H, W = views.height, views.width
    check(projected.conics, "projected.conics", torch.float32, "cpu", (E, V, 3))
    check(shaded.colors, "shaded.colors", torch.float32, "cpu", (E, V, 3))
    check(visible.opacities, "visible.opacities", torch.float32, "cpu", (V,))
    check(bins.gaussian_ids, "bins.gaussian_ids", torch.int32, "cpu")
    check(bins.tile_ranges, "bins.tile_ranges", torch.int32, "cpu")
    background = torch.tensor(cfg.background, dtype=torch.float32)
    rgb = torch.empty(E, H, W, 3)
    alpha = torch.empty(E, H, W)
    depth = torch.empty(E, H, W)
    median = torch.empty(E, H, W)
    mask = bins.pixel_mask
    if mask is not None:
        mask = check(mask.to(torch.uint8).contiguous(), "bins.pixel_mask", torch.uint8, "cpu", (E, H, W))
    evaluations = _call(_lib().gs_rasterize_cpu, fill(
        GsRasterParams, means2d=projected.means2d, conics=projected.conics, opacities=visible.opacities,
        colors=shaded.colors, depths=projected.depths, gaussian_ids=bins.gaussian_ids, ranges=bins.tile_ranges,
        background=background, out_rgb=rgb, out_alpha=alpha, out_depth=depth, out_median_depth=median,
        pixel_mask=0 if mask is None else mask, E=E, V=V,
        tile_px=bins.tile_px, tiles_x=bins.tiles_x, tiles_y=bins.tiles_y, width=W, height=H,
        alpha_max=cfg.alpha_max, alpha_min=cfg.alpha_min, t_min=cfg.transmittance_min))
    if evaluations < 0:
        raise MemoryError(f"cpu rasterize: no memory for the packed splats of {V} Gaussians ({64 * V} bytes)")
    return Images(rgb=rgb, alpha=alpha, depth=depth, median_depth=median, evaluations=evaluations)


def derive(scene: StructuredScene, ids: torch.Tensor, position: torch.Tensor, appearance_index: int | None) -> Scene:
    """The fused derivation (wrapped by _mlp.with_reference_fallback): opacities and counts per
    anchor, a prefix sum, then the kept Gaussians written at their rows."""
    packed = packed_mlps(scene.mlps, torch.device("cpu"), appearance_index)
    for name in ("anchors", "offsets", "features", "scales", "levels"):
        check(getattr(scene, name), f"scene.{name}", torch.float32, "cpu")
    ids = check(ids.contiguous(), "ids", torch.int64, "cpu")
    viewpoint = check(position.float().contiguous(), "position", torch.float32, "cpu", (3,))
    n, k, F = ids.numel(), scene.n_offsets, scene.features.shape[1]
    lib = _lib()
    opac = torch.empty(n, k)
    counts = torch.empty(n, dtype=torch.int32)
    inputs = dict(ids=ids, anchors=scene.anchors, features=scene.features, levels=scene.levels,
                  offsets=scene.offsets, scales=scene.scales, viewpoint=viewpoint, layers=packed.layers,
                  mlps=packed.mlps, weights=packed.weights, opac=opac, counts=counts, n=n, F=F, k=k,
                  add_level=int(scene.mlps.add_level), n_weights=packed.weights.numel(), use_shared=0)
    no_outputs = dict(starts=0, means=0, quats=0, out_scales=0, opacities=0, sh=0)
    _call(lib.gs_derive_count_cpu, fill(GsDeriveParams, **inputs, **no_outputs))
    ends = torch.cumsum(counts, 0, dtype=torch.int64)
    M = int(ends[-1]) if n else 0
    starts = (ends - counts).contiguous()
    means, quats, scales = torch.empty(M, 3), torch.empty(M, 4), torch.empty(M, 3)
    opacities, sh = torch.empty(M), torch.empty(M, 1, 3)
    if M:
        _call(lib.gs_derive_emit_cpu, fill(GsDeriveParams, **inputs, starts=starts, means=means, quats=quats,
                                           out_scales=scales, opacities=opacities, sh=sh))
    return Scene(means, quats, scales, opacities, sh, version=scene.version, source=f"derived from {scene.source}")


def reproject(rgb: torch.Tensor, alpha: torch.Tensor, median_depth: torch.Tensor, src_view: torch.Tensor,
              src_K: torch.Tensor, dst_view: torch.Tensor, dst_K: torch.Tensor, height: int, width: int,
              depth_tolerance: float = DEPTH_TOLERANCE) -> Reprojected:
    """gscache.stages.reproject.reproject in the host library (common.cuh's float64 steps, OpenMP)."""
    fields = reproject_fields(rgb, alpha, median_depth, src_view, src_K, dst_view, dst_K, height, width,
                              depth_tolerance)
    _call(_lib().gs_reproject_cpu, fill(GsReprojectParams, **fields))
    return reprojected(fields)


def tile_stats(warped: Reprojected, grid: TileGrid) -> torch.Tensor:
    """gscache.stages.reuse.tile_stats in the host library (common.cuh's gs_tile_stats, OpenMP over tiles)."""
    fields = tile_stats_fields(warped, grid)
    _call(_lib().gs_tile_stats_cpu, fill(GsTileStatsParams, **fields))
    return fields["stats"].reshape(grid.tiles_y, grid.tiles_x, -1)


def reuse_composite(warped: Reprojected, reused: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
                    depth: torch.Tensor, median: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """gscache.stages.reuse.reuse_composite in the host library (gs_reuse_composite, OpenMP over tiles)."""
    fields = composite_fields(warped, reused, rgb, alpha, depth, median, grid)
    _call(_lib().gs_reuse_composite_cpu, fill(GsReuseCompositeParams, **fields))
    return fields["truth"].reshape(grid.tiles_y, grid.tiles_x, 2)


def fovea_composite(fovea: Images, periphery: Images, layout: FoveaLayout) -> Images:
    """gscache.stages.foveate.composite in the host library (gs_fovea_composite, OpenMP over pixels)."""
    fields = fovea_composite_fields(fovea, periphery, layout)
    if fovea.alpha.numel():
        _call(_lib().gs_fovea_composite_cpu, fill(GsFoveaCompositeParams, **fields))
    return composited(fields, fovea, periphery)


def make_backend() -> Backend:
    """The cpu backend, or BackendUnavailable with the reason (no compiler, build failure)."""
    try:
        _lib()
    except (BuildError, OSError) as exc:
        raise BackendUnavailable(str(exc)) from None
    return Backend("cpu", cull, shade, project, bin_tiles, rasterize, BYTES_PER_INTERSECTION, device_types=("cpu",),
                   derive=with_reference_fallback(derive), reproject=reproject, tile_stats=tile_stats,
                   reuse_composite=reuse_composite, fovea_composite=fovea_composite,
                   scale_projection=scale_projection)
