"""The signature of each stage, as ``typing.Protocol``: every backend's functions have these (the
torch reference in this package is the specification).

Shapes (E views, N scene Gaussians, V visible, I intersections, T tiles per view) are documented
on the records in ``gscache.records``.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from ..camera import ViewBatch
from ..config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
from ..records import Images, Projected, Reprojected, Shaded, TileBins, Visible
from .foveate import FoveaLayout
from .reuse import TileGrid
from ..scene.record import Scene
from ..scene.structured import StructuredScene


class CullFn(Protocol):
    def __call__(self, scene: Scene, views: ViewBatch, cfg: CullConfig, project: ProjectConfig) -> Visible:
        """The N -> V Gaussians that may reach any view. ``project`` is the projection whose
        footprint (eps2d, extent_sigma) the conservative bound must contain."""


class ShadeFn(Protocol):
    def __call__(self, visible: Visible, views: ViewBatch, cfg: ShadeConfig) -> Shaded:
        """3D covariances [V, 6] and colours per view [E, V, 3]."""


class ProjectFn(Protocol):
    def __call__(self, visible: Visible, shaded: Shaded, views: ViewBatch, cfg: ProjectConfig) -> Projected:
        """Screen-space centres, conics, depths and radii per view [E, V, ...]."""


class BinFn(Protocol):
    def __call__(self, projected: Projected, views: ViewBatch, cfg: BinConfig) -> TileBins:
        """Sorted tile intersections; one depth order for all views when ``views.shared_depth``."""


class RasterizeFn(Protocol):
    def __call__(self, visible: Visible, shaded: Shaded, projected: Projected, bins: TileBins, views: ViewBatch,
                 cfg: RasterConfig) -> Images:
        """Front-to-back blending per tile: images [E, H, W, ...]."""


class DeriveFn(Protocol):
    def __call__(self, scene: StructuredScene, ids: Tensor, position: Tensor, appearance_index: int = 0) -> Scene:
        """The Gaussians of anchors ``ids`` [A'] int64 seen from ``position`` [3] (SH degree 0),
        with appearance embedding ``appearance_index`` where the model has them."""


class ReprojectFn(Protocol):
    def __call__(self, rgb: Tensor, alpha: Tensor, median_depth: Tensor, src_view: Tensor, src_K: Tensor,
                 dst_view: Tensor, dst_K: Tensor, height: int, width: int,
                 depth_tolerance: float = ...) -> Reprojected:
        """One rendered view [Hs, Ws, ...] carried into another, [height, width] (the steps in
        gscache.stages.reproject)."""


class TileStatsFn(Protocol):
    def __call__(self, warped: Reprojected, grid: TileGrid) -> Tensor:
        """[tiles_y, tiles_x, 8] float32: the per-tile statistics of a warp (gscache.stages.reuse.STATS)."""


class ReuseCompositeFn(Protocol):
    def __call__(self, warped: Reprojected, reused: Tensor, rgb: Tensor, alpha: Tensor, depth: Tensor,
                 median: Tensor, grid: TileGrid) -> Tensor:
        """The warp's valid pixels of the ``reused`` tiles written into the rasterized view (in
        place); returns [tiles_y, tiles_x, 2] (sum of squared differences, count) in the others."""


class ScaleProjectionFn(Protocol):
    def __call__(self, projected: Projected, full: ViewBatch, views: ViewBatch, cfg: ProjectConfig) -> Projected:
        """The projection into ``views`` (``full`` at a resolution no higher: ViewBatch.scaled)
        derived from ``projected``, the projection into ``full``
        (gscache.stages.project.scale_projection)."""


class FoveaCompositeFn(Protocol):
    def __call__(self, fovea: Images, periphery: Images, layout: FoveaLayout) -> Images:
        """The fovea pass [E, H, W] over the periphery pass [E, h, w] upsampled, blended across
        the band, the fovea's own pixels inside each eye's rectangle (gscache.stages.foveate.composite).
        A kernel may write the result into ``fovea``'s tensors (the caller does not keep them)."""
