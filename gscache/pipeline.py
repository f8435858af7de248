"""The one place where the stages are wired together: (derive ->) cull -> shade -> project -> bin
-> rasterize, with the stereo and temporal reuse of gscache.cache between them.

A frame is a front (cull and shade: what a temporal cache entry holds, with the derived
Gaussians of a structured scene) and a back (project, bin, rasterize: every frame). Both scene
kinds go through one TemporalCache.begin / store / end."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import torch

from .backends.table import Backend
from .cache import CacheStats, TemporalCache, cache_key, held_bytes
from .camera import ViewBatch
from .config import RenderConfig
from .errors import GscacheError
from .pixel_reuse import PixelReuse, ReuseStats, back_with_reuse, pixel_key
from .records import Frame, Images, Projected, Shaded, StageTimes, TileBins, Visible, WorkCounters
from .scene.record import Scene
from .scene.structured import StructuredScene
from .stages.bin import tile_grid
from .stages.derive import derive, derive_anchors, lod_mask
from .stages.lod import PeripheryLod, default_cache_dir, load_or_build, select_cut
from .stages.foveate import (FoveaStats, FoveationPayoff, drop_faint, fovea_layout, fovea_tiles, keep_gaussians,
                             periphery_cull_margin_px, periphery_scales, periphery_skip_tiles, rect_tile_mask,
                             ring_layout)


class _Clock:
    """Per-stage times: CUDA events on a GPU (read once, after the frame), wall time on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.stages: list[str] = []
        if self.cuda:
            self.marks = [torch.cuda.Event(enable_timing=True)]
            self.marks[0].record()
        else:
            self.marks = [time.perf_counter()]

    def lap(self, stage: str) -> None:
        self.stages.append(stage)
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def times(self) -> StageTimes:
        if self.cuda:
            self.marks[-1].synchronize()
            ms = [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        else:
            ms = [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:])]
        totals: dict[str, float] = {}
        for stage, t in zip(self.stages, ms):  # a foveated frame runs project, bin, rasterize twice
            totals[f"{stage}_ms"] = totals.get(f"{stage}_ms", 0.0) + t
        return StageTimes(**totals)


def checks_enabled(cfg: RenderConfig) -> bool:
    return cfg.debug_checks or os.environ.get("GSCACHE_CHECKS") == "1"


def _shade(backend: Backend, visible: Visible, views: ViewBatch, cfg: RenderConfig) -> Shaded:
    """Covariances once; colours per view, or once from between the eyes (approximate)."""
    if cfg.cache.approx_stereo_colors and views.n_views > 1:
        centre = backend.shade(visible, views.centred(), cfg.shade)
        colors = centre.colors.expand(views.n_views, -1, -1).contiguous()  # [E, V, 3]
        return Shaded(covars=centre.covars, colors=colors)
    return backend.shade(visible, views, cfg.shade)


def _front(scene: Scene, views: ViewBatch, cfg: RenderConfig, backend: Backend, margin_px: float,
           clock: _Clock) -> tuple[Visible, Shaded]:
    """cull (the union of the view frusta, ``margin_px`` wider for a temporal cache) and shade
    (covariances once, colours per view or once between the eyes)."""
    # A foveated frame's periphery is a coarser view: its splats reach further in full-size pixels.
    margin_px += periphery_cull_margin_px(cfg.foveation, cfg.project.extent_sigma, cfg.project.eps2d)
    cull_cfg = dataclasses.replace(cfg.cull, margin_px=cfg.cull.margin_px + margin_px) if margin_px else cfg.cull
    visible = backend.cull(scene, views, cull_cfg, cfg.project)
    clock.lap("cull")
    shaded = _shade(backend, visible, views, cfg)
    clock.lap("shade")
    return visible, shaded


def _back(scene: Scene, visible: Visible, shaded: Shaded, views: ViewBatch, cfg: RenderConfig, backend: Backend,
          tile_mask: torch.Tensor | None, clock: _Clock,
          pixel_mask: torch.Tensor | None = None) -> tuple[Images, torch.Tensor, int]:
    """project (per view), bin (tile lists by depth, one depth order for parallel eyes) and
    rasterize (per tile, front to back; only the tiles of ``tile_mask`` and in them, with
    ``pixel_mask`` [E, H, W], only those pixels: TileBins.pixel_mask). An eye without a tile
    in ``tile_mask`` is not projected or binned at all (a device given tiles of one eye only; its
    image stays at the background). Returns (images, tile costs [E, T] int32 of the binning,
    intersections)."""
    E = views.n_views
    if tile_mask is not None and E > 1:
        has = tile_mask.reshape(E, -1).any(dim=1).tolist()
        if not all(has):
            return _back_some_eyes(scene, visible, shaded, views, cfg, backend, tile_mask, pixel_mask, has, clock)
    projected = backend.project(visible, shaded, views, cfg.project)
    clock.lap("project")
    bins = backend.bin(projected, views, cfg.bin)
    clock.lap("bin")
    raster_bins = bins if tile_mask is None else bins.restricted(tile_mask, pixel_mask)
    images = backend.rasterize(visible, shaded, projected, raster_bins, views, cfg.raster)
    clock.lap("rasterize")
    if checks_enabled(cfg):
        for record in (scene, visible, shaded, projected, bins, images):
            record.validate()
    return images, bins.tile_costs(), bins.n_intersections


def _back_some_eyes(scene: Scene, visible: Visible, shaded: Shaded, views: ViewBatch, cfg: RenderConfig,
                    backend: Backend, tile_mask: torch.Tensor, pixel_mask: torch.Tensor | None, has: list[bool],
                    clock: _Clock):
    """_back for the eyes that have tiles in ``tile_mask``, one at a time; the others at the
    background with no intersections."""
    E, H, W = views.n_views, views.height, views.width
    device = visible.means.device
    out = Images.background(E, H, W, cfg.raster.background, device)
    costs = torch.zeros(E, tile_mask.reshape(E, -1).shape[1], dtype=torch.int32, device=device)
    n_isect, evaluations, median = 0, 0, True
    for e in (e for e in range(E) if has[e]):
        images, c, n = _back(scene, visible, Shaded(shaded.covars, shaded.colors[e:e + 1]), views.select(e), cfg,
                             backend, tile_mask[e:e + 1], clock, None if pixel_mask is None else pixel_mask[e:e + 1])
        out.rgb[e], out.alpha[e], out.depth[e] = images.rgb[0], images.alpha[0], images.depth[0]
        median = median and images.median_depth is not None
        if median:
            out.median_depth[e] = images.median_depth[0]
        evaluations = None if evaluations is None or images.evaluations is None else evaluations + images.evaluations
        costs[e], n_isect = c[0], n_isect + n
    return Images(out.rgb, out.alpha, out.depth, out.median_depth if median else None, evaluations), costs, n_isect


def _back_part(visible: Visible, shaded: Shaded, views: ViewBatch, cfg: RenderConfig, backend: Backend,
               clock: _Clock, within: list | None = None, beyond: list | None = None,
               min_coverage_px2: float = 0.0, projected: Projected | None = None) -> tuple[Projected, TileBins, Images]:
    """project (unless ``projected`` is the projection into ``views`` already), bin and
    rasterize ``views`` in the tiles inside each eye's tile rectangle of ``within`` (None: every
    tile) and outside its rectangle of ``beyond`` (None: no exclusion), binning only the
    Gaussians that reach those tiles (so each rasterized tile's list is the full view's) and,
    with ``min_coverage_px2``, not the faint ones (drop_faint). Returns (projected, bins,
    images)."""
    tiles_x, tiles_y = tile_grid(views, cfg.bin)
    if projected is None:
        projected = backend.project(visible, shaded, views, cfg.project)
    mask = None
    for rects, inside in ((within, True), (beyond, False)):
        if rects is not None:
            projected = keep_gaussians(projected, rects, cfg.bin.tile_px, touching=inside)
            m = rect_tile_mask(rects, tiles_x, tiles_y, inside, projected.radii.device)
            mask = m if mask is None else mask & m
    projected = drop_faint(projected, visible.opacities, min_coverage_px2, cfg.project.eps2d)
    clock.lap("project")
    bins = backend.bin(projected, views, cfg.bin)
    clock.lap("bin")
    raster_bins = bins if mask is None else bins.restricted(mask.to(bins.tile_ranges.device))
    images = backend.rasterize(visible, shaded, projected, raster_bins, views, cfg.raster)
    clock.lap("rasterize")
    return projected, bins, images


def _back_foveated(scene: Scene, visible: Visible, shaded: Shaded, views: ViewBatch, cfg: RenderConfig,
                   backend: Backend, gaze: torch.Tensor | None, clock: _Clock,
                   periphery: tuple | None = None) -> tuple[Images, TileBins, int, FoveaStats]:
    """The back of a foveated frame (gscache.stages.foveate): the full-resolution views in the
    fovea's tiles, the ``periphery_scale`` views outside the fovea (with a middle ring: only
    within the ring, and the ``far_scale`` views beyond it, composited under the ring first),
    composited. ``periphery``: each periphery view's own (visible, shaded) (periphery_scales), a
    level of detail (_periphery_front, _structured_periphery_front); None: the frame's. Returns
    the images, the fovea's bins, the intersections of every pass and what each region drew."""
    fov = cfg.foveation
    layout = fovea_layout(views.width, views.height, views.n_views, fov, gaze)
    tp = cfg.bin.tile_px
    passes = []  # (region name, projected, bins) of each pass
    # One projection per eye: a periphery view of the frame's own Gaussians is derived from it.
    full = backend.project(visible, shaded, views, cfg.project)
    projected, bins, fovea = _back_part(visible, shaded, views, cfg, backend, clock, within=fovea_tiles(layout, tp),
                                        projected=full)
    passes.append(("fovea", projected, bins))

    def scaled_projection(scaled: ViewBatch) -> Projected | None:  # None: a level of detail's own Gaussians
        return backend.scale_projection(full, views, scaled, cfg.project) if periphery is None else None

    pviews = views.scaled(fov.periphery_scale)
    fronts = ((visible, shaded),) * len(periphery_scales(fov)) if periphery is None else periphery
    skip = periphery_skip_tiles(layout, pviews.width, pviews.height, tp)
    ring = ring_layout(layout, fov, gaze, pviews.width, pviews.height) if fov.has_far else None
    within = None if ring is None else fovea_tiles(ring, tp)
    pprojected, pbins, periphery_images = _back_part(*fronts[0], pviews, cfg, backend, clock, within, skip,
                                                     fov.periphery_min_coverage_px2,
                                                     scaled_projection(pviews))
    passes.append(("ring" if ring is not None else "periphery", pprojected, pbins))
    if ring is not None:
        fviews = views.scaled(fov.far_scale)
        far_skip = periphery_skip_tiles(ring, fviews.width, fviews.height, tp)
        fprojected, fbins, far_images = _back_part(*fronts[1], fviews, cfg, backend, clock, None, far_skip,
                                                   fov.periphery_min_coverage_px2, scaled_projection(fviews))
        passes.append(("far", fprojected, fbins))
        periphery_images = backend.fovea_composite(periphery_images, far_images, ring)
    images = backend.fovea_composite(fovea, periphery_images, layout)
    clock.lap("composite")
    if checks_enabled(cfg):
        for record in (scene, visible, shaded, *(r for _, p, b in passes for r in (p, b)), images):
            record.validate()
    # One host read of every view's count (a synchronisation on a GPU), not one per view.
    drawn = torch.stack([(p.radii > 0).any(dim=-1).sum() for _, p, _ in passes]).tolist()
    stats = FoveaStats(tuple(name for name, _, _ in passes), tuple(drawn),
                       tuple(int(b.n_intersections) for _, _, b in passes))
    return images, bins, sum(stats.intersections), stats


def _periphery_cull_shade(gaussians: Scene, views: ViewBatch, cfg: RenderConfig, backend: Backend, margin_px: float,
                          scale: float, clock: _Clock) -> tuple[Visible, Shaded]:
    """A periphery view's front from its own Gaussians (a level of detail): culled and shaded
    against the views at ``scale`` times the resolution, with the temporal cache's ``margin_px``
    (full-resolution pixels) in that view's pixels (its low-pass footprint is the cull's own),
    so that it serves the cache's D frames as the frame's own front does (the level of detail
    then is the one of the refresh's eyes)."""
    pviews = views.scaled(scale)
    cull_cfg = dataclasses.replace(cfg.cull, margin_px=cfg.cull.margin_px + margin_px * scale)
    pvisible = backend.cull(gaussians, pviews, cull_cfg, cfg.project)
    clock.lap("cull")
    pshaded = _shade(backend, pvisible, pviews, cfg)
    clock.lap("shade")
    return pvisible, pshaded


def _periphery_front(lod: PeripheryLod, views: ViewBatch, cfg: RenderConfig, backend: Backend, margin_px: float,
                     clock: _Clock) -> tuple[tuple[Visible, Shaded], ...]:
    """The periphery views' fronts of an explicit scene with a level of detail, one per view
    (periphery_scales): the cut for these eyes at that view's focal length
    (foveation.periphery_lod_px periphery pixels), culled and shaded."""
    fronts = []
    for scale in periphery_scales(cfg.foveation):
        focal = float(views.scaled(scale).Ks[:, 0, 0].max())
        cut = lod.subset(select_cut(lod, views.positions, focal, cfg.foveation.periphery_lod_px))
        fronts.append(_periphery_cull_shade(cut, views, cfg, backend, margin_px, scale, clock))
    return tuple(fronts)


def _structured_periphery_front(scene: StructuredScene, views: ViewBatch, cfg: RenderConfig, backend: Backend,
                                centre: torch.Tensor, derive_fn, how: tuple, margin_px: float,
                                clock: _Clock) -> tuple[tuple[tuple[Visible, Shaded], ...], float]:
    """The periphery views' fronts of a structured scene with a level of detail, one per view
    (periphery_scales): the anchors' own levels (Octree-GS) that a view at ``scale`` times the
    resolution selects, as if seen 1 / scale times farther (derive's ``level_shift`` =
    log_fork(1 / scale): a subset of the frame's anchors, derived alike), culled and shaded.
    Returns (the fronts, derive ms)."""
    fronts, total_ms = [], 0.0
    for scale in periphery_scales(cfg.foveation):
        shift = math.log(1.0 / scale) / math.log(scene.fork)
        derived, ms = _timed(scene.device, lambda: derive(scene, views.scaled(scale), centre, margin_px * scale,
                                                          derive_fn, *how, level_shift=shift))
        fronts.append(_periphery_cull_shade(derived, views, cfg, backend, margin_px, scale, clock))
        total_ms += ms
    return tuple(fronts), total_ms


def periphery_lod(cache: TemporalCache | None, scene, cfg: RenderConfig) -> PeripheryLod | None:
    """The scene's periphery level of detail when foveation asks for one (kept in the cache, on
    disk in gscache.stages.lod.default_cache_dir(); built with a progress bar the first time)."""
    if not (cfg.foveation.enabled and cfg.foveation.periphery_lod_px > 0) or not isinstance(scene, Scene):
        return None
    key = (scene.token, scene.version)
    if cache is not None and cache.lod is not None and cache.lod[0] == key:
        return cache.lod[1]
    lod = load_or_build(scene, default_cache_dir(), progress=True)
    if cache is not None:
        cache.lod = (key, lod)
    return lod


def _back_any(scene: Scene, visible: Visible, shaded: Shaded, views: ViewBatch, cfg: RenderConfig, backend: Backend,
              tile_mask: torch.Tensor | None, gaze: torch.Tensor | None, clock: _Clock,
              cache: TemporalCache | None = None, source_scene=None, rasterize_with=None,
              pixel_mask: torch.Tensor | None = None,
              periphery: tuple | None = None
              ) -> tuple[Images, torch.Tensor, int, ReuseStats | None, FoveaStats | None]:
    """The back of a frame, with pixel reuse when ``cfg.cache.pixel_reuse`` asks and a cache
    holds the last frame, else foveated when ``cfg.foveation`` is (and, in a renderer, pays:
    FoveationPayoff): (images, tile costs [E, T] int32, intersections, pixel-reuse statistics or
    None, foveation statistics or None). ``source_scene``: the scene the kept pixels are keyed by
    (a structured scene's, whose derived Gaussians are new every frame); default ``scene``.
    ``rasterize_with``: who rasterizes a pixel-reuse frame's passes (back_with_reuse). With a
    ``tile_mask`` (a device's share of a frame) no pixel reuse runs here: whoever sent the mask
    decided which tiles to rasterize."""
    if cfg.cache.pixel_reuse != "off" and cache is not None and tile_mask is None:
        if cache.pixels is None:
            cache.pixels = PixelReuse()
        key = pixel_key(cache_key(source_scene if source_scene is not None else scene, views, cfg, backend.name), cfg)
        images, n_isect, stats = back_with_reuse(visible, shaded, views, cfg, backend, cache.pixels, key, gaze, clock,
                                                 rasterize_with)
        if checks_enabled(cfg):
            for record in (scene, visible, shaded, images):
                record.validate()
        return images, stats.tile_costs, n_isect, stats, None
    if cfg.foveation.enabled:
        if tile_mask is not None:
            raise GscacheError("foveation: a frame split over devices (tile_mask) cannot be foveated yet; "
                               "render foveated frames on one device")
        payoff = _fovea_payoff(cache, views, cfg)
        if payoff is None or payoff.foveate():
            images, bins, n_isect, fstats = _back_foveated(scene, visible, shaded, views, cfg, backend, gaze, clock,
                                                           periphery)
            return images, bins.tile_costs(), n_isect, None, fstats
        images, costs, n_isect = _back(scene, visible, shaded, views, cfg, backend, None, clock)
        return images, costs, n_isect, None, FoveaStats((), (), (), paused=True)
    return (*_back(scene, visible, shaded, views, cfg, backend, tile_mask, clock, pixel_mask), None, None)


def _periphery_bytes(periphery: tuple) -> int:
    """Memory of cached periphery fronts (their own Gaussians' means, SH, covariances, colours)."""
    return held_bytes([t for visible, shaded in periphery for t in (visible.means, visible.sh, shaded.covars,
                                                                    shaded.colors)])


def _fovea_payoff(cache: TemporalCache | None, views: ViewBatch, cfg: RenderConfig) -> FoveationPayoff | None:
    """The renderer's foveation pay-off controller for this size and level (None: foveate every
    frame: no renderer, or FoveationConfig.payoff off)."""
    if cache is None or not cfg.foveation.payoff:
        return None
    key = (views.width, views.height, cfg.foveation)
    if cache.fovea_payoff is None or cache.fovea_payoff.key != key:
        cache.fovea_payoff = FoveationPayoff(key)
    return cache.fovea_payoff


def _front_bytes(visible: Visible, shaded: Shaded, scene: Scene) -> int:
    """Memory of a cached front beyond the scene (a visible set of everything shares its tensors)."""
    own = held_bytes([visible.ids, shaded.covars, shaded.colors])
    return own + held_bytes([visible.means, visible.quats, visible.scales, visible.opacities, visible.sh],
                            scene.tensors())


def _stats(cache: TemporalCache, cfg: RenderConfig, entry, reason: str | None, reused: tuple[str, ...]) -> CacheStats:
    depth = cache.depth(cfg.cache)
    if reason is not None:
        return CacheStats(True, False, reason, 0, depth, (), 0.0, entry.nbytes)
    return CacheStats(True, True, None, entry.age, depth, reused, entry.saved_ms, entry.nbytes)


def render_views(scene: Scene, views: ViewBatch, cfg: RenderConfig, backend: Backend,
                 cache: TemporalCache | None = None, tile_mask: torch.Tensor | None = None,
                 gaze: torch.Tensor | None = None, rasterize_with=None,
                 pixel_mask: torch.Tensor | None = None) -> Frame:
    """Render the E views of ``views`` with ``backend``'s stages, reusing what ``cfg.cache`` allows.

    Args:
        scene: N Gaussians on the render device.
        views: E views on the same device.
        cfg: the stage configs and the reuse settings.
        backend: the stage implementations.
        cache: the temporal cache of the caller (a Renderer); None renders without one.
        tile_mask: [E, T] bool: rasterize only these tiles (the others stay at the background;
            no pixel reuse runs: the mask's sender decided); None rasterizes every tile. The
            stages before rasterization run in full for every eye with a tile in the mask.
        pixel_mask: [E, H, W] bool, with ``tile_mask``: in its tiles, rasterize only these pixels.
        gaze: [E, 2] fractions of the image (gscache.stages.foveate.parse_gaze) where each eye's
            fovea is centred when ``cfg.foveation`` is enabled; None: the image centre.
        rasterize_with: with pixel reuse, who rasterizes the tiles it leaves (back_with_reuse;
            the multi-device renderer's devices); None: ``backend`` here.

    Returns:
        Frame with [E, H, W] images, per-stage times, work counters and cache statistics.
    """
    if views.n_views > 1 and not cfg.cache.stereo:
        # No reuse: every eye from scratch, as if it were the only one.
        return Frame.concat([render_views(scene, views.select(e), cfg, backend, None,
                                          None if tile_mask is None else tile_mask[e:e + 1],
                                          None if gaze is None else gaze[e:e + 1],
                                          pixel_mask=None if pixel_mask is None else pixel_mask[e:e + 1])
                             for e in range(views.n_views)])
    clock = _Clock(scene.device)
    temporal = cache is not None and cfg.cache.temporal
    entry, reason = None, None
    if temporal:
        key = cache_key(scene, views, cfg, backend.name)
        entry, reason = cache.begin(key, views, cfg.cache)
    # The level of detail lives in a renderer's cache (built once per scene); frames without one
    # (per-eye structured derivation, no stereo reuse) draw the scene's own Gaussians.
    lod = periphery_lod(cache, scene, cfg) if tile_mask is None and cache is not None else None
    if entry is not None:
        visible, shaded = entry.payload["visible"], entry.payload["shaded"]
        periphery = entry.payload.get("periphery")
        clock.lap("cull")
        clock.lap("shade")
    else:
        margin = cfg.cache.margin_px if temporal else 0.0
        visible, shaded = _front(scene, views, cfg, backend, margin, clock)
        periphery = None if lod is None else _periphery_front(lod, views, cfg, backend, margin, clock)
    images, costs, n_isect, reuse, fstats = _back_any(scene, visible, shaded, views, cfg, backend, tile_mask, gaze,
                                                       clock, cache, rasterize_with=rasterize_with,
                                                       pixel_mask=pixel_mask, periphery=periphery)
    times = clock.times()
    if reuse is not None:
        cache.pixels.account(times)
    if fstats is not None and cache is not None and cache.fovea_payoff is not None:
        cache.fovea_payoff.account(times)
    stats = None
    if temporal:
        if entry is None:
            payload = {"visible": visible, "shaded": shaded}
            extra = 0
            if periphery is not None:
                payload["periphery"] = periphery
                extra = _periphery_bytes(periphery)
            entry = cache.store(key, payload, views, scene.means,
                                cfg.project.extent_sigma * scene.scales.amax(dim=1) if scene.count else scene.opacities,
                                times.cull_ms + times.shade_ms, _front_bytes(visible, shaded, scene) + extra)
        stats = _stats(cache, cfg, entry, reason, ("cull", "covariances", "colors"))
        cache.end(stats, times.total_ms)
    counters = WorkCounters(scene.count, visible.count, n_isect, images.evaluations)
    return Frame(images=images, times=times, counters=counters, cache=stats, tile_costs=costs, reuse=reuse,
                 foveation=fstats)


def _timed(device: torch.device, fn):
    """(fn(), milliseconds), synchronised on a GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, (time.perf_counter() - start) * 1e3


def render_structured(scene: StructuredScene, views: ViewBatch, cfg: RenderConfig, backend: Backend,
                      cache: TemporalCache | None = None, tile_mask: torch.Tensor | None = None,
                      gaze: torch.Tensor | None = None, rasterize_with=None,
                 pixel_mask: torch.Tensor | None = None) -> Frame:
    """Render a structured scene: derive its Gaussians, then the ordinary pipeline.

    With ``cfg.cache.shared_derivation`` (default) the Gaussians are derived once per frame from
    the point between the eyes against the union of the frusta and serve both eyes, and, with a
    temporal cache depth D > 1, up to D frames together with their culled set and shading;
    otherwise every eye derives its own, every frame (the exact baseline of the original
    renderers).
    """
    device = scene.device
    # The backend's derivation (a fused kernel, or the reference), or the reference when asked for.
    derive_fn = backend.derive if cfg.derive.fused else derive_anchors
    how = (cfg.derive.appearance_index, cfg.derive.anchor_cull)
    if views.n_views > 1 and not cfg.cache.shared_derivation:
        frames = []
        for e in range(views.n_views):
            view = views.select(e)
            derived, ms = _timed(device, lambda: derive(scene, view, view.positions[0], 0.0, derive_fn, *how))
            frame = render_views(derived, view, cfg, backend, None, None if tile_mask is None else tile_mask[e:e + 1],
                                 None if gaze is None else gaze[e:e + 1],
                                 pixel_mask=None if pixel_mask is None else pixel_mask[e:e + 1])
            frames.append(dataclasses.replace(frame, times=dataclasses.replace(frame.times, derive_ms=ms)))
        return Frame.concat(frames)
    centre = views.positions.mean(dim=0)
    temporal = cache is not None and cfg.cache.temporal
    entry, reason, lod = None, None, None
    if temporal:
        lod = lod_mask(scene, centre)
        key = cache_key(scene, views, cfg, backend.name)
        entry, reason = cache.begin(key, views, cfg.cache, lod=lod, derive_at=centre)
    margin = cfg.cache.margin_px if temporal else 0.0
    # The periphery's level of detail: the anchors' own coarser levels (tile_mask: a device's
    # share of a frame is never foveated).
    periphery_levels = cfg.foveation.enabled and cfg.foveation.periphery_lod_px > 0 and scene.n_levels > 1 \
        and tile_mask is None
    periphery = None
    if entry is not None:
        derived, visible, shaded = (entry.payload[k] for k in ("derived", "visible", "shaded"))
        periphery = entry.payload.get("periphery")
        derive_ms = 0.0
    else:
        # (the anchor cull covers a foveated frame's coarser periphery as the Gaussian cull does)
        reach_px = margin + periphery_cull_margin_px(cfg.foveation, cfg.project.extent_sigma, cfg.project.eps2d)
        derived, derive_ms = _timed(device, lambda: derive(scene, views, centre, reach_px, derive_fn, *how))
    clock = _Clock(device)  # the stages after the derivation (timed on its own)
    if entry is not None:
        clock.lap("cull")
        clock.lap("shade")
    else:
        # The derived Gaussians reach the views by construction of the anchor cull; the cull
        # stage still drops those whose own footprint cannot (with the same margin).
        visible, shaded = _front(derived, views, cfg, backend, margin, clock)
        if periphery_levels:
            periphery, ms = _structured_periphery_front(scene, views, cfg, backend, centre, derive_fn, how, margin,
                                                        clock)
            derive_ms += ms
    images, costs, n_isect, reuse, fstats = _back_any(derived, visible, shaded, views, cfg, backend, tile_mask, gaze,
                                                       clock, cache, source_scene=scene, rasterize_with=rasterize_with,
                                                       pixel_mask=pixel_mask, periphery=periphery)
    times = dataclasses.replace(clock.times(), derive_ms=derive_ms)
    if reuse is not None:
        cache.pixels.account(times)
    if fstats is not None and cache is not None and cache.fovea_payoff is not None:
        cache.fovea_payoff.account(times)
    stats = None
    if temporal:
        if entry is None:
            # Every anchor with the radius its Gaussians can reach bounds the motion.
            payload = {"derived": derived, "visible": visible, "shaded": shaded}
            extra = 0
            if periphery is not None:
                payload["periphery"] = periphery
                extra = _periphery_bytes(periphery)
            entry = cache.store(key, payload, views, scene.anchors, scene.reach,
                                derive_ms + times.cull_ms + times.shade_ms,
                                derived.nbytes + lod.numel() + _front_bytes(visible, shaded, derived) + extra, lod=lod,
                                derived_at=centre, anchors=scene.anchors[lod])
        stats = _stats(cache, cfg, entry, reason, ("derive", "cull", "covariances", "colors"))
        cache.end(stats, times.total_ms)
    counters = WorkCounters(derived.count, visible.count, n_isect, images.evaluations)
    return Frame(images=images, times=times, counters=counters, cache=stats, tile_costs=costs, reuse=reuse,
                 foveation=fstats)
