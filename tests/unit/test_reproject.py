"""Reprojection (gscache.stages.reproject, and each backend's own kernel: Backend.reproject) on
views whose answer is known: the same view (exact), a fronto-parallel plane seen by two parallel
eyes (a shift by the disparity fx * IPD / z), a foreground square that hides part of a wall (the
revealed wall is invalid, never guessed), a turned eye, odd sizes and image borders; on rendered
scenes against the exact render; and every kernel against the reference."""

from __future__ import annotations

import math

import pytest
import torch

from gscache import GscacheError, RenderConfig, Renderer, StereoRig, backends
from gscache.camera import look_at, views_of
from gscache.stages.reproject import reproject as reference
from tests._backends import device_of, params
from tests._helpers import random_scene, rig

IMPLEMENTATIONS = params("torch", "cpu", "cuda-sim")


@pytest.fixture(params=IMPLEMENTATIONS)
def reproject(request):
    """A backend's reprojection on CPU tensors in, CPU tensors out."""
    return backends.get(request.param).reproject


def _K(width: int, height: int, f: float) -> torch.Tensor:
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def _view(x: float = 0.0) -> torch.Tensor:
    """T_cam_world of a camera at (x, 0, 0) looking down +z."""
    T = torch.eye(4)
    T[0, 3] = -x
    return T


def _texture(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(height, width, 3, generator=torch.Generator().manual_seed(seed))


def test_the_same_view_is_exact_wherever_there_is_a_depth(reproject):
    H, W = 37, 53  # odd sizes
    rgb = _texture(H, W)
    alpha = torch.rand(H, W) * 0.5 + 0.5
    depth = torch.full((H, W), 2.0)
    depth[5:9, 7:20] = 0.0  # no median depth there (alpha < 0.5 in a render)
    K = _K(W, H, 40.0)
    out = reproject(rgb, alpha, depth, _view(), K, _view(), K, H, W)
    out.validate()
    inner = torch.zeros(H, W, dtype=torch.bool)
    inner[:-1, :-1] = True  # the last row and column have no tap below / right of their centre
    gap = torch.zeros(H, W, dtype=torch.bool)
    gap[4:9, 6:20] = True  # the pixels one of whose taps has no depth
    assert torch.equal(out.valid, inner & ~gap)
    assert torch.equal(out.rgb[out.valid], rgb[out.valid]) and torch.equal(out.alpha[out.valid], alpha[out.valid])
    assert torch.equal(out.rgb[~out.valid], torch.zeros_like(rgb[~out.valid]))


def test_a_plane_seen_by_parallel_eyes_shifts_by_the_disparity(reproject):
    """A point at depth z appears fx * IPD / z pixels further left in the right eye."""
    H, W, f, z, ipd = 24, 64, 32.0, 2.0, 0.25  # disparity 4 px, a whole number
    rgb = _texture(H, W, seed=1)
    K = _K(W, H, f)
    out = reproject(rgb, torch.ones(H, W), torch.full((H, W), z), _view(-ipd / 2), K, _view(ipd / 2), K, H, W)
    shift = round(f * ipd / z)
    assert shift == 4
    # Right pixel x shows left pixel x + 4; valid wherever that source pixel and its taps exist.
    assert out.valid[:-1, : W - shift - 1].all() and not out.valid[:, W - shift:].any()
    torch.testing.assert_close(out.rgb[:-1, : W - shift - 1], rgb[:-1, shift: W - 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(out.depth[out.valid], torch.full_like(out.depth[out.valid], z))
    # The other way, right eye into left: the points move right, and those that leave the image on
    # the right must land nowhere (not, say, at the start of the next row).
    back = reproject(rgb, torch.ones(H, W), torch.full((H, W), z), _view(ipd / 2), K, _view(-ipd / 2), K, H, W)
    assert (back.depth[:, :shift] == 0).all() and not back.valid[:, :shift].any()
    torch.testing.assert_close(back.rgb[:-1, shift + 1: W - 1], rgb[:-1, 1: W - shift - 1], rtol=0, atol=1e-6)


def test_a_disocclusion_is_invalid_never_filled_with_the_foreground(reproject):
    """A square at 1 m in front of a wall at 4 m: moving right reveals wall that the source never
    saw on the square's left... in the target, right of where the square was; those pixels must
    be invalid, and every valid pixel shows what the source showed at that surface."""
    H, W, f = 40, 60, 30.0
    depth = torch.full((H, W), 4.0)
    depth[12:28, 20:36] = 1.0
    rgb = torch.zeros(H, W, 3)
    rgb[..., 2] = 1.0  # the wall is blue
    rgb[12:28, 20:36] = torch.tensor([1.0, 0.0, 0.0])  # the square red
    K = _K(W, H, f)
    out = reproject(rgb, torch.ones(H, W), depth, _view(0.0), K, _view(0.3), K, H, W)
    # Square: 9 px left (30 * 0.3 / 1); wall: 2.25 px. The wall between the square's new right
    # edge (x = 27) and the old one shifted as wall (x ~ 33.75) was hidden in the source.
    revealed = out.valid[14:26, 28:33]
    assert not revealed.any()
    red = out.rgb[..., 0] > 0.5
    blue = out.rgb[..., 2] > 0.5
    assert not (red & blue).any()  # no pixel mixes the two surfaces
    assert out.valid[14:26, 12:26].all() and red[14:26, 12:26].all()  # the square, moved
    assert out.valid[14:26, 40:55].all() and blue[14:26, 40:55].all()  # the wall beside it


def test_views_that_see_nothing_of_each_other_and_bad_inputs(reproject):
    H, W = 16, 16
    K = _K(W, H, 10.0)
    behind = torch.eye(4)
    behind[0, 0] = behind[2, 2] = -1.0  # turned around: the source's points are behind the target
    out = reproject(_texture(H, W), torch.ones(H, W), torch.full((H, W), 3.0), _view(), K, behind, K, H, W)
    assert not out.valid.any() and (out.depth == 0).all()
    with pytest.raises(GscacheError, match="no median depth"):
        reproject(_texture(H, W), torch.ones(H, W), None, _view(), K, _view(), K, H, W)
    with pytest.raises(GscacheError, match="depth_tolerance"):
        reproject(_texture(H, W), torch.ones(H, W), torch.ones(H, W), _view(), K, _view(), K, H, W, depth_tolerance=0)


@pytest.mark.parametrize("size", [(96, 64), (81, 47)])
def test_the_left_eye_of_a_render_rebuilds_most_of_the_right_eye(size, reproject):
    """Rendered stereo (cpu backend) of a random cloud of small Gaussians: the valid pixels of the
    right eye rebuilt from the left agree with the exact right eye (resampling error only). In a
    cloud, neighbouring pixels' median depths often belong to splats at different depths, which
    the depth test refuses: only part of the covered pixels are valid (24-31% here)."""
    W, H = size
    scene = random_scene(4000, seed=4, sh_degree=0, spread=1.0, depth=3.0, scale=(0.03, 0.08))
    frame = Renderer(scene, RenderConfig(backend="cpu")).render(rig(W, H))
    views = views_of(rig(W, H), "cpu")
    out = reproject(frame.rgb[0], frame.alpha[0], frame.median_depth[0], views.viewmats[0], views.Ks[0],
                    views.viewmats[1], views.Ks[1], H, W)
    covered = frame.alpha[1] >= 0.5
    assert out.valid.sum() > 0.15 * covered.sum()
    err = (out.rgb - frame.rgb[1])[out.valid]
    psnr = -10 * math.log10(float((err ** 2).mean()))
    assert psnr > 30, psnr
    loose = reproject(frame.rgb[0], frame.alpha[0], frame.median_depth[0], views.viewmats[0], views.Ks[0],
                      views.viewmats[1], views.Ks[1], H, W, depth_tolerance=0.1)
    assert loose.valid.sum() > out.valid.sum() and not (out.valid & ~loose.valid).any()  # the tolerance only adds


def test_a_turned_eye_is_a_general_reprojection_not_a_shift(reproject):
    """A canted eye (turned 5 degrees about its vertical axis): the plane's texture carried there
    and back returns where both warps are valid (a smooth texture, so that resampling twice loses
    little), and the first warp is no horizontal shift (its rows bend)."""
    H, W, f, z = 48, 64, 40.0, 3.0
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    rgb = torch.stack([0.5 + 0.4 * torch.sin(u / 7.0), 0.5 + 0.4 * torch.cos(v / 5.0), 0.5 + 0.2 * torch.sin((u + v) / 9.0)], -1)
    K = _K(W, H, f)
    a = math.radians(5.0)
    turned = torch.eye(4)
    turned[0, 0], turned[0, 2], turned[2, 0], turned[2, 2] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
    depth = torch.full((H, W), z)
    there = reproject(rgb, torch.ones(H, W), depth, _view(), K, turned, K, H, W)
    back = reproject(there.rgb, there.alpha, torch.where(there.valid, there.depth, 0.0), turned, K, _view(), K, H, W)
    both = back.valid
    assert both.sum() > 0.5 * H * W
    torch.testing.assert_close(back.rgb[both], rgb[both], rtol=0, atol=0.02)
    # The plane's depth in the turned view varies across the image: no constant disparity.
    d = there.depth[there.valid]
    assert float(d.max() - d.min()) > 0.05


@pytest.mark.parametrize("backend", params("cpu", "cuda-sim", "cuda"))
def test_each_kernel_agrees_with_the_reference(backend):
    """The same float64 steps: the same valid pixels but where a point lands within rounding of a
    pixel edge (at most 0.1% of them), and the same colours to float32 rounding elsewhere."""
    device = device_of(backend)
    impl = backends.get(backend, device.type).reproject

    def kernel(*args):
        out = impl(*(a.to(device) if isinstance(a, torch.Tensor) else a for a in args))
        return type(out)(*(t.cpu() for t in (out.rgb, out.alpha, out.depth, out.valid)))
    scene = random_scene(6000, seed=8, sh_degree=1, spread=1.2, depth=3.0, scale=(0.02, 0.06))
    T = look_at((0.1, -0.05, 0.0), (0.0, 0.0, 3.0))
    now = StereoRig.symmetric(T, 83, 61, fov_y_deg=70)
    later = StereoRig.symmetric(look_at((0.16, -0.02, 0.03), (0.05, 0.0, 3.0)), 83, 61, fov_y_deg=70)
    frame = Renderer(scene, RenderConfig(backend="cpu")).render(now)
    src, dst = views_of(now, "cpu"), views_of(later, "cpu")
    for view_to, K_to in ((src.viewmats[1], src.Ks[1]), (dst.viewmats[0], dst.Ks[0])):  # stereo, temporal
        args = (frame.rgb[0], frame.alpha[0], frame.median_depth[0], src.viewmats[0], src.Ks[0], view_to, K_to, 61, 83)
        want, got = reference(*args), kernel(*args)
        got.validate()
        assert float((want.valid != got.valid).float().mean()) <= 1e-3
        both = want.valid & got.valid
        assert both.sum() > 100
        torch.testing.assert_close(got.rgb[both], want.rgb[both], rtol=0, atol=1e-6)
        torch.testing.assert_close(got.alpha[both], want.alpha[both], rtol=0, atol=1e-6)
        agree = (want.depth > 0) & (got.depth > 0)
        torch.testing.assert_close(got.depth[agree], want.depth[agree], rtol=1e-6, atol=0)
