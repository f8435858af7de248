"""Image error metrics: PSNR, SSIM, FLIP and max abs error of [..., H, W, 3] images in [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import GscacheError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_images(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape:
        raise GscacheError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a.detach().double().clamp(0, 1).cpu(), b.detach().double().clamp(0, 1).cpu()


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB for a peak of 1 (inf when the images are equal), over
    the pixels of ``mask`` ([..., H, W] bool) when given."""
    a, b = _as_images(a, b)
    err = (a - b) ** 2
    if mask is not None:
        err = err[mask.to(err.device).expand(err.shape[:-1])]
        if err.numel() == 0:
            raise GscacheError("psnr: the mask selects no pixel")
    mse = float(err.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def max_abs_error(a: Tensor, b: Tensor) -> float:
    a, b = _as_images(a, b)
    return float((a - b).abs().max())


def _gaussian_taps() -> list[float]:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return (g / g.sum()).tolist()


def _blur(t: Tensor, taps: list[float]) -> Tensor:
    """Separable Gaussian filter over the last two axes, valid region only. Shifted slices rather
    than conv2d: conv2d unfolds 121 copies of the image (gigabytes at 2K)."""
    n = len(taps)
    h = sum(w * t[..., :, k : t.shape[-1] - n + 1 + k] for k, w in enumerate(taps))
    return sum(w * h[..., k : h.shape[-2] - n + 1 + k, :] for k, w in enumerate(taps))


def ssim(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, peak 1),
    computed per channel over the valid region and averaged over channels and images; with
    ``mask`` ([..., H, W] bool) over the windows centred on its pixels."""
    a, b = _as_images(a, b)
    m = None
    if mask is not None:
        half = SSIM_WINDOW // 2
        m = mask.expand(a.shape[:-1]).reshape(-1, *a.shape[-3:-1])[:, half:-half, half:-half].cpu()
    x = a.reshape(-1, *a.shape[-3:]).permute(0, 3, 1, 2)  # [B, 3, H, W]
    y = b.reshape(-1, *b.shape[-3:]).permute(0, 3, 1, 2)
    if x.shape[-1] < SSIM_WINDOW or x.shape[-2] < SSIM_WINDOW:
        raise GscacheError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    taps = _gaussian_taps()
    total, count = 0.0, 0
    for i, (xi, yi) in enumerate(zip(x, y)):  # one image at a time bounds the memory
        mu_x, mu_y = _blur(xi, taps), _blur(yi, taps)
        var_x = _blur(xi * xi, taps) - mu_x**2
        var_y = _blur(yi * yi, taps) - mu_y**2
        cov = _blur(xi * yi, taps) - mu_x * mu_y
        c1, c2 = SSIM_K1**2, SSIM_K2**2
        s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        if m is not None:
            s = s[:, m[i]]
        total += float(s.sum())
        count += s.numel()
    if count == 0:
        raise GscacheError("ssim: the mask selects no window centre")
    return total / count


def pixels_per_degree(width: int, height: int, fov_y_deg: float) -> float:
    """Pixels per degree of visual angle across the image's horizontal field of view: what a
    headset that shows the eye's image at its native resolution gives (FLIP's viewing condition)."""
    fov_x = 2.0 * math.degrees(math.atan(math.tan(math.radians(fov_y_deg) / 2.0) * width / height))
    return width / fov_x


def flip(test: Tensor, reference: Tensor, ppd: float, mask: Tensor | None = None) -> float:
    """Mean LDR-FLIP error (Andersson et al. 2020, NVIDIA's ``flip-evaluator``) of ``test``
    against ``reference``, [..., H, W, 3] clamped to [0, 1] and taken as sRGB-encoded (as 3DGS
    colours are trained), viewed at ``ppd`` pixels per degree; over the pixels of ``mask``
    ([..., H, W] bool) when given. 0: identical; 1: the largest perceived difference."""
    try:
        import flip_evaluator
    except ImportError as exc:
        raise GscacheError(f"FLIP needs the flip-evaluator package (pip install flip-evaluator): {exc}") from None
    if not ppd > 0:
        raise GscacheError(f"flip: pixels per degree must be > 0, got {ppd!r}")
    a, b = _as_images(test, reference)
    a = a.reshape(-1, *a.shape[-3:]).float().numpy()
    b = b.reshape(-1, *b.shape[-3:]).float().numpy()
    m = None if mask is None else mask.expand(test.shape[:-1]).reshape(-1, *test.shape[-3:-1]).cpu().numpy()
    total, count = 0.0, 0
    for i in range(a.shape[0]):  # FLIP's spatial filters see one whole image at a time
        error = flip_evaluator.evaluate(b[i], a[i], "LDR", inputsRGB=True, applyMagma=False, computeMeanError=False,
                                        parameters={"ppd": float(ppd)})[0][..., 0]
        values = error if m is None else error[m[i]]
        total += float(values.sum(dtype="float64"))
        count += values.size
    if count == 0:
        raise GscacheError("flip: the mask selects no pixel")
    return total / count
