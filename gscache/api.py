"""The API layer between the faces (CLI, viewer, benchmark, torchrun entry point) and the
renderers: opening scenes and renderers. ``gscache`` re-exports it.

``open_renderer`` gives a single-device :class:`~gscache.renderer.Renderer`, or, with
``devices``, a :class:`~gscache.multi.MultiDeviceRenderer` that composes Renderers (this module
injects the factory, so gscache.multi never imports the renderer). Both have the same protocol:
``render(camera_or_rig) -> Frame``, ``reset_cache()``, ``cache_totals``, ``close()`` and ``with``.
"""

from __future__ import annotations

from .config import RenderConfig
from .errors import GscacheError
from .renderer import Renderer, default_device
from .scene.record import Scene
from .scene.structured import StructuredScene


__all__ = ["open_renderer", "open_scene", "default_device"]


def open_renderer(scene: Scene | StructuredScene, config: RenderConfig | None = None,
                  devices: list[str] | None = None, schedule=None):
    """A renderer of ``scene``: on ``config.device`` alone, or with each stereo frame's tiles
    spread over ``devices`` ("local", "cuda:N", "proc[:THREADS]"; see gscache.multi) with
    ``schedule`` (a gscache.multi.ScheduleConfig: elastic target, timeouts). Close it (or use
    ``with``) to stop worker processes early; they are daemons and end with this process anyway."""
    if not devices:
        return Renderer(scene, config)
    if config is not None and config.foveation.enabled:
        raise GscacheError("foveation: a frame spread over several devices cannot be foveated yet (the devices "
                           "split full-resolution tiles); render foveated frames on one device")
    from .multi import MultiDeviceRenderer

    return MultiDeviceRenderer(scene, config or RenderConfig(), list(devices), schedule, factory=Renderer)


def open_scene(path: str | None, *, iteration: int | None = None, cfg_args: dict | None = None):
    """The scene at ``path`` (any format gscache reads, a training output folder, or a structured
    checkpoint; ``iteration`` and ``cfg_args`` as in gscache.load_scene), or the embedded demo
    scene when None."""
    if path is None:
        if iteration is not None or cfg_args:
            raise GscacheError("--iteration / --cfg-args: they apply to a scene path, and none was given")
        from .scenes import demo_scene

        return demo_scene()
    from .scene import load_scene

    return load_scene(path, iteration=iteration, cfg_args=cfg_args)
