"""What a backend is: a named table of the stage functions (signatures in
``gscache.stages.protocols``), and the error a backend factory raises when it cannot run here."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GscacheRuntimeError
from ..stages.derive import derive_anchors
from ..stages.reproject import reproject as reference_reproject
from ..stages.foveate import composite as reference_fovea_composite
from ..stages.project import scale_projection as reference_scale_projection
from ..stages.protocols import (BinFn, CullFn, DeriveFn, FoveaCompositeFn, ProjectFn, RasterizeFn, ReprojectFn,
                                ReuseCompositeFn, ScaleProjectionFn, ShadeFn, TileStatsFn)
from ..stages.reuse import reuse_composite as reference_reuse_composite
from ..stages.reuse import tile_stats as reference_tile_stats


@dataclass(frozen=True, slots=True)
class Backend:
    """The stages of one implementation. A mixed backend is ``dataclasses.replace(torch_backend,
    rasterize=other.rasterize)``, which is also how a single kernel is tested inside the
    reference pipeline."""

    name: str
    cull: CullFn
    shade: ShadeFn
    project: ProjectFn
    bin: BinFn
    rasterize: RasterizeFn
    bytes_per_intersection: int
    """Peak bytes its bin and rasterize stages hold per (Gaussian, tile) pair: the figure its bin
    stage refuses frames by (gscache.stages.bin.check_intersections; measured with
    scripts/isect_memory.py)."""
    device_types: tuple[str, ...] = ("cpu", "cuda")
    """torch device types whose tensors the stages accept."""
    derive: DeriveFn = derive_anchors
    """Structured scenes: the derivation of anchors' Gaussians; the torch reference unless the
    backend has a fused kernel (which falls back to the reference for MLPs it cannot run)."""

    reproject: ReprojectFn = reference_reproject
    """One rendered view carried into another (gscache.stages.reproject.reproject's signature):
    the torch reference unless the backend has a kernel of its own (cpu, cuda)."""
    tile_stats: TileStatsFn = reference_tile_stats
    """Pixel reuse: the per-tile statistics of a warp (gscache.stages.reuse.tile_stats)."""
    reuse_composite: ReuseCompositeFn = reference_reuse_composite
    """Pixel reuse: a warp composited into a rasterized view, with the warp's true error in the
    tiles not reused (gscache.stages.reuse.reuse_composite)."""
    fovea_composite: FoveaCompositeFn = reference_fovea_composite
    """Foveation: the fovea pass over the upsampled periphery pass (gscache.stages.foveate.composite)."""
    scale_projection: ScaleProjectionFn = reference_scale_projection
    """Foveation: a periphery view's projection derived from the full view's
    (gscache.stages.project.scale_projection), one projection per eye."""

    @property
    def fused_derive(self) -> bool:
        """The backend derives with a kernel of its own rather than the reference."""
        return self.derive is not derive_anchors


class BackendUnavailable(GscacheRuntimeError):
    """Raised by a factory that cannot run here; the message says why."""
