"""Pure torch helpers on the eyes' images [E, H, W, 3] (no window, no OpenGL): ``compose`` makes
the one image a window shows (side by side, anaglyph, mono), ``draw_zones`` outlines the
fovea's zones on every eye and ``tint_reused`` marks the tiles pixel reuse took from the warp."""

from __future__ import annotations

import torch


def compose(rgb: torch.Tensor, mode: str) -> torch.Tensor:
    """The image to show from the eyes' rgb [E, H, W, 3] float in [0, 1]: side by side
    [H, 2W, 3], a red/cyan anaglyph (red from the left eye, green and blue from the right)
    [H, W, 3], or the first eye [H, W, 3]; uint8, on rgb's device."""
    img = (rgb.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    if mode == "side-by-side" and img.shape[0] == 2:
        return torch.cat([img[0], img[1]], dim=1)
    if mode == "anaglyph" and img.shape[0] == 2:
        out = img[1].clone()
        out[..., 0] = img[0][..., 0]
        return out
    return img[0]


def tint_reused(rgb: torch.Tensor, reused: torch.Tensor, tile_px: int) -> torch.Tensor:
    """A copy of the eyes' images [E, H, W, 3] with the tiles taken from the warp (pixel reuse:
    ``reused`` [E, tiles_y, tiles_x] bool) tinted green, the pixel-reuse debug view."""
    mask = reused.repeat_interleave(tile_px, dim=1).repeat_interleave(tile_px, dim=2)
    mask = mask[:, : rgb.shape[1], : rgb.shape[2], None].to(rgb.device)
    green = torch.tensor([0.0, 1.0, 0.0], device=rgb.device)
    return torch.where(mask, 0.6 * rgb + 0.4 * green, rgb)


def draw_zones(rgb: torch.Tensor, layout, ring=None) -> torch.Tensor:
    """A copy of the eyes' images [E, H, W, 3] with the fovea's exact rectangle outlined in white,
    the outer edge of its blend band in grey and, with a middle ring (``ring``: its rectangle as a
    FoveaLayout of the eye's pixels), the ring's rectangle in light grey (the overlay's zones)."""
    out = rgb.clone()
    for e in range(out.shape[0]):
        lines = [(layout.outer(e), 0.5), (layout.inner[e], 1.0)] + ([] if ring is None else [(ring.inner[e], 0.75)])
        for (x0, y0, x1, y1), value in lines:
            x1, y1 = max(x0, x1 - 1), max(y0, y1 - 1)
            out[e, y0, x0:x1 + 1] = value
            out[e, y1, x0:x1 + 1] = value
            out[e, y0:y1 + 1, x0] = value
            out[e, y0:y1 + 1, x1] = value
    return out
