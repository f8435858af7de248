"""Checks and conversions at the boundary between torch and a kernel backend."""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from ..camera import ViewBatch
from ..errors import GscacheError
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
