"""A level of detail for the periphery (issue 25): a hierarchy of merged Gaussians built once per
scene, and a cut of it chosen per frame by projected size.

**Build** (``build_lod``). Level 0 is the scene. Each further level merges the nodes of the level
below whose means fall in one cell of a grid; the cell starts at the mean spacing of the scene's
Gaussians (the cube root of the central 96% bounding box's volume per Gaussian) and doubles from
level to level (a cell size that merges under a tenth of the nodes is skipped), until a level has
fewer than ``MIN_TOP`` nodes.
A merged node is moment matched over its children, each weighted by opacity times its
ellipsoid's surface proxy w = a (s1 s2 + s2 s3 + s1 s3):

* mean: the weighted mean of the children's means;
* covariance: the weighted mean of each child's covariance plus its mean's spread about the
  merged mean (the second moment of the mixture), as scales and a rotation;
* opacity: so that the merged splat covers what its children covered: a = sum(a_i A_i) / A
  (A the same surface proxy), at most 0.99, at least the largest child's;
* colour: the SH coefficients averaged with the same weights (every band; view-dependent terms
  of children facing different ways average towards their mean: the periphery's colour is
  smoother than the scene's, never brighter).

**Cut** (``select_cut``): top-down from the coarsest level, a node whose children would project
to at least ``tau_px`` pixels (their largest 3-sigma extent over the node's depth, in the
periphery's focal length; the nearest eye) is opened and its children decided in turn; the others
are drawn. Each Gaussian of the scene is covered by exactly one drawn node (an ancestor or
itself): no holes and no double drawing at level boundaries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..scene.record import Scene

BUILDER_VERSION = 1
"""Bumped when the build's result changes (the disk cache's key includes it)."""
MIN_TOP = 64
"""The hierarchy stops when a level has fewer nodes than this."""
MAX_OPACITY = 0.99


@dataclass(frozen=True)
class PeripheryLod:
    """Every level's nodes, concatenated (level 0, the scene's Gaussians, first)."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor
    parent: Tensor
    """[M] int64: each node's parent (index into these arrays), -1 for the top level's."""
    child_extent: Tensor
    """[M] float32: the largest 3-sigma extent (metres) of the node's children (0 for level 0)."""
    offsets: tuple[int, ...]
    """Level l's nodes are [offsets[l], offsets[l + 1])."""
    source: str = ""

    @property
    def levels(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.means, self.quats, self.scales, self.opacities,
                                                            self.sh, self.parent, self.child_extent))

    def to(self, device) -> "PeripheryLod":
        fields = {k: getattr(self, k).to(device) for k in FIELDS}
        return PeripheryLod(**fields, offsets=self.offsets, source=self.source)

    def subset(self, drawn: Tensor) -> Scene:
        """The drawn nodes [M] bool as a Scene (the periphery pass's Gaussians)."""
        idx = torch.nonzero(drawn).squeeze(1)
        return Scene(self.means[idx], self.quats[idx], self.scales[idx], self.opacities[idx], self.sh[idx],
                     source=f"{self.source} (periphery level of detail)")


def _rotation_matrices(quats: Tensor) -> Tensor:
    """[N, 4] unit (w, x, y, z) -> [N, 3, 3]."""
    w, x, y, z = quats.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1).reshape(-1, 3, 3)


def _quaternions(R: Tensor) -> Tensor:
    """[N, 3, 3] proper rotations -> [N, 4] unit (w, x, y, z), w >= 0."""
    m = R
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    q = torch.stack([1 + trace, 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                     1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], dim=-1).clamp(min=0).sqrt() / 2
    # Signs from the off-diagonal differences (the largest component's sign taken as positive).
    sx = torch.sign(m[:, 2, 1] - m[:, 1, 2])
    sy = torch.sign(m[:, 0, 2] - m[:, 2, 0])
    sz = torch.sign(m[:, 1, 0] - m[:, 0, 1])
    q = torch.stack([q[:, 0], q[:, 1] * torch.where(sx == 0, 1.0, sx), q[:, 2] * torch.where(sy == 0, 1.0, sy),
                     q[:, 3] * torch.where(sz == 0, 1.0, sz)], dim=-1)
    return q / q.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def _surface(scales: Tensor) -> Tensor:
    s1, s2, s3 = scales.unbind(-1)
    return s1 * s2 + s2 * s3 + s1 * s3


def _merge(means, quats, scales, opacities, sh, groups: Tensor, n_groups: int):
    """Moment-matched merge of the rows of each group (module docstring); float64 sums."""
    w = (opacities.double() * _surface(scales.double())).clamp(min=1e-30)
    total = torch.zeros(n_groups, dtype=torch.float64, device=means.device).index_add_(0, groups, w)
    mu = torch.zeros(n_groups, 3, dtype=torch.float64, device=means.device).index_add_(
        0, groups, w[:, None] * means.double()) / total[:, None]
    R = _rotation_matrices(quats.double())
    cov = R @ torch.diag_embed(scales.double() ** 2) @ R.transpose(1, 2)
    d = means.double() - mu[groups]
    second = cov + d[:, :, None] * d[:, None, :]
    merged = torch.zeros(n_groups, 3, 3, dtype=torch.float64, device=means.device).index_add_(
        0, groups, w[:, None, None] * second) / total[:, None, None]
    merged = (merged + merged.transpose(1, 2)) / 2
    evals, evecs = torch.linalg.eigh(merged)
    evecs = evecs * torch.where(torch.linalg.det(evecs) < 0, -1.0, 1.0)[:, None, None]  # a proper rotation
    new_scales = evals.clamp(min=1e-20).sqrt()
    area_children = torch.zeros(n_groups, dtype=torch.float64, device=means.device).index_add_(
        0, groups, opacities.double() * _surface(scales.double()))
    largest = torch.zeros(n_groups, dtype=torch.float64, device=means.device).scatter_reduce_(
        0, groups, opacities.double(), "amax", include_self=False)
    new_opacity = (area_children / _surface(new_scales).clamp(min=1e-30)).clamp(max=MAX_OPACITY)
    new_opacity = torch.maximum(new_opacity, largest.clamp(max=MAX_OPACITY))
    new_sh = torch.zeros(n_groups, *sh.shape[1:], dtype=torch.float64, device=means.device).index_add_(
        0, groups, w[:, None, None] * sh.double()) / total[:, None, None]
    extent = torch.zeros(n_groups, dtype=torch.float64, device=means.device).scatter_reduce_(
        0, groups, 3.0 * scales.double().amax(dim=1), "amax", include_self=False)
    return (mu.float(), _quaternions(evecs).float(), new_scales.float(), new_opacity.float(), new_sh.float(),
            extent.float())


def build_lod(scene: Scene, progress: bool = False) -> PeripheryLod:
    """The hierarchy of ``scene`` (module docstring); ``progress`` shows a bar per level."""
    means, quats, scales, opacities, sh = scene.means, scene.quats, scene.scales, scene.opacities, scene.sh
    n = scene.count
    levels = [(means, quats, scales, opacities, sh, torch.zeros(n, device=scene.device))]
    parents = []
    if n:
        lo = means.amin(dim=0)
        # torch.quantile takes at most 2**24 rows: a strided sample of a larger scene.
        sample = means[:: max(1, n // 1_000_000)].float()
        box = (torch.quantile(sample, 0.98, dim=0) - torch.quantile(sample, 0.02, dim=0)).clamp(min=1e-6)
        base = float(box.prod() / n) ** (1.0 / 3.0)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc=f"periphery level of detail of {scene.source or 'the scene'}", unit="level")
        cell = max(base, 1e-9)
        while levels[-1][0].shape[0] >= MIN_TOP:
            m, q, s, a, c, _ = levels[-1]
            keys = torch.floor((m - lo) / cell).long()
            _, groups = torch.unique(keys, dim=0, return_inverse=True)
            count = int(groups.max()) + 1
            if count > m.shape[0] * 0.9:  # too little merging at this cell size: coarser before a level
                cell *= 2.0
                if cell > 1e6 * max(base, 1e-9):
                    break
                continue
            merged = _merge(m, q, s, a, c, groups, count)
            parents.append(groups)
            levels.append(merged)
            cell *= 2.0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(nodes=count)
        if bar is not None:
            bar.close()
    offsets = [0]
    for lv in levels:
        offsets.append(offsets[-1] + lv[0].shape[0])
    parent = torch.full((offsets[-1],), -1, dtype=torch.int64, device=scene.device)
    for l, groups in enumerate(parents):
        parent[offsets[l]:offsets[l + 1]] = groups + offsets[l + 1]
    cat = [torch.cat([lv[k] for lv in levels]) for k in range(6)]
    return PeripheryLod(cat[0], cat[1], cat[2], cat[3], cat[4], parent, cat[5], tuple(offsets), scene.source)


def select_cut(lod: PeripheryLod, positions: Tensor, focal_px: float, tau_px: float) -> Tensor:
    """[M] bool: the nodes drawn for eyes at ``positions`` [E, 3] with a periphery focal length
    ``focal_px``: a node is opened when its children would project to at least ``tau_px``
    pixels from the nearest eye (module docstring)."""
    M = lod.means.shape[0]
    drawn = torch.zeros(M, dtype=torch.bool, device=lod.means.device)
    if M == 0:
        return drawn
    top = lod.levels - 1
    o = lod.offsets
    candidate = torch.ones(o[top + 1] - o[top], dtype=torch.bool, device=lod.means.device)
    for l in range(top, -1, -1):
        sl = slice(o[l], o[l + 1])
        if l == 0:
            drawn[sl] = candidate
            break
        dist = torch.cdist(lod.means[sl].float(), positions.float()).amin(dim=1).clamp(min=1e-6)
        open_ = candidate & (focal_px * lod.child_extent[sl] / dist >= tau_px)
        drawn[sl] = candidate & ~open_
        # Children of opened nodes are the next level's candidates.
        children = slice(o[l - 1], o[l])
        candidate = open_[lod.parent[children] - o[l]]
    return drawn


def content_key(scene: Scene) -> str:
    """A hash of the scene's content and the builder's version (the disk cache's file name)."""
    h = hashlib.sha256(f"gscache-lod-{BUILDER_VERSION}-{scene.count}-{scene.sh.shape}".encode())
    for t in scene.tensors():
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:32]


FIELDS = ("means", "quats", "scales", "opacities", "sh", "parent", "child_extent")


def load_or_build(scene: Scene, cache_dir: Path | None, progress: bool = False) -> PeripheryLod:
    """The level of detail of ``scene`` from ``cache_dir`` (keyed by content_key), else built and
    written there (atomically; only the merged levels and the parents: level 0 is the scene);
    ``cache_dir`` None: built, not kept."""
    from ..atomic import atomic_write

    path = None if cache_dir is None else Path(cache_dir) / f"{content_key(scene)}.pt"
    n = scene.count
    if path is not None and path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            own = (scene.means, scene.quats, scene.scales, scene.opacities, scene.sh)
            fields = {k: torch.cat([t.cpu(), data[k]]) for k, t in zip(FIELDS[:5], own)}
            fields["parent"] = data["parent"]
            fields["child_extent"] = torch.cat([torch.zeros(n), data["child_extent"]])
            offsets = tuple(int(v) for v in data["offsets"])
            if offsets[1] == n and fields["parent"].shape[0] == offsets[-1]:
                return PeripheryLod(**fields, offsets=offsets, source=scene.source).to(scene.device)
        except Exception:  # noqa: BLE001 (whatever a damaged or foreign file raises: it is rebuilt)
            pass
    lod = build_lod(scene, progress)
    if path is not None:
        cpu = lod.to("cpu")
        payload = {k: getattr(cpu, k)[n:].clone() for k in FIELDS if k != "parent"}
        payload["parent"] = cpu.parent
        payload["offsets"] = torch.tensor(lod.offsets)
        with atomic_write(path) as f:
            torch.save(payload, f)
    return lod


def default_cache_dir() -> Path:
    """The levels of detail kept between runs: ``lod`` in gscache.atomic.cache_root()."""
    from ..atomic import cache_root

    return cache_root() / "lod"
