"""Backends: named tables of the six stage functions (:class:`~gscache.backends.table.Backend`),
and the registry that lists them.

Backends register a factory by name at import of this module; factories probe for their
libraries and devices only when called, so ``import gscache`` stays light. The backend modules
import the table from ``.table``, never this package, so the registry's lazy imports make no cycle.
"""

from __future__ import annotations

from typing import Callable

from ..errors import GscacheError
from .table import Backend, BackendUnavailable

_FACTORIES: dict[str, Callable[[], Backend]] = {}
_NOT_AUTO: set[str] = set()


def register(name: str, factory: Callable[[], Backend], auto: bool = True) -> None:
    """Register ``factory`` under ``name``. Registration order is the "auto" preference order;
    ``auto=False`` keeps a backend out of "auto" (it is only used by name)."""
    _FACTORIES[name] = factory
    if not auto:
        _NOT_AUTO.add(name)


def _torch_backend() -> Backend:
    from .. import stages

    from ..stages.bin import BYTES_PER_INTERSECTION

    return Backend("torch", stages.cull, stages.shade, stages.project, stages.bin_tiles, stages.rasterize,
                   BYTES_PER_INTERSECTION)


def _cpu_backend() -> Backend:
    from .cpu import make_backend

    return make_backend()


def _cuda_backend() -> Backend:
    from .cuda import make_backend

    return make_backend()


def _cuda_sim_backend() -> Backend:
    from .simt import make_backend

    return make_backend()


def _gsplat_backend() -> Backend:
    from .gsplat_backend import make_backend

    return make_backend()


# Fastest first for each device type: "auto" takes the first available one that fits the device.
register("cuda", _cuda_backend)
register("gsplat", _gsplat_backend)
register("cpu", _cpu_backend)
register("torch", _torch_backend)
# The cuda kernels under the SIMT emulation: for tests and kernel development, far slower than cpu.
register("cuda-sim", _cuda_sim_backend, auto=False)


def by_name_only(name: str) -> bool:
    """True for a backend that "auto", the benchmark's ladder and the viewer's backend cycle leave
    out (registered with ``auto=False``: cuda-sim, a test tool)."""
    return name in _NOT_AUTO


def available() -> dict[str, str]:
    """Every registered backend with "ok" or the reason it cannot run here."""
    out = {}
    for name in _FACTORIES:
        try:
            _FACTORIES[name]()
            out[name] = "ok"
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out


def get(name: str, device_type: str = "cpu") -> Backend:
    """The backend called ``name`` for tensors on ``device_type`` ("auto": the fastest that fits)."""
    if name == "auto":
        for candidate in _FACTORIES:
            if by_name_only(candidate):
                continue
            try:
                backend = _FACTORIES[candidate]()
            except BackendUnavailable:
                continue
            if device_type in backend.device_types:
                return backend
        raise GscacheError(f"backend 'auto': no backend is available for {device_type}")  # torch always is
    if name not in _FACTORIES:
        raise GscacheError(f"backend: unknown name {name!r}; known: {sorted(_FACTORIES)}")
    try:
        backend = _FACTORIES[name]()
    except BackendUnavailable as exc:
        raise GscacheError(f"backend {name!r} is not available here: {exc}") from None
    if device_type not in backend.device_types:
        raise GscacheError(f"backend {name!r} runs on {backend.device_types}, not on a {device_type} device")
    return backend


__all__ = ["Backend", "BackendUnavailable", "register", "available", "by_name_only", "get"]
