"""antimatter15 ``.splat``: reader and writer.

No header; 32 bytes per Gaussian: position f32 x3, scale f32 x3 (linear), colour RGBA u8 x4
(``rgb = clamp(0.5 + C0 * f_dc) * 255``, ``a = opacity * 255``), rotation u8 x4 as (w, x, y, z)
encoded ``q / |q| * 128 + 128``. Only the DC colour is stored (SH degree 0).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import GscacheError, GscacheWarning
from ..sh import SH_C0
from .record import Scene, make_scene

SPLAT_DTYPE = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert SPLAT_DTYPE.itemsize == 32


def read_splat(path: str | os.PathLike) -> Scene:
    """Read an antimatter15 .splat file into an activated Scene (SH degree 0)."""
    path = str(path)
    data = Path(path).read_bytes()
    if len(data) % SPLAT_DTYPE.itemsize:
        raise GscacheError(
            f"{path}: size {len(data)} bytes is not a multiple of 32 (a .splat record); the file is truncated or not a .splat"
        )
    rec = np.frombuffer(data, dtype=SPLAT_DTYPE)
    rgb = rec["rgba"][:, :3].astype(np.float32) / 255.0
    sh = ((rgb - 0.5) / SH_C0)[:, None, :]
    opacities = rec["rgba"][:, 3].astype(np.float32) / 255.0
    quats = (rec["rot"].astype(np.float32) - 128.0) / 128.0
    return make_scene(rec["pos"], quats, rec["scale"], opacities, sh, source=path)


def write_splat(scene: Scene, path: str | os.PathLike) -> None:
    """Write ``scene`` as .splat, atomically. SH bands above 0 are dropped (with a warning)."""
    if scene.sh_degree > 0:
        warnings.warn(
            f"{path}: .splat stores only the DC colour; SH degree {scene.sh_degree} coefficients are dropped",
            GscacheWarning,
            stacklevel=2,
        )
    rec = np.zeros(scene.count, dtype=SPLAT_DTYPE)
    rec["pos"] = scene.means.detach().cpu().numpy()
    rec["scale"] = scene.scales.detach().cpu().numpy()
    rgb = np.clip(0.5 + SH_C0 * scene.sh[:, 0, :].detach().cpu().numpy(), 0.0, 1.0)
    rec["rgba"][:, :3] = np.round(rgb * 255.0)
    rec["rgba"][:, 3] = np.round(np.clip(scene.opacities.detach().cpu().numpy(), 0.0, 1.0) * 255.0)
    q = scene.quats.detach().cpu().numpy()
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    rec["rot"] = np.clip(np.round(q * 128.0 + 128.0), 0, 255)
    with atomic_write(path) as f:
        f.write(rec.tobytes())
