"""Niantic SPZ (``.spz``): reader of versions 1 to 4 and writer of versions 3 and 4.

Checked against nianticlabs/spz at 21715c3 (src/cc/load-spz.cc, splat-types.h,
splat-utils.h, extensions/). Versions 1-3 (and early version-4 files) are one gzip stream
holding a 16-byte header, the attribute sections and any extension records; version 4 has a
32-byte plain header, extension records, a table of contents and one ZSTD stream per section:

    v1-v3 header: magic u32 0x5053474e ("NGSP"), version u32, points u32, sh degree u8,
                  fractional bits u8, flags u8 (bit 0: antialiased, bit 1: extensions), reserved u8
    v4 header:    the same first 15 bytes, then stream count u8, table-of-contents offset u32,
                  12 reserved bytes; extension records fill [32, toc); the table holds
                  (compressed, uncompressed) u64 sizes per non-empty stream, and the streams
                  follow it in section order to the end of the file
    extension record: type u32, byte length u32, payload; 0xADBE0003 names the stored axes

Sections, per point (N points, D = (degree + 1)^2 - 1 SH coefficients per channel):

- positions: 3 x 24-bit signed fixed point, ``value / 2^fractional_bits`` (v1: 3 x float16)
- alphas: the opacity after the sigmoid, ``byte / 255``
- colours: the DC coefficient, ``(byte / 255 - 0.5) / 0.15``
- scales: the log scale, ``byte / 16 - 10``
- rotations (x, y, z, w order): v1/v2 three bytes ``byte / 127.5 - 1`` for x, y, z with
  ``w = sqrt(1 - x^2 - y^2 - z^2)``; v3+ four bytes "smallest three" (u32: bits 31..30 the index
  of the largest component, which is >= 0 and dropped; then per other component, highest index
  in the lowest bits, a sign bit and a 9-bit magnitude of ``|c| / sqrt(1/2)``)
- SH: ``(byte - 128) / 128``, coefficient-major with the three channels interleaved; degree 4
  (24 coefficients) is read and its fourth band dropped with a warning (gscache renders to 3)

Axes: SPZ stores x right, y up, z back (RUB) unless an SPZ_ADOBE_coordinate_system record says
otherwise; gscache and Inria PLY are x right, y down, z forward (RDF, OpenCV). Reading flips
the axes that differ (for RUB: y and z) in the positions, the quaternions (x *= fy fz, y *= fx fz,
z *= fx fy) and the SH coefficients whose basis function is odd under the flip; the writer
stores RUB. Caveat: Niantic's own ply_to_spz leaves the axes unconverted unless asked to, so an
SPZ made by it from an Inria PLY without options holds RDF data and opens upside down (in
gscache as in every viewer that follows the format's RUB).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import GscacheError, GscacheWarning
from ..sh import MAX_SH_DEGREE, num_sh_coeffs, sh_basis
from ._quant import largest_first, others, rebuild
from .limits import check_decoded_size
from .record import Scene, make_scene

MAGIC = 0x5053474E
MAGIC_BYTES = struct.pack("<I", MAGIC)  # b"NGSP"
GZIP_MAGIC = b"\x1f\x8b"
HEADER = struct.Struct("<IIIBBBB")  # v1-v3: 16 bytes
HEADER_V4 = struct.Struct("<IIIBBBBI12x")  # 32 bytes
TOC_ENTRY = struct.Struct("<QQ")
VERSIONS = (1, 2, 3, 4)
MAX_FILE_DEGREE = 4
COLOR_SCALE = 0.15
MAX_COMPRESSION = 1024  # Niantic's bound on points per 9 file bytes of a v4 file
COORDINATE_SYSTEM_EXT = 0xADBE0003
SYSTEMS = {1: "LDB", 2: "RDB", 3: "LUB", 4: "RUB", 5: "LDF", 6: "RDF", 7: "LUF", 8: "RUF"}
"""Niantic's CoordinateSystem values of the x/y/z sign family (9-16 swap y and z: not supported)."""
SH_BITS = (5, 4)  # the writer's SH precision: degree-1 coefficients, higher degrees (Niantic's defaults)
SECTIONS = ("positions", "alphas", "colors", "scales", "rotations", "sh")


RUB_TO_RDF = (1.0, -1.0, -1.0)


def _flip_signs(degree: int, factors=RUB_TO_RDF) -> np.ndarray:
    """Per SH coefficient (K of them), the sign it takes when the axes are scaled by ``factors``
    (each +-1): the parity of its basis function, read off the basis at a generic direction."""
    d = torch.tensor([[0.3, 0.5, 0.8]], dtype=torch.float64)
    d = d / d.norm()
    flipped = d * torch.tensor(factors, dtype=torch.float64)
    return np.sign((sh_basis(flipped, degree) / sh_basis(d, degree))[0].numpy())


def _flip_axes(means: np.ndarray, xyzw: np.ndarray, factors) -> tuple[np.ndarray, np.ndarray]:
    """Positions [N, 3] and quaternions [N, 4] (x, y, z, w) with the axes scaled by ``factors``
    (each +-1; a flip of y and z is its own inverse), the quaternions returned as (w, x, y, z):
    the vector part's x takes fy fz, y fx fz, z fx fy, w stays (SH: _flip_signs)."""
    fx, fy, fz = factors
    quats = np.stack([xyzw[:, 3], fy * fz * xyzw[:, 0], fx * fz * xyzw[:, 1], fx * fy * xyzw[:, 2]], axis=1)
    return means * np.asarray(factors, means.dtype), quats


def _to_rdf_factors(system: int, path: str) -> tuple[float, float, float]:
    """Axis signs from a stored CoordinateSystem to RDF (value - 1: bit 0 right, bit 1 up, bit 2 front)."""
    if system == 0:
        system = 4  # "unspecified": the format's RUB, as Niantic reads it
    if system not in SYSTEMS:
        raise GscacheError(f"{path}: SPZ coordinate-system extension names system {system}; gscache reads "
                           f"{', '.join(f'{v} ({k})' for v, k in SYSTEMS.items())} (the others swap y and z)")
    bits = system - 1
    return (1.0 if bits & 1 else -1.0, -1.0 if bits & 2 else 1.0, 1.0 if bits & 4 else -1.0)


def _extensions(path: str, block: bytes) -> tuple[float, float, float]:
    """The axes named by the extension records in ``block`` (RUB when none says)."""
    factors = RUB_TO_RDF
    at = 0
    while at + 8 <= len(block):
        kind, length = struct.unpack_from("<II", block, at)
        if at + 8 + length > len(block):
            raise GscacheError(f"{path}: SPZ extension record 0x{kind:08X} of {length} bytes runs past its block "
                               f"({len(block) - at - 8} bytes left)")
        if kind == COORDINATE_SYSTEM_EXT:
            if length < 4:
                raise GscacheError(f"{path}: SPZ coordinate-system extension of {length} bytes; 4 expected")
            factors = _to_rdf_factors(struct.unpack_from("<I", block, at + 8)[0], path)
        at += 8 + length  # other records (cameras, ...) do not change the Gaussians
    return factors


def _section_sizes(n: int, version: int, degree: int) -> list[int]:
    d = num_sh_coeffs(degree) - 1
    return [n * (6 if version == 1 else 9), n, 3 * n, 3 * n, n * (4 if version >= 3 else 3), 3 * d * n]


def _check_header(path: str, version: int, n: int, degree: int, fractional_bits: int) -> None:
    if version not in VERSIONS:
        raise GscacheError(f"{path}: SPZ version {version}; expected one of {', '.join(map(str, VERSIONS))}")
    if n >= 1 << 31:
        raise GscacheError(f"{path}: SPZ header declares {n:,} points, more than SPZ allows (2^31 - 1)")
    if degree > MAX_FILE_DEGREE:
        raise GscacheError(f"{path}: SPZ SH degree {degree}; expected 0 to {MAX_FILE_DEGREE}")
    if fractional_bits > 24:
        raise GscacheError(f"{path}: SPZ fractional bits {fractional_bits}; expected at most 24 (24-bit positions)")


def _gunzip_bounded(path: str, raw: bytes) -> bytes:
    """The gzip payload of a v1-v3 file, decompressed only as far as its header says it reaches (a
    small file that inflates to gigabytes is refused before it is inflated)."""
    d = zlib.decompressobj(wbits=31)
    try:
        head = d.decompress(raw, HEADER.size)
        if len(head) < HEADER.size:
            raise GscacheError(f"{path}: SPZ gzip stream ends inside the 16-byte header")
        magic, version, n, degree, bits, flags, _ = HEADER.unpack(head)
        if magic != MAGIC:
            raise GscacheError(f"{path}: gzip stream does not start with the SPZ magic NGSP (found {head[:4]!r})")
        _check_header(path, version, n, degree, bits)
        # Early version-4 files (before the ZSTD container) used this gzip layout too.
        size = sum(_section_sizes(n, version, degree))
        check_decoded_size(size, path, f"SPZ payload of {n:,} points")
        body = d.decompress(d.unconsumed_tail, size)
        while len(body) < size and d.unconsumed_tail:
            body += d.decompress(d.unconsumed_tail, size - len(body))
        # Extension records (flags bit 1) follow the SH to the end of the stream; the rest is read
        # to the gzip trailer, whose CRC catches damage, up to 1 MiB.
        rest = d.decompress(d.unconsumed_tail, 1 << 20) if len(body) == size else b""
        if len(body) == size and not d.eof:
            raise GscacheError(f"{path}: SPZ gzip stream is cut short or carries more than 1 MiB after its "
                               f"{n:,} points (no gzip end found)")
        if flags & 2:
            body += rest
    except zlib.error as exc:
        raise GscacheError(f"{path}: damaged SPZ gzip stream: {exc}") from None
    if len(body) < size:
        raise GscacheError(f"{path}: truncated: SPZ v{version} of {n:,} points (SH degree {degree}) needs {size} bytes "
                           f"after the header, the gzip stream holds {len(body)}")
    return head + body


def _zstd():
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a declared dependency
        raise GscacheError("SPZ version 4 needs the zstandard package (pip install zstandard)") from None
    return zstandard


def _read_v4(path: str, raw: bytes) -> tuple[tuple, list[bytes]]:
    if len(raw) < HEADER_V4.size:
        raise GscacheError(f"{path}: truncated: SPZ v4 header needs {HEADER_V4.size} bytes, the file has {len(raw)}")
    magic, version, n, degree, bits, flags, streams, toc = HEADER_V4.unpack_from(raw)
    _check_header(path, version, n, degree, bits)
    if version != 4:
        raise GscacheError(f"{path}: an uncompressed SPZ header says version {version}; only version 4 is stored plain")
    if n * 9 > len(raw) * MAX_COMPRESSION:
        raise GscacheError(f"{path}: SPZ v4 header declares {n:,} points, more than a {len(raw)}-byte file can hold "
                           f"(at most {MAX_COMPRESSION}x compression of 9 bytes per point)")
    sizes = _section_sizes(n, 4, degree)
    want = [s for s in sizes if s]
    if streams != len(want):
        raise GscacheError(f"{path}: SPZ v4 has {streams} streams; {n:,} points of SH degree {degree} need {len(want)}")
    if toc < HEADER_V4.size or toc + streams * TOC_ENTRY.size > len(raw):
        raise GscacheError(f"{path}: SPZ v4 table of contents at byte {toc} (of {streams} entries) lies outside the "
                           f"{len(raw)}-byte file")
    check_decoded_size(sum(sizes), path, f"SPZ payload of {n:,} points")
    zstandard = _zstd()
    at = toc + streams * TOC_ENTRY.size
    parts = []
    for i, (name, size) in enumerate(zip([s for s, z in zip(SECTIONS, sizes) if z], want)):
        packed, unpacked = TOC_ENTRY.unpack_from(raw, toc + i * TOC_ENTRY.size)
        if unpacked != size:
            raise GscacheError(f"{path}: SPZ v4 stream {i} ({name}) says {unpacked} bytes; {size} expected")
        if at + packed > len(raw):
            raise GscacheError(f"{path}: truncated: SPZ v4 stream {i} ({name}) of {packed} bytes runs past the end")
        try:
            part = zstandard.ZstdDecompressor().decompress(raw[at:at + packed], max_output_size=size)
        except zstandard.ZstdError as exc:
            raise GscacheError(f"{path}: damaged SPZ v4 stream {i} ({name}): {exc}") from None
        if len(part) != size:
            raise GscacheError(f"{path}: SPZ v4 stream {i} ({name}) holds {len(part)} bytes; {size} expected")
        parts.append(part)
        at += packed
    if at != len(raw):
        raise GscacheError(f"{path}: SPZ v4 streams end at byte {at} of a {len(raw)}-byte file")
    full = iter(parts)
    factors = _extensions(path, raw[HEADER_V4.size:toc]) if flags & 2 else RUB_TO_RDF
    return (version, n, degree, bits, flags, factors), [next(full) if z else b"" for z in sizes]


def read_spz(path: str | os.PathLike) -> Scene:
    """Read a Niantic SPZ file (version 1 to 4) into an activated Scene in gscache's RDF axes."""
    path = str(path)
    raw = Path(path).read_bytes()
    if raw.startswith(MAGIC_BYTES):
        (version, n, degree, bits, flags, factors), parts = _read_v4(path, raw)
    elif raw.startswith(GZIP_MAGIC):
        payload = _gunzip_bounded(path, raw)
        _, version, n, degree, bits, flags, _ = HEADER.unpack_from(payload)
        sizes = _section_sizes(n, version, degree)
        offsets = np.cumsum([HEADER.size] + sizes)
        parts = [payload[offsets[i]:offsets[i + 1]] for i in range(len(sizes))]
        factors = _extensions(path, payload[offsets[-1]:]) if flags & 2 else RUB_TO_RDF
    else:
        raise GscacheError(f"{path}: not an SPZ file (neither gzip nor the NGSP magic at the start)")
    if flags & 1:
        warnings.warn(f"{path}: the SPZ flags say the model was trained antialiased (Mip-Splatting's 2D filter); "
                      "gscache renders it without that filter's opacity compensation (splats look slightly thicker)",
                      GscacheWarning, stacklevel=2)
    return _decode(path, version, n, degree, bits, parts, factors)


def _decode(path: str, version: int, n: int, degree: int, bits: int, parts: list[bytes], factors) -> Scene:
    pos_b, alpha_b, color_b, scale_b, rot_b, sh_b = (np.frombuffer(p, np.uint8) for p in parts)
    if version == 1:
        means = pos_b.view("<f2").reshape(n, 3).astype(np.float32)
    else:
        b = pos_b.reshape(n, 3, 3).astype(np.int32)
        fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)  # sign-extend 24 bits
        means = (fixed / float(1 << bits)).astype(np.float32)
    opacities = alpha_b.astype(np.float32) / 255.0
    dc = (color_b.reshape(n, 3).astype(np.float32) / 255.0 - 0.5) / COLOR_SCALE
    scales = np.exp(scale_b.reshape(n, 3).astype(np.float32) / 16.0 - 10.0)
    if version >= 3:
        packed = rot_b.view("<u4").astype(np.uint32)
        largest = (packed >> np.uint32(30)).astype(np.int64)
        three = np.empty((n, 3), np.float32)
        comp = packed.copy()
        # The lowest 10 bits belong to the highest remaining index: walk the indices downwards.
        slot = np.full(n, 2)
        for i in range(3, -1, -1):
            here = largest != i
            mag = (comp & np.uint32(0x1FF)).astype(np.float32) / 511.0 * math.sqrt(0.5)
            value = np.where((comp >> np.uint32(9)) & np.uint32(1), -mag, mag)
            rows = np.nonzero(here)[0]
            three[rows, slot[rows]] = value[rows]
            slot[here] -= 1
            comp = np.where(here, comp >> np.uint32(10), comp)
        xyzw = rebuild(three, largest)
    else:
        xyz = rot_b.reshape(n, 3).astype(np.float32) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz.astype(np.float64) ** 2).sum(axis=1)))
        xyzw = np.concatenate([xyz, w[:, None].astype(np.float32)], axis=1)
    stored_k = num_sh_coeffs(degree)
    if degree > MAX_SH_DEGREE:
        warnings.warn(f"{path}: SPZ SH degree {degree}; gscache renders degree {MAX_SH_DEGREE} and drops band "
                      f"{degree}", GscacheWarning, stacklevel=3)
        degree = MAX_SH_DEGREE
    k = num_sh_coeffs(degree)
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0] = dc
    if k > 1:
        # A 256-entry table (with the axis flip folded in per coefficient) instead of float
        # arithmetic on every byte, so the only [N, K, 3] float array is the result.
        table = (np.arange(256, dtype=np.float32) - 128.0) / 128.0
        signs = _flip_signs(degree, factors)[1:].astype(np.float32)
        codes = sh_b.reshape(n, stored_k - 1, 3)[:, :k - 1]
        for j in range(k - 1):
            sh[:, 1 + j] = (table * signs[j])[codes[:, j]]
    # Stored axes (RUB unless an extension says) -> RDF (the SH above, through the table).
    means, quats = _flip_axes(means, xyzw, factors)
    return make_scene(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (means, quats, scales, opacities, sh)),
                      source=path)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _quantise_sh(x: np.ndarray, bits: int) -> np.ndarray:
    """SH bytes of ``bits`` precision (the low 8 - bits bits zero), as Niantic's writer makes them:
    fewer distinct bytes compress better."""
    q = np.round(x * 128.0 + 128.0)
    bucket = 1 << (8 - bits)
    q = np.floor((q + bucket / 2) / bucket) * bucket
    return np.clip(q, 0, 255).astype(np.uint8)


def fractional_bits_for(means: np.ndarray, preferred: int = 12) -> int:
    """Niantic's default precision (2^-12 m) where the scene fits the 24-bit range, else the most
    precision that fits its largest coordinate."""
    top = float(np.abs(means).max()) if len(means) else 0.0
    bits = preferred
    while bits > 0 and top * (1 << bits) >= (1 << 23) - 1:
        bits -= 1
    return bits


def encode_spz(scene: Scene, version: int = 3) -> bytes:
    """The bytes of ``scene`` as an SPZ file of ``version`` (3: gzip, the widest supported; 4: ZSTD)."""
    if version not in (3, 4):
        raise GscacheError(f"SPZ writer: version {version}; expected 3 or 4")
    n, degree = scene.count, scene.sh_degree
    q = scene.quats.detach().cpu().numpy().astype(np.float64)
    means, wxyz = _flip_axes(scene.means.detach().cpu().numpy().astype(np.float64),
                             q[:, [1, 2, 3, 0]], RUB_TO_RDF)  # RDF -> RUB (the same flip)
    bits = fractional_bits_for(means)
    if bits < 12:
        warnings.warn(f"SPZ writer: coordinates up to {np.abs(means).max():.0f} m leave {bits} fractional bits "
                      f"(positions rounded to {2.0 ** -bits * 1000:.2f} mm)", GscacheWarning, stacklevel=3)
    fixed = np.round(means * (1 << bits)).astype(np.int64) & 0xFFFFFF
    pos = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)
    sh = scene.sh.detach().cpu().numpy().astype(np.float64) * _flip_signs(degree, RUB_TO_RDF)[None, :, None]
    alphas = _u8(scene.opacities.detach().cpu().numpy().astype(np.float64) * 255.0)
    colors = _u8(sh[:, 0] * (COLOR_SCALE * 255.0) + 127.5)
    scales = _u8((np.log(scene.scales.detach().cpu().numpy().astype(np.float64)) + 10.0) * 16.0)
    idx, xyzw = largest_first(wxyz[:, [1, 2, 3, 0]])  # SPZ's component order: x, y, z, w
    rest = others(xyzw, idx)
    mags = np.clip(np.round(np.abs(rest) / math.sqrt(0.5) * 511.0), 0, 511).astype(np.uint32)
    packed = idx.astype(np.uint32)
    for j in range(3):  # lowest index first, so the highest index ends in the lowest bits
        negative = (rest[:, j] < 0).astype(np.uint32)
        packed = (packed << np.uint32(10)) | (negative << np.uint32(9)) | mags[:, j]
    coeffs = sh[:, 1:]
    sh_bytes = np.empty(coeffs.shape, np.uint8)
    if degree:
        sh_bytes[:, :3] = _quantise_sh(coeffs[:, :3], SH_BITS[0])
        sh_bytes[:, 3:] = _quantise_sh(coeffs[:, 3:], SH_BITS[1])
    sections = [pos.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(),
                packed.astype("<u4").tobytes(), sh_bytes.tobytes()]
    if version == 3:
        header = HEADER.pack(MAGIC, 3, n, degree, bits, 0, 0)
        return gzip.compress(header + b"".join(sections), compresslevel=6, mtime=0)
    zstandard = _zstd()
    streams = [(zstandard.ZstdCompressor(level=12).compress(s), len(s)) for s in sections if s]
    toc = HEADER_V4.size
    header = HEADER_V4.pack(MAGIC, 4, n, degree, bits, 0, len(streams), toc)
    table = b"".join(TOC_ENTRY.pack(len(c), size) for c, size in streams)
    return header + table + b"".join(c for c, _ in streams)


def write_spz(scene: Scene, path: str | os.PathLike, version: int = 3) -> None:
    """Write ``scene`` as SPZ ``version`` (3 or 4), atomically."""
    data = encode_spz(scene, version)
    with atomic_write(path) as f:
        f.write(data)


__all__ = ["read_spz", "write_spz", "encode_spz", "MAGIC_BYTES", "GZIP_MAGIC"]
