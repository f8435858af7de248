"""The frozen records that flow between the stages: the data contract of the pipeline.

Dimension letters, used in every shape in gscache:

    N  Gaussians in the scene          V  visible Gaussians (after cull)
    E  eyes / views of one render      K  SH coefficients per channel, (degree + 1)^2
    T  tiles of one view               I  tile intersections (Gaussian x tile pairs, all views)
    H, W  image height and width in pixels

Stages are pure functions ``record -> record``. **Stages never modify their input tensors in
place**: the cache hands the same record to several later stages and frames, and relies on it.
``frozen=True`` only stops fields being reassigned; this rule is what keeps the tensors intact.

Intersection sort key (``TileBins.isect_keys``), int64, written here and in ``cuda/common.cuh``:

    bits 63..32  global tile id  = eye * T + tile_y * tiles_x + tile_x   (non-negative, < 2^31)
    bits 31..0   depth bits      = the float32 bit pattern of the view-space depth, as unsigned

Depths of drawn Gaussians are > near_m > 0, and the bit patterns of positive floats order like
the floats, so sorting the keys sorts by tile, then front to back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ._validate import ShapeChecker

TILE_KEY_SHIFT = 32
DEPTH_BITS_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Visible:
    """The Gaussians that survive culling against the union of the view frusta."""

    ids: Int[Tensor, "V"]
    """Index of each visible Gaussian in the scene, ascending, int64."""
    means: Float[Tensor, "V 3"]
    """World-space centres."""
    quats: Float[Tensor, "V 4"]
    """Unit rotations (w, x, y, z)."""
    scales: Float[Tensor, "V 3"]
    """Linear standard deviations along the local axes."""
    opacities: Float[Tensor, "V"]
    """Opacity in [0, 1]."""
    sh: Float[Tensor, "V K 3"]
    """SH coefficients per colour channel (coefficient 0 is the DC term f_dc)."""

    @property
    def count(self) -> int:
        return self.ids.shape[0]

    def validate(self) -> None:
        c = ShapeChecker("Visible")
        c.check("ids", self.ids, ("V",), torch.int64)
        c.check("means", self.means, ("V", 3), torch.float32)
        c.check("quats", self.quats, ("V", 4), torch.float32)
        c.check("scales", self.scales, ("V", 3), torch.float32)
        c.check("opacities", self.opacities, ("V",), torch.float32)
        c.check("sh", self.sh, ("V", "K", 3), torch.float32)


@dataclass(frozen=True, slots=True)
class Shaded:
    """View-independent geometry and per-view colours of the visible Gaussians."""

    covars: Float[Tensor, "V 6"]
    """World-space 3D covariance, upper triangle (xx, xy, xz, yy, yz, zz)."""
    colors: Float[Tensor, "E V 3"]
    """RGB per view, from the SH evaluated along the view direction, + 0.5, clamped at 0."""

    def validate(self) -> None:
        c = ShapeChecker("Shaded")
        c.check("covars", self.covars, ("V", 6), torch.float32)
        c.check("colors", self.colors, ("E", "V", 3), torch.float32)


@dataclass(frozen=True, slots=True)
class Projected:
    """Screen-space Gaussians per view (EWA splatting)."""

    means2d: Float[Tensor, "E V 2"]
    """Projected centres, continuous pixel coordinates (pixel centres at +0.5)."""
    conics: Float[Tensor, "E V 3"]
    """Inverse 2D covariance (a, b, c): power = -0.5 (a dx^2 + c dy^2) - b dx dy."""
    depths: Float[Tensor, "E V"]
    """View-space z of the centre."""
    radii: Int[Tensor, "E V 2"]
    """Half extent in pixels along x and y of the 3-sigma ellipse, int32; 0 where not drawn."""

    def validate(self) -> None:
        c = ShapeChecker("Projected")
        c.check("means2d", self.means2d, ("E", "V", 2), torch.float32)
        c.check("conics", self.conics, ("E", "V", 3), torch.float32)
        c.check("depths", self.depths, ("E", "V"), torch.float32)
        c.check("radii", self.radii, ("E", "V", 2), torch.int32)


@dataclass(frozen=True, slots=True)
class TileBins:
    """Gaussian x tile intersections, sorted by (view, tile) and then by depth."""

    isect_keys: Int[Tensor, "I"]
    """Sort keys, int64; layout in the module docstring."""
    gaussian_ids: Int[Tensor, "I"]
    """Visible-Gaussian index (0..V-1) of each intersection, int32, in key order."""
    tile_ranges: Int[Tensor, "E T 2"]
    """[start, end) of each tile's intersections in the sorted arrays, int32. Contract (every
    backend, tested exactly): the ranges partition [0, I) in global tile order, so a tile's start
    is the previous tile's end (0 for the first) and an empty tile is (k, k) with k the
    intersections of the tiles before it. (``restricted`` empties tiles to (start, start):
    rasterizers rely only on start <= end.)"""
    tiles_per_gaussian: Int[Tensor, "E V"]
    """Number of tiles each Gaussian touches in each view, int32."""
    tile_px: int
    """Tile side in pixels."""
    tiles_x: int
    """Tiles per image row."""
    tiles_y: int
    """Tiles per image column."""
    pixel_mask: Bool[Tensor, "E H W"] | None = None
    """The pixels wanted (pixel reuse rasterizes the pixels a warp could not give), or None for
    all. Rasterizers may leave the others at any value (the cpu and cuda kernels skip them and
    write the background; the torch reference and gsplat render them): callers composite."""

    @property
    def n_intersections(self) -> int:
        return self.isect_keys.shape[0]

    def tile_costs(self) -> Tensor:
        """Intersections per tile, [E, T] int32 (the multi-device planner's cost map)."""
        return self.tile_ranges[..., 1] - self.tile_ranges[..., 0]

    def restricted(self, mask: Tensor, pixel_mask: Tensor | None = None) -> "TileBins":
        """These bins with the tiles outside ``mask`` [E, T] bool emptied: rasterization leaves
        them at the background and does no work there; the other tiles are untouched (so their
        pixels are bit-identical to a full render's). ``pixel_mask`` [E, H, W] bool: within those
        tiles only these pixels are wanted (``TileBins.pixel_mask``)."""
        ranges = self.tile_ranges.clone()
        keep = mask.to(ranges.device)
        ranges[..., 1] = torch.where(keep, ranges[..., 1], ranges[..., 0])
        return dataclasses.replace(self, tile_ranges=ranges, pixel_mask=pixel_mask)

    def validate(self) -> None:
        c = ShapeChecker("TileBins", T=self.tiles_x * self.tiles_y)
        c.check("isect_keys", self.isect_keys, ("I",), torch.int64)
        c.check("gaussian_ids", self.gaussian_ids, ("I",), torch.int32)
        c.check("tile_ranges", self.tile_ranges, ("E", "T", 2), torch.int32)
        c.check("tiles_per_gaussian", self.tiles_per_gaussian, ("E", "V"), torch.int32)
        if self.pixel_mask is not None:
            c.check("pixel_mask", self.pixel_mask, ("E", "H", "W"), torch.bool)


@dataclass(frozen=True, slots=True)
class Images:
    """What rasterization produces for the E views."""

    rgb: Float[Tensor, "E H W 3"]
    """Colour composited over the background, linear, not clamped."""
    alpha: Float[Tensor, "E H W"]
    """Accumulated opacity, 1 - final transmittance."""
    depth: Float[Tensor, "E H W"]
    """Expected depth: sum(w_i z_i) / alpha where alpha > 0, else 0. A blend of every layer the
    pixel sees: across a silhouette or through a translucent layer it lies between surfaces."""
    median_depth: Float[Tensor, "E H W"] | None = None
    """Median depth: the depth of the blended splat that takes the transmittance from above 0.5
    to 0.5 or below (where the accumulated opacity first reaches one half), else 0 (alpha < 0.5:
    no surface dominates the pixel). Always the depth of one splat, never a mix: the depth that
    reprojects a pixel. (The splat's centre depth: its depth plane at the pixel, the mean of z
    given the pixel, warped worse on real scenes: README "Depth for reprojection".) None where the
    backend cannot produce it (gsplat)."""
    evaluations: int | None = None
    """Gaussian-pixel alpha evaluations done, where the backend counts them."""

    @staticmethod
    def background(E: int, H: int, W: int, background, device, median: bool = True) -> "Images":
        """Images where nothing was drawn: rgb the ``background`` colour, alpha, depth (and,
        with ``median``, median depth) 0; fresh tensors, written into by whoever assembles a frame."""
        bg = torch.tensor(background, dtype=torch.float32, device=device)
        zeros = [torch.zeros(E, H, W, device=device) for _ in range(3 if median else 2)]
        return Images(bg.expand(E, H, W, 3).clone(), zeros[0], zeros[1], zeros[2] if median else None, 0)

    def validate(self) -> None:
        c = ShapeChecker("Images")
        c.check("rgb", self.rgb, ("E", "H", "W", 3), torch.float32)
        c.check("alpha", self.alpha, ("E", "H", "W"), torch.float32)
        c.check("depth", self.depth, ("E", "H", "W"), torch.float32)
        if self.median_depth is not None:
            c.check("median_depth", self.median_depth, ("E", "H", "W"), torch.float32)


@dataclass(frozen=True, slots=True)
class Reprojected:
    """One view built from another view's pixels (gscache.stages.reproject)."""

    rgb: Float[Tensor, "H W 3"]
    """Colour resampled from the source where ``valid``, else 0."""
    alpha: Float[Tensor, "H W"]
    """Accumulated opacity resampled from the source where ``valid``, else 0."""
    depth: Float[Tensor, "H W"]
    """The target view's depth estimate (steps 1-2), 0 where no source pixel lands."""
    valid: Bool[Tensor, "H W"]
    """Pixels whose colour the source determines (step 3); the rest must be rendered."""

    def validate(self) -> None:
        c = ShapeChecker("Reprojected")
        c.check("rgb", self.rgb, ("H", "W", 3), torch.float32)
        c.check("alpha", self.alpha, ("H", "W"), torch.float32)
        c.check("depth", self.depth, ("H", "W"), torch.float32)
        c.check("valid", self.valid, ("H", "W"), torch.bool)


@dataclass(frozen=True, slots=True)
class StageTimes:
    """Wall time of each stage of one render, milliseconds (device synchronised)."""

    derive_ms: float = 0.0
    """Structured scenes only: deriving the Gaussians of the visible anchors."""
    cull_ms: float = 0.0
    shade_ms: float = 0.0
    project_ms: float = 0.0
    bin_ms: float = 0.0
    rasterize_ms: float = 0.0
    composite_ms: float = 0.0
    """Foveated frames: upsampling the periphery and blending the fovea into it; pixel reuse:
    putting the warped and the rasterized pixels together."""
    warp_ms: float = 0.0
    """Pixel reuse only: warping earlier pixels into the views and classifying their tiles."""

    @property
    def total_ms(self) -> float:
        return (self.derive_ms + self.cull_ms + self.shade_ms + self.project_ms + self.bin_ms + self.rasterize_ms
                + self.composite_ms + self.warp_ms)


@dataclass(frozen=True, slots=True)
class WorkCounters:
    """Machine-independent amounts of work of one render."""

    n_gaussians: int = 0
    """Gaussians in the scene."""
    n_visible: int = 0
    """Gaussians that survived culling."""
    n_intersections: int = 0
    """Gaussian x tile pairs over all views."""
    n_evaluations: int | None = None
    """Gaussian-pixel alpha evaluations (None where the backend does not count them)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One rendered frame: E images plus how long each stage took, how much work it did and what
    it reused."""

    images: Images
    """RGB, alpha and depth of each view."""
    times: StageTimes = field(default_factory=StageTimes)
    """Per-stage times."""
    counters: WorkCounters = field(default_factory=WorkCounters)
    """Per-frame work counters."""
    cache: "CacheStats | None" = None
    """What this frame reused across frames (gscache.cache.CacheStats; None: no temporal cache)."""
    tile_costs: Tensor | None = None
    """Intersections per tile, [E, T] int32, on the render device."""
    schedule: object = None
    """Multi-device frames: how the tiles were spread (gscache.multi.ScheduleStats)."""
    reuse: object = None
    """Pixel reuse: what was warped and what rasterized (gscache.pixel_reuse.ReuseStats)."""
    foveation: object = None
    """Foveated frames: what each region's view drew (gscache.stages.foveate.FoveaStats)."""

    @staticmethod
    def concat(frames: "list[Frame]") -> "Frame":
        """Views rendered separately, as one frame: images stacked, times and work added up."""
        medians = [f.images.median_depth for f in frames]
        images = Images(*(torch.cat([getattr(f.images, k) for f in frames]) for k in ("rgb", "alpha", "depth")),
                        median_depth=None if any(m is None for m in medians) else torch.cat(medians))
        times = StageTimes(**{k: sum(getattr(f.times, k) for f in frames) for k in StageTimes.__dataclass_fields__})
        evals = [f.counters.n_evaluations for f in frames]
        counters = WorkCounters(
            frames[0].counters.n_gaussians,
            sum(f.counters.n_visible for f in frames),
            sum(f.counters.n_intersections for f in frames),
            None if None in evals else sum(evals),
        )
        costs = [f.tile_costs for f in frames]
        return Frame(images, times, counters, tile_costs=None if any(c is None for c in costs) else torch.cat(costs))

    @property
    def rgb(self) -> Tensor:
        """[E, H, W, 3] float32."""
        return self.images.rgb

    @property
    def alpha(self) -> Tensor:
        """[E, H, W] float32."""
        return self.images.alpha

    @property
    def depth(self) -> Tensor:
        """[E, H, W] float32: the expected depth (Images.depth)."""
        return self.images.depth

    @property
    def median_depth(self) -> Tensor | None:
        """[E, H, W] float32: the median depth (Images.median_depth), None where the backend
        cannot produce it."""
        return self.images.median_depth

    @property
    def n_views(self) -> int:
        return self.images.rgb.shape[0]

    def to_uint8(self, side_by_side: bool = True):
        """The image(s) as uint8 numpy: [H, E*W, 3] side by side, or [E, H, W, 3]."""
        rgb = (self.images.rgb.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
        if side_by_side:
            return rgb.transpose(1, 0, 2, 3).reshape(rgb.shape[1], -1, 3)
        return rgb
