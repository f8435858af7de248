"""Image error metrics: PSNR, SSIM and max abs error of [..., H, W, 3] images in [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_images(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a.detach().double().clamp(0, 1).cpu(), b.detach().double().clamp(0, 1).cpu()


def psnr(a: Tensor, b: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for a peak of 1 (inf when the images are equal)."""
    a, b = _as_images(a, b)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def max_abs_error(a: Tensor, b: Tensor) -> float:
    a, b = _as_images(a, b)
    return float((a - b).abs().max())


def _gaussian_window(device) -> Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # [1, 1, 11, 11]


def ssim(a: Tensor, b: Tensor) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, peak 1),
    computed per channel over the valid region and averaged over channels and images."""
    a, b = _as_images(a, b)
    x = a.reshape(-1, *a.shape[-3:]).permute(0, 3, 1, 2).reshape(-1, 1, a.shape[-3], a.shape[-2])  # [B*3, 1, H, W]
    y = b.reshape(-1, *b.shape[-3:]).permute(0, 3, 1, 2).reshape(-1, 1, b.shape[-3], b.shape[-2])
    if x.shape[-1] < SSIM_WINDOW or x.shape[-2] < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    w = _gaussian_window(x.device)
    conv = lambda t: torch.nn.functional.conv2d(t, w)  # noqa: E731 - valid region only
    mu_x, mu_y = conv(x), conv(y)
    var_x = conv(x * x) - mu_x**2
    var_y = conv(y * y) - mu_y**2
    cov = conv(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(s.mean())
