"""The three MLPs of a structured scene packed for the fused derivation kernels (layout in
cuda/common.cuh): every layer's weight transposed to [in, out] and its bias, in one f32 buffer,
with a layer table and an MLP table. Only chains of Linear layers and ReLU / Tanh / Sigmoid
activations (what Scaffold-GS and Octree-GS train) can be packed."""

from __future__ import annotations

import dataclasses
import functools
import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import GscacheError, GscacheWarning
from ..scene.record import Scene
from ..scene.structured import PER_OFFSET, AnchorMLPs, StructuredScene
from ..stages.derive import appearance_row, derive_anchors, mixed_features, view_inputs
from ..stages.protocols import DeriveFn

ACTIVATIONS = {"ReLU": 1, "Tanh": 2, "Sigmoid": 3}
MAX_WIDTH = 256  # GS_MLP_MAX_WIDTH in cuda/common.cuh


@dataclass(frozen=True)
class PackedMLPs:
    weights: Tensor
    """All layers, f32[W + 16]: per layer W^T [in, out] then b [out]; 16 zeros of padding."""
    layers: Tensor
    """i32[L, 4]: (in, out, activation, offset into weights)."""
    mlps: Tensor
    """i32[9]: (first layer, layer count, takes the distance) for opacity, cov and colour."""

    def to(self, device: torch.device) -> "PackedMLPs":
        return PackedMLPs(self.weights.to(device), self.layers.to(device), self.mlps.to(device))


def _kind(module: torch.nn.Module) -> str:
    # TorchScript modules keep the Python class name in original_name.
    return getattr(module, "original_name", type(module).__name__)


def _layers(module: torch.nn.Module, name: str) -> list[tuple[Tensor, Tensor, int]]:
    """(weight [out, in], bias [out], activation) per Linear of a Sequential chain."""
    if _kind(module) != "Sequential":
        raise GscacheError(f"{name}: the fused derivation needs a Sequential of Linear and ReLU/Tanh/Sigmoid "
                           f"layers, got a {_kind(module)}")
    out: list[list] = []
    for child_name, child in module.named_children():
        kind = _kind(child)
        if kind == "Linear":
            weight = child.weight.detach().float()
            bias = child.bias.detach().float() if child.bias is not None else torch.zeros(weight.shape[0])
            out.append([weight, bias, 0])
        elif kind in ACTIVATIONS and out and out[-1][2] == 0:
            out[-1][2] = ACTIVATIONS[kind]
        else:
            raise GscacheError(f"{name}: layer {child_name} ({kind}) cannot be fused; supported: Linear followed by "
                               f"at most one of {', '.join(ACTIVATIONS)}")
    if not out:
        raise GscacheError(f"{name}: no Linear layer")
    for (w0, _, _), (w1, _, _) in zip(out, out[1:]):
        if w0.shape[0] != w1.shape[1]:
            raise GscacheError(f"{name}: a layer of {w0.shape[0]} outputs feeds one of {w1.shape[1]} inputs")
    widest = max(max(w.shape) for w, _, _ in out)
    if widest > MAX_WIDTH:
        raise GscacheError(f"{name}: a layer {widest} wide exceeds the fused kernels' {MAX_WIDTH}")
    return [(w, b, act) for w, b, act in out]


def _pack(mlps: AnchorMLPs, appearance: Tensor | None) -> PackedMLPs:
    chunks, table, info, offset = [], [], [], 0
    for name, module, dist in (("opacity_mlp", mlps.opacity, mlps.opacity_dist), ("cov_mlp", mlps.cov, mlps.cov_dist),
                               ("color_mlp", mlps.color, mlps.color_dist)):
        layers = _layers(module, name)
        if name == "color_mlp" and appearance is not None:
            # The embedding is the same for every anchor: its columns of the first layer fold into
            # the bias (exact up to float rounding), so the kernels see an MLP of the plain width.
            weight, bias, act = layers[0]
            D = appearance.numel()
            if weight.shape[1] <= D:
                raise GscacheError(f"{name}: {weight.shape[1]} inputs cannot end with a {D}-wide appearance embedding")
            layers[0] = (weight[:, :-D], bias + weight[:, -D:] @ appearance.cpu().float(), act)
        info += [len(table), len(layers), int(dist)]
        for weight, bias, act in layers:
            n_out, n_in = weight.shape
            table.append([n_in, n_out, act, offset])
            chunks += [weight.cpu().t().reshape(-1), bias.cpu().reshape(-1)]
            offset += n_in * n_out + n_out
    chunks.append(torch.zeros(16))  # the cpu kernel reads whole chunks of 16 outputs past a row
    return PackedMLPs(torch.cat(chunks).contiguous(), torch.tensor(table, dtype=torch.int32),
                      torch.tensor(info, dtype=torch.int32))


_PACKED: "weakref.WeakKeyDictionary[AnchorMLPs, dict]" = weakref.WeakKeyDictionary()


def unfusable_reason(scene: StructuredScene) -> str | None:
    """Why the fused kernels cannot derive this scene, or None when they can."""
    if scene.lod_rounding == "progressive":
        return "the fused kernels do not fade anchors in (dist2level='progressive')"
    try:
        packed_mlps(scene.mlps, torch.device("cpu"), 0 if scene.mlps.appearance is not None else None)
    except GscacheError as exc:
        return str(exc)
    return None


def packed_mlps(mlps: AnchorMLPs, device: torch.device, appearance_index: int | None = None) -> PackedMLPs:
    """The packed MLPs on ``device``, with row ``appearance_index`` of the appearance embeddings
    folded into the colour MLP (packed once per AnchorMLPs object and row; their weights are
    treated as frozen, as a loaded checkpoint's are)."""
    if (mlps.appearance is None) != (appearance_index is None):
        raise GscacheError("derive: an appearance index is needed exactly when the model has appearance embeddings")
    per_key = _PACKED.setdefault(mlps, {})
    key = (device, appearance_index)
    if key not in per_key:
        cpu = per_key.get((torch.device("cpu"), appearance_index))
        if cpu is None:
            row = None if appearance_index is None else mlps.appearance[appearance_index]
            cpu = _pack(mlps, row)
        per_key[key] = cpu.to(device)
    return per_key[key]


def check_kernel_widths(scene: StructuredScene, appearance_index: int | None) -> None:
    """The fused kernels' contract on the packed MLPs (cuda/common.cuh, GsDeriveParams): each
    MLP's first layer takes the F + 3 (+ 1 distance) (+ 1 level) inputs the kernel writes (the
    appearance embedding folded into the bias), and its last layer gives the k, 7k or 3k values
    the kernel reads per anchor. StructuredScene checks the modules when it is built; this checks
    the packed table the kernels will index, once before every launch, so that no kernel reads
    outside its buffers whatever was done to the modules since."""
    packed = packed_mlps(scene.mlps, torch.device("cpu"), appearance_index)
    layers, table = packed.layers.tolist(), packed.mlps.tolist()
    F, k, level = scene.features.shape[1], scene.n_offsets, int(scene.mlps.add_level)
    for j, name in enumerate(PER_OFFSET):
        first, count, dist = table[3 * j: 3 * j + 3]
        n_in, n_out = layers[first][0], layers[first + count - 1][1]
        if (n_in, n_out) != (F + 3 + dist + level, PER_OFFSET[name] * k):
            raise GscacheError(f"{scene.source or 'StructuredScene'}: mlps.{name}: the fused derivation needs "
                               f"{F + 3 + dist + level} inputs and {PER_OFFSET[name] * k} outputs "
                               f"(F = {F}, n_offsets = {k}), the packed MLP has {n_in} and {n_out}")


def _compact(scene: StructuredScene, ids: Tensor, features: Tensor) -> tuple[StructuredScene, Tensor]:
    """The anchors ``ids`` alone, with ``features`` [A', F] in place of theirs (the feature bank's
    mix, which depends on the view), and the indices 0..A'-1 into it."""
    sub = dataclasses.replace(scene, anchors=scene.anchors[ids].contiguous(), offsets=scene.offsets[ids].contiguous(),
                              features=features.contiguous(), scales=scene.scales[ids].contiguous(),
                              levels=scene.levels[ids].contiguous(), extra_levels=scene.extra_levels[ids].contiguous(),
                              anchor_quats=None)
    return sub, torch.arange(ids.numel(), device=ids.device)


def with_reference_fallback(kernel) -> DeriveFn:
    """The fused derivation ``kernel`` (``kernel(scene, ids, position, appearance_index)`` with the
    plain MLP inputs), around it what the kernels leave to torch (the feature bank's mix, the
    appearance row's check), or, for scenes it cannot derive, the torch reference with a
    GscacheWarning that names the scene and why (Python's warning filters show it once per scene)."""

    @functools.wraps(kernel)
    def derive(scene: StructuredScene, ids: Tensor, position: Tensor, appearance_index: int = 0) -> Scene:
        reason = unfusable_reason(scene)
        if reason is not None:
            warnings.warn(f"{scene.source}: {reason}; deriving with the torch reference instead", GscacheWarning,
                          stacklevel=2)
            return derive_anchors(scene, ids, position, appearance_index)
        index = None
        if scene.mlps.appearance is not None:
            appearance_row(scene, appearance_index)  # the range check, with its message
            index = appearance_index
        check_kernel_widths(scene, index)
        if scene.mlps.feature_bank is not None:
            direction, dist = view_inputs(scene, ids, position)
            scene, ids = _compact(scene, ids, mixed_features(scene, ids, direction, dist))
        return kernel(scene, ids, position, index)

    return derive
