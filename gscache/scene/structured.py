"""Structured scenes (Scaffold-GS / Octree-GS): anchors with features, offsets and scales, and
small MLPs that derive each visible anchor's k Gaussians for the current view.

Checkpoint layout (the public Octree-GS / Scaffold-GS outputs): a folder with
``point_cloud.ply`` and the TorchScript MLPs ``opacity_mlp.pt``, ``cov_mlp.pt`` and
``color_mlp.pt``. The PLY's vertex element holds per anchor ``x y z``; Octree-GS adds ``level``,
``extra_level`` and ``info`` (its first two rows hold voxel_size and standard_dist); then
``f_offset_*`` (3k values stored axis-major: the k x-offsets, the k y's, the k z's),
``f_anchor_feat_*`` (F features), ``opacity``, ``scale_0..5`` (log; 0..2 scale the offsets, 3..5
the Gaussians) and ``rot_0..3``. Which inputs each MLP takes besides the feature and the view
direction (the distance, the level) is read from ``cfg_args`` (the training run's Namespace) when
present, else inferred from the MLP's input width.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_write
from ..errors import GscacheError
from .ply import _read_vertices
from .identity import assign_token, keep_token

MLP_FILES = ("opacity_mlp.pt", "cov_mlp.pt", "color_mlp.pt")


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
    """Every MLP input ends with the anchor's level."""


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
    n_levels: int = 1
    lod_rounding: str = "round"
    """How the continuous level becomes an integer: "round" (Octree-GS's default) or "floor"."""
    version: int = 0
    source: str = ""
    token: int = field(init=False, repr=False, compare=False)
    """Identity for caches (gscache.scene.identity): new for every scene built, kept by ``to()``."""

    def __post_init__(self) -> None:
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
        mlps = dataclasses.replace(self.mlps, opacity=self.mlps.opacity.to(device), cov=self.mlps.cov.to(device),
                                   color=self.mlps.color.to(device))
        return keep_token(dataclasses.replace(
            self, anchors=self.anchors.to(device), offsets=self.offsets.to(device), features=self.features.to(device),
            scales=self.scales.to(device), levels=self.levels.to(device), extra_levels=self.extra_levels.to(device),
            mlps=mlps), self)


def _first_linear_in(module: torch.nn.Module, where: str) -> int:
    for p in module.parameters():
        if p.dim() == 2:
            return int(p.shape[1])
    raise GscacheError(f"{where}: the MLP has no 2D weight, so its input width is unknown")


def _check_output_widths(folder: Path, mlps: AnchorMLPs, base: int, k: int) -> None:
    """Each MLP, run once on a zero input of its width, gives what k Gaussians per anchor need:
    k opacities, 7k covariance values, 3k colours (a model whose widths disagree with its
    n_offsets would make the kernels read rows the MLP never wrote)."""
    for name, module, dist, per in (("opacity_mlp.pt", mlps.opacity, mlps.opacity_dist, 1),
                                    ("cov_mlp.pt", mlps.cov, mlps.cov_dist, 7),
                                    ("color_mlp.pt", mlps.color, mlps.color_dist, 3)):
        try:
            with torch.no_grad():
                out = module(torch.zeros(1, base + int(dist)))
        except Exception as exc:  # noqa: BLE001 - a module that cannot run on its own input width
            raise GscacheError(f"{folder / name}: the MLP fails on a [1, {base + int(dist)}] input: "
                               f"{type(exc).__name__}: {exc}") from None
        if tuple(out.shape) != (1, per * k):
            raise GscacheError(f"{folder / name}: output width {tuple(out.shape)[1:]} but the model has "
                               f"n_offsets = {k} (from f_offset_*), so {per * k} ({per} per offset) are needed")


def _read_cfg_args(folder: Path) -> tuple[Path | None, dict[str, str]]:
    """(path, {name: value as text}) of the training run's cfg_args (a printed argparse
    Namespace) in the folder or up to three levels above it; (None, {}) if there is none."""
    for candidate in (folder / "cfg_args", folder.parent / "cfg_args", folder.parent.parent / "cfg_args",
                      folder.parent.parent.parent / "cfg_args"):
        if candidate.is_file():
            text = candidate.read_text(errors="replace")
            return candidate, {k: v.strip("'\"") for k, v in re.findall(r"(\w+)=('[^']*'|\"[^\"]*\"|[\w.+-]+)", text)}
    return None, {}


def _check_supported(folder: Path, cfg_path: Path | None, cfg: dict[str, str]) -> str:
    """Raise GscacheError for model features this renderer does not implement; returns the LOD
    rounding ("round" or "floor")."""
    where = str(cfg_path or folder)
    if (folder / "embedding_appearance.pt").is_file() or cfg.get("appearance_dim", "0") not in ("0", ""):
        raise GscacheError(f"{where}: the model has a per-image appearance embedding (appearance_dim="
                           f"{cfg.get('appearance_dim', '?')}, embedding_appearance.pt); gscache does not support "
                           "appearance embeddings: retrain with appearance_dim=0")
    if (folder / "feature_bank_mlp.pt").is_file() or cfg.get("use_feat_bank") == "True":
        raise GscacheError(f"{where}: the model uses a feature bank (use_feat_bank, feature_bank_mlp.pt); gscache "
                           "does not support feature banks: retrain with use_feat_bank=False")
    rounding = cfg.get("dist2level", "round")
    if rounding not in ("round", "floor"):
        raise GscacheError(f"{where}: dist2level={rounding!r} is not supported; expected 'round' or 'floor' "
                           "(Octree-GS's progressive level blending is not implemented)")
    return rounding


def _load_mlp(path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise GscacheError(f"{path.parent}: missing {path.name}: a structured checkpoint needs {', '.join(MLP_FILES)}")
    try:
        with warnings.catch_warnings():  # the checkpoint format is TorchScript, deprecated or not
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # TorchScript raises several types for damaged archives
        raise GscacheError(f"{path}: cannot load the TorchScript MLP: {exc}") from None
    return module.eval()


def read_structured(path: str | os.PathLike) -> StructuredScene:
    """Read a Scaffold-GS / Octree-GS checkpoint folder (or its point_cloud.ply)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    ply = folder / "point_cloud.ply"
    if not ply.is_file():
        raise GscacheError(f"{folder}: no point_cloud.ply, so this is not a structured checkpoint")
    table = _read_vertices(str(ply), ply.read_bytes())
    names = set(table.dtype.names or ())
    where = str(ply)
    n_off = sum(1 for n in names if n.startswith("f_offset_"))
    n_feat = sum(1 for n in names if n.startswith("f_anchor_feat_"))
    if n_off == 0 or n_feat == 0:
        raise GscacheError(f"{where}: no f_offset_*/f_anchor_feat_* properties, so not a structured (anchor) model")
    if n_off % 3:
        raise GscacheError(f"{where}: {n_off} f_offset_* properties is not 3 * k")
    need = ["x", "y", "z"] + [f"scale_{i}" for i in range(6)]
    missing = [n for n in need if n not in names]
    if missing:
        raise GscacheError(f"{where}: missing anchor properties {missing}")
    A, k = len(table), n_off // 3

    def cols(prefix_or_names):
        return np.stack([table[n].astype(np.float32) for n in prefix_or_names], axis=1)

    anchors = cols(["x", "y", "z"])
    offsets = cols([f"f_offset_{i}" for i in range(n_off)]).reshape(A, 3, k).transpose(0, 2, 1)  # axis-major
    features = cols([f"f_anchor_feat_{i}" for i in range(n_feat)])
    with np.errstate(over="ignore"):
        scales = np.exp(cols([f"scale_{i}" for i in range(6)]))
    levels = table["level"].astype(np.float32) if "level" in names else np.zeros(A, np.float32)
    extra = table["extra_level"].astype(np.float32) if "extra_level" in names else np.zeros(A, np.float32)
    voxel_size = standard_dist = 0.0
    if "info" in names and A >= 2:
        voxel_size, standard_dist = float(table["info"][0]), float(table["info"][1])
    for name, arr in (("x/y/z", anchors), ("f_offset", offsets), ("f_anchor_feat", features), ("scale", scales),
                      ("level", levels), ("extra_level", extra)):
        if not np.isfinite(arr).all():
            raise GscacheError(f"{where}: {name} holds NaN or Inf values")

    cfg_path, cfg = _read_cfg_args(folder)
    rounding = _check_supported(folder, cfg_path, cfg)
    flags = {k: v == "True" for k, v in cfg.items() if v in ("True", "False")}
    opacity, cov, color = (_load_mlp(folder / f) for f in MLP_FILES)
    add_level = flags.get("add_level", False)
    base = n_feat + 3 + int(add_level)

    def uses_dist(module, flag, name) -> bool:
        width = _first_linear_in(module, f"{folder / name}")
        if flag in flags:
            expected = base + int(flags[flag])
            if width != expected:
                raise GscacheError(f"{folder / name}: input width {width}, but cfg_args says {expected}")
            return flags[flag]
        if width == base:
            return False
        if width == base + 1:
            return True
        raise GscacheError(f"{folder / name}: input width {width} fits neither {base} nor {base + 1} "
                           f"(features {n_feat} + view direction 3{' + level 1' if add_level else ''} [+ distance 1])")

    mlps = AnchorMLPs(opacity, cov, color, uses_dist(opacity, "add_opacity_dist", "opacity_mlp.pt"),
                      uses_dist(cov, "add_cov_dist", "cov_mlp.pt"), uses_dist(color, "add_color_dist", "color_mlp.pt"),
                      add_level)
    _check_output_widths(folder, mlps, base, k)
    n_levels = int(levels.max()) + 1 if A else 1
    return StructuredScene(torch.from_numpy(np.ascontiguousarray(anchors)), torch.from_numpy(np.ascontiguousarray(offsets)),
                           torch.from_numpy(features), torch.from_numpy(scales), torch.from_numpy(levels),
                           torch.from_numpy(extra), mlps, voxel_size, standard_dist, 2, n_levels,
                           lod_rounding=rounding, source=str(folder))


def write_structured(scene: StructuredScene, folder: str | os.PathLike) -> None:
    """Write a checkpoint folder (point_cloud.ply, the three TorchScript MLPs, cfg_args)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    A, k, F = scene.count, scene.n_offsets, scene.features.shape[1]
    info = np.zeros(A, np.float32)
    if A >= 2:
        info[0], info[1] = scene.voxel_size, scene.standard_dist
    cols = {"x": scene.anchors[:, 0], "y": scene.anchors[:, 1], "z": scene.anchors[:, 2],
            "level": scene.levels, "extra_level": scene.extra_levels, "info": torch.from_numpy(info)}
    off = scene.offsets.permute(0, 2, 1).reshape(A, 3 * k)  # axis-major
    cols.update({f"f_offset_{i}": off[:, i] for i in range(3 * k)})
    cols.update({f"f_anchor_feat_{i}": scene.features[:, i] for i in range(F)})
    cols["opacity"] = torch.zeros(A)
    log_scales = torch.log(scene.scales)
    cols.update({f"scale_{i}": log_scales[:, i] for i in range(6)})
    cols.update({f"rot_{i}": torch.tensor([1.0, 0, 0, 0])[i].expand(A) for i in range(4)})
    names = list(cols)
    body = np.stack([cols[n].detach().cpu().float().numpy() for n in names], axis=1).astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {A}\n"
    header += "".join(f"property float {n}\n" for n in names) + "end_header\n"
    with atomic_write(folder / "point_cloud.ply") as f:
        f.write(header.encode("ascii"))
        f.write(body.tobytes())
    for name, module in zip(MLP_FILES, (scene.mlps.opacity, scene.mlps.cov, scene.mlps.color)):
        with warnings.catch_warnings():  # the checkpoint format is TorchScript, deprecated or not
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module.cpu())
            with atomic_write(folder / name) as f:
                torch.jit.save(scripted, f)
    m = scene.mlps
    args = (f"Namespace(add_opacity_dist={m.opacity_dist}, add_cov_dist={m.cov_dist}, "
            f"add_color_dist={m.color_dist}, add_level={m.add_level}, n_offsets={k}, feat_dim={F}, "
            f"appearance_dim=0, use_feat_bank=False, dist2level='{scene.lod_rounding}')")
    with atomic_write(folder / "cfg_args") as f:
        f.write(args.encode())


__all__ = ["StructuredScene", "AnchorMLPs", "read_structured", "write_structured"]
