"""Large procedural city scenes (millions of Gaussians) for scale tests and benchmarks.

A square grid of city blocks separated by streets; every block holds a few buildings of random
footprint and height with lit and dark windows. Gaussians are flat discs on the surfaces, spaced
so that the total count is close to ``n_gaussians``. SH degree 1 with a weak sheen on the glass.
"""

from __future__ import annotations

import numpy as np

from gscache.scene.record import Scene
from gscache.sh import SH_C0

from .primitives import Parts, box, plane


def _facade(base_rgb, rng):
    def paint(pts, *_):
        col = np.tile(np.asarray(base_rgb), (len(pts), 1))
        u = np.mod(pts[:, 0] + pts[:, 2], 1.2)
        h = np.mod(-pts[:, 1], 3.0)
        window = (u > 0.3) & (u < 0.9) & (h > 0.8) & (h < 2.2)
        lit = rng.random(len(pts)) < 0.3
        col[window] = np.where(lit[window, None], [0.95, 0.85, 0.55], [0.12, 0.16, 0.22])
        return col
    return paint


def _asphalt(pts, *_):
    lane = (np.abs(np.mod(pts[:, 0], 40.0) - 20.0) < 0.15) | (np.abs(np.mod(pts[:, 2], 40.0) - 20.0) < 0.15)
    return np.where(lane[:, None], [0.9, 0.9, 0.85], [0.22, 0.22, 0.24])


def _layout(blocks: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Buildings as (lo, hi, colour) boxes; blocks are 30 m squares on a 40 m pitch."""
    out = []
    for bx in range(blocks):
        for bz in range(blocks):
            x0, z0 = bx * 40.0 - blocks * 20.0 + 5.0, bz * 40.0 - blocks * 20.0 + 5.0
            for qx in range(2):
                for qz in range(2):
                    w, d = rng.uniform(8, 13, 2)
                    h = rng.uniform(9, 60)
                    lo = np.array([x0 + qx * 15 + 1, -h, z0 + qz * 15 + 1])
                    hi = lo + np.array([w, h, d])
                    out.append((lo, hi, rng.uniform(0.35, 0.8, 3)))
    return out


def city_scene(n_gaussians: int = 2_000_000, blocks: int = 6, seed: int = 0) -> Scene:
    """A city of ``blocks`` x ``blocks`` blocks with about ``n_gaussians`` Gaussians."""
    rng = np.random.default_rng(seed)
    buildings = _layout(blocks, rng)
    ground = (blocks * 40.0) ** 2
    area = ground + sum(2 * ((hi - lo)[0] + (hi - lo)[2]) * (hi - lo)[1] + (hi - lo)[0] * (hi - lo)[2] for lo, hi, _ in buildings)
    spacing = float(np.sqrt(area / n_gaussians))
    half = blocks * 20.0
    parts = [plane([-half, 0.0, -half], [2 * half, 0, 0], [0, 0, 2 * half], spacing, _asphalt, rng)]
    parts += [box(lo, hi, spacing, _facade(col, rng), rng) for lo, hi, col in buildings]
    p = Parts.concat(parts)
    sh = np.zeros((len(p), 4, 3), dtype=np.float32)
    sh[:, 0, :] = (p.rgb - 0.5) / SH_C0
    sh[:, 1:, :] = 0.1 * rng.standard_normal((len(p), 3, 1)).astype(np.float32)
    return p.to_scene(sh, source=f"city(n={n_gaussians}, blocks={blocks}, seed={seed})")
