"""The temporal cache changes speed, never pixels: a property test over random scenes (with
content in front of, beside and behind the eyes) and random small head motions, where every
cache hit must equal a fresh render. Colours are SH degree 0 (view independent), so the reuse is
exact and any difference is a stale culled set. Seeded and bounded in time."""

from __future__ import annotations

import math

import torch

from gscache import CacheConfig, Renderer, RenderConfig, StereoRig
from gscache.camera import look_at
from gscache.scene.record import make_scene
from tests._helpers import random_scene


def _pose(position, yaw_deg: float) -> torch.Tensor:
    a = math.radians(yaw_deg)
    target = (position[0] + math.sin(a), position[1], position[2] + math.cos(a))
    return look_at(tuple(position), target)


def _scene_all_around(n: int, seed: int):
    """Gaussians in a shell around the origin (0.4 to 3.4 m away, every direction)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    r = 0.4 + 3.0 * torch.rand(n, 1, generator=g) ** 2
    return make_scene(d * r, torch.randn(n, 4, generator=g), 0.005 + 0.05 * torch.rand(n, 3, generator=g),
                      0.3 + 0.7 * torch.rand(n, generator=g), torch.randn(n, 1, 3, generator=g) * 0.8,
                      source=f"shell(n={n}, seed={seed})")


def _check_hits(scene, poses, size=(48, 32), **cache) -> tuple[int, int]:
    cfg = RenderConfig(backend="cpu", cache=CacheConfig(depth=8, **cache))
    cached, fresh = Renderer(scene, cfg), Renderer(scene, RenderConfig(backend="cpu"))
    hits = 0
    for pose in poses:
        rig = StereoRig.symmetric(pose, size[0], size[1], fov_y_deg=80)
        a, b = cached.render(rig), fresh.render(rig)
        if a.cache.hit:
            hits += 1
            diff = float((a.rgb - b.rgb).abs().max())
            assert diff <= 1e-6, f"stale hit: max pixel error {diff:.3g} at age {a.cache.age}"
    return hits, len(poses)


def test_a_step_back_onto_content_behind_is_never_a_hit():
    """A wall 100 m ahead and an object 1 m behind the eyes: stepping back 1.5 m brings it in."""
    wall = random_scene(400, seed=1, spread=30.0, depth=100.0, scale=(0.5, 2.0))
    behind = random_scene(200, seed=2, spread=0.2, depth=-1.0, scale=(0.05, 0.1))
    scene = make_scene(torch.cat([wall.means, behind.means]), torch.cat([wall.quats, behind.quats]),
                       torch.cat([wall.scales, behind.scales]), torch.cat([wall.opacities, behind.opacities]),
                       torch.cat([wall.sh[:, :1], behind.sh[:, :1]]))
    poses = [_pose((0.0, 0.0, -0.3 * i), 0.0) for i in range(7)]  # 1.8 m back in 30 cm steps
    _check_hits(scene, poses)


def test_random_small_motions_never_serve_a_stale_frame():
    g = torch.Generator().manual_seed(7)
    hits = frames = 0
    for trial in range(12):
        scene = _scene_all_around(600, seed=trial)
        pos, yaw, poses = torch.zeros(3), 0.0, []
        for _ in range(8):  # a head that drifts a few mm and turns a fraction of a degree per frame
            pos = pos + 0.004 * torch.randn(3, generator=g)
            yaw += float(0.3 * torch.randn(1, generator=g))
            poses.append(_pose(pos.tolist(), yaw))
        h, n = _check_hits(scene, poses)
        hits, frames = hits + h, frames + n
    assert hits > 0  # the cache did serve frames: the property was exercised
