"""Synthetic scenes and cameras for tests (seeded)."""

from __future__ import annotations

import math

import torch

from gscache.camera import Camera, Intrinsics, StereoRig, look_at
from gscache.scene.record import Scene, make_scene


def random_scene(n: int, seed: int = 0, sh_degree: int = 1, spread: float = 1.0, depth: float = 3.0,
                 scale: tuple[float, float] = (0.02, 0.2)) -> Scene:
    """n random anisotropic Gaussians in a box in front of a camera at the origin looking +z."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * 2 * spread
    means[:, 2] += depth
    quats = torch.randn(n, 4, generator=g)
    lo, hi = math.log(scale[0]), math.log(scale[1])
    scales = torch.exp(lo + (hi - lo) * torch.rand(n, 3, generator=g))
    opac = 0.2 + 0.8 * torch.rand(n, generator=g)
    sh = 0.5 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g)
    return make_scene(means, quats, scales, opac, sh, source=f"random(n={n}, seed={seed})")


def camera(width: int = 64, height: int = 48, fov_y_deg: float = 60.0, eye=(0.0, 0.0, 0.0), target=(0.0, 0.0, 3.0)) -> Camera:
    return Camera.from_pose(look_at(eye, target), Intrinsics.from_fov(fov_y_deg, width, height))


def rig(width: int = 64, height: int = 48, ipd_m: float = 0.063, fov_y_deg: float = 60.0, **kw) -> StereoRig:
    return StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), width, height, fov_y_deg, ipd_m, **kw)
