"""Rasterize: front-to-back alpha blending of each tile's sorted Gaussians.

Per pixel with centre p = (i + 0.5, j + 0.5) and splat g (centre m, conic (a, b, c)):
``d = m - p``, ``power = -0.5 (a dx^2 + c dy^2) - b dx dy``, skipped if power > 0;
``alpha = min(alpha_max, opacity * exp(power))``, skipped if alpha < alpha_min. Blending:
``C += alpha * T * color``, ``T *= 1 - alpha``; a pixel stops at (and does not blend) the first
splat that would take T below transmittance_min (the rule of Inria's and gsplat's kernels). The
median depth is the depth of the blended splat that takes T from above MEDIAN_T to MEDIAN_T or
below (T only decreases, so at most one splat does), 0 where none does.

The reference keeps that order exactly but evaluates it in blocks. Each tile's list is cut into
batches of B splats; round r blends batch r of every tile that still has one and has pixels
left to finish (tiles are sorted by list length, so those are a prefix of the order), in chunks
of tiles that bound memory to ``chunk_elems`` values of shape [tiles, pixels, B]. Inside a
batch, the transmittance before each splat is an exclusive cumulative product, and since T only
decreases, "stopped" is a prefix property along the batch, so one masked cumprod reproduces the
sequential loop up to float rounding. No [pixels x Gaussians] tensor exists.
"""

from __future__ import annotations

import bisect

import torch
from torch import Tensor

from ..camera import ViewBatch
from ..config import RasterConfig
from ..records import Images, Projected, Shaded, TileBins, Visible

# exp() of very negative numbers takes a slow path on CPUs; powers below this give alphas far
# under any alpha_min (exp(-30) ~ 1e-13), so clamping them changes no pixel.
POWER_FLOOR = -30.0
MEDIAN_T = 0.5  # GS_MEDIAN_T of cuda/common.cuh: the transmittance whose crossing gives the median depth


def _blend_batch(T: Tensor, rgb: Tensor, dep: Tensor, med: Tensor, done: Tensor, px: Tensor, py: Tensor,
                 splats: dict[str, Tensor], cfg: RasterConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Blend one batch of B splats into c tiles of P pixels.

    Args:
        T, dep, med: transmittance, depth sum and median depth, [c, P]; rgb: colour sum [c, P, 3];
            done: [c, P] bool.
        px, py: pixel centres, [c, P].
        splats: "mx", "my", "A", "Bn", "C" (power = dx (A dx + Bn dy) + C dy^2), "opac", "depth"
            each [c, 1, B] (opacity 0 marks padding); "color" [c, B, 3].

    Returns:
        The updated (T, rgb, dep, med, done).
    """
    dx = splats["mx"] - px[:, :, None]  # [c, P, B]
    dy = splats["my"] - py[:, :, None]
    power = splats["A"] * dx
    power.addcmul_(splats["Bn"], dy).mul_(dx)
    power.addcmul_(splats["C"], dy * dy)
    off = power > 0
    alpha = power.clamp_(min=POWER_FLOOR).exp_().mul_(splats["opac"]).clamp_(max=cfg.alpha_max)
    off |= alpha < cfg.alpha_min
    off |= done[:, :, None]
    alpha.masked_fill_(off, 0.0)
    one_minus = 1.0 - alpha
    # T_ext[..., k] is the transmittance before splat k; T_ext[..., B] after the whole batch.
    T_ext = torch.empty(alpha.shape[:-1] + (alpha.shape[-1] + 1,), device=alpha.device)
    T_ext[..., 0] = T
    torch.cumprod(one_minus, dim=-1, out=T_ext[..., 1:])
    T_ext[..., 1:] *= T[:, :, None]
    stop = T_ext[..., 1:] < cfg.transmittance_min  # a prefix of False, then True
    w = alpha.mul_(T_ext[..., :-1]).masked_fill_(stop, 0.0)  # [c, P, B] blending weights
    rgb = rgb + torch.bmm(w, splats["color"])
    dep = dep + torch.bmm(w, splats["depth"].transpose(1, 2)).squeeze(-1)
    # The one blended splat (if any) across which T falls to MEDIAN_T: its depth, exactly.
    crosses = (T_ext[..., :-1] > MEDIAN_T) & (T_ext[..., 1:] <= MEDIAN_T) & ~stop  # [c, P, B]
    med = torch.where(crosses.any(dim=-1), (crosses * splats["depth"]).sum(dim=-1), med)
    n_blended = (~stop).sum(dim=-1, keepdim=True)  # the first stopped splat, or B
    T_new = T_ext.gather(-1, n_blended).squeeze(-1)
    return T_new, rgb, dep, med, done | stop[..., -1]


def rasterize(
    visible: Visible, shaded: Shaded, projected: Projected, bins: TileBins, views: ViewBatch, cfg: RasterConfig
) -> Images:
    """Composite every view's tiles.

    Args:
        visible: opacities of the V Gaussians.
        shaded: colours [E, V, 3].
        projected: means2d, conics, depths [E, V, ...].
        bins: sorted intersections and tile ranges.
        views: image size.
        cfg: blending constants, background and memory bound.

    Returns:
        Images [E, H, W, ...].
    """
    E, V = projected.depths.shape
    ts, tiles_x, tiles_y = bins.tile_px, bins.tiles_x, bins.tiles_y
    n_tiles = tiles_x * tiles_y
    P = ts * ts
    device = projected.depths.device
    H, W = views.height, views.width
    B = cfg.batch_gaussians

    # Per-pixel state of every tile of every view: [E*T, P].
    trans = torch.ones(E * n_tiles, P, device=device)
    acc_rgb = torch.zeros(E * n_tiles, P, 3, device=device)
    acc_depth = torch.zeros(E * n_tiles, P, device=device)
    median = torch.zeros(E * n_tiles, P, device=device)
    local = torch.arange(P, device=device)
    all_tiles = torch.arange(E * n_tiles, device=device)
    tile_x0 = ((all_tiles % n_tiles) % tiles_x) * ts
    tile_y0 = ((all_tiles % n_tiles) // tiles_x) * ts
    # Pixels beyond the image edge (in the last tile row/column) start out done.
    done_px = ((tile_x0[:, None] + local[None, :] % ts) >= W) | ((tile_y0[:, None] + local[None, :] // ts) >= H)

    ranges = bins.tile_ranges.reshape(-1, 2).to(torch.int64)  # [E*T, 2]
    counts = ranges[:, 1] - ranges[:, 0]
    order = torch.argsort(counts, descending=True, stable=True)  # longest lists first
    neg_counts = (-counts[order]).tolist()  # ascending, for bisect
    tile_done = torch.zeros(E * n_tiles, dtype=torch.bool, device=device)

    # Flattened per-(view, Gaussian) attributes, indexed by eye * V + gaussian id; the conic is
    # pre-scaled so the power is dx (A dx + Bn dy) + C dy^2.
    mx = projected.means2d[..., 0].reshape(-1)
    my = projected.means2d[..., 1].reshape(-1)
    A = -0.5 * projected.conics[..., 0].reshape(-1)
    Bn = -projected.conics[..., 1].reshape(-1)
    C = -0.5 * projected.conics[..., 2].reshape(-1)
    colors = shaded.colors.reshape(-1, 3)
    depths = projected.depths.reshape(-1)
    opac = visible.opacities
    gids = bins.gaussian_ids.to(torch.int64)
    tiles_per_chunk = max(1, cfg.chunk_elems // (P * B))
    n_rounds = -(-(-neg_counts[0]) // B) if neg_counts else 0

    for r in range(n_rounds):
        # Tiles whose list has a batch r: a prefix of the order.
        n_with_batch = bisect.bisect_left(neg_counts, -r * B)
        prefix = order[:n_with_batch]
        active = prefix[~tile_done[prefix]]
        for c0 in range(0, active.shape[0], tiles_per_chunk):
            tiles = active[c0 : c0 + tiles_per_chunk]  # [c]
            j = r * B + torch.arange(B, device=device)  # [B]
            valid = j[None, :] < counts[tiles, None]  # [c, B]
            isect = torch.where(valid, ranges[tiles, :1] + j[None, :], 0)
            g = gids[isect]  # [c, B]
            flat = (tiles // n_tiles)[:, None] * V + g
            splats = {
                "mx": mx[flat][:, None], "my": my[flat][:, None],
                "A": A[flat][:, None], "Bn": Bn[flat][:, None], "C": C[flat][:, None],
                "opac": torch.where(valid, opac[g], 0.0)[:, None],  # padding never blends
                "depth": depths[flat][:, None], "color": colors[flat],
            }
            px = tile_x0[tiles, None].to(torch.float32) + (local % ts).to(torch.float32) + 0.5  # [c, P]
            py = tile_y0[tiles, None].to(torch.float32) + (local // ts).to(torch.float32) + 0.5
            T, rgb, dep, med, done = _blend_batch(
                trans[tiles], acc_rgb[tiles], acc_depth[tiles], median[tiles], done_px[tiles], px, py, splats, cfg
            )
            trans[tiles], acc_rgb[tiles], acc_depth[tiles], median[tiles], done_px[tiles] = T, rgb, dep, med, done
            tile_done[tiles] = done.all(dim=1)

    # Tiles back to images: [E, tiles_y, tiles_x, ts, ts] -> [E, H, W].
    def to_image(x: Tensor) -> Tensor:
        tail = x.shape[2:]
        x = x.reshape(E, tiles_y, tiles_x, ts, ts, *tail).transpose(2, 3)
        return x.reshape(E, tiles_y * ts, tiles_x * ts, *tail)[:, :H, :W].contiguous()

    trans_img = to_image(trans)
    alpha = 1.0 - trans_img
    bg = torch.tensor(cfg.background, device=device, dtype=torch.float32)
    rgb = to_image(acc_rgb) + trans_img[..., None] * bg
    depth_sum = to_image(acc_depth)
    depth = torch.where(alpha > 0, depth_sum / alpha.clamp(min=1e-12), 0.0)
    return Images(rgb=rgb.contiguous(), alpha=alpha.contiguous(), depth=depth.contiguous(),
                  median_depth=to_image(median))
