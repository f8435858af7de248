"""Frame-time statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import GscacheError


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise GscacheError("percentile of no values")
    if not 0 <= q <= 100:
        raise GscacheError(f"percentile: q must be in [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(frame_ms: Sequence[float]) -> dict[str, float]:
    """Median, p5, p95, mean and FPS (from the median) of per-frame times in milliseconds."""
    median = percentile(frame_ms, 50)
    return {
        "median_ms": median,
        "p5_ms": percentile(frame_ms, 5),
        "p95_ms": percentile(frame_ms, 95),
        "mean_ms": sum(frame_ms) / len(frame_ms),
        "fps": 1000.0 / median if median > 0 else math.inf,
    }
