"""How the viewer starts: ViewerOptions (every setting the command line gives, checked here) and
the limits and choices the run-time switches share (view modes, target frame times, the
smallest eye)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gscache.errors import GscacheError
from gscache.presets import FOVEATION_LEVELS, REUSE_MODES
from gscache.trajectory import Trajectory

VIEW_MODES = ("side-by-side", "anaglyph", "mono")
TARGETS_MS = (None, 11.1, 16.7, 33.3, 100.0)
"""The frame-time targets T cycles through (None: no target, the resolution scale stays)."""
MIN_EYE_PX = 16


class ViewerError(GscacheError):
    """The viewer cannot start (no display, no OpenGL 3.3) or was given bad options."""


@dataclass
class ViewerOptions:
    """How the viewer starts (every setting can be changed at run time with the keys)."""

    width: int = 1280
    """Window width in screen pixels (both eyes side by side)."""
    height: int = 640
    """Window height in screen pixels."""
    fov_y_deg: float = 90.0
    ipd_m: float = 0.063
    view_mode: str = "side-by-side"
    backend: str = "auto"
    device: str | None = None
    reuse: str = "stereo"
    """A reuse mode (gscache.presets.REUSE_MODES)."""
    resolution_scale: float = 1.0
    """Rendered pixels per window pixel (< 1 renders smaller and stretches)."""
    target_ms: float | None = None
    """Frame-time target: the resolution scale adapts to it (useful on a CPU)."""
    frames: int | None = None
    """Render this many frames and exit (scripted use); None runs until the window closes."""
    cameras: Trajectory | None = None
    """The scene's own cameras (N/P snap to them)."""
    up: tuple[float, float, float] = (0.0, -1.0, 0.0)
    screenshot_dir: Path = Path(".")
    record_path: Path = Path("viewer_path.json")
    visible: bool = True
    """Show the window (tests under Xvfb may keep it hidden; rendering is the same)."""
    devices: tuple[str, ...] = ()
    """Spread the stereo frames' tiles over these devices (gscache.multi.parse_devices specs)."""
    appearance_index: int = 0
    """Models with appearance embeddings: the one rendered (G cycles them)."""
    foveation: str = "off"
    """A foveation level (gscache.presets.FOVEATION_LEVELS; F cycles them, Z draws the zones)."""
    xr: bool = False
    """Present in an OpenXR headset (xr_session.XrWindowSession); the window mirrors it."""
    xr_scale: float = 1.0
    """The headset's per-eye size: the runtime's recommended size times this."""
    xr_late_warp: bool = True
    """Late reprojection: locate the views again before submission and warp the eyes to them."""

    def __post_init__(self) -> None:
        if self.view_mode not in VIEW_MODES:
            raise ViewerError(f"--mode: expected one of {', '.join(VIEW_MODES)}, got {self.view_mode!r}")
        if self.reuse not in REUSE_MODES:
            raise ViewerError(f"--reuse: expected one of {', '.join(REUSE_MODES)}, got {self.reuse!r}")
        if self.foveation not in FOVEATION_LEVELS:
            raise ViewerError(f"--foveation: expected one of {', '.join(FOVEATION_LEVELS)}, got {self.foveation!r}")
        if self.foveation != "off" and self.devices:
            raise ViewerError("--foveation with --devices: a frame spread over devices cannot be foveated yet")
        if self.width < 2 * MIN_EYE_PX or self.height < MIN_EYE_PX:
            raise ViewerError(f"--window: expected at least {2 * MIN_EYE_PX}x{MIN_EYE_PX}, got {self.width}x{self.height}")
        if not 0.05 <= self.resolution_scale <= 1.0:
            raise ViewerError(f"--scale: expected a value in [0.05, 1], got {self.resolution_scale}")
        if self.frames is not None and self.frames < 1:
            raise ViewerError(f"--frames: expected >= 1, got {self.frames}")
        if not (isinstance(self.xr_scale, (int, float)) and 0.1 <= self.xr_scale <= 2.0):
            raise ViewerError(f"--xr-scale: expected a value in [0.1, 2], got {self.xr_scale!r}")
