"""Real spherical harmonics to degree 3, in the basis and sign convention of Inria's 3DGS.

The constants are the normalisation factors of the real SH basis functions Y_lm; colours are
``max(0, sum_k sh[k] * Y_k(dir) + 0.5)`` with ``dir`` the unit vector from the eye to the
Gaussian. ``cuda/common.cuh`` holds the same numbers (issue 3 generates both from here).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import GscacheError

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

MAX_SH_DEGREE = 3


def num_sh_coeffs(degree: int) -> int:
    """K = (degree + 1)^2 coefficients per colour channel."""
    return (degree + 1) ** 2


def sh_degree_of(k: int) -> int:
    """The degree whose coefficient count is ``k`` (1, 4, 9 or 16)."""
    for d in range(MAX_SH_DEGREE + 1):
        if num_sh_coeffs(d) == k:
            return d
    raise GscacheError(f"sh: {k} SH coefficients per channel is not (d+1)^2 for a degree d in 0..3")


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """Basis values Y_k(dirs) for k < (degree + 1)^2.

    Args:
        dirs: unit directions, [..., 3].
        degree: 0..3.

    Returns:
        [..., (degree + 1)^2] in the coefficient order of Inria's PLY files.
    """
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(sh: Tensor, dirs: Tensor, degree: int) -> Tensor:
    """Evaluate SH colour along ``dirs`` with the first (degree+1)^2 coefficients of ``sh``.

    Args:
        sh: coefficients, [..., K, 3] with K >= (degree + 1)^2.
        dirs: unit directions, [..., 3] (broadcast against sh's leading dims).
        degree: 0..3.

    Returns:
        Raw SH value (before the +0.5 offset and clamp), [..., 3].
    """
    k = num_sh_coeffs(degree)
    basis = sh_basis(dirs, degree)  # [..., k]
    return (basis.unsqueeze(-1) * sh[..., :k, :]).sum(dim=-2)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """The DC coefficient whose colour is ``rgb`` (rgb = 0.5 + C0 * f_dc)."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    """The colour of a DC coefficient seen from any direction."""
    return 0.5 + SH_C0 * dc
