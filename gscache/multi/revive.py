"""Bringing failed devices back: a device that failed is rebuilt in the background (a new worker
process, or a new replica on its GPU) after a back-off, so that the frame loop never waits for a
process to start; a rebuilt device then renders a few frames without tiles (its cache fills)
before it takes work again. Devices that cannot be rebuilt here (torch.distributed ranks, whose
processes belong to the launcher) stay failed.

The scheduler owns the devices; this module only decides when to rebuild which, runs the builds
on one background thread and hands back the devices that are ready.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class _Pending:
    future: concurrent.futures.Future
    generation: int
    """The scheduler's scene/config generation the build started from: a build from an older one
    is thrown away (it would render the old scene) and started again."""


@dataclass
class Reviver:
    """Rebuild schedule of the failed devices of one multi-device renderer.

    ``retry_s`` is the back-off before the first rebuild of a failed device, doubled after each
    rebuild that fails or that fails again before it has served ``settle_frames`` frames; after
    ``max_tries`` such rebuilds the device is given up. ``retry_s=None`` never rebuilds."""

    retry_s: float | None
    max_tries: int = 3
    settle_frames: int = 100
    down_since: dict[int, float] = field(default_factory=dict)
    """Device index -> when it was found failed (or its last rebuild failed)."""
    tries: dict[int, int] = field(default_factory=dict)
    served: dict[int, int] = field(default_factory=dict)
    """Frames a rebuilt device has rendered since it came back (its tries reset once settled)."""
    pending: dict[int, _Pending] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    """Device index -> why its last rebuild failed."""
    _pool: concurrent.futures.ThreadPoolExecutor | None = None

    def state(self, i: int) -> str | None:
        """"rebuilding", "gave up" or None (no rebuild under way) for device ``i``."""
        if i in self.pending:
            return "rebuilding"
        if self.tries.get(i, 0) >= self.max_tries and i in self.down_since:
            return f"gave up after {self.tries[i]} rebuilds ({self.errors.get(i, 'failed again')})"
        return None

    def poll(self, failed: list[int], can_rebuild: Callable[[int], bool], build: Callable[[int], Callable],
             generation: int, now: float | None = None) -> dict[int, object]:
        """One step, once per frame. ``failed``: indices of the devices that are failed now;
        ``build(i)`` returns a no-argument function (run on the background thread) that builds a
        replacement of device ``i`` from the scheduler's current scene and config. Returns the
        devices whose rebuild finished since the last poll (index -> new device)."""
        now = time.monotonic() if now is None else now
        ready: dict[int, object] = {}
        for i, job in list(self.pending.items()):
            if not job.future.done():
                continue
            del self.pending[i]
            try:
                device = job.future.result()
            except Exception as exc:  # the rebuild failed: try again later, longer back-off
                self.errors[i] = f"{type(exc).__name__}: {exc}"
                self.down_since[i] = now
                continue
            if job.generation != generation:  # built from an older scene or config
                device.close()
                self.tries[i] -= 1  # not the device's fault
                continue
            ready[i] = device
            self.down_since.pop(i, None)
            self.served[i] = 0
        if self.retry_s is None:
            return ready
        for i in failed:
            if i in ready or i in self.pending:
                continue
            if i not in self.down_since:
                self.down_since[i] = now
                if self.served.pop(i, self.settle_frames) >= self.settle_frames:
                    self.tries[i] = 0  # it had served long enough: a new failure, not the same one
            tries = self.tries.get(i, 0)
            if tries >= self.max_tries or not can_rebuild(i):
                continue
            if now - self.down_since[i] >= self.retry_s * 2 ** tries:
                self.tries[i] = tries + 1
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gscache-revive")
                self.pending[i] = _Pending(self._pool.submit(build(i)), generation)
        return ready

    def frame_served(self, working: list[int]) -> None:
        for i in working:
            if i in self.served:
                self.served[i] += 1

    def close(self) -> None:
        """Stop: builds under way finish on their thread and are closed there."""
        for job in self.pending.values():
            job.future.add_done_callback(_close_result)
        self.pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _close_result(future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
