"""Finding the OpenXR runtime: pyopenxr (the optional ``gscache[xr]`` extra) brings Khronos'
loader, which finds the active runtime (the platform's ``active_runtime.json``, or the manifest
``XR_RUNTIME_JSON`` names). ``probe_runtime`` opens an instance of it and says which runtime it
is, or raises a GscacheError of one line that says what to do."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gscache.errors import GscacheError

INSTALL_HINT = "install the OpenXR extra: pip install 'gscache[xr]' (pyopenxr)"
RUNTIME_HINT = ("start one (SteamVR, Monado, WiVRn, ALVR, ...) or name its manifest with "
                "XR_RUNTIME_JSON=/path/to/runtime.json")


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str


def import_openxr():
    """pyopenxr's ``xr`` module, or GscacheError saying how to install it."""
    try:
        import xr  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise GscacheError(f"--xr: pyopenxr is not installed; {INSTALL_HINT}") from None
    return xr


def probe_runtime(what: str = "--xr") -> RuntimeInfo:
    """The runtime the loader finds (its name and version), or GscacheError: pyopenxr missing, no
    runtime, or a runtime that refuses an instance."""
    xr = import_openxr()
    # The loader writes its own errors to stderr unless told not to (read once, at its first
    # call); the exception below says the same in one line. XR_LOADER_DEBUG=all shows them.
    os.environ.setdefault("XR_LOADER_DEBUG", "none")
    info = xr.InstanceCreateInfo(application_info=xr.ApplicationInfo(application_name="gscache probe",
                                                                      engine_name="gscache"))
    try:
        instance = xr.create_instance(info)
    except xr.RuntimeUnavailableError:
        named = os.environ.get("XR_RUNTIME_JSON")
        where = f" (XR_RUNTIME_JSON={named} did not load)" if named else ""
        raise GscacheError(f"{what}: no OpenXR runtime found{where}; {RUNTIME_HINT}") from None
    except xr.XrException as exc:
        raise GscacheError(f"{what}: the OpenXR runtime refused an instance: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    try:
        props = xr.get_instance_properties(instance)
        version = props.runtime_version
        return RuntimeInfo(props.runtime_name.decode(errors="replace"), str(version))
    finally:
        xr.destroy_instance(instance)
