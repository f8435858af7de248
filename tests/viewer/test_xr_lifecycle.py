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


def test_controller_buttons_fire_once_per_press_and_snap_turns_once_per_push():
    from gscache.viewer.xr_input import SNAP_TURN_DEG, ControllerState, InputEdges, stick

    edges = InputEdges()
    assert edges.update(ControllerState(held=frozenset({"cycle_reuse"}))) == (["cycle_reuse"], 0)
    assert edges.update(ControllerState(held=frozenset({"cycle_reuse"}))) == ([], 0)  # held: no repeat
    assert edges.update(ControllerState()) == ([], 0)
    assert edges.update(ControllerState(held=frozenset({"cycle_reuse", "reset"}))) == (["cycle_reuse", "reset"], 0)
    assert edges.update(ControllerState(turn=(0.9, 0.0)))[1] == 1
    assert edges.update(ControllerState(turn=(0.95, 0.0)))[1] == 0  # still pushed
    assert edges.update(ControllerState(turn=(0.5, 0.0)))[1] == 0  # not back to rest yet
    assert edges.update(ControllerState(turn=(-0.8, 0.0)))[1] == 0
    assert edges.update(ControllerState(turn=(0.1, 0.0)))[1] == 0  # rest: armed again
    assert edges.update(ControllerState(turn=(-0.8, 0.0)))[1] == -1
    assert stick(0.1, -0.1) == (0.0, 0.0) and stick(1.0, -1.0) == (1.0, -1.0) and 0 < stick(0.5, 0)[0] < 0.5
    assert SNAP_TURN_DEG == 30.0


def test_bindings_name_real_components_of_each_profile():
    from gscache.viewer.xr_input import BINDINGS, BUTTONS, STICKS

    for profile, pairs in BINDINGS.items():
        assert profile.startswith("/interaction_profiles/")
        for action, path in pairs:
            assert action in BUTTONS + STICKS
            assert path.startswith(("/user/hand/left/input/", "/user/hand/right/input/"))
            # Sticks bind the vector component, buttons a click.
            assert path.endswith("/thumbstick") if action in STICKS else path.endswith("/click")
    assert {a for a, _ in BINDINGS["/interaction_profiles/oculus/touch_controller"]} == set(BUTTONS + STICKS)


def test_the_openxr_origin_is_level_and_the_head_glides_and_snap_turns():
    import math

    import torch

    from gscache.camera import look_at
    from gscache.viewer.controls import FlyController
    from gscache.viewer.xr_views import level

    up = (0.0, -1.0, 0.0)
    pitched = look_at((1.0, -2.0, 0.0), (1.0, -3.0, 4.0), up)  # looking up 14 degrees
    flat = level(pitched, up)
    assert torch.allclose(flat[:3, 3], pitched[:3, 3])
    assert abs(float(flat[:3, 2] @ torch.tensor(up, dtype=torch.float64))) < 1e-12  # no pitch
    assert torch.allclose(flat[:3, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)
    fly = FlyController(flat, up, speed_m_s=2.0)
    fly.glide((0.0, 1.0), 0.5)
    assert fly.position == pytest.approx([1.0, -2.0, 1.0])  # 1 m along the heading, none up or down
    fly.look(30.0 / fly.degrees_per_px, 0.0)  # a snap turn to the right
    assert math.degrees(math.acos(float(fly.forward @ [0.0, 0.0, 1.0]))) == pytest.approx(30.0)
    assert fly.forward[0] > 0  # right is +x


def test_a_frame_the_runtime_does_not_want_is_ended_empty_and_not_rendered():
    from gscache.viewer.xr_session import XrWindowSession

    class Output:
        def __init__(self, wanted):
            self.lifecycle, self.wanted, self.skipped = Lifecycle(), wanted, 0
            self.lifecycle.changed(S.READY)

        def wait_frame(self):
            return self.wanted

        def skip_frame(self):
            self.skipped += 1

    session = object.__new__(XrWindowSession)  # its window and renderer are not needed here
    session.xr = Output(wanted=False)
    assert not session.visible() and session.xr.skipped == 1  # waited, ended with no layer, not rendered
    session.xr = Output(wanted=True)
    assert session.visible() and session.xr.skipped == 0
    idle = Output(wanted=True)
    idle.lifecycle = Lifecycle()  # not READY yet: no frame loop, no xrWaitFrame
    session.xr = idle
    assert not session.visible()
