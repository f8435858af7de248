"""What the viewer writes to disk: screenshots of the stereo pair (F12), the window as shown
(--screenshot-at-exit), and the recorded camera path (K; a gscache trajectory JSON that
``gscache bench --trajectory`` replays)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gscache.atomic import atomic_write
from gscache.trajectory import Trajectory, save_trajectory

from .images import compose


def _write_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_write(path) as f:
        Image.fromarray(image).save(f, format="PNG")


def save_screenshot(frame, folder: Path, frame_number: int) -> Path | None:
    """Write ``frame``'s eyes side by side (render resolution) as a PNG in ``folder``; None
    without a frame."""
    if frame is None:
        return None
    image = compose(frame.rgb, "side-by-side").cpu().numpy()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gscache_{time.strftime('%Y%m%d_%H%M%S')}_{frame_number:05d}.png"
    _write_png(image, path)
    return path


def save_window(pixels: np.ndarray, folder: Path) -> Path:
    """Write what a window showed (session.WindowSession.last_pixels) as a PNG in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gscache_window_{time.strftime('%Y%m%d_%H%M%S')}.png"
    _write_png(pixels, path)
    return path


class PathRecorder:
    """Records the head pose of every rendered frame between two toggles and writes them to
    ``path``; ``say`` shows a note."""

    def __init__(self, path: Path, say: Callable[[str], None]) -> None:
        self.path, self.say = path, say
        self.poses: list[tuple[float, torch.Tensor]] | None = None
        """(seconds since the start, T_world_head) per frame; None while not recording."""
        self.started = 0.0

    @property
    def active(self) -> bool:
        return self.poses is not None

    def add(self, pose: torch.Tensor) -> None:
        """A frame was rendered at ``pose`` (kept only while recording)."""
        if self.poses is not None:
            self.poses.append((time.perf_counter() - self.started, pose))

    def toggle(self) -> Path | None:
        """Start recording, or stop and write the path (its file; None when nothing was written)."""
        if self.poses is None:
            self.poses = []
            self.started = time.perf_counter()
            self.say("recording the camera path (K stops)")
            return None
        poses, self.poses = self.poses, None
        if not poses:
            self.say("recording stopped: no frame was rendered")
            return None
        times = torch.tensor([t for t, _ in poses], dtype=torch.float64)
        save_trajectory(Trajectory(torch.stack([p for _, p in poses]), times - times[0], "viewer recording"), self.path)
        self.say(f"wrote {len(poses)} poses to {self.path}")
        return self.path
