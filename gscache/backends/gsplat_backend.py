"""The gsplat backend: gsplat's CUDA kernels as our five stages, both eyes in one batched call
per stage (viewmats [E, 4, 4]). It is the baseline users would otherwise pick, and a second
oracle for the cuda backend.

gsplat follows slightly different constants than gscache's reference (3.33-sigma radii instead of
3, so more tile intersections; alpha clamped at 0.999 instead of 0.99), so its images differ
from the reference by a small, stated amount (tests/backends) rather than by float rounding.
"""

from __future__ import annotations

import torch

from ..camera import ViewBatch
from ..config import BinConfig, ProjectConfig, RasterConfig, ShadeConfig
from ..records import DEPTH_BITS_MASK, TILE_KEY_SHIFT, Images, Projected, Shaded, TileBins, Visible
from ..sh import sh_degree_of
from ..stages import cull
from ..stages.bin import check_intersections, tile_grid, tile_rects
from .table import Backend, BackendUnavailable

BYTES_PER_INTERSECTION = 64
"""Peak bytes per intersection: gsplat's isect_tiles keys (int64) and flatten ids (int32), sorted
by CUB radix sort into second buffers, then this adapter's int64 image, tile and key temporaries
(and rasterize's int64 eye / flatten-id temporaries). An estimate from the code; scripts/gpu_check.sh
measures it on a GPU."""

def _gs():
    from gsplat.cuda import _wrapper

    return _wrapper


def shade(visible: Visible, views: ViewBatch, cfg: ShadeConfig) -> Shaded:
    gs = _gs()
    K = visible.sh.shape[1]
    degree = sh_degree_of(K) if cfg.sh_degree is None else min(sh_degree_of(K), cfg.sh_degree)
    covars, _ = gs.quat_scale_to_covar_preci(visible.quats, visible.scales, compute_preci=False, triu=True)
    dirs = visible.means[None, :, :] - views.positions[:, None, :]  # [E, V, 3]
    coeffs = visible.sh[None].expand(views.n_views, -1, -1, -1)  # [E, V, K, 3]
    colors = gs.spherical_harmonics(degree, dirs, coeffs)
    return Shaded(covars=covars.contiguous(), colors=torch.clamp_min(colors + 0.5, 0.0).contiguous())


def project(visible: Visible, shaded: Shaded, views: ViewBatch, cfg: ProjectConfig) -> Projected:
    radii, means2d, depths, conics, _ = _gs().fully_fused_projection(
        visible.means, shaded.covars, None, None, views.viewmats, views.Ks, views.width, views.height,
        eps2d=cfg.eps2d, near_plane=views.near_m, far_plane=views.far_m,
    )
    return Projected(means2d=means2d.contiguous(), conics=conics.contiguous(), depths=depths.contiguous(),
                     radii=radii.to(torch.int32).contiguous())


def _tile_counts(projected: Projected, cfg: BinConfig, tiles_x: int, tiles_y: int) -> torch.Tensor:
    lo, hi = tile_rects(projected.means2d, projected.radii, cfg.tile_px, tiles_x, tiles_y)
    size = (hi - lo).prod(dim=-1)
    return torch.where((projected.radii > 0).all(dim=-1), size, torch.zeros_like(size))


def bin_tiles(projected: Projected, views: ViewBatch, cfg: BinConfig) -> TileBins:
    # gsplat sorts (image, tile, depth) keys itself; a shared depth order cannot be handed to it.
    gs = _gs()
    E, V = projected.depths.shape
    tiles_x, tiles_y = tile_grid(views, cfg)
    T = tiles_x * tiles_y
    # gsplat counts and allocates in one call: the budget is checked on the rectangles first.
    check_intersections(int(_tile_counts(projected, cfg, tiles_x, tiles_y).sum()), cfg, BYTES_PER_INTERSECTION, "gsplat",
                        projected.depths.device)
    tiles_per_gauss, isect_ids, flatten_ids = gs.isect_tiles(
        projected.means2d, projected.radii, projected.depths, cfg.tile_px, tiles_x, tiles_y
    )
    # gsplat's key: image << (tile_bits + 32) | tile << 32 | depth; ours: (image * T + tile) << 32 | depth.
    tile_bits = T.bit_length()
    image = isect_ids >> (tile_bits + 32)
    tile = (isect_ids >> 32) & ((1 << tile_bits) - 1)
    keys = ((image * T + tile) << TILE_KEY_SHIFT) | (isect_ids & DEPTH_BITS_MASK)
    offsets = gs.isect_offset_encode(isect_ids, E, tiles_x, tiles_y).reshape(-1).to(torch.int64)  # [E*T]
    ends = torch.cat([offsets[1:], offsets.new_tensor([isect_ids.shape[0]])])
    ranges = torch.stack([offsets, ends], dim=-1).to(torch.int32).reshape(E, T, 2)
    return TileBins(
        isect_keys=keys.contiguous(),
        gaussian_ids=(flatten_ids % max(V, 1)).to(torch.int32).contiguous(),
        tile_ranges=ranges.contiguous(),
        tiles_per_gaussian=tiles_per_gauss.to(torch.int32).contiguous(),
        tile_px=cfg.tile_px,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
    )


def rasterize(visible: Visible, shaded: Shaded, projected: Projected, bins: TileBins, views: ViewBatch,
              cfg: RasterConfig) -> Images:
    E, V = projected.depths.shape
    T = bins.tiles_x * bins.tiles_y
    # gsplat indexes the flattened [E * V] arrays; the eye of an intersection is its tile's view.
    eye = (bins.isect_keys >> TILE_KEY_SHIFT) // T
    flatten_ids = (eye * V + bins.gaussian_ids.to(torch.int64)).to(torch.int32)
    offsets = bins.tile_ranges[..., 0].reshape(E, bins.tiles_y, bins.tiles_x).contiguous()
    features = torch.cat([shaded.colors, projected.depths[..., None]], dim=-1)  # [E, V, 4]: rgb, depth
    opacities = visible.opacities[None].expand(E, -1).contiguous()
    rendered, alphas = _gs().rasterize_to_pixels(
        projected.means2d, projected.conics, features, opacities, views.width, views.height, bins.tile_px,
        offsets, flatten_ids,
    )
    alpha = alphas[..., 0]
    bg = torch.tensor(cfg.background, device=alpha.device, dtype=torch.float32)
    rgb = rendered[..., :3] + (1.0 - alpha)[..., None] * bg
    depth = torch.where(alpha > 0, rendered[..., 3] / alpha.clamp(min=1e-12), 0.0)
    return Images(rgb=rgb.contiguous(), alpha=alpha.contiguous(), depth=depth.contiguous())


def make_backend() -> Backend:
    """The gsplat backend, or BackendUnavailable with the reason (no gsplat, no GPU)."""
    try:
        import gsplat  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"gsplat is not installed ({exc.msg})") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("gsplat's kernels need a CUDA device, and torch sees none")
    return Backend("gsplat", cull, shade, project, bin_tiles, rasterize, BYTES_PER_INTERSECTION, device_types=("cuda",))
