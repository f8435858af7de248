"""Records built directly in Python with seeded random damage (the path around the readers, which
test_fuzz_readers.py covers): on every backend, building and rendering either works or raises
GscacheError, never anything else; what renders is finite and draws no more than the repaired
scene (a non-unit quaternion never inflates a Gaussian)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from gscache import GscacheError, Renderer, RenderConfig, StereoRig
from gscache.camera import look_at
from gscache.config import CacheConfig
from gscache.scene.record import Scene
from gscache.scenes import structured_demo
from tests._backends import device_of, params
from tests._helpers import random_scene, rig

ALL = params("torch", "cpu", "cuda-sim", "cuda", "gsplat")
FIELDS = ("means", "quats", "scales", "opacities", "sh")


def _cases(backend: str) -> int:
    return 6 if backend == "cuda-sim" else 40  # the SIMT emulation is slow


def _damaged_scene(base: Scene, rng: np.random.Generator) -> dict:
    """The fields of ``base`` with one or two kinds of damage."""
    f = {n: getattr(base, n).clone() for n in FIELDS}
    n = base.count
    for kind in sorted(rng.choice(7, size=int(rng.integers(1, 3)), replace=False)):  # value damage before shapes
        rows = torch.from_numpy(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
        if kind == 0:  # quaternions of any length, 1e-30 to 1e30
            f["quats"][rows] *= torch.from_numpy(10.0 ** rng.uniform(-30, 30, size=(len(rows), 1))).float()
        elif kind == 1:
            f["quats"][rows] = 0.0
        elif kind == 2:
            name = FIELDS[int(rng.integers(len(FIELDS)))]
            f[name].view(n, -1)[rows, 0] = float(rng.choice([np.nan, np.inf, -np.inf]))
        elif kind == 3:
            f["scales"][rows] = float(rng.choice([0.0, -0.1, 1e30]))
        elif kind == 4:
            f["opacities"][rows] = float(rng.choice([-0.5, 1.5]))
        elif kind == 5:  # a wrong shape or dtype
            name = FIELDS[int(rng.integers(len(FIELDS)))]
            f[name] = f[name][:-1] if rng.random() < 0.5 else f[name].double()
        else:  # an SH count that is no degree
            f["sh"] = torch.zeros(n, int(rng.choice([2, 5, 10])), 3)
    return f


def _render_or_refuse(make, cfg: RenderConfig, rig: StereoRig, outcomes: dict):
    """The frame of the scene ``make()`` builds, or None where building or rendering raised
    GscacheError (any other exception fails the test); counts both outcomes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the normalisation's warning is tested elsewhere
            frame = Renderer(make(), cfg).render(rig)
    except GscacheError:
        outcomes["refused"] += 1
        return None
    outcomes["rendered"] += 1
    assert torch.isfinite(frame.rgb).all()
    return frame


@pytest.mark.parametrize("backend", ALL)
def test_damaged_scenes_render_or_raise_gscache_error(backend):
    rng = np.random.default_rng(11)
    base = random_scene(30, seed=7, scale=(0.05, 0.2))
    view = rig(24, 16)
    cfg = RenderConfig(backend=backend, device=str(device_of(backend)))
    outcomes = {"rendered": 0, "refused": 0}
    for _ in range(_cases(backend)):
        fields = _damaged_scene(base, rng)
        frame = _render_or_refuse(lambda: Scene(**fields), cfg, view, outcomes)
        # Rendered with its scales intact, a scene draws the tiles of the base scene's unit
        # quaternions, however long its own were (no inflated Gaussian).
        if frame is not None and fields["quats"].shape == base.quats.shape and torch.equal(fields["scales"], base.scales):
            want = Renderer(Scene(**{**fields, "quats": base.quats}), cfg).render(view).counters.n_intersections
            assert frame.counters.n_intersections == want
    assert outcomes["refused"] and outcomes["rendered"], outcomes


def _damaged_mlps(scene, rng: np.random.Generator):
    m = scene.mlps
    kind = int(rng.integers(5))
    if kind == 0:  # two MLPs swapped
        a, b = rng.choice(["opacity", "cov", "color"], size=2, replace=False)
        return dataclasses.replace(scene, mlps=dataclasses.replace(m, **{a: getattr(m, b), b: getattr(m, a)}))
    if kind == 1:  # an MLP of random widths
        name = str(rng.choice(["opacity", "cov", "color"]))
        n_in, n_out = int(rng.integers(15, 23)), int(rng.integers(1, 70))
        mlp = torch.nn.Sequential(torch.nn.Linear(n_in, n_out), torch.nn.Tanh()).eval()
        return dataclasses.replace(scene, mlps=dataclasses.replace(m, **{name: mlp}))
    if kind == 2:  # an input flag flipped
        flag = str(rng.choice(["opacity_dist", "cov_dist", "color_dist", "add_level"]))
        return dataclasses.replace(scene, mlps=dataclasses.replace(m, **{flag: not getattr(m, flag)}))
    if kind == 3:  # another number of offsets
        k = int(rng.integers(1, 12))
        return dataclasses.replace(scene, offsets=torch.zeros(scene.count, k, 3))
    return dataclasses.replace(scene, features=torch.zeros(scene.count, int(rng.integers(1, 40))))


@pytest.mark.parametrize("backend", ALL)
def test_damaged_structured_scenes_render_or_raise_gscache_error(backend):
    rng = np.random.default_rng(12)
    base = structured_demo(seed=0, spacing=0.5)
    rig = StereoRig.symmetric(look_at((0.0, -2.5, -5.5), (0.0, -0.5, 0.5)), 16, 16, fov_y_deg=80)
    cfg = RenderConfig(backend=backend, device=str(device_of(backend)), cache=CacheConfig(depth=1))
    outcomes = {"rendered": 0, "refused": 0}
    for _ in range(_cases(backend)):
        _render_or_refuse(lambda: _damaged_mlps(base, rng), cfg, rig, outcomes)
    assert outcomes["refused"], outcomes
