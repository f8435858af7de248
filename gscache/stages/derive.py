"""Derive: the Gaussians of a structured scene (Scaffold-GS / Octree-GS) for one viewpoint, as
the upstream renderers derive them (``set_anchor_mask``, ``prefilter_voxel`` and
``generate_neural_gaussians`` of city-super/Octree-GS and Scaffold-GS).

1. Level of detail (Octree-GS; Scaffold-GS has none): the distance of each anchor, shifted by
   (voxel_size / 2) / fork^level on every axis, to the viewpoint gives the continuous level
   log2(standard_dist / distance) / log2(fork) + extra_level; ``dist2level`` rounds it (round,
   floor, ceil) and clamps it to [0, n_levels - 1]; an anchor is used when its level <= that.
   "progressive" takes floor(clamp(level + 1, 0.9999, n_levels - 1 + 0.9999)) and fades the
   anchors of exactly that level in by the fractional part.
2. Anchor pre-filter: each selected anchor, as a Gaussian with its offset scales and rotation,
   must pass the 3DGS rasterizer's visibility test in at least one view: depth > 0.2, a 2D
   covariance (x/z and y/z clamped to 1.3 tan(fov/2), 0.3 added on the diagonal) with a
   non-zero determinant, and a 3-sigma square of ceil(3 sqrt(largest eigenvalue)) pixels that
   covers a 16x16 tile of the image. (``anchor_cull="reach"`` is the conservative alternative: a
   sphere that holds all of an anchor's Gaussians.)
3. Per anchor, its k Gaussians: MLP inputs are [feature, unit view direction (anchor -
   viewpoint), (distance), (level), (appearance embedding: colour only)], the feature first mixed
   by the feature bank where the model has one; opacity from the tanh MLP, non-positive ones
   dropped; colour from the sigmoid MLP; scale = anchor scale[3:6] * sigmoid(scale logits);
   rotation normalised; position = anchor + offset * anchor scale[0:3]. Colours become SH degree
   0, so the derived Gaussians flow through the ordinary pipeline unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import ViewBatch
from ..config import CullConfig, ProjectConfig
from ..errors import GscacheError
from ..records import Visible
from ..scene.record import Scene
from ..scene.structured import StructuredScene
from ..sh import SH_C0
from .cull import cull

PREFILTER_NEAR = 0.2  # the rasterizer's in_frustum depth
PREFILTER_TILE = 16  # its BLOCK_X / BLOCK_Y
LOW_PASS = 0.3  # added to the 2D covariance's diagonal
ANCHOR_CULLS = ("prefilter", "reach")


def lod_levels(scene: StructuredScene, position: Tensor, level_shift: float = 0.0) -> tuple[Tensor, Tensor | None]:
    """The level the viewpoint ``position`` [3] selects for each anchor, [A] int64, and for
    ``dist2level="progressive"`` the fade of each anchor [A] float32 (None otherwise: 1).
    ``level_shift``: levels taken off the continuous level before rounding (a coarser view:
    log_fork(1 / scale) for a view at ``scale`` times the resolution, as if seen 1 / scale times
    farther); 0 is upstream's selection."""
    A = scene.count
    top = scene.n_levels - 1
    if scene.standard_dist <= 0 or A == 0:
        return torch.full((A,), top, dtype=torch.int64, device=scene.device), None
    shift = (scene.voxel_size / 2.0) / torch.pow(float(scene.fork), scene.levels)  # [A], the same on x, y and z
    dist = ((scene.anchors + shift[:, None]) - position).norm(dim=1)
    pred = torch.log2(scene.standard_dist / dist) / math.log2(scene.fork) + scene.extra_levels - level_shift
    if scene.lod_rounding == "progressive":
        p = pred.add(1.0).clamp(0.9999, top + 0.9999)
        level = torch.floor(p).to(torch.int64)
        fade = torch.where(scene.levels.to(torch.int64) == level, p - torch.floor(p), torch.ones_like(p))
        return level, fade
    rounded = {"round": torch.round, "floor": torch.floor, "ceil": torch.ceil}[scene.lod_rounding](pred)
    # Upstream casts to int, then clamps; for integral values clamping first is the same, and it
    # keeps an anchor at the viewpoint (pred = inf) well defined.
    return rounded.clamp(0, top).to(torch.int64), None


def lod_mask(scene: StructuredScene, position: Tensor, level_shift: float = 0.0) -> Tensor:
    """Anchors whose level the viewpoint ``position`` [3] selects (lod_levels), [A] bool."""
    level, _ = lod_levels(scene, position, level_shift)
    return scene.levels.to(torch.int64) <= level


def _quat_to_rotmat(q: Tensor) -> Tensor:
    """[N, 4] (w, x, y, z) -> [N, 3, 3], without normalising (as the rasterizer)."""
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=1).reshape(-1, 3, 3)


def prefilter(scene: StructuredScene, ids: Tensor, views: ViewBatch, margin_px: float = 0.0) -> Tensor:
    """Which anchors ``ids`` [A'] pass the rasterizer's visibility test in at least one of
    ``views`` (module docstring, step 2), [A'] bool. ``margin_px`` widens each anchor's square
    (for a derivation reused over several frames)."""
    n = ids.numel()
    keep = torch.zeros(n, dtype=torch.bool, device=scene.device)
    if n == 0:
        return keep
    means = scene.anchors[ids]
    quats = scene.anchor_quats[ids] if scene.anchor_quats is not None else \
        torch.tensor([1.0, 0.0, 0.0, 0.0], device=scene.device).expand(n, 4)
    M = _quat_to_rotmat(quats) * scene.scales[ids, None, :3]  # R S
    cov3 = M @ M.transpose(1, 2)  # R S^2 R^T
    W, H = views.width, views.height
    grid_x, grid_y = (W + PREFILTER_TILE - 1) // PREFILTER_TILE, (H + PREFILTER_TILE - 1) // PREFILTER_TILE
    for e in range(views.n_views):  # E is 1 or 2: a loop over views, not anchors
        R, t = views.viewmats[e, :3, :3], views.viewmats[e, :3, 3]
        p = means @ R.T + t
        z = p[:, 2]
        fx, fy, cx, cy = (views.Ks[e, 0, 0], views.Ks[e, 1, 1], views.Ks[e, 0, 2], views.Ks[e, 1, 2])
        lim_x, lim_y = 1.3 * (W / (2 * fx)), 1.3 * (H / (2 * fy))  # 1.3 tan(fov / 2)
        zs = torch.where(z > PREFILTER_NEAR, z, torch.ones_like(z))  # others are dropped below
        tx = (p[:, 0] / zs).clamp(-lim_x, lim_x) * zs
        ty = (p[:, 1] / zs).clamp(-lim_y, lim_y) * zs
        J = torch.zeros(n, 2, 3, device=scene.device)
        J[:, 0, 0], J[:, 0, 2] = fx / zs, -fx * tx / (zs * zs)
        J[:, 1, 1], J[:, 1, 2] = fy / zs, -fy * ty / (zs * zs)
        T = J @ R
        cov2 = T @ cov3 @ T.transpose(1, 2)
        a, b, c = cov2[:, 0, 0] + LOW_PASS, cov2[:, 0, 1], cov2[:, 1, 1] + LOW_PASS
        det = a * c - b * b
        mid = 0.5 * (a + c)
        root = torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        radius = torch.ceil(3.0 * torch.sqrt(torch.maximum(mid + root, mid - root))) + margin_px
        # The rasterizer's pixel coordinates put pixel centres at integers: ours at +0.5.
        px = fx * p[:, 0] / zs + cx - 0.5
        py = fy * p[:, 1] / zs + cy - 0.5
        x0 = torch.floor((px - radius) / PREFILTER_TILE).clamp(0, grid_x)
        x1 = torch.floor((px + radius + PREFILTER_TILE - 1) / PREFILTER_TILE).clamp(0, grid_x)
        y0 = torch.floor((py - radius) / PREFILTER_TILE).clamp(0, grid_y)
        y1 = torch.floor((py + radius + PREFILTER_TILE - 1) / PREFILTER_TILE).clamp(0, grid_y)
        keep |= (z > PREFILTER_NEAR) & (det != 0) & ((x1 - x0) * (y1 - y0) != 0)
    return keep


def _reach_cull(scene: StructuredScene, ids: Tensor, views: ViewBatch, margin_px: float) -> Tensor:
    """The conservative anchor cull: the cull stage on spheres that hold the 3-sigma extent of all
    of an anchor's Gaussians (keeps every anchor the pre-filter keeps whose Gaussians can reach
    a view, and some more)."""
    r = scene.reach[ids]
    n = ids.numel()
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], device=scene.device).expand(n, 4).contiguous()
    spheres = Scene(scene.anchors[ids].contiguous(), identity,
                    (r / 3.0)[:, None].expand(-1, 3).contiguous(), torch.ones(n, device=scene.device),
                    torch.zeros(n, 1, 3, device=scene.device))
    kept: Visible = cull(spheres, views, CullConfig(margin_px=margin_px), ProjectConfig())
    keep = torch.zeros(n, dtype=torch.bool, device=scene.device)
    keep[kept.ids] = True
    return keep


def visible_anchors(scene: StructuredScene, views: ViewBatch, position: Tensor, margin_px: float = 0.0,
                    anchor_cull: str = "prefilter", level_shift: float = 0.0) -> Tensor:
    """Indices of the anchors that the LOD selects at ``position`` (with ``level_shift``:
    lod_levels) and that may reach a view, [A'] int64 in anchor order."""
    if anchor_cull not in ANCHOR_CULLS:
        raise GscacheError(f"derive.anchor_cull: {anchor_cull!r}; expected one of {', '.join(ANCHOR_CULLS)}")
    selected = torch.nonzero(lod_mask(scene, position, level_shift)).squeeze(1)
    keep = prefilter(scene, selected, views, margin_px) if anchor_cull == "prefilter" else \
        _reach_cull(scene, selected, views, margin_px)
    return selected[keep]


def appearance_row(scene: StructuredScene, index: int) -> Tensor | None:
    """Row ``index`` of the model's appearance embeddings [D], or None without them."""
    table = scene.mlps.appearance
    if table is None:
        return None
    if not 0 <= index < table.shape[0]:
        raise GscacheError(f"derive.appearance_index: {index} is out of range; {scene.source or 'the model'} has "
                           f"{table.shape[0]} appearance embeddings (one per training camera: 0..{table.shape[0] - 1})")
    return table[index]


def view_inputs(scene: StructuredScene, ids: Tensor, position: Tensor) -> tuple[Tensor, Tensor]:
    """Unit view directions [A', 3] and distances [A', 1] of the anchors ``ids`` from ``position``."""
    to_view = scene.anchors[ids] - position
    dist = to_view.norm(dim=1, keepdim=True)
    return to_view / dist, dist


def mixed_features(scene: StructuredScene, ids: Tensor, direction: Tensor, dist: Tensor) -> Tensor:
    """The anchors' features after the feature bank, [A', F] (the features themselves without one):
    w = bank(view direction (+ distance | + level)), softmax weights over the every-4th, every-2nd
    and full feature, each subsampled copy tiled to F."""
    mlps, feat = scene.mlps, scene.features[ids]
    if mlps.feature_bank is None:
        return feat
    extra = [dist] if mlps.bank_dist else ([scene.levels[ids, None]] if mlps.add_level else [])
    with torch.no_grad():
        w = mlps.feature_bank(torch.cat([direction] + extra, dim=1)).unsqueeze(1)  # [A', 1, 3]
    return feat[:, ::4].repeat(1, 4) * w[:, :, 0] + feat[:, ::2].repeat(1, 2) * w[:, :, 1] + feat * w[:, :, 2]


def _outputs(scene: StructuredScene, name: str, out: Tensor, per_offset: int) -> Tensor:
    """``out`` [A', per_offset * k], or a GscacheError naming the MLP (StructuredScene checks the
    widths when it is built; this guards modules changed in place since)."""
    if out.dim() != 2 or out.shape[1] != per_offset * scene.n_offsets:
        raise GscacheError(f"{scene.source or 'StructuredScene'}: mlps.{name} gave shape {tuple(out.shape)}, expected "
                           f"[anchors, {per_offset * scene.n_offsets}] (n_offsets = {scene.n_offsets} times "
                           f"{per_offset})")
    return out


def derive_anchors(scene: StructuredScene, ids: Tensor, position: Tensor, appearance_index: int = 0) -> Scene:
    """The Gaussians of the anchors ``ids`` [A'] int64 for a viewpoint at ``position`` [3].

    Returns:
        A Scene of M <= A' * k Gaussians (SH degree 0) in (anchor, offset) order, version-stamped
        with the source's version.
    """
    mlps, k = scene.mlps, scene.n_offsets
    direction, dist = view_inputs(scene, ids, position)
    feat = mixed_features(scene, ids, direction, dist)
    app = appearance_row(scene, appearance_index)

    def inputs(with_dist: bool, colour: bool = False) -> Tensor:
        parts = [feat, direction] + ([dist] if with_dist else []) + ([scene.levels[ids, None]] if mlps.add_level else [])
        if colour and app is not None:
            parts.append(app.expand(ids.numel(), -1))
        return torch.cat(parts, dim=1)

    with torch.no_grad():
        opacity = _outputs(scene, "opacity", mlps.opacity(inputs(mlps.opacity_dist)), 1)  # [A', k]
        color = _outputs(scene, "color", mlps.color(inputs(mlps.color_dist, colour=True)), 3).reshape(-1, 3)  # [A'k, 3]
        scale_rot = _outputs(scene, "cov", mlps.cov(inputs(mlps.cov_dist)), 7).reshape(-1, 7)  # [A'k, 7]
    if scene.lod_rounding == "progressive":
        _, fade = lod_levels(scene, position)
        opacity = opacity * fade[ids, None]
    opacity = opacity.reshape(-1)
    keep = opacity > 0.0
    anchor_scales = scene.scales[ids].repeat_interleave(k, dim=0)  # [A'k, 6]
    means = scene.anchors[ids].repeat_interleave(k, dim=0) + scene.offsets[ids].reshape(-1, 3) * anchor_scales[:, :3]
    scales = anchor_scales[:, 3:] * torch.sigmoid(scale_rot[:, :3])
    quats = F.normalize(scale_rot[:, 3:7], dim=1)
    sh = ((color - 0.5) / SH_C0)[:, None, :]
    return Scene(means[keep].contiguous(), quats[keep].contiguous(), scales[keep].contiguous(),
                 opacity[keep].contiguous(), sh[keep].contiguous(), version=scene.version,
                 source=f"derived from {scene.source}")


def derive(scene: StructuredScene, views: ViewBatch, position: Tensor, margin_px: float = 0.0,
           derive_fn=derive_anchors, appearance_index: int = 0, anchor_cull: str = "prefilter",
           level_shift: float = 0.0) -> Scene:
    """The Gaussians that ``scene`` derives for a viewpoint at ``position`` [3], for ``views``.

    Args:
        scene: the structured scene.
        views: the views whose anchors are pre-filtered (both eyes for a shared derivation).
        position: where the LOD and the view directions are evaluated (an eye, or between the eyes).
        margin_px: extra border of the anchor culling (for reuse over several frames).
        derive_fn: derives the selected anchors: :func:`derive_anchors` (the reference) or a
            backend's fused kernel with the same signature.
        appearance_index: the appearance embedding used (models that have them).
        anchor_cull: "prefilter" (upstream's) or "reach" (conservative).
        level_shift: a coarser level of detail (lod_levels; a foveated periphery's). The anchors
            it selects are a subset of those of 0, derived alike, so their Gaussians are the
            same; with "progressive" rounding their fades stay those of ``level_shift`` 0 (the
            derivation computes them).
    """
    ids = visible_anchors(scene, views, position, margin_px, anchor_cull, level_shift)
    return derive_fn(scene, ids, position, appearance_index)
