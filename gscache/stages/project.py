"""Project: EWA splatting of 3D Gaussians to screen-space ellipses, per view.

For a camera-space centre (x, y, z) and covariance Sigma_c = R Sigma R^T, the 2D covariance is
``J Sigma_c J^T + eps2d * I`` with the Jacobian of the perspective map evaluated at the centre,
whose x/z and y/z are clamped to 1.3x the image's half-extent (Zwicker et al. 2002; the clamp as
in Inria's 3DGS), so Gaussians far outside the view do not produce huge splats. The conic is the
inverse of that 2D covariance, the radii are ``ceil(extent_sigma * sqrt(diag))`` (the
axis-aligned half extent of the extent_sigma ellipse), and a Gaussian is drawn in a view only if
its depth is in (near, far), its 2D covariance is positive definite and its box meets the image.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..camera import ViewBatch
from ..config import ProjectConfig
from ..records import Projected, Shaded, Visible

FOV_CLAMP = 1.3  # the Jacobian is evaluated at most 30% beyond the image border


def frustum_limits(K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clamp limits of x/z and y/z for the Jacobian: (x_pos, x_neg, y_pos, y_neg), each a scalar."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    margin = FOV_CLAMP - 1.0
    return (
        (width - cx) / fx + margin * tan_fovx,
        cx / fx + margin * tan_fovx,
        (height - cy) / fy + margin * tan_fovy,
        cy / fy + margin * tan_fovy,
    )


def _project_view(means: Tensor, covars: Tensor, viewmat: Tensor, K: Tensor, views: ViewBatch, cfg: ProjectConfig):
    """One view: [V, 3], [V, 3, 3] -> means2d [V, 2], conics [V, 3], depths [V], radii [V, 2]."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ R.T + t  # [V, 3] camera-space centres
    cov_c = R @ covars @ R.T  # [V, 3, 3]
    x, y, z = p.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg = frustum_limits(K, views.width, views.height)
    tx = z * torch.clamp(x / z, min=-lim_x_neg, max=lim_x_pos)
    ty = z * torch.clamp(y / z, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], dim=-1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(1, 2)  # [V, 2, 2]
    a = cov2d[:, 0, 0] + cfg.eps2d
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    c = cov2d[:, 1, 1] + cfg.eps2d
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)  # [V, 2]
    conics, radii = _splat(a, b, c, means2d, z, views, cfg)
    return means2d, conics, z, radii


def _splat(a: Tensor, b: Tensor, c: Tensor, means2d: Tensor, z: Tensor, views: ViewBatch,
           cfg: ProjectConfig) -> tuple[Tensor, Tensor]:
    """The conics [..., 3] and radii [..., 2] int32 (0: not drawn) of splats with 2D covariance
    [[a, b], [b, c]] (low-pass term included) centred at ``means2d`` [..., 2], depth ``z``."""
    det = a * c - b * b
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    radii = torch.stack(
        [torch.ceil(cfg.extent_sigma * torch.sqrt(a.clamp(min=0))), torch.ceil(cfg.extent_sigma * torch.sqrt(c.clamp(min=0)))],
        dim=-1,
    )
    drawn = (det > 0) & (z > views.near_m) & (z < views.far_m)
    drawn &= (means2d[..., 0] + radii[..., 0] > 0) & (means2d[..., 0] - radii[..., 0] < views.width)
    drawn &= (means2d[..., 1] + radii[..., 1] > 0) & (means2d[..., 1] - radii[..., 1] < views.height)
    drawn &= torch.isfinite(means2d).all(dim=-1) & torch.isfinite(conics).all(dim=-1)
    radii = torch.where(drawn[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return conics, radii


def project(visible: Visible, shaded: Shaded, views: ViewBatch, cfg: ProjectConfig) -> Projected:
    """Screen-space ellipses of the visible Gaussians in each of the E views.

    Args:
        visible: V Gaussians (centres).
        shaded: their 3D covariances.
        views: E views.
        cfg: low-pass filter and extent.

    Returns:
        Projected with [E, V, ...] fields; radii are 0 where a Gaussian is not drawn.
    """
    cv = shaded.covars
    covars = torch.stack([cv[:, 0], cv[:, 1], cv[:, 2], cv[:, 1], cv[:, 3], cv[:, 4], cv[:, 2], cv[:, 4], cv[:, 5]], dim=-1)
    covars = covars.reshape(-1, 3, 3)  # [V, 3, 3]
    per_view = [
        _project_view(visible.means, covars, views.viewmats[e], views.Ks[e], views, cfg) for e in range(views.n_views)
    ]
    means2d, conics, depths, radii = (torch.stack(parts).contiguous() for parts in zip(*per_view))
    return Projected(means2d=means2d, conics=conics, depths=depths, radii=radii)


def scale_projection(projected: Projected, full: ViewBatch, views: ViewBatch, cfg: ProjectConfig) -> Projected:
    """The projection into ``views``, the views of ``full`` at a lower resolution
    (ViewBatch.scaled: the focal lengths and principal point times sx = width / full width and
    sy likewise), derived from ``projected`` (into ``full``) instead of projecting again (one
    projection per eye for a foveated frame's views).

    The Jacobian's rows scale by sx and sy exactly (its clamp limits are ratios the scaling
    keeps), so the centre is (sx u, sy v) and the 2D covariance before the low-pass term is
    diag(sx, sy) (S - eps2d I) diag(sx, sy), with S recovered by inverting the conic; the low-pass
    term is then added in the new view's pixels, the radii and the drawn test are the
    projection's own. Equal to projecting again up to float rounding (a radius on a ceil
    boundary may differ by one pixel); the depths are shared."""
    sx, sy = views.width / full.width, views.height / full.height
    # In float64: the conic of an elongated splat is ill-conditioned to invert in float32.
    A, B, C = projected.conics.double().unbind(-1)
    det_conic = A * C - B * B
    inv = torch.where(det_conic > 0, 1.0 / det_conic, torch.zeros_like(det_conic))
    a = (sx * sx * (C * inv - cfg.eps2d) + cfg.eps2d).float()
    b = (sx * sy * (-B * inv)).float()
    c = (sy * sy * (A * inv - cfg.eps2d) + cfg.eps2d).float()
    means2d = projected.means2d * torch.tensor([sx, sy], dtype=projected.means2d.dtype, device=projected.means2d.device)
    conics, radii = _splat(a, b, c, means2d, projected.depths, views, cfg)
    return Projected(means2d=means2d.contiguous(), conics=conics.contiguous(), depths=projected.depths,
                     radii=radii.contiguous())
