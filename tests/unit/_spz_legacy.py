"""A test-side encoder of SPZ versions 1 and 2 (gscache writes 3 and 4), written from the format
description in gscache/scene/spz.py; its files are read by gscache and by gsply in the tests.

Input arrays are in SPZ's own axes (RUB) and raw encoding domains: positions [N, 3], alpha bytes,
colour / scale bytes [N, 3], rotations (x, y, z, w) unit [N, 4], SH [N, D, 3] in [-1, 1]."""

from __future__ import annotations

import gzip
import struct

import numpy as np


def encode_legacy_spz(version: int, means, alpha_u8, color_u8, scale_u8, quats_xyzw, sh, degree: int,
                      fractional_bits: int = 12) -> bytes:
    assert version in (1, 2)
    n = len(means)
    header = struct.pack("<IIIBBBB", 0x5053474E, version, n, degree, fractional_bits, 0, 0)
    if version == 1:
        pos = np.asarray(means, "<f2").tobytes()
    else:
        fixed = np.round(np.asarray(means, np.float64) * (1 << fractional_bits)).astype(np.int64) & 0xFFFFFF
        pos = np.stack([fixed & 255, (fixed >> 8) & 255, fixed >> 16], axis=-1).astype(np.uint8).tobytes()
    q = np.asarray(quats_xyzw, np.float64)
    q = q * np.where(q[:, 3:4] < 0, -1.0, 1.0)  # w >= 0: it is rebuilt as a square root
    rot = np.clip(np.round((q[:, :3] + 1.0) * 127.5), 0, 255).astype(np.uint8)
    shb = np.clip(np.round(np.asarray(sh, np.float64) * 128 + 128), 0, 255).astype(np.uint8)
    body = [pos, np.asarray(alpha_u8, np.uint8).tobytes(), np.asarray(color_u8, np.uint8).tobytes(),
            np.asarray(scale_u8, np.uint8).tobytes(), rot.tobytes(), shb.tobytes()]
    return gzip.compress(header + b"".join(body), mtime=0)
