"""The embedded demo scene: a small town square that a person recognises at a glance.

A checkered plaza with a red-roofed house, a tree, a shiny blue ball, a golden ring on a stand,
a lamp post and a bench, about 40k Gaussians with SH degree 3. The ball, the ring and the
house's windows are view dependent (a specular lobe in SH bands 1-3), so stereo and head motion
show it. Deterministic: the same seed gives bit-identical tensors.
"""

from __future__ import annotations

import numpy as np

from gscache.scene.record import Scene
from gscache.sh import SH_C0, SH_C1, num_sh_coeffs

from .primitives import Parts, box, cylinder, plane, solid, sphere, torus

LIGHT_DIR = np.array([0.4, -0.8, -0.45]) / np.linalg.norm([0.4, -0.8, -0.45])  # towards the sun, y up is -y
SH_DEGREE = 3


def _checker(pts, a, b):
    cells = (np.floor(pts[:, 0] / 0.5) + np.floor(pts[:, 2] / 0.5)).astype(int) % 2
    light = np.array([0.82, 0.80, 0.74])
    dark = np.array([0.35, 0.36, 0.40])
    return np.where(cells[:, None] == 1, light, dark)


def _walls(pts, *_):
    # Cream walls with dark-blue windows on a 0.5 m grid.
    col = np.tile(np.array([0.93, 0.87, 0.72]), (len(pts), 1))
    wx = (np.mod(pts[:, 0] + pts[:, 2], 0.5) > 0.2) & (np.mod(pts[:, 0] + pts[:, 2], 0.5) < 0.4)
    wy = (np.mod(-pts[:, 1], 0.6) > 0.25) & (np.mod(-pts[:, 1], 0.6) < 0.5) & (-pts[:, 1] < 1.7)
    col[wx & wy] = [0.15, 0.25, 0.45]
    return col


def _tree_leaves(pts, normals, _):
    shade = 0.75 + 0.25 * (normals @ -np.array([0.0, 1.0, 0.0]))
    return np.array([0.18, 0.55, 0.2]) * shade[:, None]


def _stripes(pts, u, v):
    return np.where((np.floor(u * 6 / np.pi) % 2)[:, None] == 0, [0.95, 0.75, 0.15], [0.85, 0.55, 0.1])


def _parts(rng: np.random.Generator, spacing: float) -> tuple[list[Parts], list[float]]:
    """Every object and its specular strength (0 for matte)."""
    s = spacing
    objects = [
        (plane([-3.0, 0.0, -3.0], [6.0, 0, 0], [0, 0, 6.0], s * 1.4, _checker, rng), 0.0),
        (box([-2.6, -1.8, 0.6], [-0.8, 0.0, 2.4], s, _walls, rng), 0.25),
        # The roof: two slopes meeting at a ridge 0.9 m above the walls.
        (plane([-2.7, -1.8, 0.5], [2.0, 0, 0], [0, -0.9, 1.0], s, solid([0.7, 0.15, 0.1]), rng), 0.0),
        (plane([-2.7, -2.7, 1.5], [2.0, 0, 0], [0, 0.9, 1.0], s, solid([0.65, 0.12, 0.08]), rng), 0.0),
        (cylinder([1.6, 0.0, 1.6], 0.12, 1.2, s * 0.7, solid([0.4, 0.26, 0.13]), rng), 0.0),
        (sphere([1.6, -1.6, 1.6], 0.65, s, _tree_leaves, rng), 0.0),
        (sphere([0.4, -0.45, -0.6], 0.45, s * 0.8, solid([0.1, 0.3, 0.85]), rng), 0.9),
        (torus([-1.2, -1.05, -1.2], 0.45, 0.08, s * 0.6, _stripes, rng), 0.7),
        (cylinder([-1.2, 0.0, -1.2], 0.05, 0.52, s * 0.5, solid([0.3, 0.3, 0.32]), rng), 0.3),
        (cylinder([2.2, 0.0, -1.5], 0.05, 2.2, s * 0.5, solid([0.15, 0.15, 0.17]), rng), 0.3),
        (sphere([2.2, -2.3, -1.5], 0.15, s * 0.5, solid([1.0, 0.95, 0.7]), rng), 0.0),
        (box([0.2, -0.45, 1.4], [1.1, -0.4, 1.8], s * 0.6, solid([0.55, 0.35, 0.2]), rng), 0.0),
        (box([0.25, -0.4, 1.45], [0.3, 0.0, 1.75], s * 0.6, solid([0.2, 0.2, 0.2]), rng), 0.0),
        (box([1.0, -0.4, 1.45], [1.05, 0.0, 1.75], s * 0.6, solid([0.2, 0.2, 0.2]), rng), 0.0),
    ]
    return [o for o, _ in objects], [k for _, k in objects]


def _sh_coeffs(rgb: np.ndarray, specular: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DC from the base colour plus a lobe towards the light in band 1 and a little in bands 2-3."""
    n = len(rgb)
    sh = np.zeros((n, num_sh_coeffs(SH_DEGREE), 3), dtype=np.float32)
    sh[:, 0, :] = (rgb - 0.5) / SH_C0
    # colour += k * dot(view_dir, -L): brighter when looking against the light (a sheen).
    # Band-1 basis is (-C1*y, C1*z, -C1*x), so the coefficients are (k*Ly, -k*Lz, k*Lx) / C1.
    lobe = np.array([LIGHT_DIR[1], -LIGHT_DIR[2], LIGHT_DIR[0]]) / SH_C1
    sh[:, 1:4, :] = (0.35 * specular)[:, None, None] * lobe[None, :, None]
    sh[:, 4:, :] = (0.08 * specular)[:, None, None] * rng.standard_normal((n, num_sh_coeffs(SH_DEGREE) - 4, 3))
    return sh


def demo_scene(seed: int = 0, spacing: float = 0.035) -> Scene:
    """The demo town square (about 40k Gaussians at the default spacing; halve it for ~4x)."""
    rng = np.random.default_rng(seed)
    objects, spec = _parts(rng, spacing)
    parts = Parts.concat(objects)
    specular = np.concatenate([np.full(len(o), k) for o, k in zip(objects, spec)])
    sh = _sh_coeffs(parts.rgb, specular, rng)
    return parts.to_scene(sh, source=f"demo(seed={seed})")
