"""Bin: list, for every tile of every view, the Gaussians that touch it, front to back.

A Gaussian with centre m and radii r touches the tiles ``floor(m/ts - r/ts) <= t < ceil(m/ts +
r/ts)`` per axis, clamped to the image (the rectangle of gsplat's ``isect_tiles``). Each
(Gaussian, tile) pair gets a 64-bit key (layout in ``gscache.records``); one stable sort by key
orders the pairs by view, tile and depth, and the tile ranges are the runs of equal tile ids.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..camera import ViewBatch
from ..config import BinConfig
from ..errors import GscacheError
from ..records import DEPTH_BITS_MASK, TILE_KEY_SHIFT, Projected, TileBins
from ..resources import available_bytes


def tile_grid(views: ViewBatch, cfg: BinConfig) -> tuple[int, int]:
    """(tiles_x, tiles_y) covering the image (``views``: anything with width and height, e.g. a
    ViewBatch or a StereoRig)."""
    return math.ceil(views.width / cfg.tile_px), math.ceil(views.height / cfg.tile_px)


def tile_rects(means2d: Tensor, radii: Tensor, tile_px: int, tiles_x: int, tiles_y: int) -> tuple[Tensor, Tensor]:
    """Half-open tile rectangles [min, max) per Gaussian: [..., 2] each, int64, clamped to the grid."""
    tm = means2d / tile_px
    tr = radii.to(means2d.dtype) / tile_px
    lo = torch.floor(tm - tr).to(torch.int64)
    hi = torch.ceil(tm + tr).to(torch.int64)
    limit = torch.tensor([tiles_x, tiles_y], device=means2d.device)
    lo = torch.minimum(lo.clamp(min=0), limit)
    hi = torch.minimum(hi.clamp(min=0), limit)
    return lo, hi


BYTES_PER_INTERSECTION = 100
"""Peak bytes the torch reference holds per (Gaussian, tile) pair while it expands, keys and
sorts them: int64 source, offset, tile, key and order arrays and their temporaries (measured with
``scripts/isect_memory.py``: see the README's table)."""


MAX_INTERSECTIONS = 2**31 - 1
"""TileBins.tile_ranges are int32 (records.py): no frame may have more, whatever memory it has."""


def check_intersections(n: int, cfg: BinConfig, bytes_per_intersection: int, backend: str,
                        device: torch.device) -> None:
    """Refuse a frame whose tile intersections would take more memory than the budget or than
    ``device`` has free, or more than int32 tile ranges index (every backend calls this between
    counting and allocating, with its own bytes per intersection): a clear error, never an
    out-of-memory kill or an overflow."""
    if n > MAX_INTERSECTIONS:
        raise GscacheError(f"bin: this frame has {n:,} tile intersections, more than the {MAX_INTERSECTIONS:,} that "
                           f"TileBins' int32 tile ranges can index: lower the resolution or cull the scene")
    need = n * bytes_per_intersection
    what = (f"bin: this frame has {n:,} tile intersections, about {need / 2**30:.2f} GiB in the {backend} backend "
            f"({bytes_per_intersection} bytes each)")
    advice = "lower the resolution, cull the scene, or use a backend that holds less per intersection"
    budget = cfg.memory_budget_bytes
    if budget is not None and need > budget:
        raise GscacheError(f"{what}, over BinConfig.memory_budget_bytes = {budget:,} ({budget / 2**30:.2f} GiB): "
                           f"{advice}, or raise the budget if memory allows")
    free = available_bytes(device)
    if free is not None and need > free:
        raise GscacheError(f"{what}, but {device} has {free / 2**30:.2f} GiB free: {advice}")


def depth_bits(depths: Tensor) -> Tensor:
    """The float32 bit pattern of each depth as a non-negative int64 (orders like positive floats)."""
    return depths.contiguous().view(torch.int32).to(torch.int64) & DEPTH_BITS_MASK


def bin_tiles(projected: Projected, views: ViewBatch, cfg: BinConfig) -> TileBins:
    """Sorted tile intersections of all E views.

    Args:
        projected: E x V screen-space Gaussians.
        views: the views (image size; ``views.shared_depth``: every Gaussian has the same depth in
            every view, so the Gaussians are sorted by depth once, every view's intersections
            emitted in that order and partitioned by tile with a stable sort of the tile ids alone,
            what a counting sort computes, instead of sorting (tile, depth) keys; the result is
            identical).
        cfg: tile size.

    Returns:
        TileBins with I intersections.
    """
    E, V = projected.depths.shape
    tiles_x, tiles_y = tile_grid(views, cfg)
    T = tiles_x * tiles_y
    device = projected.depths.device
    lo, hi = tile_rects(projected.means2d, projected.radii, cfg.tile_px, tiles_x, tiles_y)  # [E, V, 2]
    size = hi - lo  # [E, V, 2]
    drawn = (projected.radii > 0).all(dim=-1)  # [E, V]
    counts = torch.where(drawn, size[..., 0] * size[..., 1], torch.zeros_like(size[..., 0]))  # [E, V]

    # The order in which (view, Gaussian) pairs emit their tiles: by index, or by the shared depth
    # order (a stable sort, so equal depths keep index order, as the key sort breaks its ties).
    flat_index = torch.arange(E * V, device=device).reshape(E, V)
    shared_depth = views.shared_depth
    if shared_depth and E > 1:
        depth_order = torch.argsort(projected.depths[0], stable=True)  # [V], once for all views
        flat_index = flat_index[:, depth_order]
    emit_order = flat_index.reshape(-1)  # [E*V]
    check_intersections(int(counts.sum()), cfg, BYTES_PER_INTERSECTION, "torch", device)
    emit_counts = counts.reshape(-1)[emit_order]
    # Expand every (view, Gaussian) into its tiles: intersection i belongs to flat index src[i].
    src = torch.repeat_interleave(emit_order, emit_counts)  # [I]
    first = torch.repeat_interleave(torch.cumsum(emit_counts, 0) - emit_counts, emit_counts)  # [I]
    local = torch.arange(src.shape[0], device=device) - first  # [I] index inside the rect
    width = size[..., 0].reshape(-1)[src]
    tx = lo[..., 0].reshape(-1)[src] + local % width.clamp(min=1)
    ty = lo[..., 1].reshape(-1)[src] + local // width.clamp(min=1)
    eye = src // V
    tile = eye * T + ty * tiles_x + tx  # [I] global tile id
    keys = (tile << TILE_KEY_SHIFT) | depth_bits(projected.depths).reshape(-1)[src]

    if shared_depth and E > 1:
        _, order = torch.sort(tile, stable=True)  # already in depth order: partition by tile only
        keys = keys[order]
    else:
        keys, order = torch.sort(keys, stable=True)
    gaussian_ids = (src[order] % V).to(torch.int32)
    per_tile = torch.bincount(tile, minlength=E * T)  # [E*T]
    ends = torch.cumsum(per_tile, 0)
    ranges = torch.stack([ends - per_tile, ends], dim=-1).reshape(E, T, 2).to(torch.int32)
    return TileBins(
        isect_keys=keys.contiguous(),
        gaussian_ids=gaussian_ids.contiguous(),
        tile_ranges=ranges.contiguous(),
        tiles_per_gaussian=counts.to(torch.int32).contiguous(),
        tile_px=cfg.tile_px,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
    )
