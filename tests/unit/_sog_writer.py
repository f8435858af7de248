"""A minimal SOG v2 encoder for tests, written from the format description in the data README.

It quantises through 256-entry codebooks, so decoding returns the codebook values; tests compare
the decoded scene with the quantised values and the real file with its known counts.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from gscache.sh import SH_C0


def _webp(pixels: np.ndarray, side: int) -> bytes:
    img = np.zeros((side * side, 4), np.uint8)
    img[: len(pixels), : pixels.shape[1]] = pixels
    if pixels.shape[1] < 4:
        img[:, 3] = 255
    buf = io.BytesIO()
    Image.fromarray(img.reshape(side, side, 4), "RGBA").save(buf, format="WEBP", lossless=True, exact=True)
    return buf.getvalue()


def _codebook(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cb = np.linspace(values.min(), values.max() + 1e-6, 256).astype(np.float32)
    idx = np.clip(np.searchsorted(cb, values), 0, 255).astype(np.uint8)
    return cb, idx


def encode_sog(means, quats, log_scales, f_dc, opacities, sh_rest=None) -> dict[str, bytes]:
    """Files of a SOG v2 scene (name -> bytes). sh_rest: [N, c, 3] or None."""
    n = len(means)
    side = max(1, math.ceil(math.sqrt(n)))
    files: dict[str, bytes] = {}
    nrm = np.sign(means) * np.log1p(np.abs(means))
    mins, maxs = nrm.min(0), nrm.max(0)
    v = np.round((nrm - mins) / np.where(maxs > mins, maxs - mins, 1) * 65535).astype(np.uint32)
    files["means_l.webp"] = _webp((v & 255).astype(np.uint8), side)
    files["means_u.webp"] = _webp((v >> 8).astype(np.uint8), side)
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    largest = np.abs(q).argmax(1)
    q = q * np.sign(q[np.arange(n), largest])[:, None]
    others = np.array([[j for j in range(4) if j != i] for i in largest]).reshape(n, 3)
    small = np.take_along_axis(q, others, 1)
    qp = np.zeros((n, 4), np.uint8)
    qp[:, :3] = np.clip(np.round((small / math.sqrt(2) + 0.5) * 255), 0, 255)
    qp[:, 3] = 252 + largest
    files["quats.webp"] = _webp(qp, side)
    scb, sidx = _codebook(log_scales)
    files["scales.webp"] = _webp(sidx, side)
    dcb, didx = _codebook(f_dc)
    sh0 = np.concatenate([didx, np.round(opacities * 255).astype(np.uint8)[:, None]], 1)
    files["sh0.webp"] = _webp(sh0, side)
    meta = {
        "version": 2, "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scb.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": dcb.tolist(), "files": ["sh0.webp"]},
    }
    if sh_rest is not None:
        c = sh_rest.shape[1]
        bands = {3: 1, 8: 2, 15: 3}[c]
        ncb, nidx = _codebook(sh_rest.reshape(-1))
        nidx = nidx.reshape(n, c, 3)
        # One palette entry per Gaussian: entry e in row e // 64, pixels (e % 64) * c ...
        rows = math.ceil(n / 64)
        cent = np.zeros((rows, 64 * c, 4), np.uint8)
        cent[..., 3] = 255
        for e in range(n):
            cent[e // 64, (e % 64) * c : (e % 64) * c + c, :3] = nidx[e]
        buf = io.BytesIO()
        Image.fromarray(cent, "RGBA").save(buf, format="WEBP", lossless=True, exact=True)
        files["shN_centroids.webp"] = buf.getvalue()
        labels = np.zeros((n, 3), np.uint8)
        labels[:, 0], labels[:, 1] = np.arange(n) % 256, np.arange(n) // 256
        files["shN_labels.webp"] = _webp(labels, side)
        meta["shN"] = {"count": n, "bands": bands, "codebook": ncb.tolist(), "files": ["shN_centroids.webp", "shN_labels.webp"]}
    files["meta.json"] = json.dumps(meta).encode()
    return files


def write_sog_folder(files: dict[str, bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def write_sog_zip(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


__all__ = ["encode_sog", "write_sog_folder", "write_sog_zip", "SH_C0"]
