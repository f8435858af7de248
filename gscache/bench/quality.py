"""The image quality of a configuration's sampled frames against the exact reference: over all
sampled frames together (PSNR of the pooled error, SSIM, FLIP, max abs error), per frame, and its
worst frame; for a foveated configuration also in the fovea's exact rectangle and the periphery."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..config import FoveationConfig
from ..stages.foveate import fovea_layout
from .metrics import flip, max_abs_error, pixels_per_degree, psnr, ssim


def _scores(ours: Tensor, ref: Tensor, ppd: float, mask: Tensor | None, region: str) -> dict[str, float]:
    """psnr{region}_db, ssim{region} and flip{region} of ``ours`` against ``ref`` (identical
    images: inf dB, SSIM 1, FLIP 0 without running the metrics)."""
    if torch.equal(ours, ref):
        values = (math.inf, 1.0, 0.0)
    else:
        values = (psnr(ours, ref, mask), ssim(ours, ref, mask), flip(ours, ref, ppd, mask))
    return dict(zip((f"psnr{region}_db", f"ssim{region}", f"flip{region}"), values))


def measure_quality(ours: Tensor, ref: Tensor, frames: list[int], width: int, height: int, fov_y_deg: float,
                    foveation: FoveationConfig) -> dict:
    """Quality of the sampled stereo frames ``ours`` [F, 2, H, W, 3] against ``ref`` (the same
    frames, exact), ``frames`` their indices along the trajectory. FLIP views each eye's image at
    the pixels per degree its field of view gives (metrics.pixels_per_degree).

    Returns:
        psnr_db (of the error pooled over the frames), ssim, flip (means over the frames),
        max_abs_error, sampled_frames; per region (foveated: _fovea, _periphery) the same scores;
        "frames": one entry per sampled frame; "worst_frame": the frame of lowest whole-image PSNR
        with its scores.
    """
    ppd = pixels_per_degree(width, height, fov_y_deg)
    regions = {"": None}
    if foveation.enabled:
        # The fovea (its exact rectangle) and the periphery (everything else, band included).
        inside, outside = fovea_layout(width, height, 2, foveation, None).masks("cpu")
        regions.update({"_fovea": inside, "_periphery": outside})
    per_frame = []
    for k, index in enumerate(frames):
        entry = {"frame": index}
        for region, mask in regions.items():
            entry.update(_scores(ours[k], ref[k], ppd, mask, region))
        per_frame.append(entry)
    out = {"psnr_db": psnr(ours, ref), "ssim": ssim(ours, ref), "max_abs_error": max_abs_error(ours, ref),
           "sampled_frames": list(frames), "flip_ppd": ppd}
    for region, mask in regions.items():
        if region:
            out[f"psnr{region}_db"] = psnr(ours, ref, mask)
            out[f"ssim{region}"] = ssim(ours, ref, mask)
        out[f"flip{region}"] = sum(f[f"flip{region}"] for f in per_frame) / len(per_frame)
    out["frames"] = per_frame
    out["worst_frame"] = min(per_frame, key=lambda f: f["psnr_db"])
    return out
