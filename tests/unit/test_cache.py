"""Stereo and temporal reuse: exact modes against no reuse, approximate modes within a stated
PSNR, refresh triggers, invalidation, the static-head bit-for-bit rule, and the dynamic depth."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gscache import Renderer, RenderConfig, StereoRig, backends, load_scene
from gscache.bench.metrics import psnr
from gscache.cache import DepthController
from gscache.camera import look_at
from gscache.config import CacheConfig
from gscache.scenes import demo_scene
from gscache.trajectory import default_head_pose
from tests._backends import device_of, params
from tests._helpers import random_scene
from tests.conftest import data_file

APPROX_COLORS_MIN_PSNR_DB = 40.0
CPU_BACKENDS = [b for b in ("torch", "cpu") if backends.available().get(b) == "ok"]


def _config(backend: str, **cache) -> RenderConfig:
    return RenderConfig(backend=backend, device="cpu", cache=CacheConfig(**cache))


def _rig(pose=None, size=(96, 64), **kw) -> StereoRig:
    pose = look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)) if pose is None else pose
    return StereoRig.symmetric(pose, size[0], size[1], fov_y_deg=70, **kw)


def _turn(deg: float, shift=(0.0, 0.0, 0.0)):
    """A head pose turned by deg about the vertical axis and shifted (metres)."""
    a = math.radians(deg)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
                             dtype=torch.float64)
    T[:3, 3] = torch.tensor(shift, dtype=torch.float64)
    return T


@pytest.mark.parametrize("backend", params("torch", "cpu", "cuda-sim"))
def test_stereo_exact_equals_no_reuse(backend):
    scene = random_scene(1500, seed=5, sh_degree=3, spread=2.0, depth=4.0)
    rig = _rig(ipd_m=0.08)
    joint = Renderer(scene, _config(backend, stereo=True)).render(rig)
    apart = Renderer(scene, _config(backend, stereo=False)).render(rig)
    assert joint.counters.n_intersections == apart.counters.n_intersections
    torch.testing.assert_close(joint.rgb, apart.rgb, rtol=0, atol=1e-6)
    torch.testing.assert_close(joint.alpha, apart.alpha, rtol=0, atol=1e-6)
    assert apart.counters.n_visible >= joint.counters.n_visible  # each eye culled on its own


@pytest.mark.parametrize("backend", params("torch", "cpu", "cuda-sim", "cuda", "gsplat"))
def test_shared_depth_order_gives_the_same_bins(backend):
    from gscache.camera import views_of
    from gscache.config import BinConfig, CullConfig, ProjectConfig, ShadeConfig

    device = device_of(backend)
    impl = backends.get(backend, device.type)
    ref = backends.get("torch", "cpu")
    scene = random_scene(2000, seed=6, spread=2.0, depth=4.0).to(device)
    views = views_of(_rig(ipd_m=0.1), device)
    assert views.shared_depth
    visible = ref.cull(scene, views, CullConfig(), ProjectConfig())
    projected = ref.project(visible, ref.shade(visible, views, ShadeConfig()), views, ProjectConfig())
    base = ref.bin(projected, dataclasses.replace(views, shared_depth=False), BinConfig())  # the key sort
    shared = impl.bin(projected, views, BinConfig())
    for field in ("isect_keys", "gaussian_ids", "tile_ranges", "tiles_per_gaussian"):
        assert torch.equal(getattr(shared, field).cpu(), getattr(base, field).cpu()), field


def test_converging_eyes_do_not_share_a_depth_order():
    from gscache.camera import views_of

    assert not views_of(_rig(convergence_m=1.5)).shared_depth


@pytest.mark.parametrize("scene_name", ["demo", "plant"])
def test_approximate_stereo_colours_within_stated_psnr(scene_name):
    scene = demo_scene() if scene_name == "demo" else load_scene(data_file("plant.splat"))
    rig = StereoRig.symmetric(default_head_pose(scene), 128, 128, fov_y_deg=90)
    backend = CPU_BACKENDS[-1]
    exact = Renderer(scene, _config(backend)).render(rig)
    approx = Renderer(scene, _config(backend, approx_stereo_colors=True)).render(rig)
    value = psnr(approx.rgb, exact.rgb)
    assert value >= APPROX_COLORS_MIN_PSNR_DB
    if scene.sh_degree > 0:
        assert value < math.inf  # the eyes really see different colours


@pytest.mark.parametrize("backend", params("torch", "cpu", "cuda-sim"))
def test_static_head_hit_equals_a_fresh_render_bit_for_bit(backend):
    scene = random_scene(800, seed=7, sh_degree=2, spread=2.0, depth=4.0)
    rig = _rig()
    r = Renderer(scene, _config(backend, depth=4))
    first, second = r.render(rig), r.render(rig)
    assert first.cache.refresh_reason == "first" and not first.cache.hit
    assert second.cache.hit and second.cache.age == 1 and second.cache.stage_hits
    assert torch.equal(first.rgb, second.rgb)
    fresh = Renderer(scene, _config(backend)).render(rig)  # no temporal cache at all
    assert torch.equal(second.rgb, fresh.rgb) and torch.equal(second.alpha, fresh.alpha)


def test_refresh_triggers():
    scene = random_scene(300, seed=8, spread=2.0, depth=4.0)
    cfg = _config("torch", depth=8, max_translation_m=0.05, max_rotation_deg=3.0, margin_px=200.0)
    r = Renderer(scene, cfg)
    assert r.render(_rig(_turn(0))).cache.refresh_reason == "first"
    assert r.render(_rig(_turn(0.5))).cache.hit
    assert r.render(_rig(_turn(0.0, (0.1, 0, 0)))).cache.refresh_reason == "translation"
    assert r.render(_rig(_turn(5.0, (0.1, 0, 0)))).cache.refresh_reason == "rotation"
    # A small turn with a small margin: the views leave the margin before any threshold.
    r2 = Renderer(scene, _config("torch", depth=8, margin_px=2.0))
    r2.render(_rig(_turn(0)))
    assert r2.render(_rig(_turn(1.0))).cache.refresh_reason == "frustum"
    # Age: D = 3 refreshes every third frame on a static head.
    r3 = Renderer(scene, _config("torch", depth=3))
    reasons = [r3.render(_rig()).cache.refresh_reason for _ in range(7)]
    assert reasons == ["first", None, None, "age", None, None, "age"]


def test_invalidation():
    scene = random_scene(300, seed=9, spread=2.0, depth=4.0)
    r = Renderer(scene, _config("torch", depth=8))
    rig = _rig()
    r.render(rig)
    assert r.render(rig).cache.hit
    r.set_scene(scene.edited(opacities=scene.opacities * 0.5))
    assert r.render(rig).cache.refresh_reason == "invalidated: scene"
    assert r.render(_rig(size=(80, 64))).cache.refresh_reason == "invalidated: views"  # resolution
    assert r.render(_rig(size=(80, 64), ipd_m=0.063)).cache.hit
    wide = StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), 80, 64, fov_y_deg=90)
    assert r.render(wide).cache.refresh_reason == "invalidated: views"  # intrinsics
    r.config = dataclasses.replace(r.config, project=dataclasses.replace(r.config.project, eps2d=0.5))
    assert r.render(wide).cache.refresh_reason == "invalidated: config"
    if "cpu" in CPU_BACKENDS:
        r.backend = backends.get("cpu", "cpu")
        assert r.render(wide).cache.refresh_reason == "invalidated: backend"


def test_a_refresh_lets_the_old_front_go_before_building_the_new_one():
    """A refresh drops the old entry as it is decided (TemporalCache.begin), so the old front and
    the new one are never held together (twice the cache's memory at every refresh)."""
    import weakref

    scene = random_scene(300, seed=11, spread=2.0, depth=4.0)
    r = Renderer(scene, _config("torch", depth=2))
    rig = _rig()
    r.render(rig)
    old = weakref.ref(r.cache.entry.payload["shaded"].covars)
    seen = []
    original = r.cache.store

    def store(*args, **kwargs):  # when the new front is stored, the old one is already gone
        seen.append(r.cache.entry is None and old() is None)
        return original(*args, **kwargs)

    r.cache.store = store
    assert r.render(rig).cache.hit
    assert r.render(rig).cache.refresh_reason == "age" and seen == [True]


def test_cache_memory_is_bounded_and_reported():
    scene = random_scene(2000, seed=10, spread=6.0, depth=4.0)  # many Gaussians culled
    r = Renderer(scene, _config("torch", depth=4))
    frames = [r.render(_rig(_turn(0.2 * i))) for i in range(6)]
    sizes = {f.cache.cache_bytes for f in frames}
    # One entry: at most a copy of the scene's Gaussians plus ids, covariances and both eyes' colours.
    bound = scene.nbytes + scene.count * (8 + 6 * 4 + 2 * 3 * 4)
    assert all(0 < b <= bound for b in sizes)
    V, K = frames[0].counters.n_visible, scene.sh.shape[1]
    assert V < scene.count  # some Gaussians culled: the entry holds copies of the visible ones only
    assert frames[0].cache.cache_bytes == V * (8 + 12 + 16 + 12 + 4 + K * 12 + 24 + 2 * 12)
    assert r.cache.totals.frames == 6 and r.cache.totals.hits >= 3
    assert 0 < r.cache.totals.hit_rate < 1 and r.cache.totals.time_saved_ms > 0


def test_temporal_cache_error_stays_small_along_vr_motion():
    from gscache.trajectory import vr_head_motion

    scene = demo_scene()
    pose = default_head_pose(scene)
    template = StereoRig.symmetric(pose, 96, 96, fov_y_deg=90)
    backend = CPU_BACKENDS[-1]
    exact = Renderer(scene, _config(backend))
    cached = Renderer(scene, _config(backend, depth=4))
    values = []
    for rig in vr_head_motion(pose, 16, seed=1).rigs(template):
        values.append(psnr(cached.render(rig).rgb, exact.render(rig).rgb))
    finite = [v for v in values if math.isfinite(v)]
    assert cached.cache.totals.hits > 0
    assert not finite or sum(finite) / len(finite) >= APPROX_COLORS_MIN_PSNR_DB


def test_dynamic_depth_controller_on_a_synthetic_sequence():
    cfg = CacheConfig(depth=1, dynamic_depth=True, depth_max=4, frame_budget_ms=10.0, headroom=0.7,
                      hysteresis_frames=3)
    c = DepthController(cfg)
    over = [c.update(15.0) for _ in range(12)]  # missing the budget: D climbs every 3 frames
    assert over == [1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    band = [c.update(8.5) for _ in range(10)]  # within the hysteresis band: no change
    assert set(band) == {4}
    alternating = [c.update(v) for v in [15.0, 5.0] * 6]  # never 3 in a row: no oscillation
    assert set(alternating) == {4}
    under = [c.update(5.0) for _ in range(12)]  # headroom: D falls back, not below 1
    assert under[-1] == 1 and under == sorted(under, reverse=True)


def test_dynamic_depth_in_the_renderer_follows_the_budget():
    scene = random_scene(200, seed=11, spread=2.0, depth=4.0)
    r = Renderer(scene, _config("torch", depth=1, dynamic_depth=True, depth_max=4, frame_budget_ms=1e-3,
                                hysteresis_frames=1))
    depths = [r.render(_rig()).cache.depth for _ in range(5)]
    assert depths[-1] > depths[0]  # every frame misses a 1 us budget: D grows to its bound
    assert max(depths) <= 4


def test_cache_keys_are_scene_identities_that_are_never_reused():
    """A scene built after another was freed, with the same count and version, is another scene
    to the cache (keys once were tensor id()s, which Python recycles); moving one keeps it."""
    import gc

    r = Renderer(random_scene(300, seed=1, spread=2.0, depth=4.0), _config("torch", depth=8))
    rig = _rig()
    r.render(rig)
    assert r.render(rig).cache.hit
    r.set_scene(random_scene(300, seed=2, spread=2.0, depth=4.0))  # the first scene is freed
    gc.collect()
    assert r.render(rig).cache.refresh_reason == "invalidated: scene"
    assert r.render(rig).cache.hit
    r.scene.opacities.mul_(0.5)  # an in-place edit, without telling anyone: the tensor's version moves
    assert r.render(rig).cache.refresh_reason == "invalidated: scene"
    assert r.render(rig).cache.hit
    r.set_scene(r.scene)  # set_scene always refreshes, whatever changed
    assert r.render(rig).cache.refresh_reason == "invalidated: scene"
    scene = r.scene
    assert scene.to("meta").token == scene.token  # the same content elsewhere
    assert scene.edited(opacities=scene.opacities).token != scene.token
    assert dataclasses.replace(scene, sh=scene.sh * 2).token != scene.token
