"""Records built directly in Python, around the readers: one rule for quaternions of any length on
every construction path and backend, MLP widths checked where every StructuredScene is built and
again at the fused kernels' boundary, and frames refused by each backend's memory per
intersection, before anything is allocated."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gscache import GscacheError, Renderer, RenderConfig, StereoRig
from gscache.camera import look_at
from gscache.config import BinConfig, CacheConfig, DeriveConfig
from gscache.errors import GscacheWarning
from gscache.scene.record import Scene
from gscache.scene.structured import AnchorMLPs
from gscache.scenes import structured_demo
from tests._backends import device_of, params
from tests._helpers import random_scene, rig
from tests.conftest import data_file

ALL = params("torch", "cpu", "cuda-sim", "cuda", "gsplat")
FIELDS = ("means", "quats", "scales", "opacities", "sh")
STRUCTURED_RIG = StereoRig.symmetric(look_at((0.0, -2.5, -5.5), (0.0, -0.5, 0.5)), 32, 32, fov_y_deg=80)


def _fields(scene: Scene, **changed) -> dict:
    return {**{n: getattr(scene, n) for n in FIELDS}, **changed}


# ---- quaternions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ALL)
def test_non_unit_quaternions_are_normalised_on_every_construction_path_and_backend(backend):
    """The constructor, ``edited`` and ``dataclasses.replace`` all normalise with a warning that
    names the field; every backend then draws the unit scene's Gaussians (same intersections,
    same image up to the rounding of the normalisation)."""
    unit = random_scene(80, seed=3, scale=(0.05, 0.15))
    q = unit.quats * torch.linspace(1e-3, 1e3, unit.count)[:, None]
    with pytest.warns(GscacheWarning, match=r"field 'quats': 80 of 80 rotations are not unit quaternions"):
        built = Scene(**_fields(unit, quats=q))
    with pytest.warns(GscacheWarning, match="field 'quats'"):
        edited = unit.edited(quats=q * 7.0)
    with pytest.warns(GscacheWarning, match="field 'quats'"):
        replaced = dataclasses.replace(unit, quats=q / 9.0)
    for scene in (built, edited, replaced):
        torch.testing.assert_close(scene.quats, unit.quats, rtol=0, atol=1e-6)
    cfg = RenderConfig(backend=backend, device=str(device_of(backend)))
    size = 24 if backend == "cuda-sim" else 96  # the SIMT emulation is slow
    want = Renderer(unit, cfg).render(rig(size, size))
    for scene in (built, edited):
        got = Renderer(scene, cfg).render(rig(size, size))
        assert got.counters.n_intersections == want.counters.n_intersections
        torch.testing.assert_close(got.rgb, want.rgb, rtol=0, atol=1e-4)


def test_unit_quaternions_are_kept_bit_for_bit():
    unit = random_scene(50, seed=4)
    assert Scene(**_fields(unit)).quats is unit.quats  # nothing off: the same tensor, no copy
    q = unit.quats.clone()
    q[7] *= 3.0
    with pytest.warns(GscacheWarning, match="1 of 50 rotations"):
        s = Scene(**_fields(unit, quats=q))
    rows = torch.arange(50) != 7
    assert torch.equal(s.quats[rows], unit.quats[rows])  # only the row that was off changes


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("value,message", [(0.0, "a zero quaternion"), (float("nan"), "'quats' has 4 NaN")])
def test_quaternions_without_a_direction_are_refused_by_name(backend, value, message):
    unit = random_scene(10, seed=5)
    q = unit.quats.clone()
    q[2] = value
    scene = Scene(**_fields(unit, quats=q))  # no warning: the rule leaves these to check_values
    with pytest.raises(GscacheError, match=message):
        Renderer(scene, RenderConfig(backend=backend, device=str(device_of(backend))))


def test_the_inflated_plant_frame_of_the_issue_renders_as_the_plant():
    """plant.splat with every quaternion scaled by 1000 gave 58M tile intersections and a fully
    covered 256x256 frame on the cpu backend; now it is the plant's own frame."""
    from gscache import load_scene

    plant = load_scene(data_file("plant.splat"))
    with pytest.warns(GscacheWarning, match="field 'quats'"):
        inflated = Scene(**_fields(plant, quats=plant.quats * 1000.0))
    lo, hi = plant.bounds(0.01)
    centre = (lo + hi) / 2
    eye = centre - torch.tensor([0.0, 0.0, 2.5 * float((hi - lo).norm())])
    view = StereoRig.symmetric(look_at(tuple(eye.tolist()), tuple(centre.tolist())), 256, 256)
    cfg = RenderConfig(backend="cpu")
    want, got = Renderer(plant, cfg).render(view), Renderer(inflated, cfg).render(view)
    assert got.counters.n_intersections == want.counters.n_intersections < 5_000_000
    torch.testing.assert_close(got.rgb, want.rgb, rtol=0, atol=1e-4)


def test_anchor_rotations_follow_the_same_rule():
    scene = structured_demo(seed=0, spacing=0.5)
    quats = torch.randn(scene.count, 4, generator=torch.Generator().manual_seed(0)) * 50.0
    with pytest.warns(GscacheWarning, match="field 'anchor_quats'"):
        s = dataclasses.replace(scene, anchor_quats=quats)
    torch.testing.assert_close(s.anchor_quats.norm(dim=1), torch.ones(scene.count))


# ---- structured scenes: MLP widths -----------------------------------------------------------------

def _demo():
    return structured_demo(seed=0, spacing=0.5)


def _mlps(scene, **changed) -> AnchorMLPs:
    return dataclasses.replace(scene.mlps, **changed)


def _linear(n_in: int, n_out: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n_in, n_out), torch.nn.Sigmoid()).eval()


BAD_STRUCTURED = {
    "cov MLP in the colour MLP's place": (lambda s: dataclasses.replace(s, mlps=_mlps(s, color=s.mlps.cov)),
                                          r"mlps\.color \(color_mlp\.pt\): output width \(56,\), expected 24"),
    "colour MLP in the cov MLP's place": (lambda s: dataclasses.replace(s, mlps=_mlps(s, cov=s.mlps.color)),
                                          r"mlps\.cov \(cov_mlp\.pt\): output width \(24,\), expected 56"),
    "opacity MLP one output short": (lambda s: dataclasses.replace(s, mlps=_mlps(s, opacity=_linear(20, 7))),
                                     r"mlps\.opacity .*output width \(7,\), expected 8: n_offsets = 8"),
    "input width without the distance": (lambda s: dataclasses.replace(s, mlps=_mlps(s, opacity=_linear(19, 8))),
                                         r"mlps\.opacity .*input width 19, expected 20 \(features 16 \+ view "
                                         r"direction 3 \+ distance 1\)"),
    "level input announced, not taken": (lambda s: dataclasses.replace(s, mlps=_mlps(s, add_level=True)),
                                         r"input width 20, expected 21 .*\+ level 1"),
    "feature bank of the wrong width": (
        lambda s: dataclasses.replace(s, mlps=_mlps(s, feature_bank=_linear(3, 3), bank_dist=True)),
        r"mlps\.feature_bank \(feature_bank_mlp\.pt\): input width 3, expected 4 \(view direction 3 \+ distance 1\)"),
    "feature bank giving 4 weights": (
        lambda s: dataclasses.replace(s, mlps=_mlps(s, feature_bank=_linear(4, 4), bank_dist=True)),
        r"mlps\.feature_bank .*output width \(4,\), expected 3: 3 mixing weights"),
    "not an MLP": (lambda s: dataclasses.replace(s, mlps=_mlps(s, color=torch.nn.Identity())),
                   r"mlps\.color .*no 2D weight"),
    "offsets of two components": (lambda s: dataclasses.replace(s, offsets=s.offsets[..., :2].contiguous()),
                                  r"\.offsets: axis 2 expected 3, got 2"),
    "integer levels": (lambda s: dataclasses.replace(s, levels=s.levels.long()), r"\.levels: expected dtype torch.float32"),
    "features of another anchor count": (lambda s: dataclasses.replace(s, features=s.features[1:].contiguous()),
                                         r"\.features: axis 0 is A="),
    "fork 1": (lambda s: dataclasses.replace(s, fork=1), r"fork 1; expected an integer >= 2"),
}


@pytest.mark.parametrize("case", list(BAD_STRUCTURED))
def test_directly_built_structured_scenes_are_checked_like_loaded_ones(case):
    """Every construction path (constructor, replace) refuses what the loader refuses, by name,
    before any backend sees the scene."""
    make, message = BAD_STRUCTURED[case]
    with pytest.raises(GscacheError, match=message):
        make(_demo())


@pytest.mark.parametrize("backend", ALL)
def test_mlps_changed_in_place_after_building_never_reach_a_kernel(backend):
    """A module swapped inside the (mutable) Sequential after the scene was built: the fused
    kernels' boundary check refuses it before any launch, and the reference derivation names the
    MLP; both every time (a kernel reading past its weights would give a different wrong image
    from run to run)."""
    scene = _demo()
    colour = scene.mlps.color
    last = max(i for i, m in enumerate(colour) if isinstance(m, torch.nn.Linear))
    colour[last] = torch.nn.Linear(colour[last].in_features, 7 * scene.n_offsets)  # the cov MLP's width
    for fused in (True, False):
        cfg = RenderConfig(backend=backend, device=str(device_of(backend)), derive=DeriveConfig(fused=fused),
                           cache=CacheConfig(depth=1))
        for _ in range(2):
            with pytest.raises(GscacheError, match=r"mlps\.color"):
                Renderer(scene, cfg).render(STRUCTURED_RIG)


# ---- memory budgets ---------------------------------------------------------------------------------

def _dense_scene():
    return random_scene(2000, seed=1, scale=(0.3, 0.6))  # large Gaussians: many tiles each


@pytest.mark.parametrize("backend", ALL)
def test_a_frame_over_the_memory_budget_is_refused_with_the_backends_own_figure(backend):
    from gscache import backends

    per = backends.get(backend, device_of(backend).type).bytes_per_intersection
    cfg = RenderConfig(backend=backend, device=str(device_of(backend)), bin=BinConfig(memory_budget_bytes=per * 1000))
    with pytest.raises(GscacheError, match=rf"tile intersections, about .* GiB in the {backend} backend \({per} bytes "
                                           r"each\), over BinConfig\.memory_budget_bytes = "):
        Renderer(_dense_scene(), cfg).render(rig(48, 48))
    roomy = dataclasses.replace(cfg, bin=BinConfig(memory_budget_bytes=per * 1_000_000))
    assert Renderer(_dense_scene(), roomy).render(rig(48, 48)).counters.n_intersections > 1000


@pytest.mark.parametrize("backend", ALL)
def test_a_frame_over_the_free_memory_is_refused_before_allocating(backend, monkeypatch):
    """With no budget of its own, the device's free memory decides (here made 64 KiB)."""
    from gscache.stages import bin as bin_stage

    monkeypatch.setattr(bin_stage, "available_bytes", lambda device: 64 << 10)
    cfg = RenderConfig(backend=backend, device=str(device_of(backend)))
    with pytest.raises(GscacheError, match=rf"in the {backend} backend .* but {device_of(backend).type}.* has 0\.00 GiB "
                                           r"free: lower the resolution"):
        Renderer(_dense_scene(), cfg).render(rig(48, 48))


def test_backends_state_what_an_intersection_costs():
    """The figures measured with scripts/isect_memory.py (README): the cpu kernels hold the keys
    and ids alone, the reference several int64 temporaries."""
    from gscache import backends

    assert backends.get("cpu").bytes_per_intersection == 12
    assert backends.get("torch").bytes_per_intersection == 100


def test_no_frame_may_overflow_the_int32_tile_ranges_whatever_memory_it_has():
    from gscache.stages.bin import check_intersections

    roomy = BinConfig(memory_budget_bytes=1 << 62)
    with pytest.raises(GscacheError, match="2,147,483,648 tile intersections, more than the 2,147,483,647"):
        check_intersections(2**31, roomy, 0, "cpu", torch.device("cpu"))
    check_intersections(2**31 - 1, roomy, 0, "cpu", torch.device("cpu"))  # the largest count that fits
