"""Named settings the faces (CLI, viewer, benchmark, torchrun entry point) offer, kept in the
library so that every face offers the same ones: resolutions, reuse modes and up axes."""

from __future__ import annotations

from .config import CacheConfig, FoveationConfig
from .errors import GscacheError

RESOLUTION_PRESETS = {"quest3": (2064, 2208), "2k": (2048, 2048), "1k": (1024, 1024)}
"""Per-eye resolutions by name (quest3: Meta Quest 3's per-eye panel)."""

UP_AXES = {"-y": (0, -1, 0), "+y": (0, 1, 0), "-z": (0, 0, -1), "+z": (0, 0, 1)}
"""A scene's up axis by name (OpenCV worlds: -y)."""

# Reuse modes of the ladder, cumulative as in ARCHITECTURE §5: each adds to the one before.
REUSE_MODES: dict[str, CacheConfig] = {
    "none": CacheConfig(stereo=False, shared_derivation=False),  # structured scenes: derive per eye
    "stereo": CacheConfig(stereo=True),
    "approx": CacheConfig(stereo=True, approx_stereo_colors=True),
    "D2": CacheConfig(stereo=True, approx_stereo_colors=True, depth=2),
    "D4": CacheConfig(stereo=True, approx_stereo_colors=True, depth=4),
    "D8": CacheConfig(stereo=True, approx_stereo_colors=True, depth=8),
    "dynamic": CacheConfig(stereo=True, approx_stereo_colors=True, dynamic_depth=True, depth_max=8),
    # Pixel reuse (gscache.pixel_reuse): tiles warped from the other eye, or from the last frame.
    "reproj-stereo": CacheConfig(stereo=True, approx_stereo_colors=True, dynamic_depth=True, depth_max=8,
                                 pixel_reuse="stereo"),
    "reproj": CacheConfig(stereo=True, approx_stereo_colors=True, dynamic_depth=True, depth_max=8,
                          pixel_reuse="temporal"),
}


# Foveation levels, named as headset runtimes name fixed foveated rendering: a smaller exact
# fovea and a coarser periphery at each step; "high" also drops the sub-pixel splats of the
# periphery (FoveationConfig.periphery_min_coverage_px2), which cost a low-pass footprint each.
# "medium-ring" is medium's fovea with a middle ring at 1/2 and the far periphery at 1/4: on the
# cpu backend it is slower than medium and worse (measured in the README: a splat costs at least
# its low-pass footprint at any resolution, so the far view saves little), so it is not a step of
# the ladder but a level of its own, to measure where the rasterizer's cost follows pixels.
FOVEATION_LEVELS: dict[str, FoveationConfig] = {
    "off": FoveationConfig(),
    "low": FoveationConfig(periphery_scale=0.5, fovea=(0.6, 0.6), band=0.05),
    "medium": FoveationConfig(periphery_scale=0.5, fovea=(0.45, 0.45), band=0.05),
    "high": FoveationConfig(periphery_scale=1 / 3, fovea=(0.35, 0.35), band=0.04, periphery_min_coverage_px2=0.5),
    "medium-ring": FoveationConfig(periphery_scale=0.5, fovea=(0.45, 0.45), band=0.05, ring=(0.7, 0.7), far_scale=0.25),
}


def foveation_level(name: str, what: str = "--foveation") -> FoveationConfig:
    if name not in FOVEATION_LEVELS:
        raise GscacheError(f"{what}: expected one of {', '.join(FOVEATION_LEVELS)}, got {name!r}")
    return FOVEATION_LEVELS[name]


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """'512x384' or a preset name -> (width, height)."""
    if text in RESOLUTION_PRESETS:
        return RESOLUTION_PRESETS[text]
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GscacheError(
            f"{what}: expected WxH (e.g. 512x512) or one of {sorted(RESOLUTION_PRESETS)}, got {text!r}"
        ) from None
    if w < 1 or h < 1:
        raise GscacheError(f"{what}: width and height must be >= 1, got {text!r}")
    return w, h
