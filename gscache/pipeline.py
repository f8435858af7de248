"""The one place where the stages are wired together: cull -> shade -> project -> bin -> rasterize."""

from __future__ import annotations

import os
import time

import torch

from .backends import Backend
from .camera import ViewBatch
from .config import RenderConfig
from .records import Frame, StageTimes, WorkCounters
from .scene.record import Scene


class _Clock:
    """Per-stage wall time; synchronises the device so GPU work is counted where it runs."""

    def __init__(self, device: torch.device) -> None:
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.sync()
        self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.ms[f"{stage}_ms"] = (now - self.last) * 1e3
        self.last = now


def checks_enabled(cfg: RenderConfig) -> bool:
    return cfg.debug_checks or os.environ.get("GSCACHE_CHECKS") == "1"


def render_views(scene: Scene, views: ViewBatch, cfg: RenderConfig, backend: Backend) -> Frame:
    """Render the E views of ``views`` from scratch (no reuse) with ``backend``'s stages.

    Args:
        scene: N Gaussians on the render device.
        views: E views on the same device.
        cfg: the stage configs.
        backend: the stage implementations.

    Returns:
        Frame with [E, H, W] images, per-stage times and work counters.
    """
    check = checks_enabled(cfg)
    clock = _Clock(scene.device)
    # cull: union of the view frusta
    visible = backend.cull(scene, views, cfg.cull, cfg.project)
    clock.lap("cull")
    # shade: covariances once, colours per view
    shaded = backend.shade(visible, views, cfg.shade)
    clock.lap("shade")
    # project: per view
    projected = backend.project(visible, shaded, views, cfg.project)
    clock.lap("project")
    # bin: tile lists sorted by depth
    bins = backend.bin(projected, views, cfg.bin)
    clock.lap("bin")
    # rasterize: per tile, front to back
    images = backend.rasterize(visible, shaded, projected, bins, views, cfg.raster)
    clock.lap("rasterize")
    if check:
        for record in (scene, visible, shaded, projected, bins, images):
            record.validate()
    counters = WorkCounters(scene.count, visible.count, bins.n_intersections, images.evaluations)
    return Frame(images=images, times=StageTimes(**clock.ms), counters=counters)
