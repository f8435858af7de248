"""Late reprojection's image math (xr_session.XrOutput.late_warp): turning a finished eye to the
views the runtime predicts just before submission."""

from __future__ import annotations

import math

import torch

from .xr_views import XrView


LATE_PARALLAX_M = 0.002
"""An eye that moved less than this between the two predictions is corrected by rotation alone
(the parallax of 2 mm is under a pixel beyond 1.5 m at 1000 px per radian); a larger move also
warps with depth."""


class RotationResampler:
    """An image seen from one view as seen from another if everything were infinitely far: each
    target pixel's ray turned into the source view and sampled bilinearly (rays outside the
    source take the nearest edge). The rays of a target's pixel grid are kept per size and
    intrinsics (float32: a late correction of a few degrees needs no more)."""

    def __init__(self) -> None:
        self._rays: tuple | None = None

    def rays(self, H: int, W: int, K: torch.Tensor) -> torch.Tensor:
        key = (H, W, tuple(K.flatten().tolist()), K.device)
        if self._rays is None or self._rays[0] != key:
            v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32, device=K.device) + 0.5,
                                  torch.arange(W, dtype=torch.float32, device=K.device) + 0.5, indexing="ij")
            rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
            self._rays = (key, rays)
        return self._rays[1]

    def resample(self, rgb: torch.Tensor, src_view: torch.Tensor, src_K: torch.Tensor, dst_view: torch.Tensor,
                 dst_K: torch.Tensor) -> torch.Tensor:
        """``rgb`` [H, W, 3] seen from ``src_view`` as seen from ``dst_view`` (rotation only)."""
        H, W = rgb.shape[:2]
        R = (src_view[:3, :3] @ dst_view[:3, :3].T).float()  # target camera -> source camera
        q = self.rays(H, W, dst_K.float()) @ R.T
        x = src_K[0, 0] * q[..., 0] / q[..., 2] + src_K[0, 2]
        y = src_K[1, 1] * q[..., 1] / q[..., 2] + src_K[1, 2]
        grid = torch.stack([2 * x / W - 1, 2 * y / H - 1], dim=-1)[None]  # pixel centres: align_corners=False
        out = torch.nn.functional.grid_sample(rgb.permute(2, 0, 1)[None].float(), grid, mode="bilinear",
                                              padding_mode="border", align_corners=False)
        return out[0].permute(1, 2, 0)


def view_angle_deg(a: XrView, b: XrView) -> float:
    """The angle between two views' orientations, degrees."""
    dot = abs(sum(x * y for x, y in zip(a.orientation, b.orientation)))
    return math.degrees(2 * math.acos(min(1.0, dot)))
