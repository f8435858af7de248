"""Pixel reuse: which tiles of a view may be taken from another view's warped pixels
(gscache.stages.reproject), and the image that results (issue 23; ARCHITECTURE §5).

A target tile is **reused** when at least half of its pixels are valid in the warp and its
**predicted error** is at most the bound; its refused pixels (a disocclusion, a silhouette against
another surface, a translucent or empty pixel: never guessed) are rasterized, and every other
tile is rasterized whole (gscache.pixel_reuse).

The predicted error of a reused tile bounds the RMS over its valid pixels and channels of
(reused - exact) in 8-bit levels. It combines the error carried by the source pixels (they may
themselves have been reused) with the error of this warp, which is at least a non-negative
combination of what the renderer knows about the tile:

* **texture**: the RMS of (|I_xx| + |I_yy|) / 8 of the warped colour, the leading term of the
  error of bilinear resampling at half a pixel, times how far from whole pixels the tile's taps
  fall (``shift``: 4 f (1 - f) of the tap fraction f at the tile's corners and centre; 0 when the
  views coincide, so a still head reuses exactly);
* **gradient**: the RMS of the first differences of the warped colour times the tile's parallax
  (an error in depth misplaces the content by a share of the parallax);
* **edges**: the differential parallax across the tile, f b (1 / z_min - 1 / z_max) pixels for a
  baseline b between the eyes, times the tile's colour spread: depth edges the warp's depth test
  let through (those it catches are invalid pixels) misplace silhouettes by about that much;
* **translucency**: the RMS of (1 - alpha) over the tile times the tile's parallax f b / z_min:
  what lies behind a translucent surface moves differently from it;
* **view dependence**: the largest rate of colour change with view direction of the Gaussians
  centred in or next to the tile (from their SH bands above 0: the RMS gradient over the sphere,
  sqrt(sum l (l + 1) c^2 / 4 pi), in 8-bit levels per radian) times the angle b / z_min between
  the source's and the target's view of the tile;
* a floor times ``shift`` (what resampling does to any content; 0 when the views coincide).

That is at least the warp's true error the last time the tile was both warped and rasterized
(every tile is, at the staggered refresh; carried with the content), since what no feature sees
(resampling of fine texture, splats whose clamped projection is not view consistent, MLP
colours) shows there. The carried error adds as a root sum of squares: an assumption, that the
errors of successive warps are uncorrelated, which the property test checks (the linear sum,
the strict bound of the triangle inequality, allowed about two reuses in a row); the bound is
``COEFFICIENTS["safety"]`` times the estimate. The weights:
``scripts/calibrate_reuse.py``; how often the bound is exceeded: tests/unit/test_pixel_reuse.py
and README "Pixel reuse".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..records import Reprojected

COEFFICIENTS = {"texture": 1.1, "gradient": 0.0056, "edges": 2.8, "translucency": 0.1, "view": 1.0, "floor": 0.5,
                "safety": 2.0}
"""The predictor's weights. The feature weights are rounded from scripts/calibrate_reuse.py's fit
(the 99th percentile of the true error of single warps from exact renders, 384-1024 pixels,
plant and playbot: texture 0.7-1.6, gradient about 0.005, edges 2.4-6, translucency 0.1-2.1, view
negligible on those scenes, so the physical 1 is kept: a colour gradient times the angle). The
same fit needs a floor of 4.7-7 levels that no feature explains (resampling of fine texture,
splats whose projection is not view consistent): features alone cannot bound a tile at 2 levels.
So the error measured in the tile itself (``tile_errors``' ``measured``) is the main predictor,
the features guard against what changed since, and ``safety`` multiplies the estimate."""

FEATURES = ("texture", "gradient", "edges", "translucency", "view")


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one view: ``tiles_x`` x ``tiles_y`` of ``tile_px`` pixels over height x width."""

    width: int
    height: int
    tile_px: int

    @property
    def tiles_x(self) -> int:
        return math.ceil(self.width / self.tile_px)

    @property
    def tiles_y(self) -> int:
        return math.ceil(self.height / self.tile_px)

    @property
    def count(self) -> int:
        return self.tiles_x * self.tiles_y

    def blocks(self, image: Tensor, pad: float) -> Tensor:
        """[H, W, ...] -> [tiles_y, tiles_x, tile_px * tile_px, ...], the border tiles padded
        with ``pad``."""
        tp = self.tile_px
        extra = image.shape[2:]
        ph, pw = self.tiles_y * tp - self.height, self.tiles_x * tp - self.width
        if ph or pw:
            flat = image.reshape(self.height, self.width, -1).permute(2, 0, 1)
            image = F.pad(flat, (0, pw, 0, ph), value=pad).permute(1, 2, 0).reshape(
                self.height + ph, self.width + pw, *extra)
        b = image.reshape(self.tiles_y, tp, self.tiles_x, tp, *extra).transpose(1, 2)
        return b.reshape(self.tiles_y, self.tiles_x, tp * tp, *extra)

    def pixels(self, per_tile: Tensor) -> Tensor:
        """[tiles_y, tiles_x, ...] -> [H, W, ...]: each tile's value over its pixels."""
        tp = self.tile_px
        full = per_tile.repeat_interleave(tp, dim=0).repeat_interleave(tp, dim=1)
        return full[: self.height, : self.width]


def view_rates(sh: Tensor) -> Tensor:
    """[V, K, 3] SH coefficients -> [V]: the RMS over the sphere of the gradient of each
    Gaussian's colour with view direction, in 8-bit levels per radian, mean over channels.
    (For an orthonormal real SH expansion the integral of |grad f|^2 over the sphere is
    sum l (l + 1) c_lm^2.) Degree 0: all zero."""
    K = sh.shape[1]
    if K <= 1:
        return torch.zeros(sh.shape[0], device=sh.device)
    degree = torch.arange(K, device=sh.device).float().sqrt().floor()  # band of each coefficient
    weight = (degree * (degree + 1))[None, :, None]
    return 255.0 * ((sh.float() ** 2 * weight).sum(dim=(1, 2)) / (3 * 4 * math.pi)).sqrt()


def tile_view_rates(rates: Tensor, means2d: Tensor, radii: Tensor, grid: TileGrid) -> Tensor:
    """[tiles_y, tiles_x]: the largest rate of the Gaussians drawn in this view (radii > 0)
    whose centre lies in the tile or one of its 8 neighbours (a splat centred further away
    contributes its tail only). ``rates`` [V], ``means2d`` [V, 2], ``radii`` [V, 2]."""
    out = torch.zeros(grid.tiles_y, grid.tiles_x, device=rates.device)
    drawn = (radii > 0).all(dim=-1) & (rates > 0)
    if not bool(drawn.any()):
        return out
    m = means2d[drawn]
    tx = (m[:, 0] / grid.tile_px).floor().long()
    ty = (m[:, 1] / grid.tile_px).floor().long()
    inside = (tx >= -1) & (tx <= grid.tiles_x) & (ty >= -1) & (ty <= grid.tiles_y)
    padded = torch.zeros((grid.tiles_y + 2) * (grid.tiles_x + 2), device=rates.device)
    flat = ((ty[inside] + 1) * (grid.tiles_x + 2) + tx[inside] + 1)
    padded.scatter_reduce_(0, flat, rates[drawn][inside], "amax")
    grown = F.max_pool2d(padded.view(1, 1, grid.tiles_y + 2, grid.tiles_x + 2), 3, stride=1, padding=1)[0, 0]
    return grown[1:-1, 1:-1].contiguous()


def _source_taps(points: Tensor, T_src_dst: Tensor, src_K: Tensor) -> Tensor:
    """Target camera-space points [..., 3] -> continuous source pixel index [..., 2] (centres at
    integers, as the warp samples)."""
    p = points.double() @ T_src_dst[:3, :3].T + T_src_dst[:3, 3]
    K = src_K.double()
    z = p[..., 2].clamp(min=1e-9)
    return torch.stack([K[0, 0] * p[..., 0] / z + K[0, 2] - 0.5, K[1, 1] * p[..., 1] / z + K[1, 2] - 0.5], dim=-1)


@dataclass(frozen=True)
class TileErrors:
    """The classification of one target view's tiles (all [tiles_y, tiles_x])."""

    predicted: Tensor
    """float: the bound on the RMS error over the tile's valid pixels if they are reused, 8-bit
    levels: COEFFICIENTS["safety"] x ``estimate`` (inf where none is valid or nothing was
    measured)."""
    estimate: Tensor
    """float: the best estimate of that error, carried error included (what a reused tile passes
    on to the frames that warp it)."""
    features: dict
    """The predictor's inputs per tile (FEATURES, "measured", "carried"), for calibration and reports."""


STATS = ("n_valid", "z_min", "z_max", "sum_lum", "sum_lum2", "sum_lap2", "sum_grad2", "sum_trans2")
"""What tile_stats gives per tile (GS_TILE_STATS of cuda/common.cuh, in this order): the valid
pixels; the least and largest depth over them (inf and 0 without any); over them, the sums of the
luminance (mean of r, g, b) and its square, of the squared second difference lap and first
difference grad (both over the pixel's 4-neighbourhood, 0 unless the pixel and its neighbours in
the image are valid) and of (1 - alpha)^2."""


def tile_stats(warped: Reprojected, grid: TileGrid) -> Tensor:
    """[tiles_y, tiles_x, 8] float32: the STATS of each tile of ``warped`` (the reference of the
    cpu and cuda kernels). Per pixel, with I the colour and neighbours beyond the image
    replicated: lap = mean over channels of (|I(x+1) + I(x-1) - 2 I| + |I(y+1) + I(y-1) - 2 I|) / 8,
    grad = mean over channels of (|I(x+1) - I(x-1)| + |I(y+1) - I(y-1)|) / 2."""
    valid = grid.blocks(warped.valid, False)  # [ty, tx, P]; False beyond the image
    rgb = warped.rgb
    padded = F.pad(rgb.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)
    lap = ((padded[1:-1, 2:] + padded[1:-1, :-2] - 2 * rgb).abs()
           + (padded[2:, 1:-1] + padded[:-2, 1:-1] - 2 * rgb).abs()).mean(dim=-1) / 8
    grad = ((padded[1:-1, 2:] - padded[1:-1, :-2]).abs() + (padded[2:, 1:-1] - padded[:-2, 1:-1]).abs()).mean(dim=-1) / 2
    # Only where the pixel and its 4 neighbours are valid (a refused neighbour holds 0, not colour).
    v = F.pad(warped.valid[None, None].float(), (1, 1, 1, 1), value=1.0)[0, 0]
    inner = (v[1:-1, 1:-1] * v[1:-1, 2:] * v[1:-1, :-2] * v[2:, 1:-1] * v[:-2, 1:-1]) > 0

    def total(x: Tensor) -> Tensor:
        return (grid.blocks(x, 0.0) * valid).sum(dim=-1)

    depth = grid.blocks(warped.depth, 0.0)
    lum = rgb.mean(dim=-1)
    return torch.stack([valid.sum(dim=-1).float(),
                        torch.where(valid, depth, torch.inf).amin(dim=-1),
                        torch.where(valid, depth, 0.0).amax(dim=-1),
                        total(lum), total(lum * lum), total((lap * inner) ** 2), total((grad * inner) ** 2),
                        total((1 - warped.alpha) ** 2)], dim=-1)


def tile_pixels(grid: TileGrid, device) -> Tensor:
    """[tiles_y, tiles_x] float: the pixels of each tile inside the image."""
    return grid.blocks(torch.ones(grid.height, grid.width, device=device), 0.0).sum(dim=-1)


def tile_errors(stats: Tensor, grid: TileGrid, src_view: Tensor, src_K: Tensor, src_position: Tensor,
                dst_view: Tensor, dst_K: Tensor, dst_position: Tensor, rate_map: Tensor,
                carried_map: Tensor | None, measured: Tensor | None = None, measured_in_source: bool = True,
                coefficients: dict | None = None) -> TileErrors:
    """Classify the tiles of a warp into a view of ``grid``'s size from a source view.

    Args:
        stats: [tiles_y, tiles_x, 8] the warp's tile_stats (Backend.tile_stats).
        grid: the target view's tiles.
        src_view, src_K, src_position: the source's T_cam_world [4, 4], intrinsics [3, 3] and eye [3].
        dst_view, dst_K, dst_position: the target's.
        rate_map: [tiles_y, tiles_x] tile_view_rates of the target view.
        carried_map: [tiles_y', tiles_x'] the source's own error per tile (0 where it was
            rasterized), or None for an exact source.
        measured: [tiles_y', tiles_x'] the warp's true error measured in each tile of the source's
            screen when it was last both warped and rasterized (NaN: never), looked up like the
            carried error; the estimate of this warp's error is at least it, and infinite where
            nothing was measured. None: features only (calibration).
        measured_in_source: ``measured`` is over the source's tiles (a source that is this
            eye's last frame); False: over the target's own (a source that is the other eye).
        coefficients: the predictor's weights (default COEFFICIENTS).

    Returns:
        TileErrors.
    """
    c = COEFFICIENTS if coefficients is None else coefficients
    device = stats.device
    n_valid, z_min, z_max, s_lum, s_lum2, s_lap2, s_grad2, s_trans2 = stats.unbind(-1)
    any_valid = n_valid > 0
    n = n_valid.clamp(min=1)
    z_min, z_max = z_min.clamp(min=1e-6), z_max.clamp(min=1e-6)
    # Tensors, not Python floats: no device synchronisation per view on a GPU.
    baseline = (dst_position.double() - src_position.double()).norm().float()
    f = dst_K[0, 0].float()
    parallax = f * baseline / z_min  # pixels the tile's nearest content moves between the views
    texture = 255.0 * (s_lap2 / n).sqrt()
    gradient = 255.0 * (s_grad2 / n).sqrt() * parallax
    spread = 255.0 * (s_lum2 / n - (s_lum / n) ** 2).clamp(min=0).sqrt()
    translucency = (s_trans2 / n).sqrt() * parallax
    edges = f * baseline * (1 / z_min - 1 / z_max) * spread / 255.0
    view = rate_map * (baseline / z_min)
    # How far from whole pixels the taps fall: the tile's centre and corners, carried back.
    T_src_dst = src_view.double() @ torch.linalg.inv(dst_view.double())
    tp = grid.tile_px
    ty = torch.arange(grid.tiles_y, device=device, dtype=torch.float64)
    tx = torch.arange(grid.tiles_x, device=device, dtype=torch.float64)
    gy, gx = torch.meshgrid(ty, tx, indexing="ij")
    K = dst_K.double()
    # The centres of the tile's middle pixel and of its four corner pixels (clamped to the image).
    mid, last = tp // 2 + 0.5, tp - 0.5
    offsets = torch.tensor([[mid, mid], [0.5, 0.5], [last, 0.5], [0.5, last], [last, last]], dtype=torch.float64,
                           device=device)
    u = (gx[..., None] * tp + offsets[:, 0]).clamp(max=grid.width - 0.5)  # [ty, tx, 5]
    v = (gy[..., None] * tp + offsets[:, 1]).clamp(max=grid.height - 0.5)
    z = torch.where(torch.isfinite(z_min), z_min, 1.0).double()[..., None]
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], dim=-1)
    taps = _source_taps(rays * z[..., None], T_src_dst, src_K)  # [ty, tx, 5, 2]
    frac = taps - taps.floor()
    shift = (4 * frac * (1 - frac)).amax(dim=-1).amax(dim=-1).float()
    texture = texture * shift
    under = ((taps + 0.5) / tp).floor().long()  # [ty, tx, 5, 2]: the source tiles under centre and corners
    carried = torch.zeros_like(texture) if carried_map is None else _under(carried_map, under)
    features = {"texture": texture, "gradient": gradient, "edges": edges, "translucency": translucency, "view": view}
    new = c["floor"] * shift + sum(c[k] * features[k] for k in FEATURES)
    if measured is not None:
        # NaN (never measured) wins the max: such a tile is not reused.
        history = _under(measured, under) if measured_in_source else measured
        new = torch.maximum(new, history).nan_to_num(nan=torch.inf)
        features["measured"] = history
    estimate = torch.where(any_valid, (carried * carried + new * new).sqrt(), torch.inf)
    features["carried"] = carried
    return TileErrors(c["safety"] * estimate, estimate, features)


def _under(source_map: Tensor, under: Tensor) -> Tensor:
    """[tiles_y, tiles_x]: the largest of ``source_map`` [tiles_y', tiles_x'] over the source
    tiles ``under`` [tiles_y, tiles_x, k, 2] (x, y) each target tile (those under its centre and
    corners: the tiles its pixels come from; clamped to the grid). NaN propagates: unknown."""
    Hs, Ws = source_map.shape
    sx, sy = under[..., 0].clamp(0, Ws - 1), under[..., 1].clamp(0, Hs - 1)
    values = source_map[sy, sx]  # [ty, tx, k]
    return torch.where(torch.isnan(values).any(dim=-1), torch.nan, values.amax(dim=-1))


def true_tile_errors(rgb: Tensor, exact_rgb: Tensor, grid: TileGrid, pixels: Tensor | None = None) -> Tensor:
    """[tiles_y, tiles_x]: the RMS over each tile's pixels and channels of (rgb - exact), both
    clamped to [0, 1] as displayed, 8-bit levels (border tiles over their pixels in the image;
    with ``pixels`` [H, W] bool, over those only: NaN in a tile without one)."""
    d = (rgb.clamp(0, 1) - exact_rgb.clamp(0, 1)).pow(2).mean(dim=-1)
    if pixels is not None:
        d = torch.where(pixels, d, math.nan)
    d = grid.blocks(d, math.nan)
    return 255.0 * d.nanmean(dim=-1).sqrt()


def staggered_refresh(grid: TileGrid, frame: int, period: int, device) -> Tensor:
    """[tiles_y, tiles_x] bool: the tiles rasterized this frame whatever their prediction, so
    that every tile is rasterized at least once every ``period`` frames and each frame refreshes
    the same share (1 / period, in a pattern spread over the image: no frame re-renders much
    more than another). ``period`` <= 0: none."""
    if period <= 0:
        return torch.zeros(grid.tiles_y, grid.tiles_x, dtype=torch.bool, device=device)
    ty = torch.arange(grid.tiles_y, device=device)[:, None]
    tx = torch.arange(grid.tiles_x, device=device)[None, :]
    # A lattice (3 and 5 are coprime to most periods): within a row the forced tiles are evenly
    # spaced, and successive rows shift, so no frame forces much more than 1 / period of them.
    phase = (tx * 3 + ty * 5) % period
    return phase == frame % period


def reuse_composite(warped: Reprojected, reused: Tensor, rgb: Tensor, alpha: Tensor, depth: Tensor,
                    median: Tensor, grid: TileGrid) -> Tensor:
    """The reference of the composite kernels: the valid pixels of the reused tiles (``reused``
    [tiles_y, tiles_x] bool) of ``warped`` written into the rasterized view's ``rgb`` [H, W, 3],
    ``alpha``, ``depth`` and ``median`` [H, W] (in place; depth and median take the warp's
    depth), and, in the other tiles, the warp's true error measured against the rasterized
    pixels. Returns [tiles_y, tiles_x, 2] float32: the sum over the valid pixels of the squared
    difference (mean over channels, both clamped to [0, 1]) and their count (0, 0 in reused
    tiles)."""
    keep = grid.pixels(reused) & warped.valid
    diff = (warped.rgb.clamp(0, 1) - rgb.clamp(0, 1)).pow(2).mean(dim=-1)
    measure = grid.pixels(~reused) & warped.valid
    truth = torch.stack([grid.blocks(torch.where(measure, diff, 0.0), 0.0).sum(dim=-1),
                         grid.blocks(measure.float(), 0.0).sum(dim=-1)], dim=-1)
    rgb.copy_(torch.where(keep[..., None], warped.rgb, rgb))
    alpha.copy_(torch.where(keep, warped.alpha, alpha))
    depth.copy_(torch.where(keep, warped.depth, depth))
    median.copy_(torch.where(keep, warped.depth, median))
    return truth
