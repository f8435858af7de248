"""The periphery's level of detail (gscache.stages.lod): the hierarchy's merges keep the
children's moments, every cut covers each Gaussian exactly once, the disk cache gives back what
was built, and a foveated frame drawing the cut keeps its fovea exact."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gscache import RenderConfig, Renderer, StereoRig
from gscache.config import FoveationConfig
from gscache.errors import GscacheError
from gscache.stages.lod import build_lod, content_key, load_or_build, select_cut
from gscache.stages.lod import _rotation_matrices
from gscache.trajectory import default_head_pose
from tests._helpers import random_scene


def _cover(lod, drawn, n):
    """How many drawn nodes cover each of the n Gaussians (itself or an ancestor)."""
    cover = torch.zeros(n, dtype=torch.long)
    node = torch.arange(n)
    for level in range(lod.levels):
        cover += drawn[node].long()
        if level < lod.levels - 1:
            node = lod.parent[node]
    return cover


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_cut_covers_each_gaussian_exactly_once(seed):
    scene = random_scene(3000, seed=seed, sh_degree=2)
    lod = build_lod(scene)
    assert lod.levels >= 3 and lod.offsets[0] == 0 and lod.offsets[1] == scene.count
    g = torch.Generator().manual_seed(seed)
    for tau in (0.5, 4.0, 32.0, 1e4):
        positions = torch.randn(2, 3, generator=g) * 3
        drawn = select_cut(lod, positions, 300.0, tau)
        cover = _cover(lod, drawn, scene.count)
        assert int(cover.min()) == 1 and int(cover.max()) == 1
    assert int(select_cut(lod, positions, 300.0, 0.0)[:scene.count].sum()) == scene.count  # tau 0: the scene
    coarse = select_cut(lod, positions, 300.0, 1e9)
    assert int(coarse.sum()) == lod.offsets[-1] - lod.offsets[-2]  # huge tau: the top level only


def test_a_merge_keeps_the_childrens_moments():
    scene = random_scene(500, seed=4, sh_degree=1)
    lod = build_lod(scene)
    o = lod.offsets
    parent = lod.parent[:scene.count] - o[1]
    node = int(torch.mode(parent).values)  # the level-1 node with the most children
    kids = torch.nonzero(parent == node).squeeze(1)
    assert kids.numel() >= 2
    s = scene.scales[kids].double()
    w = scene.opacities[kids].double() * (s[:, 0] * s[:, 1] + s[:, 1] * s[:, 2] + s[:, 0] * s[:, 2])
    mean = (w[:, None] * scene.means[kids].double()).sum(0) / w.sum()
    assert torch.allclose(lod.means[o[1] + node].double(), mean, atol=1e-5)
    R = _rotation_matrices(scene.quats[kids].double())
    cov = R @ torch.diag_embed(s ** 2) @ R.transpose(1, 2)
    d = scene.means[kids].double() - mean
    second = ((cov + d[:, :, None] * d[:, None, :]) * w[:, None, None]).sum(0) / w.sum()
    Rm = _rotation_matrices(lod.quats[o[1] + node:o[1] + node + 1].double())[0]
    merged = Rm @ torch.diag(lod.scales[o[1] + node].double() ** 2) @ Rm.T
    assert torch.allclose(merged, second, rtol=1e-3, atol=1e-7)
    assert float(lod.opacities[o[1] + node]) >= float(scene.opacities[kids].max()) - 1e-6
    assert float(lod.child_extent[o[1] + node]) == pytest.approx(float(3 * scene.scales[kids].amax()), rel=1e-5)


def test_the_disk_cache_gives_back_the_hierarchy(tmp_path):
    scene = random_scene(800, seed=5, sh_degree=1)
    built = load_or_build(scene, tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert [f.stem for f in files] == [content_key(scene)]
    again = load_or_build(scene, tmp_path)
    assert again.offsets == built.offsets and torch.equal(again.means, built.means)
    assert torch.equal(again.parent, built.parent)
    edited = scene.edited(opacities=scene.opacities * 0.5)
    assert content_key(edited) != content_key(scene)
    files[0].write_bytes(b"damaged")
    assert load_or_build(scene, tmp_path).offsets == built.offsets  # rebuilt, not an error


def test_empty_and_single_gaussian_scenes_have_a_trivial_hierarchy():
    for n in (0, 1):
        scene = random_scene(n, seed=0) if n else random_scene(1, seed=0)
        lod = build_lod(scene)
        assert lod.offsets[-1] == scene.count
        assert int(select_cut(lod, torch.zeros(1, 3), 100.0, 2.0).sum()) == scene.count


def test_a_foveated_frame_with_the_level_of_detail_keeps_the_fovea_exact():
    scene = random_scene(4000, seed=6, sh_degree=1)
    rig = StereoRig.symmetric(default_head_pose(scene), 96, 80, 80.0)
    fov = FoveationConfig(periphery_scale=0.5, fovea=(0.4, 0.4), band=0.05, periphery_lod_px=6.0)
    exact = Renderer(scene, RenderConfig(backend="cpu")).render(rig)
    frame = Renderer(scene, RenderConfig(backend="cpu", foveation=fov)).render(rig)
    from gscache.stages.foveate import fovea_layout

    for e, (x0, y0, x1, y1) in enumerate(fovea_layout(96, 80, 2, fov, None).inner):
        assert torch.equal(frame.rgb[e, y0:y1, x0:x1], exact.rgb[e, y0:y1, x0:x1])
    plain = Renderer(scene, RenderConfig(backend="cpu", foveation=dataclasses.replace(fov, periphery_lod_px=0.0)))
    assert frame.counters.n_intersections <= plain.render(rig).counters.n_intersections
    with pytest.raises(GscacheError, match="periphery_lod_px"):
        RenderConfig(foveation=dataclasses.replace(fov, periphery_lod_px=-1.0))
