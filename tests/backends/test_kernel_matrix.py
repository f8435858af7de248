"""The edge cases where kernels go wrong, on every kernel backend (the cuda kernels run under the
SIMT emulation as ``cuda-sim``): image sizes that are not tile multiples, every tile size, counts
that are not multiples of the block size, no Gaussian and one, empty tiles after non-empty ones,
derivation with the MLP weights in shared and in global memory, and every serial schedule, which
must give bit-identical results. Integers compare exactly, floats within tests/_compare.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gscache import backends
from gscache.camera import StereoRig, look_at, views_of
from gscache.config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
from gscache.scene.structured import AnchorMLPs
from gscache.scenes import structured_demo
from gscache.stages.derive import derive_anchors, lod_mask
from tests._backends import device_of, params
from tests._compare import assert_stage_close
from tests._helpers import random_scene

SIZES = [(1, 1), (60, 45), (17, 300)]
TILES = [8, 16, 32]
COUNTS = [0, 1, 257]  # 257: one past a block of 256 threads


RASTER = RasterConfig(background=(0.2, 0.4, 0.6))


def _stages(impl, scene, rig, tile_px):
    """(the reference's records, ``impl``'s records) of shade, project, bin and rasterize, every
    stage of ``impl`` fed the reference's inputs (so each is compared alone), on one device."""
    device = device_of(impl.name)
    torch_ = backends.get("torch", device.type)
    views = views_of(rig, device)
    scene = scene.to(device)
    visible = torch_.cull(scene, views, CullConfig(), ProjectConfig())
    shaded = torch_.shade(visible, views, ShadeConfig())
    projected = torch_.project(visible, shaded, views, ProjectConfig())
    bins = torch_.bin(projected, views, BinConfig(tile_px=tile_px))
    ref = (shaded, projected, bins, torch_.rasterize(visible, shaded, projected, bins, views, RASTER))
    ours = (impl.shade(visible, views, ShadeConfig()), impl.project(visible, shaded, views, ProjectConfig()),
            impl.bin(projected, views, BinConfig(tile_px=tile_px)),
            impl.rasterize(visible, shaded, projected, bins, views, RASTER))
    return ref, ours


def _rig(w, h):
    return StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), w, h, fov_y_deg=70, ipd_m=0.1)


def _check_all(impl, scene, rig, tile_px):
    ref, ours = _stages(impl, scene, rig, tile_px)
    for record, expected, stage in zip(ours, ref, ("shade", "project", "bin", "rasterize")):
        assert_stage_close(record, expected, stage)
    return ours


@pytest.mark.parametrize("backend", params("cpu", "cuda-sim", "cuda"))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tile_px", TILES)
@pytest.mark.parametrize("count", COUNTS)
def test_stages_on_edge_shapes(backend, size, tile_px, count):
    impl = backends.get(backend, device_of(backend).type)
    scene = random_scene(count, seed=count + tile_px, sh_degree=3, spread=1.5, depth=3.0)
    _, _, bins, images = _check_all(impl, scene, _rig(*size), tile_px)
    assert images.rgb.shape == (2, size[1], size[0], 3)
    if count > 1 and size != (1, 1):
        assert bins.isect_keys.numel() > count // 4  # the scene really covers the image
    if count == 0:  # every pixel the background, every tile empty
        assert torch.equal(images.rgb.cpu(), torch.tensor([0.2, 0.4, 0.6]).expand_as(images.rgb.cpu()))
        assert int(bins.tile_ranges.abs().sum()) == 0


@pytest.mark.parametrize("backend", params("cpu", "cuda-sim", "cuda"))
def test_empty_tiles_after_non_empty_ones_have_exact_ranges(backend):
    """The contract of TileBins.tile_ranges: an empty tile is (k, k), k = intersections before it
    (the cuda kernel once left (0, 0) there; random_scene(3000, seed=1) at 200x150 has 22 such)."""
    impl = backends.get(backend, device_of(backend).type)
    scene = random_scene(3000, seed=1)
    rig = StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), 200, 150, fov_y_deg=60)
    _, _, bins, _ = _check_all(impl, scene, rig, 16)
    ranges = bins.tile_ranges.reshape(-1, 2).cpu()
    sizes = ranges[:, 1] - ranges[:, 0]
    empty_after = [t for t in range(1, len(ranges)) if sizes[t] == 0 and int(ranges[t, 0]) > 0]
    assert len(empty_after) >= 10
    assert torch.equal(ranges[1:, 0], ranges[:-1, 1]) and int(ranges[0, 0]) == 0  # a partition of [0, I)
    assert int(ranges[-1, 1]) == bins.isect_keys.numel()


@pytest.mark.parametrize("schedule", ["free", "forward", "reverse", "random"])
def test_every_schedule_gives_the_same_bits(schedule):
    """Race-free kernels give bit-identical records whatever order their threads run in."""
    pytest.importorskip("gscache.backends.simt")
    from gscache.backends.simt import make_backend

    try:
        impl = make_backend(schedule=schedule, seed=11)
        base = make_backend(schedule="forward")
    except backends.BackendUnavailable as exc:
        pytest.skip(f"backend 'cuda-sim' unavailable: {exc}")
    scene = random_scene(700, seed=4, sh_degree=2, spread=1.5)
    for tile_px, size in ((8, (60, 45)), (32, (45, 37))):
        rig = _rig(*size)
        ours, expected = _stages(impl, scene, rig, tile_px)[1], _stages(base, scene, rig, tile_px)[1]
        for a, b in zip(ours, expected):
            for field in dataclasses.fields(a):
                va, vb = getattr(a, field.name), getattr(b, field.name)
                if isinstance(va, torch.Tensor):
                    assert torch.equal(va, vb), f"{type(a).__name__}.{field.name} differs under {schedule}"


def _wide(scene, hidden: int):
    """The demo's MLPs replaced by seeded ones `hidden` wide: 256 puts the weights past 48 KiB."""
    g = torch.Generator().manual_seed(5)
    k, width = scene.n_offsets, scene.mlps.opacity[0].in_features

    def mlp(out, act):
        a, b = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, out)
        with torch.no_grad():
            for layer in (a, b):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) / layer.in_features ** 0.5)
                layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=g))
        return torch.nn.Sequential(a, torch.nn.ReLU(), b, act).eval()

    m = scene.mlps
    mlps = AnchorMLPs(mlp(k, torch.nn.Tanh()), mlp(7 * k, torch.nn.Identity()), mlp(3 * k, torch.nn.Sigmoid()),
                      m.opacity_dist, m.cov_dist, m.color_dist, m.add_level)
    # Identity is no activation the packer knows: drop it from the cov chain.
    mlps = dataclasses.replace(mlps, cov=torch.nn.Sequential(*list(mlps.cov)[:3]).eval())
    return dataclasses.replace(scene, mlps=mlps)


@pytest.mark.parametrize("hidden,shared", [(32, True), (256, False)])
@pytest.mark.parametrize("n_anchors", [1, 255, 257])
def test_derivation_with_weights_in_shared_and_in_global_memory(hidden, shared, n_anchors):
    from gscache.backends.simt import SimRuntime
    from gscache.backends.cuda import SHARED_MEM_LIMIT, backend_on

    reason = backends.available()["cuda-sim"]
    if reason != "ok":
        pytest.skip(f"backend 'cuda-sim' unavailable: {reason}")
    rt = SimRuntime("random", seed=n_anchors)
    impl = backend_on(rt)
    scene = _wide(structured_demo(seed=2, spacing=0.2), hidden)
    position = scene.anchors.mean(0) + torch.tensor([0.4, -3.0, -6.0])
    ids = torch.nonzero(lod_mask(scene, position)).squeeze(1)
    assert len(ids) >= n_anchors
    ids = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(1))][:n_anchors]
    ref, ours = derive_anchors(scene, ids, position), impl.derive(scene, ids, position)
    assert ours.count == ref.count
    for name in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), rtol=1e-5, atol=2e-6, msg=name)
    shared_bytes = {s for name, _, _, s in rt.launches if name.startswith("derive")}
    assert (shared_bytes != {0}) == shared and all(s <= SHARED_MEM_LIMIT for s in shared_bytes)


@pytest.mark.parametrize("backend", params("cpu", "cuda-sim", "cuda"))
@pytest.mark.parametrize("tile_px", TILES)
def test_converging_eyes_bin_with_the_key_sort(backend, tile_px):
    """Eyes that converge see different depths: no shared depth order, the (tile, depth) key sort."""
    impl = backends.get(backend, device_of(backend).type)
    rig = StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), 60, 45, fov_y_deg=70, ipd_m=0.1,
                              convergence_m=1.5)
    assert not views_of(rig).shared_depth
    _check_all(impl, random_scene(257, seed=9, sh_degree=1, spread=1.5), rig, tile_px)
