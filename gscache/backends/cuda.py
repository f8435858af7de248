"""The cuda backend: the kernels of cuda/ compiled at run time by CuPy (NVRTC), launched on
torch's current CUDA stream, with tensors exchanged through DLPack (no copies). Culling is the
torch reference's (cheap and memory-bound); the exclusive prefix sum and the stable radix sort
of the keys are torch's (CUB underneath). Structured scenes derive with the fused kernels of
derive.cu."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..camera import ViewBatch
from ..config import BinConfig, ProjectConfig, RasterConfig, ShadeConfig
from ..records import Images, Projected, Shaded, TileBins, Visible
from ..scene.record import Scene
from ..scene.structured import StructuredScene
from ..sh import sh_degree_of
from ..stages import cull
from ..stages.bin import tile_grid
from . import Backend, BackendUnavailable
from ._boundary import check, gs_views
from ._loader import cuda_module
from ._mlp import packed_mlps

THREADS = 256
SPLAT_FLOATS = 10  # floats per splat in rasterize_kernel's shared-memory batch


def _cupy():
    import cupy

    return cupy


def _kernel(file: str, name: str, device: torch.device):
    return cuda_module(file, device.index if device.index is not None else torch.cuda.current_device()).get_function(name)


def _arr(t: torch.Tensor):
    """A CuPy view of a CUDA tensor (DLPack, no copy)."""
    return _cupy().from_dlpack(t.detach())


@contextlib.contextmanager
def _on_torch_stream(device: torch.device):
    """Make torch's current stream CuPy's current stream, so kernels queue behind torch's work."""
    cp = _cupy()
    stream = torch.cuda.current_stream(device)
    with cp.cuda.Device(stream.device_index), cp.cuda.ExternalStream(stream.cuda_stream, stream.device_index):
        yield


def _launch(file: str, name: str, device: torch.device, grid, block, args, shared_mem: int = 0) -> None:
    kernel = _kernel(file, name, device)
    converted = tuple(_arr(a) if isinstance(a, torch.Tensor) else a for a in args)
    with _on_torch_stream(device):
        kernel(grid, block, converted, shared_mem=shared_mem)


def _blocks(n: int) -> tuple[int]:
    return (max(1, -(-n // THREADS)),)


def _views_tensor(views: ViewBatch, device: torch.device) -> torch.Tensor:
    """The GsView structs of the views as bytes on the device (E * 84 bytes copied per frame)."""
    host = gs_views(views)
    raw = np.frombuffer(bytes(host), dtype=np.uint8).copy()
    return torch.from_numpy(raw).to(device)


def shade(visible: Visible, views: ViewBatch, cfg: ShadeConfig) -> Shaded:
    dev = visible.means.device
    V, K, E = visible.count, visible.sh.shape[1], views.n_views
    degree = sh_degree_of(K) if cfg.sh_degree is None else min(sh_degree_of(K), cfg.sh_degree)
    for name in ("means", "quats", "scales", "sh"):
        check(getattr(visible, name), f"visible.{name}", torch.float32, "cuda")
    positions = check(views.positions.contiguous(), "views.positions", torch.float32, "cuda", (E, 3))
    covars = torch.empty(V, 6, device=dev)
    colors = torch.empty(E, V, 3, device=dev)
    if V:
        _launch("shade", "shade_kernel", dev, _blocks(V), (THREADS,),
                (np.int32(E), np.int32(V), np.int32(K), np.int32(degree), visible.means, visible.quats,
                 visible.scales, visible.sh, positions, covars, colors))
    return Shaded(covars=covars, colors=colors)


def project(visible: Visible, shaded: Shaded, views: ViewBatch, cfg: ProjectConfig) -> Projected:
    dev = visible.means.device
    V, E = visible.count, views.n_views
    check(visible.means, "visible.means", torch.float32, "cuda", (V, 3))
    check(shaded.covars, "shaded.covars", torch.float32, "cuda", (V, 6))
    means2d = torch.empty(E, V, 2, device=dev)
    conics = torch.empty(E, V, 3, device=dev)
    depths = torch.empty(E, V, device=dev)
    radii = torch.empty(E, V, 2, dtype=torch.int32, device=dev)
    if V:
        _launch("project", "project_kernel", dev, _blocks(E * V), (THREADS,),
                (np.int32(E), np.int32(V), visible.means, shaded.covars, _views_tensor(views, dev),
                 np.float32(cfg.eps2d), np.float32(cfg.extent_sigma), means2d, conics, depths, radii))
    return Projected(means2d=means2d, conics=conics, depths=depths, radii=radii)


def bin_tiles(projected: Projected, views: ViewBatch, cfg: BinConfig, shared_depth: bool = False) -> TileBins:
    E, V = projected.depths.shape
    dev = projected.depths.device
    tiles_x, tiles_y = tile_grid(views, cfg)
    n_tiles = E * tiles_x * tiles_y
    check(projected.means2d, "projected.means2d", torch.float32, "cuda", (E, V, 2))
    check(projected.radii, "projected.radii", torch.int32, "cuda", (E, V, 2))
    check(projected.depths, "projected.depths", torch.float32, "cuda", (E, V))
    counts = torch.zeros(E, V, dtype=torch.int32, device=dev)
    if E * V:
        _launch("bin", "bin_count_kernel", dev, _blocks(E * V), (THREADS,),
                (np.int64(E * V), projected.means2d, projected.radii, np.int32(cfg.tile_px), np.int32(tiles_x),
                 np.int32(tiles_y), counts))
    means2d, radii, depths, emit_counts = projected.means2d, projected.radii, projected.depths, counts
    depth_order = None
    if shared_depth and E > 1:
        # One depth sort for every view; the emit kernel then walks the Gaussians in that order and
        # the keys only need a stable partition by tile (a radix sort of the tile bits).
        depth_order = torch.argsort(projected.depths[0], stable=True)
        means2d = means2d[:, depth_order].contiguous()
        radii = radii[:, depth_order].contiguous()
        depths = depths[:, depth_order].contiguous()
        emit_counts = counts[:, depth_order]
    ends = torch.cumsum(emit_counts.reshape(-1).to(torch.int64), 0)
    offsets = (ends - emit_counts.reshape(-1)).contiguous()
    n_isect = int(ends[-1]) if ends.numel() else 0  # one host sync: the key buffer's size
    keys = torch.empty(n_isect, dtype=torch.int64, device=dev)
    flat_ids = torch.empty(n_isect, dtype=torch.int32, device=dev)
    ranges = torch.zeros(n_tiles, 2, dtype=torch.int32, device=dev)
    if n_isect:
        _launch("bin", "bin_emit_kernel", dev, _blocks(E * V), (THREADS,),
                (np.int32(E), np.int32(V), means2d, radii, depths, offsets,
                 np.int32(cfg.tile_px), np.int32(tiles_x), np.int32(tiles_y), keys, flat_ids))
        # Emission is in (view, Gaussian) order (or shared depth order) and the sorts are stable,
        # so depth ties are broken as in the reference.
        if depth_order is not None:
            _, order = torch.sort(keys >> 32, stable=True)
            keys = keys[order]
        else:
            keys, order = torch.sort(keys, stable=True)
        flat_ids = flat_ids[order]
        _launch("bin", "tile_ranges_kernel", dev, _blocks(n_isect), (THREADS,), (np.int64(n_isect), keys, ranges))
    gaussian_ids = flat_ids.to(torch.int64) % max(V, 1)
    if depth_order is not None:
        gaussian_ids = depth_order[gaussian_ids]
    return TileBins(
        isect_keys=keys.contiguous(),
        gaussian_ids=gaussian_ids.to(torch.int32).contiguous(),
        tile_ranges=ranges.reshape(E, tiles_x * tiles_y, 2),
        tiles_per_gaussian=counts,
        tile_px=cfg.tile_px,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
    )


def rasterize(visible: Visible, shaded: Shaded, projected: Projected, bins: TileBins, views: ViewBatch,
              cfg: RasterConfig) -> Images:
    E, V = projected.depths.shape
    dev = projected.depths.device
    H, W = views.height, views.width
    check(projected.conics, "projected.conics", torch.float32, "cuda", (E, V, 3))
    check(shaded.colors, "shaded.colors", torch.float32, "cuda", (E, V, 3))
    check(visible.opacities, "visible.opacities", torch.float32, "cuda", (V,))
    check(bins.gaussian_ids, "bins.gaussian_ids", torch.int32, "cuda")
    check(bins.tile_ranges, "bins.tile_ranges", torch.int32, "cuda")
    background = torch.tensor(cfg.background, dtype=torch.float32, device=dev)
    rgb = torch.empty(E, H, W, 3, device=dev)
    alpha = torch.empty(E, H, W, device=dev)
    depth = torch.empty(E, H, W, device=dev)
    ts = bins.tile_px
    _launch("rasterize", "rasterize_kernel", dev, (bins.tiles_x, bins.tiles_y, E), (ts, ts),
            (np.int32(E), np.int32(V), projected.means2d, projected.conics, visible.opacities, shaded.colors,
             projected.depths, bins.gaussian_ids, bins.tile_ranges, np.int32(bins.tiles_x), np.int32(bins.tiles_y),
             np.int32(W), np.int32(H), np.float32(cfg.alpha_max), np.float32(cfg.alpha_min),
             np.float32(cfg.transmittance_min), background, rgb, alpha, depth),
            shared_mem=ts * ts * SPLAT_FLOATS * 4)
    return Images(rgb=rgb, alpha=alpha, depth=depth)


SHARED_MEM_LIMIT = 48 * 1024  # bytes of dynamic shared memory a launch may ask for without opting in


def derive(scene: StructuredScene, ids: torch.Tensor, position: torch.Tensor) -> Scene:
    """The fused derivation (signature of gscache.stages.derive.derive_anchors): one thread per
    anchor with the MLP weights in shared memory; opacities and counts, a prefix sum, then the
    kept Gaussians written at their rows."""
    dev = scene.device
    packed = packed_mlps(scene.mlps, dev)
    for name in ("anchors", "offsets", "features", "scales", "levels"):
        check(getattr(scene, name), f"scene.{name}", torch.float32, "cuda")
    ids = check(ids.contiguous(), "ids", torch.int64, "cuda")
    viewpoint = check(position.float().contiguous(), "position", torch.float32, "cuda", (3,))
    n, k, F = ids.numel(), scene.n_offsets, scene.features.shape[1]
    n_weights = packed.weights.numel()
    use_shared = n_weights * 4 <= SHARED_MEM_LIMIT
    weight_args = (packed.layers, packed.mlps, packed.weights, np.int32(n_weights), np.int32(use_shared))
    shared = n_weights * 4 if use_shared else 0
    common = (np.int32(F), np.int32(k), viewpoint, np.int32(scene.mlps.add_level), *weight_args)
    opac = torch.empty(n, k, device=dev)
    counts = torch.zeros(n, dtype=torch.int32, device=dev)
    if n:
        _launch("derive", "derive_count_kernel", dev, _blocks(n), (THREADS,),
                (np.int64(n), ids, scene.anchors, scene.features, scene.levels, *common, opac, counts),
                shared_mem=shared)
    ends = torch.cumsum(counts, 0, dtype=torch.int64)
    M = int(ends[-1]) if n else 0  # one host sync: the output's size
    starts = (ends - counts).contiguous()
    means, quats, scales = (torch.empty(M, c, device=dev) for c in (3, 4, 3))
    opacities, sh = torch.empty(M, device=dev), torch.empty(M, 1, 3, device=dev)
    if M:
        _launch("derive", "derive_emit_kernel", dev, _blocks(n), (THREADS,),
                (np.int64(n), ids, scene.anchors, scene.offsets, scene.features, scene.scales, scene.levels, *common,
                 opac, counts, starts, means, quats, scales, opacities, sh), shared_mem=shared)
    return Scene(means, quats, scales, opacities, sh, version=scene.version, source=f"derived from {scene.source}")


def make_backend() -> Backend:
    """The cuda backend, or BackendUnavailable with the reason (no CuPy, no GPU)."""
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"CuPy is not installed ({exc.msg})") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("torch sees no CUDA device")
    return Backend("cuda", cull, shade, project, bin_tiles, rasterize, device_types=("cuda",), derive=derive)
