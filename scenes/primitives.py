"""Surface samplers that turn simple shapes into flat, oriented Gaussians (numpy, vectorised).

Every sampler returns a :class:`Parts` of N Gaussians lying on the surface: the two in-plane
scales equal the sample spacing times ``OVERLAP`` and the normal scale is a tenth of that, with
the rotation taking the local z axis to the surface normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OVERLAP = 0.75
THICKNESS = 0.1


@dataclass
class Parts:
    """Activated Gaussians under construction (numpy)."""

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] (w, x, y, z)
    scales: np.ndarray  # [N, 3]
    rgb: np.ndarray  # [N, 3] in [0, 1]
    opacities: np.ndarray  # [N]

    @staticmethod
    def concat(parts: list["Parts"]) -> "Parts":
        return Parts(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("means", "quats", "scales", "rgb", "opacities")))

    def __len__(self) -> int:
        return len(self.means)

    def to_scene(self, sh: np.ndarray, source: str):
        """The finished Scene, with SH coefficients ``sh`` [N, K, 3]."""
        from gscache.scene.record import make_scene

        return make_scene(self.means, self.quats, self.scales, self.opacities, sh, source=source)


def quats_z_to(normals: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) rotating +z onto each unit normal, [N, 3] -> [N, 4]."""
    z = np.array([0.0, 0.0, 1.0])
    d = normals @ z
    axis = np.cross(np.broadcast_to(z, normals.shape), normals)
    q = np.concatenate([(1.0 + d)[:, None], axis], axis=1)
    opposite = d < -1 + 1e-9  # normal == -z: half turn about x
    q[opposite] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _surface(points: np.ndarray, normals: np.ndarray, spacing: float, rgb: np.ndarray, opacity: float,
             rng: np.random.Generator) -> Parts:
    n = len(points)
    jitter = rng.uniform(0.85, 1.15, (n, 1))
    s = spacing * OVERLAP * jitter
    scales = np.concatenate([s, s, s * THICKNESS], axis=1)
    return Parts(points, quats_z_to(normals), scales, np.clip(rgb, 0, 1), np.full(n, opacity))


def plane(origin, u, v, spacing: float, color_fn, rng, opacity: float = 0.95) -> Parts:
    """Rectangle origin + a*u + b*v for a, b in [0, 1], normal u x v."""
    origin, u, v = (np.asarray(x, dtype=np.float64) for x in (origin, u, v))
    na = max(1, int(np.linalg.norm(u) / spacing))
    nb = max(1, int(np.linalg.norm(v) / spacing))
    a, b = np.meshgrid((np.arange(na) + 0.5) / na, (np.arange(nb) + 0.5) / nb, indexing="ij")
    a, b = a.ravel(), b.ravel()
    pts = origin + a[:, None] * u + b[:, None] * v
    n = np.cross(u, v)
    n = np.broadcast_to(n / np.linalg.norm(n), pts.shape).copy()
    return _surface(pts, n, spacing, color_fn(pts, a, b), opacity, rng)


def box(lo, hi, spacing: float, color_fn, rng, opacity: float = 0.95, bottom: bool = False) -> Parts:
    """The faces of an axis-aligned box (the bottom face, at the larger y, only if asked)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    dx, dy, dz = np.diag(hi - lo)
    # (origin, edge, edge) of the faces at x = lo, x = hi, y = lo (the top: y points down),
    # z = lo and z = hi.
    faces = [(lo, dz, dy), (lo + dx, dy, dz), (lo, dx, dz), (lo, dy, dx), (lo + dz, dx, dy)]
    if bottom:
        faces.append((lo + dy, dz, dx))
    return Parts.concat([plane(o, u, v, spacing, color_fn, rng, opacity) for o, u, v in faces])


def sphere(center, radius: float, spacing: float, color_fn, rng, opacity: float = 0.97) -> Parts:
    """Fibonacci-lattice samples on a sphere."""
    n = max(8, int(4 * np.pi * radius**2 / spacing**2))
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    normals = np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], axis=1)
    pts = np.asarray(center, float) + radius * normals
    return _surface(pts, normals, spacing, color_fn(pts, normals, None), opacity, rng)


def cylinder(base, radius: float, height: float, spacing: float, color_fn, rng, opacity: float = 0.97) -> Parts:
    """Side of a vertical cylinder standing on ``base`` (growing towards -y)."""
    n_around = max(6, int(2 * np.pi * radius / spacing))
    n_up = max(1, int(height / spacing))
    th, h = np.meshgrid(2 * np.pi * np.arange(n_around) / n_around, (np.arange(n_up) + 0.5) / n_up * height, indexing="ij")
    th, h = th.ravel(), h.ravel()
    normals = np.stack([np.cos(th), np.zeros_like(th), np.sin(th)], axis=1)
    pts = np.asarray(base, float) + radius * normals - h[:, None] * np.array([0.0, 1.0, 0.0])
    return _surface(pts, normals, spacing, color_fn(pts, th, h), opacity, rng)


def torus(center, major: float, minor: float, spacing: float, color_fn, rng, opacity: float = 0.97) -> Parts:
    """A torus lying in a vertical plane (its axis along z)."""
    nu = max(8, int(2 * np.pi * major / spacing))
    nv = max(6, int(2 * np.pi * minor / spacing))
    u, v = np.meshgrid(2 * np.pi * np.arange(nu) / nu, 2 * np.pi * np.arange(nv) / nv, indexing="ij")
    u, v = u.ravel(), v.ravel()
    ring = np.stack([np.cos(u), np.sin(u), np.zeros_like(u)], axis=1)
    normals = np.cos(v)[:, None] * ring + np.sin(v)[:, None] * np.array([0.0, 0.0, 1.0])
    pts = np.asarray(center, float) + major * ring + minor * normals
    return _surface(pts, normals, spacing, color_fn(pts, u, v), opacity, rng)


def solid(rgb) -> callable:
    """A colour function that paints everything ``rgb``."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return lambda pts, *_: np.broadcast_to(rgb, pts.shape).copy()
