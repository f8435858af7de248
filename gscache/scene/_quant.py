"""Quantisation helpers shared by the compressed formats (compressed PLY, SPZ).

Quaternions are (w, x, y, z) throughout, as in the Scene record.
"""

from __future__ import annotations

import numpy as np


def unit_quats(q: np.ndarray) -> np.ndarray:
    """Normalised quaternions [N, 4] float64; a zero quaternion becomes the identity (1, 0, 0, 0)."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    out = np.divide(q, norm, out=np.zeros_like(q), where=norm > 0)
    out[norm[:, 0] == 0] = (1.0, 0.0, 0.0, 0.0)
    return out


def largest_first(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the largest |component| per row, the unit quaternions signed so that it is >= 0).

    q and -q are the same rotation, so the sign is free; smallest-three encodings drop the largest
    component and rebuild it as sqrt(1 - sum of the others' squares), which needs it >= 0."""
    q = unit_quats(q)
    idx = np.argmax(np.abs(q), axis=1)  # argmax takes the first of equal values
    sign = np.where(q[np.arange(len(q)), idx] < 0, -1.0, 1.0)
    return idx, q * sign[:, None]


def others(q: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The three components of each row other than ``idx``, in increasing index order, [N, 3]."""
    keep = np.ones(q.shape, dtype=bool)
    keep[np.arange(len(q)), idx] = False
    return q[keep].reshape(len(q), 3)


def rebuild(three: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Quaternions [N, 4] from the three smaller components (in increasing index order) and the
    index of the dropped largest one, which is sqrt(max(0, 1 - sum of squares))."""
    n = len(three)
    q = np.empty((n, 4), dtype=np.float32)
    largest = np.sqrt(np.maximum(0.0, 1.0 - (three.astype(np.float64) ** 2).sum(axis=1)))
    rows = np.arange(n)
    q[rows, idx] = largest
    keep = np.ones((n, 4), dtype=bool)
    keep[rows, idx] = False
    q[keep] = three.reshape(-1)
    return q


def unorm(t: np.ndarray, bits: int) -> np.ndarray:
    """t in [0, 1] to the nearest of 2^bits levels, as uint32."""
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(t, np.float64) * top + 0.5), 0, top).astype(np.uint32)

