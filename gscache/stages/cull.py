"""Cull: keep the Gaussians that can reach any pixel of any view (the union of the frusta).

The test is conservative with respect to ``project``: every Gaussian that projection would
draw in some view is kept, so culling never changes an image. It bounds the projected 3-sigma
half extent without building covariances: with s = the largest scale, the EWA Jacobian row
``(fx/z, 0, -fx*x/z^2)`` has norm ``fx/z * sqrt(1 + (x/z)^2)`` and projection clamps x/z to
``lim_x``, so ``radius_x <= ceil(k * sqrt(s^2 * (fx/z)^2 * (1 + lim_x^2) + eps2d))`` (likewise in y).
"""

from __future__ import annotations

import torch

from ..camera import ViewBatch
from ..config import CullConfig, ProjectConfig
from ..records import Visible
from ..scene.record import Scene
from .project import frustum_limits


def cull(scene: Scene, views: ViewBatch, cfg: CullConfig, project_cfg: ProjectConfig) -> Visible:
    """Gaussians of ``scene`` that may be drawn in at least one of ``views``.

    Args:
        scene: N Gaussians on the render device.
        views: E views.
        cfg: guard band.
        project_cfg: the projection settings the bound must cover (eps2d, extent_sigma).

    Returns:
        Visible with V <= N Gaussians in scene order.
    """
    keep = torch.zeros(scene.count, dtype=torch.bool, device=scene.device)
    s_max = scene.scales.amax(dim=1) if scene.count else scene.scales.new_zeros(0)  # [N]
    k = project_cfg.extent_sigma
    for e in range(views.n_views):  # E is 1 or 2: a loop over views, not Gaussians
        R, t = views.viewmats[e, :3, :3], views.viewmats[e, :3, 3]
        p = scene.means @ R.T + t  # [N, 3]
        z = p[:, 2]
        fx, fy = views.Ks[e, 0, 0], views.Ks[e, 1, 1]
        cx, cy = views.Ks[e, 0, 2], views.Ks[e, 1, 2]
        lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg = frustum_limits(views.Ks[e], views.width, views.height)
        lim_x = torch.maximum(lim_x_pos, lim_x_neg)
        lim_y = torch.maximum(lim_y_pos, lim_y_neg)
        z_safe = z.clamp(min=views.near_m)
        u = fx * p[:, 0] / z_safe + cx
        v = fy * p[:, 1] / z_safe + cy
        rx = torch.ceil(k * torch.sqrt((s_max * fx / z_safe) ** 2 * (1 + lim_x**2) + project_cfg.eps2d))
        ry = torch.ceil(k * torch.sqrt((s_max * fy / z_safe) ** 2 * (1 + lim_y**2) + project_cfg.eps2d))
        rx = rx + 1 + cfg.margin_px  # +1 px absorbs float rounding between this bound and project
        ry = ry + 1 + cfg.margin_px
        keep |= (
            (z > views.near_m)
            & (z < views.far_m)
            & (u + rx > 0)
            & (u - rx < views.width)
            & (v + ry > 0)
            & (v - ry < views.height)
        )
    return select_visible(scene, keep)


def select_visible(scene: Scene, keep: torch.Tensor) -> Visible:
    """The Visible record of the Gaussians where ``keep`` [N] (bool) is true, in scene order."""
    ids = torch.nonzero(keep).squeeze(1)
    if ids.shape[0] == scene.count:
        # Everything is visible: share the scene's tensors instead of copying them (stages never
        # modify their inputs in place, so sharing is safe).
        return Visible(ids, scene.means, scene.quats, scene.scales, scene.opacities, scene.sh)
    return Visible(
        ids=ids,
        means=scene.means[ids],
        quats=scene.quats[ids],
        scales=scene.scales[ids],
        opacities=scene.opacities[ids],
        sh=scene.sh[ids],
    )
