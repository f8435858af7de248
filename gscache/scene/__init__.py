"""Scenes: the Scene record, one reader/writer module per format, and content-based loading."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import GscacheError
from ._zip import ZIP_ERRORS
from .npz import read_npz_cameras, read_npz_points
from .cply import is_compressed_ply, read_compressed_ply, write_compressed_ply
from .ply import MAX_HEADER_BYTES, _parse_header, looks_like_ply, read_ply, write_ply
from .record import Scene, empty_scene, make_scene
from .sog import read_sog
from .splat import SPLAT_DTYPE, looks_like_splat, read_splat, write_splat
from .spz import GZIP_MAGIC, MAGIC_BYTES as SPZ_MAGIC, read_spz, write_spz
from .checkpoint import is_training_output, iteration_folder, read_structured, write_structured
from .structured import StructuredScene

ZIP_MAGIC = b"PK\x03\x04"
FORMATS = ("ply", "compressed-ply", "splat", "spz", "sog", "npz", "structured")


def detect_format(path: str | os.PathLike) -> str:
    """Which reader a path needs, from its content (the suffix only breaks ties).

    Returns one of ``FORMATS``. A folder with meta.json is an unbundled SOG scene; a zip is a
    ``.sog`` if it holds meta.json and an ``.npz`` if it holds ``.npy`` arrays; a file starting
    with the PLY magic is a compressed PLY if its elements are PlayCanvas's (``chunk``, and a
    ``vertex`` element with ``packed_position``), an Octree-GS / Scaffold-GS anchor PLY if it has
    anchor features, else an Inria PLY; the NGSP magic (version 4) or any gzip stream
    (versions 1-3: read_spz says what is wrong with one that is not SPZ) is SPZ; a headerless file whose size is a multiple of 32 is a .splat.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "meta.json").is_file():
            return "sog"
        if (path / "point_cloud.ply").is_file():
            return "structured" if _is_anchor_ply(path / "point_cloud.ply") else "ply"
        if is_training_output(path):
            return detect_format(iteration_folder(path))
        raise GscacheError(f"{path}: a folder is only a scene if it holds a SOG meta.json, a training run's "
                           "point_cloud/iteration_N/ folders, or a checkpoint's point_cloud.ply (with opacity_mlp.pt, "
                           "cov_mlp.pt, color_mlp.pt for Octree-GS / Scaffold-GS)")
    if not path.is_file():
        raise GscacheError(f"{path}: no such scene file")
    with open(path, "rb") as f:
        head = f.read(8)
    size = path.stat().st_size
    if size == 0:
        if path.suffix.lower() == ".splat":
            return "splat"  # a .splat of no Gaussians is an empty file, as the writer makes it
        raise GscacheError(f"{path}: the file is empty")
    if looks_like_ply(head):
        if _is_compressed_ply(path):
            return "compressed-ply"
        return "structured" if _is_anchor_ply(path) else "ply"
    if head.startswith(SPZ_MAGIC) or head.startswith(GZIP_MAGIC):
        return "spz"  # the one gzipped format: read_spz says what is wrong with one that is not SPZ
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [Path(n).name for n in zf.namelist()]
        except ZIP_ERRORS as exc:
            raise GscacheError(f"{path}: damaged zip archive: {exc}") from None
        if "meta.json" in names:
            return "sog"
        if any(n.endswith(".npy") for n in names):
            return "npz"
        raise GscacheError(f"{path}: a zip archive with neither meta.json (SOG) nor .npy arrays (npz)")
    if size % SPLAT_DTYPE.itemsize == 0:
        plausible, why = looks_like_splat(path)
        if plausible:
            return "splat"
        if path.suffix.lower() == ".splat":
            raise GscacheError(f"{path}: not an antimatter15 .splat: {why}")
    elif path.suffix.lower() == ".splat":
        raise GscacheError(f"{path}: size {size} bytes is not a multiple of 32, so this .splat is truncated or damaged")
    raise GscacheError(
        f"{path}: unrecognised scene format (expected an Inria PLY, a PlayCanvas compressed PLY, Niantic SPZ, .splat, "
        "a SOG folder or .sog, or a point-cloud .npz)"
    )


def _is_compressed_ply(path: Path) -> bool:
    with open(path, "rb") as f:
        header = f.read(MAX_HEADER_BYTES)
    try:
        _, elements, _ = _parse_header(header, str(path))
    except GscacheError:
        return False  # the PLY reader says what is wrong with the header
    return is_compressed_ply(elements)


def _is_anchor_ply(path: Path) -> bool:
    """A PLY of Octree-GS / Scaffold-GS anchors (their features), not of Gaussians."""
    with open(path, "rb") as f:
        header = f.read(1 << 16)
    return b"f_anchor_feat_" in header.split(b"end_header")[0]


_READERS = {"ply": read_ply, "compressed-ply": read_compressed_ply, "splat": read_splat, "spz": read_spz,
            "sog": read_sog, "npz": read_npz_points, "structured": read_structured}
WRITE_SUFFIXES = {".compressed.ply": "compressed-ply", ".ply": "ply", ".splat": "splat", ".spz": "spz"}
"""File-name endings save_scene writes, and the format each one means (the longest ending wins)."""


def load_scene(path: str | os.PathLike, *, iteration: int | None = None,
               cfg_args: dict | None = None) -> Scene | StructuredScene:
    """Load any supported scene file or folder; the reader is chosen from the content.

    A training run's output folder (point_cloud/iteration_N/) gives its highest iteration, or
    ``iteration``; an Octree-GS / Scaffold-GS checkpoint (output folder, iteration folder or its
    point_cloud.ply) gives a StructuredScene, with ``cfg_args`` overriding or standing in for the
    run's cfg_args fields (gscache.scene.checkpoint.CFG_FIELDS)."""
    fmt = None
    try:
        fmt = detect_format(path)
        if fmt == "structured":
            return read_structured(path, iteration, cfg_args)
        if cfg_args:
            raise GscacheError(f"{path}: cfg_args apply to Octree-GS / Scaffold-GS checkpoints, and this is a {fmt} scene")
        if iteration is not None or (Path(path).is_dir() and fmt == "ply"):
            ply = iteration_folder(path, iteration) / "point_cloud.ply"
            return read_ply(ply)
        return _READERS[fmt](path)
    except GscacheError:
        raise
    except MemoryError:
        raise GscacheError(f"{path}: the file claims more data than fits in memory") from None
    except OSError as exc:  # unreadable paths: missing, a folder, permissions, too long, I/O errors
        raise GscacheError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - any other failure of a reader is a damaged file, said as such
        what = f"{fmt} file" if fmt else "file"
        raise GscacheError(f"{path}: damaged or unsupported {what}: {type(exc).__name__}: {exc}") from None


def write_format(path: str | os.PathLike) -> str:
    """The format save_scene writes to ``path``, from its ending (see WRITE_SUFFIXES)."""
    name = Path(path).name.lower()
    for suffix, fmt in WRITE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise GscacheError(f"{path}: can write {', '.join(WRITE_SUFFIXES)}, and the name ends with none of them")


def save_scene(scene: Scene, path: str | os.PathLike, *, spz_version: int = 3) -> np.ndarray:
    """Write ``scene`` in the format its name ends with (WRITE_SUFFIXES), atomically.

    Returns the written order: the index into ``scene`` of the Gaussian each written record holds
    (a compressed PLY is written in Morton order; the other formats keep the scene's order).
    ``spz_version`` 3 (gzip, read by every SPZ loader) or 4 (ZSTD streams)."""
    fmt = write_format(path)
    if fmt == "compressed-ply":
        return write_compressed_ply(scene, path)
    if fmt == "spz":
        write_spz(scene, path, spz_version)
    else:
        {"ply": write_ply, "splat": write_splat}[fmt](scene, path)
    return np.arange(scene.count)


__all__ = [
    "Scene", "make_scene", "empty_scene", "load_scene", "save_scene", "detect_format",
    "read_ply", "write_ply", "read_compressed_ply", "write_compressed_ply", "read_splat", "write_splat",
    "read_spz", "write_spz", "write_format", "WRITE_SUFFIXES", "read_sog", "read_npz_points", "read_npz_cameras",
    "StructuredScene", "read_structured", "write_structured",
]
