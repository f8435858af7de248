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


def ratio_spread(numerator: Sequence[float], denominator: Sequence[float], n_boot: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """The ratio of two configurations' frame times measured on the same frames (interleaved):
    the ratio of their medians, and a bootstrap 95% interval of it (frames resampled in pairs,
    seeded), so a ratio comes with how much it could move on another run of the same frames."""
    import numpy as np

    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    if a.shape != b.shape or a.size == 0:
        raise GscacheError("ratio_spread: expected two equally long, non-empty series")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    boot = np.median(a[idx], axis=1) / np.maximum(np.median(b[idx], axis=1), 1e-12)
    paired = a / np.maximum(b, 1e-12)
    return {"ratio": float(np.median(a) / max(np.median(b), 1e-12)),
            "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "paired_min": float(paired.min()), "paired_median": float(np.median(paired)),
            "paired_max": float(paired.max())}
