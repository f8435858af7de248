"""gscache's OpenXR test runtime, driven through pyopenxr's real Khronos loader with Khronos'
core-validation API layer on.

Validation output is captured two ways and any finding fails the test: the layer writes its
text report to a file (XR_CORE_VALIDATION_FILE_NAME; this also covers xrCreateInstance, before a
messenger can exist), and an XR_EXT_debug_utils messenger created right after the instance
receives every layer and loader message. The messenger is deliberately not destroyed by hand:
with pyopenxr 1.1.6501's loader and layer, xrDestroyDebugUtilsMessengerEXT (and a messenger
chained into XrInstanceCreateInfo) makes the layer report its own handle invalid
(VUID-xrDestroyDebugUtilsMessengerEXT-messenger-parameter), whatever the runtime; letting
xrDestroyInstance take it down is valid and quiet.

The session tests need an X display, glfw and PyOpenGL; they start an Xvfb of their own (as
tests/viewer/conftest.py does) and skip with the reason when something is missing.
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.xr.runtime import (
    DEFAULT_FORMATS, DEFAULT_SIZE, DEFAULT_VIEWS, FRAME_PERIOD_NS, LIBRARY_NAME, RUNTIME_NAME, EyeView,
    RuntimeUnavailable, build_test_runtime, core_function_names, read_frames, read_pixels, read_trace,
    runtime_environment, write_script)

xr = pytest.importorskip("xr", reason="pyopenxr is not installed (pip install -r requirements.txt)")
import xr.api_layer  # noqa: E402  (after the importorskip)

API_1_0 = xr.Version(1, 0, 0)
GL_EXT = "XR_KHR_opengl_enable"
DEPTH_EXT = "XR_KHR_composition_layer_depth"
DEBUG_EXT = "XR_EXT_debug_utils"
STEREO = xr.ViewConfigurationType.PRIMARY_STEREO
GL_SRGB8_ALPHA8, GL_RGBA8, GL_DEPTH_COMPONENT32F = 0x8C43, 0x8058, 0x8CAC

# The layer's own lifecycle notes (severity DEBUG), written whatever the application does.
_LAYER_LIFECYCLE = ("VUID-CoreValidation-Initialize", "VUID-CoreValidation-Destroy")


@pytest.fixture(scope="session")
def runtime_manifest(tmp_path_factory) -> Path:
    try:
        return build_test_runtime(tmp_path_factory.mktemp("xr_runtime"))
    except RuntimeUnavailable as e:
        pytest.skip(e.reason)


# ---------------------------------------------------------------------------------------------
# The loader + validation layer harness.

@dataclass
class OpenXR:
    """One test's OpenXR environment: the runtime selected, the record directory, the core
    validation layer enabled, and its findings collected."""

    record: Path
    validation_file: Path
    messages: list = field(default_factory=list)
    instance: object = None
    _callback: object = None
    _messenger: object = None  # keeps the create info, and the callback thunk it holds, alive

    def create_instance(self, extensions=(GL_EXT,), api_version=API_1_0):
        def on_message(severity, types, data, _user):
            d = data.contents
            self.messages.append((int(severity), int(types), _text(d.message_id), _text(d.function_name),
                                  _text(d.message)))
            return False

        self._callback = xr.PFN_xrDebugUtilsMessengerCallbackEXT(on_message)
        self.instance = xr.create_instance(xr.InstanceCreateInfo(
            application_info=xr.ApplicationInfo("gscache-runtime-test", 1, "gscache", 1, api_version),
            enabled_extension_names=[*extensions, DEBUG_EXT]))
        self._messenger = xr.create_debug_utils_messenger_ext(self.instance, xr.DebugUtilsMessengerCreateInfoEXT(
            message_severities=(xr.DebugUtilsMessageSeverityFlagsEXT.WARNING_BIT
                                | xr.DebugUtilsMessageSeverityFlagsEXT.ERROR_BIT
                                | xr.DebugUtilsMessageSeverityFlagsEXT.INFO_BIT
                                | xr.DebugUtilsMessageSeverityFlagsEXT.VERBOSE_BIT),
            message_types=(xr.DebugUtilsMessageTypeFlagsEXT.GENERAL_BIT
                           | xr.DebugUtilsMessageTypeFlagsEXT.VALIDATION_BIT
                           | xr.DebugUtilsMessageTypeFlagsEXT.PERFORMANCE_BIT
                           | xr.DebugUtilsMessageTypeFlagsEXT.CONFORMANCE_BIT),
            user_callback=self._callback))
        return self.instance

    def destroy_instance(self):
        if self.instance is not None:
            xr.destroy_instance(self.instance)  # also destroys the messenger
            self.instance = None
            self._messenger = None

    def findings(self) -> list[str]:
        """Everything the validation layer reported, and loader warnings/errors."""
        found = []
        for severity, types, vuid, function, message in self.messages:
            validation = types & int(xr.DebugUtilsMessageTypeFlagsEXT.VALIDATION_BIT)
            serious = severity >= int(xr.DebugUtilsMessageSeverityFlagsEXT.WARNING_BIT)
            if (validation and vuid not in _LAYER_LIFECYCLE) or serious:
                found.append(f"messenger: {vuid} {function}: {message}")
        if self.validation_file.exists():
            for line in self.validation_file.read_text().splitlines():
                if line.startswith("[") and "VALID_" in line and not any(v in line for v in _LAYER_LIFECYCLE):
                    found.append(f"layer report: {line}")
        return found

    def assert_clean(self):
        self.destroy_instance()
        # The layer really ran (its report starts with its initialisation note) ...
        assert _LAYER_LIFECYCLE[0] in self.validation_file.read_text()
        # ... and found nothing.
        assert self.findings() == []


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@pytest.fixture
def openxr(runtime_manifest, tmp_path, monkeypatch):
    record = tmp_path / "record"
    record.mkdir()
    for name, value in runtime_environment(runtime_manifest, record=record).items():
        monkeypatch.setenv(name, value)
    for name in ("GSCACHE_XR_SCRIPT", "GSCACHE_XR_FORMATS"):
        monkeypatch.delenv(name, raising=False)
    # pyopenxr's own switch: it puts its bundled layers on XR_API_LAYER_PATH (at import) and adds
    # the layer to XR_ENABLE_API_LAYERS; monkeypatch snapshots both so they are restored after.
    monkeypatch.setenv("XR_API_LAYER_PATH", os.environ.get("XR_API_LAYER_PATH", ""))
    monkeypatch.setenv("XR_ENABLE_API_LAYERS", "")
    xr.api_layer.expose_packaged_api_layers()
    assert xr.api_layer.activate_core_validation_layer()
    validation_file = tmp_path / "core_validation.txt"
    monkeypatch.setenv("XR_CORE_VALIDATION_EXPORT_TYPE", "text")
    monkeypatch.setenv("XR_CORE_VALIDATION_FILE_NAME", str(validation_file))
    harness = OpenXR(record=record, validation_file=validation_file)
    yield harness
    harness.destroy_instance()


def _get_system(instance):
    return xr.get_system(instance, xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))


def _gl_requirements(instance, system):
    pfn = ctypes.cast(xr.get_instance_proc_addr(instance, "xrGetOpenGLGraphicsRequirementsKHR"),
                      xr.PFN_xrGetOpenGLGraphicsRequirementsKHR)
    requirements = xr.GraphicsRequirementsOpenGLKHR()
    result = pfn(instance, system, ctypes.byref(requirements))
    assert int(result) == xr.Result.SUCCESS.value
    return requirements


# ---------------------------------------------------------------------------------------------
# The library itself, without the loader.

class _LoaderInfo(ctypes.Structure):  # XrNegotiateLoaderInfo, interface version 1
    _fields_ = [("structType", ctypes.c_int), ("structVersion", ctypes.c_uint32), ("structSize", ctypes.c_size_t),
                ("minInterfaceVersion", ctypes.c_uint32), ("maxInterfaceVersion", ctypes.c_uint32),
                ("minApiVersion", ctypes.c_uint64), ("maxApiVersion", ctypes.c_uint64)]


_GIPA = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))


class _RuntimeRequest(ctypes.Structure):  # XrNegotiateRuntimeRequest
    _fields_ = [("structType", ctypes.c_int), ("structVersion", ctypes.c_uint32), ("structSize", ctypes.c_size_t),
                ("runtimeInterfaceVersion", ctypes.c_uint32), ("runtimeApiVersion", ctypes.c_uint64),
                ("getInstanceProcAddr", _GIPA)]


def _version(major, minor, patch=0) -> int:
    return (major << 48) | (minor << 32) | patch


def test_library_exports_only_the_negotiation_function(runtime_manifest):
    lib = ctypes.CDLL(str(runtime_manifest.parent / LIBRARY_NAME))
    assert hasattr(lib, "xrNegotiateLoaderRuntimeInterface")
    for hidden in ("xrGetInstanceProcAddr", "xrCreateInstance", "xrEndFrame"):
        assert not hasattr(lib, hidden), hidden
    nm = shutil.which("nm")
    if nm:
        out = subprocess.run([nm, "-D", "--defined-only", str(runtime_manifest.parent / LIBRARY_NAME)],
                             capture_output=True, text=True, check=True).stdout
        assert [line.split()[-1] for line in out.splitlines()] == ["xrNegotiateLoaderRuntimeInterface"]


def test_every_core_function_resolves(runtime_manifest, monkeypatch):
    """The loader calls core functions without checking the pointers it got: every OpenXR 1.0
    command of openxr.h must resolve; unknown names and extensions not enabled must not."""
    for name in ("GSCACHE_XR_RECORD", "GSCACHE_XR_SCRIPT", "GSCACHE_XR_FORMATS"):
        monkeypatch.delenv(name, raising=False)
    lib = ctypes.CDLL(str(runtime_manifest.parent / LIBRARY_NAME))
    loader_info = _LoaderInfo(1, 1, ctypes.sizeof(_LoaderInfo), 1, 1, _version(1, 0), _version(1, 0x3FF, 0xFFF))
    request = _RuntimeRequest(3, 1, ctypes.sizeof(_RuntimeRequest))
    assert lib.xrNegotiateLoaderRuntimeInterface(ctypes.byref(loader_info), ctypes.byref(request)) == 0
    assert request.runtimeInterfaceVersion == 1
    assert request.runtimeApiVersion >> 32 == 1 << 16  # 1.0.x
    gipa = request.getInstanceProcAddr

    def lookup(instance, name):
        fn = ctypes.c_void_p()
        return gipa(instance, name.encode(), ctypes.byref(fn)), fn.value

    # Before an instance exists only the three global commands resolve.
    assert lookup(None, "xrCreateInstance")[0] == 0 and lookup(None, "xrCreateInstance")[1]
    assert lookup(None, "xrLocateViews") == (xr.Result.ERROR_HANDLE_INVALID.value, None)

    create = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(xr.InstanceCreateInfo), ctypes.POINTER(ctypes.c_void_p))(
        lookup(None, "xrCreateInstance")[1])
    info = xr.InstanceCreateInfo(application_info=xr.ApplicationInfo("direct", 1, "gscache", 1, API_1_0))
    handle = ctypes.c_void_p()
    assert create(ctypes.byref(info), ctypes.byref(handle)) == 0
    try:
        names = core_function_names()
        assert len(names) >= 50 and "xrGetActionStateVector2f" in names
        missing = [n for n in names if lookup(handle, n)[0] != 0 or not lookup(handle, n)[1]]
        assert missing == []
        unsupported = xr.Result.ERROR_FUNCTION_UNSUPPORTED.value
        assert lookup(handle, "xrNoSuchFunction") == (unsupported, None)
        assert lookup(handle, "xrGetOpenGLGraphicsRequirementsKHR") == (unsupported, None)  # not enabled
        assert lookup(handle, "xrGetVisibilityMaskKHR") == (unsupported, None)
    finally:
        destroy = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(lookup(handle, "xrDestroyInstance")[1])
        assert destroy(handle) == 0


# ---------------------------------------------------------------------------------------------
# (a) Instance and system through the loader.

def test_instance_and_system(openxr, tmp_path, monkeypatch):
    monkeypatch.setenv("GSCACHE_XR_SCRIPT", str(write_script(tmp_path / "s.txt", size=(320, 200), frames=5)))
    names = [p.extension_name.decode() for p in xr.enumerate_instance_extension_properties()]
    assert GL_EXT in names and DEPTH_EXT in names
    instance = openxr.create_instance()
    props = xr.get_instance_properties(instance)
    assert props.runtime_name.decode() == RUNTIME_NAME
    system = _get_system(instance)
    sys_props = xr.get_system_properties(instance, system)
    assert sys_props.graphics_properties.max_swapchain_image_width == 4096
    assert sys_props.tracking_properties.position_tracking
    assert STEREO.value in [int(v) for v in xr.enumerate_view_configurations(instance, system)]
    views = xr.enumerate_view_configuration_views(instance, system, STEREO)
    assert len(views) == 2
    for v in views:
        assert (v.recommended_image_rect_width, v.recommended_image_rect_height) == (320, 200)
        assert v.max_image_rect_width == 4096 and v.recommended_swapchain_sample_count == 1
    blend = xr.enumerate_environment_blend_modes(instance, system, STEREO)
    assert [int(b) for b in blend] == [xr.EnvironmentBlendMode.OPAQUE.value]
    requirements = _gl_requirements(instance, system)
    assert requirements.min_api_version_supported.number() <= _version(3, 3)
    assert requirements.max_api_version_supported.number() >= _version(4, 5)
    openxr.assert_clean()
    assert read_trace(openxr.record)[:3] == ["xrCreateInstance", "xrGetInstanceProperties", "xrGetSystem"]
    assert read_trace(openxr.record)[-1] == "xrDestroyInstance"


def test_validation_capture_sees_errors(openxr):
    """The capture itself works: a deliberately invalid call is reported both ways."""
    instance = openxr.create_instance()
    info = xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY)
    info.type = 0  # not XR_TYPE_SYSTEM_GET_INFO
    system = xr.SystemId()
    assert int(xr.raw_functions.xrGetSystem(instance, ctypes.byref(info), ctypes.byref(system))) < 0
    openxr.destroy_instance()
    found = openxr.findings()
    assert any(f.startswith("messenger: VUID-XrSystemGetInfo-type-type") for f in found), found
    assert any(f.startswith("layer report: ") and "VUID-XrSystemGetInfo-type-type" in f for f in found), found


def test_default_view_size(openxr):
    instance = openxr.create_instance()
    views = xr.enumerate_view_configuration_views(instance, _get_system(instance), STEREO)
    assert [(v.recommended_image_rect_width, v.recommended_image_rect_height) for v in views] == [DEFAULT_SIZE] * 2
    openxr.assert_clean()


def test_instance_refuses_other_api_versions(openxr):
    with pytest.raises(xr.ApiVersionUnsupportedError):
        openxr.create_instance(api_version=xr.Version(1, 1, 0))
    with pytest.raises(xr.ExtensionNotPresentError):  # the loader checks the runtime's list
        openxr.create_instance(extensions=(GL_EXT, "XR_KHR_vulkan_enable"))
    openxr.assert_clean()


def test_paths_and_enum_names(openxr):
    instance = openxr.create_instance()
    path = xr.string_to_path(instance, "/user/hand/left")
    assert path.value == xr.string_to_path(instance, "/user/hand/left").value
    assert path.value != xr.string_to_path(instance, "/user/hand/right").value
    assert xr.path_to_string(instance, path) == "/user/hand/left"
    with pytest.raises(xr.PathFormatInvalidError):
        xr.string_to_path(instance, "/User//x/")
    buffer = (ctypes.c_char * 64)()
    xr.result_to_string(instance, xr.Result.ERROR_SESSION_NOT_RUNNING, buffer)
    assert buffer.value == b"XR_ERROR_SESSION_NOT_RUNNING"
    xr.structure_type_to_string(instance, xr.StructureType.FRAME_END_INFO, buffer)
    assert buffer.value == b"XR_TYPE_FRAME_END_INFO"
    assert int(xr.raw_functions.xrResultToString(instance, -999999, buffer)) == 0
    assert buffer.value == b"XR_UNKNOWN_FAILURE_-999999"
    openxr.assert_clean()


# ---------------------------------------------------------------------------------------------
# (b) Sessions under Xvfb with Mesa's OpenGL.

# x_display: tests/conftest.py (an Xvfb of the test session, or $DISPLAY).


GLX_VISUAL_ID, GLX_SCREEN, GLX_FBCONFIG_ID = 0x800B, 0x800C, 0x8013


@dataclass
class GlWindow:
    window: object
    binding: object  # xr.GraphicsBindingOpenGLXlibKHR


def _glx_binding(glfw, window):
    """XrGraphicsBindingOpenGLXlibKHR of a glfw window: glfw gives the display, GLX context and
    GLX window; the FB config and its visual come from GLX itself (the config whose
    GLX_FBCONFIG_ID the context reports)."""
    from OpenGL import GLX

    libgl = ctypes.CDLL("libGL.so.1")
    libgl.glXQueryContext.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    libgl.glXChooseFBConfig.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                        ctypes.POINTER(ctypes.c_int)]
    libgl.glXChooseFBConfig.restype = ctypes.POINTER(ctypes.c_void_p)
    libgl.glXGetFBConfigAttrib.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                           ctypes.POINTER(ctypes.c_int)]
    display = ctypes.cast(glfw.get_x11_display(), ctypes.c_void_p).value
    context = ctypes.cast(glfw.get_glx_context(window), ctypes.c_void_p).value
    drawable = int(glfw.get_glx_window(window))
    assert display and context and drawable
    fbconfig_id, screen, count, visual = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    assert libgl.glXQueryContext(display, context, GLX_FBCONFIG_ID, ctypes.byref(fbconfig_id)) == 0
    assert libgl.glXQueryContext(display, context, GLX_SCREEN, ctypes.byref(screen)) == 0
    attributes = (ctypes.c_int * 3)(GLX_FBCONFIG_ID, fbconfig_id.value, 0)
    configs = libgl.glXChooseFBConfig(display, screen.value, attributes, ctypes.byref(count))
    assert configs and count.value >= 1, "no GLX FB config matches the context's GLX_FBCONFIG_ID"
    fbconfig = configs[0]
    ctypes.CDLL("libX11.so.6").XFree(configs)
    assert libgl.glXGetFBConfigAttrib(display, fbconfig, GLX_VISUAL_ID, ctypes.byref(visual)) == 0
    return xr.GraphicsBindingOpenGLXlibKHR(
        x_display=ctypes.cast(display, ctypes.POINTER(GLX.Display)),
        visualid=visual.value,
        glx_fbconfig=ctypes.cast(fbconfig, GLX.GLXFBConfig),
        glx_drawable=drawable,
        glx_context=ctypes.cast(context, GLX.GLXContext))


@pytest.fixture(scope="module")
def gl_window(x_display):
    import glfw

    if not glfw.init():
        pytest.skip(f"glfw cannot initialise on {x_display}")
    glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, glfw.TRUE)
    window = glfw.create_window(64, 64, "gscache OpenXR test runtime", None, None)
    if not window:
        glfw.terminate()
        pytest.skip(f"no OpenGL 3.3 core context on {x_display}")
    try:
        glfw.make_context_current(window)
        yield GlWindow(window, _glx_binding(glfw, window))
    finally:
        glfw.make_context_current(None)
        glfw.destroy_window(window)
        glfw.terminate()


def _pattern(frame: int, eye: int, width: int, height: int) -> np.ndarray:
    """A test image per frame and eye: (height, width, 4) uint8, row 0 uploaded first."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 4), np.uint8)
    img[..., 0] = (x * 5 + 17 * frame) % 256
    img[..., 1] = (y * 3 + 101 * eye) % 256
    img[..., 2] = (x + y + 64 * eye + 29 * frame) % 256
    img[..., 3] = 255 - (40 * eye + frame)
    return img


def _pose(p):
    return (p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w), \
        (p.position.x, p.position.y, p.position.z)


def _fov(f):
    return f.angle_left, f.angle_right, f.angle_up, f.angle_down


def _f32(values):
    return tuple(float(np.float32(v)) for v in values)


def _quat_mul(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def _rotate(q, v):
    x, y, z, _ = _quat_mul(_quat_mul(q, (*v, 0.0)), (-q[0], -q[1], -q[2], q[3]))
    return x, y, z


def _relative(base_q, base_p, q, p):
    """Pose (q, p) expressed in the frame of (base_q, base_p): inverse(base) * pose."""
    inv = (-base_q[0], -base_q[1], -base_q[2], base_q[3])
    d = _rotate(inv, tuple(a - b for a, b in zip(p, base_p)))
    return _quat_mul(inv, q), d


@dataclass
class SessionRun:
    located: dict          # frame index -> [(orientation, position, fov)] * 2 as returned
    uploaded: dict         # (frame, eye) -> pattern
    states: list           # session states seen, in order
    size: tuple


def _poll_states(instance, session, states):
    while True:
        try:
            event = xr.poll_event(instance)
        except xr.EventUnavailable:
            return
        if xr.StructureType(event.type) == xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
            changed = ctypes.cast(ctypes.byref(event), ctypes.POINTER(xr.EventDataSessionStateChanged)).contents
            assert ctypes.cast(changed.session, ctypes.c_void_p).value == ctypes.cast(session, ctypes.c_void_p).value
            states.append(xr.SessionState(changed.state))


def _run_session(openxr, gl, *, size, script_views, frames, formats=None, depth=False,
                 offset_check=False) -> SessionRun:
    """Drives one session the way an OpenXR application does, until the runtime stops it."""
    from OpenGL import GL

    instance = openxr.create_instance(extensions=(GL_EXT, DEPTH_EXT) if depth else (GL_EXT,))
    system = _get_system(instance)
    _gl_requirements(instance, system)
    session = xr.create_session(instance, xr.SessionCreateInfo(system_id=system, next=gl.binding))
    states = []
    _poll_states(instance, session, states)
    assert states == [xr.SessionState.IDLE, xr.SessionState.READY]
    xr.begin_session(session, xr.SessionBeginInfo(primary_view_configuration_type=STEREO))
    _poll_states(instance, session, states)
    assert states[-1] == xr.SessionState.FOCUSED

    local = xr.create_reference_space(session, xr.ReferenceSpaceCreateInfo(
        reference_space_type=xr.ReferenceSpaceType.LOCAL, pose_in_reference_space=xr.Posef()))
    available = [int(f) for f in xr.enumerate_swapchain_formats(session)]
    assert available == list(formats or DEFAULT_FORMATS)
    colour_format = next(f for f in available if f != GL_DEPTH_COMPONENT32F)
    width, height = size

    def make_swapchain(fmt, usage):
        swapchain = xr.create_swapchain(session, xr.SwapchainCreateInfo(
            usage_flags=usage, format=fmt, sample_count=1, width=width, height=height, face_count=1,
            array_size=1, mip_count=1))
        return swapchain, [img.image for img in xr.enumerate_swapchain_images(swapchain, xr.SwapchainImageOpenGLKHR)]

    colour = [make_swapchain(colour_format, xr.SwapchainUsageFlags.COLOR_ATTACHMENT_BIT
                             | xr.SwapchainUsageFlags.TRANSFER_DST_BIT) for _ in range(2)]
    depth_chains = [make_swapchain(GL_DEPTH_COMPONENT32F, xr.SwapchainUsageFlags.DEPTH_STENCIL_ATTACHMENT_BIT)
                    for _ in range(2)] if depth else []
    for _, images in colour:
        assert len(images) == 3 and all(images)

    if offset_check:  # LOCAL with an offset: locations come back relative to the offset origin
        offset_q = (0.0, math.sin(0.25), 0.0, math.cos(0.25))  # 0.5 rad about +Y
        offset_p = (0.1, 0.2, -0.3)
        shifted = xr.create_reference_space(session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.LOCAL,
            pose_in_reference_space=xr.Posef(xr.Quaternionf(*offset_q), xr.Vector3f(*offset_p))))
        view_space = xr.create_reference_space(session, xr.ReferenceSpaceCreateInfo(
            reference_space_type=xr.ReferenceSpaceType.VIEW, pose_in_reference_space=xr.Posef()))
        t = 1_000_000 + FRAME_PERIOD_NS
        _, views = xr.locate_views(session, xr.ViewLocateInfo(STEREO, t, shifted))
        for eye, v in enumerate(views):
            want_q, want_p = _relative(offset_q, offset_p, script_views[0][eye].orientation,
                                       script_views[0][eye].position)
            got_q, got_p = _pose(v.pose)
            np.testing.assert_allclose(got_q, want_q, atol=1e-5)
            np.testing.assert_allclose(got_p, want_p, atol=1e-5)
        head = xr.locate_space(view_space, local, t)
        assert head.location_flags & xr.SpaceLocationFlags.POSITION_TRACKED_BIT
        mid = [(a + b) / 2 for a, b in zip(script_views[0][0].position, script_views[0][1].position)]
        np.testing.assert_allclose(_pose(head.pose)[1], mid, atol=1e-6)
        xr.destroy_space(shifted)
        xr.destroy_space(view_space)

    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    located, uploaded = {}, {}
    frame = 0
    last_time = 0
    while True:
        _poll_states(instance, session, states)
        if states[-1] == xr.SessionState.STOPPING:
            xr.end_session(session)
            _poll_states(instance, session, states)
            assert states[-2:] == [xr.SessionState.IDLE, xr.SessionState.EXITING]
            break
        assert frame < frames + 5, "the runtime never asked the session to stop"
        frame_state = xr.wait_frame(session, xr.FrameWaitInfo())
        assert frame_state.predicted_display_time > last_time
        assert frame_state.predicted_display_period == FRAME_PERIOD_NS
        last_time = frame_state.predicted_display_time
        xr.begin_frame(session, xr.FrameBeginInfo())
        layers = []
        if frame_state.should_render:
            view_state, views = xr.locate_views(session, xr.ViewLocateInfo(
                STEREO, frame_state.predicted_display_time, local))
            assert view_state.view_state_flags & xr.ViewStateFlags.POSITION_TRACKED_BIT
            located[frame] = [(*_pose(v.pose), _fov(v.fov)) for v in views]
            projection_views = []
            chains = []  # the depth infos stay alive until xrEndFrame (a view's next only points at them)
            for eye, view in enumerate(views):
                swapchain, images = colour[eye]
                index = xr.acquire_swapchain_image(swapchain, xr.SwapchainImageAcquireInfo())
                xr.wait_swapchain_image(swapchain, xr.SwapchainImageWaitInfo(timeout=xr.INFINITE_DURATION))
                img = _pattern(frame, eye, width, height)
                GL.glBindTexture(GL.GL_TEXTURE_2D, images[index])
                GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, img)
                GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
                uploaded[(frame, eye)] = img
                xr.release_swapchain_image(swapchain, xr.SwapchainImageReleaseInfo())
                rect = xr.Rect2Di(xr.Offset2Di(0, 0), xr.Extent2Di(width, height))
                chain = None
                if depth:
                    dswap, _ = depth_chains[eye]
                    xr.acquire_swapchain_image(dswap, xr.SwapchainImageAcquireInfo())
                    xr.wait_swapchain_image(dswap, xr.SwapchainImageWaitInfo(timeout=xr.INFINITE_DURATION))
                    xr.release_swapchain_image(dswap, xr.SwapchainImageReleaseInfo())
                    chain = xr.CompositionLayerDepthInfoKHR(
                        sub_image=xr.SwapchainSubImage(dswap, rect), min_depth=0.0, max_depth=1.0,
                        near_z=0.05, far_z=100.0)
                    chains.append(chain)
                projection_views.append(xr.CompositionLayerProjectionView(
                    pose=view.pose, fov=view.fov, sub_image=xr.SwapchainSubImage(swapchain, rect),
                    next=chain))
            layer = xr.CompositionLayerProjection(space=local, views=projection_views)
            layers = [ctypes.byref(layer)]
        xr.end_frame(session, xr.FrameEndInfo(
            display_time=frame_state.predicted_display_time,
            environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE, layers=layers))
        frame += 1
    assert frame == frames
    for swapchain, _ in colour + depth_chains:
        xr.destroy_swapchain(swapchain)
    xr.destroy_space(local)
    xr.destroy_session(session)
    assert GL.glGetError() == GL.GL_NO_ERROR
    return SessionRun(located, uploaded, states, size)


# Two scripted frames that differ (a turned head on the second), cycled over three frames.
_SCRIPT_VIEWS = (
    DEFAULT_VIEWS[0],
    (EyeView((0.0, 0.0998334, 0.0, 0.9950042), (-0.03, 1.55, 0.10), (-0.71, 0.69, 0.72, -0.73)),
     EyeView((0.0, 0.0998334, 0.0, 0.9950042), (0.034, 1.55, 0.08), (-0.68, 0.74, 0.70, -0.75))),
)


def test_session_end_to_end(openxr, gl_window, tmp_path, monkeypatch):
    """The proof the runtime works: a full session under Xvfb + Mesa with the validation layer on."""
    size, frames = (48, 40), 3
    monkeypatch.setenv("GSCACHE_XR_SCRIPT", str(write_script(
        tmp_path / "script.txt", size=size, frames=frames, views=_SCRIPT_VIEWS)))
    run = _run_session(openxr, gl_window, size=size, script_views=_SCRIPT_VIEWS, frames=frames, offset_check=True)
    openxr.assert_clean()

    S = xr.SessionState
    assert run.states == [S.IDLE, S.READY, S.SYNCHRONIZED, S.VISIBLE, S.FOCUSED,
                          S.VISIBLE, S.SYNCHRONIZED, S.STOPPING, S.IDLE, S.EXITING]

    trace = read_trace(openxr.record)
    assert trace[0] == "xrCreateInstance" and trace[-1] == "xrDestroyInstance"
    order = [trace.index(n) for n in ("xrGetOpenGLGraphicsRequirementsKHR", "xrCreateSession", "xrBeginSession",
                                      "xrCreateSwapchain", "xrWaitFrame", "xrEndSession", "xrDestroySession")]
    assert order == sorted(order)
    loop = [n for n in trace if n in ("xrWaitFrame", "xrBeginFrame", "xrLocateViews", "xrAcquireSwapchainImage",
                                      "xrWaitSwapchainImage", "xrReleaseSwapchainImage", "xrEndFrame")]
    # pyopenxr's locate_views is the two-call idiom: two calls per frame.
    per_frame = (["xrWaitFrame", "xrBeginFrame", "xrLocateViews", "xrLocateViews"]
                 + ["xrAcquireSwapchainImage", "xrWaitSwapchainImage", "xrReleaseSwapchainImage"] * 2
                 + ["xrEndFrame"])
    assert loop[-len(per_frame) * frames:] == per_frame * frames

    records = read_frames(openxr.record)
    assert [r.index for r in records] == list(range(frames))
    times = [r.display_time for r in records]
    assert times == sorted(times) and len(set(times)) == frames
    for r in records:
        scripted = _SCRIPT_VIEWS[r.index % len(_SCRIPT_VIEWS)]
        assert sorted(r.located) == [0, 1] and [layer.eye for layer in r.layers] == [0, 1]
        for eye in (0, 1):
            want = scripted[eye]
            loc = r.located[eye]
            # The runtime returned the script (LOCAL with an identity offset is the tracking origin) ...
            assert loc.orientation == _f32(want.orientation) and loc.position == _f32(want.position)
            assert loc.fov == _f32(want.fov)
            # ... the application got exactly that, and submitted it unchanged.
            got_q, got_p, got_fov = run.located[r.index][eye]
            assert (got_q, got_p, got_fov) == (loc.orientation, loc.position, loc.fov)
            layer = r.layers[eye]
            assert (layer.orientation, layer.position, layer.fov) == (loc.orientation, loc.position, loc.fov)
            assert layer.rect == (0, 0, *size) and layer.format == GL_SRGB8_ALPHA8
            assert layer.image_index == r.index % 3
            pixels = read_pixels(openxr.record, r.index, eye, *size)
            # Mesa returns GL_SRGB8_ALPHA8's stored bytes unchanged (no sRGB decode on read-back).
            np.testing.assert_array_equal(pixels, run.uploaded[(r.index, eye)])
        assert not np.array_equal(read_pixels(openxr.record, r.index, 0, *size),
                                  read_pixels(openxr.record, r.index, 1, *size))
    assert records[0].located[0] != records[1].located[0]  # the script really cycles
    assert records[2].located == records[0].located


def test_depth_layers_and_rgba8(openxr, gl_window, tmp_path, monkeypatch):
    size, frames = (32, 24), 2
    monkeypatch.setenv("GSCACHE_XR_SCRIPT", str(write_script(tmp_path / "script.txt", size=size, frames=frames)))
    formats = (GL_RGBA8, GL_DEPTH_COMPONENT32F)
    monkeypatch.setenv("GSCACHE_XR_FORMATS", ",".join(hex(f) for f in formats))
    run = _run_session(openxr, gl_window, size=size, script_views=DEFAULT_VIEWS, frames=frames,
                       formats=formats, depth=True)
    openxr.assert_clean()
    for r in read_frames(openxr.record):
        assert [layer.format for layer in r.layers] == [GL_RGBA8, GL_RGBA8]
        assert [(d.eye, d.format, d.rect) for d in r.depth] == [(0, GL_DEPTH_COMPONENT32F, (0, 0, *size)),
                                                                (1, GL_DEPTH_COMPONENT32F, (0, 0, *size))]
        assert (r.depth[0].near_z, r.depth[0].far_z) == (_f32([0.05])[0], 100.0)
        for eye in (0, 1):
            np.testing.assert_array_equal(read_pixels(openxr.record, r.index, eye, *size), run.uploaded[(r.index, eye)])


def test_session_call_order_errors(openxr, gl_window, monkeypatch, tmp_path):
    """The spec's error codes for misordered calls, and xrRequestExitSession's way out."""
    monkeypatch.setenv("GSCACHE_XR_SCRIPT", str(write_script(tmp_path / "script.txt", frames=0)))
    raw = xr.raw_functions
    R = xr.Result
    instance = openxr.create_instance()
    system = _get_system(instance)
    with pytest.raises(xr.GraphicsRequirementsCallMissingError):
        xr.create_session(instance, xr.SessionCreateInfo(system_id=system, next=gl_window.binding))
    _gl_requirements(instance, system)
    # A visual that is not the FB config's is refused (the runtime asks GLX).
    wrong = xr.GraphicsBindingOpenGLXlibKHR(
        x_display=gl_window.binding.x_display, visualid=gl_window.binding.visualid + 1,
        glx_fbconfig=gl_window.binding.glx_fbconfig, glx_drawable=gl_window.binding.glx_drawable,
        glx_context=gl_window.binding.glx_context)
    with pytest.raises(xr.GraphicsDeviceInvalidError):
        xr.create_session(instance, xr.SessionCreateInfo(system_id=system, next=wrong))
    session = xr.create_session(instance, xr.SessionCreateInfo(system_id=system,
                                                               next=gl_window.binding))
    states = []
    assert int(raw.xrWaitFrame(session, None, ctypes.byref(xr.FrameState()))) == R.ERROR_SESSION_NOT_RUNNING.value
    assert int(raw.xrRequestExitSession(session)) == R.ERROR_SESSION_NOT_RUNNING.value
    begin = xr.SessionBeginInfo(primary_view_configuration_type=STEREO)
    xr.begin_session(session, begin)
    assert int(raw.xrBeginSession(session, ctypes.byref(begin))) == R.ERROR_SESSION_RUNNING.value
    assert int(raw.xrBeginFrame(session, None)) == R.ERROR_CALL_ORDER_INVALID.value
    end_info = xr.FrameEndInfo(display_time=1, environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE)
    assert int(raw.xrEndFrame(session, ctypes.byref(end_info))) == R.ERROR_CALL_ORDER_INVALID.value
    assert int(raw.xrEndSession(session)) == R.ERROR_SESSION_NOT_STOPPING.value
    # Two begun frames: the first is discarded.
    first = xr.wait_frame(session)
    assert int(raw.xrBeginFrame(session, None)) == R.SUCCESS.value
    xr.wait_frame(session)
    assert int(raw.xrBeginFrame(session, None)) == R.FRAME_DISCARDED.value
    end_info.display_time = first.predicted_display_time
    assert int(raw.xrEndFrame(session, ctypes.byref(end_info))) == R.SUCCESS.value
    # Swapchain image order: wait and release need an acquired image, at most 3 acquired.
    swapchain = xr.create_swapchain(session, xr.SwapchainCreateInfo(
        usage_flags=xr.SwapchainUsageFlags.COLOR_ATTACHMENT_BIT, format=GL_RGBA8, sample_count=1, width=16,
        height=16, face_count=1, array_size=1, mip_count=1))
    wait_info = xr.SwapchainImageWaitInfo(timeout=xr.INFINITE_DURATION)
    assert int(raw.xrWaitSwapchainImage(swapchain, ctypes.byref(wait_info))) == R.ERROR_CALL_ORDER_INVALID.value
    assert int(raw.xrReleaseSwapchainImage(swapchain, None)) == R.ERROR_CALL_ORDER_INVALID.value
    assert [xr.acquire_swapchain_image(swapchain) for _ in range(3)] == [0, 1, 2]
    index = ctypes.c_uint32()
    assert int(raw.xrAcquireSwapchainImage(swapchain, None, ctypes.byref(index))) == R.ERROR_CALL_ORDER_INVALID.value
    xr.destroy_swapchain(swapchain)

    xr.request_exit_session(session)
    _poll_states(instance, session, states)
    S = xr.SessionState
    assert states[-3:] == [S.VISIBLE, S.SYNCHRONIZED, S.STOPPING]
    xr.end_session(session)
    _poll_states(instance, session, states)
    assert states[-2:] == [S.IDLE, S.EXITING]
    xr.destroy_session(session)
    openxr.assert_clean()


GAZE_EXT = "XR_EXT_eye_gaze_interaction"
GAZE_PROFILE = "/interaction_profiles/ext/eye_gaze_interaction"
GAZE_POSE = "/user/eyes_ext/input/gaze_ext/pose"


def _gaze_support(instance, system) -> bool:
    gaze = xr.SystemEyeGazeInteractionPropertiesEXT()
    props = xr.SystemProperties(next=ctypes.cast(ctypes.pointer(gaze), ctypes.c_void_p))
    assert int(xr.raw_functions.xrGetSystemProperties(instance, system, ctypes.byref(props))) == 0
    return bool(gaze.supports_eye_gaze_interaction)


def test_eye_gaze_interaction(openxr, gl_window, tmp_path, monkeypatch):
    """XR_EXT_eye_gaze_interaction as the specification has it: offered always, the system's
    support in XrSystemEyeGazeInteractionPropertiesEXT (true when the script has a gaze), the
    profile only with the extension enabled and with its one input, the pose action active once
    bound and attached, its space located at the scripted gaze (position the head's) with the
    sample time chained, untracked in a frame without a gaze."""
    q = (0.0, math.sin(math.radians(10) / 2), 0.0, math.cos(math.radians(10) / 2))
    views = [DEFAULT_VIEWS[0], DEFAULT_VIEWS[0]]
    monkeypatch.setenv("GSCACHE_XR_SCRIPT", str(write_script(tmp_path / "s.txt", frames=0, views=views,
                                                             gaze={0: q})))
    assert GAZE_EXT in [p.extension_name.decode() for p in xr.enumerate_instance_extension_properties()]
    # Without the extension: no such profile.
    instance = openxr.create_instance()
    action_set = xr.create_action_set(instance, xr.ActionSetCreateInfo("a", "a", 0))
    action = xr.create_action(action_set, xr.ActionCreateInfo(action_name="gaze", action_type=xr.ActionType.POSE_INPUT,
                                                               localized_action_name="gaze"))
    binding = xr.InteractionProfileSuggestedBinding(
        interaction_profile=xr.string_to_path(instance, GAZE_PROFILE),
        suggested_bindings=[xr.ActionSuggestedBinding(action, xr.string_to_path(instance, GAZE_POSE))])
    with pytest.raises(xr.PathUnsupportedError):
        xr.suggest_interaction_profile_bindings(instance, binding)
    openxr.destroy_instance()

    instance = openxr.create_instance(extensions=(GL_EXT, GAZE_EXT))
    system = _get_system(instance)
    assert _gaze_support(instance, system)
    _gl_requirements(instance, system)
    session = xr.create_session(instance, xr.SessionCreateInfo(system_id=system, next=gl_window.binding))
    action_set = xr.create_action_set(instance, xr.ActionSetCreateInfo("a", "a", 0))
    action = xr.create_action(action_set, xr.ActionCreateInfo(action_name="gaze", action_type=xr.ActionType.POSE_INPUT,
                                                               localized_action_name="gaze"))
    wrong = xr.InteractionProfileSuggestedBinding(
        interaction_profile=xr.string_to_path(instance, GAZE_PROFILE),
        suggested_bindings=[xr.ActionSuggestedBinding(action, xr.string_to_path(
            instance, "/user/hand/left/input/grip/pose"))])
    with pytest.raises(xr.PathUnsupportedError):  # the profile has the gaze pose only
        xr.suggest_interaction_profile_bindings(instance, wrong)
    xr.suggest_interaction_profile_bindings(instance, xr.InteractionProfileSuggestedBinding(
        interaction_profile=xr.string_to_path(instance, GAZE_PROFILE),
        suggested_bindings=[xr.ActionSuggestedBinding(action, xr.string_to_path(instance, GAZE_POSE))]))
    xr.attach_session_action_sets(session, xr.SessionActionSetsAttachInfo(action_sets=[action_set]))
    gaze_space = xr.create_action_space(session, xr.ActionSpaceCreateInfo(action=action,
                                                                          pose_in_action_space=xr.Posef()))
    local = xr.create_reference_space(session, xr.ReferenceSpaceCreateInfo(
        reference_space_type=xr.ReferenceSpaceType.LOCAL, pose_in_reference_space=xr.Posef()))
    states = []
    _poll_states(instance, session, states)
    xr.begin_session(session, xr.SessionBeginInfo(primary_view_configuration_type=STEREO))
    _poll_states(instance, session, states)
    xr.sync_actions(session, xr.ActionsSyncInfo(active_action_sets=[xr.ActiveActionSet(action_set, xr.NULL_PATH)]))
    assert xr.get_action_state_pose(session, xr.ActionStateGetInfo(action=action)).is_active
    first = xr.wait_frame(session).predicted_display_time  # scripted frame 0: the gaze
    sample = xr.EyeGazeSampleTimeEXT()
    location = xr.SpaceLocation(next=ctypes.cast(ctypes.pointer(sample), ctypes.c_void_p))
    assert int(xr.raw_functions.xrLocateSpace(gaze_space, local, first, ctypes.byref(location))) == 0
    tracked = xr.SpaceLocationFlags.ORIENTATION_VALID_BIT | xr.SpaceLocationFlags.ORIENTATION_TRACKED_BIT
    assert (location.location_flags & tracked) == tracked and sample.time == first
    orientation, position = _pose(location.pose)
    assert np.allclose(orientation, q, atol=1e-6)
    head = np.mean([DEFAULT_VIEWS[0][0].position, DEFAULT_VIEWS[0][1].position], axis=0)
    assert np.allclose(position, head, atol=1e-6)
    # Scripted frame 1 has no gaze line: the eyes are not tracked then.
    untracked = xr.locate_space(gaze_space, local, first + FRAME_PERIOD_NS)
    assert (untracked.location_flags & tracked) == 0
    openxr.assert_clean()
