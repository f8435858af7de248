"""The fused derivation kernels (cpu, and cuda on a GPU) against the torch reference derivation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gscache import CacheConfig, GscacheError, Renderer, RenderConfig, StereoRig
from gscache.backends._mlp import packed_mlps, unfusable_reason
from gscache.camera import look_at
from gscache.config import DeriveConfig
from gscache.scene.structured import AnchorMLPs
from gscache.scenes import structured_demo
from gscache.scenes.structured_city import structured_city
from gscache.stages.derive import derive_anchors, lod_mask

FIELDS = ("means", "quats", "scales", "opacities", "sh")


def _with_level_input(scene):
    """The demo with MLPs that also take the level (Octree-GS's add_level): one wider input."""
    torch.manual_seed(3)

    def widen(seq):
        first = seq[0]
        wide = torch.nn.Linear(first.in_features + 1, first.out_features)
        with torch.no_grad():
            wide.weight[:, :-1] = first.weight
            wide.weight[:, -1] = 0.5 * torch.randn(first.out_features)
            wide.bias.copy_(first.bias)
        return torch.nn.Sequential(wide, *list(seq)[1:]).eval()

    m = scene.mlps
    mlps = AnchorMLPs(widen(m.opacity), widen(m.cov), widen(m.color), m.opacity_dist, m.cov_dist, m.color_dist,
                      add_level=True)
    return dataclasses.replace(scene, mlps=mlps, lod_rounding="floor")


SCENES = {
    "demo": lambda: structured_demo(seed=2, spacing=0.25),
    "demo_level_input": lambda: _with_level_input(structured_demo(seed=2, spacing=0.25)),
    "city": lambda: structured_city(blocks=1, levels=3, finest_spacing_m=2.0),
}


@pytest.mark.parametrize("scene_name", sorted(SCENES))
def test_fused_derivation_matches_the_reference(backend, scene_name):
    impl, device = backend
    if not impl.fused_derive:
        pytest.skip(f"backend {impl.name!r} has no fused derivation (it uses the reference)")
    scene = SCENES[scene_name]().to(device)
    position = scene.anchors.mean(0) + torch.tensor([0.4, -3.0, -6.0], device=device)
    ids = torch.nonzero(lod_mask(scene, position)).squeeze(1)
    ids = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(0)).to(device)]  # any order, any subset
    ids = ids[: max(1, len(ids) - 7)]  # a count that is not a multiple of the cpu kernel's group of 4
    ref = derive_anchors(scene, ids, position)
    ours = impl.derive(scene, ids, position)
    assert ours.count == ref.count > 0
    for name in FIELDS:
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), rtol=1e-5, atol=2e-6, msg=name)
    assert ours.version == scene.version
    empty = impl.derive(scene, ids[:0], position)
    assert empty.count == 0 and empty.sh.shape == (0, 1, 3)


def test_fused_render_matches_reference_render(backend):
    impl, device = backend
    if not impl.fused_derive:
        pytest.skip(f"backend {impl.name!r} has no fused derivation")
    scene = SCENES["demo"]()
    rig = StereoRig.symmetric(look_at((0.0, -2.5, -5.5), (0.0, -0.5, 0.5)), 64, 64, fov_y_deg=80)
    frames = {}
    for fused in (False, True):
        cfg = RenderConfig(backend=impl.name, device=str(device), derive=DeriveConfig(fused=fused),
                           cache=CacheConfig(depth=1))
        frames[fused] = Renderer(scene, cfg).render(rig)
    assert frames[True].alpha.mean() > 0.2
    torch.testing.assert_close(frames[True].rgb, frames[False].rgb, rtol=0, atol=1e-4)


def test_packer_layout_and_bad_mlps():
    scene = structured_demo(seed=0, spacing=0.5)
    packed = packed_mlps(scene.mlps, torch.device("cpu"))
    first = scene.mlps.opacity[0]
    n_out, n_in = first.weight.shape
    assert packed.layers[0].tolist() == [n_in, n_out, 1, 0]  # Linear + ReLU at offset 0
    torch.testing.assert_close(packed.weights[: n_in * n_out].reshape(n_in, n_out), first.weight.t())
    assert packed.mlps.tolist()[:3] == [0, 2, 1]
    assert unfusable_reason(scene) is None
    odd = dataclasses.replace(scene.mlps, color=torch.nn.Sequential(torch.nn.Linear(20, 24), torch.nn.GELU()))
    assert "GELU" in unfusable_reason(dataclasses.replace(scene, mlps=odd))
    wide = dataclasses.replace(scene.mlps, cov=torch.nn.Sequential(  # a hidden layer wider than the kernels' 256
        torch.nn.Linear(20, 300), torch.nn.ReLU(), torch.nn.Linear(300, 7 * scene.n_offsets)))
    assert "300" in unfusable_reason(dataclasses.replace(scene, mlps=wide))
    assert "progressive" in unfusable_reason(dataclasses.replace(scene, lod_rounding="progressive"))
    not_seq = dataclasses.replace(scene.mlps, opacity=torch.nn.Linear(20, 8))
    with pytest.raises(GscacheError, match="opacity_mlp: .*Sequential"):
        packed_mlps(not_seq, torch.device("cpu"))


def test_unfusable_mlps_fall_back_to_the_reference_with_a_warning():
    scene = structured_demo(seed=0, spacing=0.5)
    gelu = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.GELU(), torch.nn.Linear(32, 24),
                               torch.nn.Sigmoid()).eval()
    odd = dataclasses.replace(scene, mlps=dataclasses.replace(scene.mlps, color=gelu))
    rig = StereoRig.symmetric(look_at((0.0, -2.5, -5.5), (0.0, -0.5, 0.5)), 32, 32, fov_y_deg=80)
    with pytest.warns(UserWarning, match="GELU.*reference"):
        frame = Renderer(odd, RenderConfig(backend="cpu")).render(rig)
    reference = Renderer(odd, RenderConfig(backend="cpu", derive=DeriveConfig(fused=False))).render(rig)
    assert torch.equal(frame.rgb, reference.rgb)
