"""The viewer's statistics overlay: text lines from the last frames, drawn into an RGBA image with
Pillow's built-in bitmap font (no font files needed) and shown as a blended textured quad."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

STAGES = ("derive", "cull", "shade", "project", "bin", "rasterize", "warp", "composite")


@dataclass
class FrameStats:
    """A rolling window of the last frames' figures (what the overlay shows)."""

    window: int = 60
    frame_ms: deque = field(default_factory=deque)
    stage_ms: dict = field(default_factory=dict)
    hits: deque = field(default_factory=deque)
    last: object = None  # the last Frame

    def add(self, frame, wall_ms: float) -> None:
        for q, v in ((self.frame_ms, wall_ms), (self.hits, None if frame.cache is None else frame.cache.hit)):
            q.append(v)
            if len(q) > self.window:
                q.popleft()
        for s in STAGES:
            q = self.stage_ms.setdefault(s, deque())
            q.append(getattr(frame.times, f"{s}_ms"))
            if len(q) > self.window:
                q.popleft()
        self.last = frame

    def reset(self) -> None:
        self.frame_ms.clear()
        self.hits.clear()
        self.stage_ms.clear()

    @property
    def median_ms(self) -> float:
        return statistics.median(self.frame_ms) if self.frame_ms else 0.0

    def lines(self, status: dict[str, str]) -> list[str]:
        """The overlay's text: frame time and FPS, stages, cache, counts, then ``status`` pairs."""
        out = []
        if self.frame_ms:
            ms = self.median_ms
            out.append(f"frame {ms:6.1f} ms   {1000.0 / ms if ms > 0 else 0.0:6.1f} FPS (median of {len(self.frame_ms)})")
            stages = [f"{s} {statistics.median(self.stage_ms[s]):.1f}" for s in STAGES
                      if self.stage_ms.get(s) and statistics.median(self.stage_ms[s]) > 0]
            out.append("stages ms: " + ", ".join(stages))
        frame = self.last
        if frame is not None:
            known = [h for h in self.hits if h is not None]
            if frame.cache is not None and known:
                c = frame.cache
                out.append(f"cache: hits {sum(known) / len(known):4.0%}  D {c.depth}  age {c.age}"
                           f"  last refresh {c.refresh_reason or '-'}")
            else:
                out.append("cache: no temporal cache in this mode")
            r = frame.reuse
            if r is not None:  # pixel reuse: per eye, the tiles taken from the warp and the pixels rasterized
                out.append("pixels: reuse paused (it cost more time than it saved)" if r.paused else
                           "pixels: reused tiles " + " / ".join(f"{t:.0%}" for t in r.tiles_reused)
                           + ", rasterized pixels " + " / ".join(f"{p:.0%}" for p in r.pixels_rasterized)
                           + ", largest predicted error " + " / ".join(f"{m:.1f}" for m in r.predicted_max)
                           + " levels (U: tint)")
            k = frame.counters
            out.append(f"gaussians: {k.n_gaussians:,} in scene, {k.n_visible:,} visible, "
                       f"{k.n_intersections:,} tile hits")
            f = frame.foveation
            if f is not None and f.paused:
                out.append("foveation paused (it cost more time than it saved: this frame is exact)")
            elif f is not None:  # foveated: what each region's view drew (both eyes)
                out.append("drawn per region: " + ", ".join(
                    f"{name} {g:,} gaussians / {n:,} tile hits"
                    for name, g, n in zip(f.regions, f.gaussians, f.intersections)))
        out += [f"{key}: {value}" for key, value in status.items()]
        return out


_FONT = None


def render_text(lines: list[str], scale: int = 2) -> np.ndarray:
    """The lines as white text with a dark shadow on a translucent panel, [H, W, 4] uint8."""
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    line_h = 12
    width = max((int(_FONT.getlength(t)) for t in lines), default=1) + 8
    height = line_h * len(lines) + 6
    panel = Image.new("RGBA", (width, height), (0, 0, 0, 150))
    draw = ImageDraw.Draw(panel)
    for i, text in enumerate(lines):
        draw.text((5, 3 + i * line_h), text, font=_FONT, fill=(0, 0, 0, 255))
        draw.text((4, 2 + i * line_h), text, font=_FONT, fill=(255, 255, 255, 255))
    if scale > 1:
        panel = panel.resize((width * scale, height * scale), Image.NEAREST)
    return np.asarray(panel)
