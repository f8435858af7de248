"""The torch reference stages: the specification every other backend is tested against.

Each stage is a pure function of frozen records (``gscache.records``) and never modifies its
inputs in place. They are vectorised (no Python loops over Gaussians or tiles), run on any torch
device, and bound their memory by working in chunks.
"""

from .bin import bin_tiles
from .cull import cull
from .project import project
from .rasterize import rasterize
from .shade import shade

__all__ = ["cull", "shade", "project", "bin_tiles", "rasterize"]
