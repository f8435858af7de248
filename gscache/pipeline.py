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
    return Frame(images=images, times=clock.times(), counters=counters)
