"""Checks and conversions at the boundary between torch and a kernel backend."""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from ..camera import ViewBatch
from ..config import ProjectConfig
from ..errors import GscacheError
from ..records import Projected
from ._params import GsView


def check(t: Tensor, name: str, dtype: torch.dtype, device_type: str, shape: tuple | None = None) -> Tensor:
    """One check of dtype, device, shape and contiguity before a pointer is handed to a kernel."""
    if t.dtype != dtype:
        raise GscacheError(f"{name}: expected {dtype}, got {t.dtype}")
    if t.device.type != device_type:
        raise GscacheError(f"{name}: expected a {device_type} tensor, got one on {t.device}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise GscacheError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if not t.is_contiguous():
        raise GscacheError(f"{name}: expected a contiguous tensor")
    return t


def gs_views(views: ViewBatch) -> "ctypes.Array[GsView]":
    """The E views as an array of GsView (host memory)."""
    vm = views.viewmats.detach().cpu()
    Ks = views.Ks.detach().cpu()
    out = (GsView * views.n_views)()
    for e in range(views.n_views):
        out[e].R[:] = vm[e, :3, :3].reshape(-1).tolist()
        out[e].t[:] = vm[e, :3, 3].tolist()
        out[e].fx, out[e].fy = float(Ks[e, 0, 0]), float(Ks[e, 1, 1])
        out[e].cx, out[e].cy = float(Ks[e, 0, 2]), float(Ks[e, 1, 2])
        out[e].width, out[e].height = views.width, views.height
        out[e].near_m, out[e].far_m = views.near_m, views.far_m
    return out


def scale_projection_fields(projected: Projected, full: ViewBatch, views: ViewBatch, cfg: ProjectConfig,
                            device_type: str) -> dict:
    """Every field of GsScaleProjectionParams but ``views`` (checked; outputs allocated): the
    projection into ``full`` carried to ``views``, the same views at a resolution no higher
    (gscache.stages.project.scale_projection)."""
    E, V = projected.depths.shape
    if views.n_views != E or full.n_views != E:
        raise GscacheError(f"scale_projection: the projection has {E} views, full {full.n_views}, "
                           f"views {views.n_views}")
    if not (0 < views.width <= full.width and 0 < views.height <= full.height):
        raise GscacheError(f"scale_projection: expected views no larger than {full.width}x{full.height}, "
                           f"got {views.width}x{views.height}")
    check(projected.means2d, "projected.means2d", torch.float32, device_type, (E, V, 2))
    check(projected.conics, "projected.conics", torch.float32, device_type, (E, V, 3))
    check(projected.depths, "projected.depths", torch.float32, device_type, (E, V))
    dev = projected.depths.device
    return dict(means2d=projected.means2d, conics=projected.conics, depths=projected.depths,
                out_means2d=torch.empty(E, V, 2, device=dev), out_conics=torch.empty(E, V, 3, device=dev),
                out_radii=torch.empty(E, V, 2, dtype=torch.int32, device=dev), E=E, V=V,
                sx=views.width / full.width, sy=views.height / full.height, eps2d=cfg.eps2d,
                extent_sigma=cfg.extent_sigma)


def scaled_projected(fields: dict) -> Projected:
    """The record of the outputs a scale_projection kernel wrote into ``fields``."""
    return Projected(means2d=fields["out_means2d"], conics=fields["out_conics"], depths=fields["depths"],
                     radii=fields["out_radii"])
