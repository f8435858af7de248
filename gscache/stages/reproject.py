"""Reproject: an exact rendered view, carried into another view with its median depth (the
reference of the pixel-reuse cache's warp; issue 23). Pure PyTorch, the specification the warp
kernels are tested against (the cpu backend's, gscache.backends.cpu.reproject, so far); not yet
wired into the pipeline.

A backward warp with a target depth estimate, in three steps (pixel (i, j) has its centre at
(i + 0.5, j + 0.5) in both views, as everywhere in gscache):

1. **Depth splat.** Every source pixel with a median depth (> 0) is carried to the target view
   (unprojected at its centre, transformed, projected); the target pixel that contains the point
   keeps the nearest such depth (a z-buffer: a source pixel hidden in the target loses).
2. **Crack fill.** A target pixel that received no depth but has at least two 4-neighbours that
   did takes the farthest of their depths. Magnified surfaces leave one-pixel cracks between
   their samples; the farthest, not the nearest, so that a crack at a silhouette takes the
   background's depth, which step 3 then refuses where the source saw the foreground there.
3. **Backward sample.** Each target pixel with a depth is carried back into the source view and
   sampled bilinearly (rgb, alpha and median depth at the four pixel centres around it). It is
   ``valid`` only where all four taps exist and their median depths agree with the point's own
   source depth within ``depth_tolerance`` (relative): a tap on another surface (a disocclusion, a
   silhouette) or on a pixel without a median depth (alpha < 0.5: translucent, or background)
   makes the pixel invalid, to be rasterized, never guessed.

The result is exact where the views coincide (every weight 1 at one tap); elsewhere it resamples,
so fine texture loses some contrast, and view-dependent colour is carried as the source saw it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GscacheError
from ..records import Reprojected

DEPTH_TOLERANCE = 0.01
"""Default relative disagreement between a tap's median depth and the point's own depth in the
source view above which a pixel is invalid (1%: a tap on the same surface differs by the surface's
slope across a pixel; one on another surface by far more)."""


def pixel_rays(K: Tensor, height: int, width: int) -> Tensor:
    """Camera-space directions with z = 1 through every pixel centre, [H, W, 3] float64."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64, device=K.device),
                          torch.arange(width, dtype=torch.float64, device=K.device), indexing="ij")
    K = K.double()
    return torch.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], torch.ones_like(u)], dim=-1)


def transform_points(points: Tensor, T: Tensor) -> Tensor:
    """[..., 3] points through the 4x4 ``T``, float64."""
    T = T.double()
    return points @ T[:3, :3].T + T[:3, 3]


def camera_transforms(src_view: Tensor, dst_view: Tensor) -> tuple[Tensor, Tensor]:
    """(source camera -> target camera, target camera -> source camera), [4, 4] float64, from the
    views' T_cam_world [4, 4] (what every implementation of the warp is given)."""
    src, dst = src_view.double(), dst_view.double()
    return dst @ torch.linalg.inv(src), src @ torch.linalg.inv(dst)


def check_inputs(median_depth: Tensor | None, depth_tolerance: float) -> None:
    """What every implementation refuses before it starts."""
    if median_depth is None:
        raise GscacheError("reproject: the source has no median depth (a backend that gives none, gsplat)")
    if not depth_tolerance > 0:
        raise GscacheError(f"reproject: depth_tolerance must be > 0, got {depth_tolerance!r}")


def _splat_depth(depth: Tensor, src_K: Tensor, T_dst_src: Tensor, dst_K: Tensor, height: int, width: int) -> Tensor:
    """Step 1: the nearest depth landing in each target pixel, [H', W'] float64 (inf: none)."""
    ok = depth > 0
    points = pixel_rays(src_K, *depth.shape)[ok] * depth[ok].double()[:, None]  # source camera space
    p = transform_points(points, T_dst_src)
    z = p[:, 2]
    K = dst_K.double()
    x = torch.floor(K[0, 0] * p[:, 0] / z + K[0, 2])  # the pixel containing the point
    y = torch.floor(K[1, 1] * p[:, 1] / z + K[1, 2])
    inside = (z > 0) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    flat = (y[inside] * width + x[inside]).long()
    out = torch.full((height * width,), torch.inf, dtype=torch.float64, device=depth.device)
    return out.scatter_reduce(0, flat, z[inside], "amin").reshape(height, width)


def _fill_cracks(z: Tensor) -> Tensor:
    """Step 2: empty pixels (inf) with at least two 4-neighbours that have a depth take the
    farthest of them."""
    padded = torch.nn.functional.pad(z[None, None], (1, 1, 1, 1), value=torch.inf)[0, 0]
    neighbours = torch.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    have = torch.isfinite(neighbours)
    farthest = torch.where(have, neighbours, -torch.inf).amax(dim=0)
    fill = ~torch.isfinite(z) & (have.sum(dim=0) >= 2)
    return torch.where(fill, farthest, z)


def reproject(rgb: Tensor, alpha: Tensor, median_depth: Tensor, src_view: Tensor, src_K: Tensor,
              dst_view: Tensor, dst_K: Tensor, height: int, width: int,
              depth_tolerance: float = DEPTH_TOLERANCE) -> Reprojected:
    """One rendered view carried into another (the module docstring's three steps).

    Args:
        rgb, alpha, median_depth: the source view's images, [H, W, 3], [H, W], [H, W] (a Frame's,
            one eye: ``frame.rgb[e]`` ...).
        src_view, src_K: the source's T_cam_world [4, 4] and intrinsics [3, 3].
        dst_view, dst_K: the target's, and its ``height`` x ``width`` in pixels.
        depth_tolerance: relative disagreement of a tap's depth that invalidates a pixel.

    Returns:
        Reprojected [height, width].
    """
    check_inputs(median_depth, depth_tolerance)
    Hs, Ws = median_depth.shape
    T_dst_src, T_src_dst = camera_transforms(src_view, dst_view)
    z_dst = _fill_cracks(_splat_depth(median_depth, src_K, T_dst_src, dst_K, height, width))
    has = torch.isfinite(z_dst)
    # Step 3: target pixels with a depth, back into the source.
    points = pixel_rays(dst_K, height, width)[has] * z_dst[has][:, None]
    p = transform_points(points, T_src_dst)
    zs = p[:, 2]
    K = src_K.double()
    xs = K[0, 0] * p[:, 0] / zs + K[0, 2] - 0.5  # continuous pixel index: centres at integers
    ys = K[1, 1] * p[:, 1] / zs + K[1, 2] - 0.5
    x0, y0 = torch.floor(xs), torch.floor(ys)
    fx, fy = (xs - x0)[:, None], (ys - y0)[:, None]
    ok = (zs > 0) & (x0 >= 0) & (x0 + 1 < Ws) & (y0 >= 0) & (y0 + 1 < Hs)
    ix, iy = x0.long().clamp(0, max(Ws - 2, 0)), y0.long().clamp(0, max(Hs - 2, 0))
    taps = [(iy, ix, (1 - fx) * (1 - fy)), (iy, ix + 1, fx * (1 - fy)), (iy + 1, ix, (1 - fx) * fy), (iy + 1, ix + 1, fx * fy)]
    colour = torch.zeros(points.shape[0], 4, dtype=torch.float64, device=rgb.device)
    src = torch.cat([rgb, alpha[..., None]], dim=-1).double()
    for ty, tx, w in taps:
        z_tap = median_depth[ty, tx].double()
        ok &= (z_tap > 0) & ((z_tap - zs).abs() <= depth_tolerance * zs)
        colour += w * src[ty, tx]
    valid = torch.zeros(height, width, dtype=torch.bool, device=rgb.device)
    valid[has] = ok
    out = torch.zeros(height, width, 4, device=rgb.device)
    out[valid] = colour[ok].float()
    depth = torch.where(has, z_dst, 0.0).float()
    return Reprojected(rgb=out[..., :3].contiguous(), alpha=out[..., 3].contiguous(), depth=depth, valid=valid)
