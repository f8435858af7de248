"""Build, script and read back gscache's OpenXR test runtime (runtime/gscache_test_runtime.cpp).

The runtime is a real OpenXR 1.0 runtime: a shared library plus a JSON manifest that Khronos'
loader (the one bundled in pyopenxr) loads when ``XR_RUNTIME_JSON`` names the manifest. It
emulates one head-mounted display with a PRIMARY_STEREO view configuration and OpenGL (Xlib/GLX)
sessions, plays scripted eye poses back, and records what the application did.

Environment variables, read by the runtime at ``xrCreateInstance``:

``GSCACHE_XR_SCRIPT``
    A script file (write it with :func:`write_script`): ``size W H`` (recommended per-view
    size), ``frames N`` (after N submitted frames the runtime walks the session to STOPPING;
    N <= 0 never), then ``view FRAME EYE qx qy qz qw px py pz angleLeft angleRight angleUp
    angleDown`` per eye per scripted frame; frames cycle; optionally ``gaze FRAME qx qy qz qw``
    (eye tracking: the runtime offers XR_EXT_eye_gaze_interaction always, and reports the system
    able to track the eyes when the script has a gaze line). Poses are in the tracking origin,
    which is also the origin of the LOCAL and STAGE spaces. Without a script: size 256x224, 60
    frames, :data:`DEFAULT_VIEWS`, no eye tracking.
``GSCACHE_XR_RECORD``
    A directory for the record: ``trace.txt`` (the name of every call into the runtime from
    ``xrCreateInstance`` to ``xrDestroyInstance``, one a line, in order; ``xrGetInstanceProcAddr``
    is left out because the loader and layers call it dozens of times), ``frame_K.txt`` per
    submitted frame (K counts ``xrEndFrame`` calls from 0; see :func:`read_frames`) and
    ``frame_K_eye_E.rgba``, the first projection layer's sub-image of eye E read back with
    ``glGetTexImage(GL_TEXTURE_2D, 0, GL_RGBA, GL_UNSIGNED_BYTE)`` and cropped to its
    ``imageRect``: tightly packed RGBA8 rows **bottom row first**, as OpenGL stores them (the
    first row is the one ``glTexSubImage2D`` writes first). Depth swapchains are not read back.
``GSCACHE_XR_LATE_ERROR_DEG``
    The first xrLocateViews of each display time returns the views turned by this many degrees
    about the origin's up axis (a stale early prediction); later calls for that time return the
    scripted views, as a real runtime's prediction improves near the display time. What late
    reprojection corrects.
``GSCACHE_XR_FORMATS``
    Comma-separated hex GL internal formats offered by ``xrEnumerateSwapchainFormats``
    (default :data:`DEFAULT_FORMATS`: GL_SRGB8_ALPHA8, GL_RGBA8, GL_RGBA16F,
    GL_DEPTH_COMPONENT32F).

sRGB read-back: Mesa (llvmpipe, Mesa 22.3 under Xvfb) returns the stored bytes of a
GL_SRGB8_ALPHA8 texture unchanged from ``glGetTexImage(..., GL_RGBA, GL_UNSIGNED_BYTE)`` -- no
sRGB-to-linear decode -- so the ``.rgba`` files hold exactly what the application uploaded or
rendered (with GL_FRAMEBUFFER_SRGB writes, the encoded values). tests/xr/test_test_runtime.py
checks this: ``test_session_end_to_end`` submits GL_SRGB8_ALPHA8 swapchains (the runtime's first
format) and compares the read-back bytes with the uploaded ones exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gscache.backends._loader import BuildError, _build, cache_dir, host_compiler

SOURCE = Path(__file__).resolve().parent / "runtime" / "gscache_test_runtime.cpp"
OPENXR_HEADER = Path("/usr/include/openxr/openxr.h")
LIBRARY_NAME = "libgscache_test_runtime.so"
MANIFEST_NAME = "gscache_test_runtime.json"
RUNTIME_NAME = "gscache test runtime"

DEFAULT_SIZE = (256, 224)
DEFAULT_FRAMES = 60
DEFAULT_FORMATS = (0x8C43, 0x8058, 0x881A, 0x8CAC)
FRAME_PERIOD_NS = 11_111_111

# -fvisibility=hidden: only xrNegotiateLoaderRuntimeInterface is exported from our code; the
# version script (written beside the library) also keeps libstdc++'s weak template instances,
# which its headers mark visible, out of the dynamic symbol table. --no-undefined: the library
# must not link libGL or libX11 (it looks GL up in the application's process at run time).
COMPILE_FLAGS = ("-std=c++17", "-O1", "-shared", "-fPIC", "-fvisibility=hidden", "-Wl,--no-undefined")
EXPORTS_MAP = "{\n  global: xrNegotiateLoaderRuntimeInterface;\n  local: *;\n};\n"

# Headers the source includes besides OpenXR's, with the Debian packages that carry them.
_SYSTEM_HEADERS = {
    Path("/usr/include/X11/Xlib.h"): "libx11-dev",
    Path("/usr/include/GL/glx.h"): "libgl-dev libglx-dev",
}

_BUILDS: dict[str, Path] = {}  # source+flags hash -> manifest, for this test session


class RuntimeUnavailable(Exception):
    """The runtime cannot be built here (no compiler or headers); ``reason`` says what to install.
    Tests turn it into ``pytest.skip(reason)``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def build_test_runtime(out_dir: str | os.PathLike) -> Path:
    """Compile the runtime (with the cpu backend's builder: the host C++ compiler, cached by
    content) and put it and its manifest into ``out_dir``.

    Returns the manifest's path (``gscache_test_runtime.json``: ``{"file_format_version":
    "1.0.0", "runtime": {"name": "gscache test runtime", "library_path": <absolute .so>}}``), the
    value for ``XR_RUNTIME_JSON``. Built once per process and source: later calls return the
    first manifest whatever ``out_dir`` they pass. Raises :class:`RuntimeUnavailable` without
    g++ or the OpenXR/X11/GL headers, ``RuntimeError`` with the compiler's output when it fails.
    """
    if host_compiler() is None:
        raise RuntimeUnavailable("no C++ compiler (apt-get install g++)")
    if not OPENXR_HEADER.exists():
        raise RuntimeUnavailable(f"{OPENXR_HEADER} is missing (apt-get install libopenxr-dev)")
    for header, package in _SYSTEM_HEADERS.items():
        if not header.exists():
            raise RuntimeUnavailable(f"{header} is missing (apt-get install {package})")

    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(COMPILE_FLAGS).encode() + EXPORTS_MAP.encode()).hexdigest()
    cached = _BUILDS.get(key)
    if cached is not None and cached.exists():
        return cached

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Beside the cached libraries, at a fixed path: the command (and so the cache key) stays the same.
    exports = cache_dir() / "gscache_test_runtime.map"
    exports.parent.mkdir(parents=True, exist_ok=True)
    exports.write_text(EXPORTS_MAP)
    # The cpu backend's builder: cached by content under its cache folder, written beside the
    # target and renamed (a half-written library is never loadable).
    try:
        built = _build("gscache_test_runtime", [SOURCE.read_bytes(), EXPORTS_MAP.encode()],
                       [*COMPILE_FLAGS, f"-Wl,--version-script={exports}"], [str(SOURCE), "-ldl"])
    except BuildError as exc:
        raise RuntimeError(f"building the OpenXR test runtime failed:\n{exc}") from None
    library = out / LIBRARY_NAME  # beside its manifest (the tests open it there)
    shutil.copyfile(built, library)

    manifest = out / MANIFEST_NAME
    manifest.write_text(json.dumps({"file_format_version": "1.0.0",
                                    "runtime": {"name": RUNTIME_NAME, "library_path": str(library)}}, indent=4) + "\n")
    _BUILDS[key] = manifest
    return manifest


def core_function_names(header: str | os.PathLike = OPENXR_HEADER) -> list[str]:
    """The OpenXR 1.0 core commands declared in ``header``: every ``XRAPI_ATTR XrResult
    XRAPI_CALL xr...`` prototype between ``#define XR_VERSION_1_0`` and the first extension's
    ``#define XR_..._SPEC_VERSION``. The runtime must resolve every one of them."""
    text = Path(header).read_text()
    start = text.index("#define XR_VERSION_1_0 1")
    end_match = re.compile(r"^#define XR_\w+_SPEC_VERSION\b", re.M).search(text, start)
    core = text[start:end_match.start() if end_match else len(text)]
    return re.findall(r"XRAPI_ATTR\s+XrResult\s+XRAPI_CALL\s+(xr\w+)\s*\(", core)


@dataclass(frozen=True)
class EyeView:
    """One eye of one scripted frame: orientation (x, y, z, w), position (x, y, z) in metres and
    fov (angleLeft, angleRight, angleUp, angleDown) in radians."""

    orientation: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov: tuple[float, float, float, float]


# The runtime's built-in views (used without a script): eyes 64 mm apart at 1.6 m, looking
# down -Z, with slightly different asymmetric FOVs. Mirrors default_script() in the C++.
DEFAULT_VIEWS: tuple[tuple[EyeView, EyeView], ...] = ((
    EyeView((0.0, 0.0, 0.0, 1.0), (-0.032, 1.6, 0.0), (-0.80, 0.70, 0.75, -0.78)),
    EyeView((0.0, 0.0, 0.0, 1.0), (0.032, 1.6, 0.0), (-0.70, 0.80, 0.76, -0.77)),
),)


def write_script(path: str | os.PathLike, *, size: tuple[int, int] = DEFAULT_SIZE,
                 frames: int = DEFAULT_FRAMES,
                 views: Sequence[Sequence[EyeView]] = DEFAULT_VIEWS,
                 gaze: dict[int, Sequence[float]] | None = None) -> Path:
    """Write a ``GSCACHE_XR_SCRIPT`` file and return its path.

    ``size``: recommended per-view (width, height). ``frames``: submitted frames before the
    runtime sends STOPPING (<= 0: never). ``views``: one (eye 0, eye 1) pair per scripted frame;
    the runtime cycles through them by predicted display time. ``gaze``: eye tracking
    (XR_EXT_eye_gaze_interaction): scripted frame -> the gaze's orientation (x, y, z, w) in the
    tracking origin, its -Z axis the direction looked in, its position the head's; a frame without
    one has the eyes untracked; None: a system without eye tracking."""
    lines = [f"size {int(size[0])} {int(size[1])}", f"frames {int(frames)}"]
    for f, pair in enumerate(views):
        if len(pair) != 2:
            raise ValueError(f"scripted frame {f} needs exactly two eyes, got {len(pair)}")
        for eye, v in enumerate(pair):
            numbers = (*v.orientation, *v.position, *v.fov)
            lines.append(f"view {f} {eye} " + " ".join(repr(float(x)) for x in numbers))
    for f, q in (gaze or {}).items():
        lines.append(f"gaze {int(f)} " + " ".join(repr(float(x)) for x in q))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def runtime_environment(manifest: str | os.PathLike, *, script: str | os.PathLike | None = None,
                        record: str | os.PathLike | None = None,
                        formats: Sequence[int] | None = None, late_error_deg: float = 0.0) -> dict[str, str]:
    """The environment variables that select the runtime and configure it (to merge into
    ``os.environ`` before ``xrCreateInstance``, e.g. with ``monkeypatch.setenv``)."""
    env = {"XR_RUNTIME_JSON": str(Path(manifest).resolve())}
    if script is not None:
        env["GSCACHE_XR_SCRIPT"] = str(Path(script).resolve())
    if record is not None:
        env["GSCACHE_XR_RECORD"] = str(Path(record).resolve())
    if formats is not None:
        env["GSCACHE_XR_FORMATS"] = ",".join(f"0x{f:04X}" for f in formats)
    env["GSCACHE_XR_LATE_ERROR_DEG"] = repr(float(late_error_deg))
    return env


def read_trace(record_dir: str | os.PathLike) -> list[str]:
    """The call trace: one OpenXR function name per call into the runtime, in order."""
    return Path(record_dir, "trace.txt").read_text().split()


@dataclass(frozen=True)
class ViewRecord:
    """A view the runtime returned from xrLocateViews for the frame's display time."""

    eye: int
    orientation: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov: tuple[float, float, float, float]


@dataclass(frozen=True)
class LayerRecord:
    """One view of a submitted XrCompositionLayerProjection. ``rect`` is the sub-image's
    (x, y, width, height); ``image_index`` the swapchain image it showed (the last released);
    ``format`` the swapchain's GL internal format."""

    eye: int
    orientation: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov: tuple[float, float, float, float]
    rect: tuple[int, int, int, int]
    image_index: int
    format: int


@dataclass(frozen=True)
class DepthRecord:
    """An XrCompositionLayerDepthInfoKHR chained to a projection view."""

    eye: int
    rect: tuple[int, int, int, int]
    image_index: int
    format: int
    min_depth: float
    max_depth: float
    near_z: float
    far_z: float


@dataclass(frozen=True)
class FrameRecord:
    """``frame_K.txt``: the frame's display time, the views located for it (empty when the
    application did not call xrLocateViews with that display time), and the projection views
    and depth infos of every projection layer it submitted, in order."""

    index: int
    display_time: int
    located: dict[int, ViewRecord]
    layers: list[LayerRecord]
    depth: list[DepthRecord]


def _floats(words: Sequence[str]) -> tuple[float, ...]:
    # The runtime's values are float32 printed with 9 significant digits: rounding the decimal to
    # float32 gives the exact value back (as a Python float, comparable to pyopenxr's fields).
    return tuple(float(np.float32(w)) for w in words)


def read_frame(record_dir: str | os.PathLike, index: int) -> FrameRecord:
    """Parse ``frame_<index>.txt``. Floats come back as the exact float32 values the runtime saw
    (printed with 9 significant digits, rounded to float32 here)."""
    display_time = -1
    located: dict[int, ViewRecord] = {}
    layers: list[LayerRecord] = []
    depth: list[DepthRecord] = []
    for line in Path(record_dir, f"frame_{index}.txt").read_text().splitlines():
        key, *w = line.split()
        if key == "display_time":
            display_time = int(w[0])
        elif key == "located":
            f = _floats(w[1:])
            located[int(w[0])] = ViewRecord(int(w[0]), f[0:4], f[4:7], f[7:11])
        elif key == "layer":
            f = _floats(w[1:12])
            layers.append(LayerRecord(int(w[0]), f[0:4], f[4:7], f[7:11],
                                      tuple(int(x) for x in w[12:16]), int(w[16]), int(w[17], 16)))
        elif key == "depth":
            layers_rect = tuple(int(x) for x in w[1:5])
            d = _floats(w[7:11])
            depth.append(DepthRecord(int(w[0]), layers_rect, int(w[5]), int(w[6], 16), *d))
        else:
            raise ValueError(f"frame_{index}.txt: unknown line {line!r}")
    return FrameRecord(index, display_time, located, layers, depth)


def read_frames(record_dir: str | os.PathLike) -> list[FrameRecord]:
    """Every ``frame_K.txt`` of the record, by K."""
    indices = sorted(int(m.group(1)) for p in Path(record_dir).iterdir()
                     if (m := re.fullmatch(r"frame_(\d+)\.txt", p.name)))
    return [read_frame(record_dir, k) for k in indices]


def read_pixels(record_dir: str | os.PathLike, index: int, eye: int, width: int, height: int) -> np.ndarray:
    """``frame_<index>_eye_<eye>.rgba`` as a (height, width, 4) uint8 array, row 0 = the
    **bottom** row of the image (OpenGL's order)."""
    data = Path(record_dir, f"frame_{index}_eye_{eye}.rgba").read_bytes()
    if len(data) != width * height * 4:
        raise ValueError(f"frame_{index}_eye_{eye}.rgba holds {len(data)} bytes, not {width}x{height}x4")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 4)
