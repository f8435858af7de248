"""The reference pipeline against a brute-force dense compositor on tiny scenes.

The oracle walks every Gaussian of a view in depth order and blends it into every pixel whose
tile lies in the Gaussian's tile rectangle (the tiling decides which splats a pixel sees, in
every 3DGS renderer), with the same alpha rules, one splat at a time. The reference must agree
to float rounding.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gscache import render
from gscache.camera import views_of
from gscache.config import CullConfig, ProjectConfig, RasterConfig, RenderConfig, ShadeConfig
from gscache.scene.record import empty_scene, make_scene
from gscache.stages import cull, project, shade
from gscache.stages.bin import tile_rects
from tests._helpers import camera, random_scene, rig


def dense_composite(scene, camera_or_rig, cfg: RasterConfig = RasterConfig(), tile_px: int = 16):
    """[E, H, W, 3] rgb, [E, H, W] alpha and [E, H, W] median depth by sequential blending over
    all Gaussians (the median depth: the depth of the blended splat that takes T from above 0.5
    to 0.5 or below)."""
    views = views_of(camera_or_rig, "cpu")
    visible = cull(scene, views, CullConfig(), ProjectConfig())
    shaded = shade(visible, views, ShadeConfig())
    proj = project(visible, shaded, views, ProjectConfig())
    H, W = views.height, views.width
    tx_n, ty_n = -(-W // tile_px), -(-H // tile_px)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    tile_x, tile_y = (xs // tile_px).long(), (ys // tile_px).long()
    rgbs, alphas, medians = [], [], []
    for e in range(views.n_views):
        lo, hi = tile_rects(proj.means2d[e], proj.radii[e], tile_px, tx_n, ty_n)
        T = torch.ones(H, W)
        C = torch.zeros(H, W, 3)
        done = torch.zeros(H, W, dtype=torch.bool)
        median = torch.zeros(H, W)
        for g in torch.argsort(proj.depths[e], stable=True).tolist():
            if (proj.radii[e, g] <= 0).any():
                continue
            inside = (tile_x >= lo[g, 0]) & (tile_x < hi[g, 0]) & (tile_y >= lo[g, 1]) & (tile_y < hi[g, 1])
            dx = proj.means2d[e, g, 0] - (xs + 0.5)
            dy = proj.means2d[e, g, 1] - (ys + 0.5)
            a, b, c = proj.conics[e, g]
            power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
            alpha = torch.clamp(visible.opacities[g] * torch.exp(power), max=cfg.alpha_max)
            use = inside & (power <= 0) & (alpha >= cfg.alpha_min) & ~done
            T_next = T * (1 - alpha)
            stop = use & (T_next < cfg.transmittance_min)
            blend = use & ~stop
            C = torch.where(blend[..., None], C + (alpha * T)[..., None] * shaded.colors[e, g], C)
            median = torch.where(blend & (T > 0.5) & (T_next <= 0.5), proj.depths[e, g], median)
            T = torch.where(blend, T_next, T)
            done |= stop
        rgbs.append(C + T[..., None] * torch.tensor(cfg.background))
        alphas.append(1 - T)
        medians.append(median)
    return torch.stack(rgbs), torch.stack(alphas), torch.stack(medians)


def _reference(scene, view, raster=RasterConfig()):
    return render(scene, view, RenderConfig(backend="torch", device="cpu", raster=raster, debug_checks=True))


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 40), (2, 150)])
def test_reference_matches_dense_oracle(seed, n):
    scene = random_scene(n, seed=seed, sh_degree=2, spread=1.2)
    view = rig(72, 40)
    frame = _reference(scene, view)
    rgb, alpha, median = dense_composite(scene, view)
    assert (frame.rgb - rgb).abs().max() < 1e-5
    assert (frame.alpha - alpha).abs().max() < 1e-5
    # Exactly one splat's depth, where the transmittance crosses one half (a pixel whose T lands
    # within rounding of 0.5 may take the next splat: none does in these scenes).
    assert torch.equal(frame.median_depth, median)
    assert bool(((frame.median_depth > 0) == (frame.alpha >= 0.5)).all())


def test_early_termination_matches_oracle():
    # A deep stack of nearly opaque splats: every pixel stops after a few of them.
    n = 60
    g = torch.Generator().manual_seed(5)
    means = torch.zeros(n, 3)
    means[:, 2] = torch.linspace(2.0, 4.0, n)
    means[:, :2] = 0.05 * torch.randn(n, 2, generator=g)
    scene = make_scene(means, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), 0.4),
                       torch.full((n,), 0.97), torch.rand(n, 1, 3, generator=g))
    cam = camera(48, 48)
    rgb, alpha, median = dense_composite(scene, cam)
    frame = _reference(scene, cam, RasterConfig(batch_gaussians=8))
    assert (frame.rgb - rgb).abs().max() < 1e-5
    assert alpha[0, 24, 24] > 0.999  # the stack is opaque in the middle
    assert torch.equal(frame.median_depth, median) and frame.median_depth[0, 24, 24] > 0


def test_background_shows_through():
    scene = random_scene(30, seed=7)
    raster = RasterConfig(background=(0.2, 0.4, 0.6))
    rgb, _, _ = dense_composite(scene, camera(), raster)
    frame = _reference(scene, camera(), raster)
    assert (frame.rgb - rgb).abs().max() < 1e-5


def test_zero_gaussians_render_the_background():
    frame = _reference(empty_scene(), rig(), RasterConfig(background=(1.0, 0.5, 0.0)))
    assert frame.rgb.shape == (2, 48, 64, 3)
    assert torch.equal(frame.rgb, torch.tensor([1.0, 0.5, 0.0]).expand(2, 48, 64, 3))
    assert torch.equal(frame.alpha, torch.zeros(2, 48, 64))
    assert frame.counters.n_visible == 0


def test_chunking_does_not_change_the_image():
    scene = random_scene(400, seed=8, spread=1.5)
    view = rig(80, 56)
    base = _reference(scene, view)
    small = _reference(scene, view, RasterConfig(chunk_elems=4096, batch_gaussians=4))
    torch.testing.assert_close(small.rgb, base.rgb, rtol=0, atol=2e-6)
    torch.testing.assert_close(small.depth, base.depth, rtol=1e-5, atol=1e-5)


def test_culling_never_changes_the_image():
    # Gaussians all around the camera, many straddling the image border or behind it.
    scene = random_scene(800, seed=9, spread=4.0, depth=0.5, scale=(0.05, 0.6))
    view = rig(64, 48)
    frame = _reference(scene, view)
    from gscache import backends
    from gscache.records import Visible
    from gscache.pipeline import render_views

    def no_cull(scene, views, cfg, project_cfg):
        ids = torch.arange(scene.count)
        return Visible(ids, scene.means, scene.quats, scene.scales, scene.opacities, scene.sh)

    everything = dataclasses.replace(backends.get("torch"), cull=no_cull)
    full = render_views(scene, views_of(view), RenderConfig(backend="torch"), everything)
    assert frame.counters.n_visible < scene.count  # the cull did remove Gaussians
    torch.testing.assert_close(frame.rgb, full.rgb, rtol=0, atol=2e-6)


def test_depth_is_expected_depth_of_an_opaque_plane():
    # One big opaque splat facing the camera at z = 2: the depth at its centre is 2.
    scene = make_scene(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[1.0, 0, 0, 0]]),
                       torch.tensor([[1.0, 1.0, 0.01]]), torch.tensor([1.0]), torch.zeros(1, 1, 3))
    frame = _reference(scene, camera(32, 32, eye=(0, 0, 0), target=(0, 0, 1)))
    assert abs(frame.depth[0, 16, 16].item() - 2.0) < 1e-4
    assert frame.alpha[0, 16, 16] > 0.98
