"""Derive: the Gaussians of a structured scene (Scaffold-GS / Octree-GS) for one viewpoint.

Follows the original renderers: Octree-GS level-of-detail selection (an anchor of level L is
used when L <= round(log2(standard_dist / distance) / log2(fork) + extra_level), or floor with
dist2level='floor', clamped to the levels present), anchor culling against the view frusta, then per visible anchor its k neural
Gaussians: MLP inputs are the feature and the unit view direction (anchor - viewpoint), plus the
distance and the level where the model takes them; opacity from the tanh MLP, non-positive ones
dropped; colour from the sigmoid MLP; scale = anchor scale[3:6] * sigmoid(scale logits); rotation
normalised; position = anchor + offset * anchor scale[0:3]. Colours become SH degree 0, so the
derived Gaussians flow through the ordinary pipeline unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import ViewBatch
from ..config import CullConfig, ProjectConfig
from ..records import Visible
from ..scene.record import Scene
from ..scene.structured import StructuredScene
from ..sh import SH_C0
from .cull import cull


def lod_mask(scene: StructuredScene, position: Tensor) -> Tensor:
    """Anchors whose level the viewpoint ``position`` [3] selects, [A] bool."""
    if scene.standard_dist <= 0 or scene.count == 0:
        return torch.ones(scene.count, dtype=torch.bool, device=scene.device)
    dist = (scene.anchors - position).norm(dim=1).clamp(min=1e-10)
    pred = torch.log2(scene.standard_dist / dist) / math.log2(scene.fork) + scene.extra_levels
    level = (torch.floor(pred) if scene.lod_rounding == "floor" else torch.round(pred)).clamp(0, scene.n_levels - 1)
    return scene.levels <= level


def visible_anchors(scene: StructuredScene, views: ViewBatch, position: Tensor, margin_px: float = 0.0) -> Tensor:
    """Indices of the anchors that the LOD selects at ``position`` and that may reach a view, [A'] int64."""
    selected = torch.nonzero(lod_mask(scene, position)).squeeze(1)
    # The cull stage on a stand-in scene of spheres: 3-sigma of an isotropic Gaussian of sigma r/3.
    r = scene.reach[selected]
    spheres = Scene(scene.anchors[selected].contiguous(), torch.zeros(len(selected), 4, device=scene.device),
                    (r / 3.0)[:, None].expand(-1, 3).contiguous(), torch.ones(len(selected), device=scene.device),
                    torch.zeros(len(selected), 1, 3, device=scene.device))
    kept: Visible = cull(spheres, views, CullConfig(margin_px=margin_px), ProjectConfig())
    return selected[kept.ids]


def derive_anchors(scene: StructuredScene, ids: Tensor, position: Tensor) -> Scene:
    """The Gaussians of the anchors ``ids`` [A'] int64 for a viewpoint at ``position`` [3].

    Returns:
        A Scene of M <= A' * k Gaussians (SH degree 0) in (anchor, offset) order, version-stamped
        with the source's version.
    """
    mlps, k = scene.mlps, scene.n_offsets
    anchors = scene.anchors[ids]
    to_view = anchors - position
    dist = to_view.norm(dim=1, keepdim=True).clamp(min=1e-10)
    direction = to_view / dist
    base = [scene.features[ids], direction]

    def inputs(with_dist: bool) -> Tensor:
        parts = base + ([dist] if with_dist else []) + ([scene.levels[ids, None]] if mlps.add_level else [])
        return torch.cat(parts, dim=1)

    with torch.no_grad():
        opacity = mlps.opacity(inputs(mlps.opacity_dist)).reshape(-1)  # [A'k]
        color = mlps.color(inputs(mlps.color_dist)).reshape(-1, 3)  # [A'k, 3]
        scale_rot = mlps.cov(inputs(mlps.cov_dist)).reshape(-1, 7)  # [A'k, 7]
    keep = opacity > 0.0
    anchor_scales = scene.scales[ids].repeat_interleave(k, dim=0)  # [A'k, 6]
    means = anchors.repeat_interleave(k, dim=0) + scene.offsets[ids].reshape(-1, 3) * anchor_scales[:, :3]
    scales = anchor_scales[:, 3:] * torch.sigmoid(scale_rot[:, :3])
    quats = F.normalize(scale_rot[:, 3:7], dim=1)
    sh = ((color - 0.5) / SH_C0)[:, None, :]
    return Scene(means[keep].contiguous(), quats[keep].contiguous(), scales[keep].contiguous(),
                 opacity[keep].contiguous(), sh[keep].contiguous(), version=scene.version,
                 source=f"derived from {scene.source}")


def derive(scene: StructuredScene, views: ViewBatch, position: Tensor, margin_px: float = 0.0,
           derive_fn=derive_anchors) -> Scene:
    """The Gaussians that ``scene`` derives for a viewpoint at ``position`` [3], for ``views``.

    Args:
        scene: the structured scene.
        views: the views whose frusta cull the anchors (both eyes for a shared derivation).
        position: where the LOD and the view directions are evaluated (an eye, or between the eyes).
        margin_px: extra border of the anchor culling (for reuse over several frames).
        derive_fn: derives the selected anchors: :func:`derive_anchors` (the reference) or a
            backend's fused kernel with the same signature.
    """
    return derive_fn(scene, visible_anchors(scene, views, position, margin_px), position)
