"""The Scene record: activated Gaussians, and the one function every loader builds it with."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from .._validate import ShapeChecker
from ..errors import GscacheError, GscacheWarning
from ..sh import sh_degree_of
from .identity import assign_token, keep_token

QUAT_TOLERANCE = 1e-4
"""Largest | |q|^2 - 1 | a Scene's quaternion may have as it is: float32 rounding of a
normalised one stays below 1e-6, and a covariance from a quaternion this far off is inflated by
at most 0.01%."""


def _scaled_by_largest(quats: Tensor) -> tuple[Tensor, Tensor]:
    """(``quats`` [N, 4] divided row by row by its largest absolute component, that component
    [N]); zero rows stay zero. Lengths of the scaled rows (1 to 2) neither overflow for huge
    components (1e30) nor underflow for tiny ones (1e-30)."""
    qmax = quats.abs().amax(dim=1)
    return quats / torch.where(qmax > 0, qmax, torch.ones_like(qmax))[:, None], qmax


def unit_quaternions(quats: Tensor) -> Tensor:
    """``quats`` [N, 4] (finite, none all zero) divided by their lengths, [N, 4]."""
    scaled, _ = _scaled_by_largest(quats)
    return scaled / scaled.norm(dim=1, keepdim=True)


def normalised_rotations(quats, where: str, field_name: str = "quats"):
    """The one rule for the quaternions of records however they are built (Scene; the anchor
    rotations of a StructuredScene): a finite, non-zero quaternion whose squared length is more
    than QUAT_TOLERANCE from 1 is normalised, with one GscacheWarning that names the field and
    counts the rows; every other row is kept bit for bit (the same tensor when no row is off).
    Zero and non-finite quaternions are left for ``Scene.check_values`` to refuse by name: they
    have no direction to keep. Anything but a float [N, 4] tensor is left for ``validate``."""
    if not isinstance(quats, Tensor) or quats.dim() != 2 or quats.shape[1] != 4 or not quats.is_floating_point() \
            or quats.shape[0] == 0 or quats.is_meta:  # a meta tensor has no values to look at
        return quats
    # The common case first, about 3 ns a row: every squared length within the tolerance (a NaN
    # propagates through max and an overflow is inf: both fail the test and take the careful path).
    if bool((torch.einsum("ij,ij->i", quats, quats) - 1.0).abs().max() <= QUAT_TOLERANCE):
        return quats
    scaled, qmax = _scaled_by_largest(quats)
    length = qmax * scaled.norm(dim=1)  # [N]; inf where it overflows float32
    # `~(x <= tol)` is true for an overflowed (inf) length too; NaN rows are not finite.
    off = torch.isfinite(quats).all(dim=1) & (qmax > 0) & ~((length * length - 1.0).abs() <= QUAT_TOLERANCE)
    if not bool(off.any()):  # one host sync on a CUDA scene: the warning needs the answer
        return quats
    lengths = length[off]
    warnings.warn(f"{where}: field {field_name!r}: {int(off.sum()):,} of {quats.shape[0]:,} rotations are not unit "
                  f"quaternions (length {float(lengths.min()):.4g} to {float(lengths.max()):.4g}); normalised, as "
                  f"make_scene does (a quaternion's length would scale its Gaussian's covariance by its square)",
                  GscacheWarning, stacklevel=4)
    fixed = quats.clone()
    fixed[off] = scaled[off] / scaled[off].norm(dim=1, keepdim=True)
    return fixed


@dataclass(frozen=True, slots=True)
class Scene:
    """A 3DGS scene with activated parameters (see ARCHITECTURE §2 and ``gscache.camera``).

    Build one with :func:`make_scene`, which checks and repairs raw arrays. Edits make a new
    Scene through :meth:`edited`, which bumps ``version`` so caches know to drop what they hold.
    Built any way (the constructor, ``edited``, ``dataclasses.replace``), a Scene has the shapes
    and dtypes below (``validate``, a GscacheError naming the field) and unit quaternions: others
    are normalised with a warning (:func:`normalised_rotations`), so that every backend draws the
    same Gaussians. Values that cannot be drawn (NaN, negative scales) are refused by
    ``check_values`` where a renderer takes the scene.
    """

    means: Float[Tensor, "N 3"]
    """World-space centres, float32."""
    quats: Float[Tensor, "N 4"]
    """Unit rotations (w, x, y, z), float32."""
    scales: Float[Tensor, "N 3"]
    """Linear standard deviations along the local axes (> 0), float32."""
    opacities: Float[Tensor, "N"]
    """Opacity in [0, 1], float32."""
    sh: Float[Tensor, "N K 3"]
    """SH coefficients per channel, K = (degree + 1)^2; sh[:, 0] is the DC term f_dc."""
    version: int = 0
    """Edit counter: every edit gives a new Scene with version + 1."""
    source: str = ""
    """Where the scene came from (a path or a generator name), for messages and reports."""
    token: int = field(init=False, repr=False, compare=False)
    """Identity for caches (gscache.scene.identity): new for every scene built, kept by ``to()``."""

    def __post_init__(self) -> None:
        self.validate()  # shapes, dtypes, devices: no pass over the data
        object.__setattr__(self, "quats", normalised_rotations(self.quats, f"scene {self.source or '(unnamed)'}"))
        assign_token(self)

    @property
    def count(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def nbytes(self) -> int:
        """Bytes held by the Gaussian tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.means, self.quats, self.scales, self.opacities, self.sh)

    def to(self, device: torch.device | str) -> "Scene":
        """The same scene (same version) with its tensors on ``device``."""
        device = torch.device(device)
        if self.device == device:
            return self
        moved = [t.to(device) for t in self.tensors()]
        return keep_token(Scene(*moved, version=self.version, source=self.source), self)

    def edited(self, **fields: Tensor) -> "Scene":
        """A new scene with some tensors replaced and ``version`` bumped."""
        unknown = set(fields) - {"means", "quats", "scales", "opacities", "sh"}
        if unknown:
            raise GscacheError(f"Scene.edited: unknown fields {sorted(unknown)}")
        return dataclasses.replace(self, version=self.version + 1, **fields)

    def check_values(self) -> None:
        """Raise GscacheError naming the field when a value cannot be rendered: NaN or Inf
        anywhere, opacities outside [0, 1], a non-positive scale, a zero quaternion (a Scene built
        directly, not by make_scene, which drops or repairs such rows)."""
        for name in ("means", "quats", "scales", "opacities", "sh"):
            bad = int((~torch.isfinite(getattr(self, name))).sum())
            if bad:
                raise GscacheError(f"scene {self.source or '(unnamed)'}: field {name!r} has {bad} NaN or Inf values; "
                                   f"build scenes with make_scene, which drops them")
        if self.count:
            if bool(((self.opacities < 0) | (self.opacities > 1)).any()):
                raise GscacheError(f"scene {self.source or '(unnamed)'}: field 'opacities': expected values in [0, 1]")
            if bool((self.scales <= 0).any()):
                raise GscacheError(f"scene {self.source or '(unnamed)'}: field 'scales': expected values > 0")
            if bool((self.quats.abs().amax(dim=1) == 0).any()):
                raise GscacheError(f"scene {self.source or '(unnamed)'}: field 'quats': a zero quaternion")

    def bounds(self, quantile: float = 0.0) -> tuple[Tensor, Tensor]:
        """Per-axis (low, high) of the centres; a quantile > 0 ignores that fraction of outliers."""
        if self.count == 0:
            z = torch.zeros(3)
            return z, z
        m = self.means.float().cpu()
        if quantile <= 0:
            return m.min(0).values, m.max(0).values
        # torch.quantile refuses very large inputs; a fixed-stride sample is plenty for bounds.
        stride = max(1, m.shape[0] // 200_000)
        sample = m[::stride]
        return torch.quantile(sample, quantile, dim=0), torch.quantile(sample, 1 - quantile, dim=0)

    def validate(self) -> None:
        c = ShapeChecker(f"scene {self.source}: Scene" if self.source else "Scene")
        c.check("means", self.means, ("N", 3), torch.float32)
        c.check("quats", self.quats, ("N", 4), torch.float32)
        c.check("scales", self.scales, ("N", 3), torch.float32)
        c.check("opacities", self.opacities, ("N",), torch.float32)
        c.check("sh", self.sh, ("N", "K", 3), torch.float32)
        if self.sh.shape[1] not in (1, 4, 9, 16):
            raise GscacheError(f"{c.owner}.sh: expected K = (degree + 1)^2 = 1, 4, 9 or 16 coefficients per channel, "
                               f"got shape {tuple(self.sh.shape)}")


_CHECK_ROWS = 1 << 16
"""Rows whose finiteness is checked at a time: torch.isfinite of a whole [N, 16, 3] SH tensor
holds temporaries of about 1.3 times its size (measured: 1.28 GB for 4M Gaussians), which would
make the check, not the scene, a reader's peak memory."""


def _finite_rows(t: Tensor) -> Tensor:
    """[N] bool: the rows of ``t`` [N, ...] whose values are all finite, a few rows at a time."""
    out = torch.empty(t.shape[0], dtype=torch.bool)
    for start in range(0, t.shape[0], _CHECK_ROWS):
        ok = torch.isfinite(t[start:start + _CHECK_ROWS])
        out[start:start + _CHECK_ROWS] = ok.flatten(1).all(dim=1) if ok.dim() > 1 else ok
    return out


def make_scene(means, quats, scales, opacities, sh, source: str = "") -> Scene:
    """Build a Scene from activated arrays, dropping Gaussians that cannot be drawn.

    Rows with NaN or Inf in any field, a zero quaternion, or a non-positive scale are dropped
    with one :class:`GscacheWarning` that counts them; quaternions are normalised and
    opacities clamped to [0, 1].

    Args:
        means: [N, 3]; quats: [N, 4] (w, x, y, z), any length; scales: [N, 3] linear;
        opacities: [N] in [0, 1]; sh: [N, K, 3] with K in (1, 4, 9, 16).
        source: shown in messages (a file path or a generator name).
    """
    where = source or "scene"
    arrays = {}
    for name, value in (("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities), ("sh", sh)):
        if isinstance(value, Tensor):
            t = value.detach().to(device="cpu", dtype=torch.float32)
        else:
            t = torch.from_numpy(np.array(value, dtype=np.float32))  # a writable copy
        arrays[name] = t.contiguous()
    n = arrays["means"].shape[0] if arrays["means"].dim() == 2 else -1
    expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,)}
    for name, shape in expected.items():
        if n < 0 or tuple(arrays[name].shape) != shape:
            raise GscacheError(f"{where}: field '{name}' has shape {tuple(arrays[name].shape)}, expected {shape}")
    sh_t = arrays["sh"]
    if sh_t.dim() != 3 or sh_t.shape[0] != n or sh_t.shape[2] != 3:
        raise GscacheError(f"{where}: field 'sh' has shape {tuple(sh_t.shape)}, expected ({n}, K, 3)")
    try:
        sh_degree_of(sh_t.shape[1])
    except ValueError as exc:
        raise GscacheError(f"{where}: field 'sh': {exc}") from None

    finite = torch.ones(n, dtype=torch.bool)
    for t in arrays.values():
        finite &= _finite_rows(t)
    qmax = arrays["quats"].abs().amax(dim=1)
    drawable = finite & (qmax > 0) & (arrays["scales"] > 0).all(dim=1)
    n_bad = int(n - drawable.sum())
    if n_bad:
        n_nonfinite = int(n - finite.sum())
        warnings.warn(
            f"{where}: dropped {n_bad} of {n} Gaussians ({n_nonfinite} with NaN or Inf values, "
            f"{n_bad - n_nonfinite} with a zero quaternion or a non-positive scale)",
            GscacheWarning,
            stacklevel=2,
        )
        arrays = {k: v[drawable].contiguous() for k, v in arrays.items()}
    # File formats store quaternions of any length (Inria PLY), so these are normalised silently.
    quats_unit = unit_quaternions(arrays["quats"]).contiguous()
    opac = arrays["opacities"].clamp(0.0, 1.0).contiguous()
    return Scene(arrays["means"], quats_unit, arrays["scales"], opac, arrays["sh"], source=source)


def empty_scene(sh_degree: int = 0, source: str = "empty") -> Scene:
    """A scene with no Gaussians (renders the background)."""
    k = (sh_degree + 1) ** 2
    return Scene(
        torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, k, 3), source=source
    )
