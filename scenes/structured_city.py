"""A city-scale structured (Octree-GS style) scene: streets, sidewalks, trees and buildings with
windows, as anchors on several levels of detail with small MLPs of chosen weights, written in the
real checkpoint format by :func:`write_structured_city`.

Layout: the block grid of :mod:`scenes.city` (30 m blocks on a 40 m pitch, four buildings of
9-60 m per block with windows, a palette of real facade colours, darker roofs), streets with
centre lines and zebra crossings, sidewalks, and trees along the kerbs. Level L
samples every surface at ``finest_spacing_m * 2**(levels - 1 - L)``, as Octree-GS's octree levels
do; coarse anchors carry the mean colour of the area they cover. Each anchor has k = 10 Gaussians
in its surface plane and a 32-wide feature (Octree-GS's defaults):

    f[0:3]  logits of the surface colour      f[3]    glass (1.5 on windows, else 0)
    f[4]    density: which Gaussians the opacity MLP keeps
    f[5:9]  the surface frame as a quaternion (z along the normal)
    f[9:9+levels]  one-hot level              the rest: small noise

The MLPs (feature and view direction in, 35 wide, the opacity MLP also the distance; hidden 32,
ReLU) decode these: colour = sigmoid(logits + a glint on glass seen from a few directions + a
weak directional sheen); opacity = tanh(bias_j + c_j * density + weak view terms - a fade of
coarse anchors where the next finer level is drawn), so about a fifth of the Gaussians are pruned
and a coarse level cross-fades into the finer one between the finer level's range and half of it
(as a trained Octree-GS model learns to; without it coarse Gaussians of metres would blur the
near field); covariance = flat discs in the surface frame. Deterministic per seed.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from gscache.errors import GscacheError
from gscache.scene.checkpoint import write_structured
from gscache.scene.structured import AnchorMLPs, StructuredScene

from .city import _facade, _layout
from .primitives import Parts, box, cylinder, plane, solid, sphere

FEATURES = 32
OFFSETS = 10
HIDDEN = 32
N_IN = FEATURES + 3  # colour and covariance MLPs: feature and view direction
N_IN_OPACITY = N_IN + 1  # the opacity MLP also takes the distance (Octree-GS's add_opacity_dist)
LEVEL_FEATURE = 9  # f[9 + L] = 1 on the anchors of level L


def _normals(quats: np.ndarray) -> np.ndarray:
    """The rotated +z axis of each (w, x, y, z) quaternion, [N, 3]."""
    w, x, y, z = quats.T
    return np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], axis=1)


# Facade colours of real streets: sandstone, brick, concrete, white render, dark glass towers.
PALETTE = np.array([[0.78, 0.70, 0.55], [0.62, 0.30, 0.22], [0.55, 0.55, 0.53], [0.88, 0.86, 0.80],
                    [0.25, 0.32, 0.40], [0.70, 0.58, 0.45], [0.45, 0.42, 0.40]])


def _ground(half: float):
    """Streets (10 m, centred on multiples of 40 m from the city's edge): asphalt with a dashed
    white centre line and zebra crossings, kerb-side sidewalks, pavement inside the blocks."""
    def paint(pts, *_):
        u, v = np.mod(pts[:, 0] + half + 20.0, 40.0) - 20.0, np.mod(pts[:, 2] + half + 20.0, 40.0) - 20.0
        du, dv = np.abs(u), np.abs(v)  # distance to the nearest street centre line, per axis
        col = np.tile([0.62, 0.60, 0.56], (len(pts), 1))  # pavement
        col[(du < 5.0) | (dv < 5.0)] = [0.70, 0.69, 0.66]  # sidewalks
        road_x, road_z = du < 3.5, dv < 3.5
        col[road_x | road_z] = [0.20, 0.20, 0.22]
        dash_x = road_x & (du < 0.12) & (np.mod(pts[:, 2], 6.0) < 3.0) & (dv > 5.0)
        dash_z = road_z & (dv < 0.12) & (np.mod(pts[:, 0], 6.0) < 3.0) & (du > 5.0)
        zebra = ((road_x & (dv > 5.0) & (dv < 8.0) & (np.mod(pts[:, 0], 1.0) < 0.5)) |
                 (road_z & (du > 5.0) & (du < 8.0) & (np.mod(pts[:, 2], 1.0) < 0.5)))
        col[dash_x | dash_z | zebra] = [0.92, 0.92, 0.88]
        return col
    return paint


def _tree_crown(pts, normals, _):
    return np.array([0.16, 0.42, 0.15]) * (0.65 + 0.35 * (normals @ [0.0, -1.0, 0.0]))[:, None]


def _surfaces(blocks: int, spacing: float, seed: int) -> list[tuple[Parts, float]]:
    """Every surface of the city sampled at ``spacing`` (with its glass strength)."""
    layout_rng = np.random.default_rng(seed)  # the same buildings at every level
    buildings = _layout(blocks, layout_rng)
    rng = np.random.default_rng(seed + 1)
    half = blocks * 20.0
    out = [(plane([-half, 0.0, -half], [2 * half, 0, 0], [0, 0, 2 * half], spacing, _ground(half), rng), 0.0)]
    for n, (lo, hi, _) in enumerate(buildings):
        colour = PALETTE[n * 7919 % len(PALETTE)] * layout_rng.uniform(0.9, 1.1)
        walls = box(lo, hi, spacing, _facade(colour, np.random.default_rng(int(abs(lo[0] * 7 + lo[2] * 13)))), rng)
        glass = (np.abs(walls.rgb - [0.12, 0.16, 0.22]).sum(1) < 1e-6) | (np.abs(walls.rgb - [0.95, 0.85, 0.55]).sum(1) < 1e-6)
        top = walls.means[:, 1] <= lo[1] + 1e-6  # the roof face
        walls.rgb[top] = 0.45 * np.asarray(colour)
        out.append((walls, 1.5 * glass.astype(np.float64)))
    for street in range(blocks + 1):  # trees along both kerbs of every street, every 10 m
        c = street * 40.0 - half
        for along in np.arange(-half + 10.0, half - 5.0, 10.0):
            if abs(np.mod(along + half + 20.0, 40.0) - 20.0) < 8.0:
                continue  # not on a crossing
            for side in (-4.3, 4.3):
                for x, z in ((c + side, along), (along, c + side)):
                    if abs(x) > half - 1 or abs(z) > half - 1:
                        continue
                    out.append((cylinder([x, 0.0, z], 0.2, 3.2, min(spacing, 0.4), solid([0.33, 0.23, 0.14]), rng), 0.0))
                    out.append((sphere([x, -4.4, z], 1.5, spacing, _tree_crown, rng), 0.0))
    return out


def _level_anchors(blocks: int, spacing: float, seed: int):
    """(positions, rgb, glass, quats) of one level's anchors, colours averaged over their patch."""
    parts = _surfaces(blocks, spacing, seed)
    means = np.concatenate([p.means for p, _ in parts])
    quats = np.concatenate([p.quats for p, _ in parts])
    rgb = np.concatenate([p.rgb for p, _ in parts])
    glass = np.concatenate([np.broadcast_to(g, len(p)) for p, g in parts])
    if spacing > 1.5:
        # A coarse anchor stands for its whole patch: its colour is the mean of a finer sampling
        # nearby (what a trained model would converge to).
        fine = _surfaces(blocks, spacing / 4, seed)
        f_means = np.concatenate([p.means for p, _ in fine])
        f_rgb = np.concatenate([p.rgb for p, _ in fine])
        cell = np.floor(f_means / spacing).astype(np.int64)
        key_f = (cell[:, 0] * 73856093) ^ (cell[:, 1] * 19349663) ^ (cell[:, 2] * 83492791)
        cell_a = np.floor(means / spacing).astype(np.int64)
        key_a = (cell_a[:, 0] * 73856093) ^ (cell_a[:, 1] * 19349663) ^ (cell_a[:, 2] * 83492791)
        uniq, inverse = np.unique(key_f, return_inverse=True)
        sums = np.zeros((len(uniq), 3))
        np.add.at(sums, inverse, f_rgb)
        counts = np.bincount(inverse, minlength=len(uniq))[:, None]
        at = np.searchsorted(uniq, key_a)
        found = (at < len(uniq)) & (uniq[np.minimum(at, len(uniq) - 1)] == key_a)
        rgb = rgb.copy()
        rgb[found] = sums[at[found]] / counts[at[found]]
    return means, rgb, glass, quats


def _tangents(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.where(np.abs(normals[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    return t1, np.cross(normals, t1)


def _linear(n_in: int, n_out: int) -> torch.nn.Linear:
    layer = torch.nn.Linear(n_in, n_out)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    return layer


def _mlps(gen: torch.Generator, levels: int, finest_range_m: float) -> AnchorMLPs:
    """The three MLPs with chosen weights (see the module docstring)."""
    k, d0 = OFFSETS, FEATURES  # d0: index of the view direction in the input
    with torch.no_grad():
        # Colour: hidden 0..5 carry +-logits, 6..13 glints on glass, 14..19 relu(+-dir), 20.. noise.
        c1, c2 = _linear(N_IN, HIDDEN), _linear(HIDDEN, 3 * k)
        for c in range(3):
            c1.weight[2 * c, c], c1.weight[2 * c + 1, c] = 1.0, -1.0
            for j in range(k):
                c2.weight[3 * j + c, 2 * c], c2.weight[3 * j + c, 2 * c + 1] = 1.0, -1.0
        glint_dirs = torch.nn.functional.normalize(torch.randn(8, 3, generator=gen), dim=1)
        c1.weight[6:14, d0:d0 + 3] = 4.0 * glint_dirs
        c1.weight[6:14, 3] = 1.0
        c1.bias[6:14] = -4.7  # only glass (f3 = 1.5) within ~35 degrees of a glint direction lights up
        c2.weight[:, 6:14] = 1.2
        for a in range(3):
            c1.weight[14 + 2 * a, d0 + a], c1.weight[15 + 2 * a, d0 + a] = 1.0, -1.0
        c2.weight[:, 14:20] = 0.15 * torch.randn(3 * k, 6, generator=gen)
        c1.weight[20:] = 0.1 * torch.randn(HIDDEN - 20, N_IN, generator=gen)
        c2.weight[:, 20:] = 0.05 * torch.randn(3 * k, HIDDEN - 20, generator=gen)
        color = torch.nn.Sequential(c1, torch.nn.ReLU(), c2, torch.nn.Sigmoid())

        # Opacity: hidden 0/1 = relu(+-density), 2..7 relu(+-dir), 8..8+levels-1 the fades, then noise.
        o1, o2 = _linear(N_IN_OPACITY, HIDDEN), _linear(HIDDEN, k)
        o1.weight[0, 4], o1.weight[1, 4] = 1.0, -1.0
        for a in range(3):
            o1.weight[2 + 2 * a, d0 + a], o1.weight[3 + 2 * a, d0 + a] = 1.0, -1.0
        gain = 0.8 * torch.randn(k, generator=gen)
        o2.weight[:, 0], o2.weight[:, 1] = gain, -gain
        o2.weight[:, 2:8] = 0.1 * torch.randn(k, 6, generator=gen)
        big = 2.0 * finest_range_m * 2 ** (levels - 2)  # > any reach: switches the unit off on other levels
        for level in range(levels - 1):
            reach = finest_range_m * 2 ** (levels - 2 - level)  # where level + 1 starts being drawn
            u = 8 + level  # relu(reach - dist) on level `level`, 0 elsewhere
            o1.weight[u, LEVEL_FEATURE + level] = big
            o1.weight[u, N_IN] = -1.0
            o1.bias[u] = reach - big
            o2.weight[:, u] = -6.0 / reach  # -1.5 at 3/4 of the reach, -3 (pruned) at half
        noise = 8 + levels - 1
        o1.weight[noise:, :N_IN] = 0.1 * torch.randn(HIDDEN - noise, N_IN, generator=gen)
        o2.weight[:, noise:] = 0.05 * torch.randn(k, HIDDEN - noise, generator=gen)
        o2.bias.copy_(0.5 + 1.1 * torch.rand(k, generator=gen))
        opacity = torch.nn.Sequential(o1, torch.nn.ReLU(), o2, torch.nn.Tanh())

        # Covariance: hidden 0..7 = relu(+-quaternion), 8.. noise; per Gaussian 3 scale logits
        # (wide in the plane, thin along the normal) and the frame quaternion, slightly perturbed.
        v1, v2 = _linear(N_IN, HIDDEN), _linear(HIDDEN, 7 * k)
        for q in range(4):
            v1.weight[2 * q, 5 + q], v1.weight[2 * q + 1, 5 + q] = 1.0, -1.0
            for j in range(k):
                v2.weight[7 * j + 3 + q, 2 * q], v2.weight[7 * j + 3 + q, 2 * q + 1] = 1.0, -1.0
        v1.weight[8:] = 0.1 * torch.randn(HIDDEN - 8, N_IN, generator=gen)
        v2.weight[:, 8:] = 0.05 * torch.randn(7 * k, HIDDEN - 8, generator=gen)
        v2.bias.copy_(torch.tensor([0.8, 0.8, -2.5, 0.0, 0.0, 0.0, 0.0]).repeat(k))
        cov = torch.nn.Sequential(v1, torch.nn.ReLU(), v2)
    return AnchorMLPs(opacity.eval(), cov.eval(), color.eval(), opacity_dist=True)


def structured_city(blocks: int = 6, levels: int = 4, finest_spacing_m: float = 1.0, finest_range_m: float = 40.0,
                    seed: int = 0) -> StructuredScene:
    """The city as a StructuredScene (about 380k anchors with the defaults).

    Args:
        blocks: the city is blocks x blocks blocks of 40 m.
        levels: levels of detail; level L samples the surfaces every
            finest_spacing_m * 2**(levels - 1 - L) metres.
        finest_spacing_m: anchor spacing of the finest level.
        finest_range_m: the finest level is used within this distance of the viewpoint, each
            coarser one within twice the distance of the next finer one (Octree-GS's
            standard_dist = finest_range_m * 2**(levels - 1.5)).
        seed: the layout, features and MLP weights.
    """
    if not 1 <= levels <= 8:
        raise GscacheError(f"levels: expected 1..8, got {levels}")
    if blocks < 1 or not finest_spacing_m > 0 or not finest_range_m > 0:
        raise GscacheError(f"blocks >= 1, finest_spacing_m > 0 and finest_range_m > 0 expected, got {blocks}, "
                           f"{finest_spacing_m}, {finest_range_m}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    cols: dict[str, list[np.ndarray]] = {n: [] for n in ("anchors", "offsets", "features", "scales", "levels")}
    for level in range(levels):
        spacing = finest_spacing_m * 2 ** (levels - 1 - level)
        means, rgb, glass, quats = _level_anchors(blocks, spacing, seed)
        A = len(means)
        feat = rng.normal(0.0, 0.3, (A, FEATURES))
        rgb = np.clip(rgb, 0.02, 0.98)
        feat[:, 0:3] = np.log(rgb / (1 - rgb))
        feat[:, 3] = glass
        feat[:, 4] = rng.normal(0.0, 1.0, A)
        feat[:, 5:9] = quats
        feat[:, LEVEL_FEATURE:LEVEL_FEATURE + levels] = 0.0
        feat[:, LEVEL_FEATURE + level] = 1.0
        t1, t2 = _tangents(_normals(quats))
        uv = rng.uniform(-1.0, 1.0, (A, OFFSETS, 2))
        offsets = uv[..., :1] * t1[:, None] + uv[..., 1:] * t2[:, None]  # in units of scales[0:3]
        scales = np.concatenate([np.full((A, 3), 0.5 * spacing), np.full((A, 3), 0.55 * spacing)], axis=1)
        for name, arr in (("anchors", means), ("offsets", offsets), ("features", feat), ("scales", scales),
                          ("levels", np.full(A, float(level)))):
            cols[name].append(arr.astype(np.float32))
    t = {n: torch.from_numpy(np.ascontiguousarray(np.concatenate(v))) for n, v in cols.items()}
    standard_dist = finest_range_m * 2 ** (levels - 1.5)
    return StructuredScene(t["anchors"], t["offsets"], t["features"], t["scales"], t["levels"],
                           torch.zeros(len(t["levels"])), _mlps(gen, levels, finest_range_m), voxel_size=finest_spacing_m * 2 ** (levels - 1),
                           standard_dist=standard_dist, fork=2, n_levels=levels,
                           source=f"structured_city(blocks={blocks}, levels={levels}, seed={seed})")


def write_structured_city(folder: str | os.PathLike, **kwargs) -> StructuredScene:
    """Generate the city (arguments of :func:`structured_city`) and write it as a checkpoint folder."""
    scene = structured_city(**kwargs)
    write_structured(scene, folder)
    return scene


__all__ = ["structured_city", "write_structured_city"]
