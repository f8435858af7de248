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


PLAUSIBLE_SAMPLE = 4096  # records looked at by looks_like_splat
PLAUSIBLE_FRACTION = 0.9  # of them must look like Gaussians


def looks_like_splat(path: str | os.PathLike) -> tuple[bool, str]:
    """Whether a headerless file holds .splat records, with the reason when not. The format has no
    magic, and any file whose size is a multiple of 32 would parse, so the content decides: in
    the first records, positions and scales must be finite, scales positive and below 1e6, and the
    rotation bytes must decode to a near-unit quaternion (the writer stores q/|q|*128+128; zero
    padding decodes to norm 2, text and images to random norms)."""
    with open(path, "rb") as f:
        head = f.read(PLAUSIBLE_SAMPLE * SPLAT_DTYPE.itemsize)
    n = len(head) // SPLAT_DTYPE.itemsize
    if n == 0:
        return False, "no complete 32-byte record"
    rec = np.frombuffer(head[: n * SPLAT_DTYPE.itemsize], dtype=SPLAT_DTYPE)
    with np.errstate(invalid="ignore", over="ignore"):
        pos_ok = np.isfinite(rec["pos"]).all(axis=1) & (np.abs(rec["pos"]) < 1e7).all(axis=1)
        scale_ok = np.isfinite(rec["scale"]).all(axis=1) & (rec["scale"] > 0).all(axis=1) & (rec["scale"] < 1e6).all(axis=1)
    qnorm = np.linalg.norm((rec["rot"].astype(np.float32) - 128.0) / 128.0, axis=1)
    rot_ok = np.abs(qnorm - 1.0) < 0.15
    good = float((pos_ok & scale_ok & rot_ok).mean())
    if good < PLAUSIBLE_FRACTION:
        return False, (f"only {good:.0%} of its first {n} 32-byte records look like Gaussians (finite positions, "
                       f"positive scales, unit rotations; at least {PLAUSIBLE_FRACTION:.0%} expected)")
    return True, ""


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
