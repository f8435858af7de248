"""The cuda backend: the kernels of cuda/kernels/*.cu, launched by this module's grid, block and
shared-memory arithmetic through a :class:`KernelRuntime`, the one seam between it and the
machine:

* :class:`CupyRuntime` (backend ``cuda``): compiled at run time by CuPy (NVRTC), launched on
  torch's current CUDA stream with the parameter struct passed by value.
* ``gscache.backends.simt.SimRuntime`` (backend ``cuda-sim``): the same kernels compiled for the
  host under the SIMT emulation of cuda/simt/, on CPU tensors, so that everything in this
  module and every kernel body runs in CI.

Culling is the torch reference's (cheap and memory-bound); the exclusive prefix sums and the
stable radix sort of the keys are torch's (CUB underneath on the GPU). Structured scenes derive
with the fused kernels of derive.cu.
"""

from __future__ import annotations

import ctypes
from typing import Protocol

import numpy as np
import torch

from ..camera import ViewBatch
from ..config import BinConfig, ProjectConfig, RasterConfig, ShadeConfig
from ..records import Images, Projected, Reprojected, Shaded, TileBins, Visible
from ..scene.record import Scene
from ..scene.structured import StructuredScene
from ..sh import sh_degree_of
from ..stages import cull
from ..stages.bin import check_intersections, tile_grid
from ..stages.foveate import FoveaLayout
from ..stages.reproject import DEPTH_TOLERANCE
from .table import Backend, BackendUnavailable
from ._boundary import check, gs_views, scale_projection_fields, scaled_projected
from ._foveate import composited, fovea_composite_fields
from ._loader import cuda_module
from ._mlp import packed_mlps, with_reference_fallback
from ._reproject import composite_fields, reprojected, reproject_fields, tile_stats_fields
from ._params import (GsBinParams, GsDeriveParams, GsFoveaCompositeParams, GsProjectParams, GsRasterParams,
                      GsReprojectParams, GsReuseCompositeParams, GsScaleProjectionParams, GsShadeParams,
                      GsTileStatsParams, as_kernel_arg, fill)

THREADS = 256  # threads per block of the one-thread-per-item kernels
SPLAT_FLOATS = 10  # GS_SPLAT_FLOATS of cuda/common.cuh: floats per splat in rasterize's shared batch
SHARED_MEM_LIMIT = 48 * 1024  # bytes of dynamic shared memory a launch may ask for without opting in
BYTES_PER_INTERSECTION = 64
"""Peak bytes bin_tiles holds per intersection: keys (int64) and ids (int32) from the emit
kernel, then during the stable sort the shifted keys, the sorted keys and the int64 order, and
the sort's own double buffers; then the gathered keys and ids and their int64 temporaries. An
estimate from the code (CUDA's sort buffers are not those of the CPU build); scripts/gpu_check.sh
measures it on a GPU."""


class KernelRuntime(Protocol):
    """Where the kernels run: compiles (once) and launches kernel ``name`` of cuda/kernels/<file>.cu."""

    name: str
    device_type: str
    """torch device type of the tensors whose data pointers go into the parameter structs."""

    def launch(self, file: str, name: str, device: torch.device, grid: tuple[int, ...], block: tuple[int, ...],
               params: ctypes.Structure, shared_mem: int = 0) -> None: ...


class CupyRuntime:
    """The GPU: CuPy RawModules (NVRTC) launched on torch's current stream of the tensors' device."""

    name = "cuda"
    device_type = "cuda"

    def launch(self, file, name, device, grid, block, params, shared_mem=0):
        import cupy

        index = device.index if device.index is not None else torch.cuda.current_device()
        kernel = cuda_module(file, index).get_function(name)
        stream = torch.cuda.current_stream(device)
        # torch's stream as CuPy's, so the kernel queues behind torch's work on the same tensors.
        with cupy.cuda.Device(stream.device_index), cupy.cuda.ExternalStream(stream.cuda_stream, stream.device_index):
            kernel(tuple(grid), tuple(block), (as_kernel_arg(params),), shared_mem=shared_mem)


def _blocks(n: int) -> tuple[int]:
    return (max(1, -(-n // THREADS)),)


def _views_tensor(views: ViewBatch, device: torch.device) -> torch.Tensor:
    """The GsView structs of the views as bytes on the device (E * 80 bytes copied per frame)."""
    host = gs_views(views)
    raw = np.frombuffer(bytes(host), dtype=np.uint8).copy()
    return torch.from_numpy(raw).to(device)


class CudaKernels:
    """The five stages and the fused derivation of the cuda kernels, on one runtime."""

    def __init__(self, runtime: KernelRuntime):
        self.rt = runtime
        self.dev_type = runtime.device_type

    def _check(self, t: torch.Tensor, name: str, dtype: torch.dtype, shape: tuple | None = None) -> torch.Tensor:
        return check(t, name, dtype, self.dev_type, shape)

    def shade(self, visible: Visible, views: ViewBatch, cfg: ShadeConfig) -> Shaded:
        dev = visible.means.device
        V, K, E = visible.count, visible.sh.shape[1], views.n_views
        degree = sh_degree_of(K) if cfg.sh_degree is None else min(sh_degree_of(K), cfg.sh_degree)
        for name in ("means", "quats", "scales", "sh"):
            self._check(getattr(visible, name), f"visible.{name}", torch.float32)
        positions = self._check(views.positions.contiguous(), "views.positions", torch.float32, (E, 3))
        covars = torch.empty(V, 6, device=dev)
        colors = torch.empty(E, V, 3, device=dev)
        if V:
            self.rt.launch("shade", "shade_kernel", dev, _blocks(V), (THREADS,), fill(
                GsShadeParams, means=visible.means, quats=visible.quats, scales=visible.scales, sh=visible.sh,
                positions=positions, covars=covars, colors=colors, E=E, V=V, K=K, degree=degree))
        return Shaded(covars=covars, colors=colors)

    def project(self, visible: Visible, shaded: Shaded, views: ViewBatch, cfg: ProjectConfig) -> Projected:
        dev = visible.means.device
        V, E = visible.count, views.n_views
        self._check(visible.means, "visible.means", torch.float32, (V, 3))
        self._check(shaded.covars, "shaded.covars", torch.float32, (V, 6))
        means2d = torch.empty(E, V, 2, device=dev)
        conics = torch.empty(E, V, 3, device=dev)
        depths = torch.empty(E, V, device=dev)
        radii = torch.empty(E, V, 2, dtype=torch.int32, device=dev)
        if V:
            gs = _views_tensor(views, dev)
            self.rt.launch("project", "project_kernel", dev, _blocks(E * V), (THREADS,), fill(
                GsProjectParams, means=visible.means, covars=shaded.covars, views=gs, means2d=means2d, conics=conics,
                depths=depths, radii=radii, E=E, V=V, eps2d=cfg.eps2d, extent_sigma=cfg.extent_sigma))
        return Projected(means2d=means2d, conics=conics, depths=depths, radii=radii)

    def scale_projection(self, projected: Projected, full: ViewBatch, views: ViewBatch,
                         cfg: ProjectConfig) -> Projected:
        """gscache.stages.project.scale_projection: common.cuh's gs_scale_projection, one thread
        per (view, Gaussian)."""
        fields = scale_projection_fields(projected, full, views, cfg, self.dev_type)
        n = fields["E"] * fields["V"]
        if n:
            dev = projected.depths.device
            self.rt.launch("project", "scale_projection_kernel", dev, _blocks(n), (THREADS,),
                           fill(GsScaleProjectionParams, views=_views_tensor(views, dev), **fields))
        return scaled_projected(fields)

    def bin_tiles(self, projected: Projected, views: ViewBatch, cfg: BinConfig) -> TileBins:
        E, V = projected.depths.shape
        dev = projected.depths.device
        tiles_x, tiles_y = tile_grid(views, cfg)
        n_tiles = E * tiles_x * tiles_y
        self._check(projected.means2d, "projected.means2d", torch.float32, (E, V, 2))
        self._check(projected.radii, "projected.radii", torch.int32, (E, V, 2))
        self._check(projected.depths, "projected.depths", torch.float32, (E, V))
        counts = torch.zeros(E, V, dtype=torch.int32, device=dev)
        grid = dict(E=E, V=V, tile_px=cfg.tile_px, tiles_x=tiles_x, tiles_y=tiles_y, shared_depth=0)
        if E * V:
            self.rt.launch("bin", "bin_count_kernel", dev, _blocks(E * V), (THREADS,), fill(
                GsBinParams, means2d=projected.means2d, radii=projected.radii, depths=projected.depths,
                counts=counts, offsets=0, keys=0, ids=0, ranges=0, n_isect=0, **grid))
        means2d, radii, depths, emit_counts = projected.means2d, projected.radii, projected.depths, counts
        depth_order = None
        if views.shared_depth and E > 1:
            # One depth sort for every view; the emit kernel then walks the Gaussians in that order
            # and the keys only need a stable partition by tile (a radix sort of the tile bits).
            depth_order = torch.argsort(projected.depths[0], stable=True)
            means2d = means2d[:, depth_order].contiguous()
            radii = radii[:, depth_order].contiguous()
            depths = depths[:, depth_order].contiguous()
            emit_counts = counts[:, depth_order]
        ends = torch.cumsum(emit_counts.reshape(-1).to(torch.int64), 0)
        offsets = (ends - emit_counts.reshape(-1)).contiguous()
        n_isect = int(ends[-1]) if ends.numel() else 0  # one host sync: the key buffer's size
        check_intersections(n_isect, cfg, BYTES_PER_INTERSECTION, self.rt.name, dev)
        keys = torch.empty(n_isect, dtype=torch.int64, device=dev)
        flat_ids = torch.empty(n_isect, dtype=torch.int32, device=dev)
        ranges = torch.empty(n_tiles, 2, dtype=torch.int32, device=dev)  # every tile is written
        if n_isect:
            self.rt.launch("bin", "bin_emit_kernel", dev, _blocks(E * V), (THREADS,), fill(
                GsBinParams, means2d=means2d, radii=radii, depths=depths, counts=0, offsets=offsets, keys=keys,
                ids=flat_ids, ranges=0, n_isect=n_isect, **grid))
            # Emission is in (view, Gaussian) order (or shared depth order) and the sorts are
            # stable, so depth ties are broken as in the reference.
            if depth_order is not None:
                _, order = torch.sort(keys >> 32, stable=True)
                keys = keys[order]
            else:
                keys, order = torch.sort(keys, stable=True)
            flat_ids = flat_ids[order]
        keys = keys.contiguous()
        if n_tiles:
            self.rt.launch("bin", "tile_ranges_kernel", dev, _blocks(n_tiles), (THREADS,), fill(
                GsBinParams, means2d=0, radii=0, depths=0, counts=0, offsets=0, keys=keys, ids=0, ranges=ranges,
                n_isect=n_isect, **grid))
        gaussian_ids = flat_ids.to(torch.int64) % max(V, 1)
        if depth_order is not None:
            gaussian_ids = depth_order[gaussian_ids]
        return TileBins(
            isect_keys=keys,
            gaussian_ids=gaussian_ids.to(torch.int32).contiguous(),
            tile_ranges=ranges.reshape(E, tiles_x * tiles_y, 2),
            tiles_per_gaussian=counts,
            tile_px=cfg.tile_px,
            tiles_x=tiles_x,
            tiles_y=tiles_y,
        )

    def rasterize(self, visible: Visible, shaded: Shaded, projected: Projected, bins: TileBins, views: ViewBatch,
                  cfg: RasterConfig) -> Images:
        E, V = projected.depths.shape
        dev = projected.depths.device
        H, W = views.height, views.width
        self._check(projected.means2d, "projected.means2d", torch.float32, (E, V, 2))
        self._check(projected.conics, "projected.conics", torch.float32, (E, V, 3))
        self._check(projected.depths, "projected.depths", torch.float32, (E, V))
        self._check(shaded.colors, "shaded.colors", torch.float32, (E, V, 3))
        self._check(visible.opacities, "visible.opacities", torch.float32, (V,))
        self._check(bins.gaussian_ids, "bins.gaussian_ids", torch.int32)
        self._check(bins.tile_ranges, "bins.tile_ranges", torch.int32, (E, bins.tiles_x * bins.tiles_y, 2))
        background = torch.tensor(cfg.background, dtype=torch.float32, device=dev)
        rgb = torch.empty(E, H, W, 3, device=dev)
        alpha = torch.empty(E, H, W, device=dev)
        depth = torch.empty(E, H, W, device=dev)
        median = torch.empty(E, H, W, device=dev)
        ts = bins.tile_px
        mask = bins.pixel_mask
        if mask is not None:
            mask = self._check(mask.to(torch.uint8).contiguous(), "bins.pixel_mask", torch.uint8, (E, H, W))
        if E * H * W:
            self.rt.launch("rasterize", "rasterize_kernel", dev, (bins.tiles_x, bins.tiles_y, E), (ts, ts), fill(
                GsRasterParams, means2d=projected.means2d, conics=projected.conics, opacities=visible.opacities,
                colors=shaded.colors, depths=projected.depths, gaussian_ids=bins.gaussian_ids,
                ranges=bins.tile_ranges, background=background, out_rgb=rgb, out_alpha=alpha, out_depth=depth,
                out_median_depth=median, pixel_mask=0 if mask is None else mask, E=E, V=V, tile_px=ts, tiles_x=bins.tiles_x, tiles_y=bins.tiles_y,
                width=W, height=H,
                alpha_max=cfg.alpha_max, alpha_min=cfg.alpha_min, t_min=cfg.transmittance_min),
                shared_mem=ts * ts * SPLAT_FLOATS * 4)
        return Images(rgb=rgb, alpha=alpha, depth=depth, median_depth=median)

    def reproject(self, rgb: torch.Tensor, alpha: torch.Tensor, median_depth: torch.Tensor, src_view: torch.Tensor,
                  src_K: torch.Tensor, dst_view: torch.Tensor, dst_K: torch.Tensor, height: int, width: int,
                  depth_tolerance: float = DEPTH_TOLERANCE) -> Reprojected:
        """gscache.stages.reproject.reproject as three kernels (splat, fill, sample; common.cuh's
        float64 steps), one thread per pixel."""
        fields = reproject_fields(rgb, alpha, median_depth, src_view, src_K, dst_view, dst_K, height, width,
                                  depth_tolerance)
        dev = median_depth.device
        params = fill(GsReprojectParams, **fields)
        n_src, n_dst = median_depth.numel(), height * width
        for kernel, n in (("reproject_splat_kernel", n_src), ("reproject_fill_kernel", n_dst),
                          ("reproject_sample_kernel", n_dst)):
            if n:
                self.rt.launch("reproject", kernel, dev, _blocks(n), (THREADS,), params)
        return reprojected(fields)

    def tile_stats(self, warped: Reprojected, grid) -> torch.Tensor:
        """gscache.stages.reuse.tile_stats: common.cuh's gs_tile_stats, one thread per tile."""
        fields = tile_stats_fields(warped, grid)
        if grid.count:
            self.rt.launch("reuse", "tile_stats_kernel", warped.rgb.device, _blocks(grid.count), (THREADS,),
                           fill(GsTileStatsParams, **fields))
        return fields["stats"].reshape(grid.tiles_y, grid.tiles_x, -1)

    def reuse_composite(self, warped: Reprojected, reused: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
                        depth: torch.Tensor, median: torch.Tensor, grid) -> torch.Tensor:
        """gscache.stages.reuse.reuse_composite: common.cuh's gs_reuse_composite, one thread per tile."""
        fields = composite_fields(warped, reused, rgb, alpha, depth, median, grid)
        if grid.count:
            self.rt.launch("reuse", "reuse_composite_kernel", warped.rgb.device, _blocks(grid.count), (THREADS,),
                           fill(GsReuseCompositeParams, **fields))
        return fields["truth"].reshape(grid.tiles_y, grid.tiles_x, 2)

    def fovea_composite(self, fovea: Images, periphery: Images, layout: FoveaLayout) -> Images:
        """gscache.stages.foveate.composite: common.cuh's gs_fovea_composite, one thread per pixel."""
        fields = fovea_composite_fields(fovea, periphery, layout)
        n = fovea.alpha.numel()
        if n:
            self.rt.launch("foveate", "fovea_composite_kernel", fovea.alpha.device, _blocks(n), (THREADS,),
                           fill(GsFoveaCompositeParams, **fields))
        return composited(fields, fovea, periphery)

    def derive(self, scene: StructuredScene, ids: torch.Tensor, position: torch.Tensor,
               appearance_index: int | None) -> Scene:
        """The fused derivation (wrapped by _mlp.with_reference_fallback): one thread per
        anchor with the MLP weights in shared memory (global memory when they exceed 48 KiB);
        opacities and counts, a prefix sum, then the kept Gaussians written at their rows."""
        dev = scene.device
        packed = packed_mlps(scene.mlps, dev, appearance_index)
        for name in ("anchors", "offsets", "features", "scales", "levels"):
            self._check(getattr(scene, name), f"scene.{name}", torch.float32)
        ids = self._check(ids.contiguous(), "ids", torch.int64)
        viewpoint = self._check(position.float().contiguous(), "position", torch.float32, (3,))
        n, k, F = ids.numel(), scene.n_offsets, scene.features.shape[1]
        n_weights = packed.weights.numel()
        use_shared = n_weights * 4 <= SHARED_MEM_LIMIT
        shared = n_weights * 4 if use_shared else 0
        opac = torch.empty(n, k, device=dev)
        counts = torch.zeros(n, dtype=torch.int32, device=dev)
        inputs = dict(ids=ids, anchors=scene.anchors, features=scene.features, levels=scene.levels,
                      offsets=scene.offsets, scales=scene.scales, viewpoint=viewpoint, layers=packed.layers,
                      mlps=packed.mlps, weights=packed.weights, opac=opac, counts=counts, n=n, F=F, k=k,
                      add_level=int(scene.mlps.add_level), n_weights=n_weights, use_shared=int(use_shared))
        if n:
            self.rt.launch("derive", "derive_count_kernel", dev, _blocks(n), (THREADS,), fill(
                GsDeriveParams, **inputs, starts=0, means=0, quats=0, out_scales=0, opacities=0, sh=0),
                shared_mem=shared)
        ends = torch.cumsum(counts, 0, dtype=torch.int64)
        M = int(ends[-1]) if n else 0  # one host sync: the output's size
        starts = (ends - counts).contiguous()
        means, quats, scales = (torch.empty(M, c, device=dev) for c in (3, 4, 3))
        opacities, sh = torch.empty(M, device=dev), torch.empty(M, 1, 3, device=dev)
        if M:
            self.rt.launch("derive", "derive_emit_kernel", dev, _blocks(n), (THREADS,), fill(
                GsDeriveParams, **inputs, starts=starts, means=means, quats=quats, out_scales=scales,
                opacities=opacities, sh=sh), shared_mem=shared)
        return Scene(means, quats, scales, opacities, sh, version=scene.version, source=f"derived from {scene.source}")


def backend_on(runtime: KernelRuntime) -> Backend:
    """The cuda kernels as a backend on ``runtime``."""
    k = CudaKernels(runtime)
    return Backend(runtime.name, cull, k.shade, k.project, k.bin_tiles, k.rasterize, BYTES_PER_INTERSECTION,
                   device_types=(runtime.device_type,), derive=with_reference_fallback(k.derive),
                   reproject=k.reproject, tile_stats=k.tile_stats, reuse_composite=k.reuse_composite,
                   fovea_composite=k.fovea_composite, scale_projection=k.scale_projection)


def make_backend() -> Backend:
    """The cuda backend, or BackendUnavailable with the reason (no CuPy, no GPU)."""
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"CuPy is not installed ({exc.msg})") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("torch sees no CUDA device")
    return backend_on(CupyRuntime())
