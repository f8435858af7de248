"""The one place where the stages are wired together: cull -> shade -> project -> bin -> rasterize,
with the stereo and temporal reuse of gscache.cache between them."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings

import torch

from .backends import Backend
from .cache import CacheStats, DerivedCache, FrameCache, cache_key
from .camera import ViewBatch
from .config import RenderConfig
from .errors import GscacheWarning
from .records import Frame, Shaded, StageTimes, Visible, WorkCounters
from .scene.record import Scene
from .scene.structured import StructuredScene
from .stages.derive import derive, derive_anchors, lod_mask


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
        return StageTimes(**{f"{stage}_ms": t for stage, t in zip(self.stages, ms)})


def checks_enabled(cfg: RenderConfig) -> bool:
    return cfg.debug_checks or os.environ.get("GSCACHE_CHECKS") == "1"


def _shade(backend: Backend, visible: Visible, views: ViewBatch, cfg: RenderConfig) -> Shaded:
    """Covariances once; colours per view, or once from between the eyes (approximate)."""
    if cfg.cache.approx_stereo_colors and views.n_views > 1:
        centre = backend.shade(visible, views.centred(), cfg.shade)
        colors = centre.colors.expand(views.n_views, -1, -1).contiguous()  # [E, V, 3]
        return Shaded(covars=centre.covars, colors=colors)
    return backend.shade(visible, views, cfg.shade)


def render_views(scene: Scene, views: ViewBatch, cfg: RenderConfig, backend: Backend,
                 cache: FrameCache | None = None, tile_mask: torch.Tensor | None = None) -> Frame:
    """Render the E views of ``views`` with ``backend``'s stages, reusing what ``cfg.cache`` allows.

    Args:
        scene: N Gaussians on the render device.
        views: E views on the same device.
        cfg: the stage configs and the reuse settings.
        backend: the stage implementations.
        cache: the temporal cache of the caller (a Renderer); None renders without one.
        tile_mask: [E, T] bool: rasterize only these tiles (the others stay at the background);
            None rasterizes every tile. The stages before rasterization run in full either way.

    Returns:
        Frame with [E, H, W] images, per-stage times, work counters and cache statistics.
    """
    if views.n_views > 1 and not cfg.cache.stereo:
        # No reuse: every eye from scratch, as if it were the only one.
        return Frame.concat([render_views(scene, views.select(e), cfg, backend, None,
                                          None if tile_mask is None else tile_mask[e:e + 1])
                             for e in range(views.n_views)])
    check = checks_enabled(cfg)
    clock = _Clock(scene.device)
    temporal = cache is not None and cfg.cache.temporal
    key = cache_key(scene, views, cfg, backend.name) if temporal else None
    entry, reason = cache.lookup(key, views, cfg.cache) if temporal else (None, None)
    if entry is not None:
        # cull and shade: reused from the cache
        visible, shaded = entry.visible, entry.shaded
        entry.age += 1
        clock.lap("cull")
        clock.lap("shade")
    else:
        # cull: union of the view frusta (with the temporal cache's margin)
        cull_cfg = cfg.cull
        if temporal:
            cull_cfg = dataclasses.replace(cull_cfg, margin_px=cull_cfg.margin_px + cfg.cache.margin_px)
        visible = backend.cull(scene, views, cull_cfg, cfg.project)
        clock.lap("cull")
        # shade: covariances once, colours per view (or once, between the eyes)
        shaded = _shade(backend, visible, views, cfg)
        clock.lap("shade")
    # project: per view
    projected = backend.project(visible, shaded, views, cfg.project)
    clock.lap("project")
    # bin: tile lists sorted by depth (one depth order for parallel eyes)
    bins = backend.bin(projected, views, cfg.bin)
    clock.lap("bin")
    tile_costs = bins.tile_costs()
    # rasterize: per tile, front to back (only the tiles of tile_mask)
    raster_bins = bins if tile_mask is None else bins.restricted(tile_mask)
    images = backend.rasterize(visible, shaded, projected, raster_bins, views, cfg.raster)
    clock.lap("rasterize")
    if check:
        for record in (scene, visible, shaded, projected, bins, images):
            record.validate()
    times = clock.times()
    stats = None
    if temporal:
        depth = cache.depth(cfg.cache)
        if entry is None:
            entry = cache.store(key, scene, views, visible, shaded, times.cull_ms + times.shade_ms)
            stats = CacheStats(True, False, reason, 0, depth, (), 0.0, entry.nbytes)
        else:
            stats = CacheStats(True, True, None, entry.age, depth, ("cull", "covariances", "colors"), entry.saved_ms,
                               entry.nbytes)
        if cache.controller is not None:
            cache.controller.update(times.total_ms)
        cache.totals.add(stats)
    counters = WorkCounters(scene.count, visible.count, bins.n_intersections, images.evaluations)
    return Frame(images=images, times=times, counters=counters, cache=stats, tile_costs=tile_costs)


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
                      cache: DerivedCache | None = None, tile_mask: torch.Tensor | None = None) -> Frame:
    """Render a structured scene: derive its Gaussians, then the ordinary pipeline.

    With ``cfg.cache.shared_derivation`` (default) the Gaussians are derived once per frame from
    the point between the eyes against the union of the frusta and serve both eyes, and, with a
    temporal cache depth D > 1, up to D frames; otherwise every eye derives its own, every frame
    (the exact baseline of the original renderers).
    """
    device = scene.device
    # The backend's derivation (a fused kernel, or the reference), or the reference when asked for.
    derive_fn = backend.derive if cfg.derive.fused else derive_anchors
    if views.n_views > 1 and not cfg.cache.shared_derivation:
        frames = []
        for e in range(views.n_views):
            view = views.select(e)
            derived, ms = _timed(device, lambda: derive(scene, view, view.positions[0], 0.0, derive_fn))
            frame = render_views(derived, view, cfg, backend, None, None if tile_mask is None else tile_mask[e:e + 1])
            frames.append(dataclasses.replace(frame, times=dataclasses.replace(frame.times, derive_ms=ms)))
        return Frame.concat(frames)
    centre = views.positions.mean(dim=0)
    temporal = cache is not None and cfg.cache.temporal
    entry, reason, lod = None, None, None
    if temporal:
        lod = lod_mask(scene, centre)
        key = (("scene", id(scene.anchors), scene.version, scene.count),
               ("config", cfg.cull, cfg.project, cfg.cache.margin_px),
               ("views", views.n_views, views.width, views.height, views.near_m, views.far_m,
                tuple(views.Ks.reshape(-1).tolist())))
        entry, reason = cache.lookup(key, lod, views, cfg.cache)
    if entry is not None:
        derived, derive_ms = entry.scene, 0.0
        entry.age += 1
    else:
        margin = cfg.cache.margin_px if temporal else 0.0
        derived, derive_ms = _timed(device, lambda: derive(scene, views, centre, margin, derive_fn))
        if temporal:
            entry = cache.store(key, derived, lod, views, derive_ms)
    if temporal:
        # The derived Gaussians' culled set and covariances (and colours: degree 0, so view
        # independent) are reused with them: an inner frame cache keyed by the derived tensors,
        # whose own limits never trigger first (the derived cache above decides).
        inner = dataclasses.replace(cfg, cache=dataclasses.replace(
            cfg.cache, depth=cfg.cache.depth_max, dynamic_depth=False, max_translation_m=math.inf,
            max_rotation_deg=math.inf, translation_per_depth=0.0))
        frame = render_views(derived, views, inner, backend, cache.gaussians, tile_mask)
    else:
        frame = render_views(derived, views, cfg, backend, None, tile_mask)
    times = dataclasses.replace(frame.times, derive_ms=derive_ms)
    stats = None
    if temporal:
        depth = cache.frames.depth(cfg.cache)
        hit = reason is None
        reused, saved = ("derive",) if hit else (), entry.derive_ms if hit else 0.0
        if hit and frame.cache is not None and frame.cache.hit:
            reused, saved = reused + frame.cache.stage_hits, saved + frame.cache.time_saved_ms
        stats = CacheStats(True, hit, reason, entry.age, depth, reused, saved,
                           derived.nbytes + entry.lod.numel() + (frame.cache.cache_bytes if frame.cache else 0))
        if cache.frames.controller is not None:
            cache.frames.controller.update(times.total_ms)
        cache.frames.totals.add(stats)
    return dataclasses.replace(frame, times=times, cache=stats)

