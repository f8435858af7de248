"""Values that cannot be rendered are refused by name: config numbers (NaN, infinity, ranges),
scenes built directly with NaN or out-of-range fields; quaternions of any magnitude normalise."""

from __future__ import annotations

import math

import pytest
import torch

from gscache import GscacheError, Renderer, RenderConfig
from gscache.config import CacheConfig, CullConfig, ProjectConfig, RasterConfig
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
