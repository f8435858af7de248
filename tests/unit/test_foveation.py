"""Foveated rendering: the fovea is the full-resolution render bit for bit (every backend, reuse
mode, gaze, odd sizes, structured scenes), the periphery is the reduced view upsampled, the
blend is continuous, and bad settings are refused by name."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gscache import GscacheError, open_renderer
from gscache.camera import StereoRig, look_at
from gscache.config import FoveationConfig, RenderConfig
from gscache.presets import FOVEATION_LEVELS, REUSE_MODES
from gscache.renderer import Renderer, render
from gscache.stages.foveate import fovea_layout, upsample
from tests._backends import device_of, params
from tests._helpers import random_scene

LEVELS = [n for n in FOVEATION_LEVELS if n != "off"]


def _scene(n=3000, seed=0):
    """Gaussians filling the view (the periphery has content), with view-dependent colour."""
    return random_scene(n, seed=seed, sh_degree=3, spread=2.5, depth=3.0, scale=(0.01, 0.12))


def _rig(w=97, h=75, x=0.0):
    return StereoRig.symmetric(torch.linalg.inv(look_at((x, 0.0, 0.0), (0.0, 0.0, 3.0))), w, h, 80.0)


def _inner_equal(a, b, layout):
    inside, _ = layout.masks(a.images.rgb.device)
    return torch.equal(a.images.rgb[inside], b.images.rgb[inside]) and \
        torch.equal(a.images.alpha[inside], b.images.alpha[inside])


@pytest.mark.parametrize("backend", params("torch", "cpu", "cuda", "gsplat"))
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("gaze", [None, (0.1, 0.85), ((0.3, 0.5), (0.7, 0.2))])
def test_the_fovea_is_the_full_resolution_render_bit_for_bit(backend, level, gaze):
    scene, rig = _scene(), _rig()
    base = RenderConfig(backend=backend, device=str(device_of(backend)))
    fov = dataclasses.replace(base, foveation=FOVEATION_LEVELS[level])
    full, foveated = render(scene, rig, base), render(scene, rig, fov, gaze=gaze)
    layout = fovea_layout(rig.width, rig.height, 2, FOVEATION_LEVELS[level],
                          None if gaze is None else torch.tensor(gaze, dtype=torch.float64).expand(2, 2))
    assert _inner_equal(full, foveated, layout)
    _, outside = layout.masks(full.images.rgb.device)
    assert not torch.equal(full.images.rgb[outside], foveated.images.rgb[outside])  # the periphery is reduced
    # Each view bins only what reaches its tiles: at this small size about one full view's work
    # per view (three with a middle ring), never more.
    views_per_eye = len(foveated.foveation.regions)
    assert foveated.times.composite_ms > 0
    assert foveated.counters.n_intersections < views_per_eye * full.counters.n_intersections


@pytest.mark.parametrize("mode", ["none", "stereo", "approx", "D4", "dynamic"])
def test_the_fovea_is_exact_in_every_reuse_mode_along_a_motion(mode):
    """Foveated and full renderers with the same reuse mode, frame by frame along a small head
    motion (temporal hits included): the fovea equals the full render of the same mode."""
    scene = _scene(seed=1)
    cache = REUSE_MODES[mode]
    if cache.dynamic_depth:
        # D follows each renderer's own frame times; a budget that every frame of both misses
        # gives both the same D schedule (growing), so that the machine's load cannot make their
        # caches refresh on different frames.
        cache = dataclasses.replace(cache, frame_budget_ms=1e-3)
    base = RenderConfig(backend="cpu", device="cpu", cache=cache)
    cfg = dataclasses.replace(base, foveation=FOVEATION_LEVELS["medium"])
    layout = fovea_layout(97, 75, 2, cfg.foveation, None)
    with Renderer(scene, base) as r_full, Renderer(scene, cfg) as r_fov:
        hits = 0
        for i in range(5):
            rig = _rig(x=0.002 * i)
            a, b = r_full.render(rig), r_fov.render(rig)
            assert _inner_equal(a, b, layout), f"frame {i}"
            hits += bool(b.cache and b.cache.hit)
    if cache.depth > 1 or cache.dynamic_depth:
        assert hits > 0  # the foveated frames went through the temporal cache (dynamic starts at D = 1)


def test_outside_the_band_the_composite_is_the_reduced_view_upsampled():
    scene, rig = _scene(seed=2), _rig(128, 96)
    # a third of the resolution, no level of detail, no middle ring: the periphery is the reduced
    # view itself
    fov = FoveationConfig(periphery_scale=1 / 3, fovea=(0.35, 0.35), band=0.04)
    cfg = RenderConfig(backend="torch", device="cpu", foveation=fov)
    out = render(scene, rig, cfg)
    s = cfg.foveation.periphery_scale
    small = StereoRig(rig.T_world_head, rig.left.scaled(s), rig.right.scaled(s), rig.ipd_m)
    reduced = render(scene, small, RenderConfig(backend="torch", device="cpu"))
    up = upsample(reduced.images.rgb, 96, 128)
    layout = fovea_layout(128, 96, 2, cfg.foveation, None)
    w = layout.weights("cpu")
    far = w == 0
    # (its projection derived from the full view's: equal up to float rounding)
    assert far.any()
    torch.testing.assert_close(out.images.rgb[far], up[far], rtol=0, atol=1e-4)
    band = (w > 0) & (w < 1)
    full = render(scene, rig, RenderConfig(backend="torch", device="cpu")).images.rgb
    blend = torch.lerp(up, full, w[..., None])
    torch.testing.assert_close(out.images.rgb[band], blend[band], rtol=0, atol=1e-4)


RING = FoveationConfig(periphery_scale=0.5, fovea=(0.3, 0.3), band=0.05, ring=(0.6, 0.6), far_scale=0.25)


@pytest.mark.parametrize("backend", params("torch", "cpu"))
def test_beyond_the_middle_ring_the_composite_is_the_far_view_upsampled_twice(backend):
    """Three views per eye: the fovea exact; where neither the fovea's nor the ring's weight
    reaches, the far view (far_scale) upsampled to the ring's resolution and then to the eye's
    (the composite of the ring over the far periphery happens at the ring's resolution)."""
    from gscache.stages.foveate import ring_layout

    scene, rig = _scene(seed=4), _rig(203, 155)
    base = RenderConfig(backend=backend, device="cpu")
    out = render(scene, rig, dataclasses.replace(base, foveation=RING), gaze=(0.35, 0.6))
    gaze = torch.tensor([[0.35, 0.6]] * 2, dtype=torch.float64)
    layout = fovea_layout(203, 155, 2, RING, gaze)
    assert _inner_equal(render(scene, rig, base), out, layout)
    scaled = {s: StereoRig(rig.T_world_head, rig.left.scaled(s), rig.right.scaled(s), rig.ipd_m) for s in (0.5, 0.25)}
    mid, far = (render(scene, scaled[s], base).images.rgb for s in (0.5, 0.25))
    h1, w1 = mid.shape[1:3]
    ring = ring_layout(layout, RING, gaze, w1, h1)
    ring_w = upsample(ring.weights("cpu")[..., None], 155, 203)[..., 0]
    beyond = (layout.weights("cpu") == 0) & (ring_w == 0)
    twice = upsample(upsample(far, h1, w1), 155, 203)
    assert beyond.float().mean() > 0.2
    # (atol: the periphery's projection derived from the full view's, bilinear weights rounded per kernel)
    torch.testing.assert_close(out.images.rgb[beyond], twice[beyond], rtol=0, atol=1e-4)
    # Within the ring (its weight 1 on every pixel a full-size pixel samples, no fovea) the ring's view.
    only_ring = (layout.weights("cpu") == 0) & (upsample(ring.weights("cpu")[..., None], 155, 203)[..., 0] == 1)
    assert only_ring.any()
    torch.testing.assert_close(out.images.rgb[only_ring], upsample(mid, 155, 203)[only_ring], rtol=0, atol=1e-4)
    stats = out.foveation
    assert stats.regions == ("fovea", "ring", "far") and all(g > 0 for g in stats.gaussians)
    assert sum(stats.intersections) == out.counters.n_intersections


def test_a_middle_ring_draws_less_than_one_periphery_view():
    """The ring's view rasterizes only its rectangle: fewer intersections than the periphery view
    of the same fovea without a ring, and the far view fewer than that view at full extent."""
    scene, rig = _scene(seed=5), _rig(400, 320)
    base = RenderConfig(backend="cpu", device="cpu")
    plain = render(scene, rig, dataclasses.replace(base, foveation=dataclasses.replace(RING, ring=(1.0, 1.0))))
    ringed = render(scene, rig, dataclasses.replace(base, foveation=RING))
    assert plain.foveation.regions == ("fovea", "periphery")
    assert plain.foveation.intersections[0] == ringed.foveation.intersections[0]  # the same fovea
    assert ringed.foveation.intersections[1] < plain.foveation.intersections[1]


def test_blend_weights_are_one_inside_zero_outside_and_continuous():
    layout = fovea_layout(200, 100, 1, FoveationConfig(0.5, (0.4, 0.5), 0.1), torch.tensor([[0.5, 0.5]]))
    (x0, y0, x1, y1), = layout.inner
    w = layout.weights("cpu")[0]
    assert (w[y0:y1, x0:x1] == 1).all() and w.max() == 1 and w.min() == 0
    assert (w.diff(dim=1).abs().max() <= 1.5 / layout.band_px) and (w.diff(dim=0).abs().max() <= 1.5 / layout.band_px)
    # A gaze at the corner moves the rectangle inside the image without shrinking it.
    corner = fovea_layout(200, 100, 1, FoveationConfig(0.5, (0.4, 0.5), 0.1), torch.tensor([[0.0, 1.0]]))
    cx0, cy0, cx1, cy1 = corner.inner[0]
    assert (cx0, cy1) == (0, 100) and (cx1 - cx0, cy1 - cy0) == (x1 - x0, y1 - y0)


_SQUARE = look_at((0.0, -2.5, -5.5), (0.0, -0.5, 0.5))  # the structured demo square, seen from above its edge


def test_a_structured_scene_foveates_with_an_exact_fovea():
    from scenes import structured_demo

    scene = structured_demo(seed=0)
    rig = StereoRig.symmetric(_SQUARE, 80, 64, 80.0)
    base = RenderConfig(backend="cpu", device="cpu")
    cfg = dataclasses.replace(base, foveation=FOVEATION_LEVELS["low"])
    layout = fovea_layout(80, 64, 2, cfg.foveation, None)
    full = render(scene, rig, base)
    assert full.images.alpha.mean() > 0.2  # the square is in view
    assert _inner_equal(full, render(scene, rig, cfg), layout)


@pytest.mark.parametrize("mode", ["stereo", "dynamic"])
def test_a_structured_periphery_draws_coarser_anchor_levels_with_an_exact_fovea(mode):
    """periphery_lod_px on a structured scene: the periphery's Gaussians are those of the anchor
    levels a view 1 / periphery_scale times farther selects (fewer), the fovea stays exact, and
    the temporal cache keeps the periphery's front with the frame's."""
    from scenes import structured_demo

    from gscache.stages.derive import lod_mask

    scene = structured_demo(seed=0)
    cache = dataclasses.replace(REUSE_MODES[mode], frame_budget_ms=1e-3)
    base = RenderConfig(backend="cpu", device="cpu", cache=cache)
    fov = dataclasses.replace(FOVEATION_LEVELS["medium"], ring=(1.0, 1.0), payoff=False)  # every frame foveated
    plain = dataclasses.replace(base, foveation=fov)
    lod = dataclasses.replace(base, foveation=dataclasses.replace(fov, periphery_lod_px=8.0))
    layout = fovea_layout(120, 96, 2, fov, None)
    with Renderer(scene, base) as r_full, Renderer(scene, plain) as r_plain, Renderer(scene, lod) as r_lod:
        hits = 0
        for i in range(4):
            pose = _SQUARE.clone()
            pose[0, 3] += 0.01 * i
            rig = StereoRig.symmetric(pose, 120, 96, 80.0)
            full, a, b = r_full.render(rig), r_plain.render(rig), r_lod.render(rig)
            assert _inner_equal(full, b, layout), f"frame {i}"
            assert b.foveation.gaussians[0] == a.foveation.gaussians[0]  # the same fovea
            assert b.foveation.gaussians[1] < a.foveation.gaussians[1]  # a coarser periphery
            hits += bool(b.cache and b.cache.hit)
    assert full.images.alpha.mean() > 0.2
    coarse, fine = (lod_mask(scene, _SQUARE[:3, 3], s).sum() for s in (1.0, 0.0))
    assert coarse < fine
    if mode == "dynamic":
        assert hits > 0


def test_the_payoff_controller_foveates_only_while_it_pays():
    """FoveationPayoff on synthetic frame times: the first seven frames foveated, the eighth not,
    then the faster kind, with the other one every PROBE_PERIOD-th frame; it follows a change."""
    from types import SimpleNamespace

    from gscache.stages.foveate import FoveationPayoff

    def times(ms):
        return SimpleNamespace(project_ms=0.0, bin_ms=0.0, rasterize_ms=ms, composite_ms=0.0)

    p = FoveationPayoff(key=())
    cost = {True: 12.0, False: 10.0}  # foveation slower
    chosen = []
    for _ in range(40):
        f = p.foveate()
        chosen.append(f)
        p.account(times(cost[f]))
    assert chosen[:8] == [True] * 7 + [False] and chosen.count(True) == 7 + 2  # the first frames, two probes
    assert [i for i, f in enumerate(chosen) if f][7:] == [15, 31]
    cost = {True: 5.0, False: 10.0}  # now it pays: followed at the next probe
    chosen = []
    for _ in range(20):
        f = p.foveate()
        chosen.append(f)
        p.account(times(cost[f]))
    assert chosen[-8:] == [True] * 8


def test_a_frame_that_would_not_pay_is_rendered_exact():
    """In a renderer whose foveated frames measure slower, the frame is the unfoveated render
    (bit for bit), reported as paused; with payoff off it is foveated whatever it costs."""
    scene, rig = _scene(seed=6), _rig()
    base = RenderConfig(backend="cpu", device="cpu")
    cfg = dataclasses.replace(base, foveation=FOVEATION_LEVELS["medium"])
    full = render(scene, rig, base)
    with Renderer(scene, cfg) as r:
        first = r.render(rig)
        assert not first.foveation.paused and first.times.composite_ms > 0
        r.cache.fovea_payoff.mean_ms.update({True: 10.0, False: 1.0})  # as measured: foveation slower
        out = r.render(rig)
        assert out.foveation.paused and out.foveation.regions == () and out.times.composite_ms == 0
        assert torch.equal(out.images.rgb, full.images.rgb)
    never = dataclasses.replace(base, foveation=dataclasses.replace(FOVEATION_LEVELS["medium"], payoff=False))
    with Renderer(scene, never) as r:
        assert all(not r.render(rig).foveation.paused for _ in range(3)) and r.cache.fovea_payoff is None


def test_mono_and_single_gaussian_and_empty_scenes():
    cfg = RenderConfig(backend="cpu", device="cpu", foveation=FOVEATION_LEVELS["medium"])
    cam = _rig().eyes()[0]
    for scene in (_scene(1), random_scene(0, sh_degree=1), _scene()):  # one Gaussian, none, many
        full = render(scene, cam, RenderConfig(backend="cpu", device="cpu"))
        out = render(scene, cam, cfg, gaze=(0.8, 0.3))
        layout = fovea_layout(97, 75, 1, cfg.foveation, torch.tensor([[0.8, 0.3]], dtype=torch.float64))
        assert out.images.rgb.shape == full.images.rgb.shape and _inner_equal(full, out, layout)


def test_periphery_error_shrinks_with_the_level():
    """The measured periphery PSNR orders as the levels do (more reduction, more error)."""
    from gscache.bench.metrics import psnr

    scene, rig = _scene(seed=3), _rig(160, 120)
    full = render(scene, rig, RenderConfig(backend="cpu", device="cpu")).images.rgb
    values = []
    for level in LEVELS:
        cfg = RenderConfig(backend="cpu", device="cpu", foveation=FOVEATION_LEVELS[level])
        out = render(scene, rig, cfg).images.rgb
        _, outside = fovea_layout(160, 120, 2, cfg.foveation, None).masks("cpu")
        values.append(psnr(out[outside], full[outside]))
    assert values[0] > values[-1] > 15 and all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("gaze,message", [((0.5,), "shape"), ((1.5, 0.5), r"\[0, 1\]"), ((float("nan"), 0.5), r"\[0, 1\]"),
                                          ("centre", "expected")])
def test_bad_gaze_is_refused_by_name(gaze, message):
    cfg = RenderConfig(backend="cpu", device="cpu", foveation=FOVEATION_LEVELS["low"])
    with pytest.raises(GscacheError, match=f"gaze.*{message}"):
        render(_scene(10), _rig(), cfg, gaze=gaze)


@pytest.mark.parametrize("kw,field", [({"periphery_scale": 0.0}, "periphery_scale"), ({"fovea": (1.5, 0.5)}, "fovea"),
                                      ({"band": -0.1}, "band"), ({"fovea": (0.5,)}, "fovea"),
                                      ({"ring": (0.5, 0.5, 0.5)}, "ring"),
                                      ({"periphery_scale": 0.5, "fovea": (0.5, 0.5), "ring": (0.4, 0.9)}, "ring"),
                                      ({"periphery_scale": 0.5, "fovea": (0.3, 0.3), "ring": (0.6, 0.6)}, "far_scale"),
                                      ({"periphery_scale": 0.5, "fovea": (0.3, 0.3), "ring": (0.6, 0.6),
                                        "far_scale": 0.5}, "far_scale")])
def test_bad_foveation_settings_are_refused_by_name(kw, field):
    with pytest.raises(GscacheError, match=f"foveation.{field}"):
        RenderConfig(foveation=FoveationConfig(**kw))


def test_foveation_over_several_devices_is_refused_clearly():
    cfg = RenderConfig(backend="cpu", device="cpu", foveation=FOVEATION_LEVELS["low"])
    with pytest.raises(GscacheError, match="foveation"):
        open_renderer(_scene(10), cfg, devices=["local", "proc"])
