"""CPU stub for the CUDA rasteriser package diff_gaussian_rasterization.

Only the names imported by upstream's gaussian_renderer exist.  Anything that would
actually rasterise (forward / visible_filter) raises, because the CUDA kernels are not
available; the harness never calls them (prefilter_voxel / render are not run).
"""
from typing import NamedTuple

import torch


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: torch.Tensor
    scale_modifier: float
    viewmatrix: torch.Tensor
    projmatrix: torch.Tensor
    sh_degree: int
    campos: torch.Tensor
    prefiltered: bool
    debug: bool


class GaussianRasterizer(torch.nn.Module):
    def __init__(self, raster_settings):
        super().__init__()
        self.raster_settings = raster_settings

    def markVisible(self, positions):
        raise NotImplementedError("CUDA rasteriser is not available in the CPU harness")

    def visible_filter(self, *args, **kwargs):
        raise NotImplementedError("CUDA rasteriser (visible_filter) is not available in the CPU harness")

    def forward(self, *args, **kwargs):
        raise NotImplementedError("CUDA rasteriser is not available in the CPU harness")
