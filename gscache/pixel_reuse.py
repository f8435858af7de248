"""The back of a frame with pixel reuse (CacheConfig.pixel_reuse; issue 23): project, warp earlier
pixels into the new views, classify the tiles (gscache.stages.reuse), bin only the Gaussians of
the pixels still to rasterize, rasterize those pixels, composite.

* "stereo": each frame one eye is rasterized in full, alternating left and right from frame to
  frame (so neither eye always carries the warp's error, and each is exact every other frame;
  without an eye tracker there is no better choice of eye), and the other eye is warped from it.
* "temporal": each eye is warped from its own image of the previous frame (itself partly reused:
  the error it carries is part of the prediction), with a staggered refresh
  (``reuse_refresh_frames``) so that every tile is rasterized at least that often and no frame
  re-renders much more than another. The first frame, and the first after anything in the cache
  key changed (scene edits through its identity and version counters, the configuration, the
  image size or intrinsics, the backend), is rasterized in full; the next one too (it measures
  the warp everywhere: a tile never measured is not reused). The outer ring of tiles is always
  rasterized.

In a tile taken from the warp, the pixels the warp refused (disocclusions, silhouettes,
translucent or empty pixels) are rasterized, and only they: the cpu and cuda rasterizers skip
the other pixels (TileBins.pixel_mask). A tile whose predicted error is over the bound, or with
fewer than half its pixels valid, is rasterized whole. Rasterized pixels are the full render's,
bit for bit. With foveation, the fovea's tiles are always rasterized and the bound outside it is
``reuse_error_bound / periphery_scale`` (the periphery is not rendered at a lower resolution).
Where reuse costs more time than it saves, a PayoffController pauses it for a while.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .backends.table import Backend
from .camera import ViewBatch
from .config import RenderConfig
from .errors import GscacheError
from .records import Images, Projected, Shaded, Visible
from .stages.bin import tile_rects
from .stages.foveate import fovea_layout, fovea_tiles, rect_tile_mask
from .stages.reuse import TileGrid, staggered_refresh, tile_errors, tile_pixels, tile_view_rates, view_rates

MIN_VALID_SHARE = 0.5
"""A tile with fewer valid pixels than this share is rasterized whole (patching most of it costs
about as much, and the prediction from a few pixels means little)."""


@dataclass(frozen=True, slots=True)
class ReuseStats:
    """What one frame's pixel reuse did, per eye."""

    mode: str
    """CacheConfig.pixel_reuse."""
    tiles_reused: tuple[float, ...]
    """Share of each eye's tiles taken from the warp (their refused pixels rasterized)."""
    pixels_rasterized: tuple[float, ...]
    """Share of each eye's pixels rasterized."""
    predicted_max: tuple[float, ...]
    """Largest predicted error of a reused tile per eye, 8-bit levels (0 without one)."""
    tile_reused: torch.Tensor | None = None
    """[E, tiles_y, tiles_x] bool: the tiles taken from the warp (the viewer's tint)."""
    tile_costs: torch.Tensor | None = None
    """[E, T] int32: intersections binned per tile (0 in the tiles nothing was rasterized in)."""
    paused: bool = False
    """Reuse paused by its pay-off controller (PayoffController): this frame was rasterized in full."""


@dataclass
class EyeHistory:
    """One eye's last image as a source for the next frame's warp."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    median_depth: torch.Tensor
    view: torch.Tensor
    K: torch.Tensor
    position: torch.Tensor
    error: torch.Tensor
    """[tiles_y, tiles_x] predicted error per tile (0 where rasterized in full)."""
    measured: torch.Tensor
    """[tiles_y, tiles_x] the warp's true error in each tile the last time it was both warped
    and rasterized (a refresh, or a prediction over the bound), carried with the content like
    ``error``: what the features cannot see (large splats whose EWA approximation is not view
    consistent, resampling of fine texture, MLP colours) shows here. NaN where never measured:
    such a tile is not reused (so the first frames after a refresh rasterize, and measure)."""


KEEP_BELOW = 0.5
"""keep_for_tiles runs when fewer than this share of a pass's tiles is to be rasterized. It costs
about half a full binning (torch over every Gaussian: 3.6 ms a frame against a 7.0 ms binning,
plant 512x512, 2-core AMD EPYC), and with 27% of the tiles reused the binning it leaves took as
long as the full one (7.1 ms): only a mostly reused frame wins it back."""


@dataclass(frozen=True, slots=True)
class PassResult:
    """One rasterization pass of a pixel-reuse frame, for the pass's n eyes."""

    images: Images
    """[n, H, W]: the pixels asked for exact (a full render's, bit for bit); the others at the
    background, or (a device's tiles rasterized whole) exact too."""
    n_intersections: int
    tile_costs: torch.Tensor
    """[n, T] int32: intersections per tile rasterized (0 in tiles not rasterized)."""


Rasterize = Callable[[list, "torch.Tensor | None", "torch.Tensor | None"], PassResult]
"""(eyes, tiles [n, tiles_y, tiles_x] bool, pixels [n, H, W] bool) -> PassResult: rasterize at
least these pixels of the tiles asked for (None: every tile and pixel of those eyes)."""


def local_rasterizer(visible: Visible, shaded: Shaded, projected: Projected, views: ViewBatch, cfg: RenderConfig,
                     backend: Backend, clock) -> Rasterize:
    """The passes on this device: bin only the Gaussians that reach a tile asked for when few
    are (keep_for_tiles: every such tile's list is the full view's; KEEP_BELOW), rasterize only
    the pixels asked for."""

    def run(eyes: list, tiles: torch.Tensor | None, pixels: torch.Tensor | None) -> PassResult:
        E = views.n_views
        sel = torch.tensor(eyes, device=projected.means2d.device)
        sub_views = views if len(eyes) == E else views.select(eyes[0])
        sub_proj = projected if len(eyes) == E else Projected(
            *(getattr(projected, f)[sel] for f in ("means2d", "conics", "depths", "radii")))
        sub_shaded = shaded if len(eyes) == E else Shaded(shaded.covars, shaded.colors[sel])
        if tiles is not None and float(tiles.float().mean()) < KEEP_BELOW:
            sub_proj = keep_for_tiles(sub_proj, tiles, cfg.bin.tile_px)
        clock.lap("project")
        bins = backend.bin(sub_proj, sub_views, cfg.bin)
        clock.lap("bin")
        raster_bins = bins if tiles is None else bins.restricted(tiles.reshape(len(eyes), -1), pixels)
        images = backend.rasterize(visible, sub_shaded, sub_proj, raster_bins, sub_views, cfg.raster)
        clock.lap("rasterize")
        return PassResult(images, bins.n_intersections, raster_bins.tile_costs())

    return run


def pixel_key(base_key: tuple, cfg: RenderConfig) -> tuple:
    """The temporal cache key, plus what changes the pixels but not the front."""
    c = cfg.cache
    return base_key + (("pixels", cfg.raster, cfg.bin.tile_px, c.pixel_reuse, c.reuse_error_bound,
                        c.reuse_refresh_frames, c.reuse_depth_tolerance, c.reuse_payoff, cfg.foveation),)


def keep_for_tiles(projected: Projected, tiles: torch.Tensor, tile_px: int) -> Projected:
    """``projected`` with the Gaussians whose tile rectangle (grown by a tile, against the
    backends' rounding) meets none of ``tiles`` [E, tiles_y, tiles_x] bool not binned (radii 0):
    every Gaussian of a wanted tile is kept, so its list is the full view's. A summed-area
    table of the mask answers each rectangle in four reads."""
    E, ty, tx = tiles.shape
    lo, hi = tile_rects(projected.means2d, projected.radii, tile_px, tx, ty)  # [E, V, 2]
    lo = (lo - 1).clamp(min=0)
    hi = torch.minimum(hi + 1, torch.tensor([tx, ty], device=hi.device))
    sat = torch.zeros(E, ty + 1, tx + 1, dtype=torch.int32, device=tiles.device)
    sat[:, 1:, 1:] = tiles.int().cumsum(1).cumsum(2)
    flat = sat.reshape(E, -1)
    w = tx + 1

    def at(y, x):
        return flat.gather(1, y * w + x)

    x0, y0, x1, y1 = lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1]
    count = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    keep = (count > 0) & (hi > lo).all(dim=-1)
    return dataclasses.replace(projected, radii=projected.radii * keep[..., None].to(projected.radii.dtype))


class PayoffController:
    """Pixel reuse only where it pays: the warp, the statistics and the composite cost time
    whatever they save. After each frame the controller compares what rasterization saved
    (the rasterize time of the last full frame less this one's) with what the reuse cost (warp
    and composite); after ``patience`` frames in a row that lost time, reuse pauses (frames are
    rasterized in full, as without it) for ``pause`` frames, doubling up to ``max_pause`` while
    it keeps losing and back to ``min_pause`` once it wins. A scene with fine texture that the
    bound lets nothing through (playbot) then costs a probe now and then instead of every frame."""

    def __init__(self, patience: int = 3, min_pause: int = 4, max_pause: int = 64) -> None:
        self.patience, self.min_pause, self.max_pause = patience, min_pause, max_pause
        self.full_raster_ms: float | None = None
        self.losses = 0
        self.pause = min_pause
        self.paused_until = -1

    def paused(self, frame: int) -> bool:
        return frame < self.paused_until

    def account(self, frame: int, warped: bool, times) -> None:
        """The frame's StageTimes: a full frame sets the reference rasterize time; a warped one
        wins or loses against it."""
        if not warped:
            r = times.rasterize_ms
            self.full_raster_ms = r if self.full_raster_ms is None else 0.7 * self.full_raster_ms + 0.3 * r
            return
        if self.full_raster_ms is None:
            return
        saved = self.full_raster_ms - times.rasterize_ms
        if saved >= times.warp_ms + times.composite_ms:
            self.losses, self.pause = 0, self.min_pause
            return
        self.losses += 1
        if self.losses >= self.patience:
            self.paused_until, self.losses = frame + 1 + self.pause, 0
            self.pause = min(2 * self.pause, self.max_pause)


class PixelReuse:
    """The images of the last frame, the frame count and the pay-off controller, held by a
    TemporalCache."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.eyes: list[EyeHistory] | None = None
        self.frame = 0
        self._rates: tuple[torch.Tensor, torch.Tensor] | None = None
        self.payoff = PayoffController()
        self._last: tuple[int, bool] | None = None  # (frame, warped) of the last back, for account

    def clear(self) -> None:
        self.key, self.eyes = None, None

    def account(self, times) -> None:
        """The last frame's StageTimes into the pay-off controller (the pipeline calls this once
        the frame's times are known)."""
        if self._last is not None:
            self.payoff.account(*self._last, times)
            self._last = None

    def rates(self, visible: Visible) -> torch.Tensor:
        """view_rates of the visible set, kept while the same SH tensor is (a cached front)."""
        if self._rates is None or self._rates[0] is not visible.sh:
            self._rates = (visible.sh, view_rates(visible.sh))
        return self._rates[1]


def back_with_reuse(visible: Visible, shaded: Shaded, views: ViewBatch, cfg: RenderConfig, backend: Backend,
                    state: PixelReuse, key: tuple, gaze: torch.Tensor | None, clock,
                    rasterize_with=None) -> tuple[Images, int, ReuseStats]:
    """The back of a frame with ``cfg.cache.pixel_reuse`` (module docstring). Returns the
    images, the intersections binned and the ReuseStats.

    ``rasterize_with(eyes, tiles, pixels, local=...)``: who rasterizes each pass (a Rasterize
    with this device's own as ``local``): the multi-device renderer spreads the tiles to
    rasterize over its devices (gscache.multi); None: this device."""
    c = cfg.cache
    E, H, W = views.n_views, views.height, views.width
    grid = TileGrid(W, H, cfg.bin.tile_px)
    device = visible.means.device
    if state.key != key:
        state.clear()
        state.key = key
    frame, state.frame = state.frame, state.frame + 1
    # The first frame after a key change is rasterized in full in both modes (stereo too): the
    # pay-off controller's reference, and nothing has been measured yet.
    paused_by_payoff = c.reuse_payoff and state.payoff.paused(frame)
    if paused_by_payoff and state.eyes is not None:
        # Nothing measured while paused stays true of content that moves: measure afresh.
        for eye in state.eyes:
            eye.measured = torch.full_like(eye.measured, torch.nan)
    paused = paused_by_payoff or state.eyes is None
    projected = backend.project(visible, shaded, views, cfg.project)
    clock.lap("project")
    bound = torch.full((E, grid.tiles_y, grid.tiles_x), c.reuse_error_bound, device=device)
    forced = staggered_refresh(grid, frame, c.reuse_refresh_frames, device)[None].expand(E, -1, -1).clone()
    # The outer ring of tiles is always rasterized: content enters there, and splats centred off
    # screen are projected with a clamped Jacobian (ProjectConfig; Inria's rule), so what they
    # draw at the border changes with the view in ways no warp follows (measured: the largest
    # errors of reused tiles were there).
    forced[:, 0, :] = forced[:, -1, :] = True
    forced[:, :, 0] = forced[:, :, -1] = True
    if cfg.foveation.enabled:
        layout = fovea_layout(W, H, E, cfg.foveation, gaze)
        fovea = rect_tile_mask(fovea_tiles(layout, grid.tile_px), grid.tiles_x, grid.tiles_y, True, device)
        fovea = fovea.reshape(E, grid.tiles_y, grid.tiles_x)
        forced |= fovea
        bound = torch.where(fovea, bound, bound / cfg.foveation.periphery_scale)
    # The rasterization passes: stereo rasterizes the full eye first, then the one warped from it.
    if c.pixel_reuse == "stereo" and not paused:
        first = frame % 2 if E == 2 else 0
        passes = [[first]] + ([[1 - first]] if E == 2 else [])
    else:
        passes = [list(range(E))]
    history: list[EyeHistory | None] = [None] * E
    outputs: list[tuple | None] = [None] * E  # per eye: (rgb, alpha, depth, median), composited
    reused = torch.zeros(E, grid.tiles_y, grid.tiles_x, dtype=torch.bool, device=device)
    # Per eye, kept on the device until the frame's end (one synchronisation, not one per eye).
    pixels_rasterized = torch.ones(E, device=device)
    predicted_max = torch.zeros(E, device=device)
    n_isect, evaluations = 0, 0
    raster = local_rasterizer(visible, shaded, projected, views, cfg, backend, clock)
    if rasterize_with is not None:
        raster = functools.partial(rasterize_with, local=raster)
    costs = torch.zeros(E, grid.count, dtype=torch.int32, device=device)
    in_tile = tile_pixels(grid, device)
    warped_any = False
    for eyes in passes:
        warps = {}
        want_tiles = torch.ones(len(eyes), grid.tiles_y, grid.tiles_x, dtype=torch.bool, device=device)
        want = torch.ones(len(eyes), H, W, dtype=torch.bool, device=device)
        for i, e in enumerate(eyes):
            source = None if paused else _source(state, history, c.pixel_reuse, e, E)
            if source is None:
                continue
            warped = backend.reproject(source.rgb, source.alpha, source.median_depth, source.view, source.K,
                                       views.viewmats[e], views.Ks[e], H, W, c.reuse_depth_tolerance)
            stats = backend.tile_stats(warped, grid)
            rate_map = tile_view_rates(state.rates(visible), projected.means2d[e], projected.radii[e], grid)
            te = tile_errors(stats, grid, source.view, source.K, source.position, views.viewmats[e], views.Ks[e],
                             views.positions[e], rate_map, source.error, _measured(state, e, grid, device),
                             measured_in_source=c.pixel_reuse == "temporal")
            n_valid = stats[..., 0]
            ok = (n_valid >= MIN_VALID_SHARE * in_tile) & (te.predicted <= bound[e]) & ~forced[e]
            reused[e] = ok
            # A reused tile still rasterizes the pixels the warp refused.
            want_tiles[i] = ~ok | (n_valid < in_tile)
            want[i] = ~(grid.pixels(ok) & warped.valid)
            pixels_rasterized[e] = 1.0 - torch.where(ok, n_valid, 0.0).sum() / (H * W)
            predicted_max[e] = torch.where(ok, te.predicted, 0.0).amax()
            warps[e] = (warped, te)
        clock.lap("warp")
        every = not warps
        warped_any = warped_any or bool(warps)
        done = raster(eyes, None if every else want_tiles, None if every else want)
        clock.lap("rasterize")
        images = done.images
        if images.median_depth is None:
            raise GscacheError(f"cache.pixel_reuse: backend {backend.name!r} gives no median depth to warp with")
        n_isect += done.n_intersections
        if evaluations is not None:  # None once a pass's backend does not count them
            evaluations = None if images.evaluations is None else evaluations + images.evaluations
        costs[torch.tensor(eyes, device=device)] = done.tile_costs.to(device)
        for i, e in enumerate(eyes):
            out = (images.rgb[i], images.alpha[i], images.depth[i], images.median_depth[i])
            if e in warps:
                warped, te = warps[e]
                truth = backend.reuse_composite(warped, reused[e], *out, grid)
                error = torch.where(reused[e], te.estimate, 0.0)
                # Tiles rasterized whole: the warp's true error over its valid pixels (0 in one
                # without any: nothing there could be reused wrongly). Elsewhere the measurement
                # moves with the content (te.features["measured"]).
                rms = 255.0 * (truth[..., 0] / truth[..., 1].clamp(min=1)).sqrt()
                measured = torch.where(reused[e], te.features["measured"], rms)
            else:
                error = torch.zeros(grid.tiles_y, grid.tiles_x, device=device)
                measured = _measured(state, e, grid, device)
            outputs[e] = out
            history[e] = EyeHistory(out[0], out[1], out[3], views.viewmats[e], views.Ks[e], views.positions[e],
                                    error, measured)
        clock.lap("composite")
    state.eyes = history
    state._last = (frame, warped_any)
    if len(passes) == 1:
        result = Images(images.rgb, images.alpha, images.depth, images.median_depth, evaluations)
    else:
        result = Images(*(torch.stack([o[k] for o in outputs]) for k in range(4)), evaluations=evaluations)
    stats = ReuseStats(c.pixel_reuse, tuple(reused.reshape(E, -1).float().mean(dim=1).tolist()),
                       tuple(pixels_rasterized.tolist()), tuple(predicted_max.tolist()), reused, costs,
                       paused_by_payoff)
    return result, n_isect, stats


def _measured(state: PixelReuse, e: int, grid: TileGrid, device) -> torch.Tensor:
    """The measured warp errors of eye ``e``'s last frame (NaN: never measured)."""
    if state.eyes is not None and e < len(state.eyes) and state.eyes[e].measured.shape == (grid.tiles_y, grid.tiles_x):
        return state.eyes[e].measured
    return torch.full((grid.tiles_y, grid.tiles_x), torch.nan, device=device)


def _source(state: PixelReuse, history: list, mode: str, e: int, E: int) -> EyeHistory | None:
    """What eye ``e`` is warped from: this frame's other eye (stereo), or its own image of the
    last frame (temporal); None: rasterized in full."""
    if mode == "stereo":
        other = history[1 - e] if E == 2 else None
        return other
    if state.eyes is None or len(state.eyes) != E:
        return None
    return state.eyes[e]
