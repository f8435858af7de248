"""Values that cannot be rendered are refused by name: config numbers (NaN, infinity, ranges),
scenes built directly with NaN or out-of-range fields; quaternions of any magnitude normalise.
(Directly built records on every backend, and the memory budgets per intersection:
test_construction_paths.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from gscache import GscacheError, Renderer, RenderConfig
from gscache.config import BinConfig, CacheConfig, CullConfig, ProjectConfig, RasterConfig
from gscache.scene.record import Scene, make_scene


@pytest.mark.parametrize("cfg,field", [
    (dict(cull=CullConfig(margin_px=math.nan)), "cull.margin_px"),
    (dict(project=ProjectConfig(extent_sigma=math.inf)), "project.extent_sigma"),
    (dict(project=ProjectConfig(eps2d=math.nan)), "project.eps2d"),
    (dict(raster=RasterConfig(transmittance_min=math.nan)), "raster.transmittance_min"),
    (dict(raster=RasterConfig(transmittance_min=1.5)), "raster.transmittance_min"),
    (dict(raster=RasterConfig(background=(0.0, math.nan, 0.0))), "raster.background"),
    (dict(cache=CacheConfig(margin_px=math.inf)), "cache.margin_px"),
    (dict(cache=CacheConfig(depth=2.5)), "cache.depth"),
    (dict(bin=BinConfig(memory_budget_bytes=0)), "bin.memory_budget_bytes"),
    (dict(bin=BinConfig(memory_budget_bytes=1.5e9)), "bin.memory_budget_bytes"),
])
def test_config_numbers_are_checked(cfg, field):
    with pytest.raises(GscacheError, match=field.replace(".", r"\.")):
        RenderConfig(**cfg)


def test_infinite_thresholds_mean_never():
    RenderConfig(cache=CacheConfig(max_translation_m=math.inf, max_rotation_deg=math.inf))


def test_huge_and_tiny_quaternions_normalise():
    q = torch.tensor([[1e30, 1e30, 0.0, 0.0], [1e-30, 0.0, 1e-30, 0.0], [2.0, 0.0, 0.0, 0.0]])
    s = make_scene(torch.zeros(3, 3), q, torch.full((3, 3), 0.1), torch.full((3,), 0.5), torch.zeros(3, 1, 3))
    assert s.count == 3
    torch.testing.assert_close(s.quats.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(s.quats[0], torch.tensor([2 ** -0.5, 2 ** -0.5, 0.0, 0.0]))


@pytest.mark.parametrize("field,value,message", [
    ("opacities", math.nan, "'opacities' has 1 NaN"),
    ("opacities", 1.5, "'opacities': expected values in"),
    ("scales", -1.0, "'scales': expected values > 0"),
    ("means", math.inf, "'means' has 1 NaN or Inf"),
])
def test_directly_built_scenes_with_bad_values_are_refused(field, value, message):
    good = make_scene(torch.zeros(2, 3), torch.tensor([[1.0, 0, 0, 0]] * 2), torch.full((2, 3), 0.1),
                      torch.full((2,), 0.5), torch.zeros(2, 1, 3))
    t = getattr(good, field).clone()
    t.view(-1)[0] = value
    bad = Scene(**{**{n: getattr(good, n) for n in ("means", "quats", "scales", "opacities", "sh")}, field: t})
    with pytest.raises(GscacheError, match=message):
        Renderer(bad, RenderConfig(backend="torch"))
    r = Renderer(good, RenderConfig(backend="torch"))
    with pytest.raises(GscacheError, match=message):
        r.set_scene(bad)


def test_a_frame_larger_than_free_memory_is_refused_before_rendering():
    from gscache import StereoRig
    from gscache.resources import available_bytes

    if (available_bytes(torch.device("cpu")) or 0) > 40 << 30:
        pytest.skip("this machine has more than 40 GiB free: a 16384x16384 stereo frame fits")
    from gscache.camera import look_at
    from tests._helpers import random_scene

    rig = StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), 16384, 16384)  # 32 GiB with its copies
    with pytest.raises(GscacheError, match="resolution: 2 view.*16384x16384.*GiB free"):
        Renderer(random_scene(10), RenderConfig(backend="cpu")).render(rig)


def test_readers_refuse_declared_sizes_over_the_budget(tmp_path, monkeypatch):
    import numpy as np

    from gscache import load_scene
    from gscache.scene import limits

    np.savez_compressed(tmp_path / "bomb.npz", means3d=np.zeros((400_000, 3), np.float32),
                        colors=np.zeros((400_000, 3), np.uint8))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000  # a small file that inflates 50x
    monkeypatch.setattr(limits, "MAX_DECODED_BYTES", 1 << 20)
    with pytest.raises(GscacheError, match=r"array 'means3d' \(400000, 3\) would decode to .* over the readers' budget"):
        load_scene(tmp_path / "bomb.npz")
