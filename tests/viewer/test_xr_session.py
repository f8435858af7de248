"""``gscache view --xr`` end to end against the project's own OpenXR runtime (tests/xr/runtime),
loaded by pyopenxr's real Khronos loader through XR_RUNTIME_JSON, under Xvfb with Mesa's OpenGL:
scripted canted eyes with their own asymmetric fields of view, the session walked through its
states by the runtime, and what the runtime received checked: the layer carries the located
poses and FOVs, each eye's pixels are gscache.render's for that eye (not swapped, not flipped),
and the calls come in the order OpenXR asks."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from gscache import RenderConfig, Renderer
from gscache.viewer.xr_views import XrView, rig_from_views
from tests._helpers import random_scene

W, H = 96, 80


def _yaw(deg: float):
    h = math.radians(deg) / 2
    return (0.0, math.sin(h), 0.0, math.cos(h))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    pytest.importorskip("xr", reason="pyopenxr is not installed (pip install -r requirements.txt)")
    from tests.xr.runtime import RuntimeUnavailable, build_test_runtime

    try:
        return build_test_runtime(tmp_path_factory.mktemp("xr_runtime"))
    except RuntimeUnavailable as exc:
        pytest.skip(f"the OpenXR test runtime cannot be built here: {exc}")


LAYER_LIFECYCLE = ("VUID-CoreValidation-Initialize", "VUID-CoreValidation-Destroy")
"""The core validation layer's own notes, written whatever the application does."""


def validation_on(monkeypatch, report) -> None:
    """Khronos' core validation layer (bundled in pyopenxr) on, its text report into ``report``."""
    import xr.api_layer

    monkeypatch.setenv("XR_API_LAYER_PATH", os.environ.get("XR_API_LAYER_PATH", ""))
    monkeypatch.setenv("XR_ENABLE_API_LAYERS", "")
    xr.api_layer.expose_packaged_api_layers()
    assert xr.api_layer.activate_core_validation_layer()
    monkeypatch.setenv("XR_CORE_VALIDATION_EXPORT_TYPE", "text")
    monkeypatch.setenv("XR_CORE_VALIDATION_FILE_NAME", str(report))


def validation_findings(report) -> list[str]:
    text = report.read_text()
    assert LAYER_LIFECYCLE[0] in text  # the layer ran
    return [line for line in text.splitlines()
            if line.startswith("[") and "VALID_" in line and not any(v in line for v in LAYER_LIFECYCLE)]


GOLDEN = Path(__file__).with_name("xr_calls.golden")
"""The calls a 4-frame session makes, as Khronos' api_dump layer saw them (normalised by
api_dump_calls). Regenerate after a deliberate change with GSCACHE_UPDATE_GOLDEN=1."""


def api_dump_calls(path) -> list[str]:
    """The OpenXR calls in an api_dump text file, normalised: xrGetInstanceProcAddr left out,
    a call repeated back to back (two-call enumerations, a drained event queue) kept once, and
    one line per frame (xrWaitFrame to the next), a frame identical to the one before kept once."""
    names = [m.group(1) for line in Path(path).read_text().splitlines() if (m := re.match(r"XrResult (xr\w+)", line))]
    calls = []
    for name in names:
        if name != "xrGetInstanceProcAddr" and (not calls or calls[-1] != name):
            calls.append(name)
    blocks, current = [], []
    for name in calls:
        if name == "xrWaitFrame" and current:
            blocks.append(current)
            current = []
        current.append(name)
    blocks.append(current)
    lines = []
    for block in blocks:
        line = " ".join(block)
        if not lines or lines[-1] != line:
            lines.append(line)
    return lines


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("formats", [None, (0x881A,)], ids=["srgb-and-depth", "float-linear-no-depth"])
def test_the_viewer_presents_each_eye_as_located(x_display, manifest, tmp_path, monkeypatch, formats):
    """The runtime's default formats (GL_SRGB8_ALPHA8 first, a depth format) and one that offers
    only GL_RGBA16F (linear: gscache decodes sRGB before writing; no depth layer)."""
    from gscache.viewer import Viewer, ViewerOptions
    from tests.xr.runtime import EyeView, read_frames, read_pixels, read_trace, runtime_environment, write_script

    # Two scripted frames of canted eyes (5 degrees outwards) with different asymmetric FOVs,
    # the head moving and turning between them.
    frames = [(EyeView(_yaw(5.0 + t), (-0.031 + 0.02 * k, 0.01 * k, 0.0), (-0.62, 0.48, 0.5, -0.55)),
               EyeView(_yaw(-5.0 + t), (0.033 + 0.02 * k, 0.01 * k, 0.0), (-0.47, 0.63, 0.52, -0.53)))
              for k, t in ((0, 0.0), (1, 3.0))]
    script = write_script(tmp_path / "script.txt", size=(W, H), frames=4, views=frames)
    record = tmp_path / "record"
    record.mkdir()
    for key, value in runtime_environment(manifest, script=script, record=record, formats=formats).items():
        monkeypatch.setenv(key, value)
    report = tmp_path / "core_validation.txt"
    validation_on(monkeypatch, report)
    import xr.api_layer

    dump = tmp_path / "api_dump.txt"
    assert xr.api_layer.activate_api_dump_layer(str(dump))
    scene = random_scene(600, seed=11, sh_degree=1)
    viewer = Viewer(scene, ViewerOptions(width=2 * W, height=H, backend="cpu", visible=False, xr=True, frames=20,
                                         screenshot_dir=tmp_path, record_path=tmp_path / "path.json"))
    from gscache.viewer.xr_views import level

    origin = level(viewer.nav.pose(), viewer.options.up)  # the OpenXR origin: the start pose, levelled
    assert viewer.run() == 0
    submitted = read_frames(record)
    assert len(submitted) == 4 and viewer.session.xr.lifecycle.reason == "exiting"
    assert all(b.display_time > a.display_time for a, b in zip(submitted, submitted[1:]))
    renderer = Renderer(scene, RenderConfig(backend="cpu"))
    for frame in submitted:
        assert [layer.eye for layer in frame.layers] == [0, 1]
        views = []
        for layer in frame.layers:
            located = frame.located[layer.eye]
            # The layer carries the pose and field of view the eye was rendered for: the located ones.
            assert (layer.orientation, layer.position, layer.fov) == (located.orientation, located.position,
                                                                        located.fov)
            assert layer.rect == (0, 0, W, H)
            views.append(XrView(located.orientation, located.position, located.fov))
        rig = rig_from_views(views, W, H, origin)
        expected = renderer.render(rig)
        # The depth layer where a depth format was offered, with the clip planes it was encoded for.
        assert [(d.eye, d.near_z, d.far_z) for d in frame.depth] == (
            [(0, pytest.approx(rig.near_m), rig.far_m), (1, pytest.approx(rig.near_m), rig.far_m)]
            if formats is None else [])
        for e in range(2):
            got = read_pixels(record, frame.index, e, W, H)[::-1, :, :3]  # OpenGL rows: bottom first
            if formats is not None:  # linear light read back in 8 bits: encoded again to compare
                got = np.rint(_linear_to_srgb(got / 255.0) * 255.0).astype(np.uint8)
            want = np.rint(expected.rgb[e].clamp(0, 1).numpy() * 255.0).astype(np.uint8)  # sRGB: as is
            assert _psnr(got, want) >= (40.0 if formats is None else 30.0)  # 8-bit linear read-back bands
            assert _psnr(got, np.rint(expected.rgb[1 - e].clamp(0, 1).numpy() * 255.0)) < _psnr(got, want) - 3
            assert _psnr(got[::-1], want) < _psnr(got, want) - 3  # not upside down
    trace = read_trace(record)
    first = {name: trace.index(name) for name in set(trace)}
    assert first["xrGetOpenGLGraphicsRequirementsKHR"] < first["xrCreateSession"] < first["xrBeginSession"]
    assert first["xrBeginSession"] < first["xrWaitFrame"] < first["xrEndSession"] < first["xrDestroySession"]
    frame_calls = [c for c in trace if c in ("xrWaitFrame", "xrBeginFrame", "xrEndFrame")]
    assert frame_calls == ["xrWaitFrame", "xrBeginFrame", "xrEndFrame"] * (len(frame_calls) // 3)
    assert trace[-1] == "xrDestroyInstance"
    # The controllers: every profile's bindings suggested, the action set attached, synchronised
    # in the frames that had input focus.
    assert trace.count("xrSuggestInteractionProfileBindings") == 3 and "xrAttachSessionActionSets" in trace
    assert first["xrAttachSessionActionSets"] < first["xrBeginSession"] < first["xrSyncActions"]
    assert validation_findings(report) == []
    if formats is None:  # the call order as the application made it, against the golden trace
        got = api_dump_calls(dump)
        if os.environ.get("GSCACHE_UPDATE_GOLDEN") == "1":
            GOLDEN.write_text("\n".join(got) + "\n")
        assert got == GOLDEN.read_text().splitlines()


@pytest.mark.parametrize("ahead_m", [0.0, 0.3], ids=["turn", "turn-and-move"])
def test_late_reprojection_submits_the_fresher_prediction(x_display, manifest, tmp_path, monkeypatch, ahead_m):
    """The runtime's first prediction of each display time is 3 degrees off about the origin (a
    stale early prediction); located again just before submission it is right. With late
    reprojection the layer carries the fresh pose and the pixels are warped to it, far closer to
    the exact render there than the image rendered for the stale pose; without it the layer
    carries the stale pose it was rendered for. Eyes at the origin only turn (rotation alone);
    eyes ``ahead_m`` in front of it also move 16 mm (the depth warp's parallax)."""
    from gscache.viewer import Viewer, ViewerOptions
    from gscache.viewer.xr_views import level
    from tests.xr.runtime import EyeView, read_frames, read_pixels, runtime_environment, write_script

    eyes = (EyeView((0.0, 0.0, 0.0, 1.0), (-0.032, 0.0, -ahead_m), (-0.55, 0.55, 0.5, -0.5)),
            EyeView((0.0, 0.0, 0.0, 1.0), (0.032, 0.0, -ahead_m), (-0.55, 0.55, 0.5, -0.5)))
    scene = random_scene(900, seed=4, sh_degree=0)
    psnr = {}
    for late_warp in (True, False):
        run = tmp_path / str(late_warp)
        record = run / "record"
        record.mkdir(parents=True)
        script = write_script(run / "script.txt", size=(W, H), frames=3, views=[eyes])
        for key, value in runtime_environment(manifest, script=script, record=record, late_error_deg=3.0).items():
            monkeypatch.setenv(key, value)
        report = run / "core_validation.txt"
        validation_on(monkeypatch, report)
        viewer = Viewer(scene, ViewerOptions(width=2 * W, height=H, backend="cpu", visible=False, xr=True, frames=10,
                                             xr_late_warp=late_warp, screenshot_dir=run,
                                             record_path=run / "path.json"))
        origin = level(viewer.nav.pose(), viewer.options.up)
        viewer.run()
        out = viewer.session.xr
        assert out.late_warps == (3 if late_warp else 0) and validation_findings(report) == []
        exact = Renderer(scene, RenderConfig(backend="cpu")).render(
            rig_from_views([XrView(v.orientation, v.position, v.fov) for v in eyes], W, H, origin))
        want = np.rint(exact.rgb[0].clamp(0, 1).numpy() * 255.0).astype(np.uint8)
        frames = read_frames(record)
        assert len(frames) == 3
        for frame in frames:
            # The scripted (fresh) pose has no yaw, the stale first prediction 3 degrees.
            assert (abs(frame.layers[0].orientation[1]) < 1e-6) == late_warp
        psnr[late_warp] = min(_psnr(read_pixels(record, f.index, 0, W, H)[::-1, :, :3], want) for f in frames)
    assert psnr[True] > psnr[False] + 6.0, psnr


def _pitch(deg: float):
    h = math.radians(deg) / 2
    return (math.sin(h), 0.0, 0.0, math.cos(h))


def test_the_fovea_follows_the_headsets_eye_gaze(x_display, manifest, tmp_path, monkeypatch):
    """A runtime with eye tracking (XR_EXT_eye_gaze_interaction): the viewer enables it, binds the
    gaze pose, locates it at each frame's predicted display time and centres each eye's fovea
    where the gaze meets that eye's image; in a scripted frame where the eyes are not tracked the
    fovea goes back to the centre. Each submitted eye is the render foveated there (not at the
    centre), under the core validation layer."""
    from gscache.presets import FOVEATION_LEVELS
    from gscache.viewer import Viewer, ViewerOptions
    from gscache.viewer.xr_views import gaze_fractions, level, matrix_quaternion, quaternion_matrix
    from tests.xr.runtime import EyeView, read_frames, read_pixels, read_trace, runtime_environment, write_script

    # Two scripted frames, told apart by the head's height; the gaze 14 degrees left and 9 up in
    # the first, untracked in the second.
    frames = [(EyeView((0.0, 0.0, 0.0, 1.0), (-0.032, 0.01 * k, 0.0), (-0.6, 0.55, 0.52, -0.5)),
               EyeView((0.0, 0.0, 0.0, 1.0), (0.032, 0.01 * k, 0.0), (-0.55, 0.6, 0.52, -0.5))) for k in (0, 1)]
    # Yaw, then pitch about the gaze's own x.
    gaze_q = matrix_quaternion(quaternion_matrix(_yaw(14.0)) @ quaternion_matrix(_pitch(9.0)))
    script = write_script(tmp_path / "script.txt", size=(W, H), frames=4, views=frames, gaze={0: gaze_q})
    record = tmp_path / "record"
    record.mkdir()
    for key, value in runtime_environment(manifest, script=script, record=record).items():
        monkeypatch.setenv(key, value)
    report = tmp_path / "core_validation.txt"
    validation_on(monkeypatch, report)
    scene = random_scene(900, seed=12, sh_degree=1)
    viewer = Viewer(scene, ViewerOptions(width=2 * W, height=H, backend="cpu", visible=False, xr=True, frames=20,
                                         foveation="medium", xr_late_warp=False, screenshot_dir=tmp_path,
                                         record_path=tmp_path / "path.json"))
    origin = level(viewer.nav.pose(), viewer.options.up)
    assert viewer.run() == 0
    assert viewer.session.xr.eye_tracking and validation_findings(report) == []
    assert viewer.status()["eye tracking"].startswith(("gaze (", "eyes not tracked"))
    cfg = RenderConfig(backend="cpu", foveation=FOVEATION_LEVELS["medium"])
    seen = set()
    for frame in read_frames(record):
        views = [XrView(v.orientation, v.position, v.fov) for v in (frame.located[0], frame.located[1])]
        tracked = abs(views[0].position[1]) < 0.005  # scripted frame 0
        gaze = gaze_fractions(gaze_q, views) if tracked else None
        rig = rig_from_views(views, W, H, origin)
        at_gaze = Renderer(scene, cfg).render(rig, gaze=gaze_fractions(gaze_q, views))
        centred = Renderer(scene, cfg).render(rig)
        want, other = (at_gaze, centred) if tracked else (centred, at_gaze)
        for e in range(2):
            got = read_pixels(record, frame.index, e, W, H)[::-1, :, :3]
            w = np.rint(want.rgb[e].clamp(0, 1).numpy() * 255.0)
            o = np.rint(other.rgb[e].clamp(0, 1).numpy() * 255.0)
            assert _psnr(got, w) >= 40.0 and _psnr(got, w) > _psnr(got, o) + 3.0
        seen.add(tracked)
        if gaze is not None:  # the gaze is left of and above each image's centre
            assert all(x < 0.4 and y < 0.4 for x, y in gaze)
    assert seen == {True, False}
    trace = read_trace(record)
    assert "xrGetActionStatePose" in trace and "xrLocateSpace" in trace
