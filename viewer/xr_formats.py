"""What goes into an OpenXR swapchain image (pure: numbers and arrays, no OpenXR or OpenGL import).

**Where gamma is applied.** gscache's colours are what the scene was trained to reproduce: the
sRGB-encoded values of its photographs, blended as they are (as every 3DGS renderer does), and
shown as they are on the desktop. An OpenXR compositor reads a swapchain image by its format: an
sRGB format (``GL_SRGB8_ALPHA8``) holds sRGB-encoded values, which it decodes to linear light
itself; a linear format (``GL_RGBA16F``, ``GL_RGBA8``, ``GL_RGB10_A2``) holds linear values, and
the compositor encodes them for the display (``GL_RGB10_A2``, packed, is not filled: a runtime
offering only it is refused by name). So, in ``swapchain_pixels``:

* sRGB format: the values are written as they are (no conversion anywhere: the same bytes as
  the desktop window);
* linear format: the values are decoded with the sRGB transfer function first (IEC 61966-2-1),
  so that the compositor's own encoding gives back the desktop's picture. In 8 bits this bands
  the darks, which is why an sRGB format, then a float one, is preferred.

**Rows.** OpenGL's texture row 0 is the bottom of the image (``XR_KHR_opengl_enable``: swapchain
images follow OpenGL's conventions) and gscache's image row 0 the top: rows are flipped on the
way in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gscache.errors import GscacheError

# OpenGL internal formats (GL/glcorearb.h), as xrEnumerateSwapchainFormats returns them.
GL_SRGB8_ALPHA8 = 0x8C43
GL_RGBA16F = 0x881A
GL_RGBA8 = 0x8058
GL_RGB10_A2 = 0x8059
GL_DEPTH_COMPONENT32F = 0x8CAC
GL_DEPTH_COMPONENT24 = 0x81A6
GL_DEPTH_COMPONENT16 = 0x81A5

COLOR_PREFERENCE = (GL_SRGB8_ALPHA8, GL_RGBA16F, GL_RGBA8)
"""Colour formats gscache can fill, best first (the module docstring says why)."""
DEPTH_PREFERENCE = (GL_DEPTH_COMPONENT32F, GL_DEPTH_COMPONENT24, GL_DEPTH_COMPONENT16)
"""Depth formats for XR_KHR_composition_layer_depth, best first."""

NAMES = {GL_SRGB8_ALPHA8: "GL_SRGB8_ALPHA8", GL_RGBA16F: "GL_RGBA16F", GL_RGBA8: "GL_RGBA8",
         GL_RGB10_A2: "GL_RGB10_A2", GL_DEPTH_COMPONENT32F: "GL_DEPTH_COMPONENT32F",
         GL_DEPTH_COMPONENT24: "GL_DEPTH_COMPONENT24", GL_DEPTH_COMPONENT16: "GL_DEPTH_COMPONENT16"}


@dataclass(frozen=True)
class SwapchainFormat:
    """The format chosen for the colour swapchains and how pixels are written into it."""

    gl_format: int
    srgb: bool
    """True: the values go in as they are; False: decoded to linear first."""
    dtype: str
    """numpy dtype of the uploaded pixels: "uint8" or "float16"."""

    @property
    def name(self) -> str:
        return NAMES.get(self.gl_format, hex(self.gl_format))


def choose_color_format(offered) -> SwapchainFormat:
    """The best of the runtime's ``offered`` formats (xrEnumerateSwapchainFormats, the runtime's
    order) that gscache can fill; GscacheError naming them where none is."""
    offered = [int(f) for f in offered]
    for f in COLOR_PREFERENCE:
        if f in offered:
            return SwapchainFormat(f, f == GL_SRGB8_ALPHA8, "float16" if f == GL_RGBA16F else "uint8")
    raise GscacheError("OpenXR swapchain formats: the runtime offers none that gscache can fill "
                       f"({', '.join(NAMES.get(f, hex(f)) for f in offered) or 'none'}); expected one of "
                       f"{', '.join(NAMES[f] for f in COLOR_PREFERENCE)}")


def choose_depth_format(offered) -> int | None:
    """The best depth format offered, or None (then no depth layer is submitted)."""
    offered = [int(f) for f in offered]
    return next((f for f in DEPTH_PREFERENCE if f in offered), None)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """The sRGB decoding function (IEC 61966-2-1) of values in [0, 1]."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def swapchain_pixels(rgb: np.ndarray, alpha: np.ndarray | None, fmt: SwapchainFormat) -> np.ndarray:
    """One eye's image [H, W, 3] float (values in [0, 1], clamped here) as the [H, W, 4] pixels
    of a ``fmt`` swapchain image, rows flipped for OpenGL (module docstring). Alpha is 1 (an
    opaque projection layer) unless ``alpha`` [H, W] is given."""
    rgb = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise GscacheError(f"rgb: expected an [H, W, 3] image, got shape {rgb.shape}")
    if not fmt.srgb:
        rgb = srgb_to_linear(rgb)
    a = np.ones(rgb.shape[:2], np.float32) if alpha is None else np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    rgba = np.concatenate([rgb, a[..., None]], axis=2)[::-1]
    if fmt.dtype == "float16":
        return np.ascontiguousarray(rgba, dtype=np.float16)
    return np.ascontiguousarray(np.rint(rgba * 255.0), dtype=np.uint8)


def window_depth(depth_m: np.ndarray, near_m: float, far_m: float) -> np.ndarray:
    """Depth in metres [H, W] (0: nothing drawn) as the [0, 1] window depth of a perspective
    projection with clip planes ``near_m`` and ``far_m`` (OpenGL's, with glDepthRange(0, 1):
    f (z - n) / ((f - n) z)), which XrCompositionLayerDepthInfoKHR's minDepth 0, maxDepth 1,
    nearZ and farZ describe; nothing drawn is the far plane (1)."""
    z = np.asarray(depth_m, dtype=np.float64)
    n, f = float(near_m), float(far_m)
    d = np.where(z > 0, f * (np.maximum(z, n) - n) / ((f - n) * np.maximum(z, n)), 1.0)
    return np.clip(d, 0.0, 1.0).astype(np.float32)
