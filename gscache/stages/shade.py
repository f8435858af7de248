"""Shade: view-independent 3D covariances and per-view colours from spherical harmonics."""

from __future__ import annotations

import torch
from torch import Tensor

from ..camera import ViewBatch
from ..config import ShadeConfig
from ..records import Shaded, Visible
from ..sh import eval_sh, sh_degree_of


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices of unit quaternions (w, x, y, z): [..., 4] -> [..., 3, 3]."""
    w, x, y, z = quats.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """Sigma = R S S R^T as its upper triangle (xx, xy, xz, yy, yz, zz): [V, 4], [V, 3] -> [V, 6]."""
    M = quat_to_rotmat(quats) * scales[:, None, :]  # [V, 3, 3] = R S
    cov = M @ M.transpose(1, 2)  # [V, 3, 3]
    return cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]].contiguous()


def colors_for_views(visible: Visible, positions: Tensor, degree: int) -> Tensor:
    """SH colour of every visible Gaussian seen from each position: [E, 3] -> [E, V, 3]."""
    dirs = visible.means[None, :, :] - positions[:, None, :]  # [E, V, 3]
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    raw = eval_sh(visible.sh[None], dirs, degree)  # [E, V, 3]
    return (raw + 0.5).clamp(min=0.0)


def shade(visible: Visible, views: ViewBatch, cfg: ShadeConfig) -> Shaded:
    """Covariances once, colours per view (exact view-dependent shading).

    Args:
        visible: V Gaussians.
        views: E views; colours use each view's centre.
        cfg: optional cap on the SH degree.
    """
    degree = sh_degree_of(visible.sh.shape[1])
    if cfg.sh_degree is not None:
        degree = min(degree, cfg.sh_degree)
    return Shaded(
        covars=covariances(visible.quats, visible.scales),
        colors=colors_for_views(visible, views.positions, degree).contiguous(),
    )
