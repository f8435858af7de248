"""How many devices a frame uses: grow when frames miss the frame-time target, shrink when
fewer devices would still meet it, with hysteresis, and a warm-up before a new device takes
tiles (it renders frames without tiles first: scene copy, first cache fill)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import GscacheError


@dataclass
class ElasticController:
    """The number of active devices, updated once per frame."""

    n_max: int
    target_ms: float
    headroom: float = 0.7
    """Shrink only when fewer devices are predicted to take less than this fraction of the target."""
    hysteresis: int = 3
    """Consecutive frames a condition must hold before the count changes."""
    warmup_frames: int = 2
    """Frames a newly added device renders without tiles before it takes work."""
    active: int = 1
    warming: dict[int, int] = field(default_factory=dict)
    """Device index -> frames of warm-up left."""
    _over: int = 0
    _under: int = 0

    def __post_init__(self) -> None:
        if self.n_max < 1 or self.target_ms <= 0 or not 0 < self.headroom < 1 or self.hysteresis < 1:
            raise GscacheError(f"ScheduleConfig / ElasticController: expected n_max >= 1, target_ms > 0, headroom in "
                               f"(0, 1) and hysteresis >= 1; got {self.n_max}, {self.target_ms}, {self.headroom}, "
                               f"{self.hysteresis}")
        self.active = min(max(1, self.active), self.n_max)

    @property
    def working(self) -> list[int]:
        """Active devices that take tiles now (warmed up)."""
        return [d for d in range(self.active) if d not in self.warming]

    def update(self, frame_ms: float, predict_ms: Callable[[int], float]) -> str | None:
        """Feed the last frame's time; ``predict_ms(n)`` predicts the frame time with the first n
        working devices. Returns "grow", "shrink" or None."""
        for d in list(self.warming):
            self.warming[d] -= 1
            if self.warming[d] <= 0:
                del self.warming[d]
        self._over = self._over + 1 if frame_ms > self.target_ms else 0
        fewer = len(self.working) - 1
        self._under = self._under + 1 if fewer >= 1 and not self.warming and \
            predict_ms(fewer) < self.headroom * self.target_ms else 0
        if self._over >= self.hysteresis and self.active < self.n_max and not self.warming:
            self.warming[self.active] = self.warmup_frames
            self.active += 1
            self._over = self._under = 0
            return "grow"
        if self._under >= self.hysteresis and self.active > 1:
            self.active -= 1
            self.warming.pop(self.active, None)
            self._over = self._under = 0
            return "shrink"
        return None
