"""The tile planner: which device rasterizes which tiles of a stereo frame.

A pure, deterministic function of the per-tile costs (from the binning: each tile's intersection
count) and each device's measured throughput. The rows of tiles of both eyes are laid end to end
(eye 0's rows top to bottom, then eye 1's) and cut into contiguous bands, one per device, so that
each device's share of the cost is proportional to its throughput; when giving whole eyes to
devices balances about as well, whole eyes are given instead (fewer, larger blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import GscacheError

WHOLE_EYE_SLACK = 1.05
"""Whole eyes are preferred when their slowest device is at most this much slower than the bands'."""


@dataclass(frozen=True)
class Band:
    """Tile rows [row0, row1) of one eye."""

    eye: int
    row0: int
    row1: int

    @property
    def rows(self) -> int:
        return self.row1 - self.row0


@dataclass(frozen=True)
class TilePlan:
    """Per device, the bands it rasterizes (empty for a device without work this frame)."""

    bands: tuple[tuple[Band, ...], ...]
    loads: tuple[float, ...]
    """Predicted cost of each device's bands (the cost map's units)."""
    weights: tuple[float, ...]
    """The throughputs the plan was made for."""
    kind: str
    """"bands" or "whole-eyes"."""

    @property
    def n_devices(self) -> int:
        return len(self.bands)

    def predicted_times(self) -> list[float]:
        """load / throughput per device."""
        return [load / w for load, w in zip(self.loads, self.weights)]

    def balance(self) -> float:
        """Predicted slowest / mean device time over the devices with work (1.0 is perfect)."""
        times = [t for t, b in zip(self.predicted_times(), self.bands) if b]
        mean = sum(times) / len(times) if times else 0.0
        return max(times) / mean if mean > 0 else 1.0


def band_mask(bands, n_eyes: int, tiles_x: int, tiles_y: int) -> Tensor:
    """[E, tiles_y * tiles_x] bool: the tiles of ``bands`` (one device's share)."""
    mask = torch.zeros(n_eyes, tiles_y, tiles_x, dtype=torch.bool)
    for band in bands:
        mask[band.eye, band.row0:band.row1] = True
    return mask.reshape(n_eyes, tiles_y * tiles_x)


def row_costs(tile_costs: Tensor, tiles_x: int, tiles_y: int) -> Tensor:
    """Per-row costs [E, tiles_y] (float64) from per-tile costs [E, tiles_y * tiles_x]."""
    return tile_costs.reshape(-1, tiles_y, tiles_x).sum(dim=2).double().cpu()


def _bands_of(rows: range, tiles_y: int) -> tuple[Band, ...]:
    """The flat row range [start, stop) of the end-to-end eyes as one band per eye it touches."""
    out = []
    r = rows.start
    while r < rows.stop:
        eye, row = divmod(r, tiles_y)
        end = min(rows.stop, (eye + 1) * tiles_y)
        out.append(Band(eye, row, row + end - r))
        r = end
    return tuple(out)


def plan_tiles(costs: Tensor, weights) -> TilePlan:
    """Split the tile rows of all eyes among devices in proportion to ``weights``.

    Args:
        costs: per-row costs [E, tiles_y] (>= 0), e.g. :func:`row_costs` of the intersection counts.
        weights: each device's throughput (cost per millisecond), > 0.

    Returns:
        The plan with the smaller predicted slowest device (ties: whole eyes).
    """
    weights = tuple(float(w) for w in weights)
    if not weights or any(not w > 0 for w in weights):
        raise GscacheError(f"weights: expected one or more throughputs > 0, got {weights}")
    costs = torch.as_tensor(costs, dtype=torch.float64).cpu()
    if costs.dim() != 2 or (costs < 0).any():
        raise GscacheError(f"costs: expected non-negative per-row costs [E, tiles_y], got shape {tuple(costs.shape)}")
    n_eyes, tiles_y = costs.shape
    flat = costs.reshape(-1)
    # Every row costs at least a little (an empty row still has its pixels to fill), so that
    # rows are spread even where nothing is drawn.
    flat = flat + max(float(flat.mean()) * 1e-3, 1e-9)
    prefix = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(flat, 0)])
    total = float(prefix[-1])
    bounds = [0]
    cum_w = 0.0
    for w in weights[:-1]:
        cum_w += w
        target = total * cum_w / sum(weights)
        k = int(torch.searchsorted(prefix, torch.tensor([target], dtype=torch.float64)))
        k = min(max(k, bounds[-1]), len(flat))
        if k > bounds[-1] and abs(float(prefix[k - 1]) - target) < abs(float(prefix[k]) - target):
            k -= 1  # the nearer of the two cuts around the target
        bounds.append(k)
    bounds.append(len(flat))
    banded = TilePlan(tuple(_bands_of(range(a, b), tiles_y) for a, b in zip(bounds, bounds[1:])),
                      tuple(float(prefix[b] - prefix[a]) for a, b in zip(bounds, bounds[1:])), weights, "bands")
    if n_eyes < 2 or len(weights) < 2:
        return banded
    # Whole eyes, largest first, each to the device that would finish it soonest.
    eye_cost = [float(flat[e * tiles_y:(e + 1) * tiles_y].sum()) for e in range(n_eyes)]
    loads = [0.0] * len(weights)
    owned: list[list[Band]] = [[] for _ in weights]
    for e in sorted(range(n_eyes), key=lambda e: (-eye_cost[e], e)):
        d = min(range(len(weights)), key=lambda d: ((loads[d] + eye_cost[e]) / weights[d], d))
        loads[d] += eye_cost[e]
        owned[d].append(Band(e, 0, tiles_y))
    whole = TilePlan(tuple(tuple(sorted(b, key=lambda b: b.eye)) for b in owned), tuple(loads), weights, "whole-eyes")
    if max(whole.predicted_times()) <= WHOLE_EYE_SLACK * max(banded.predicted_times()):
        return whole
    return banded
