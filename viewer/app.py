"""The desktop stereo viewer: a glfw window with an OpenGL 3.3 core context showing the two eyes
side by side (or as a red/cyan anaglyph, or mono), fly and orbit controls, a statistics overlay,
run-time switches of the reuse mode and backend, screenshots and camera-path recording.

It uses only the public API (gscache.open_renderer, StereoRig, ...). Keys (also printed by --help):

    W A S D / Q E   fly forward, left, back, right / down, up (orbit: W S zoom)
    mouse + button  look around (fly) or turn the orbit; wheel: fly speed, or orbit distance
    Tab             fly <-> orbit          R        reset the view
    [ ]             IPD -/+ 2 mm           - =      fly speed down / up
    , .             resolution scale down / up       T   cycle the target frame time
    N P             next / previous camera of --cameras (snap)
    V               side by side -> anaglyph -> mono          H   overlay on/off
    M               cycle the reuse mode (none, stereo, approx, D2, D4, D8, dynamic)
    B               cycle the backend      F12      screenshot (PNG of the stereo pair)
    G               next appearance embedding (Octree-GS / Scaffold-GS models that have them)
    F               cycle foveation (off, low, medium, high)   Z   draw the fovea's zones
    K               start / stop recording the camera path (replay: gscache bench --trajectory FILE)
    Esc             quit
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gscache import RenderConfig, StereoRig, backends, open_renderer
from gscache.config import DeriveConfig
from gscache.atomic import atomic_write
from gscache.presets import FOVEATION_LEVELS, REUSE_MODES
from gscache.stages.foveate import fovea_layout
from gscache.camera import Camera, Intrinsics, rigid_inverse
from gscache.errors import GscacheError
from gscache.scene.structured import StructuredScene
from gscache.trajectory import Trajectory, default_head_pose, save_trajectory, scene_frame

from .controls import FlyController, OrbitController
from .overlay import FrameStats, render_text

VIEW_MODES = ("side-by-side", "anaglyph", "mono")
TARGETS_MS = (None, 11.1, 16.7, 33.3, 100.0)
MIN_EYE_PX = 16


class ViewerError(GscacheError):
    """The viewer cannot start (no display, no OpenGL 3.3) or was given bad options."""


@dataclass
class ViewerOptions:
    """How the viewer starts (every setting can be changed at run time with the keys)."""

    width: int = 1280
    """Window width in screen pixels (both eyes side by side)."""
    height: int = 640
    """Window height in screen pixels."""
    fov_y_deg: float = 90.0
    ipd_m: float = 0.063
    view_mode: str = "side-by-side"
    backend: str = "auto"
    device: str | None = None
    reuse: str = "stereo"
    """A reuse mode (gscache.presets.REUSE_MODES)."""
    resolution_scale: float = 1.0
    """Rendered pixels per window pixel (< 1 renders smaller and stretches)."""
    target_ms: float | None = None
    """Frame-time target: the resolution scale adapts to it (useful on a CPU)."""
    frames: int | None = None
    """Render this many frames and exit (scripted use); None runs until the window closes."""
    cameras: Trajectory | None = None
    """The scene's own cameras (N/P snap to them)."""
    up: tuple[float, float, float] = (0.0, -1.0, 0.0)
    screenshot_dir: Path = Path(".")
    record_path: Path = Path("viewer_path.json")
    visible: bool = True
    """Show the window (tests under Xvfb may keep it hidden; rendering is the same)."""
    devices: tuple[str, ...] = ()
    """Spread the stereo frames' tiles over these devices (gscache.multi.parse_devices specs)."""
    appearance_index: int = 0
    """Models with appearance embeddings: the one rendered (G cycles them)."""
    foveation: str = "off"
    """A foveation level (gscache.presets.FOVEATION_LEVELS; F cycles them, Z draws the zones)."""

    def __post_init__(self) -> None:
        if self.view_mode not in VIEW_MODES:
            raise ViewerError(f"--mode: expected one of {', '.join(VIEW_MODES)}, got {self.view_mode!r}")
        if self.reuse not in REUSE_MODES:
            raise ViewerError(f"--reuse: expected one of {', '.join(REUSE_MODES)}, got {self.reuse!r}")
        if self.foveation not in FOVEATION_LEVELS:
            raise ViewerError(f"--foveation: expected one of {', '.join(FOVEATION_LEVELS)}, got {self.foveation!r}")
        if self.foveation != "off" and self.devices:
            raise ViewerError("--foveation with --devices: a frame spread over devices cannot be foveated yet")
        if self.width < 2 * MIN_EYE_PX or self.height < MIN_EYE_PX:
            raise ViewerError(f"--window: expected at least {2 * MIN_EYE_PX}x{MIN_EYE_PX}, got {self.width}x{self.height}")
        if not 0.05 <= self.resolution_scale <= 1.0:
            raise ViewerError(f"--scale: expected a value in [0.05, 1], got {self.resolution_scale}")
        if self.frames is not None and self.frames < 1:
            raise ViewerError(f"--frames: expected >= 1, got {self.frames}")


def draw_zones(rgb: torch.Tensor, layout) -> torch.Tensor:
    """A copy of the eyes' images [E, H, W, 3] with the fovea's exact rectangle outlined in white
    and the outer edge of its blend band in grey (the overlay's zones)."""
    out = rgb.clone()
    for e in range(out.shape[0]):
        for (x0, y0, x1, y1), value in ((layout.outer(e), 0.5), (layout.inner[e], 1.0)):
            x1, y1 = max(x0, x1 - 1), max(y0, y1 - 1)
            out[e, y0, x0:x1 + 1] = value
            out[e, y1, x0:x1 + 1] = value
            out[e, y0:y1 + 1, x0] = value
            out[e, y0:y1 + 1, x1] = value
    return out


def _import_glfw():
    try:
        import glfw
    except ImportError as exc:  # the wheel bundles libglfw; a missing system library lands here too
        raise ViewerError(f"glfw is not usable here ({exc}); install it with `pip install glfw`") from None
    return glfw


def compose(rgb: torch.Tensor, mode: str) -> torch.Tensor:
    """The image to show from the eyes' rgb [E, H, W, 3] float in [0, 1]: side by side
    [H, 2W, 3], a red/cyan anaglyph (red from the left eye, green and blue from the right)
    [H, W, 3], or the first eye [H, W, 3]; uint8, on rgb's device."""
    img = (rgb.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    if mode == "side-by-side" and img.shape[0] == 2:
        return torch.cat([img[0], img[1]], dim=1)
    if mode == "anaglyph" and img.shape[0] == 2:
        out = img[1].clone()
        out[..., 0] = img[0][..., 0]
        return out
    return img[0]


class Viewer:
    """One window on one scene. ``run()`` loops until the window closes (or ``options.frames``);
    ``step()`` renders one frame (the tests call it directly)."""

    def __init__(self, scene, options: ViewerOptions | None = None) -> None:
        self.options = opts = options or ViewerOptions()
        self.scene = scene
        self.glfw = glfw = _import_glfw()
        if not glfw.init():
            raise ViewerError("cannot open a window: glfw found no display (set DISPLAY, or run under Xvfb: "
                              "xvfb-run -s '-screen 0 1920x1080x24' gscache view)")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.VISIBLE, bool(opts.visible))
        self.window = glfw.create_window(opts.width, opts.height, "gscache", None, None)
        if not self.window:
            description = glfw.get_error()[1] if hasattr(glfw, "get_error") else None
            glfw.terminate()
            raise ViewerError("cannot create an OpenGL 3.3 core window"
                              + (f": {description.decode(errors='replace')}" if description else "")
                              + " (the display's OpenGL is too old or missing; Mesa's llvmpipe works)")
        glfw.make_context_current(self.window)
        glfw.swap_interval(0)  # measure the renderer, not the display's refresh
        from .gl import QuadProgram, StreamTexture

        self.quad = QuadProgram()
        self.image = StreamTexture(3)
        self.overlay = StreamTexture(4)
        self.fb_size = glfw.get_framebuffer_size(self.window)
        self.iconified = False
        for setter, fn in ((glfw.set_key_callback, self.on_key), (glfw.set_mouse_button_callback, self.on_mouse_button),
                           (glfw.set_cursor_pos_callback, self.on_cursor), (glfw.set_scroll_callback, self.on_scroll),
                           (glfw.set_framebuffer_size_callback, self.on_resize),
                           (glfw.set_window_iconify_callback, self.on_iconify)):
            setter(self.window, fn)

        self.device = torch.device(opts.device) if opts.device else None
        self.backend = opts.backend
        self.reuse = opts.reuse
        self.appearance_index = opts.appearance_index
        self.foveation = opts.foveation
        self.show_zones = False
        self.view_mode = opts.view_mode
        self.ipd_m = opts.ipd_m
        self.scale = opts.resolution_scale
        self.target_ms = opts.target_ms
        self.show_overlay = True
        self.held: set[str] = set()
        self.dragging = False
        self.cursor: tuple[float, float] | None = None
        self.camera_index = -1
        self.recording: list[tuple[float, torch.Tensor]] | None = None
        self.record_started = 0.0
        self.stats = FrameStats()
        self.frames_rendered = 0
        self.last_frame = None
        self.last_rig = None
        self.last_pixels: np.ndarray | None = None
        self.last_time = time.perf_counter()
        self.overlay_time = 0.0
        self.upload_path = "-"
        self.messages: list[tuple[float, str]] = []
        self.home = default_head_pose(scene, opts.up)
        centre, radius = scene_frame(scene, opts.up)
        self.scene_centre, self.scene_radius = centre, radius
        self.fly = FlyController(self.home, opts.up, speed_m_s=0.5 * radius)
        self.orbit: OrbitController | None = None
        self._make_renderer()

    # ---- state changes ------------------------------------------------------------------
    def _make_renderer(self) -> None:
        cfg = RenderConfig(backend=self.backend, device=str(self.device) if self.device else None,
                           cache=REUSE_MODES[self.reuse], derive=DeriveConfig(appearance_index=self.appearance_index),
                           foveation=FOVEATION_LEVELS[self.foveation])
        if getattr(self, "renderer", None) is not None:
            self.renderer.close()  # stops its worker processes
        self.renderer = open_renderer(self.scene, cfg, devices=list(self.options.devices) or None)
        self.backend_name = self.renderer.backend.name
        self.stats.reset()

    def say(self, text: str) -> None:
        """A short message in the overlay (and the terminal)."""
        print(f"gscache view: {text}")
        self.messages = [(time.perf_counter(), text)]

    def cycle_reuse(self) -> None:
        names = list(REUSE_MODES)
        self.reuse = names[(names.index(self.reuse) + 1) % len(names)]
        self._make_renderer()
        self.say(f"reuse mode {self.reuse}")

    def cycle_foveation(self) -> None:
        if self.options.devices:
            self.say("foveation needs one device (this view spreads its tiles over several)")
            return
        names = list(FOVEATION_LEVELS)
        self.foveation = names[(names.index(self.foveation) + 1) % len(names)]
        self.renderer.set_config(dataclasses.replace(self.renderer.config, foveation=FOVEATION_LEVELS[self.foveation]))
        self.stats.reset()
        self.say(f"foveation {self.foveation}")

    def cycle_appearance(self) -> None:
        """The next appearance embedding of a model that has them (a novel view's look)."""
        table = getattr(getattr(self.scene, "mlps", None), "appearance", None)
        if table is None:
            self.say("this scene has no appearance embeddings")
            return
        self.appearance_index = (self.appearance_index + 1) % table.shape[0]
        self.renderer.set_config(dataclasses.replace(self.renderer.config, derive=dataclasses.replace(
            self.renderer.config.derive, appearance_index=self.appearance_index)))
        self.say(f"appearance embedding {self.appearance_index} of {table.shape[0]}")

    def cycle_backend(self) -> None:
        device_type = self.renderer.device.type
        usable = []
        for name, status in backends.available().items():
            if status == "ok" and not backends.by_name_only(name):
                try:
                    backends.get(name, device_type)
                    usable.append(name)
                except GscacheError:
                    continue
        current = self.renderer.backend.name
        self.backend = usable[(usable.index(current) + 1) % len(usable)] if current in usable else usable[0]
        self._make_renderer()
        self.say(f"backend {self.backend_name}")

    def snap_to_camera(self, step: int) -> None:
        cams = self.options.cameras
        if cams is None or len(cams) == 0:
            self.say("no --cameras given: nothing to snap to")
            return
        self.camera_index = (self.camera_index + step) % len(cams)
        self.orbit = None
        self.fly.set_pose(cams.T_world_head[self.camera_index])
        self.say(f"camera {self.camera_index + 1}/{len(cams)}")

    def reset_view(self) -> None:
        self.orbit = None
        self.fly.set_pose(self.home)
        self.say("view reset")

    def toggle_orbit(self) -> None:
        if self.orbit is None:
            self.orbit = OrbitController.around(self.fly, self.scene_centre)
            self.say("orbit mode")
        else:
            self.fly.set_pose(self.orbit.pose())
            self.orbit = None
            self.say("fly mode")

    def screenshot(self) -> Path | None:
        """Write the last frame's eyes side by side (render resolution) as a PNG."""
        from PIL import Image

        if self.last_frame is None:
            return None
        image = compose(self.last_frame.rgb, "side-by-side").cpu().numpy()
        self.options.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.options.screenshot_dir / f"gscache_{time.strftime('%Y%m%d_%H%M%S')}_{self.frames_rendered:05d}.png"
        with atomic_write(path) as f:
            Image.fromarray(image).save(f, format="PNG")
        self.say(f"screenshot {path}")
        return path

    def toggle_recording(self) -> Path | None:
        """Start recording the head path, or stop and write it (gscache trajectory JSON)."""
        if self.recording is None:
            self.recording = []
            self.record_started = time.perf_counter()
            self.say("recording the camera path (K stops)")
            return None
        poses, self.recording = self.recording, None
        if not poses:
            self.say("recording stopped: no frame was rendered")
            return None
        times = torch.tensor([t for t, _ in poses], dtype=torch.float64)
        traj = Trajectory(torch.stack([p for _, p in poses]), times - times[0], "viewer recording")
        save_trajectory(traj, self.options.record_path)
        self.say(f"wrote {len(poses)} poses to {self.options.record_path}")
        return self.options.record_path

    # ---- glfw callbacks -------------------------------------------------------------------
    def on_key(self, window, key, scancode, action, mods) -> None:
        g = self.glfw
        moves = {g.KEY_W: "forward", g.KEY_S: "back", g.KEY_A: "left", g.KEY_D: "right", g.KEY_Q: "down",
                 g.KEY_E: "up"}
        if key in moves:
            if action == g.PRESS:
                self.held.add(moves[key])
            elif action == g.RELEASE:
                self.held.discard(moves[key])
            return
        if action != g.PRESS:
            return
        actions = {
            g.KEY_ESCAPE: lambda: g.set_window_should_close(window, True),
            g.KEY_TAB: self.toggle_orbit,
            g.KEY_R: self.reset_view,
            g.KEY_V: lambda: self._set_view_mode(VIEW_MODES[(VIEW_MODES.index(self.view_mode) + 1) % len(VIEW_MODES)]),
            g.KEY_M: self.cycle_reuse,
            g.KEY_B: self.cycle_backend,
            g.KEY_G: self.cycle_appearance,
            g.KEY_F: self.cycle_foveation,
            g.KEY_Z: lambda: setattr(self, "show_zones", not self.show_zones),
            g.KEY_N: lambda: self.snap_to_camera(1),
            g.KEY_P: lambda: self.snap_to_camera(-1),
            g.KEY_LEFT_BRACKET: lambda: self._set_ipd(self.ipd_m - 0.002),
            g.KEY_RIGHT_BRACKET: lambda: self._set_ipd(self.ipd_m + 0.002),
            g.KEY_MINUS: lambda: self._set_speed(self.fly.speed_m_s / 1.5),
            g.KEY_EQUAL: lambda: self._set_speed(self.fly.speed_m_s * 1.5),
            g.KEY_COMMA: lambda: self._set_scale(self.scale / 1.25),
            g.KEY_PERIOD: lambda: self._set_scale(self.scale * 1.25),
            g.KEY_T: self._cycle_target,
            g.KEY_H: lambda: setattr(self, "show_overlay", not self.show_overlay),
            g.KEY_F12: self.screenshot,
            g.KEY_K: self.toggle_recording,
        }
        if key in actions:
            actions[key]()

    def _set_view_mode(self, mode: str) -> None:
        self.view_mode = mode
        self.say(f"view {mode}")

    def _set_ipd(self, ipd: float) -> None:
        self.ipd_m = min(0.1, max(0.0, ipd))
        self.say(f"IPD {self.ipd_m * 1000:.0f} mm")

    def _set_speed(self, speed: float) -> None:
        self.fly.speed_m_s = speed
        self.say(f"fly speed {speed:.3g} m/s")

    def _set_scale(self, scale: float) -> None:
        self.scale = min(1.0, max(0.05, scale))
        self.say(f"resolution scale {self.scale:.2f}")

    def _cycle_target(self) -> None:
        self.target_ms = TARGETS_MS[(TARGETS_MS.index(self.target_ms) + 1) % len(TARGETS_MS)] \
            if self.target_ms in TARGETS_MS else None
        self.say(f"target frame time {self.target_ms or 'off'}")

    def on_mouse_button(self, window, button, action, mods) -> None:
        self.dragging = action == self.glfw.PRESS
        self.cursor = None

    def on_cursor(self, window, x: float, y: float) -> None:
        if self.dragging and self.cursor is not None:
            dx, dy = x - self.cursor[0], y - self.cursor[1]
            if self.orbit is not None:
                self.orbit.drag(dx, dy)
            else:
                self.fly.look(dx, dy)
        self.cursor = (x, y)

    def on_scroll(self, window, dx: float, dy: float) -> None:
        if self.orbit is not None:
            self.orbit.zoom(dy)
        else:
            self._set_speed(self.fly.speed_m_s * 1.25 ** dy)

    def on_resize(self, window, width: int, height: int) -> None:
        self.fb_size = (width, height)

    def on_iconify(self, window, iconified) -> None:
        self.iconified = bool(iconified)

    # ---- frames ---------------------------------------------------------------------------
    def pose(self) -> torch.Tensor:
        return self.orbit.pose() if self.orbit is not None else self.fly.pose()

    def eye_size(self) -> tuple[int, int]:
        """Per-eye render size from the framebuffer, the view mode and the resolution scale."""
        fb_w, fb_h = self.fb_size
        w = fb_w // 2 if self.view_mode == "side-by-side" else fb_w
        return max(MIN_EYE_PX, int(w * self.scale)), max(MIN_EYE_PX, int(fb_h * self.scale))

    def render_frame(self):
        """Render the current view; returns the Frame."""
        w, h = self.eye_size()
        pose = self.pose()
        if self.view_mode == "mono":
            intr = Intrinsics.from_fov(self.options.fov_y_deg, w, h)
            what = Camera(intr, rigid_inverse(pose))
            self.last_rig = StereoRig.symmetric(pose, w, h, self.options.fov_y_deg, 0.0)
        else:
            what = self.last_rig = StereoRig.symmetric(pose, w, h, self.options.fov_y_deg, self.ipd_m)
        return self.renderer.render(what)

    def step(self, dt_s: float | None = None, capture: bool = False) -> bool:
        """Handle input and draw one frame. ``dt_s`` overrides the measured time step (tests);
        ``capture`` keeps what was drawn in ``last_pixels`` (read before the buffers swap).
        Returns False when the window should close."""
        g = self.glfw
        g.poll_events()
        if g.window_should_close(self.window):
            return False
        now = time.perf_counter()
        dt = min(0.1, now - self.last_time) if dt_s is None else dt_s
        self.last_time = now
        if self.iconified or self.fb_size[0] < 2 or self.fb_size[1] < 1:
            g.wait_events_timeout(0.1)  # minimised: no rendering, no busy loop
            return True
        if self.orbit is not None:
            zoom = ("forward" in self.held) - ("back" in self.held)
            if zoom:
                self.orbit.zoom(zoom * dt * 5.0)
        else:
            self.fly.move(self.held, dt)
        from OpenGL import GL

        start = time.perf_counter()
        frame = self.render_frame()
        rgb = frame.rgb
        if self.show_zones and FOVEATION_LEVELS[self.foveation].enabled:
            rgb = draw_zones(rgb, fovea_layout(rgb.shape[2], rgb.shape[1], rgb.shape[0],
                                               FOVEATION_LEVELS[self.foveation], None))
        image = compose(rgb, self.view_mode)
        self.upload_path = self.image.upload(image)
        wall_ms = (time.perf_counter() - start) * 1e3
        self.last_frame = frame
        self.frames_rendered += 1
        self.stats.add(frame, wall_ms)
        if self.recording is not None:
            self.recording.append((time.perf_counter() - self.record_started, self.pose()))
        self._adapt_scale(wall_ms)
        fb_w, fb_h = self.fb_size
        GL.glViewport(0, 0, fb_w, fb_h)
        GL.glClearColor(0.0, 0.0, 0.0, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        self.quad.draw(self.image.texture, -1.0, -1.0, 1.0, 1.0)
        if self.show_overlay:
            self._draw_overlay(fb_w, fb_h)
        if capture:
            from .gl import read_framebuffer

            self.last_pixels = read_framebuffer(fb_w, fb_h)
        g.swap_buffers(self.window)
        return True

    def _foveation_text(self) -> str:
        fov = FOVEATION_LEVELS[self.foveation]
        if not fov.enabled:
            return "off (F cycles the levels)"
        return (f"{self.foveation}: exact fovea {fov.fovea[0]:.0%} x {fov.fovea[1]:.0%} of the eye, periphery at "
                f"{fov.periphery_scale:.2g}x resolution" + (" (zones drawn)" if self.show_zones else " (Z: zones)"))

    def _adapt_scale(self, frame_ms: float) -> None:
        if self.target_ms is None:
            return
        if frame_ms > 1.1 * self.target_ms:
            self.scale = max(0.05, self.scale * 0.9)
        elif frame_ms < 0.7 * self.target_ms:
            self.scale = min(1.0, self.scale * 1.05)

    def status(self) -> dict[str, str]:
        w, h = self.eye_size()
        status = {
            "backend": f"{self.backend_name} on {self.renderer.device} (upload: {self.upload_path})",
            "reuse": self.reuse + (" (structured: derived Gaussians cached)" if isinstance(self.scene, StructuredScene) else "")
            + (f", appearance {self.appearance_index}" if getattr(getattr(self.scene, "mlps", None), "appearance", None)
               is not None else ""),
            "view": f"{self.view_mode}, {w}x{h} per eye, scale {self.scale:.2f}, target "
                    f"{f'{self.target_ms} ms' if self.target_ms else 'off'}",
            "foveation": self._foveation_text(),
            "camera": f"{'orbit' if self.orbit is not None else 'fly'}, IPD {self.ipd_m * 1000:.0f} mm, "
                      f"speed {self.fly.speed_m_s:.3g} m/s" + (", recording" if self.recording is not None else ""),
        }
        schedule = getattr(self.last_frame, "schedule", None)
        if schedule is not None:
            status["devices"] = (f"{schedule.active}/{len(schedule.devices)} active, balance {schedule.balance:.2f}: "
                                 + ", ".join(f"{d.name} {d.state.split(':')[0]}" for d in schedule.devices))
        if self.messages and time.perf_counter() - self.messages[-1][0] < 3.0:
            status["note"] = self.messages[-1][1]
        return status

    def _draw_overlay(self, fb_w: int, fb_h: int) -> None:
        now = time.perf_counter()
        if now - self.overlay_time > 0.25 or self.overlay.shape == (0, 0):
            self.overlay_time = now
            panel = render_text(self.stats.lines(self.status()), scale=1 if fb_h < 700 else 2)
            self.overlay.upload(torch.from_numpy(panel.copy()))
        ph, pw = self.overlay.shape
        x1 = -1.0 + 2.0 * min(pw, fb_w) / fb_w
        y0 = 1.0 - 2.0 * min(ph, fb_h) / fb_h
        self.quad.draw(self.overlay.texture, -1.0, y0, x1, 1.0, blend=True)

    def capture_window(self) -> Path:
        """Write what the window last showed (overlay included; needs a step with capture=True)
        as a PNG in the screenshot folder."""
        from PIL import Image

        self.options.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.options.screenshot_dir / f"gscache_window_{time.strftime('%Y%m%d_%H%M%S')}.png"
        with atomic_write(path) as f:
            Image.fromarray(self.last_pixels).save(f, format="PNG")
        print(f"gscache view: wrote {path}")
        return path

    def run(self, capture_window: bool = False) -> int:
        """Loop until the window closes or ``options.frames`` frames are drawn, then (with
        ``capture_window``) save the window's last image; 0 on success."""
        try:
            while self.options.frames is None or self.frames_rendered < self.options.frames:
                if not self.step(capture=capture_window):
                    break
            if capture_window and self.last_pixels is not None:
                self.capture_window()
            if self.frames_rendered:
                w, h = self.eye_size()
                ms = self.stats.median_ms
                print(f"gscache view: {self.frames_rendered} frames; median of the last {len(self.stats.frame_ms)}: "
                      f"{ms:.1f} ms ({1000.0 / ms if ms > 0 else 0.0:.1f} FPS), render + upload, backend "
                      f"{self.backend_name}, reuse {self.reuse}, {self.view_mode} {w}x{h} per eye")
        finally:
            if self.recording is not None:
                self.toggle_recording()  # a recording in progress is written, not lost
            self.close()
        return 0

    def close(self) -> None:
        if getattr(self, "renderer", None) is not None:
            self.renderer.close()
        if self.window is not None:
            self.glfw.destroy_window(self.window)
            self.window = None
            self.glfw.terminate()
