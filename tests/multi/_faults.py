"""Fault injection for the multi-device tests, outside the product: wrappers that make a real
device fail the way devices do, with nothing in the protocol or the environment for it.

* FaultyDevice(device).fail_next("raise"): the next frame is sent with a band of an eye that does
  not exist, so the worker's own rendering raises and it answers with an error.
* FaultyDevice(device).fail_next("stop"): the worker process is stopped (SIGSTOP) before the
  next frame: its heartbeat stops, and it is found and killed within a second.
* HangingRenderer: a renderer factory whose renderer stops answering (but stays alive: a worker
  process keeps its heartbeat) at a given frame: the timeout path. tests/multi/_faulty_rank.py
  runs a torch.distributed rank with it; HangAtFifth serves a worker process.
"""

from __future__ import annotations

import os
import signal
import time

from gscache import Renderer
from gscache.multi import Band


class FaultyDevice:
    """A device that behaves like ``device`` until told to fail its next frame."""

    def __init__(self, device) -> None:
        self._device = device
        self._fault: str | None = None

    def fail_next(self, fault: str) -> None:
        assert fault in ("raise", "stop")
        self._fault = fault

    def submit(self, rig, bands, tiles=None, pixels=None):
        fault, self._fault = self._fault, None
        if fault == "raise":
            bands = tuple(bands) + (Band(eye=7, row0=0, row1=1),)  # no such eye: the worker's render raises
        elif fault == "stop":
            os.kill(self._device.process.pid, signal.SIGSTOP)
        return self._device.submit(rig, bands, tiles, pixels)

    def __getattr__(self, name):
        return getattr(self._device, name)


class HangingRenderer(Renderer):
    """A Renderer that stops answering (sleeps an hour) when asked for frame ``HANG_AT`` (1-based)."""

    HANG_AT = 2

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.frames = 0

    def render(self, camera_or_rig, tile_mask=None, **kw):
        self.frames += 1
        if self.frames == self.HANG_AT:
            time.sleep(3600)
        return super().render(camera_or_rig, tile_mask, **kw)


class HangAtFifth(HangingRenderer):
    HANG_AT = 5
