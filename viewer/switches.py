"""The run-time switches: the settings the keys change (reuse mode, foveation, appearance
embedding, backend, view mode, IPD, resolution scale, target frame time, what is drawn) in
``Switches``, and in ``Toggles`` the changes that reach the renderer. Nothing here knows the
window: any session that owns a renderer (a ``RendererOwner``: the desktop window now, an OpenXR
session later) takes the same toggles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch

from gscache import RenderConfig, backends
from gscache.config import DeriveConfig
from gscache.errors import GscacheError
from gscache.presets import FOVEATION_LEVELS, REUSE_MODES

from .options import TARGETS_MS, VIEW_MODES, ViewerOptions


def next_of(choices: Sequence, current):
    """The choice after ``current`` (wrapping around)."""
    return choices[(choices.index(current) + 1) % len(choices)]


@dataclass
class Switches:
    """The settings that change at run time, starting from the ViewerOptions."""

    backend: str
    reuse: str
    appearance_index: int
    foveation: str
    view_mode: str
    ipd_m: float
    scale: float
    """Rendered pixels per output pixel."""
    target_ms: float | None
    device: str | None = None
    """The torch device renderers open on (--device as given; not switched)."""
    show_zones: bool = False
    show_reused: bool = False
    """Pixel reuse's debug view: the tiles taken from the warp tinted."""
    show_overlay: bool = True

    @classmethod
    def from_options(cls, opts: ViewerOptions) -> "Switches":
        return cls(backend=opts.backend, reuse=opts.reuse, appearance_index=opts.appearance_index,
                   foveation=opts.foveation, view_mode=opts.view_mode, ipd_m=opts.ipd_m,
                   scale=opts.resolution_scale, target_ms=opts.target_ms, device=opts.device)

    def render_config(self) -> RenderConfig:
        # Checked by torch.device: a bad --device fails here, when the first renderer opens.
        device = str(torch.device(self.device)) if self.device else None
        return RenderConfig(backend=self.backend, device=device, cache=REUSE_MODES[self.reuse],
                            derive=DeriveConfig(appearance_index=self.appearance_index),
                            foveation=FOVEATION_LEVELS[self.foveation])

    def adapt_scale(self, frame_ms: float) -> None:
        """Move the resolution scale towards the target frame time (no target: unchanged)."""
        if self.target_ms is None:
            return
        if frame_ms > 1.1 * self.target_ms:
            self.scale = max(0.05, self.scale * 0.9)
        elif frame_ms < 0.7 * self.target_ms:
            self.scale = min(1.0, self.scale * 1.05)

    # The value switches: each returns the note the viewer shows.
    def next_view_mode(self) -> str:
        self.view_mode = next_of(VIEW_MODES, self.view_mode)
        return f"view {self.view_mode}"

    def set_ipd(self, ipd: float) -> str:
        self.ipd_m = min(0.1, max(0.0, ipd))
        return f"IPD {self.ipd_m * 1000:.0f} mm"

    def set_scale(self, scale: float) -> str:
        self.scale = min(1.0, max(0.05, scale))
        return f"resolution scale {self.scale:.2f}"

    def next_target(self) -> str:
        # A --target-ms that is not one of TARGETS_MS turns the target off.
        self.target_ms = next_of(TARGETS_MS, self.target_ms) if self.target_ms in TARGETS_MS else None
        return f"target frame time {self.target_ms or 'off'}"


class RendererOwner(Protocol):
    """A session that owns a renderer of a scene (session.WindowSession; later an OpenXR session)."""

    scene: object
    devices: tuple[str, ...]
    """The devices its frames' tiles are spread over (none: one device)."""
    renderer: object

    def open_renderer(self, config: RenderConfig) -> None:
        """Replace the renderer by one with ``config`` (closing the old one)."""


def usable_backends(device_type: str) -> list[str]:
    """The backends the B key cycles through on this device type (those "auto" may pick)."""
    usable = []
    for name, status in backends.available().items():
        if status == "ok" and not backends.by_name_only(name):
            try:
                backends.get(name, device_type)
                usable.append(name)
            except GscacheError:
                continue
    return usable


class Toggles:
    """The switches that reach the renderer (the M, B, F and G keys): ``owner`` owns it, ``stats``
    (overlay.FrameStats) restarts where the frame times stop being comparable, ``say`` shows a
    note."""

    def __init__(self, switches: Switches, owner: RendererOwner, stats, say: Callable[[str], None]) -> None:
        self.switches, self.owner, self.stats, self.say = switches, owner, stats, say

    def reopen(self) -> None:
        """A new renderer for the switches (the old one is closed: it stops its worker processes)."""
        self.owner.open_renderer(self.switches.render_config())
        self.stats.reset()

    def cycle_reuse(self) -> None:
        self.switches.reuse = next_of(list(REUSE_MODES), self.switches.reuse)
        self.reopen()
        self.say(f"reuse mode {self.switches.reuse}")

    def cycle_foveation(self) -> None:
        if self.owner.devices:
            self.say("foveation needs one device (this view spreads its tiles over several)")
            return
        sw, renderer = self.switches, self.owner.renderer
        sw.foveation = next_of(list(FOVEATION_LEVELS), sw.foveation)
        renderer.set_config(dataclasses.replace(renderer.config, foveation=FOVEATION_LEVELS[sw.foveation]))
        self.stats.reset()
        self.say(f"foveation {sw.foveation}")

    def cycle_appearance(self) -> None:
        """The next appearance embedding of a model that has them (a novel view's look)."""
        table = getattr(getattr(self.owner.scene, "mlps", None), "appearance", None)
        if table is None:
            self.say("this scene has no appearance embeddings")
            return
        sw, renderer = self.switches, self.owner.renderer
        sw.appearance_index = (sw.appearance_index + 1) % table.shape[0]
        renderer.set_config(dataclasses.replace(renderer.config, derive=dataclasses.replace(
            renderer.config.derive, appearance_index=sw.appearance_index)))
        self.say(f"appearance embedding {sw.appearance_index} of {table.shape[0]}")

    def cycle_backend(self) -> None:
        usable = usable_backends(self.owner.renderer.device.type)
        current = self.owner.renderer.backend.name
        self.switches.backend = next_of(usable, current) if current in usable else usable[0]
        self.reopen()
        self.say(f"backend {self.owner.renderer.backend.name}")
