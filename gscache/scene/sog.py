"""PlayCanvas SOG v2 (splat-transform): an unbundled folder with ``meta.json``, or a zipped ``.sog``.

Pixel i (row-major) of every WebP image belongs to Gaussian i. ``means_l``/``means_u`` hold the
low and high bytes of a 16-bit value per axis: ``n = lerp(mins, maxs, v / 65535)``, then
``x = sign(n) * (exp(|n|) - 1)``. ``quats``: three components ``(b / 255 - 0.5) * sqrt(2)`` in
RGB; alpha - 252 is the index (in w, x, y, z) of the largest component, which is
``sqrt(1 - sum of squares)``. ``scales`` and ``sh0`` bytes index the 256-entry codebooks of their
meta.json sections (scales stay in log space; sh0's alpha / 255 is the opacity). ``shN_labels``
holds a 16-bit palette index per Gaussian; palette entry e occupies row e // 64, pixels
(e % 64) * c .. + c - 1 of ``shN_centroids`` (c coefficients per channel), and pixel k's RGB
bytes, through the shN codebook, are coefficient k + 1 of the red, green and blue channels.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GscacheError
from ._zip import ZIP_ERRORS
from .limits import check_decoded_size
from .record import Scene, make_scene

# Decompressed image size guard against zip and WebP bombs: 64 Mpx is 16x the largest
# scene we know of.
MAX_PIXELS = 1 << 26


def _decode_webp(blob: bytes, name: str, where: str, count: int | None = None) -> np.ndarray:
    from PIL import Image  # Pillow is only needed for SOG scenes

    try:
        with Image.open(io.BytesIO(blob)) as im:  # reads the header only
            if im.width * im.height > MAX_PIXELS:
                raise GscacheError(f"{where}: image {name} is {im.width}x{im.height}, too large")
            # A per-Gaussian image holds one pixel per Gaussian in rows of its width (square ones
            # round the side up: up to two rows of slack); more is a size the scene does not need.
            if count is not None and im.width * im.height > count + 2 * (im.width + im.height) + 64:
                raise GscacheError(f"{where}: image {name} is {im.width}x{im.height} = {im.width * im.height} pixels "
                                   f"for count={count} Gaussians")
            check_decoded_size(im.width * im.height * 4, where, f"image {name}")
            return np.asarray(im.convert("RGBA"))
    except GscacheError:
        raise
    except Exception as exc:  # Pillow raises many types for damaged images
        raise GscacheError(f"{where}: cannot decode image {name}: {exc}") from None


def _section(meta: dict, key: str, where: str) -> dict:
    sec = meta.get(key)
    if not isinstance(sec, dict):
        raise GscacheError(f"{where}: meta.json has no '{key}' section")
    return sec


def _codebook(sec: dict, key: str, where: str) -> np.ndarray:
    cb = sec.get("codebook")
    try:
        arr = np.asarray(cb, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (256,):
        raise GscacheError(f"{where}: meta.json '{key}.codebook' must be a list of 256 numbers")
    return arr


def _files(sec: dict, key: str, n: int, where: str) -> list[str]:
    files = sec.get("files")
    if not isinstance(files, list) or len(files) < n or not all(isinstance(f, str) for f in files[:n]):
        raise GscacheError(f"{where}: meta.json '{key}.files' must list {n} image file name(s)")
    return files[:n]


def _decode(meta: dict, read: Callable[[str], bytes], where: str) -> Scene:
    if meta.get("version") != 2:
        raise GscacheError(f"{where}: SOG meta.json version {meta.get('version')!r}; only version 2 is supported")
    count = meta.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise GscacheError(f"{where}: meta.json 'count' must be a non-negative integer, got {count!r}")
    check_decoded_size(count * 60 * 4, where, f"count={count} Gaussians")  # up to 59 floats each, SH 3

    def image(name: str, per_gaussian: bool = False) -> np.ndarray:
        try:
            blob = read(name)
        except (KeyError, FileNotFoundError):
            raise GscacheError(f"{where}: missing image file {name}") from None
        except ZIP_ERRORS as exc:
            raise GscacheError(f"{where}: cannot read image file {name}: {exc}") from None
        return _decode_webp(blob, name, where, count if per_gaussian else None)

    def per_gaussian(name: str) -> np.ndarray:
        img = image(name, per_gaussian=True).reshape(-1, 4)
        if img.shape[0] < count:
            raise GscacheError(f"{where}: image {name} has {img.shape[0]} pixels, fewer than count={count}")
        return img[:count]

    # Positions: 16-bit log-encoded per axis.
    sec = _section(meta, "means", where)
    lo_name, hi_name = _files(sec, "means", 2, where)
    try:
        mins = np.asarray(sec["mins"], dtype=np.float64).reshape(3)
        maxs = np.asarray(sec["maxs"], dtype=np.float64).reshape(3)
    except (KeyError, TypeError, ValueError):
        raise GscacheError(f"{where}: meta.json 'means.mins'/'means.maxs' must be 3 numbers each") from None
    lo, hi = per_gaussian(lo_name), per_gaussian(hi_name)
    v = (lo[:, :3].astype(np.float64) + 256.0 * hi[:, :3]) / 65535.0
    nrm = mins + (maxs - mins) * v
    means = np.sign(nrm) * np.expm1(np.abs(nrm))

    # Rotations: smallest-three encoding.
    q3 = per_gaussian(_files(_section(meta, "quats", where), "quats", 1, where)[0])
    largest = q3[:, 3].astype(np.int64) - 252
    if ((largest < 0) | (largest > 3)).any():
        bad = int(((largest < 0) | (largest > 3)).sum())
        raise GscacheError(f"{where}: quats image: {bad} alpha values outside 252..255")
    small = (q3[:, :3].astype(np.float64) / 255.0 - 0.5) * math.sqrt(2.0)
    quats = np.zeros((count, 4))
    quats[np.arange(count), largest] = np.sqrt(np.clip(1.0 - (small**2).sum(1), 0.0, None))
    # The three stored components fill the other slots in (w, x, y, z) order.
    slot = np.arange(4)[None, :].repeat(count, 0)
    others = np.sort(np.where(slot == largest[:, None], 9, slot), axis=1)[:, :3]
    np.put_along_axis(quats, others, small, axis=1)

    sec = _section(meta, "scales", where)
    scales = np.exp(_codebook(sec, "scales", where)[per_gaussian(_files(sec, "scales", 1, where)[0])[:, :3]])

    sec = _section(meta, "sh0", where)
    sh0 = per_gaussian(_files(sec, "sh0", 1, where)[0])
    dc = _codebook(sec, "sh0", where)[sh0[:, :3]]
    opacities = sh0[:, 3].astype(np.float32) / 255.0

    sh_n = meta.get("shN")
    if sh_n is None:
        sh = dc[:, None, :]
    else:
        bands = sh_n.get("bands") if isinstance(sh_n, dict) else None
        if bands not in (1, 2, 3):
            raise GscacheError(f"{where}: meta.json 'shN.bands' must be 1, 2 or 3, got {bands!r}")
        c = (bands + 1) ** 2 - 1
        codebook = _codebook(sh_n, "shN", where)
        cent_name, label_name = _files(sh_n, "shN", 2, where)
        centroids = image(cent_name)  # [rows, 64 * c, 4]
        if centroids.shape[1] != 64 * c:
            raise GscacheError(f"{where}: {cent_name} is {centroids.shape[1]} px wide, expected 64*{c} for {bands} bands")
        labels = per_gaussian(label_name)
        entry = labels[:, 0].astype(np.int64) + 256 * labels[:, 1].astype(np.int64)
        n_entries = centroids.shape[0] * 64
        if count and entry.max() >= n_entries:
            raise GscacheError(f"{where}: {label_name} refers to palette entry {entry.max()}, but there are {n_entries}")
        palette = codebook[centroids[:, :, :3]].reshape(n_entries, c, 3)  # [entries, c, rgb]
        sh = np.concatenate([dc[:, None, :], palette[entry]], axis=1)
    return make_scene(means, quats, scales, opacities, sh, source=where)


def read_sog(path: str | os.PathLike) -> Scene:
    """Read a SOG v2 scene: a folder holding meta.json, or a zipped .sog file."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise GscacheError(f"{where}: folder has no meta.json, so it is not an unbundled SOG scene")
        meta = _load_meta(meta_path.read_bytes(), where)
        return _decode(meta, lambda name: (path / Path(name).name).read_bytes(), where)
    try:
        with zipfile.ZipFile(path) as zf:
            names = {Path(n).name: n for n in zf.namelist()}
            if "meta.json" not in names:
                raise GscacheError(f"{where}: zip archive has no meta.json, so it is not a .sog scene")
            meta = _load_meta(zf.read(names["meta.json"]), where)
            return _decode(meta, lambda name: zf.read(names[Path(name).name]), where)
    except GscacheError:
        raise
    except FileNotFoundError:
        raise
    except (*ZIP_ERRORS, zipfile.LargeZipFile) as exc:
        raise GscacheError(f"{where}: damaged zip archive: {exc}") from None


def _load_meta(raw: bytes, where: str) -> dict:
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GscacheError(f"{where}: meta.json is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise GscacheError(f"{where}: meta.json must hold a JSON object")
    return meta
