"""The OpenXR pieces that need no runtime: the session lifecycle driven by scripted events, the
frame-call order, the swapchain format choice, where gamma is applied and the row flip, and
``gscache view --xr`` without a runtime (one line, exit 2)."""

from __future__ import annotations

import numpy as np
import pytest

from gscache.cli import main
from gscache.errors import GscacheError
from gscache.viewer.xr_formats import (GL_DEPTH_COMPONENT24, GL_DEPTH_COMPONENT32F, GL_RGB10_A2, GL_RGBA8, GL_RGBA16F,
                                       GL_SRGB8_ALPHA8, choose_color_format, choose_depth_format, srgb_to_linear,
                                       swapchain_pixels)
from gscache.viewer.xr_state import FrameOrder, Lifecycle, SessionState as S


def test_the_lifecycle_begins_ends_and_exits_as_the_runtime_asks():
    life = Lifecycle()
    script = [(S.READY, ["begin"]), (S.SYNCHRONIZED, []), (S.VISIBLE, []), (S.FOCUSED, []),
              (S.VISIBLE, []), (S.STOPPING, ["end"]), (S.IDLE, []), (S.READY, ["begin"]), (S.FOCUSED, [])]
    for state, calls in script:
        assert life.changed(state) == calls, state
    assert life.frame_loop and life.input_active
    assert life.quit() == ["request_exit"]  # running: let the runtime walk it out
    assert life.changed(S.STOPPING) == ["end"] and not life.frame_loop and not life.input_active
    assert life.changed(S.EXITING) == ["destroy"] and life.done and life.reason == "exiting"
    assert life.changed(S.READY) == []  # nothing after the end


def test_a_lost_session_is_ended_and_destroyed():
    life = Lifecycle()
    life.changed(S.READY)
    life.changed(S.VISIBLE)
    assert not life.input_active  # visible but not focused: no input
    assert life.changed(S.LOSS_PENDING) == ["end", "destroy"] and life.reason == "loss pending"
    idle = Lifecycle()
    assert idle.quit() == ["destroy"] and idle.reason == "quit"
    with pytest.raises(GscacheError, match="session state"):
        Lifecycle().changed(42)


def test_frame_calls_come_in_order_and_in_pairs():
    order = FrameOrder()
    for should_render in (True, False, True):
        order.wait(should_render)
        order.begin()
        order.end(1 if should_render else 0)
    assert order.frames == 3
    with pytest.raises(GscacheError, match="without xrWaitFrame"):
        order.begin()
    order.wait(False)
    with pytest.raises(GscacheError, match="xrWaitFrame while"):
        order.wait(True)
    order.begin()
    with pytest.raises(GscacheError, match="said not to render"):
        order.end(1)
    with pytest.raises(GscacheError, match="without xrBeginFrame"):
        FrameOrder().end(0)


def test_the_swapchain_format_prefers_srgb_then_float():
    assert choose_color_format([GL_RGBA8, GL_RGBA16F, GL_SRGB8_ALPHA8]).gl_format == GL_SRGB8_ALPHA8
    f16 = choose_color_format([GL_RGBA8, GL_RGBA16F])
    assert (f16.gl_format, f16.srgb, f16.dtype) == (GL_RGBA16F, False, "float16")
    assert choose_color_format([GL_RGBA8]).name == "GL_RGBA8"
    with pytest.raises(GscacheError, match="GL_RGB10_A2"):
        choose_color_format([GL_RGB10_A2])
    assert choose_depth_format([GL_DEPTH_COMPONENT24, GL_DEPTH_COMPONENT32F]) == GL_DEPTH_COMPONENT32F
    assert choose_depth_format([GL_RGBA8]) is None


def test_gamma_is_applied_only_for_linear_swapchains_and_rows_are_flipped():
    rgb = np.zeros((3, 2, 3), np.float32)
    rgb[0] = 0.5  # the top row
    rgb[2, :, 1] = 1.2  # out of range: clamped
    srgb = swapchain_pixels(rgb, None, choose_color_format([GL_SRGB8_ALPHA8]))
    assert srgb.dtype == np.uint8 and srgb.shape == (3, 2, 4)
    assert (srgb[-1, :, :3] == 128).all() and (srgb[..., 3] == 255).all()  # top row last, as it was
    assert (srgb[0, :, 1] == 255).all()
    linear = swapchain_pixels(rgb, None, choose_color_format([GL_RGBA16F]))
    assert linear.dtype == np.float16
    assert linear[-1, 0, 0] == pytest.approx(float(srgb_to_linear(np.float32(0.5))), abs=1e-3)  # about 0.214
    assert srgb_to_linear(np.array([0.0, 0.04045, 1.0])) == pytest.approx([0.0, 0.04045 / 12.92, 1.0])
    with pytest.raises(GscacheError, match="rgb"):
        swapchain_pixels(np.zeros((2, 2)), None, choose_color_format([GL_RGBA8]))


def test_view_xr_without_a_runtime_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    pytest.importorskip("xr", reason="pyopenxr is not installed (pip install -r requirements.txt)")
    monkeypatch.setenv("XR_RUNTIME_JSON", str(tmp_path / "no_runtime.json"))
    assert main(["view", "--xr", "--frames", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no OpenXR runtime found" in err and "XR_RUNTIME_JSON" in err


def test_view_xr_without_pyopenxr_says_how_to_install_it(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_xr(name, *args, **kw):
        if name == "xr":
            raise ImportError("No module named 'xr'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_xr)
    assert main(["view", "--xr", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "gscache[xr]" in err
