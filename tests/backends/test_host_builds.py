"""The cpu backend built for older machines: its 16-lane vectors (cull, shade, project,
rasterize) and its binning compiled without AVX-512 (AVX2: two 256-bit registers per vector) and
without AVX at all (SSE2: four 128-bit registers, no fused multiply-adds), each against the torch
reference on inputs that expose rounding: odd image sizes, every tile size, view-dependent
colours (degree 3), a Gaussian count that leaves a partial block of 16, an empty scene and a
single Gaussian. The machine's own build is covered by the kernel matrix."""

from __future__ import annotations

import pytest

from gscache import backends
from gscache.backends import cpu
from gscache.camera import StereoRig, look_at, views_of
from gscache.config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
from tests._compare import assert_stage_close
from tests._helpers import random_scene

BUILDS = {
    "avx2": (("-mno-avx512f",), 256),
    "sse2": (("-mno-avx512f", "-mno-avx2", "-mno-avx", "-mno-fma"), 128),
}


def _x86() -> bool:
    import platform

    return platform.machine() in ("x86_64", "AMD64")


@pytest.fixture(params=sorted(BUILDS))
def build(request, monkeypatch):
    """The cpu backend's stages running on the host library built with the build's flags."""
    if not _x86():
        pytest.skip("the AVX2 and SSE2 builds are x86 flags")
    flags, bits = BUILDS[request.param]
    if cpu.vector_bits() < bits:
        pytest.skip(f"this machine's build already uses {cpu.vector_bits()}-bit vectors")
    original = cpu._lib
    monkeypatch.setattr(cpu, "_lib", lambda extra=(): original(flags))
    assert cpu.vector_bits() == bits
    return request.param


@pytest.mark.parametrize("n, width, height, tile_px", [(3000, 97, 61, 16), (3000, 131, 77, 8), (3000, 70, 90, 32),
                                                        (0, 33, 17, 16), (1, 33, 17, 16)])
def test_host_build_matches_the_reference(build, n, width, height, tile_px):
    scene = random_scene(n, seed=5, sh_degree=3, spread=1.5, depth=3.0, scale=(0.01, 0.3))
    if n == 1:  # one large Gaussian in the middle of the view
        scene = random_scene(1, seed=5, sh_degree=3, spread=0.0, depth=3.0, scale=(0.2, 0.4))
    rig = StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), width, height, fov_y_deg=70, ipd_m=0.1)
    views = views_of(rig)
    ref = backends.get("torch", "cpu")
    bin_cfg = BinConfig(tile_px=tile_px)
    visible = ref.cull(scene, views, CullConfig(), ProjectConfig())
    shaded = ref.shade(visible, views, ShadeConfig())
    projected = ref.project(visible, shaded, views, ProjectConfig())
    bins = ref.bin(projected, views, bin_cfg)
    images = ref.rasterize(visible, shaded, projected, bins, views, RasterConfig())
    assert_stage_close(cpu.cull(scene, views, CullConfig(), ProjectConfig()), visible, "cull")
    assert_stage_close(cpu.shade(visible, views, ShadeConfig()), shaded, "shade")
    assert_stage_close(cpu.project(visible, shaded, views, ProjectConfig()), projected, "project")
    assert_stage_close(cpu.bin_tiles(projected, views, bin_cfg), bins, "bin")
    got = cpu.rasterize(visible, shaded, projected, bins, views, RasterConfig())
    assert_stage_close(got, images, "rasterize")
    if n:
        assert float(images.alpha.max()) > 0.5  # the scene is in view: the comparison is not of empty images
