"""The OpenXR output: ``XrWindowSession`` is a frame_loop.Presenter that renders what the headset's
runtime locates and submits it, while its desktop window mirrors both eyes (it is the desktop
WindowSession, whose OpenGL context the runtime shares through XR_KHR_opengl_enable's Xlib/GLX
binding).

One frame, in the frame loop's order:
``poll``: glfw's events and the runtime's (xrPollEvent; the session's lifecycle, xr_state);
``views``: xrWaitFrame, xrBeginFrame, then xrLocateViews at the predicted display time in the
LOCAL space, whose origin the viewer puts at its navigation's head pose (xr_views); ``upload``:
each eye into its swapchain's next image (xr_formats: the format, gamma, the row flip) and into
the mirror; ``present``: xrEndFrame with one projection layer carrying the located poses and
fields of view (no layer when the runtime said not to render), then the mirror's swap.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections import deque

import numpy as np
import torch

from gscache.camera import views_of
from gscache.errors import GscacheError

from .session import WindowSession
from .xr_input import ControllerActions, ControllerState, InputEdges
from .xr_formats import choose_color_format, choose_depth_format, swapchain_pixels, window_depth
from .xr_runtime import import_openxr
from .xr_state import FrameOrder, Lifecycle, SessionState
from .xr_late import LATE_PARALLAX_M, RotationResampler, view_angle_deg
from .xr_views import gaze_fractions, level, plain_view, rig_from_views

GLX_FBCONFIG_ID = 0x8013
GLX_SCREEN = 0x800C
"""GLX attributes of glXQueryContext / glXChooseFBConfig (GL/glx.h)."""


def glx_binding(xr):
    """XrGraphicsBindingOpenGLXlibKHR of the current GLX context (the mirror window's): the
    display, its frame-buffer configuration and visual (found from the context's
    GLX_FBCONFIG_ID and GLX_SCREEN), the drawable and the context: every field filled, as the
    specification asks."""
    from OpenGL import GLX

    display = GLX.glXGetCurrentDisplay()
    context = GLX.glXGetCurrentContext()
    drawable = GLX.glXGetCurrentDrawable()
    if not context:
        raise GscacheError("--xr: no current GLX context (OpenXR's OpenGL binding needs an X11 window)")
    fb_id, screen = ctypes.c_int(0), ctypes.c_int(0)
    GLX.glXQueryContext(display, context, GLX_FBCONFIG_ID, ctypes.byref(fb_id))
    GLX.glXQueryContext(display, context, GLX_SCREEN, ctypes.byref(screen))
    attrs = (ctypes.c_int * 3)(GLX_FBCONFIG_ID, fb_id.value, 0)
    count = ctypes.c_int(0)
    configs = GLX.glXChooseFBConfig(display, screen.value, attrs, ctypes.byref(count))
    if not configs or count.value < 1:
        raise GscacheError("--xr: the window's GLX frame-buffer configuration was not found")
    fb_config = configs[0]
    visual = GLX.glXGetVisualFromFBConfig(display, fb_config)
    visualid = int(visual.contents.visualid) if visual else 0
    return xr.GraphicsBindingOpenGLXlibKHR(x_display=display, visualid=visualid, glx_fbconfig=fb_config,
                                           glx_drawable=drawable, glx_context=context)


KEPT_FRAMES = 1000
"""Per-frame figures kept for the medians (the last this many: a long session stays bounded)."""


class StageClock:
    """Milliseconds per stage of the frames, from xrWaitFrame's call to xrEndFrame's return;
    ``medians()`` over the frames so far."""

    def __init__(self) -> None:
        self.samples: dict[str, deque] = {}
        self.mark = None

    def start(self) -> None:
        self.mark = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.mark is not None:
            self.samples.setdefault(stage, deque(maxlen=KEPT_FRAMES)).append((now - self.mark) * 1e3)
        self.mark = now

    def done(self) -> None:
        self.mark = None

    def medians(self) -> dict[str, float]:
        return {k: float(np.median(v)) for k, v in self.samples.items()}


class XrOutput:
    """The OpenXR objects of one run: instance, system, session, LOCAL space, a swapchain per
    eye, and the frame being built. ``size`` is the per-eye render and swapchain size (the
    runtime's recommendation times ``scale``)."""

    def __init__(self, scale: float) -> None:
        self.xr = xr = import_openxr()
        names = {p.extension_name.decode() for p in xr.enumerate_instance_extension_properties()}
        if xr.KHR_OPENGL_ENABLE_EXTENSION_NAME not in names:
            raise GscacheError("--xr: the OpenXR runtime has no OpenGL support (XR_KHR_opengl_enable)")
        # The depth layer where the runtime offers it: its own reprojection can then use depth.
        self.depth_layer = xr.KHR_COMPOSITION_LAYER_DEPTH_EXTENSION_NAME in names
        # Eye tracking where offered: the fovea follows the gaze (xr_input.ControllerActions.gaze).
        gaze_extension = xr.EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME in names
        enabled = [xr.KHR_OPENGL_ENABLE_EXTENSION_NAME] + ([xr.KHR_COMPOSITION_LAYER_DEPTH_EXTENSION_NAME]
                                                          if self.depth_layer else []) \
            + ([xr.EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME] if gaze_extension else [])
        self.instance = xr.create_instance(xr.InstanceCreateInfo(
            application_info=xr.ApplicationInfo(application_name="gscache", engine_name="gscache"),
            enabled_extension_names=enabled))
        self.session = self.space = self.controls = None
        self.eye_tracking = False
        """The runtime tracks the eyes (XR_EXT_eye_gaze_interaction, supported by the system)."""
        self.gaze: list[tuple[float, float]] | None = None
        """This frame's gaze per eye, fractions of each eye's image (None: fixed foveation)."""
        self.swapchains: list = []
        self.depth_swapchains: list = []
        try:
            self.system = xr.get_system(self.instance, xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))
            # The specification asks for the graphics requirements before the session.
            pfn = ctypes.cast(xr.get_instance_proc_addr(self.instance, "xrGetOpenGLGraphicsRequirementsKHR"),
                              xr.PFN_xrGetOpenGLGraphicsRequirementsKHR)
            self.requirements = xr.GraphicsRequirementsOpenGLKHR()
            xr.check_result(xr.Result(pfn(self.instance, self.system, ctypes.byref(self.requirements))))
            self.binding = glx_binding(xr)
            self.session = xr.create_session(self.instance, xr.SessionCreateInfo(
                system_id=self.system, next=ctypes.cast(ctypes.pointer(self.binding), ctypes.c_void_p)))
            self.space = xr.create_reference_space(self.session, xr.ReferenceSpaceCreateInfo(
                reference_space_type=xr.ReferenceSpaceType.LOCAL))
            self.eye_tracking = gaze_extension and self._supports_eye_gaze()
            self.controls = ControllerActions(xr, self.instance, self.session, eye_gaze=self.eye_tracking)
            config = xr.enumerate_view_configuration_views(self.instance, self.system,
                                                           xr.ViewConfigurationType.PRIMARY_STEREO)
            if len(config) != 2:
                raise GscacheError(f"--xr: expected a stereo headset (2 views), the runtime has {len(config)}")
            w = max(v.recommended_image_rect_width for v in config)
            h = max(v.recommended_image_rect_height for v in config)
            self.size = (max(16, round(w * scale)), max(16, round(h * scale)))
            formats = xr.enumerate_swapchain_formats(self.session)
            self.format = choose_color_format(formats)
            self.depth_format = choose_depth_format(formats) if self.depth_layer else None
            usage = xr.SwapchainUsageFlags
            for _ in range(2):
                self.swapchains.append(self._swapchain(self.format.gl_format, usage.COLOR_ATTACHMENT_BIT
                                                       | usage.SAMPLED_BIT | usage.TRANSFER_DST_BIT))
            for _ in range(2 if self.depth_format is not None else 0):
                self.depth_swapchains.append(self._swapchain(self.depth_format, usage.DEPTH_STENCIL_ATTACHMENT_BIT
                                                             | usage.SAMPLED_BIT | usage.TRANSFER_DST_BIT))
        except BaseException:
            self.close()
            raise
        self.lifecycle = Lifecycle()
        self.order = FrameOrder()
        self.edges = InputEdges()
        self.turn = RotationResampler()
        self.frame_state = None
        self.located: list | None = None
        self.period_ms = 0.0
        self.frames_submitted = 0
        self.times = StageClock()
        """Per-frame milliseconds of wait (xrWaitFrame), locate (xrBeginFrame, xrLocateViews),
        render (the frame loop's), late warp, upload (into the swapchains) and submit
        (xrEndFrame)."""
        self.missed = 0
        """Display periods the runtime skipped between two of our frames (frames not ready in time)."""
        self.late_warps = 0
        self.late_moved_deg = 0.0
        self.late_filled = 1.0
        self.pose_age_ms: deque = deque(maxlen=KEPT_FRAMES)
        """Per submitted frame: from the xrLocateViews whose poses the layer carries to
        xrEndFrame's return (late reprojection shortens it by the render time)."""
        self.origin = None
        self.located_at = 0.0
        self.last_display_time: int | None = None
        props = xr.get_instance_properties(self.instance)
        self.runtime = props.runtime_name.decode(errors="replace")

    def _supports_eye_gaze(self) -> bool:
        """The system tracks the eyes (XrSystemEyeGazeInteractionPropertiesEXT chained to
        xrGetSystemProperties; pyopenxr's wrapper takes no chain, so the raw call)."""
        xr = self.xr
        gaze = xr.SystemEyeGazeInteractionPropertiesEXT()
        props = xr.SystemProperties(next=ctypes.cast(ctypes.pointer(gaze), ctypes.c_void_p))
        xr.check_result(xr.Result(xr.raw_functions.xrGetSystemProperties(self.instance, self.system,
                                                                         ctypes.byref(props))))
        return bool(gaze.supports_eye_gaze_interaction)

    def _swapchain(self, gl_format: int, usage) -> tuple:
        """One swapchain of this session at ``size`` and its images' GL texture names."""
        xr = self.xr
        swapchain = xr.create_swapchain(self.session, xr.SwapchainCreateInfo(
            usage_flags=usage, format=gl_format, sample_count=1, width=self.size[0], height=self.size[1],
            face_count=1, array_size=1, mip_count=1))
        return swapchain, [img.image for img in xr.enumerate_swapchain_images(swapchain, xr.SwapchainImageOpenGLKHR)]

    # ---- events and lifecycle -------------------------------------------------------------------
    def poll(self) -> None:
        xr = self.xr
        while not self.lifecycle.done:
            try:
                event = xr.poll_event(self.instance)
            except xr.EventUnavailable:
                return
            kind = xr.StructureType(event.type)
            if kind == xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                changed = ctypes.cast(ctypes.byref(event), ctypes.POINTER(xr.EventDataSessionStateChanged)).contents
                self._do(self.lifecycle.changed(changed.state))
            elif kind == xr.StructureType.EVENT_DATA_INSTANCE_LOSS_PENDING:
                self._do(self.lifecycle.changed(SessionState.LOSS_PENDING))  # the instance goes: end, destroy

    def quit(self) -> None:
        self._do(self.lifecycle.quit())

    def read_input(self) -> tuple[ControllerState, list[str], int] | None:
        """The controllers' state and its events (buttons pressed, snap turn), while the session
        has input focus; else None."""
        if not self.lifecycle.input_active or self.controls is None:
            return None
        state = self.controls.read()
        return (state, *self.edges.update(state))

    def _do(self, calls: list[str]) -> None:
        xr = self.xr
        for call in calls:
            if call == "begin":
                xr.begin_session(self.session, xr.SessionBeginInfo(
                    primary_view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO))
            elif call == "end":
                xr.end_session(self.session)
            elif call == "request_exit":
                xr.request_exit_session(self.session)
            elif call == "destroy":
                self._destroy_session()

    # ---- one frame ------------------------------------------------------------------------------
    def wait_frame(self) -> bool:
        """xrWaitFrame (the runtime paces us here); whether the runtime wants this frame rendered."""
        xr = self.xr
        self.times.start()
        self.frame_state = xr.wait_frame(self.session, xr.FrameWaitInfo())
        self.times.lap("wait")
        self.order.wait(bool(self.frame_state.should_render))
        period = self.frame_state.predicted_display_period
        self.period_ms = period / 1e6
        t = self.frame_state.predicted_display_time
        if self.last_display_time is not None and period > 0:
            self.missed += max(0, round((t - self.last_display_time) / period) - 1)
        self.last_display_time = t
        return bool(self.frame_state.should_render)

    def skip_frame(self) -> None:
        """A frame the runtime said not to render: begun and ended with no layer, not rendered."""
        self.xr.begin_frame(self.session, self.xr.FrameBeginInfo())
        self.order.begin()
        self.located = None
        self.end_frame()

    def begin_frame(self, T_world_origin: torch.Tensor):
        """xrBeginFrame and the views located for the waited frame: the StereoRig to render."""
        xr = self.xr
        xr.begin_frame(self.session, xr.FrameBeginInfo())
        self.order.begin()
        self.origin = T_world_origin
        self.located = self._locate()
        views = [plain_view(v) for v in self.located]
        q = None if self.controls is None or not self.lifecycle.input_active else \
            self.controls.gaze(self.space, self.frame_state.predicted_display_time)
        self.gaze = None if q is None else gaze_fractions(q, views)
        self.located_at = time.perf_counter()
        self.times.lap("locate")
        return rig_from_views(views, *self.size, T_world_origin)

    def _locate(self) -> list:
        """xrLocateViews for this frame's predicted display time, in the LOCAL space."""
        xr = self.xr
        _, views = xr.locate_views(self.session, xr.ViewLocateInfo(
            view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO,
            display_time=self.frame_state.predicted_display_time, space=self.space))
        return list(views)

    def late_warp(self, rgb: torch.Tensor, frame, rig, backend) -> torch.Tensor:
        """Late reprojection: the views located again just before submission (the runtime's
        prediction for the display time is fresher now than before rendering); where they
        turned, each eye is resampled as if everything were infinitely far (a compositor's
        timewarp: exact for rotation); where an eye also moved more than LATE_PARALLAX_M, the
        pixels with a median depth are warped with it (Backend.reproject, the pixel-reuse
        cache's warp: parallax) and only the others are turned. The layer then carries the new
        pose. Returns the images to submit."""
        start = time.perf_counter()
        fresh = self._locate()
        old = [plain_view(v) for v in self.located]
        new = [plain_view(v) for v in fresh]
        self.late_moved_deg = max(view_angle_deg(a, b) for a, b in zip(old, new))
        if old == new:
            self.times.lap("late warp")
            return rgb
        target = rig_from_views(new, *self.size, self.origin)
        src, dst = views_of(rig, rgb.device), views_of(target, rgb.device)
        moved_m = max(math.dist(a.position, b.position) for a, b in zip(old, new))
        parallax = moved_m > LATE_PARALLAX_M and frame is not None and frame.median_depth is not None
        H, W = rgb.shape[1:3]
        out = rgb.clone()
        for e in range(2):
            out[e] = self.turn.resample(rgb[e], src.viewmats[e], src.Ks[e], dst.viewmats[e], dst.Ks[e])
            if parallax:
                warped = backend.reproject(frame.rgb[e], frame.alpha[e], frame.median_depth[e], src.viewmats[e],
                                           src.Ks[e], dst.viewmats[e], dst.Ks[e], H, W)
                out[e] = torch.where(warped.valid[..., None], warped.rgb, out[e])
        self.located, self.located_at = fresh, start
        self.late_warps += 1
        self.times.lap("late warp")
        return out

    def upload(self, rgb: torch.Tensor, depth: torch.Tensor | None, near_m: float, far_m: float) -> None:
        """Each eye [E, H, W, 3] into its colour swapchain's next image and, with a depth layer,
        its depth [E, H, W] (metres, 0 where nothing was drawn) into its depth swapchain."""
        from OpenGL import GL

        kind = GL.GL_HALF_FLOAT if self.format.dtype == "float16" else GL.GL_UNSIGNED_BYTE
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        for e, swapchain in enumerate(self.swapchains):
            pixels = swapchain_pixels(rgb[e].detach().float().cpu().numpy(), None, self.format)
            self._write(swapchain, GL.GL_RGBA, kind, pixels)
        self.depth_range = None
        if self.depth_swapchains and depth is not None:
            self.depth_range = (near_m, far_m)
            for e, swapchain in enumerate(self.depth_swapchains):
                values = window_depth(depth[e].detach().float().cpu().numpy(), near_m, far_m)[::-1]
                self._write(swapchain, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT, np.ascontiguousarray(values))
        self.times.lap("upload")

    def _write(self, swapchain: tuple, layout, kind, pixels: np.ndarray) -> None:
        """``pixels`` into the swapchain's next image: acquire, wait, write, release."""
        from OpenGL import GL

        xr = self.xr
        handle, images = swapchain
        w, h = self.size
        index = xr.acquire_swapchain_image(handle, xr.SwapchainImageAcquireInfo())
        xr.wait_swapchain_image(handle, xr.SwapchainImageWaitInfo(timeout=xr.INFINITE_DURATION))
        GL.glBindTexture(GL.GL_TEXTURE_2D, images[index])
        GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, w, h, layout, kind, pixels)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        xr.release_swapchain_image(handle, xr.SwapchainImageReleaseInfo())

    def end_frame(self) -> None:
        """xrEndFrame: one projection layer with the located views, or none when the runtime
        said not to render."""
        xr = self.xr
        layers = []
        if self.frame_state.should_render and self.located is not None:
            views = (xr.CompositionLayerProjectionView * 2)()
            self._depth_infos = []
            for e, (v, (swapchain, _)) in enumerate(zip(self.located, self.swapchains)):
                nxt = None
                if self.depth_range is not None:
                    info = xr.CompositionLayerDepthInfoKHR(
                        sub_image=self._sub_image(self.depth_swapchains[e][0]), min_depth=0.0, max_depth=1.0,
                        near_z=self.depth_range[0], far_z=self.depth_range[1])
                    self._depth_infos.append(info)  # alive until xrEndFrame returns
                    nxt = ctypes.cast(ctypes.pointer(info), ctypes.c_void_p)
                views[e] = xr.CompositionLayerProjectionView(pose=v.pose, fov=v.fov,
                                                             sub_image=self._sub_image(swapchain), next=nxt)
            self._layer = xr.CompositionLayerProjection(space=self.space, views=views)
            layers = [ctypes.byref(self._layer)]
        self.order.end(len(layers))
        xr.end_frame(self.session, xr.FrameEndInfo(display_time=self.frame_state.predicted_display_time,
                                                   environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE,
                                                   layers=layers))
        self.times.lap("submit")
        self.pose_age_ms.append((time.perf_counter() - self.located_at) * 1e3)
        self.times.done()
        self.frames_submitted += 1
        self.located = None

    def _sub_image(self, swapchain):
        xr = self.xr
        w, h = self.size
        return xr.SwapchainSubImage(swapchain=swapchain, image_rect=xr.Rect2Di(offset=xr.Offset2Di(0, 0),
                                                                               extent=xr.Extent2Di(w, h)))

    # ---- teardown -------------------------------------------------------------------------------
    def _destroy_session(self) -> None:
        xr = self.xr
        if self.controls is not None:
            self.controls.close()
            self.controls = None
        for swapchain, _ in self.swapchains + self.depth_swapchains:
            xr.destroy_swapchain(swapchain)
        self.swapchains, self.depth_swapchains = [], []
        if self.space is not None:
            xr.destroy_space(self.space)
            self.space = None
        if self.session is not None:
            xr.destroy_session(self.session)
            self.session = None

    def close(self) -> None:
        self._destroy_session()
        if self.instance is not None:
            self.xr.destroy_instance(self.instance)
            self.instance = None


class XrWindowSession(WindowSession):
    """The desktop window as the headset's mirror, and the OpenXR output (frame_loop.Presenter)."""

    def __init__(self, scene, options, switches) -> None:
        super().__init__(scene, options, switches)
        try:
            self.xr = XrOutput(options.xr_scale)
        except BaseException:
            super().close()
            raise
        self.frame_open = False
        self.last_rig = None
        self.on_controller = None
        """Called with (ControllerState, buttons pressed, snap turn) each frame the session has
        input focus (the Viewer moves the head and switches with it)."""

    def poll(self) -> bool:
        self.glfw.poll_events()
        if self.glfw.window_should_close(self.window) and not self.xr.lifecycle.done:
            self.glfw.set_window_should_close(self.window, False)
            self.xr.quit()  # the runtime walks the session out (STOPPING, EXITING)
        self.xr.poll()
        if not self.xr.lifecycle.done:
            got = self.xr.read_input()
            if got is not None and self.on_controller is not None:
                self.on_controller(*got)
        return not self.xr.lifecycle.done

    def quit(self) -> None:
        self.xr.quit()

    def visible(self) -> bool:
        """The session runs and the runtime wants the next frame rendered (xrWaitFrame here: a
        frame it does not want is ended with no layer and not rendered)."""
        if not self.xr.lifecycle.frame_loop:
            return False
        if self.xr.wait_frame():
            return True
        self.xr.skip_frame()
        return False

    def wait(self) -> None:
        if not self.xr.lifecycle.frame_loop:
            time.sleep(0.01)  # no frame loop yet (not READY) or no more (STOPPING): xrPollEvent again soon

    def eye_size(self) -> tuple[int, int]:
        return self.xr.size

    def views(self, pose: torch.Tensor):
        rig = self.xr.begin_frame(level(pose, self.options.up))
        self.frame_open = True
        self.last_rig = rig
        return rig, rig

    @property
    def gaze(self) -> list[tuple[float, float]] | None:
        """The eye tracker's gaze per eye for the frame begun last (None: not tracked)."""
        return self.xr.gaze

    def upload(self, rgb: torch.Tensor, frame=None) -> None:
        rig = self.last_rig
        self.xr.times.lap("render")
        if self.options.xr_late_warp:
            rgb = self.xr.late_warp(rgb, frame, rig, self.renderer.backend)
        self.xr.upload(rgb, None if frame is None else frame.depth, rig.near_m, rig.far_m)
        super().upload(rgb)  # the mirror

    def present(self) -> None:
        if self.frame_open:
            self.xr.end_frame()
            self.frame_open = False
        super().present()

    def close(self) -> None:
        self.xr.close()
        super().close()
