"""The single-device renderer: ``Renderer`` keeps a scene on one device with its temporal cache and
renders cameras or stereo rigs of it; ``render()`` is one frame. Several devices compose
Renderers (gscache.multi.MultiDeviceRenderer, built by gscache.api.open_renderer)."""

from __future__ import annotations

import torch

from . import backends
from .cache import TemporalCache
from .camera import Camera, StereoRig, views_of
from .config import RenderConfig
from .errors import GscacheError
from .pipeline import render_structured, render_views
from .records import Frame
from .resources import check_frame_fits
from .scene.record import Scene
from .scene.structured import StructuredScene
from .stages.foveate import parse_gaze


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Renderer:
    """Keeps a scene on its device and renders cameras or stereo rigs of it.

    Args:
        scene: the Gaussians, or a structured (anchor) scene.
        config: backend, device, stage and reuse settings; RenderConfig() by default.

    Several devices: ``gscache.open_renderer(scene, config, devices=[...])``, which has the same
    ``render`` protocol.

    Example:
        >>> r = Renderer(load_scene("plant.splat"))
        >>> frame = r.render(StereoRig.symmetric(pose, 512, 512))
        >>> frame.rgb.shape   # [2, 512, 512, 3]
    """

    def __init__(self, scene: Scene | StructuredScene, config: RenderConfig | None = None) -> None:
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
        if isinstance(scene, Scene):
            scene.check_values()
        self.scene = scene.to(self.device)
        self._checked_size: tuple[int, int, int] | None = None  # the frame size last checked to fit
        self.reset_cache()

    def close(self) -> None:
        """Nothing to release on one device (the multi-device renderer's protocol has it)."""

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset_cache(self) -> None:
        """Forget everything cached and start new totals."""
        self.cache = TemporalCache()

    @property
    def cache_totals(self):
        """CacheTotals of the frames rendered since the last reset."""
        return self.cache.totals

    def set_scene(self, scene: Scene | StructuredScene) -> None:
        """Replace the scene (e.g. after an edit, in place or not): the next frame refreshes the cache."""
        if isinstance(scene, Scene):
            scene.check_values()
        self.scene = scene.to(self.device)
        # Whatever the caller changed (in place or not), the next frame is a fresh one.
        self.cache.invalidate("scene")

    def set_config(self, config: RenderConfig) -> None:
        """Change the stage, backend and reuse settings (the device stays: open another renderer
        for another device); the next frame refreshes the cache."""
        if not isinstance(config, RenderConfig):
            raise GscacheError(f"config: expected a RenderConfig, got {type(config).__name__}")
        wanted = torch.device(config.device) if config.device else self.device
        if wanted.type != self.device.type or wanted.index not in (None, self.device.index):
            raise GscacheError(f"config.device: this renderer renders on {self.device}, not {config.device!r}; "
                               "open another renderer for another device")
        self.backend = backends.get(config.backend, self.device.type)
        self.config = config
        self.cache.invalidate("config")

    def render(self, camera_or_rig: Camera | StereoRig, tile_mask: torch.Tensor | None = None, gaze=None,
               rasterize_with=None, pixel_mask: torch.Tensor | None = None) -> Frame:
        """Render a Camera (E = 1) or a StereoRig (E = 2, left then right), reusing what
        ``config.cache`` allows; ``frame.cache`` says what was reused. ``tile_mask`` [E, T] bool
        rasterizes only those tiles (a device's share of a frame; the rest stays background; no
        pixel reuse runs: the mask's sender decided which tiles to rasterize); ``pixel_mask``
        [E, H, W] bool, with it: in those tiles only these pixels.
        ``gaze``: with ``config.foveation``, where the fovea is centred: (x, y) for both eyes or
        one per eye, fractions of the image in [0, 1] (an eye tracker's gaze point); None: the
        image centre (fixed foveation). ``rasterize_with``: with ``config.cache.pixel_reuse``,
        who rasterizes the tiles that reuse leaves (the multi-device renderer passes its
        scheduler: gscache.pixel_reuse.back_with_reuse); None: this renderer."""
        with torch.no_grad():
            views = views_of(camera_or_rig, self.device)
            gaze = parse_gaze(gaze, views.n_views)
            if (views.n_views, views.width, views.height) != self._checked_size:
                check_frame_fits(views.n_views, views.width, views.height, self.device)
                self._checked_size = (views.n_views, views.width, views.height)
            if pixel_mask is not None and (tile_mask is None or pixel_mask.shape != (views.n_views, views.height,
                                                                                     views.width)):
                raise GscacheError(f"pixel_mask: expected [E, H, W] = {[views.n_views, views.height, views.width]} "
                                   f"bool with a tile_mask, got {list(pixel_mask.shape)}"
                                   f"{'' if tile_mask is not None else ' without one'}")
            if pixel_mask is not None:
                pixel_mask = pixel_mask.to(device=self.device, dtype=torch.bool)
            if isinstance(self.scene, StructuredScene):
                return render_structured(self.scene, views, self.config, self.backend, self.cache, tile_mask, gaze,
                                         rasterize_with, pixel_mask)
            return render_views(self.scene, views, self.config, self.backend, self.cache, tile_mask, gaze,
                                rasterize_with, pixel_mask)


def render(scene: Scene | StructuredScene, camera_or_rig: Camera | StereoRig, config: RenderConfig | None = None,
           gaze=None) -> Frame:
    """Render one frame of ``scene``.

    Args:
        scene: the Gaussians (any device; moved to the render device).
        camera_or_rig: a Camera for a mono image or a StereoRig for a stereo pair.
        config: backend, device and stage settings; defaults to RenderConfig().
        gaze: with ``config.foveation``: the fovea's centre, (x, y) or one per eye, fractions of
            the image (see Renderer.render).

    Returns:
        Frame with rgb [E, H, W, 3], alpha and depth [E, H, W], per-stage times and counters.
    """
    return Renderer(scene, config).render(camera_or_rig, gaze=gaze)
