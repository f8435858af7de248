"""The viewer's camera controllers (pure math, no window) and its image composition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gscache.camera import look_at

controls = pytest.importorskip("gscache.viewer.controls")


def test_fly_moves_in_the_camera_frame_and_keeps_the_pose():
    T = look_at((0.0, -1.0, -5.0), (0.0, -1.0, 0.0))
    fly = controls.FlyController(T, speed_m_s=2.0)
    assert torch.allclose(fly.pose(), T, atol=1e-12)
    fly.move({"forward", "right"}, 0.5)
    assert np.allclose(fly.position, [math.sqrt(0.5), -1.0, -5.0 + math.sqrt(0.5)])  # unit diagonal step
    fly.move({"up"}, 1.0)
    assert fly.position[1] == pytest.approx(-3.0)  # up is -y


def test_fly_gaze_is_clamped_short_of_the_poles():
    fly = controls.FlyController(look_at((0, 0, -5), (0, 0, 0)))
    fly.look(0.0, -10_000.0)  # far up
    angle = math.degrees(math.acos(float(fly.forward @ fly.up)))
    assert angle == pytest.approx(math.degrees(controls.FlyController.MIN_UP_ANGLE), abs=1e-6)
    assert np.isfinite(fly.pose().numpy()).all()


def test_orbit_starts_where_fly_is_and_looks_at_the_target():
    fly = controls.FlyController(look_at((3.0, -2.0, -4.0), (0.0, 0.0, 0.0)))
    orbit = controls.OrbitController.around(fly, (0.0, 0.0, 0.0))
    assert np.allclose(orbit.position, fly.position)
    d0 = orbit.distance
    orbit.zoom(1.0)
    assert orbit.distance == pytest.approx(0.9 * d0)
    orbit.drag(100.0, 0.0)
    assert np.linalg.norm(orbit.position) == pytest.approx(orbit.distance)
    z = orbit.pose()[:3, 2].numpy()
    assert np.allclose(z, -orbit.position / orbit.distance)


def test_compose_modes():
    from gscache.viewer import compose

    rgb = torch.rand(2, 4, 5, 3)
    sbs, ana, mono = (compose(rgb, m) for m in ("side-by-side", "anaglyph", "mono"))
    assert sbs.shape == (4, 10, 3) and ana.shape == mono.shape == (4, 5, 3) and sbs.dtype == torch.uint8
    assert torch.equal(ana[..., 0], sbs[:, :5, 0]) and torch.equal(ana[..., 1:], sbs[:, 5:, 1:])
    assert torch.equal(mono, sbs[:, :5])
