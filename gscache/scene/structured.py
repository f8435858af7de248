"""Structured scenes (Scaffold-GS / Octree-GS): anchors with features, offsets and scales, and
small MLPs that derive each visible anchor's k Gaussians for the current view. The checkpoint
files are read and written by gscache.scene.checkpoint; what the renderer derives from them is
gscache.stages.derive.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import GscacheError
from .identity import assign_token, keep_token

LOD_ROUNDINGS = ("round", "floor", "ceil", "progressive")


@dataclass(frozen=True)
class AnchorMLPs:
    """The three MLPs and which extra inputs each takes (after the feature and view direction)."""

    opacity: torch.nn.Module
    """[A, F+3(+1)(+1)] -> [A, k] opacities in (-1, 1) (tanh); non-positive ones are dropped."""
    cov: torch.nn.Module
    """-> [A, 7k]: per Gaussian 3 scale logits and a quaternion."""
    color: torch.nn.Module
    """-> [A, 3k] RGB in (0, 1) (sigmoid)."""
    opacity_dist: bool = False
    cov_dist: bool = False
    color_dist: bool = False
    add_level: bool = False
    """Every MLP input has the anchor's level after the (optional) distance."""
    appearance: Tensor | None = None
    """Octree-GS / Scaffold-GS appearance embeddings, [C, D] (one row per training camera): the
    colour MLP's input ends with one row (``DeriveConfig.appearance_index``); None: no embedding."""
    feature_bank: torch.nn.Module | None = None
    """``use_feat_bank``: [A, 3 (+1)] -> [A, 3] softmax weights that mix each anchor's feature with
    its every-2nd and every-4th subsampled copies; None: the feature is used as it is."""
    bank_dist: bool = False
    """The feature bank's input is (view direction, distance) (Scaffold-GS); else the view
    direction, and the level with ``add_level`` (Octree-GS)."""

    @property
    def appearance_dim(self) -> int:
        return 0 if self.appearance is None else int(self.appearance.shape[1])


@dataclass(frozen=True)
class StructuredScene:
    """Anchors of a Scaffold-GS / Octree-GS model (activated where the renderer needs it)."""

    anchors: Tensor
    """Anchor positions, [A, 3] float32."""
    offsets: Tensor
    """Offsets of the k Gaussians, in units of the anchor's offset scale, [A, k, 3]."""
    features: Tensor
    """Anchor features, [A, F]."""
    scales: Tensor
    """exp of the stored log scales, [A, 6]: 0..2 scale the offsets, 3..5 the Gaussians."""
    levels: Tensor
    """Octree level of each anchor, [A] float32 (0 for Scaffold-GS)."""
    extra_levels: Tensor
    """Per-anchor LOD bias, [A] float32."""
    mlps: AnchorMLPs
    voxel_size: float = 0.0
    standard_dist: float = 0.0
    """Octree-GS: the distance at which level 0 is chosen (0: no level of detail)."""
    fork: int = 2
    """Octree-GS ``fork``: each level's voxels are 1/fork the size of the level above."""
    n_levels: int = 1
    """max(level) - min(level) + 1, as Octree-GS counts them at load."""
    lod_rounding: str = "round"
    """Octree-GS ``dist2level``: how the continuous level becomes an integer: "round" (the
    default), "floor", "ceil", or "progressive" (floor of level + 1, with the anchors of the
    selected level faded in by its fractional part)."""
    version: int = 0
    source: str = ""
    anchor_quats: Tensor | None = None
    """Unit anchor rotations (w, x, y, z), [A, 4] float32 (the anchor pre-filter projects each
    anchor as a Gaussian with its offset scales and this rotation); None: identity."""
    token: int = field(init=False, repr=False, compare=False)
    """Identity for caches (gscache.scene.identity): new for every scene built, kept by ``to()``."""

    def __post_init__(self) -> None:
        if self.lod_rounding not in LOD_ROUNDINGS:
            raise GscacheError(f"{self.source or 'StructuredScene'}: lod_rounding (dist2level) {self.lod_rounding!r}; "
                               f"expected one of {', '.join(LOD_ROUNDINGS)}")
        assign_token(self)

    @property
    def count(self) -> int:
        return self.anchors.shape[0]

    @functools.cached_property
    def reach(self) -> Tensor:
        """Radius around each anchor that holds the 3-sigma extent of all its Gaussians, [A]
        (computed once: the anchors are immutable)."""
        far = (self.offsets * self.scales[:, None, :3]).norm(dim=-1).amax(dim=1)  # farthest centre
        return far + 3.0 * self.scales[:, 3:].amax(dim=1)  # derived scales never exceed scales[3:6]

    @property
    def n_offsets(self) -> int:
        return self.offsets.shape[1]

    @property
    def device(self) -> torch.device:
        return self.anchors.device

    @property
    def sh_degree(self) -> int:
        return 0  # colours come from the colour MLP, per view

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in
                   (self.anchors, self.offsets, self.features, self.scales, self.levels, self.extra_levels))

    def bounds(self, quantile: float = 0.0) -> tuple[Tensor, Tensor]:
        """Per-axis (low, high) of the anchors; a quantile > 0 ignores that fraction of outliers."""
        if self.count == 0:
            z = torch.zeros(3)
            return z, z
        a = self.anchors.float().cpu()
        if quantile <= 0:
            return a.min(0).values, a.max(0).values
        return torch.quantile(a, quantile, dim=0), torch.quantile(a, 1 - quantile, dim=0)

    def to(self, device) -> "StructuredScene":
        device = torch.device(device)
        if self.device == device:
            return self
        m = self.mlps
        mlps = dataclasses.replace(m, opacity=m.opacity.to(device), cov=m.cov.to(device), color=m.color.to(device),
                                   appearance=None if m.appearance is None else m.appearance.to(device),
                                   feature_bank=None if m.feature_bank is None else m.feature_bank.to(device))
        return keep_token(dataclasses.replace(
            self, anchors=self.anchors.to(device), offsets=self.offsets.to(device), features=self.features.to(device),
            scales=self.scales.to(device), levels=self.levels.to(device), extra_levels=self.extra_levels.to(device),
            anchor_quats=None if self.anchor_quats is None else self.anchor_quats.to(device), mlps=mlps), self)


__all__ = ["StructuredScene", "AnchorMLPs", "LOD_ROUNDINGS"]
