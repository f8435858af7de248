"""Finds the kernel sources and builds them: a host library for the cpu backend (system C++
compiler, cached by source hash) and CuPy RawModules for the cuda backend (one per file,
options and device)."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

HOST_SOURCES = ("common.cuh", "host.cpp")
HOST_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC", "-std=c++17")


class BuildError(RuntimeError):
    """The kernels could not be built here; the message says why."""


def kernel_dir() -> Path:
    """The one location of the kernel sources (the repository's cuda/, installed as gscache._cuda)."""
    return Path(str(resources.files("gscache._cuda")))


def cache_dir() -> Path:
    """Where built libraries are kept: $GSCACHE_CACHE, else ~/.cache/gscache."""
    root = os.environ.get("GSCACHE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gscache")
    return Path(root)


def host_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


@functools.lru_cache(maxsize=None)
def host_library() -> ctypes.CDLL:
    """Build (once per source hash) and load the cpu backend's shared library."""
    cxx = host_compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (set CXX, or install g++)")
    src = kernel_dir()
    digest = hashlib.sha256()
    for name in HOST_SOURCES:
        digest.update((src / name).read_bytes())
    digest.update(" ".join((cxx,) + HOST_FLAGS).encode())
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"cannot run the C++ compiler {cxx}: {exc}") from None
    digest.update(version.encode())
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"libgscache_cpu-{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        # Build beside the target and rename, so concurrent builds never load a half-written file.
        fd, tmp = tempfile.mkstemp(prefix=lib.stem, suffix=".so.tmp", dir=out_dir)
        os.close(fd)
        cmd = [cxx, *HOST_FLAGS, "-o", tmp, str(src / "host.cpp")]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise BuildError(f"compiling the cpu kernels failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
            os.replace(tmp, lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return ctypes.CDLL(str(lib))


@functools.lru_cache(maxsize=None)
def cuda_module(name: str, device_index: int):
    """The CuPy RawModule of cuda/<name>.cu for one device (compiled by NVRTC, cached by CuPy)."""
    import cupy

    src = kernel_dir()
    code = (src / f"{name}.cu").read_text()
    with cupy.cuda.Device(device_index):
        return cupy.RawModule(code=code, options=("-std=c++17", f"-I{src}"))
