"""Structured scenes (Scaffold-GS / Octree-GS): anchors with features, offsets and scales, and
small MLPs that derive each visible anchor's k Gaussians for the current view. The checkpoint
files are read and written by gscache.scene.checkpoint; what the renderer derives from them is
gscache.stages.derive.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._validate import ShapeChecker
from ..errors import GscacheError
from .identity import assign_token, keep_token
from .record import normalised_rotations

LOD_ROUNDINGS = ("round", "floor", "ceil", "progressive")
PER_OFFSET = {"opacity": 1, "cov": 7, "color": 3}
"""Outputs of each MLP per offset: an opacity; 3 scale logits and a quaternion; RGB."""
UPSTREAM_FILES = {"opacity": "opacity_mlp.pt", "cov": "cov_mlp.pt", "color": "color_mlp.pt",
                  "feature_bank": "feature_bank_mlp.pt"}
"""The checkpoint file each MLP is saved in (messages name both)."""


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


def mlp_input_width(module: torch.nn.Module, where: str) -> int:
    """Input width of an MLP: the second axis of its first 2D weight."""
    for p in module.parameters():
        if p.dim() == 2:
            return int(p.shape[1])
    raise GscacheError(f"{where}: the MLP has no 2D weight, so its input width is unknown")


def mlp_input_widths(mlps: AnchorMLPs, n_features: int) -> dict[str, int]:
    """The input width each MLP must have (derive's inputs: feature F, view direction 3,
    distance 1 where the MLP takes it, level 1 with ``add_level``, the appearance embedding for
    the colour MLP; the feature bank: view direction, then distance (Scaffold-GS) or level)."""
    base = n_features + 3 + int(mlps.add_level)
    widths = {"opacity": base + int(mlps.opacity_dist), "cov": base + int(mlps.cov_dist),
              "color": base + int(mlps.color_dist) + mlps.appearance_dim}
    if mlps.feature_bank is not None:
        widths["feature_bank"] = 3 + (1 if mlps.bank_dist else int(mlps.add_level))
    return widths


def _describe_inputs(mlps: AnchorMLPs, name: str, n_features: int) -> str:
    if name == "feature_bank":
        return "view direction 3" + (" + distance 1" if mlps.bank_dist else " + level 1" if mlps.add_level else "")
    dist = getattr(mlps, f"{name}_dist")
    return (f"features {n_features} + view direction 3{' + distance 1' if dist else ''}"
            f"{' + level 1' if mlps.add_level else ''}"
            f"{f' + appearance {mlps.appearance_dim}' if name == 'color' and mlps.appearance_dim else ''}")


def _check_output(module: torch.nn.Module, width: int, expected: int, where: str, why: str) -> None:
    """The MLP runs on a [1, width] input and gives [1, expected] (a model whose widths disagree
    with n_offsets would make the fused kernels read rows the MLP never wrote)."""
    try:
        param = next(module.parameters())
        with torch.no_grad():
            out = module(torch.zeros(1, width, device=param.device, dtype=param.dtype))
    except Exception as exc:  # noqa: BLE001 - a module that cannot run on its own input width
        raise GscacheError(f"{where}: the MLP fails on a [1, {width}] input: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, Tensor) or tuple(out.shape) != (1, expected):
        got = tuple(out.shape)[1:] if isinstance(out, Tensor) else type(out).__name__
        raise GscacheError(f"{where}: output width {got}, expected {expected}: {why}")


# MLPs already checked, per AnchorMLPs object: the (feature, offset) counts they were checked
# for, so that per-frame copies of a scene (dataclasses.replace) do not run them again.
_CHECKED: "weakref.WeakKeyDictionary[AnchorMLPs, set[tuple[int, int]]]" = weakref.WeakKeyDictionary()


def check_mlps(mlps: AnchorMLPs, n_features: int, n_offsets: int, where: str) -> None:
    """Refuse MLPs whose input or output widths disagree with the anchors (F features, k
    offsets), naming the MLP, its checkpoint file and the widths; every construction path of a
    StructuredScene passes here, before any backend runs them."""
    if not isinstance(mlps, AnchorMLPs):
        raise GscacheError(f"{where}: mlps: expected AnchorMLPs, got {type(mlps).__name__}")
    if (n_features, n_offsets) in _CHECKED.get(mlps, ()):
        return
    if mlps.appearance is not None and (not isinstance(mlps.appearance, Tensor) or mlps.appearance.dim() != 2
                                        or mlps.appearance.dtype != torch.float32):
        raise GscacheError(f"{where}: mlps.appearance: expected a float32 [cameras, D] table, got "
                           f"{getattr(mlps.appearance, 'dtype', type(mlps.appearance).__name__)} "
                           f"{tuple(getattr(mlps.appearance, 'shape', ()))}")
    if mlps.feature_bank is not None and n_features % 4:
        raise GscacheError(f"{where}: mlps.feature_bank mixes every 4th feature, so the feature count must be a "
                           f"multiple of 4, got {n_features}")
    for name, width in mlp_input_widths(mlps, n_features).items():
        module = getattr(mlps, name)
        label = f"{where}: mlps.{name} ({UPSTREAM_FILES[name]})"
        if not isinstance(module, torch.nn.Module):
            raise GscacheError(f"{label}: expected a torch.nn.Module, got {type(module).__name__}")
        have = mlp_input_width(module, label)
        if have != width:
            raise GscacheError(f"{label}: input width {have}, expected {width} "
                               f"({_describe_inputs(mlps, name, n_features)})")
        if name == "feature_bank":
            _check_output(module, width, 3, label, "3 mixing weights")
        else:
            _check_output(module, width, PER_OFFSET[name] * n_offsets, label,
                          f"n_offsets = {n_offsets} times {PER_OFFSET[name]} per offset")
    _CHECKED.setdefault(mlps, set()).add((n_features, n_offsets))


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
        """Every construction path (the loader, the generators, the constructor, ``replace``,
        ``to``) checks the anchor fields and the MLP widths here, and normalises the anchor
        rotations as a Scene's (gscache.scene.record.normalised_rotations)."""
        where = self.source or "StructuredScene"
        if self.lod_rounding not in LOD_ROUNDINGS:
            raise GscacheError(f"{where}: lod_rounding (dist2level) {self.lod_rounding!r}; "
                               f"expected one of {', '.join(LOD_ROUNDINGS)}")
        if isinstance(self.fork, bool) or not isinstance(self.fork, int) or self.fork < 2:
            raise GscacheError(f"{where}: fork {self.fork!r}; expected an integer >= 2")
        if isinstance(self.n_levels, bool) or not isinstance(self.n_levels, int) or self.n_levels < 1:
            raise GscacheError(f"{where}: n_levels {self.n_levels!r}; expected an integer >= 1")
        self._check_fields(where)
        if self.anchor_quats is not None:
            object.__setattr__(self, "anchor_quats", normalised_rotations(self.anchor_quats, where, "anchor_quats"))
        check_mlps(self.mlps, self.features.shape[1], self.offsets.shape[1], where)
        assign_token(self)

    def _check_fields(self, where: str) -> None:
        c = ShapeChecker(where)
        c.check("anchors", self.anchors, ("A", 3), torch.float32)
        c.check("offsets", self.offsets, ("A", "k", 3), torch.float32)
        c.check("features", self.features, ("A", "F"), torch.float32)
        c.check("scales", self.scales, ("A", 6), torch.float32)
        c.check("levels", self.levels, ("A",), torch.float32)
        c.check("extra_levels", self.extra_levels, ("A",), torch.float32)
        if self.anchor_quats is not None:
            c.check("anchor_quats", self.anchor_quats, ("A", 4), torch.float32)
        if c.dims["k"] < 1:
            raise GscacheError(f"{where}.offsets: expected at least one offset per anchor, got shape "
                               f"{tuple(self.offsets.shape)}")

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


__all__ = ["StructuredScene", "AnchorMLPs", "LOD_ROUNDINGS", "check_mlps", "mlp_input_width"]
