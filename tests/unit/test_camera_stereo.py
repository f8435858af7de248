"""Cameras, rigs and the stereo invariants of the reference renderer."""

from __future__ import annotations

import math

import pytest
import torch

from gscache import Camera, GscacheError, Intrinsics, RenderConfig, StereoRig, render
from gscache.camera import look_at, rigid_inverse
from gscache.scene.record import make_scene
from tests._helpers import random_scene, rig

CPU = RenderConfig(backend="torch", device="cpu")


def test_look_at_is_a_right_handed_opencv_frame():
    T = look_at((1.0, -2.0, 0.5), (0.0, 0.0, 3.0))
    R = T[:3, :3]
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64))
    assert torch.linalg.det(R) > 0.999
    z = R[:, 2]
    torch.testing.assert_close(z, torch.nn.functional.normalize(torch.tensor([-1.0, 2.0, 2.5], dtype=torch.float64), dim=0))
    assert R[1, 1] > 0  # image y points roughly along world +y (down) for the default up (-y)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(fx=0.0, fy=1.0, cx=0.0, cy=0.0, width=8, height=8), "fx"),
        (dict(fx=1.0, fy=-2.0, cx=0.0, cy=0.0, width=8, height=8), "fy"),
        (dict(fx=1.0, fy=1.0, cx=float("nan"), cy=0.0, width=8, height=8), "cx"),
        (dict(fx=1.0, fy=1.0, cx=0.0, cy=0.0, width=0, height=8), "width"),
        (dict(fx=1.0, fy=1.0, cx=0.0, cy=0.0, width=8, height=100000), "height"),
        (dict(fx=1.0, fy=1.0, cx=0.0, cy=0.0, width=8.5, height=8), "width"),
    ],
)
def test_invalid_intrinsics_name_the_field(kwargs, field):
    with pytest.raises(GscacheError, match=field):
        Intrinsics(**kwargs)


def test_invalid_poses_and_clip_ranges_are_rejected():
    intr = Intrinsics.from_fov(60, 32, 32)
    with pytest.raises(GscacheError, match="rotation"):
        Camera(intr, torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0])))
    with pytest.raises(GscacheError, match="reflection"):
        Camera(intr, torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0])))
    with pytest.raises(GscacheError, match="shape"):
        Camera(intr, torch.eye(3))
    with pytest.raises(GscacheError, match="NaN"):
        Camera(intr, torch.full((4, 4), float("nan")))
    with pytest.raises(GscacheError, match="far_m"):
        Camera(intr, torch.eye(4), near_m=1.0, far_m=0.5)
    with pytest.raises(GscacheError, match="ipd_m"):
        StereoRig(torch.eye(4), intr, intr, ipd_m=-0.01)
    with pytest.raises(GscacheError, match="same resolution"):
        StereoRig(torch.eye(4), intr, Intrinsics.from_fov(60, 32, 16))
    with pytest.raises(GscacheError, match="fov_y_deg"):
        Intrinsics.from_fov(0.0, 32, 32)
    with pytest.raises(GscacheError, match="camera_or_rig"):
        render(random_scene(3), "not a camera", CPU)


def test_eye_positions_follow_the_convention():
    head = look_at((1.0, 0.0, 0.0), (1.0, 0.0, 5.0))
    r = StereoRig.symmetric(head, 32, 32, ipd_m=0.07)
    left, right = r.eyes()
    torch.testing.assert_close(left.position, torch.tensor([0.965, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(right.position, torch.tensor([1.035, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(left.T_cam_world[:3, :3], rigid_inverse(head)[:3, :3])  # parallel eyes


def test_converging_eyes_look_at_the_convergence_point():
    r = StereoRig.symmetric(torch.eye(4, dtype=torch.float64), 32, 32, ipd_m=0.06, convergence_m=2.0)
    target = torch.tensor([0.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    for cam in r.eyes():
        p = cam.T_cam_world @ target
        assert abs(p[0]) < 1e-9 and abs(p[1]) < 1e-9 and p[2] > 0


def _single_gaussian(depth: float, x: float = 0.0):
    return make_scene(torch.tensor([[x, 0.0, depth]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.01),
                      torch.tensor([0.9]), torch.full((1, 1, 3), 1.0))


@pytest.mark.parametrize("depth", [1.0, 2.5, 6.0])
def test_disparity_is_fx_ipd_over_z_with_the_right_sign(depth):
    r = rig(256, 64, ipd_m=0.063, fov_y_deg=30)
    frame = render(_single_gaussian(depth), r, CPU)
    xs = torch.arange(256, dtype=torch.float32) + 0.5
    weights = frame.alpha.sum(dim=1)  # [E, W]
    centroid = (weights * xs).sum(-1) / weights.sum(-1)
    disparity = (centroid[0] - centroid[1]).item()  # left minus right: the right image is further left
    expected = r.left.fx * 0.063 / depth
    assert disparity > 0
    assert abs(disparity - expected) < 0.02 * expected + 0.05


def test_zero_ipd_gives_identical_eyes():
    frame = render(random_scene(300, seed=1, sh_degree=3), rig(64, 48, ipd_m=0.0), CPU)
    assert torch.equal(frame.rgb[0], frame.rgb[1])
    assert torch.equal(frame.depth[0], frame.depth[1])


def test_stereo_render_equals_two_mono_renders():
    scene = random_scene(500, seed=2, sh_degree=3, spread=1.5)
    r = rig(80, 48, ipd_m=0.2)
    stereo = render(scene, r, CPU)
    for e, cam in enumerate(r.eyes()):
        mono = render(scene, cam, CPU)
        torch.testing.assert_close(stereo.rgb[e], mono.rgb[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(stereo.alpha[e], mono.alpha[0], rtol=0, atol=1e-6)


def test_view_dependent_colour_differs_between_eyes():
    # SH degree 3 colours: with a wide IPD the two eyes see different colours of the same splat.
    frame = render(random_scene(200, seed=4, sh_degree=3), rig(64, 48, ipd_m=0.5), CPU)
    assert not torch.equal(frame.rgb[0], frame.rgb[1])


def test_scaled_intrinsics_keep_the_field_of_view():
    intr = Intrinsics.from_fov(90, 100, 80).scaled(0.5)
    assert (intr.width, intr.height) == (50, 40)
    assert math.isclose(0.5 * intr.height / intr.fy, 1.0, rel_tol=1e-9)
