"""The foveation composite kernels (Backend.fovea_composite: cpu host loop, cuda kernel on
cuda-sim and on a GPU) against the reference gscache.stages.foveate.composite: within float
rounding everywhere, the median depths exactly, the fovea's rectangle untouched (its pixels are
the fovea pass's bit for bit), on odd sizes, periphery scales 1/2 and 1/3, a fovea against the
image's edge, no band, and without median depths."""

from __future__ import annotations

import pytest
import torch

from gscache import backends
from gscache.config import FoveationConfig
from gscache.errors import GscacheError
from gscache.records import Images
from gscache.stages.foveate import composite, fovea_layout
from tests._backends import device_of, params


def _images(E, H, W, g, median=True, device="cpu") -> Images:
    def r(*shape, scale=1.0):
        return (torch.rand(*shape, generator=g) * scale).to(device)
    return Images(r(E, H, W, 3), r(E, H, W), r(E, H, W, scale=5.0), r(E, H, W, scale=5.0) if median else None, 7)


CASES = [
    # (W, H, periphery scale, fovea (w, h) fractions, band, gaze per eye, median)
    (97, 61, 0.5, (0.45, 0.45), 0.05, [[0.3, 0.6], [0.9, 0.1]], True),
    (64, 64, 1 / 3, (0.35, 0.35), 0.04, None, True),
    (50, 41, 0.5, (0.6, 0.6), 0.0, [[0.0, 0.0], [1.0, 1.0]], True),  # no band; foveae in the corners
    (33, 80, 0.5, (0.5, 0.3), 0.1, None, False),  # no median depths
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-s{c[2]:.2f}-band{c[4]}")
@pytest.mark.parametrize("name", params("cpu", "cuda-sim", "cuda"))
def test_the_kernel_composite_is_the_reference(name, case):
    W, H, scale, fovea, band, gaze, median = case
    device = device_of(name)
    backend = backends.get(name, device.type)
    g = torch.Generator().manual_seed(W * H)
    cfg = FoveationConfig(periphery_scale=scale, fovea=fovea, band=band)
    layout = fovea_layout(W, H, 2, cfg, None if gaze is None else torch.tensor(gaze))
    w, h = max(1, round(W * scale)), max(1, round(H * scale))
    fov, per = _images(2, H, W, g, median, device), _images(2, h, w, g, median, device)
    expected = composite(fov, per, layout)
    kept = fov.rgb.clone()
    got = backend.fovea_composite(fov, per, layout)
    for field in ("rgb", "alpha", "depth"):
        scale_of = 5.0 if field == "depth" else 1.0
        torch.testing.assert_close(getattr(got, field), getattr(expected, field), rtol=0, atol=4e-6 * scale_of)
    if median:
        assert torch.equal(got.median_depth, expected.median_depth)
    else:
        assert got.median_depth is None
    assert got.evaluations == 14
    for e, (x0, y0, x1, y1) in enumerate(layout.inner):
        assert torch.equal(got.rgb[e, y0:y1, x0:x1], kept[e, y0:y1, x0:x1])  # the exact rectangle, untouched


@pytest.mark.parametrize("name", params("cpu", "cuda-sim"))
def test_a_layout_that_does_not_fit_the_images_is_refused(name):
    backend = backends.get(name, "cpu")
    g = torch.Generator().manual_seed(0)
    layout = fovea_layout(40, 30, 2, FoveationConfig(periphery_scale=0.5), None)
    with pytest.raises(GscacheError, match="layout"):
        backend.fovea_composite(_images(2, 30, 41, g), _images(2, 15, 20, g), layout)
    with pytest.raises(GscacheError, match="periphery.rgb"):
        backend.fovea_composite(_images(2, 30, 40, g), Images(torch.rand(2, 15, 20, 4), torch.rand(2, 15, 20),
                                                                torch.rand(2, 15, 20), None), layout)
