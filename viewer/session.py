"""The desktop window session: a glfw window with an OpenGL 3.3 core context, the GL objects that
show the frames (a textured-rectangle program, the image and overlay textures), and the renderer
it owns. WindowSession creates and closes them, tracks the window's events (resize, minimise)
and is the frame loop's presenter (frame_loop.Presenter): it picks the per-eye size from the
framebuffer, composes the eyes into the window, draws the overlay and swaps."""

from __future__ import annotations

import time
from typing import Callable

import torch

from gscache import RenderConfig, StereoRig, open_renderer
from gscache.camera import Camera, Intrinsics, rigid_inverse

from .images import compose
from .options import MIN_EYE_PX, ViewerError, ViewerOptions
from .overlay import render_text
from .switches import Switches

OVERLAY_REFRESH_S = 0.25
"""How often the overlay's text is redrawn: every frame would add a Pillow render and a texture
upload to each frame, and figures changing that fast cannot be read."""


def import_glfw():
    try:
        import glfw
    except ImportError as exc:  # the wheel bundles libglfw; a missing system library lands here too
        raise ViewerError(f"glfw is not usable here ({exc}); install it with `pip install glfw`") from None
    return glfw


def create_window(glfw, opts: ViewerOptions):
    """An OpenGL 3.3 core window of the options' size (glfw initialised here)."""
    if not glfw.init():
        raise ViewerError("cannot open a window: glfw found no display (set DISPLAY, or run under Xvfb: "
                          "xvfb-run -s '-screen 0 1920x1080x24' gscache view)")
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
    glfw.window_hint(glfw.VISIBLE, bool(opts.visible))
    window = glfw.create_window(opts.width, opts.height, "gscache", None, None)
    if not window:
        description = glfw.get_error()[1] if hasattr(glfw, "get_error") else None
        glfw.terminate()
        raise ViewerError("cannot create an OpenGL 3.3 core window"
                          + (f": {description.decode(errors='replace')}" if description else "")
                          + " (the display's OpenGL is too old or missing; Mesa's llvmpipe works)")
    return window


class WindowSession:
    """One window showing ``scene`` as the ``switches`` say (view mode, resolution scale, IPD,
    overlay). ``capture`` keeps what each present drew in ``last_pixels`` (read before the swap);
    ``overlay_lines`` gives the overlay's text."""

    gaze = None  # a desktop window tracks no eyes: the fovea stays centred (frame_loop.Presenter)

    def __init__(self, scene, options: ViewerOptions, switches: Switches) -> None:
        self.scene, self.options, self.switches = scene, options, switches
        self.devices = options.devices
        self.glfw = glfw = import_glfw()
        self.window = create_window(glfw, options)
        glfw.make_context_current(self.window)
        glfw.swap_interval(0)  # measure the renderer, not the display's refresh
        from .gl import QuadProgram, StreamTexture

        self.quad = QuadProgram()
        self.image = StreamTexture(3)
        self.overlay = StreamTexture(4)
        self.fb_size = glfw.get_framebuffer_size(self.window)
        self.iconified = False
        glfw.set_framebuffer_size_callback(self.window, self.on_resize)
        glfw.set_window_iconify_callback(self.window, self.on_iconify)
        self.renderer = None
        self.upload_path = "-"
        self.capture = False
        self.last_pixels = None
        self.overlay_lines: Callable[[], list[str]] = list
        self.overlay_time = 0.0

    def bind_input(self, on_key, on_mouse_button, on_cursor, on_scroll) -> None:
        """Route the window's keyboard and mouse to these glfw callbacks."""
        g = self.glfw
        for setter, fn in ((g.set_key_callback, on_key), (g.set_mouse_button_callback, on_mouse_button),
                           (g.set_cursor_pos_callback, on_cursor), (g.set_scroll_callback, on_scroll)):
            setter(self.window, fn)

    def open_renderer(self, config: RenderConfig) -> None:
        if self.renderer is not None:
            self.renderer.close()  # stops its worker processes
        self.renderer = open_renderer(self.scene, config, devices=list(self.devices) or None)

    def quit(self) -> None:
        """Ask the loop to end (as closing the window does)."""
        self.glfw.set_window_should_close(self.window, True)

    def on_resize(self, window, width: int, height: int) -> None:
        self.fb_size = (width, height)

    def on_iconify(self, window, iconified) -> None:
        self.iconified = bool(iconified)

    # ---- frame_loop.Presenter ---------------------------------------------------------------
    def poll(self) -> bool:
        self.glfw.poll_events()
        return not self.glfw.window_should_close(self.window)

    def visible(self) -> bool:
        return not (self.iconified or self.fb_size[0] < 2 or self.fb_size[1] < 1)

    def wait(self) -> None:
        self.glfw.wait_events_timeout(0.1)

    def eye_size(self) -> tuple[int, int]:
        """Per-eye render size from the framebuffer, the view mode and the resolution scale."""
        fb_w, fb_h = self.fb_size
        scale = self.switches.scale
        w = fb_w // 2 if self.switches.view_mode == "side-by-side" else fb_w
        return max(MIN_EYE_PX, int(w * scale)), max(MIN_EYE_PX, int(fb_h * scale))

    def views(self, pose: torch.Tensor):
        """A symmetric stereo rig at ``pose`` of the window's eye size; in mono the head's own
        camera, with a rig of IPD 0 standing for it."""
        w, h = self.eye_size()
        fov, sw = self.options.fov_y_deg, self.switches
        if sw.view_mode == "mono":
            camera = Camera(Intrinsics.from_fov(fov, w, h), rigid_inverse(pose))
            return camera, StereoRig.symmetric(pose, w, h, fov, 0.0)
        rig = StereoRig.symmetric(pose, w, h, fov, sw.ipd_m)
        return rig, rig

    def upload(self, rgb: torch.Tensor, frame=None) -> None:
        self.upload_path = self.image.upload(compose(rgb, self.switches.view_mode))

    def present(self) -> None:
        from OpenGL import GL

        fb_w, fb_h = self.fb_size
        GL.glViewport(0, 0, fb_w, fb_h)
        GL.glClearColor(0.0, 0.0, 0.0, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        self.quad.draw(self.image.texture, -1.0, -1.0, 1.0, 1.0)
        if self.switches.show_overlay:
            self._draw_overlay(fb_w, fb_h)
        if self.capture:
            from .gl import read_framebuffer

            self.last_pixels = read_framebuffer(fb_w, fb_h)
        self.glfw.swap_buffers(self.window)

    def _draw_overlay(self, fb_w: int, fb_h: int) -> None:
        now = time.perf_counter()
        if now - self.overlay_time > OVERLAY_REFRESH_S or self.overlay.shape == (0, 0):
            self.overlay_time = now
            panel = render_text(self.overlay_lines(), scale=1 if fb_h < 700 else 2)
            self.overlay.upload(torch.from_numpy(panel.copy()))
        ph, pw = self.overlay.shape
        x1 = -1.0 + 2.0 * min(pw, fb_w) / fb_w
        y0 = 1.0 - 2.0 * min(ph, fb_h) / fb_h
        self.quad.draw(self.overlay.texture, -1.0, y0, x1, 1.0, blend=True)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
        if self.window is not None:
            self.glfw.destroy_window(self.window)
            self.window = None
            self.glfw.terminate()
