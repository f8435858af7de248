"""The boundary work of the foveation composite kernels (cpu and cuda alike): the checks and the
fields of ``GsFoveaCompositeParams`` (cuda/common.cuh). The kernels composite in place into the
fovea pass's images (nothing else holds them: the pipeline made them for this composite), so no
frame-sized buffer is allocated and the fovea's own rectangle is not touched at all."""

from __future__ import annotations

import torch

from ..errors import GscacheError
from ..records import Images
from ..stages.foveate import FoveaLayout
from ._boundary import check


def fovea_composite_fields(fovea: Images, periphery: Images, layout: FoveaLayout) -> dict:
    """Every field of GsFoveaCompositeParams (checked); the outputs are ``fovea``'s tensors. The
    median depth is composited where both passes have one (as the reference)."""
    E, H, W = fovea.alpha.shape
    _, h, w = periphery.alpha.shape
    device = fovea.alpha.device
    if (layout.width, layout.height, len(layout.inner)) != (W, H, E):
        raise GscacheError(f"fovea_composite: the layout is for {len(layout.inner)} views of "
                           f"{layout.width}x{layout.height}, the fovea pass has {E} of {W}x{H}")
    if periphery.alpha.shape[0] != E or h < 1 or w < 1:
        raise GscacheError(f"fovea_composite: the periphery pass has shape {tuple(periphery.alpha.shape)}, "
                           f"expected {E} views")
    kind = device.type
    for name, img, (hh, ww) in (("fovea", fovea, (H, W)), ("periphery", periphery, (h, w))):
        check(img.rgb, f"{name}.rgb", torch.float32, kind, (E, hh, ww, 3))
        for plane in ("alpha", "depth"):
            check(getattr(img, plane), f"{name}.{plane}", torch.float32, kind, (E, hh, ww))
    with_median = fovea.median_depth is not None and periphery.median_depth is not None
    if with_median:
        check(fovea.median_depth, "fovea.median_depth", torch.float32, kind, (E, H, W))
        check(periphery.median_depth, "periphery.median_depth", torch.float32, kind, (E, h, w))
    rects = torch.tensor(layout.inner, dtype=torch.int32).reshape(E, 4).to(device)
    return dict(rgb=fovea.rgb, alpha=fovea.alpha, depth=fovea.depth, median=fovea.median_depth if with_median else 0,
                p_rgb=periphery.rgb, p_alpha=periphery.alpha, p_depth=periphery.depth,
                p_median=periphery.median_depth if with_median else 0, rects=rects,
                E=E, width=W, height=H, p_width=w, p_height=h, band_px=int(layout.band_px))


def composited(fields: dict, fovea: Images, periphery: Images) -> Images:
    """The record of the outputs the kernels wrote into ``fields``."""
    evals = None if fovea.evaluations is None or periphery.evaluations is None else \
        fovea.evaluations + periphery.evaluations
    median = fields["median"] if isinstance(fields["median"], torch.Tensor) else None
    return Images(rgb=fields["rgb"], alpha=fields["alpha"], depth=fields["depth"], median_depth=median,
                  evaluations=evals)
