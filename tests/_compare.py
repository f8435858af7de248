"""One comparison helper for stage records, with the tolerances of every field in one table.

Integers compare exactly. Floats compare with ``TOLERANCES["stage.field"] = (rtol, atol)``.
Images compare with a boundary band: a small fraction of pixels may differ by more than the
float tolerance, because a splat whose alpha lands within rounding of alpha_min (1/255), or a
pixel whose transmittance lands within rounding of the stop threshold, blends one splat more or
less there (the edges of Gaussians); those pixels must still be close.
"""

from __future__ import annotations

import torch

TOLERANCES: dict[str, tuple[float, float]] = {
    "shade.covars": (1e-5, 1e-8),
    "shade.colors": (1e-5, 1e-5),
    "project.means2d": (1e-5, 1e-3),
    "project.conics": (1e-3, 1e-5),
    "project.depths": (1e-6, 1e-6),
    "rasterize.rgb": (0.0, 1e-5),
    "rasterize.alpha": (0.0, 1e-5),
    "rasterize.depth": (1e-4, 1e-4),
    "rasterize.median_depth": (1e-6, 1e-6),
}
# Boundary band of images: at most this fraction of pixels beyond the float tolerance, and none
# beyond the band's own bound.
BAND_FRACTION = 1e-3
# A median depth is one splat's depth: where a pixel's transmittance lands within rounding of 0.5
# one side takes the next splat, as far behind as that splat is (no bound but the fraction).
BAND_ATOL = {"rgb": 5e-3, "alpha": 5e-3, "depth": 5e-2, "median_depth": float("inf")}
# Radii are ceil() of a float: the boundary band allows +-1 on this fraction of Gaussians.
RADII_FRACTION = 1e-3


def _fraction(mask: torch.Tensor) -> float:
    """The fraction of True values (0 for an empty record: N = 0 is a case the tests cover)."""
    return float(mask.float().mean()) if mask.numel() else 0.0


def _where(diff: torch.Tensor) -> str:
    idx = int(diff.reshape(-1).argmax())
    return f"max diff {float(diff.reshape(-1)[idx]):.3g} at flat index {idx} (position {tuple(torch.unravel_index(torch.tensor(idx), diff.shape))})"


def assert_float_close(actual: torch.Tensor, ref: torch.Tensor, key: str) -> None:
    rtol, atol = TOLERANCES[key]
    actual, ref = actual.detach().cpu(), ref.detach().cpu()
    assert actual.shape == ref.shape, f"{key}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    diff = (actual - ref).abs()
    bad = diff > atol + rtol * ref.abs()
    assert not bad.any(), f"{key}: {int(bad.sum())} values out of tolerance; {_where(diff)}"


def assert_image_close(actual: torch.Tensor, ref: torch.Tensor, key: str) -> None:
    """Images within tolerance, except a boundary band of few pixels that are still close."""
    rtol, atol = TOLERANCES[key]
    actual, ref = actual.detach().cpu(), ref.detach().cpu()
    assert actual.shape == ref.shape
    diff = (actual - ref).abs()
    if diff.dim() == 4:  # rgb: a pixel is out if any channel is
        diff = diff.amax(dim=-1)
        ref = ref.abs().amax(dim=-1)
    out = diff > atol + rtol * ref.abs()
    field = key.split(".")[1]
    assert _fraction(out) <= BAND_FRACTION, f"{key}: {int(out.sum())} pixels beyond tolerance; {_where(diff)}"
    assert diff.max() <= BAND_ATOL[field], f"{key}: boundary-band pixel too far off; {_where(diff)}"


def assert_stage_close(actual, ref, stage: str) -> None:
    """Validate both records, then compare every field (integers exactly)."""
    actual.validate()
    ref.validate()
    if stage == "cull":
        # The kernels' cull evaluates the reference's bound in the same float operations; it may
        # differ from it only for Gaussians within rounding of the (one pixel wider) bound.
        a, r = set(actual.ids.cpu().tolist()), set(ref.ids.cpu().tolist())
        assert len(a ^ r) <= RADII_FRACTION * max(len(r), 1), f"cull: {len(a ^ r)} Gaussians kept by only one"
    elif stage == "shade":
        assert_float_close(actual.covars, ref.covars, "shade.covars")
        assert_float_close(actual.colors, ref.colors, "shade.colors")
    elif stage == "project":
        both = (actual.radii > 0).all(-1) & (ref.radii > 0).all(-1)
        drawn_a, drawn_r = (actual.radii > 0).all(-1), (ref.radii > 0).all(-1)
        assert _fraction(drawn_a != drawn_r) <= RADII_FRACTION, "project: drawn sets differ"
        for field in ("means2d", "conics", "depths"):
            assert_float_close(getattr(actual, field)[both], getattr(ref, field)[both], f"project.{field}")
        rdiff = (actual.radii[both] - ref.radii[both]).abs()
        assert rdiff.numel() == 0 or (rdiff.max() <= 1 and _fraction(rdiff > 0) <= RADII_FRACTION), \
            "project.radii differ"
    elif stage == "bin":
        for field in ("isect_keys", "gaussian_ids", "tile_ranges", "tiles_per_gaussian"):
            a, r = getattr(actual, field).cpu(), getattr(ref, field).cpu()
            assert torch.equal(a, r), f"bin.{field} differs at {int((a != r).nonzero()[0][0]) if a.shape == r.shape else 'shape'}"
        assert (actual.tiles_x, actual.tiles_y, actual.tile_px) == (ref.tiles_x, ref.tiles_y, ref.tile_px)
    elif stage == "rasterize":
        for field in ("rgb", "alpha", "depth"):
            assert_image_close(getattr(actual, field), getattr(ref, field), f"rasterize.{field}")
        if actual.median_depth is not None:  # None: a backend that gives none (gsplat)
            assert_image_close(actual.median_depth, ref.median_depth, "rasterize.median_depth")
    else:
        raise ValueError(f"unknown stage {stage!r}")
