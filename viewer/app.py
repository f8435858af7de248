"""The desktop stereo viewer's ``Viewer``: one window on one scene, put together from the parts in
this package (see its __init__ for which module holds what). A glfw window with an OpenGL 3.3 core
context shows the two eyes side by side (or as a red/cyan anaglyph, or mono), with fly and orbit
controls, a statistics overlay, run-time switches of the reuse mode, foveation and backend,
screenshots and camera-path recording. It uses only the public API (gscache.open_renderer,
StereoRig, ...). The keys are the table keys.BINDINGS; ``keys.help_text()`` prints them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .frame_loop import FrameLoop
from .keys import KeyHandler
from .navigation import Navigation
from .options import ViewerOptions
from .recording import PathRecorder, save_screenshot, save_window
from .session import WindowSession
from .xr_input import SNAP_TURN_DEG
from .xr_session import XrWindowSession
from .status import Notes, status, summary
from .switches import Switches, Toggles


def _forward(part: str, name: str) -> property:
    """The Viewer's attribute ``name``, kept in its part ``part`` (read and written there)."""
    return property(lambda self: getattr(getattr(self, part), name),
                    lambda self, value: setattr(getattr(self, part), name, value))


class Viewer:
    """One window on one scene. ``run()`` loops until the window closes (or ``options.frames``);
    ``step()`` renders one frame (the tests call it directly).

    Its parts: ``session`` (window, GL, renderer; the presenter), ``loop`` (frame loop and
    statistics), ``switches`` and ``toggles`` (run-time settings), ``nav`` (the head), ``keys``,
    ``recorder`` (camera path) and ``notes``. The methods below are what the keys and the glfw
    callbacks call; they hand the work to the parts."""

    # The viewer's state as attributes of the viewer itself (the tests and scripts use them).
    glfw = _forward("session", "glfw")
    window = _forward("session", "window")
    fb_size = _forward("session", "fb_size")
    iconified = _forward("session", "iconified")
    renderer = _forward("session", "renderer")
    upload_path = _forward("session", "upload_path")
    last_pixels = _forward("session", "last_pixels")
    backend = _forward("switches", "backend")
    reuse = _forward("switches", "reuse")
    appearance_index = _forward("switches", "appearance_index")
    foveation = _forward("switches", "foveation")
    show_zones = _forward("switches", "show_zones")
    show_reused = _forward("switches", "show_reused")
    show_overlay = _forward("switches", "show_overlay")
    view_mode = _forward("switches", "view_mode")
    ipd_m = _forward("switches", "ipd_m")
    scale = _forward("switches", "scale")
    target_ms = _forward("switches", "target_ms")
    fly = _forward("nav", "fly")
    orbit = _forward("nav", "orbit")
    home = _forward("nav", "home")
    stats = _forward("loop", "stats")
    frames_rendered = _forward("loop", "frames_rendered")
    last_frame = _forward("loop", "last_frame")
    last_rig = _forward("loop", "last_rig")

    def __init__(self, scene, options: ViewerOptions | None = None) -> None:
        self.options = opts = options or ViewerOptions()
        self.scene = scene
        self.notes = Notes()
        self.switches = Switches.from_options(opts)
        self.session = (XrWindowSession if opts.xr else WindowSession)(scene, opts, self.switches)
        self.nav = Navigation(scene, opts.up, opts.cameras, self.say)
        self.recorder = PathRecorder(opts.record_path, self.say)
        self.loop = FrameLoop(self.session, self.nav, self.switches, self.recorder)
        self.toggles = Toggles(self.switches, self.session, self.loop.stats, self.say)
        self.keys = KeyHandler(self.session.glfw, self, self.nav.held)
        self.session.bind_input(self.on_key, self.on_mouse_button, self.on_cursor, self.on_scroll)
        self.session.overlay_lines = lambda: self.stats.lines(self.status())
        if opts.xr:
            self.session.on_controller = self.on_controller
        self.toggles.reopen()

    @property
    def backend_name(self) -> str:
        return self.renderer.backend.name

    def say(self, text: str) -> None:
        """A short message in the overlay (and the terminal)."""
        self.notes.say(text)

    # ---- what the keys do ---------------------------------------------------------------------
    def cycle_reuse(self) -> None:
        self.toggles.cycle_reuse()

    def cycle_foveation(self) -> None:
        self.toggles.cycle_foveation()

    def cycle_appearance(self) -> None:
        """The next appearance embedding of a model that has them (a novel view's look)."""
        self.toggles.cycle_appearance()

    def cycle_backend(self) -> None:
        self.toggles.cycle_backend()

    def cycle_view_mode(self) -> None:
        self.say(self.switches.next_view_mode())

    def cycle_target(self) -> None:
        self.say(self.switches.next_target())

    def set_ipd(self, ipd: float) -> None:
        self.say(self.switches.set_ipd(ipd))

    def set_scale(self, scale: float) -> None:
        self.say(self.switches.set_scale(scale))

    def set_speed(self, speed: float) -> None:
        self.nav.set_speed(speed)

    def snap_to_camera(self, step: int) -> None:
        self.nav.snap_to_camera(step)

    def reset_view(self) -> None:
        self.nav.reset_view()

    def toggle_orbit(self) -> None:
        self.nav.toggle_orbit()

    def screenshot(self) -> Path | None:
        """Write the last frame's eyes side by side (render resolution) as a PNG."""
        path = save_screenshot(self.last_frame, self.options.screenshot_dir, self.frames_rendered)
        if path is not None:
            self.say(f"screenshot {path}")
        return path

    def toggle_recording(self) -> Path | None:
        """Start recording the head path, or stop and write it (gscache trajectory JSON)."""
        return self.recorder.toggle()

    def quit(self) -> None:
        self.session.quit()

    def on_controller(self, state, pressed: list[str], turn: int) -> None:
        """The headset's controllers (xr_input): the left stick flies, a push of the right one
        snap-turns, the buttons cycle the reuse mode and foveation and reset the view."""
        self.nav.stick = state.move
        if turn:
            self.nav.snap_turn(turn * SNAP_TURN_DEG)
        for button in pressed:
            {"cycle_reuse": self.cycle_reuse, "cycle_foveation": self.cycle_foveation,
             "reset": self.reset_view}[button]()

    # ---- glfw callbacks -----------------------------------------------------------------------
    def on_key(self, window, key, scancode, action, mods) -> None:
        self.keys.on_key(window, key, scancode, action, mods)

    def on_mouse_button(self, window, button, action, mods) -> None:
        self.nav.press_button(action == self.glfw.PRESS)

    def on_cursor(self, window, x: float, y: float) -> None:
        self.nav.move_cursor(x, y)

    def on_scroll(self, window, dx: float, dy: float) -> None:
        self.nav.scroll(dy)

    def on_resize(self, window, width: int, height: int) -> None:
        self.session.on_resize(window, width, height)

    def on_iconify(self, window, iconified) -> None:
        self.session.on_iconify(window, iconified)

    # ---- frames -------------------------------------------------------------------------------
    def pose(self) -> torch.Tensor:
        return self.nav.pose()

    def eye_size(self) -> tuple[int, int]:
        """Per-eye render size from the framebuffer, the view mode and the resolution scale."""
        return self.session.eye_size()

    def render_frame(self):
        """Render the current view; returns the Frame."""
        return self.loop.render_view(self.pose())

    def step(self, dt_s: float | None = None, capture: bool = False) -> bool:
        """Handle input and draw one frame. ``dt_s`` overrides the measured time step (tests);
        ``capture`` keeps what was drawn in ``last_pixels`` (read before the buffers swap).
        Returns False when the window should close."""
        self.session.capture = capture
        return self.loop.step(dt_s)

    def status(self) -> dict[str, str]:
        return status(self)

    def capture_window(self) -> Path:
        """Write what the window last showed (overlay included; needs a step with capture=True)
        as a PNG in the screenshot folder."""
        path = save_window(self.last_pixels, self.options.screenshot_dir)
        print(f"gscache view: wrote {path}")
        return path

    def run(self, capture_window: bool = False) -> int:
        """Loop until the window closes or ``options.frames`` frames are drawn, then (with
        ``capture_window``) save the window's last image; 0 on success."""
        try:
            self.session.capture = capture_window
            self.loop.run(self.options.frames)
            if capture_window and self.last_pixels is not None:
                self.capture_window()
            if self.frames_rendered:
                print(summary(self))
        finally:
            if self.recorder.active:
                self.toggle_recording()  # a recording in progress is written, not lost
            self.close()
        return 0

    def close(self) -> None:
        self.session.close()
