"""The ``cuda-sim`` backend: the cuda backend (gscache/backends/cuda.py, unchanged) with its
kernels executed on the CPU by the SIMT emulation of cuda/simt/simt.hpp and simt.cpp.

Every kernel of cuda/kernels/*.cu is compiled by the host C++ compiler as device code (common.cuh's
``__CUDA_ARCH__`` branches) into one library, with one generated C launcher per kernel; this
module's :class:`SimRuntime` is the :class:`~gscache.backends.cuda.KernelRuntime` that calls
them, so the grid, block and shared-memory arithmetic, the parameter packing and the host-side
prefix sums and sorts of cuda.py run exactly as on the GPU.

Schedules (``schedule=``): ``"free"`` runs the threads of a block at once (what a race needs to
show, and what ThreadSanitizer watches); ``"forward"``, ``"reverse"`` and ``"random"`` run one
thread at a time between barriers in that order, blocks shuffled, deterministically for a seed.
A launch that breaks a rule of the hardware raises :class:`KernelFault`: barrier divergence,
deadlock, over the limits of threads per block, grid size or dynamic shared memory (48 KiB
without opting in), a write past the block's shared memory.

Sanitizers (``sanitize=``, or ``$GSCACHE_SIMT_SANITIZE`` for the registered backend):
``"address"`` (AddressSanitizer + UBSan) and ``"thread"`` (ThreadSanitizer) build the library
instrumented. The Python process must then start with the sanitizer's runtime preloaded
(``LD_PRELOAD=$(g++ -print-file-name=libasan.so)``, or ``libtsan.so``); .ci/run does so.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from .table import Backend, BackendUnavailable
from ..errors import GscacheError, GscacheRuntimeError
from ._loader import BuildError, simt_library
from .cuda import SHARED_MEM_LIMIT

SCHEDULES = {"free": 0, "forward": 1, "reverse": 2, "random": 3}
_SANITIZER_RUNTIME = {"address": "libasan", "thread": "libtsan"}


class KernelFault(GscacheRuntimeError):
    """An emulated kernel launch broke a rule of the GPU; the message names the kernel and what."""


class SimLaunch(ctypes.Structure):
    """Mirror of ``gs_simt::LaunchConfig`` (cuda/simt/simt.hpp)."""

    _fields_ = [
        ("grid", ctypes.c_uint * 3),
        ("block", ctypes.c_uint * 3),
        ("shared_bytes", ctypes.c_longlong),
        ("shared_limit", ctypes.c_longlong),
        ("schedule", ctypes.c_int),
        ("guard", ctypes.c_int),
        ("seed", ctypes.c_ulonglong),
        ("timeout_s", ctypes.c_double),
    ]


def _dims(v: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if not 1 <= len(v) <= 3:
        raise KernelFault(f"launch: {what} must have 1 to 3 dimensions, got {v}")
    if any(int(x) < 0 for x in v):
        raise KernelFault(f"launch: {what} {v} has a negative dimension")
    return tuple(int(x) for x in v) + (1,) * (3 - len(v))


class SimRuntime:
    """The SIMT emulation as a KernelRuntime on CPU tensors."""

    name = "cuda-sim"
    device_type = "cpu"

    def __init__(self, schedule: str = "free", seed: int = 0, sanitize: str | None = None, timeout_s: float = 60.0,
                 src: Path | None = None):
        if schedule not in SCHEDULES:
            raise GscacheError(f"schedule: expected one of {sorted(SCHEDULES)}, got {schedule!r}")
        self.schedule, self.seed, self.sanitize, self.timeout_s = schedule, seed, sanitize, timeout_s
        self.lib, self.kernels = simt_library(sanitize, src)
        self.lib.gs_simt_error.restype = ctypes.c_char_p
        self.launches: list[tuple[str, tuple, tuple, int]] = []
        """(kernel, grid, block, shared bytes) of every launch, in order."""

    def launch(self, file, name, device, grid, block, params, shared_mem=0):
        if name not in self.kernels or self.kernels[name][0] != file:
            raise KernelFault(f"launch: no kernel {name!r} in {file}.cu")
        if type(params).__name__ != self.kernels[name][1]:
            raise KernelFault(f"launch: {name} takes {self.kernels[name][1]}, got {type(params).__name__}")
        cfg = SimLaunch()
        cfg.grid[:] = _dims(grid, "grid")
        cfg.block[:] = _dims(block, "block")
        cfg.shared_bytes, cfg.shared_limit = int(shared_mem), SHARED_MEM_LIMIT  # no kernel opts in to more
        cfg.schedule = SCHEDULES[self.schedule]
        # The guard bytes would hide an overrun from AddressSanitizer, which sees it exactly.
        cfg.guard = int(self.sanitize != "address")
        cfg.seed = self.seed + len(self.launches)  # another order every launch, the same every run
        cfg.timeout_s = self.timeout_s
        self.launches.append((name, tuple(cfg.grid), tuple(cfg.block), int(shared_mem)))
        if getattr(self.lib, f"gs_simt_launch_{name}")(ctypes.byref(cfg), ctypes.byref(params)) != 0:
            raise KernelFault(f"{name} (grid {tuple(cfg.grid)}, block {tuple(cfg.block)}, {shared_mem} B shared): "
                              f"{self.lib.gs_simt_error().decode()}")


def _preloaded(runtime: str) -> bool:
    return runtime in os.environ.get("LD_PRELOAD", "")


def make_backend(schedule: str | None = None, seed: int = 0, sanitize: str | None = None,
                 src: Path | None = None) -> Backend:
    """The cuda kernels on the SIMT emulation (defaults: $GSCACHE_SIMT_SCHEDULE or "random", and
    $GSCACHE_SIMT_SANITIZE), or BackendUnavailable with the reason."""
    from .cuda import backend_on

    schedule = schedule or os.environ.get("GSCACHE_SIMT_SCHEDULE", "random")
    sanitize = sanitize if sanitize is not None else (os.environ.get("GSCACHE_SIMT_SANITIZE") or None)
    if sanitize and not _preloaded(_SANITIZER_RUNTIME.get(sanitize, sanitize)):
        raise BackendUnavailable(f"the {sanitize} sanitizer build needs its runtime preloaded: LD_PRELOAD="
                                 f"$(g++ -print-file-name={_SANITIZER_RUNTIME.get(sanitize, sanitize)}.so)")
    try:
        runtime = SimRuntime(schedule, seed, sanitize, src=src)
    except (BuildError, OSError) as exc:
        raise BackendUnavailable(str(exc)) from None
    return backend_on(runtime)


__all__ = ["KernelFault", "SCHEDULES", "SimRuntime", "make_backend"]
