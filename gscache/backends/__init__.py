"""Backends: named tables of the five stage functions, and the registry that lists them.

A backend is a :class:`Backend`; a mixed backend is ``dataclasses.replace(TORCH,
rasterize=other.rasterize)``, which is also how a single kernel is tested inside the reference
pipeline. Backends register a factory by name at import of this module; factories probe for
their libraries and devices only when called, so ``import gscache`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import GscacheError


@dataclass(frozen=True, slots=True)
class Backend:
    """The five stages of one implementation (signatures as in ``gscache.stages``)."""

    name: str
    cull: Callable
    shade: Callable
    project: Callable
    bin: Callable
    rasterize: Callable


class BackendUnavailable(Exception):
    """Raised by a factory that cannot run here; the message says why."""


_FACTORIES: dict[str, Callable[[], Backend]] = {}
# Fastest first: "auto" takes the first available entry.
_PREFERENCE: list[str] = []


def register(name: str, factory: Callable[[], Backend], rank: int | None = None) -> None:
    """Register ``factory`` under ``name``; ``rank`` places it in the "auto" preference order."""
    _FACTORIES[name] = factory
    if name not in _PREFERENCE:
        _PREFERENCE.insert(len(_PREFERENCE) if rank is None else rank, name)


def _torch_backend() -> Backend:
    from .. import stages

    return Backend("torch", stages.cull, stages.shade, stages.project, stages.bin_tiles, stages.rasterize)


register("torch", _torch_backend)


def available() -> dict[str, str]:
    """Every registered backend with "ok" or the reason it cannot run here."""
    out = {}
    for name in _PREFERENCE:
        try:
            _FACTORIES[name]()
            out[name] = "ok"
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out


def get(name: str) -> Backend:
    """The backend called ``name`` ("auto": the fastest available one)."""
    if name == "auto":
        for candidate in _PREFERENCE:
            try:
                return _FACTORIES[candidate]()
            except BackendUnavailable:
                continue
        raise GscacheError("backend 'auto': no backend is available")  # torch always is
    if name not in _FACTORIES:
        raise GscacheError(f"backend: unknown name {name!r}; known: {sorted(_FACTORIES)}")
    try:
        return _FACTORIES[name]()
    except BackendUnavailable as exc:
        raise GscacheError(f"backend {name!r} is not available here: {exc}") from None


__all__ = ["Backend", "BackendUnavailable", "register", "available", "get"]
