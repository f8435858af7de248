"""The viewer in a real window (Xvfb): what it shows against gscache.render of the same rig,
input through its glfw callbacks, screenshots, the recorded path and its replay, resize and
minimise, run-time switches, and the command line's failure modes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gscache import RenderConfig, render
from gscache.cli import main
from gscache.scenes import structured_demo
from gscache.trajectory import load_trajectory
from tests._helpers import random_scene

W, H = 64, 48  # per eye


@pytest.fixture
def viewer(x_display, tmp_path):
    from gscache.viewer import Viewer, ViewerOptions

    scene = random_scene(400, seed=3, sh_degree=1)
    v = Viewer(scene, ViewerOptions(width=2 * W, height=H, backend="cpu", visible=False,
                                    screenshot_dir=tmp_path / "shots", record_path=tmp_path / "path.json"))
    v.show_overlay = False
    yield v
    v.close()


def _expected(viewer, eye: int) -> np.ndarray:
    frame = render(viewer.scene, viewer.last_rig, RenderConfig(backend="cpu"))
    return (frame.rgb[eye].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def test_window_shows_both_eyes_as_gscache_renders_them(viewer):
    assert viewer.fb_size == (2 * W, H)
    assert viewer.step(capture=True)
    shown = viewer.last_pixels.astype(int)
    assert shown.shape == (H, 2 * W, 3)
    left, right = _expected(viewer, 0), _expected(viewer, 1)
    assert left.std() > 5  # something is drawn
    assert np.abs(shown[:, :W] - left).max() <= 1
    assert np.abs(shown[:, W:] - right).max() <= 1
    assert not np.array_equal(left, right)  # two eyes, not one image twice


def test_anaglyph_and_mono_modes(viewer):
    viewer.view_mode = "anaglyph"
    viewer.step(capture=True)
    assert viewer.eye_size() == (2 * W, H)
    left, right = _expected(viewer, 0), _expected(viewer, 1)
    shown = viewer.last_pixels.astype(int)
    assert np.abs(shown[..., 0] - left[..., 0]).max() <= 1  # red from the left eye
    assert np.abs(shown[..., 1:] - right[..., 1:]).max() <= 1  # green and blue from the right
    viewer.view_mode = "mono"
    viewer.step(capture=True)
    mono = render(viewer.scene, viewer.last_rig.eyes()[0].__class__(
        viewer.last_rig.left, viewer.last_rig.eyes()[0].T_cam_world), RenderConfig(backend="cpu"))
    expected = (mono.rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    assert np.abs(viewer.last_pixels.astype(int) - expected).max() <= 1


def test_keys_and_mouse_move_the_camera(viewer):
    glfw = viewer.glfw
    start = viewer.fly.position.copy()
    forward, right = viewer.fly.forward.copy(), viewer.fly.right.copy()
    viewer.on_key(viewer.window, glfw.KEY_W, 0, glfw.PRESS, 0)
    viewer.step(dt_s=0.5)
    viewer.on_key(viewer.window, glfw.KEY_W, 0, glfw.RELEASE, 0)
    viewer.step(dt_s=0.5)  # released: no further motion
    moved = viewer.fly.position - start
    assert np.allclose(moved, forward * viewer.fly.speed_m_s * 0.5, atol=1e-9)
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_RIGHT, glfw.PRESS, 0)
    viewer.on_cursor(viewer.window, 10.0, 10.0)
    viewer.on_cursor(viewer.window, 110.0, 10.0)  # 100 px to the right
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_RIGHT, glfw.RELEASE, 0)
    viewer.on_cursor(viewer.window, 300.0, 300.0)  # no button: no turn
    up = viewer.fly.up

    def level(v):  # the gaze projected on the ground plane: a turn is a yaw about the up axis
        v = v - up * (v @ up)
        return v / np.linalg.norm(v)

    turned = math.degrees(math.acos(float(np.clip(level(viewer.fly.forward) @ level(forward), -1, 1))))
    assert turned == pytest.approx(100 * viewer.fly.degrees_per_px, abs=1e-6)
    assert viewer.fly.forward @ up == pytest.approx(forward @ up)  # the pitch is kept
    assert viewer.fly.forward @ right > 0  # turned right
    # The rendered head follows: the rig's pose is the controller's.
    viewer.step()
    assert torch.allclose(viewer.last_rig.T_world_head[:3, 3], torch.from_numpy(viewer.fly.position))
    # Orbit mode, IPD and reset.
    viewer.on_key(viewer.window, glfw.KEY_TAB, 0, glfw.PRESS, 0)
    assert viewer.orbit is not None
    viewer.on_key(viewer.window, glfw.KEY_RIGHT_BRACKET, 0, glfw.PRESS, 0)
    assert viewer.ipd_m == pytest.approx(0.065)
    viewer.on_key(viewer.window, glfw.KEY_R, 0, glfw.PRESS, 0)
    assert viewer.orbit is None and np.allclose(viewer.fly.position, viewer.home[:3, 3].numpy())


def test_screenshot_and_recorded_path_replay(viewer, tmp_path):
    glfw = viewer.glfw
    viewer.step()
    viewer.on_key(viewer.window, glfw.KEY_F12, 0, glfw.PRESS, 0)
    shots = list((tmp_path / "shots").glob("*.png"))
    assert len(shots) == 1
    img = np.asarray(Image.open(shots[0]))
    assert img.shape == (H, 2 * W, 3)
    assert np.array_equal(img[:, :W], _expected(viewer, 0))
    viewer.on_key(viewer.window, glfw.KEY_K, 0, glfw.PRESS, 0)  # start recording
    viewer.on_key(viewer.window, glfw.KEY_D, 0, glfw.PRESS, 0)
    for _ in range(3):
        viewer.step(dt_s=0.1)
    viewer.on_key(viewer.window, glfw.KEY_K, 0, glfw.PRESS, 0)  # stop: written
    traj = load_trajectory(tmp_path / "path.json")
    assert len(traj) == 3
    assert float((traj.T_world_head[2, :3, 3] - traj.T_world_head[0, :3, 3]).norm()) == pytest.approx(
        2 * 0.1 * viewer.fly.speed_m_s, rel=1e-6)
    assert main(["bench", "--trajectory", str(tmp_path / "path.json"), "--configs", "cpu", "--size", "32x32",
                 "--warmup", "0", "--quality-frames", "0", "--no-progress", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["settings"]["frames"] == 3


def test_resize_minimise_and_runtime_switches(viewer):
    glfw = viewer.glfw
    glfw.set_window_size(viewer.window, 96, 40)
    for _ in range(100):  # the X server answers asynchronously
        glfw.wait_events_timeout(0.02)
        if viewer.fb_size == (96, 40):
            break
    assert viewer.fb_size == (96, 40)
    viewer.step()
    assert (viewer.last_rig.width, viewer.last_rig.height) == (48, 40)
    n = viewer.frames_rendered
    viewer.on_iconify(viewer.window, 1)
    viewer.step()
    assert viewer.frames_rendered == n  # minimised: nothing rendered
    viewer.on_iconify(viewer.window, 0)
    viewer.on_key(viewer.window, glfw.KEY_M, 0, glfw.PRESS, 0)  # stereo -> approx
    viewer.on_key(viewer.window, glfw.KEY_M, 0, glfw.PRESS, 0)  # -> D2
    assert viewer.reuse == "D2"
    viewer.show_overlay = True
    viewer.step()
    viewer.step()
    assert viewer.last_frame.cache is not None and viewer.last_frame.cache.depth == 2
    text = "\n".join(viewer.stats.lines(viewer.status()))
    assert "reuse: D2" in text and "hits" in text and "FPS" in text and "backend: cpu" in text
    viewer.on_key(viewer.window, glfw.KEY_B, 0, glfw.PRESS, 0)  # cpu -> torch (the next for a CPU device)
    assert viewer.backend_name == "torch"
    viewer.step()


def test_snap_to_scene_cameras_and_devices_in_the_overlay(x_display):
    from gscache.trajectory import orbit
    from gscache.viewer import Viewer, ViewerOptions

    cams = orbit((0.0, 0.0, 0.0), 4.0, 3)
    v = Viewer(random_scene(200, seed=1), ViewerOptions(width=64, height=32, backend="cpu", visible=False,
                                                        cameras=cams, devices=("local",)))
    try:
        v.on_key(v.window, v.glfw.KEY_N, 0, v.glfw.PRESS, 0)
        v.on_key(v.window, v.glfw.KEY_N, 0, v.glfw.PRESS, 0)
        assert torch.allclose(v.pose(), cams.T_world_head[1], atol=1e-9)
        v.on_key(v.window, v.glfw.KEY_P, 0, v.glfw.PRESS, 0)
        assert torch.allclose(v.pose(), cams.T_world_head[0], atol=1e-9)
        v.step()
        assert "1/1 active" in v.status()["devices"]
    finally:
        v.close()


def test_structured_scene_in_the_viewer(x_display):
    from gscache.viewer import Viewer, ViewerOptions

    v = Viewer(structured_demo(seed=0, spacing=0.4), ViewerOptions(width=64, height=32, backend="cpu", visible=False))
    try:
        assert v.step()
        assert v.last_frame.times.derive_ms > 0
    finally:
        v.close()


def test_command_line_scripted_run_and_failures(x_display, tmp_path, capsys):
    assert main(["view", "--frames", "2", "--window", "64x32", "--backend", "cpu", "--screenshot-at-exit",
                 "--screenshots", str(tmp_path)]) == 0
    [png] = tmp_path.glob("gscache_window_*.png")
    assert Image.open(png).size == (64, 32)
    assert main(["view", str(tmp_path / "missing.ply"), "--frames", "1"]) == 2
    assert "missing.ply" in capsys.readouterr().err
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-m", "gscache.cli", "view", "--frames", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "display" in proc.stderr


def test_foveation_key_cycles_the_levels_and_z_draws_the_zones(viewer):
    from gscache.presets import FOVEATION_LEVELS
    from gscache.stages.foveate import fovea_layout

    glfw = viewer.glfw
    viewer.on_key(viewer.window, glfw.KEY_F, 0, glfw.PRESS, 0)  # off -> low
    assert viewer.foveation == "low" and viewer.renderer.config.foveation == FOVEATION_LEVELS["low"]
    viewer.step(capture=True)
    assert viewer.last_frame.times.composite_ms > 0  # the frame was foveated
    plain = viewer.last_pixels.copy()
    viewer.on_key(viewer.window, glfw.KEY_Z, 0, glfw.PRESS, 0)
    viewer.step(capture=True)
    x0, y0, x1, y1 = fovea_layout(W, H, 2, FOVEATION_LEVELS["low"], None).inner[0]
    assert (viewer.last_pixels[y0, x0:x1] == 255).all() and not (plain[y0, x0:x1] == 255).all()
    text = "\n".join(viewer.stats.lines(viewer.status()))
    assert "foveation: low" in text
    fstats = viewer.last_frame.foveation  # the renderer's second frame: the pay-off controller's unfoveated probe
    if fstats.paused:
        assert "foveation paused" in text
    else:
        assert f"drawn per region: {fstats.regions[0]} " in text and all(f" {r} " in text for r in fstats.regions)
    for _ in range(2):
        viewer.on_key(viewer.window, glfw.KEY_F, 0, glfw.PRESS, 0)  # low -> medium -> high
    viewer.on_key(viewer.window, glfw.KEY_F, 0, glfw.PRESS, 0)  # high -> medium-ring: three views per eye
    assert viewer.foveation == "medium-ring"
    viewer.step(capture=True)
    assert viewer.last_frame.foveation.regions == ("fovea", "ring", "far")
    from gscache.stages.foveate import ring_in_eye_pixels

    rx0, _, rx1, ry1 = ring_in_eye_pixels(W, H, 2, FOVEATION_LEVELS["medium-ring"], None).inner[0]
    assert (viewer.last_pixels[ry1 - 1, rx0:rx1] == 191).all()  # the ring's outline (Z), light grey
    viewer.on_key(viewer.window, glfw.KEY_F, 0, glfw.PRESS, 0)  # -> off
    assert viewer.foveation == "off"
    viewer.step()
    assert viewer.last_frame.times.composite_ms == 0
