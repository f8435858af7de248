"""Foveated rendering: where each eye's fovea lies, which tiles and Gaussians each of its views
needs, and the composite of the views (gscache.config.FoveationConfig).

Per eye, the fovea is the eye's own full-resolution view rasterized only in the tiles that the
fovea rectangle and its blend band reach; the periphery is the same view at ``periphery_scale``
times the resolution (ViewBatch.scaled), rasterized everywhere but where only the fovea shows.
With a middle ring (``FoveationConfig.ring``) that view is rasterized only within the ring's
rectangle and band, and a third view at ``far_scale`` everywhere but where only the ring shows,
composited under the ring (ring_layout) as the ring is under the fovea.
Both views bin only the Gaussians whose tiles meet the tiles they rasterize: a tile's list (the
Gaussians that overlap it, in depth order) is then what the full view's binning gives it, so
inside the rectangle the composite equals the full-resolution render bit for bit.

Pixel coordinates are continuous (pixel x covers [x, x + 1), its centre x + 0.5); rectangles are
half-open (x0, y0, x1, y1).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import FoveationConfig
from ..errors import GscacheError
from ..records import Images, Projected

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class FoveaLayout:
    """The fovea of every eye of one frame, in full-resolution pixels."""

    width: int
    height: int
    inner: tuple[Rect, ...]
    """Per eye: the exact rectangle (blend weight 1)."""
    band_px: int
    """Width of the blend band around it (the weight falls from 1 to 0 across it)."""

    def outer(self, e: int) -> Rect:
        """The rectangle where the fovea's weight is above 0 (inner grown by the band, clipped)."""
        x0, y0, x1, y1 = self.inner[e]
        b = self.band_px
        return max(0, x0 - b), max(0, y0 - b), min(self.width, x1 + b), min(self.height, y1 + b)

    def weights(self, device) -> Tensor:
        """The fovea's blend weight per pixel, [E, H, W] float32: 1 inside the rectangle, a
        smoothstep across the band, 0 beyond."""
        out = []
        for x0, y0, x1, y1 in self.inner:
            out.append(_axis_weight(x0, x1, self.width, self.band_px, device)[None, :]
                       * _axis_weight(y0, y1, self.height, self.band_px, device)[:, None])
        return torch.stack(out)

    def masks(self, device) -> tuple[Tensor, Tensor]:
        """([E, H, W] bool) pixels of the exact rectangle, and pixels outside it (the periphery
        the quality metrics measure: band included)."""
        inside = torch.zeros(len(self.inner), self.height, self.width, dtype=torch.bool, device=device)
        for e, (x0, y0, x1, y1) in enumerate(self.inner):
            inside[e, y0:y1, x0:x1] = True
        return inside, ~inside


def _axis_weight(a: int, b: int, size: int, band: int, device) -> Tensor:
    centres = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    outside = torch.clamp(torch.maximum(a - centres, centres - b), min=0.0)  # distance to [a, b]
    if band == 0:
        return (outside == 0).float()
    t = torch.clamp(1.0 - outside / band, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)  # exactly 1 where t is 1


@dataclass(frozen=True, slots=True)
class FoveaStats:
    """What each view of a foveated frame drew, summed over its eyes (the viewer's overlay, the
    benchmark)."""

    regions: tuple[str, ...]
    """The views in drawing order: "fovea", then "periphery", or "ring" and "far" with a middle ring."""
    gaussians: tuple[int, ...]
    """Gaussians binned by each view (reaching at least one of the tiles it rasterizes)."""
    intersections: tuple[int, ...]
    """Gaussian x tile pairs of each view."""
    paused: bool = False
    """The frame was rendered unfoveated (exact) because foveation measured slower
    (FoveationPayoff); then no region is listed."""


class FoveationPayoff:
    """Whether a renderer's next frame is foveated (FoveationConfig.payoff): foveation is an
    approximation worth making only where it saves time, which depends on the scene, the size and
    the machine (a splat costs its low-pass footprint at any resolution, and the fovea pays for
    projecting and binning every view). The back of each kind of frame (project, bin, rasterize,
    composite: the front is the same for both) is kept as a running mean; the first FIRST_PROBE
    frames are foveated (their first ones pay for warming up) and the next one not, then frames
    are foveated while their mean is not above the unfoveated one, and every PROBE_PERIOD-th
    frame renders the other kind to keep its mean current (so a change of view or load is
    followed within that many frames)."""

    FIRST_PROBE = 7
    PROBE_PERIOD = 16
    KEEP = 0.7
    """Weight of the running mean's history (0.3 for each new frame)."""

    def __init__(self, key: tuple) -> None:
        self.key = key
        self.frame = 0
        self.mean_ms: dict[bool, float | None] = {True: None, False: None}
        self.last: bool | None = None

    def foveate(self) -> bool:
        fov, full = self.mean_ms[True], self.mean_ms[False]
        if fov is None or full is None:
            choice = self.frame < self.FIRST_PROBE
        else:
            choice = fov <= full
            if self.frame % self.PROBE_PERIOD == self.PROBE_PERIOD - 1:
                choice = not choice
        self.last = choice
        return choice

    def account(self, times) -> None:
        """The frame's StageTimes (of the kind foveate() chose last)."""
        if self.last is None:
            return
        ms = times.project_ms + times.bin_ms + times.rasterize_ms + times.composite_ms
        old = self.mean_ms[self.last]
        self.mean_ms[self.last] = ms if old is None else self.KEEP * old + (1 - self.KEEP) * ms
        self.frame, self.last = self.frame + 1, None


def parse_gaze(gaze, n_views: int) -> Tensor | None:
    """None, one (x, y) for every eye, or one per eye ([E, 2]); fractions of the image width and
    height in [0, 1] ((0.5, 0.5) the centre). Returns [E, 2] float64 or None."""
    if gaze is None:
        return None
    try:
        g = torch.as_tensor(gaze, dtype=torch.float64)
    except (TypeError, ValueError):
        raise GscacheError(f"gaze: expected (x, y) or one (x, y) per eye, got {gaze!r}") from None
    if g.shape == (2,):
        g = g[None].expand(n_views, 2)
    if g.shape != (n_views, 2):
        raise GscacheError(f"gaze: expected (x, y) or {n_views} of them, got shape {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()) or bool(((g < 0) | (g > 1)).any()):
        raise GscacheError(f"gaze: expected fractions of the image in [0, 1], got {g.tolist()}")
    return g


def fovea_layout(width: int, height: int, n_views: int, cfg: FoveationConfig, gaze: Tensor | None) -> FoveaLayout:
    """Each eye's rectangle: ``cfg.fovea`` of the image, centred on the gaze (default the image
    centre) and moved, not shrunk, to stay inside the image."""
    fw = max(1, min(width, round(cfg.fovea[0] * width)))
    fh = max(1, min(height, round(cfg.fovea[1] * height)))
    rects = []
    for e in range(n_views):
        gx, gy = (0.5, 0.5) if gaze is None else (float(gaze[e, 0]), float(gaze[e, 1]))
        x0 = min(max(round(gx * width - fw / 2), 0), width - fw)
        y0 = min(max(round(gy * height - fh / 2), 0), height - fh)
        rects.append((x0, y0, x0 + fw, y0 + fh))
    return FoveaLayout(width, height, tuple(rects), max(0, round(cfg.band * height)))


def ring_in_eye_pixels(width: int, height: int, n_views: int, cfg: FoveationConfig,
                       gaze: Tensor | None) -> FoveaLayout:
    """The middle ring of every eye (``cfg.ring``) in the eye's own pixels, placed as the fovea
    is: centred on the gaze and moved, not shrunk, to stay inside the image (so it holds the
    fovea)."""
    return fovea_layout(width, height, n_views, dataclasses.replace(cfg, fovea=cfg.ring), gaze)


def ring_layout(layout: FoveaLayout, cfg: FoveationConfig, gaze: Tensor | None, width_p: int,
                height_p: int) -> FoveaLayout:
    """The middle ring of every eye (``cfg.ring``, placed as ``layout``'s fovea is: centred on the
    gaze, moved to stay inside the image, so it holds the fovea) in the pixels of the ring's view
    (``width_p`` x ``height_p``, the eye's view at ``periphery_scale``): its rectangle grown to
    whole pixels and its blend band (``cfg.band`` of that view's height). The far periphery is
    composited under it as the ring's own view is under the fovea."""
    full = ring_in_eye_pixels(layout.width, layout.height, len(layout.inner), cfg, gaze)
    sx, sy = width_p / layout.width, height_p / layout.height
    rects = tuple((math.floor(x0 * sx), math.floor(y0 * sy), min(width_p, math.ceil(x1 * sx)),
                   min(height_p, math.ceil(y1 * sy))) for x0, y0, x1, y1 in full.inner)
    return FoveaLayout(width_p, height_p, rects, max(0, round(cfg.band * height_p)))


def periphery_scales(cfg: FoveationConfig) -> tuple[float, ...]:
    """The resolutions of an eye's periphery views, finest first: (periphery_scale,), or with a
    middle ring (periphery_scale, far_scale)."""
    return (cfg.periphery_scale, cfg.far_scale) if cfg.has_far else (cfg.periphery_scale,)


def periphery_cull_margin_px(fov: FoveationConfig, extent_sigma: float, eps2d: float) -> float:
    """Full-resolution pixels to add to the cull's guard band so that it keeps every Gaussian the
    periphery view draws too: the cull bounds a radius at full resolution, and at ``scale`` times
    the resolution the low-pass term (extent_sigma * sqrt(eps2d) pixels) and the rounding pixel
    are 1 / scale times wider in full-resolution pixels."""
    if not fov.enabled:
        return 0.0
    return math.ceil((extent_sigma * math.sqrt(eps2d) + 1.0) / fov.coarsest_scale)


def fovea_tiles(layout: FoveaLayout, tile_px: int) -> list[Rect]:
    """Per eye, the tile rectangle (half-open, in tiles) covering the fovea's outer rectangle."""
    out = []
    for e in range(len(layout.inner)):
        x0, y0, x1, y1 = layout.outer(e)
        out.append((x0 // tile_px, y0 // tile_px, math.ceil(x1 / tile_px), math.ceil(y1 / tile_px)))
    return out


def periphery_skip_tiles(layout: FoveaLayout, width_p: int, height_p: int, tile_px: int) -> list[Rect]:
    """Per eye, the periphery tiles (a rectangle in tiles, maybe empty) that no pixel of the
    composite samples with a weight below 1: each full-resolution pixel centre c samples the
    periphery bilinearly around c * scale - 0.5, so a periphery tile [qa, qb) is needed by the
    centres in ((qa - 0.5) / scale, (qb + 0.5) / scale), here grown by two pixels for rounding."""
    sx, sy = width_p / layout.width, height_p / layout.height
    tx_n, ty_n = math.ceil(width_p / tile_px), math.ceil(height_p / tile_px)

    def axis(a: int, b: int, s: float, n: int) -> tuple[int, int]:
        ok = [t for t in range(n) if (t * tile_px - 2.5) / s >= a and ((t + 1) * tile_px + 2.5) / s <= b]
        return (ok[0], ok[-1] + 1) if ok else (0, 0)

    out = []
    for x0, y0, x1, y1 in layout.inner:
        ax, ay = axis(x0, x1, sx, tx_n), axis(y0, y1, sy, ty_n)
        out.append((ax[0], ay[0], ax[1], ay[1]) if ax[1] > ax[0] and ay[1] > ay[0] else (0, 0, 0, 0))
    return out


def rect_tile_mask(rects: list[Rect], tiles_x: int, tiles_y: int, inside: bool, device) -> Tensor:
    """[E, T] bool: the tiles inside each eye's rectangle (``inside``), or outside it."""
    tx = torch.arange(tiles_x, device=device)
    ty = torch.arange(tiles_y, device=device)
    masks = []
    for x0, y0, x1, y1 in rects:
        m = ((ty >= y0) & (ty < y1))[:, None] & ((tx >= x0) & (tx < x1))[None, :]
        masks.append(m.reshape(-1) if inside else ~m.reshape(-1))
    return torch.stack(masks)


def keep_gaussians(projected: Projected, rects: list[Rect], tile_px: int, touching: bool) -> Projected:
    """``projected`` with the radii of some Gaussians set to 0 (not binned): those whose pixel
    extent (centre +- radius), grown by a tile against rounding differences between the
    backends' tile rectangles, does not reach each eye's tile rectangle (``touching``), or lies
    wholly inside it shrunk by a tile (not ``touching``). Either way no Gaussian of a tile that
    is rasterized is dropped. (Box tests as |centre - rect centre| against half sizes: a few
    passes over [E, V, 2].)"""
    m = projected.means2d
    R = torch.tensor(rects, device=m.device, dtype=m.dtype)[:, None, :] * tile_px  # [E, 1, 4] pixels
    centre, half = (R[..., :2] + R[..., 2:]) / 2, (R[..., 2:] - R[..., :2]) / 2  # [E, 1, 2]
    d = (m - centre).abs_()
    r = projected.radii.to(m.dtype)
    if touching:
        keep = (d < half + r + tile_px).all(dim=-1)
    else:
        keep = ~(d.add_(r) <= half - tile_px).all(dim=-1)
    return dataclasses.replace(projected, radii=projected.radii * keep[..., None])


def drop_faint(projected: Projected, opacities: Tensor, min_coverage_px2: float, eps2d: float) -> Projected:
    """The periphery's level of detail: ``projected`` with the Gaussians whose coverage, opacity x
    2 pi sqrt(det) of the 2D covariance before the low-pass filter (the integral of the splat, in
    pixels of this view), is below ``min_coverage_px2`` not binned. At a reduced resolution every
    splat costs at least the low-pass filter's footprint, so the sub-pixel ones cost as much as
    at full resolution while each adds little; dropping them is approximate (measured by the
    benchmark's periphery PSNR), and never touches the fovea's own view."""
    if min_coverage_px2 <= 0:
        return projected
    a, b, c = projected.conics.unbind(-1)  # inverse 2D covariance [[a, b], [b, c]] (after the filter)
    det_conic = (a * c - b * b).clamp(min=1e-30)
    sxx, syy, sxy = c / det_conic - eps2d, a / det_conic - eps2d, -b / det_conic
    det_pre = (sxx * syy - sxy * sxy).clamp(min=0)
    coverage = opacities[None, :] * (2 * math.pi) * det_pre.sqrt()
    radii = projected.radii.masked_fill((coverage < min_coverage_px2)[..., None], 0)
    return dataclasses.replace(projected, radii=radii)


def upsample(t: Tensor, height: int, width: int) -> Tensor:
    """[E, h, w, C] -> [E, H, W, C] bilinear with pixel centres aligned (a full-size pixel centre c
    samples c * h / H - 0.5: the scaled intrinsics' map), as a channels-last interpolation (no
    layout change: the [E, H, W, C] result is contiguous)."""
    return F.interpolate(t.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1)


def _median_composite(fovea: Tensor, periphery: Tensor, layout: FoveaLayout, w: Tensor) -> Tensor:
    """Median depths [E, H, W]: the periphery's upsampled to the nearest pixel and the fovea's
    where its weight is at least one half. Never a blend: a median depth is one splat's depth,
    and a mix of a surface and the background (0) or of two surfaces lies on neither."""
    E, H, W = fovea.shape
    out = F.interpolate(periphery[:, None], size=(H, W), mode="nearest-exact")[:, 0]
    for e in range(E):
        x0, y0, x1, y1 = layout.outer(e)
        region = out[e, y0:y1, x0:x1]
        region.copy_(torch.where(w[e, y0:y1, x0:x1] >= 0.5, fovea[e, y0:y1, x0:x1], region))
    return out.contiguous()


def composite(fovea: Images, periphery: Images, layout: FoveaLayout) -> Images:
    """The fovea over the upsampled periphery: the periphery where the fovea's weight w is 0,
    ``lerp(periphery, fovea, w)`` across the band and the fovea's own values inside each eye's
    rectangle (w = 1), so those pixels are the full render's bit for bit. The blend runs on the
    outer rectangles only (the rest is the upsampled periphery as it is). Median depths are
    chosen, not blended (_median_composite)."""
    E, H, W = fovea.alpha.shape
    w = layout.weights(fovea.rgb.device)
    rgb = upsample(periphery.rgb, H, W)
    alpha = upsample(periphery.alpha[..., None], H, W)[..., 0]
    depth = upsample(periphery.depth[..., None], H, W)[..., 0]
    for e in range(E):
        x0, y0, x1, y1 = layout.outer(e)
        we = w[e, y0:y1, x0:x1]
        rgb[e, y0:y1, x0:x1].lerp_(fovea.rgb[e, y0:y1, x0:x1], we[..., None])
        alpha[e, y0:y1, x0:x1].lerp_(fovea.alpha[e, y0:y1, x0:x1], we)
        depth[e, y0:y1, x0:x1].lerp_(fovea.depth[e, y0:y1, x0:x1], we)
        x0, y0, x1, y1 = layout.inner[e]
        rgb[e, y0:y1, x0:x1] = fovea.rgb[e, y0:y1, x0:x1]
        alpha[e, y0:y1, x0:x1] = fovea.alpha[e, y0:y1, x0:x1]
        depth[e, y0:y1, x0:x1] = fovea.depth[e, y0:y1, x0:x1]
    median = None
    if fovea.median_depth is not None and periphery.median_depth is not None:
        median = _median_composite(fovea.median_depth, periphery.median_depth, layout, w)
    evals = None if fovea.evaluations is None or periphery.evaluations is None else \
        fovea.evaluations + periphery.evaluations
    return Images(rgb=rgb.contiguous(), alpha=alpha.contiguous(), depth=depth.contiguous(), median_depth=median,
                  evaluations=evals)
