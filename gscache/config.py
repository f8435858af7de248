"""Configuration of the pipeline: one frozen dataclass per stage, gathered in RenderConfig.

Every field has a docstring; units are in the names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .errors import GscacheError


@dataclass(frozen=True, slots=True)
class CullConfig:
    """Culling against the union of the view frusta."""

    margin_px: float = 0.0
    """Extra border around each image, pixels, inside which Gaussians are kept (a guard band)."""


@dataclass(frozen=True, slots=True)
class ShadeConfig:
    """Covariances and view-dependent colour."""

    sh_degree: int | None = None
    """Highest SH band evaluated; None uses the scene's degree (lower is faster, less shiny)."""


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """EWA projection to the screen."""

    eps2d: float = 0.3
    """Low-pass filter added to the diagonal of every 2D covariance, pixels^2."""
    extent_sigma: float = 3.0
    """Half extent of a splat in standard deviations (sets its radii and tiles)."""


@dataclass(frozen=True, slots=True)
class BinConfig:
    """Tile binning."""

    tile_px: int = 16
    """Tile side in pixels."""
    memory_budget_bytes: int | None = None
    """Most memory a frame's tile intersections may hold: each backend states its bytes per
    (Gaussian, tile) pair (``Backend.bytes_per_intersection``: 12 in the cpu kernels, about 100
    in the torch reference), and a frame whose count times that exceeds this budget, or the
    device's free memory when it is binned, is refused with a GscacheError before its key arrays
    are allocated. None: the free memory alone decides."""


@dataclass(frozen=True, slots=True)
class RasterConfig:
    """Front-to-back alpha blending."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB behind the scene, each in [0, 1]."""
    alpha_max: float = 0.99
    """Upper clamp of a splat's alpha."""
    alpha_min: float = 1.0 / 255.0
    """Splats with a smaller alpha at a pixel are skipped there."""
    transmittance_min: float = 1e-4
    """A pixel stops at the splat that would take its transmittance below this."""
    chunk_elems: int = 1 << 21
    """Memory bound of the torch reference: pixel x splat values held at once."""
    batch_gaussians: int = 64
    """Splats per tile blended per step of the torch reference."""


@dataclass(frozen=True, slots=True)
class DeriveConfig:
    """Structured scenes: deriving the Gaussians of the visible anchors."""

    fused: bool = True
    """Use the backend's fused derivation kernel where it has one (cpu, cuda); False runs the
    torch reference derivation (the same Gaussians within float rounding)."""
    appearance_index: int = 0
    """Models with appearance embeddings (Octree-GS / Scaffold-GS ``appearance_dim`` > 0): the
    embedding novel views use (upstream renders training camera i with embedding i)."""
    anchor_cull: str = "prefilter"
    """Which anchors are derived: "prefilter" (upstream's rasterizer visibility test of each
    anchor, what the original renderers draw) or "reach" (a sphere that holds all of an anchor's
    Gaussians against the frusta: conservative, keeps border content upstream drops)."""


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """What is computed once and reused, between the eyes of a frame and across frames (ARCHITECTURE §5)."""

    stereo: bool = True
    """Both eyes in one pass: cull once against the union of the frusta, covariances once, one
    depth order shared by parallel eyes (exact). False renders each eye from scratch (no reuse)."""
    approx_stereo_colors: bool = False
    """SH colours evaluated once, from the point between the eyes, for both eyes (approximate)."""
    shared_derivation: bool = True
    """Structured scenes: derive the Gaussians once per frame from the point between the eyes,
    for both eyes (approximate); False derives per eye (the exact baseline)."""
    depth: int = 1
    """Cache depth D: the culled set, covariances and colours are reused for up to D frames (1: none)."""
    dynamic_depth: bool = False
    """Adapt D at run time to the frame budget, within [1, depth_max] (starts at ``depth``)."""
    depth_max: int = 8
    """Upper bound of the dynamic cache depth."""
    frame_budget_ms: float = 11.1
    """Frame-time target of the dynamic depth (11.1 ms: 90 Hz)."""
    headroom: float = 0.7
    """D shrinks when frames take less than this fraction of the budget."""
    hysteresis_frames: int = 3
    """Consecutive frames over (or well under) budget before D changes."""
    margin_px: float = 32.0
    """Temporal cache: extra border of the cached culled set, pixels; a refresh happens before
    the views could move further than this."""
    max_translation_m: float = 0.05
    """Temporal cache: refresh when an eye has moved further than this since the last refresh
    (and further than ``translation_per_depth`` times the nearest cached depth)."""
    translation_per_depth: float = 0.02
    """Temporal cache: the translation limit grows with the depth of the nearest cached content
    (0.02: about 1.1 degrees of parallax there), so that views far above a city are not refreshed
    for centimetres of motion; 0 keeps the limit at max_translation_m."""
    max_rotation_deg: float = 3.0
    """Temporal cache: refresh when an eye has turned further than this since the last refresh."""
    max_view_turn_deg: float = 1.0
    """Structured scenes: refresh the derived Gaussians before the view direction from the
    derivation point to any anchor it selected could have turned further than this (the MLPs'
    input: colours, opacities and shapes are functions of it), which also bounds how many level
    boundaries the motion crosses. Chosen from the measured error of a reused derivation against
    a fresh one on a strongly view-dependent model (README, "Structured scenes"); infinity
    switches the rule off."""
    lod_tolerance: float = 0.02
    """Structured scenes: refresh the derived Gaussians when more than this fraction of the
    anchors selected at the refresh would now be selected differently by the level of detail (0:
    on any change). Within the motion limits above only anchors at a level boundary flip."""

    pixel_reuse: str = "off"
    """Reuse rasterized pixels (gscache.stages.reuse): "off"; "stereo", each frame one eye is
    rasterized in full (alternating) and the other is warped from it; "temporal", every eye is
    warped from its own previous frame. Pixels the warp refuses are rasterized, and tiles whose
    predicted error is over ``reuse_error_bound`` (or never measured) in full (gscache.pixel_reuse)."""
    reuse_error_bound: float = 2.0
    """Pixel reuse: the most a reused tile's predicted error may be, as the RMS over its pixels
    and channels of the difference from the exact render, in 8-bit levels (2.0: about 42 dB
    PSNR in every reused tile). 0 reuses only tiles predicted exact (a still head)."""
    reuse_refresh_frames: int = 8
    """Pixel reuse: every tile is rasterized at least once in this many frames, a fixed share
    of the tiles each frame (staggered, so that no frame re-renders everything at once);
    0: only when the prediction asks."""
    reuse_depth_tolerance: float = 0.01
    """Pixel reuse: relative disagreement of median depths across which the warp refuses a
    pixel (gscache.stages.reproject)."""
    reuse_payoff: bool = True
    """Pixel reuse: pause it for a while when it costs more time than it saves
    (gscache.pixel_reuse.PayoffController; decisions depend on measured times). False: reuse
    every frame, deterministically."""

    @property
    def temporal(self) -> bool:
        return self.depth > 1 or self.dynamic_depth


@dataclass(frozen=True, slots=True)
class FoveationConfig:
    """Foveated stereo: per eye, the whole field at a reduced resolution (the periphery) under a
    full-resolution view of a rectangle around the gaze (the fovea), blended across a band.

    Both are views of the same Gaussians through the same cull, shade and temporal cache; the
    fovea is the eye's own full-resolution view rasterized only in the tiles the rectangle and
    band reach (so inside the rectangle the image is the full render's, bit for bit) and the
    periphery a view of ``periphery_scale`` times the resolution, upsampled bilinearly. Named
    levels: gscache.presets.FOVEATION_LEVELS."""

    periphery_scale: float = 1.0
    """Resolution of the periphery relative to the eye's, per axis, in (0, 1]; 1: no foveation."""
    fovea: tuple[float, float] = (1.0, 1.0)
    """Width and height of the exact full-resolution rectangle, as fractions of the image's."""
    band: float = 0.05
    """Width of the blend band around the rectangle, as a fraction of the image height."""
    periphery_min_coverage_px2: float = 0.0
    """Level of detail in the periphery: Gaussians covering less than this (opacity x area of
    the splat before the low-pass filter, in periphery pixels) are not drawn there; 0 draws all."""
    ring: tuple[float, float] = (1.0, 1.0)
    """Width and height of the middle ring's rectangle, as fractions of the image's, centred where
    the fovea is (and like it moved, not shrunk, to stay inside the image): between the fovea and
    this rectangle the periphery is drawn at ``periphery_scale``, beyond it (blended across
    another ``band``) at ``far_scale``. (1, 1): no far periphery, one periphery view."""
    far_scale: float = 1.0
    """Resolution of the far periphery (beyond ``ring``) relative to the eye's, per axis; used
    when ``ring`` is below (1, 1), and then below ``periphery_scale``."""
    payoff: bool = True
    """A renderer foveates only while it pays: frames are rendered unfoveated (exact) while
    foveated ones measure slower (gscache.stages.foveate.FoveationPayoff; a one-off
    gscache.render always foveates). False: every frame foveated."""
    periphery_lod_px: float = 0.0
    """Level of detail in the periphery from the scene's hierarchy of merged Gaussians
    (gscache.stages.lod, built once per scene and kept on disk): a merged node is drawn instead
    of its children where they would project under this many periphery pixels (their largest
    3-sigma extent); 0: the scene's own Gaussians. A structured scene with several anchor levels
    (Octree-GS) uses its own instead whenever this is above 0: the levels a view at the
    periphery's resolution selects, as if seen 1 / periphery_scale times farther (the threshold
    itself is not used there)."""

    @property
    def enabled(self) -> bool:
        return self.periphery_scale < 1.0 and min(self.fovea) < 1.0

    @property
    def has_far(self) -> bool:
        """A far periphery beyond the middle ring (three views per eye, not two)."""
        return self.enabled and min(self.ring) < 1.0

    @property
    def coarsest_scale(self) -> float:
        """The lowest resolution any of the eye's views is drawn at."""
        return self.far_scale if self.has_far else self.periphery_scale


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """Everything that decides how a frame is rendered."""

    backend: str = "auto"
    """Stage implementations: a name from ``gscache.backends.available()``, or "auto"."""
    device: str | None = None
    """Torch device for the scene and images; None picks cuda when present, else cpu."""
    cull: CullConfig = field(default_factory=CullConfig)
    shade: ShadeConfig = field(default_factory=ShadeConfig)
    project: ProjectConfig = field(default_factory=ProjectConfig)
    bin: BinConfig = field(default_factory=BinConfig)
    raster: RasterConfig = field(default_factory=RasterConfig)
    derive: DeriveConfig = field(default_factory=DeriveConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    foveation: FoveationConfig = field(default_factory=FoveationConfig)
    debug_checks: bool = False
    """Validate every record between stages (also enabled by GSCACHE_CHECKS=1)."""

    def __post_init__(self) -> None:
        check_config(self)


# Thresholds where infinity means "never" (a trigger switched off); every other float is finite.
_INFINITY_ALLOWED = {"cache.max_translation_m", "cache.max_rotation_deg", "cache.frame_budget_ms",
                     "cache.max_view_turn_deg"}


def _check_numbers(cfg: RenderConfig) -> None:
    """Every number of every stage config is a number: no NaN anywhere, no infinity but where
    it means "never", and the integer fields integers."""
    for group in ("cull", "shade", "project", "bin", "raster", "cache", "derive", "foveation"):
        sub = getattr(cfg, group)
        for f in fields(sub):
            value, name = getattr(sub, f.name), f"{group}.{f.name}"
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, bool) or v is None or (isinstance(v, str) and f.type in ("str", str)):
                    continue
                if not isinstance(v, (int, float)):
                    raise GscacheError(f"{name}: expected a number, got {v!r}")
                if math.isnan(v) or (math.isinf(v) and name not in _INFINITY_ALLOWED):
                    raise GscacheError(f"{name}: expected a finite number, got {v!r}")
                if f.type in ("int", int) and not float(v).is_integer():
                    raise GscacheError(f"{name}: expected an integer, got {v!r}")


def check_config(cfg: RenderConfig) -> None:
    """Raise GscacheError naming the first invalid field."""
    _check_numbers(cfg)
    if cfg.shade.sh_degree is not None and cfg.shade.sh_degree not in (0, 1, 2, 3):
        raise GscacheError(f"shade.sh_degree: expected None or 0..3, got {cfg.shade.sh_degree!r}")
    if not cfg.project.eps2d >= 0:
        raise GscacheError(f"project.eps2d: expected >= 0, got {cfg.project.eps2d!r}")
    if not cfg.project.extent_sigma > 0:
        raise GscacheError(f"project.extent_sigma: expected > 0, got {cfg.project.extent_sigma!r}")
    if cfg.derive.appearance_index < 0:
        raise GscacheError(f"derive.appearance_index: expected >= 0, got {cfg.derive.appearance_index!r}")
    if cfg.derive.anchor_cull not in ("prefilter", "reach"):
        raise GscacheError(f"derive.anchor_cull: expected 'prefilter' or 'reach', got {cfg.derive.anchor_cull!r}")
    budget = cfg.bin.memory_budget_bytes
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise GscacheError(f"bin.memory_budget_bytes: expected None or >= 1, got {cfg.bin.memory_budget_bytes!r}")
    if cfg.bin.tile_px not in (8, 16, 32):
        raise GscacheError(f"bin.tile_px: expected 8, 16 or 32, got {cfg.bin.tile_px!r}")
    if len(cfg.raster.background) != 3 or not all(0.0 <= c <= 1.0 for c in cfg.raster.background):
        raise GscacheError(f"raster.background: expected 3 values in [0, 1], got {cfg.raster.background!r}")
    if not 0.0 < cfg.raster.alpha_max <= 1.0:
        raise GscacheError(f"raster.alpha_max: expected a value in (0, 1], got {cfg.raster.alpha_max!r}")
    if not 1e-8 <= cfg.raster.alpha_min < cfg.raster.alpha_max:
        raise GscacheError(f"raster.alpha_min: expected a value in [1e-8, alpha_max), got {cfg.raster.alpha_min!r}")
    if not 0.0 <= cfg.raster.transmittance_min < 1.0:
        raise GscacheError(f"raster.transmittance_min: expected a value in [0, 1), got {cfg.raster.transmittance_min!r}")
    if cfg.raster.chunk_elems < 1 or cfg.raster.batch_gaussians < 1:
        raise GscacheError("raster.chunk_elems and raster.batch_gaussians must be >= 1")
    if cfg.cull.margin_px < 0:
        raise GscacheError(f"cull.margin_px: expected >= 0, got {cfg.cull.margin_px!r}")
    fov = cfg.foveation
    if not isinstance(fov, FoveationConfig):
        raise GscacheError(f"foveation: expected a FoveationConfig, got {type(fov).__name__}")
    if not 0.05 <= fov.periphery_scale <= 1.0:
        raise GscacheError(f"foveation.periphery_scale: expected a value in [0.05, 1], got {fov.periphery_scale!r}")
    if len(fov.fovea) != 2 or not all(0.02 <= f <= 1.0 for f in fov.fovea):
        raise GscacheError(f"foveation.fovea: expected (width, height) fractions in [0.02, 1], got {fov.fovea!r}")
    if not fov.periphery_min_coverage_px2 >= 0:
        raise GscacheError("foveation.periphery_min_coverage_px2: expected >= 0 (0 draws every Gaussian), got "
                           f"{fov.periphery_min_coverage_px2!r}")
    if not (isinstance(fov.periphery_lod_px, (int, float)) and 0.0 <= fov.periphery_lod_px < 1e6):
        raise GscacheError("foveation.periphery_lod_px: expected periphery pixels >= 0 (0: no level of detail), got "
                           f"{fov.periphery_lod_px!r}")
    if not 0.0 <= fov.band <= 0.5:
        raise GscacheError(f"foveation.band: expected a fraction of the image height in [0, 0.5], got {fov.band!r}")
    if len(fov.ring) != 2 or not all(isinstance(r, (int, float)) and 0.02 <= r <= 1.0 for r in fov.ring):
        raise GscacheError(f"foveation.ring: expected (width, height) fractions in [0.02, 1], got {fov.ring!r}")
    if fov.has_far:
        if any(r < f for r, f in zip(fov.ring, fov.fovea)):
            raise GscacheError(f"foveation.ring: expected a rectangle at least the fovea's {fov.fovea}, "
                               f"got {fov.ring!r}")
        if not (isinstance(fov.far_scale, (int, float)) and 0.05 <= fov.far_scale < fov.periphery_scale):
            raise GscacheError(f"foveation.far_scale: expected a value in [0.05, periphery_scale = "
                               f"{fov.periphery_scale}) with a middle ring, got {fov.far_scale!r}")
    c = cfg.cache
    if not 1 <= c.depth <= c.depth_max:
        raise GscacheError(f"cache.depth: expected an integer in [1, depth_max={c.depth_max}], got {c.depth!r}")
    if c.frame_budget_ms <= 0 or not 0 < c.headroom < 1 or c.hysteresis_frames < 1:
        raise GscacheError("cache.frame_budget_ms must be > 0, cache.headroom in (0, 1), cache.hysteresis_frames >= 1")
    if not 0.0 <= c.lod_tolerance <= 1.0:
        raise GscacheError(f"cache.lod_tolerance: expected a fraction in [0, 1], got {c.lod_tolerance!r}")
    if c.pixel_reuse not in ("off", "stereo", "temporal"):
        raise GscacheError(f"cache.pixel_reuse: expected 'off', 'stereo' or 'temporal', got {c.pixel_reuse!r}")
    if c.pixel_reuse != "off" and not c.stereo:
        raise GscacheError(f"cache.pixel_reuse={c.pixel_reuse!r} needs cache.stereo=True (with stereo=False every eye "
                           "is rendered from scratch, with nothing kept)")
    if not c.reuse_error_bound >= 0:
        raise GscacheError(f"cache.reuse_error_bound: expected >= 0 (8-bit levels), got {c.reuse_error_bound!r}")
    if c.reuse_refresh_frames < 0:
        raise GscacheError(f"cache.reuse_refresh_frames: expected >= 0 (0: no forced refresh), got "
                           f"{c.reuse_refresh_frames!r}")
    if not 0 < c.reuse_depth_tolerance <= 1:
        raise GscacheError(f"cache.reuse_depth_tolerance: expected a fraction in (0, 1], got "
                           f"{c.reuse_depth_tolerance!r}")
    if c.margin_px < 0 or c.max_translation_m < 0 or c.max_rotation_deg < 0 or c.translation_per_depth < 0:
        raise GscacheError("cache.margin_px, cache.max_translation_m, cache.translation_per_depth and "
                           "cache.max_rotation_deg must be >= 0")

