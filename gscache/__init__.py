"""gscache: a cache-centric 3D Gaussian Splatting renderer for VR stereo.

Importing gscache loads torch and numpy only; cupy, gsplat, glfw and OpenGL are imported by the
backends and the viewer when they are used.
"""

from . import trajectory as trajectories
from .camera import Camera, Intrinsics, StereoRig
from .config import CacheConfig, FoveationConfig, RenderConfig
from .errors import GscacheError
from .records import Frame
from .api import open_renderer, open_scene
from .errors import GscacheRuntimeError
from .renderer import Renderer, render
from .scene import Scene, load_scene, save_scene

__all__ = [
    "render",
    "open_renderer",
    "open_scene",
    "Renderer",
    "RenderConfig",
    "CacheConfig",
    "FoveationConfig",
    "load_scene",
    "save_scene",
    "Scene",
    "Camera",
    "Intrinsics",
    "StereoRig",
    "Frame",
    "GscacheError",
    "GscacheRuntimeError",
    "trajectories",
]
