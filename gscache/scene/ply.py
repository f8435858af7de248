"""Inria 3DGS PLY: reader and writer.

Layout (binary little-endian ``vertex`` element of float32 properties):
``x y z nx ny nz f_dc_0..2 f_rest_0..(3*(K-1)-1) opacity scale_0..2 rot_0..3``.
Stored values are raw: log scales, logit opacity, unnormalised quaternion (w, x, y, z), and
``f_rest`` channel-major (all red coefficients, then green, then blue). The number of
``f_rest_*`` properties (0, 9, 24, 45) gives the SH degree. Extra properties are ignored. The
reader also accepts ascii and big-endian PLY and double-precision properties.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import GscacheError
from ..sh import num_sh_coeffs, sh_degree_of
from .record import Scene, make_scene
from ..atomic import atomic_write

PLY_MAGIC = b"ply"
MAX_HEADER_BYTES = 1 << 16

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _parse_header(raw: bytes, path: str) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]], int]:
    """Return (format, elements, header length). Elements are (name, count, [(prop, np type)])."""
    end = raw.find(b"end_header")
    if not raw.startswith(PLY_MAGIC) or end < 0:
        raise GscacheError(f"{path}: not a PLY file (no 'ply' magic or no 'end_header' in the first 64 KiB)")
    nl = raw.find(b"\n", end)
    if nl < 0:
        raise GscacheError(f"{path}: truncated PLY header (no newline after 'end_header')")
    try:
        lines = raw[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise GscacheError(f"{path}: PLY header is not ASCII text") from None
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            try:
                count = int(words[2])
            except ValueError:
                raise GscacheError(f"{path}: header line {lineno}: bad element count {words[2]!r}") from None
            if count < 0:
                raise GscacheError(f"{path}: header line {lineno}: negative element count {count}")
            elements.append((words[1], count, []))
        elif words[0] == "property" and elements:
            if len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
            elif len(words) == 5 and words[1] == "list":
                elements[-1][2].append((words[4], "list"))
            else:
                raise GscacheError(f"{path}: header line {lineno}: unsupported property {line.strip()!r}")
        else:
            raise GscacheError(f"{path}: header line {lineno}: unexpected {line.strip()!r}")
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise GscacheError(f"{path}: PLY format {fmt!r} is not one of binary_little_endian, binary_big_endian, ascii")
    return fmt, elements, nl + 1


def _vertex_layout(path: str, head: bytes) -> tuple[str, int, list[tuple[str, str]], int]:
    """(format, vertex count, vertex properties, offset of the body) from a file's first bytes,
    checked: the first element is ``vertex``, without list properties or duplicate names."""
    fmt, elements, offset = _parse_header(head[:MAX_HEADER_BYTES], path)
    if not elements or elements[0][0] != "vertex":
        names = [e[0] for e in elements]
        hint = " (a PlayCanvas compressed PLY: load_scene reads it)" if "chunk" in names else ""
        raise GscacheError(f"{path}: expected 'vertex' as the first PLY element, found {names}{hint}")
    _, count, props = elements[0]
    if any(t == "list" for _, t in props):
        raise GscacheError(f"{path}: the 'vertex' element has list properties, which a splat PLY never has")
    names = [p for p, _ in props]
    if len(set(names)) != len(names):
        raise GscacheError(f"{path}: duplicate vertex property names")
    return fmt, count, props, offset


def _binary_dtype(fmt: str, props: list[tuple[str, str]]) -> np.dtype:
    endian = "<" if fmt == "binary_little_endian" else ">"
    return np.dtype([(p, endian + t) for p, t in props])


def _truncated(path: str, count: int, itemsize: int, have: int) -> GscacheError:
    return GscacheError(f"{path}: truncated: {count} vertices of {itemsize} bytes need {count * itemsize} bytes, "
                        f"found {have}")


def _read_vertices(path: str, data: bytes) -> np.ndarray:
    fmt, count, props, offset = _vertex_layout(path, data)
    names = [p for p, _ in props]
    if fmt == "ascii":
        text = data[offset:].decode("ascii", errors="replace").split()
        need = count * len(props)
        if len(text) < need:
            raise GscacheError(f"{path}: truncated: {count} vertices need {need} values, found {len(text)}")
        try:
            flat = np.array(text[:need], dtype=np.float64)
        except ValueError:
            raise GscacheError(f"{path}: ascii vertex data contains a value that is not a number") from None
        table = np.zeros(count, dtype=[(p, "f8") for p in names])
        for i, p in enumerate(names):
            table[p] = flat[i :: len(props)]
        return table
    dtype = _binary_dtype(fmt, props)
    if len(data) - offset < count * dtype.itemsize:
        raise _truncated(path, count, dtype.itemsize, len(data) - offset)
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset)


CHUNK_ROWS = 1 << 17
"""Vertices read at a time from a binary PLY (about 32 MB of a degree-3 file): the scene's own
tensors plus one chunk is what reading holds at most."""


def read_ply(path: str | os.PathLike) -> Scene:
    """Read an Inria 3DGS PLY file into an activated Scene. A binary file is read a chunk of
    vertices at a time straight into the scene's tensors (activated in place), so the peak memory
    is the scene plus one chunk, not the file plus copies of it; ascii files are parsed whole."""
    path = str(path)
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
        fmt, count, props, offset = _vertex_layout(path, head)
        # The body is checked against the header before anything the size of the scene is
        # allocated (a header may claim any count).
        if fmt == "ascii":
            table = _read_vertices(path, head + f.read())
        else:
            dtype = _binary_dtype(fmt, props)
            have = os.fstat(f.fileno()).st_size - offset
            if have < count * dtype.itemsize:
                raise _truncated(path, count, dtype.itemsize, have)
        fields = {p for p, _ in props}
        if not any(n.startswith("scale_") for n in fields) or not any(n.startswith("rot_") for n in fields):
            raise GscacheError(
                f"{path}: this PLY is a point cloud (no scale_*/rot_* properties), not a Gaussian splat scene; "
                "convert it to an .npz of points (means3d, colors) to load it as isotropic Gaussians"
            )
        n_rest = sum(1 for n in fields if n.startswith("f_rest_"))
        if n_rest % 3 != 0:
            raise GscacheError(f"{path}: {n_rest} f_rest_* properties is not a multiple of 3")
        try:
            degree = sh_degree_of(n_rest // 3 + 1)
        except ValueError:
            raise GscacheError(f"{path}: {n_rest} f_rest_* properties; expected 0, 9, 24 or 45 (SH degree 0 to 3)") \
                from None
        k = num_sh_coeffs(degree)
        # Where each property goes: (field, index into that field's trailing dimensions); f_rest is
        # stored channel-major.
        where = {axis: ("means", (i,)) for i, axis in enumerate("xyz")}
        where.update({f"f_dc_{i}": ("sh", (0, i)) for i in range(3)})
        where.update({f"f_rest_{i}": ("sh", (1 + i % (k - 1), i // (k - 1))) for i in range(n_rest)})
        where["opacity"] = ("opacities", ())
        where.update({f"scale_{i}": ("scales", (i,)) for i in range(3)})
        where.update({f"rot_{i}": ("quats", (i,)) for i in range(4)})
        missing = [n for n in where if n not in fields]
        if missing:  # (before the scene's tensors are allocated)
            raise GscacheError(f"{path}: missing PLY vertex properties {missing}")
        out = {"means": torch.empty(count, 3), "quats": torch.empty(count, 4), "scales": torch.empty(count, 3),
               "opacities": torch.empty(count), "sh": torch.empty(count, k, 3)}
        targets = {name: (out[field].numpy(), index) for name, (field, index) in where.items()}
        if fmt == "ascii":
            _fill(table, targets, 0, count)
        else:
            f.seek(offset)
            for start in range(0, count, CHUNK_ROWS):
                rows = min(CHUNK_ROWS, count - start)
                chunk = f.read(rows * dtype.itemsize)
                if len(chunk) < rows * dtype.itemsize:
                    raise _truncated(path, count, dtype.itemsize, start * dtype.itemsize + len(chunk))
                _fill(np.frombuffer(chunk, dtype=dtype, count=rows), targets, start, rows)
    out["scales"].exp_()  # stored as logarithms
    out["opacities"].sigmoid_()  # stored as logits
    return make_scene(**out, source=path)


def _fill(table: np.ndarray, targets: dict, start: int, rows: int) -> None:
    """Rows [start, start + rows) of the scene's arrays from a table of those vertices (each
    property converted to float32 as it is written at its index)."""
    for name, (array, index) in targets.items():
        array[(slice(start, start + rows), *index)] = table[name]


def write_ply(scene: Scene, path: str | os.PathLike) -> None:
    """Write ``scene`` as an Inria 3DGS PLY (binary little-endian), atomically."""
    n, k = scene.count, scene.sh.shape[1]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    sh = scene.sh.detach().cpu().numpy()
    opac = scene.opacities.detach().cpu().double().clamp(1e-7, 1 - 1e-7).numpy()
    cols = [
        scene.means.detach().cpu().numpy(),
        np.zeros((n, 3), np.float32),
        sh[:, 0, :],
        sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1)),
        np.log(opac / (1 - opac))[:, None],
        np.log(scene.scales.detach().cpu().numpy()),
        scene.quats.detach().cpu().numpy(),
    ]
    body = np.concatenate([c.astype(np.float32) for c in cols], axis=1)
    assert body.shape == (n, len(names))
    header = "ply\nformat binary_little_endian 1.0\n"
    header += "comment written by gscache\n"
    header += f"element vertex {n}\n" + "".join(f"property float {p}\n" for p in names) + "end_header\n"
    with atomic_write(path) as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(body, dtype="<f4").tobytes())


def looks_like_ply(head: bytes) -> bool:
    return head.startswith(b"ply\n") or head.startswith(b"ply\r\n")


__all__ = ["read_ply", "write_ply", "looks_like_ply"]
