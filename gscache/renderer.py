"""The public rendering API: ``render()`` for one frame and ``Renderer`` for many."""

from __future__ import annotations

import torch

from . import backends
from .cache import DerivedCache, FrameCache
from .camera import Camera, StereoRig, views_of
from .config import RenderConfig
from .errors import GscacheError
from .pipeline import render_structured, render_views
from .records import Frame
from .scene.record import Scene
from .scene.structured import StructuredScene


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Renderer:
    """Keeps a scene on its device and renders cameras or stereo rigs of it.

    Args:
        scene: the Gaussians, or a structured (anchor) scene.
        config: backend, device, stage and reuse settings; RenderConfig() by default.
        devices: spread each stereo frame's tiles over these devices ("local", "cuda:N",
            "proc[:THREADS]"; see gscache.multi); None renders on config.device alone. Call
            close() (or use ``with``) to stop worker processes early; they are daemons and end
            with this process in any case.
        schedule: gscache.multi.ScheduleConfig (elastic target, timeouts) for ``devices``.

    Example:
        >>> r = Renderer(load_scene("plant.splat"))
        >>> frame = r.render(StereoRig.symmetric(pose, 512, 512))
        >>> frame.rgb.shape   # [2, 512, 512, 3]
    """

    def __init__(self, scene: Scene | StructuredScene, config: RenderConfig | None = None,
                 devices: list[str] | None = None, schedule=None) -> None:
        if not isinstance(scene, (Scene, StructuredScene)):
            raise GscacheError(f"scene: expected a gscache Scene or StructuredScene, got {type(scene).__name__}")
        self.config = config if config is not None else RenderConfig()
        if not isinstance(self.config, RenderConfig):
            raise GscacheError(f"config: expected a RenderConfig, got {type(self.config).__name__}")
        try:
            self.device = torch.device(self.config.device) if self.config.device else default_device()
        except RuntimeError as exc:
            raise GscacheError(f"config.device: {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise GscacheError(f"config.device: {self.config.device!r} asked for, but torch sees no CUDA device here")
        self.backend = backends.get(self.config.backend, self.device.type)
        self.scene = scene.to(self.device)
        self.reset_cache()
        self.multi = None
        if devices:
            # Stereo frames spread over several devices (gscache.multi); this Renderer presents.
            from .multi import MultiDeviceRenderer

            self.multi = MultiDeviceRenderer(scene, self.config, list(devices), schedule,
                                             presenter=Renderer(scene, self.config))

    def close(self) -> None:
        """Stop the worker processes of a multi-device Renderer."""
        if self.multi is not None:
            self.multi.close()
            self.multi = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset_cache(self) -> None:
        """Forget everything cached and start new totals (on every device of a multi-device Renderer)."""
        self.cache = FrameCache()
        self.derived_cache = DerivedCache()
        if getattr(self, "multi", None) is not None:
            self.multi.reset_cache()

    @property
    def cache_totals(self):
        """CacheTotals of the frames rendered since the last reset."""
        if self.multi is not None:
            return self.multi.totals
        return self.derived_cache.frames.totals if isinstance(self.scene, StructuredScene) else self.cache.totals

    def set_scene(self, scene: Scene | StructuredScene) -> None:
        """Replace the scene (e.g. after an edit); the cache notices by the scene's identity and version."""
        self.scene = scene.to(self.device)

    def render(self, camera_or_rig: Camera | StereoRig, tile_mask: torch.Tensor | None = None) -> Frame:
        """Render a Camera (E = 1) or a StereoRig (E = 2, left then right), reusing what
        ``config.cache`` allows; ``frame.cache`` says what was reused. ``tile_mask`` [E, T] bool
        rasterizes only those tiles (a device's share of a frame; the rest stays background).
        With ``devices``, stereo rigs are rendered by the multi-device scheduler."""
        if self.multi is not None and tile_mask is None and isinstance(camera_or_rig, StereoRig):
            return self.multi.render(camera_or_rig)
        with torch.no_grad():
            views = views_of(camera_or_rig, self.device)
            if isinstance(self.scene, StructuredScene):
                return render_structured(self.scene, views, self.config, self.backend, self.derived_cache, tile_mask)
            return render_views(self.scene, views, self.config, self.backend, self.cache, tile_mask)


def render(scene: Scene | StructuredScene, camera_or_rig: Camera | StereoRig, config: RenderConfig | None = None) -> Frame:
    """Render one frame of ``scene``.

    Args:
        scene: the Gaussians (any device; moved to the render device).
        camera_or_rig: a Camera for a mono image or a StereoRig for a stereo pair.
        config: backend, device and stage settings; defaults to RenderConfig().

    Returns:
        Frame with rgb [E, H, W, 3], alpha and depth [E, H, W], per-stage times and counters.
    """
    return Renderer(scene, config).render(camera_or_rig)
