"""One projection per eye (Backend.scale_projection: cpu host loop, cuda kernel on cuda-sim and on
a GPU): a lower-resolution view's projection derived from the full view's equals the reference
gscache.stages.project.scale_projection within float rounding, and the reference equals
projecting again within float rounding (a radius on a ceil boundary may differ by a pixel), on
odd sizes (sx != sy), scales 1/2, 1/3 and 1/4, splats off screen, behind the camera and
elongated; bad views are refused by name."""

from __future__ import annotations

import pytest
import torch

from gscache import backends
from gscache.camera import StereoRig, look_at, views_of
from gscache.config import ProjectConfig, ShadeConfig
from gscache.errors import GscacheError
from gscache.records import Visible
from gscache.stages.project import project, scale_projection
from gscache.stages.shade import shade
from tests._backends import device_of, params
from tests._helpers import random_scene

SIZES = [(97, 75, 0.5), (64, 64, 1 / 3), (203, 155, 0.25), (33, 80, 0.5)]


def _projected(W, H, device, n=4000, seed=0):
    """A scene around and behind the camera (some splats off screen, some behind, some long and
    thin), its full projection and views."""
    scene = random_scene(n, seed=seed, sh_degree=0, spread=4.0, depth=2.0, scale=(0.002, 0.3))
    scales = scene.scales.clone()
    scales[: n // 10, 0] *= 40.0  # elongated: an ill-conditioned conic
    rig = StereoRig.symmetric(torch.linalg.inv(look_at((0.1, 0.0, -1.0), (0.0, 0.0, 2.0))), W, H, 85.0)
    views = views_of(rig, device)
    visible = Visible(ids=torch.arange(n, device=device), means=scene.means.to(device), quats=scene.quats.to(device),
                      scales=scales.to(device), opacities=scene.opacities.to(device), sh=scene.sh.to(device))
    shaded = shade(visible, views, ShadeConfig())
    return visible, shaded, views


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}-s{s[2]:.2f}")
def test_the_reference_equals_projecting_again(size):
    W, H, s = size
    visible, shaded, views = _projected(W, H, "cpu")
    cfg = ProjectConfig()
    full = project(visible, shaded, views, cfg)
    small = views.scaled(s)
    again = project(visible, shaded, small, cfg)
    derived = scale_projection(full, views, small, cfg)
    assert torch.equal(derived.depths, again.depths)
    differ = (derived.radii != again.radii).any(dim=-1)
    assert differ.float().mean() < 2e-3
    both = ((derived.radii > 0) & (again.radii > 0)).all(dim=-1)
    assert both.sum() > 1000 and (again.radii == 0).any()  # drawn and undrawn splats both tested
    torch.testing.assert_close(derived.means2d[both], again.means2d[both], rtol=1e-6, atol=1e-4)
    _assert_same_splats(derived.conics[both], again.conics[both])


def _assert_same_splats(got: torch.Tensor, want: torch.Tensor) -> None:
    """The 2D covariances whose inverses are the conics [M, 3] agree to float rounding relative to
    their size. (A conic is c / det, -b / det, a / det with det = ac - b^2 in float32: for the
    elongated splats here, condition numbers to 1e4, det carries a relative error of about 1e-3
    however it is computed; and a splat grazing the camera, 1e7 px^2 (radii of thousands of
    pixels in an image of a hundred), to a few percent.)"""
    def covariance(conics):
        A, B, C = conics.double().unbind(-1)
        det = A * C - B * B
        return torch.stack([C / det, -B / det, A / det], dim=-1)

    cov_g, cov_w = covariance(got), covariance(want)
    size = cov_w.abs().amax(dim=-1, keepdim=True)
    rel = ((cov_g - cov_w).abs() / size).amax(dim=-1)
    assert (rel[size[:, 0] < 1e4] <= 5e-3).all() and (rel <= 0.05).all()
    assert (rel <= 1e-5).float().mean() > 0.9  # most splats are well conditioned: agree closely


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}-s{s[2]:.2f}")
@pytest.mark.parametrize("name", params("cpu", "cuda-sim", "cuda"))
def test_the_kernel_is_the_reference(name, size):
    W, H, s = size
    device = device_of(name)
    backend = backends.get(name, device.type)
    n = 4000 if name != "cuda-sim" else 600  # the emulation runs a host thread per CUDA thread
    visible, shaded, views = _projected(W, H, device, n=n)
    cfg = ProjectConfig()
    full = backend.project(visible, shaded, views, cfg)
    small = views.scaled(s)
    got = backend.scale_projection(full, views, small, cfg)
    ref = scale_projection(full, views, small, cfg)
    got.validate()
    assert torch.equal(got.radii, ref.radii) and torch.equal(got.means2d, ref.means2d)
    assert got.depths is full.depths or torch.equal(got.depths, ref.depths)
    drawn = (ref.radii > 0).all(dim=-1)
    _assert_same_splats(got.conics[drawn], ref.conics[drawn])  # (FMA contraction differs from torch)


@pytest.mark.parametrize("name", params("torch", "cpu", "cuda-sim"))
def test_no_gaussians_and_bad_views(name):
    backend = backends.get(name, "cpu")
    visible, shaded, views = _projected(40, 30, "cpu", n=0)
    full = backend.project(visible, shaded, views, ProjectConfig())
    out = backend.scale_projection(full, views, views.scaled(0.5), ProjectConfig())
    assert out.radii.shape == (2, 0, 2)
    if name != "torch":  # the kernels' boundary names what was wrong
        with pytest.raises(GscacheError, match="scale_projection: expected views no larger"):
            backend.scale_projection(full, views.scaled(0.5), views, ProjectConfig())
        with pytest.raises(GscacheError, match="scale_projection: the projection has 2 views"):
            backend.scale_projection(full, views.select(0), views.select(0).scaled(0.5), ProjectConfig())
