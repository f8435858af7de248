"""PlayCanvas compressed PLY (``.compressed.ply``, SuperSplat's and splat-transform's default
export): reader and writer.

Layout, binary little-endian, checked against playcanvas/splat-transform (writers/
write-compressed-ply.ts, writers/compressed-chunk.ts, readers/decompress-ply.ts) and the
engine's reader (framework/parsers/ply.js, scene/gsplat/gsplat-compressed-data.js):

- ``chunk`` element, one row per 256 splats (``ceil(N / 256)`` rows), float32
  ``min_x min_y min_z max_x max_y max_z min_scale_x .. max_scale_z`` (log scales, clamped to
  [-20, 20]) and, in files since 2024, ``min_r min_g min_b max_r max_g max_b`` (the colour
  ``0.5 + C0 * f_dc``, not clamped to [0, 1]). Without the colour range (12 properties) the
  colour bytes are the colour itself.
- ``vertex`` element, four uint32 per splat, each value v of b bits meaning
  ``lerp(min, max, v / (2^b - 1))`` within its chunk:
  ``packed_position`` x 11 bits (31..21), y 10 (20..11), z 11 (10..0); ``packed_scale`` the same
  for the log scales; ``packed_color`` R 31..24, G 23..16, B 15..8 and A 7..0, A being the opacity
  after the sigmoid (no range); ``packed_rotation`` "smallest three" of (w, x, y, z): bits 31..30
  the index of the largest component (made >= 0 and dropped), then the other three in index
  order, 10 bits each, ``(v / 1023 - 0.5) * sqrt(2)``.
- optional ``sh`` element, uint8 ``f_rest_0..`` (9, 24 or 45: degree 1, 2, 3), channel-major like
  the Inria PLY; byte q means ``(q + 0.5) / 32 - 4`` (splat-transform's reader; the writer
  stores ``trunc(32 v + 128)``; the PlayCanvas engine reads ``q * 8 / 255 - 4``, within 1/64).

Coordinates are the Inria PLY's (no axis change). The writer sorts the splats in Morton order
first (as splat-transform does) so that each chunk's ranges are tight.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import GscacheError
from ..sh import SH_C0, num_sh_coeffs
from ._quant import largest_first, others, rebuild, unorm
from .limits import check_decoded_size
from .ply import MAX_HEADER_BYTES, _parse_header
from .record import Scene, make_scene

CHUNK = 256
CHUNK_PROPS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
               "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
COLOR_PROPS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED_PROPS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
SH_REST = {9: 1, 24: 2, 45: 3}  # f_rest count -> SH degree
LOG_SCALE_LIMIT = 20.0
SQRT2 = math.sqrt(2.0)


def is_compressed_ply(elements) -> bool:
    """Whether parsed PLY header elements (``ply._parse_header``) are a compressed PLY: a ``chunk``
    element and a ``vertex`` element with ``packed_position``."""
    names = {e[0]: e for e in elements}
    return "chunk" in names and "vertex" in names and any(p == "packed_position" for p, _ in names["vertex"][2])


def _element_layout(path: str, elements) -> dict[str, tuple[int, int, np.dtype]]:
    """Per element name: (byte offset after the header, count, dtype), checked against the format."""
    fields = {"chunk": None, "vertex": None, "sh": None}
    offset = 0
    for name, count, props in elements:
        if name not in fields:
            raise GscacheError(f"{path}: compressed PLY element {name!r} is not one of chunk, vertex, sh")
        if fields[name] is not None:
            raise GscacheError(f"{path}: compressed PLY has two {name!r} elements")
        dtype = np.dtype([(p, "<" + t) for p, t in props]) if all(t != "list" for _, t in props) else None
        if dtype is None:
            raise GscacheError(f"{path}: compressed PLY element {name!r} has list properties")
        fields[name] = (offset, count, dtype)
        check_decoded_size(count * dtype.itemsize, path, f"the {name!r} element")
        offset += count * dtype.itemsize
    for name in ("chunk", "vertex"):
        if fields[name] is None:
            raise GscacheError(f"{path}: compressed PLY has no {name!r} element")
    chunk_props = fields["chunk"][2].names
    want = CHUNK_PROPS + COLOR_PROPS if len(chunk_props) == 18 else CHUNK_PROPS
    if tuple(chunk_props) != want:
        raise GscacheError(f"{path}: compressed PLY 'chunk' properties {list(chunk_props)}; expected "
                           f"{list(CHUNK_PROPS)}, optionally followed by {list(COLOR_PROPS)}")
    _types(path, "chunk", fields["chunk"][2], "f4", "float")
    vertex_props = fields["vertex"][2].names
    missing = [p for p in PACKED_PROPS if p not in vertex_props]
    if missing:
        raise GscacheError(f"{path}: compressed PLY 'vertex' element lacks {missing}")
    _types(path, "vertex", fields["vertex"][2], "u4", "uint", PACKED_PROPS)
    n = fields["vertex"][1]
    if fields["chunk"][1] != -(-n // CHUNK):
        raise GscacheError(f"{path}: {fields['chunk'][1]} chunks for {n} splats; expected ceil({n} / {CHUNK}) = "
                           f"{-(-n // CHUNK)}")
    if fields["sh"] is not None:
        _, count, dtype = fields["sh"]
        if len(dtype.names) not in SH_REST or list(dtype.names) != [f"f_rest_{i}" for i in range(len(dtype.names))]:
            raise GscacheError(f"{path}: compressed PLY 'sh' element has properties {list(dtype.names)[:4]}... "
                               f"({len(dtype.names)}); expected f_rest_0..f_rest_(9, 24 or 45 - 1)")
        _types(path, "sh", dtype, "u1", "uchar")
        if count != n:
            raise GscacheError(f"{path}: compressed PLY 'sh' element has {count} rows for {n} splats")
    return fields


def _types(path: str, element: str, dtype: np.dtype, want: str, word: str, names=None) -> None:
    bad = [p for p in (names or dtype.names) if dtype[p].str[1:] != want]
    if bad:
        raise GscacheError(f"{path}: compressed PLY '{element}' properties {bad} must be {word}")


def _bits(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((v >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float32) / np.float32((1 << bits) - 1)


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    return lo * (1 - t) + hi * t


def _unpack_111011(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    t = np.stack([_bits(v, 21, 11), _bits(v, 11, 10), _bits(v, 0, 11)], axis=1)
    return _lerp(lo, hi, t)


def read_compressed_ply(path: str | os.PathLike) -> Scene:
    """Read a PlayCanvas compressed PLY into an activated Scene (SH degree from its ``sh`` element)."""
    path = str(path)
    data = Path(path).read_bytes()
    fmt, elements, start = _parse_header(data[:MAX_HEADER_BYTES], path)
    if fmt != "binary_little_endian":
        raise GscacheError(f"{path}: compressed PLY must be binary_little_endian, not {fmt}")
    layout = _element_layout(path, elements)
    end = start + sum(count * dtype.itemsize for _, count, dtype in (v for v in layout.values() if v))
    if len(data) < end:
        raise GscacheError(f"{path}: truncated: the header's elements need {end - start} bytes after the header, "
                           f"found {len(data) - start}")
    table = {name: np.frombuffer(data, dtype=dt, count=count, offset=start + off)
             for name, (off, count, dt) in ((k, v) for k, v in layout.items() if v)}
    chunks, vert = table["chunk"], table["vertex"]
    n = len(vert)
    c = np.repeat(np.arange(len(chunks)), CHUNK)[:n]  # chunk of each splat

    def ranges(names):
        return np.stack([chunks[p] for p in names], axis=1).astype(np.float32)[c]

    means = _unpack_111011(vert["packed_position"], ranges(CHUNK_PROPS[0:3]), ranges(CHUNK_PROPS[3:6]))
    log_scales = _unpack_111011(vert["packed_scale"], ranges(CHUNK_PROPS[6:9]), ranges(CHUNK_PROPS[9:12]))
    col = vert["packed_color"]
    rgb = np.stack([_bits(col, 24, 8), _bits(col, 16, 8), _bits(col, 8, 8)], axis=1)
    if "min_r" in chunks.dtype.names:
        rgb = _lerp(ranges(COLOR_PROPS[0:3]), ranges(COLOR_PROPS[3:6]), rgb)
    opacities = _bits(col, 0, 8)
    rot = vert["packed_rotation"]
    three = (np.stack([_bits(rot, 20, 10), _bits(rot, 10, 10), _bits(rot, 0, 10)], axis=1) - 0.5) * np.float32(SQRT2)
    quats = rebuild(three, (rot >> np.uint32(30)).astype(np.int64))
    degree = SH_REST[len(table["sh"].dtype.names)] if "sh" in table else 0
    k = num_sh_coeffs(degree)
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0] = (rgb - 0.5) / SH_C0
    if degree:
        # A 256-entry table instead of float arithmetic on every byte: one [N, 3(K-1)] temporary.
        table_sh = (np.arange(256, dtype=np.float32) + 0.5) / 32.0 - 4.0
        table_sh[0], table_sh[255] = -4.0, 4.0
        q = table["sh"].view(np.uint8).reshape(n, 3, k - 1)
        sh[:, 1:] = table_sh[q].transpose(0, 2, 1)  # channel-major in the file
    with np.errstate(over="ignore"):
        scales = np.exp(log_scales)
    # Tensors over these fresh arrays: make_scene does not copy them again.
    return make_scene(*(torch.from_numpy(a) for a in (means, quats, scales, opacities, sh)), source=path)


def morton_order(means: np.ndarray) -> np.ndarray:
    """Indices that sort points along a Z-order curve over their bounding box (21 bits per axis;
    splat-transform uses 10 and re-sorts runs of equal codes, so its chunks can differ from these:
    the format is the same)."""
    n = len(means)
    if n == 0:
        return np.zeros(0, np.int64)
    lo, hi = means.min(axis=0), means.max(axis=0)
    extent = np.where(hi > lo, hi - lo, 1.0)
    if not np.isfinite(extent).all():
        return np.arange(n)
    cells = np.clip((means - lo) / extent * (1 << 21), 0, (1 << 21) - 1).astype(np.uint64)
    code = np.zeros(n, np.uint64)
    for bit in range(21):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def _chunk_ranges(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk (min, max) of values [N, C], float32 [chunks, C]."""
    chunks = -(-n // CHUNK)
    if n == 0:
        return np.zeros((0, values.shape[1]), np.float32), np.zeros((0, values.shape[1]), np.float32)
    pad = np.concatenate([values, np.repeat(values[-1:], chunks * CHUNK - n, axis=0)])  # as splat-transform pads
    blocks = pad.reshape(chunks, CHUNK, -1)
    return blocks.min(axis=1).astype(np.float32), blocks.max(axis=1).astype(np.float32)


def _pack_111011(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    t = np.where(span >= 1e-5, (values - lo) / np.where(span > 0, span, 1), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return (unorm(t[:, 0], 11) << np.uint32(21)) | (unorm(t[:, 1], 10) << np.uint32(11)) | unorm(t[:, 2], 11)


def write_compressed_ply(scene: Scene, path: str | os.PathLike) -> np.ndarray:
    """Write ``scene`` as a PlayCanvas compressed PLY, atomically; returns the written order (the
    index of the scene's Gaussian in each record: the file is in Morton order)."""
    n, k = scene.count, scene.sh.shape[1]
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    order = morton_order(means)
    means = means[order]
    log_scales = np.log(scene.scales.detach().cpu().numpy().astype(np.float64)[order])
    sh = scene.sh.detach().cpu().numpy()[order]
    rgb = 0.5 + SH_C0 * sh[:, 0].astype(np.float64)
    chunk = np.repeat(np.arange(-(-n // CHUNK)), CHUNK)[:n]
    pmin, pmax = _chunk_ranges(means, n)
    smin, smax = (np.clip(r, -LOG_SCALE_LIMIT, LOG_SCALE_LIMIT) for r in _chunk_ranges(log_scales, n))
    cmin, cmax = _chunk_ranges(rgb, n)
    chunk_rows = np.concatenate([pmin, pmax, smin, smax, cmin, cmax], axis=1).astype("<f4")

    vert = np.zeros((n, 4), "<u4")
    vert[:, 0] = _pack_111011(means, pmin[chunk], pmax[chunk])
    vert[:, 2] = _pack_111011(log_scales, smin[chunk], smax[chunk])
    cspan = (cmax - cmin)[chunk]
    ct = np.clip(np.where(cspan >= 1e-5, (rgb - cmin[chunk]) / np.where(cspan > 0, cspan, 1), 0.0), 0, 1)
    opac = np.clip(scene.opacities.detach().cpu().numpy().astype(np.float64)[order], 0, 1)
    vert[:, 3] = ((unorm(ct[:, 0], 8) << np.uint32(24)) | (unorm(ct[:, 1], 8) << np.uint32(16))
                  | (unorm(ct[:, 2], 8) << np.uint32(8)) | unorm(opac, 8))
    idx, q = largest_first(scene.quats.detach().cpu().numpy()[order])
    t = others(q, idx) / SQRT2 + 0.5
    vert[:, 1] = ((idx.astype(np.uint32) << np.uint32(30)) | (unorm(t[:, 0], 10) << np.uint32(20))
                  | (unorm(t[:, 1], 10) << np.uint32(10)) | unorm(t[:, 2], 10))

    header = ["ply", "format binary_little_endian 1.0", "comment written by gscache", f"element chunk {len(chunk_rows)}"]
    header += [f"property float {p}" for p in CHUNK_PROPS + COLOR_PROPS]
    header += [f"element vertex {n}"] + [f"property uint {p}" for p in PACKED_PROPS]
    parts = [chunk_rows.tobytes(), vert.tobytes()]
    if k > 1:
        rest = sh[:, 1:].transpose(0, 2, 1).reshape(n, 3 * (k - 1)).astype(np.float64)
        parts.append(np.clip(np.trunc(rest * 32.0 + 128.0), 0, 255).astype(np.uint8).tobytes())
        header += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(3 * (k - 1))]
    header.append("end_header\n")
    with atomic_write(path) as f:
        f.write("\n".join(header).encode("ascii"))
        for part in parts:
            f.write(part)
    return order


__all__ = ["read_compressed_ply", "write_compressed_ply", "is_compressed_ply", "morton_order"]
