"""The boundary work of the reprojection and pixel-reuse kernels (cpu and cuda alike): the same
checks as the reference, the transforms and intrinsics in float64, the scratch and output
buffers, and the fields of ``GsReprojectParams``, ``GsTileStatsParams`` and
``GsReuseCompositeParams`` (cuda/common.cuh) that hold them."""

from __future__ import annotations

import torch
from torch import Tensor

from ..records import Reprojected
from ..stages.reproject import camera_transforms, check_inputs
from ._boundary import check

EMPTY = 0x7FF0000000000000  # GS_REPROJECT_EMPTY: the bits of +inf, no depth yet


def reproject_fields(rgb: Tensor, alpha: Tensor, median_depth: Tensor, src_view: Tensor, src_K: Tensor,
                     dst_view: Tensor, dst_K: Tensor, height: int, width: int, depth_tolerance: float) -> dict:
    """Every field of GsReprojectParams as tensors on the images' device (the buffers must stay
    alive until the kernels are done: the caller keeps the dict) and numbers."""
    check_inputs(median_depth, depth_tolerance)
    device = median_depth.device
    Hs, Ws = median_depth.shape
    check(rgb, "rgb", torch.float32, device.type, (Hs, Ws, 3))
    check(alpha, "alpha", torch.float32, device.type, (Hs, Ws))
    check(median_depth, "median_depth", torch.float32, device.type, (Hs, Ws))
    T_dst_src, T_src_dst = camera_transforms(src_view.cpu(), dst_view.cpu())

    def intrinsics(K: Tensor) -> Tensor:
        K = K.detach().cpu().double()
        return torch.stack([K[0, 0], K[1, 1], K[0, 2], K[1, 2]]).to(device)

    n = height * width
    return dict(rgb=rgb, alpha=alpha, median=median_depth, dst_from_src=T_dst_src[:3].contiguous().to(device),
                src_from_dst=T_src_dst[:3].contiguous().to(device), src_K=intrinsics(src_K), dst_K=intrinsics(dst_K),
                zbuf=torch.full((n,), EMPTY, dtype=torch.int64, device=device),
                zfill=torch.empty(n, dtype=torch.float64, device=device),
                out_rgb=torch.empty(height, width, 3, device=device), out_alpha=torch.empty(height, width, device=device),
                out_depth=torch.empty(height, width, device=device),
                out_valid=torch.empty(height, width, dtype=torch.uint8, device=device),
                src_width=Ws, src_height=Hs, width=width, height=height, depth_tolerance=float(depth_tolerance))


def reprojected(fields: dict) -> Reprojected:
    """The record of the outputs the kernels wrote into ``fields``."""
    return Reprojected(rgb=fields["out_rgb"], alpha=fields["out_alpha"], depth=fields["out_depth"],
                       valid=fields["out_valid"].bool())


def tile_stats_fields(warped: Reprojected, grid) -> dict:
    """The fields of GsTileStatsParams for ``warped`` (checked) and its output buffer."""
    device = warped.rgb.device
    H, W = grid.height, grid.width
    check(warped.rgb, "warped.rgb", torch.float32, device.type, (H, W, 3))
    check(warped.alpha, "warped.alpha", torch.float32, device.type, (H, W))
    check(warped.depth, "warped.depth", torch.float32, device.type, (H, W))
    valid = check(warped.valid.to(torch.uint8).contiguous(), "warped.valid", torch.uint8, device.type, (H, W))
    return dict(rgb=warped.rgb, alpha=warped.alpha, depth=warped.depth, valid=valid,
                stats=torch.empty(grid.count, 8, device=device), width=W, height=H, tile_px=grid.tile_px,
                tiles_x=grid.tiles_x, tiles_y=grid.tiles_y)


def composite_fields(warped: Reprojected, reused: Tensor, rgb: Tensor, alpha: Tensor, depth: Tensor, median: Tensor,
                     grid) -> dict:
    """The fields of GsReuseCompositeParams (checked; the view's images are written in place)."""
    fields = tile_stats_fields(warped, grid)
    device = warped.rgb.device
    H, W = grid.height, grid.width
    check(rgb, "rgb", torch.float32, device.type, (H, W, 3))
    for name, t in (("alpha", alpha), ("depth", depth), ("median", median)):
        check(t, name, torch.float32, device.type, (H, W))
    flags = check(reused.to(torch.uint8).reshape(-1).contiguous(), "reused", torch.uint8, device.type, (grid.count,))
    return dict(w_rgb=warped.rgb, w_alpha=warped.alpha, w_depth=warped.depth, valid=fields["valid"], reused=flags,
                rgb=rgb, alpha=alpha, depth=depth, median=median, truth=torch.empty(grid.count, 2, device=device),
                width=W, height=H, tile_px=grid.tile_px, tiles_x=grid.tiles_x, tiles_y=grid.tiles_y)
