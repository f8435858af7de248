"""Finds the kernel sources and builds them: a host library for the cpu backend (system C++
compiler, cached by source hash), the SIMT emulation library of the cuda kernels (the same
compiler, optionally with a sanitizer) and CuPy RawModules for the cuda backend (one per file,
options and device).

The sources (the repository's cuda/, installed as the package ``gscache._cuda``), by role:

  common.cuh       the math and parameter structs shared by all of them; every build compiles
                   with -I<root>, so everything includes it as "common.cuh"
  kernels/*.cu     the GPU kernels (backend cuda by NVRTC; backend cuda-sim on the SIMT emulation)
  host/host.cpp    the cpu backend's library (its C entry points)
  simt/simt.hpp    the SIMT emulation, force-included into the kernels; simt/simt.cpp its runtime

A cached build is keyed by every source file it compiles, found by following the ``#include "..."``
lines from its entry points (name relative to the root, and content), so a moved, added or edited
file rebuilds it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..atomic import cache_root
from ..errors import GscacheRuntimeError

HOST_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC", "-std=c++17")


class BuildError(GscacheRuntimeError):
    """The kernels could not be built here; the message says why."""


def kernel_dir() -> Path:
    """The root of the kernel sources (the folder of common.cuh): the repository's cuda/, installed
    as gscache._cuda, or $GSCACHE_KERNEL_DIR (kernel development; scripts/mutation_check.py builds
    mutants so). See KernelTree for its parts."""
    override = os.environ.get("GSCACHE_KERNEL_DIR")
    return Path(override) if override else Path(str(resources.files("gscache._cuda")))


@dataclass(frozen=True)
class KernelTree:
    """Where each part of a kernel source tree lies (the layout in this module's docstring)."""

    root: Path  # common.cuh; the include path (-I) of every build
    kernels: Path  # <name>.cu, the GPU kernels
    host: Path  # host.cpp, the cpu backend's library
    simt: Path  # simt.hpp and simt.cpp, the SIMT emulation

    @classmethod
    def at(cls, root: Path | str | None = None) -> KernelTree:
        """The tree at ``root`` (default kernel_dir())."""
        root = Path(root) if root is not None else kernel_dir()
        return cls(root, root / "kernels", root / "host", root / "simt")

    def cu_files(self) -> list[Path]:
        """Every kernel source, sorted by name."""
        return sorted(self.kernels.glob("*.cu"))

    def closure(self, entry: list[Path]) -> list[Path]:
        """``entry`` and every file of the tree they include (``#include "..."``, looked up as the
        compiler does: beside the including file, then in the root), sorted: what a build reads.
        Includes that are not files here (<system> headers, the NVRTC built-ins) are skipped."""
        seen: set[Path] = set()
        todo = [Path(os.path.normpath(p)) for p in entry]
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            for name in _INCLUDE_RE.findall(path.read_text()):
                for cand in (path.parent / name, self.root / name):
                    if cand.is_file():
                        todo.append(Path(os.path.normpath(cand)))
                        break
        return sorted(seen)

    def key_inputs(self, files: list[Path]) -> list[bytes]:
        """Each file's name (relative to the root where it lies inside it) and content, for a cache key."""
        out = []
        for path in files:
            try:
                name = path.relative_to(os.path.normpath(self.root)).as_posix()
            except ValueError:
                name = str(path)
            out += [name.encode(), path.read_bytes()]
        return out


_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)


def cache_dir() -> Path:
    """Where built libraries are kept: gscache.atomic.cache_root() ($GSCACHE_CACHE, else ~/.cache/gscache)."""
    return cache_root()


def host_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def _build(stem: str, inputs: list[bytes], flags: list[str], sources: list[str]) -> Path:
    """The shared library built from ``sources`` with ``flags``, cached under cache_dir() by the
    hash of ``inputs``, the command and the compiler's version."""
    cxx = host_compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (set CXX, or install g++)")
    digest = hashlib.sha256()
    for data in inputs:
        digest.update(hashlib.sha256(data).digest())
    digest.update(" ".join([cxx, *flags]).encode())
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"cannot run the C++ compiler {cxx}: {exc}") from None
    digest.update(version.encode())
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"{stem}-{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        # Build beside the target and rename, so concurrent builds never load a half-written file.
        fd, tmp = tempfile.mkstemp(prefix=lib.stem, suffix=".so.tmp", dir=out_dir)
        os.close(fd)
        cmd = [cxx, *flags, "-o", tmp, *sources]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise BuildError(f"compiling {stem} failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
            os.replace(tmp, lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return lib


@functools.lru_cache(maxsize=None)
def host_library(extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """Build (once per source hash) and load the cpu backend's shared library; ``extra_flags``
    after HOST_FLAGS build it for less than this machine (the tests' AVX2 and SSE builds, e.g.
    ("-mno-avx512f",)), as it would be built on an older one."""
    tree = KernelTree.at()
    entry = tree.host / "host.cpp"
    lib = _build("libgscache_cpu", tree.key_inputs(tree.closure([entry])),
                 [*HOST_FLAGS, *extra_flags, f"-I{tree.root}"], [str(entry)])
    return ctypes.CDLL(str(lib))


# ---- SIMT emulation of the cuda kernels -----------------------------------------------------
SIMT_DEFINES = ("-D__CUDACC__", "-D__CUDA_ARCH__=800", "-DGS_SIMT")
SIMT_FLAGS = {
    # No -march=native and no -ffast-math: plain IEEE single precision, no contracted multiply-adds.
    None: ("-O2",),
    # AddressSanitizer (global and shared-memory overruns, use after free) with UBSan.
    "address": ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                "-fno-sanitize-recover=undefined"),
    # ThreadSanitizer: races between the emulated threads of a block (free-running schedule).
    "thread": ("-O1", "-g", "-fsanitize=thread"),
}
_KERNEL_RE = re.compile(r'extern "C" __global__ void (\w+)\(const (\w+) p\)')


def simt_kernels(src: Path | None = None) -> dict[str, tuple[str, str]]:
    """Every kernel of the .cu files of the tree at ``src`` (default kernel_dir()): name -> (file
    stem, parameter struct). Every kernel takes exactly one parameter struct by value (the rule of
    common.cuh); one that does not is an error."""
    out = {}
    for path in KernelTree.at(src).cu_files():
        text = path.read_text()
        found = _KERNEL_RE.findall(text)
        if len(found) != text.count("__global__ void"):
            raise BuildError(f"{path.name}: every kernel must take one parameter struct, `(const GsXParams p)`")
        for name, struct in found:
            out[name] = (path.stem, struct)
    return out


def _simt_launchers(tree: KernelTree, kernels: dict[str, tuple[str, str]]) -> str:
    """The generated translation unit: every .cu file, and one exported C launcher per kernel."""
    lines = ["// Generated by gscache/backends/_loader.py: the kernels and their SIMT launchers."]
    lines += [f'#include "{(tree.kernels / f"{stem}.cu").relative_to(tree.root).as_posix()}"'
              for stem in sorted({stem for stem, _ in kernels.values()})]
    for name, (_, struct) in sorted(kernels.items()):
        lines.append(f"static void gs_run_{name}(const void* p) {{ {name}(*static_cast<const {struct}*>(p)); }}")
        lines.append(f'extern "C" int gs_simt_launch_{name}(const gs_simt::LaunchConfig* c, const void* p) '
                     f"{{ return gs_simt::launch(*c, gs_run_{name}, p); }}")
    return "\n".join(lines) + "\n"


def simt_library(sanitize: str | None = None, src: Path | None = None) -> tuple[ctypes.CDLL, dict]:
    """Build (once per source hash) and load the SIMT emulation of the kernels of the tree at ``src``
    (the installed cuda/ by default; the mutation check passes a mutated copy). Returns the library
    and simt_kernels(src)."""
    if sanitize not in SIMT_FLAGS:
        raise BuildError(f"sanitize: expected one of {[k for k in SIMT_FLAGS if k]} or None, got {sanitize!r}")
    return _simt_library(sanitize, str(src or kernel_dir()))


@functools.lru_cache(maxsize=None)
def _simt_library(sanitize: str | None, src_dir: str) -> tuple[ctypes.CDLL, dict]:
    tree = KernelTree.at(src_dir)
    kernels = simt_kernels(tree.root)
    generated = _simt_launchers(tree, kernels)
    header, runtime = tree.simt / "simt.hpp", tree.simt / "simt.cpp"
    # The generated unit includes every kernel file; simt.hpp is force-included into both units.
    entry = [header, runtime] + [tree.kernels / f"{stem}.cu" for stem in sorted({s for s, _ in kernels.values()})]
    inputs = [generated.encode()] + tree.key_inputs(tree.closure(entry))
    with tempfile.TemporaryDirectory() as tmp:
        gen = Path(tmp) / "simt_kernels.cpp"
        gen.write_text(generated)
        flags = ["-std=c++20", "-shared", "-fPIC", "-pthread", *SIMT_DEFINES, f"-I{tree.root}", "-include",
                 str(header), *SIMT_FLAGS[sanitize]]
        suffix = f"-{sanitize}" if sanitize else ""
        lib = _build(f"libgscache_simt{suffix}", inputs, flags, [str(gen), str(runtime)])
    return ctypes.CDLL(str(lib)), kernels


@functools.lru_cache(maxsize=None)
def cuda_module(name: str, device_index: int):
    """The CuPy RawModule of cuda/kernels/<name>.cu for one device (compiled by NVRTC, cached by
    CuPy). CuPy keys its cache by the code and the options only, not by the headers the code
    includes: the define GS_SOURCES (the hash of every file the kernel includes, by name and
    content, and otherwise unused) puts them into the key."""
    import cupy

    tree = KernelTree.at()
    path = tree.kernels / f"{name}.cu"
    digest = hashlib.sha256()
    for data in tree.key_inputs(tree.closure([path])):
        digest.update(hashlib.sha256(data).digest())
    options = ("-std=c++17", f"-I{tree.root}", f"-DGS_SOURCES=0x{digest.hexdigest()[:16]}")
    with cupy.cuda.Device(device_index):
        return cupy.RawModule(code=path.read_text(), options=options)
