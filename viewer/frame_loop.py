"""The frame loop, shared by every output. One step: events -> head pose -> render -> account ->
present; ``run`` repeats it. The loop renders and accounts (``render_and_account``: render the
views of the head pose, hand the eyes' images over, measure the frame time, adapt the resolution
scale, keep the statistics and the recorded path); a ``Presenter`` decides what to render and
shows it. The desktop window (session.WindowSession) is one presenter. An OpenXR session would be
another, sharing this loop, the switches' toggles (switches.Toggles) and the statistics: ``poll``
handles the session's events, ``views`` builds a StereoRig from xrLocateViews (each eye's field
of view as its intrinsics, the tracked head after the navigation's pose), ``upload`` copies the
eyes into the swapchain images, and ``present`` ends the frame (xrEndFrame)."""

from __future__ import annotations

import time
from typing import Protocol

import torch

from gscache import StereoRig
from gscache.presets import FOVEATION_LEVELS
from gscache.stages.foveate import fovea_layout, parse_gaze, ring_in_eye_pixels

from .images import draw_zones, tint_reused
from .overlay import FrameStats
from .recording import PathRecorder
from .switches import Switches

MAX_DT_S = 0.1
"""The longest time step the head moves by (a stall does not fling it across the scene)."""


class Presenter(Protocol):
    """Where the frames go: it owns the renderer, says what to render, and shows the images."""

    renderer: object
    """The renderer of this output (switches.Toggles may replace it between frames)."""
    gaze: object
    """Where each eye looks in the views returned last (fractions of the image, one (x, y) per
    eye: an eye tracker's), or None (the fovea stays centred)."""

    def poll(self) -> bool:
        """Handle pending events (input, resize); False once the output should close."""

    def visible(self) -> bool:
        """Whether a frame can be shown now (False: minimised, or the headset shows nothing)."""

    def wait(self) -> None:
        """Wait a little for events while nothing is visible (so the loop does not spin)."""

    def views(self, pose: torch.Tensor) -> tuple[object, StereoRig]:
        """What to render for the head pose T_world_head (a StereoRig, or a Camera for one
        eye) and the rig it stands for."""

    def upload(self, rgb: torch.Tensor, frame=None) -> None:
        """Take the eyes' images [E, H, W, 3] float in [0, 1] (counted in the frame time);
        ``frame``: the Frame they come from (its depth, for an output that submits it)."""

    def present(self) -> None:
        """Show the images taken last (not counted in the frame time)."""


class Head(Protocol):
    """The head pose source (navigation.Navigation)."""

    def pose(self) -> torch.Tensor: ...

    def advance(self, dt_s: float) -> None: ...


class FrameLoop:
    """Renders ``head``'s view through ``presenter`` with the ``switches``; keeps the frame
    statistics, the last frame and rig, and (with a ``recorder``) the recorded path."""

    def __init__(self, presenter: Presenter, head: Head, switches: Switches,
                 recorder: PathRecorder | None = None) -> None:
        self.presenter, self.head, self.switches, self.recorder = presenter, head, switches, recorder
        self.stats = FrameStats()
        self.frames_rendered = 0
        self.last_frame = None
        self.last_rig: StereoRig | None = None
        self.last_time = time.perf_counter()

    def tick(self, dt_s: float | None = None) -> float:
        """The time step since the last call (at most MAX_DT_S), or ``dt_s`` when given."""
        now = time.perf_counter()
        dt = min(MAX_DT_S, now - self.last_time) if dt_s is None else dt_s
        self.last_time = now
        return dt

    def render_view(self, pose: torch.Tensor):
        """Render the presenter's views of ``pose`` (kept in ``last_rig``); the Frame."""
        what, self.last_rig = self.presenter.views(pose)
        return self.presenter.renderer.render(what, gaze=self.presenter.gaze)

    def with_tint(self, frame) -> torch.Tensor:
        """The frame's images with the tiles pixel reuse took from the warp tinted when asked for (U)."""
        if not (self.switches.show_reused and frame.reuse is not None and frame.reuse.tile_reused is not None):
            return frame.rgb
        return tint_reused(frame.rgb, frame.reuse.tile_reused, self.presenter.renderer.config.bin.tile_px)

    def with_zones(self, rgb: torch.Tensor) -> torch.Tensor:
        """The eyes' images with the fovea's zones (and the middle ring's) drawn when asked for (Z)
        and foveated."""
        sw = self.switches
        level = FOVEATION_LEVELS[sw.foveation]
        if not (sw.show_zones and level.enabled):
            return rgb
        E, H, W = rgb.shape[:3]
        gaze = parse_gaze(self.presenter.gaze, E)
        ring = ring_in_eye_pixels(W, H, E, level, gaze) if level.has_far else None
        return draw_zones(rgb, fovea_layout(W, H, E, level, gaze), ring)

    def render_and_account(self):
        """Render the head's view and hand it to the presenter, then account for the frame; the
        Frame. The frame time runs from the pose to the hand-over: the copy into the output is
        part of what a frame costs (a run's summary says "render + upload")."""
        start = time.perf_counter()
        pose = self.head.pose()
        frame = self.render_view(pose)
        self.presenter.upload(self.with_zones(self.with_tint(frame)), frame)
        wall_ms = (time.perf_counter() - start) * 1e3
        self.last_frame = frame
        self.frames_rendered += 1
        self.stats.add(frame, wall_ms)
        if self.recorder is not None:
            self.recorder.add(pose)
        self.switches.adapt_scale(wall_ms)
        return frame

    def step(self, dt_s: float | None = None) -> bool:
        """Handle events and draw one frame (``dt_s`` overrides the measured time step); False
        when the output should close."""
        out = self.presenter
        if not out.poll():
            return False
        dt = self.tick(dt_s)
        if not out.visible():
            out.wait()  # minimised: no rendering, no busy loop
            return True
        self.head.advance(dt)
        self.render_and_account()
        out.present()
        return True

    def run(self, frames: int | None = None) -> None:
        """Step until the output closes or ``frames`` frames are drawn."""
        while frames is None or self.frames_rendered < frames:
            if not self.step():
                break
