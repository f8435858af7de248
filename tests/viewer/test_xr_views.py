"""OpenXR views in gscache's conventions (viewer/xr_views.py): asymmetric fields of view, the
axis flip between OpenXR and OpenCV, canted eyes with their own FOVs, the pose a projection
layer carries. Pure math: no OpenXR runtime or library needed."""

from __future__ import annotations

import math

import pytest
import torch

from gscache import RenderConfig, Renderer
from gscache.camera import views_of
from gscache.errors import GscacheError
from gscache.viewer.xr_views import (XrView, eye_pose, fov_intrinsics, layer_pose, matrix_quaternion, mid_rotation,
                                     quaternion_matrix, rig_from_views)
from tests._helpers import random_scene


def _yaw(deg: float) -> tuple[float, float, float, float]:
    """A quaternion (x, y, z, w) turning by ``deg`` about OpenXR's y (up): positive turns left."""
    h = math.radians(deg) / 2
    return (0.0, math.sin(h), 0.0, math.cos(h))


def _project(K, p):
    return (K.fx * p[0] / p[2] + K.cx, K.fy * p[1] / p[2] + K.cy)


def test_an_asymmetric_fov_puts_its_edges_at_the_image_edges():
    fov = (-0.9, 0.6, 0.7, -0.8)  # left, right, up, down (radians): a canted display's
    K = fov_intrinsics(fov, 640, 480)
    left, right, up, down = fov
    # gscache axes: x right, y down, z forward; the up edge is at y / z = -tan(up).
    assert _project(K, (math.tan(left), 0.0, 1.0))[0] == pytest.approx(0.0, abs=1e-9)
    assert _project(K, (math.tan(right), 0.0, 1.0))[0] == pytest.approx(640.0)
    assert _project(K, (0.0, -math.tan(up), 1.0))[1] == pytest.approx(0.0, abs=1e-9)
    assert _project(K, (0.0, -math.tan(down), 1.0))[1] == pytest.approx(480.0)
    sym = fov_intrinsics((-math.pi / 4, math.pi / 4, math.pi / 4, -math.pi / 4), 512, 512)
    assert (sym.fx, sym.cx, sym.cy) == pytest.approx((256.0, 256.0, 256.0))
    for bad in ((0.5, -0.5, 0.5, -0.5), (-0.5, 0.5, -0.5, 0.5), (-2.0, 0.5, 0.5, -0.5), (math.nan, 0.5, 0.5, -0.5)):
        with pytest.raises(GscacheError, match="fov"):
            fov_intrinsics(bad, 64, 64)


def test_openxr_axes_become_gscache_camera_axes():
    origin = torch.eye(4, dtype=torch.float64)
    ahead = eye_pose(XrView((0, 0, 0, 1), (0, 0, 0), (-0.5, 0.5, 0.5, -0.5)), origin)
    assert torch.allclose(ahead, torch.eye(4, dtype=torch.float64))  # looking along -z_xr = +z here
    # Turned 90 degrees to the left in OpenXR (about +y, up): gscache's forward (+z) points to -x.
    left = eye_pose(XrView(_yaw(90.0), (0.0, 1.6, 0.0), (-0.5, 0.5, 0.5, -0.5)), origin)
    assert torch.allclose(left[:3, 2], torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    # Standing 1.6 m up in OpenXR is 1.6 m along -y here (y points down).
    assert torch.allclose(left[:3, 3], torch.tensor([0.0, -1.6, 0.0], dtype=torch.float64))
    # Its up (+y_xr) is gscache's -y.
    assert torch.allclose(left[:3, 1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)
    with pytest.raises(GscacheError, match="orientation"):
        quaternion_matrix((0.0, 0.0, 0.0, 0.0))


def test_canted_eyes_with_their_own_fovs_render_as_each_eye_alone():
    """Eyes turned 10 degrees outwards with different asymmetric FOVs (a canted headset): the
    rig holds each eye's pose as located, the IPD is the runtime's, the eyes no longer share a
    depth order, and each eye's image is the mono render of that eye's camera."""
    origin = torch.eye(4, dtype=torch.float64)
    origin[:3, 3] = torch.tensor([0.0, 0.0, -4.0], dtype=torch.float64)
    views = [XrView(_yaw(10.0), (-0.032, 0.0, 0.0), (-0.95, 0.7, 0.8, -0.85)),
             XrView(_yaw(-10.0), (0.032, 0.0, 0.0), (-0.7, 0.95, 0.8, -0.85))]
    rig = rig_from_views(views, 72, 64, origin)
    assert rig.ipd_m == pytest.approx(0.064)
    for e, cam in enumerate(rig.eyes()):
        assert torch.allclose(cam.T_world_cam, eye_pose(views[e], origin), atol=1e-12)
    batch = views_of(rig)
    assert not batch.shared_depth
    # The eyes' poses travel to worker processes with the rig, and stay with a moved rig.
    from gscache.multi.devices import rig_from_message, rig_message

    again = rig_from_message(rig_message(rig))
    assert all(torch.equal(a, b) for a, b in zip(again.eye_poses, rig.eye_poses))
    moved = rig.with_pose(torch.eye(4, dtype=torch.float64))
    assert torch.equal(moved.T_head_eye(1), rig.T_head_eye(1))
    assert rig.left.cx != rig.right.cx  # each eye's own pinhole
    scene = random_scene(400, seed=3, sh_degree=1)
    r = Renderer(scene, RenderConfig(backend="cpu"))
    frame = r.render(rig)
    for e, cam in enumerate(rig.eyes()):
        alone = Renderer(scene, RenderConfig(backend="cpu")).render(cam)
        assert frame.alpha[e].sum() > 0
        assert torch.allclose(frame.rgb[e], alone.rgb[0], atol=1e-5)


def test_the_layer_pose_is_the_located_pose():
    origin = torch.eye(4, dtype=torch.float64)
    origin[:3, :3] = quaternion_matrix((0.1, 0.7, -0.2, 0.68))
    origin[:3, 3] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    for q, p in (((0.0, 0.0, 0.0, 1.0), (0.0, 1.7, 0.0)), ((0.3, -0.5, 0.1, 0.8), (0.2, 1.5, -0.3)),
                 ((0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 0.0)), ((1.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0))):
        view = XrView(q, p, (-0.5, 0.5, 0.5, -0.5))
        orientation, position = layer_pose(eye_pose(view, origin), origin)
        n = math.sqrt(sum(c * c for c in q))
        expected = tuple(c / n for c in q)
        if expected[3] < 0 or (expected[3] == 0 and orientation[3] == 0 and orientation != expected):
            expected = tuple(-c for c in expected)
        assert torch.allclose(quaternion_matrix(orientation), quaternion_matrix(expected), atol=1e-9)
        assert position == pytest.approx(p)
    assert matrix_quaternion(torch.eye(3, dtype=torch.float64)) == pytest.approx((0.0, 0.0, 0.0, 1.0))


def test_the_head_is_halfway_between_the_eyes():
    a, b = quaternion_matrix(_yaw(12.0)), quaternion_matrix(_yaw(-12.0))
    assert torch.allclose(mid_rotation(a, b), torch.eye(3, dtype=torch.float64), atol=1e-12)
    c = quaternion_matrix(_yaw(40.0))
    assert torch.allclose(mid_rotation(a, c), quaternion_matrix(_yaw(26.0)), atol=1e-12)


def test_bad_eye_poses_are_refused_by_name():
    from gscache import Intrinsics, StereoRig

    K = Intrinsics.from_fov(90.0, 32, 32)
    I = torch.eye(4, dtype=torch.float64)
    with pytest.raises(GscacheError, match="eye_poses"):
        StereoRig(I, K, K, eye_poses=(I,))
    with pytest.raises(GscacheError, match=r"eye_poses\[1\]"):
        StereoRig(I, K, K, eye_poses=(I, 2 * I))
    with pytest.raises(GscacheError, match="convergence_m"):
        StereoRig(I, K, K, convergence_m=2.0, eye_poses=(I, I))


def test_the_gaze_lands_where_each_eye_sees_it():
    """gaze_fractions: straight ahead is the point the view's axis meets (not the image centre of an
    asymmetric field of view), a gaze along an edge angle lands on that edge, a canted eye sees
    the same direction elsewhere, and a gaze away from a view gives None."""
    from gscache.viewer.xr_views import gaze_fractions

    yaw = _yaw

    def pitch(deg):
        h = math.radians(deg) / 2
        return (math.sin(h), 0.0, 0.0, math.cos(h))

    fov = (-0.6, 0.4, 0.5, -0.3)  # (left, right, up, down)
    ahead = XrView((0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0), fov)
    (x, y), = gaze_fractions((0.0, 0.0, 0.0, 1.0), [ahead])
    assert x == pytest.approx(math.tan(0.6) / (math.tan(0.6) + math.tan(0.4)))
    assert y == pytest.approx(math.tan(0.5) / (math.tan(0.5) + math.tan(0.3)))
    assert gaze_fractions(yaw(math.degrees(0.6)), [ahead])[0][0] == pytest.approx(0.0, abs=1e-9)  # left edge
    assert gaze_fractions(yaw(-math.degrees(0.4)), [ahead])[0][0] == pytest.approx(1.0, abs=1e-9)  # right edge
    assert gaze_fractions(pitch(math.degrees(0.5)), [ahead])[0][1] == pytest.approx(0.0, abs=1e-9)  # top edge
    assert gaze_fractions(yaw(80.0), [ahead]) == [(0.0, pytest.approx(y))]  # beyond the edge: clamped
    canted = XrView(yaw(10.0), (0.03, 0.0, 0.0), fov)  # turned 10 degrees left: the gaze lands right of its axis
    (cx, _), = gaze_fractions((0.0, 0.0, 0.0, 1.0), [canted])
    assert cx > x
    assert gaze_fractions(yaw(180.0), [ahead, canted]) is None
