"""Reuse across frames: the temporal cache, its refresh rules, the dynamic cache depth, CacheStats.

One cache, :class:`TemporalCache`, with one entry type and one key builder, serves explicit and
structured scenes alike (gscache.pipeline decides what goes into an entry). What is cached, and
how exact each reuse is (ARCHITECTURE §5):

* the visible set, culled with ``CacheConfig.margin_px`` of extra border. Exact while no Gaussian
  outside it can have reached the views: the cache refreshes before the views could have moved
  that far (a bound on how far anything in front of the eyes moves on screen, below);
* the 3D covariances: exact (view independent);
* the SH colours, evaluated at the refresh: approximate, as the eyes move on (the benchmark
  reports the image error);
* structured scenes: the derived Gaussians (and their culled set, covariances and colours,
  which are degree 0 and so view independent), refreshed also when the level of detail changes
  for more than ``CacheConfig.lod_tolerance`` of the selected anchors ("lod"), and before the
  view direction to any selected anchor (the MLPs' input) could have turned more than
  ``CacheConfig.max_view_turn_deg`` from the one it was derived for ("view direction").

A refresh happens when the scene, the configuration, the resolution or intrinsics, or the
backend changed ("invalidated: ..."), when the cache is D frames old ("age"), when an eye moved
or turned more than the thresholds ("translation", "rotation"), or when the bound on the screen
motion exceeds the margin ("frustum"). D is fixed, or adapted by :class:`DepthController`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .camera import ViewBatch
from .config import CacheConfig, RenderConfig


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What one frame reused."""

    temporal: bool = False
    """The temporal cache was enabled for this frame."""
    hit: bool = False
    """Culled set, covariances and colours came from the cache."""
    refresh_reason: str | None = None
    """Why the cache was refreshed this frame (None on a hit or without a temporal cache)."""
    age: int = 0
    """Frames since the last refresh (0 on a refresh)."""
    depth: int = 1
    """Cache depth D in force for this frame."""
    stage_hits: tuple[str, ...] = ()
    """Stages whose work was reused ("cull", "covariances", "colors")."""
    time_saved_ms: float = 0.0
    """Estimated time not spent: the reused stages' times at the last refresh."""
    cache_bytes: int = 0
    """Memory held by the cache."""


@dataclass
class CacheTotals:
    """CacheStats summed over the frames of a Renderer."""

    frames: int = 0
    hits: int = 0
    refreshes: dict[str, int] = field(default_factory=dict)
    time_saved_ms: float = 0.0
    depth_sum: int = 0
    max_cache_bytes: int = 0

    def add(self, s: CacheStats) -> None:
        self.frames += 1
        self.hits += int(s.hit)
        if s.refresh_reason is not None:
            self.refreshes[s.refresh_reason] = self.refreshes.get(s.refresh_reason, 0) + 1
        self.time_saved_ms += s.time_saved_ms
        self.depth_sum += s.depth
        self.max_cache_bytes = max(self.max_cache_bytes, s.cache_bytes)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.frames if self.frames else 0.0

    @property
    def mean_depth(self) -> float:
        return self.depth_sum / self.frames if self.frames else 0.0


class DepthController:
    """Dynamic cache depth: D grows by one after ``hysteresis_frames`` consecutive frames over
    the budget, shrinks by one after as many frames under ``headroom`` x budget, within
    [1, depth_max]; frames in between reset both counts (the hysteresis band)."""

    def __init__(self, cfg: CacheConfig) -> None:
        self.cfg = cfg
        self.depth = cfg.depth
        self._over = 0
        self._under = 0

    def update(self, frame_ms: float) -> int:
        c = self.cfg
        if frame_ms > c.frame_budget_ms:
            self._over, self._under = self._over + 1, 0
            if self._over >= c.hysteresis_frames:
                self.depth, self._over = min(self.depth + 1, c.depth_max), 0
        elif frame_ms < c.headroom * c.frame_budget_ms:
            self._under, self._over = self._under + 1, 0
            if self._under >= c.hysteresis_frames:
                self.depth, self._under = max(self.depth - 1, 1), 0
        else:
            self._over = self._under = 0
        return self.depth


def _rotation_angle(Ra: torch.Tensor, Rb: torch.Tensor) -> float:
    """Angle in radians between two rotations (3x3)."""
    cos = (float(torch.trace(Ra.T @ Rb)) - 1.0) / 2.0
    return math.acos(max(-1.0, min(1.0, cos)))


@dataclass
class CacheEntry:
    """What one refresh computed and the frames after it reuse (one kind for both paths: the
    explicit path keeps the culled set and its shading, the structured path also the derived
    Gaussians and the level of detail they were derived at)."""

    key: tuple
    """cache_key() at the refresh."""
    payload: dict
    """The reused records: "visible" and "shaded", and for structured scenes "derived"."""
    poses: list[torch.Tensor]
    """T_world_cam of each view at the refresh, float64."""
    nearest: list[float]
    """Per view: how near the eye any of the scene's Gaussians came at the refresh (distance
    minus its extent; in front, behind or beside), the bound of how far anything moves on screen."""
    saved_ms: float
    """Time of the stages a hit skips, measured at the refresh."""
    nbytes: int
    """Memory the entry holds beyond the scene itself."""
    lod: torch.Tensor | None = None
    """Structured scenes: [A] bool, the anchors the level of detail selected at the refresh."""
    derived_at: torch.Tensor | None = None
    """Structured scenes: the point [3] the Gaussians were derived from."""
    anchor_nearest: float = math.inf
    """Structured scenes: distance from ``derived_at`` to the nearest anchor the LOD selected."""
    age: int = 0
    """Frames served since the refresh."""


def held_bytes(tensors: list[torch.Tensor], scene_tensors: tuple[torch.Tensor, ...] = ()) -> int:
    """Bytes of ``tensors``, not counting those that share storage with the scene (a visible set
    of everything is the scene's own tensors)."""
    shared = {t.data_ptr() for t in scene_tensors}
    return sum(t.numel() * t.element_size() for t in tensors if t.data_ptr() not in shared)


def scene_tensors(scene) -> list[torch.Tensor]:
    """Every tensor a frame of ``scene`` reads: a Scene's Gaussians; a structured scene's anchors
    and the parameters of its MLPs."""
    if hasattr(scene, "mlps"):
        m = scene.mlps
        tensors = [scene.anchors, scene.offsets, scene.features, scene.scales, scene.levels, scene.extra_levels]
        tensors += [t for t in (scene.anchor_quats, m.appearance) if t is not None]
        for module in (m.opacity, m.cov, m.color, m.feature_bank):
            tensors += list(module.parameters()) if module is not None else []
        return tensors
    return list(scene.tensors())


def cache_key(scene, views: ViewBatch, cfg: RenderConfig, backend_name: str) -> tuple:
    """Everything whose change invalidates a cache entry.

    The scene is keyed by its identity token (gscache.scene.identity: new for every scene built,
    edited or ``dataclasses.replace``d, never reused), its version and the version counters of
    its tensors, which every in-place torch operation on them bumps (``scene.means[0] = ...``,
    ``scene.sh.mul_(2)``). Writes that bypass torch (through a NumPy view, DLPack or a raw
    pointer) are not seen: make such edits with ``scene.edited(...)`` (or call
    ``Renderer.set_scene``, which always refreshes)."""
    c = cfg.cache
    return (
        ("scene", scene.token, scene.version, scene.count, tuple(t._version for t in scene_tensors(scene))),
        ("backend", backend_name),
        ("config", cfg.cull, cfg.shade, cfg.project, cfg.derive, c.stereo, c.approx_stereo_colors, c.margin_px),
        ("views", views.n_views, views.width, views.height, views.near_m, views.far_m,
         tuple(views.Ks.reshape(-1).tolist())),
    )


def _describe_change(old: tuple, new: tuple) -> str:
    for a, b in zip(old, new):
        if a != b:
            return f"invalidated: {a[0]}"
    return "invalidated"


class TemporalCache:
    """The temporal cache of one Renderer: one entry (memory bounded by one frame's records), its
    refresh rules, the cache depth (fixed, or a DepthController's) and the totals.

    A frame calls :meth:`begin`, which gives the entry to reuse (its age advanced) or None and the
    reason to refresh; on a refresh it :meth:`store`s the new entry; at its end it calls
    :meth:`end` with its CacheStats and time, which feed the totals and the depth controller.
    """

    def __init__(self) -> None:
        self.entry: CacheEntry | None = None
        self.controller: DepthController | None = None
        self.totals = CacheTotals()
        self._dropped: str | None = None
        self.pixels = None
        """Pixel reuse: the last frame's images (gscache.pixel_reuse.PixelReuse, made by the
        pipeline on the first frame that reuses pixels)."""
        self.lod: tuple | None = None
        """Foveation's periphery level of detail: (the scene's token and version, its
        gscache.stages.lod.PeripheryLod), loaded or built on the first frame that asks for it."""
        self.fovea_payoff = None
        """Foveation's pay-off controller (gscache.stages.foveate.FoveationPayoff), made by the
        pipeline on the first foveated frame; remade when the image size or the level changes."""

    def invalidate(self, reason: str) -> None:
        """Drop the entry and the pixels kept for reuse: the next frame refreshes with
        "invalidated: <reason>" and is rasterized in full."""
        self.entry, self._dropped = None, f"invalidated: {reason}"
        if self.pixels is not None:
            self.pixels.clear()

    def depth(self, cfg: CacheConfig) -> int:
        """The cache depth D in force (the controller's, with dynamic_depth)."""
        if not cfg.dynamic_depth:
            self.controller = None
            return cfg.depth
        if self.controller is None or self.controller.cfg != cfg:
            self.controller = DepthController(cfg)
        return self.controller.depth

    def begin(self, key: tuple, views: ViewBatch, cfg: CacheConfig, lod: torch.Tensor | None = None,
              derive_at: torch.Tensor | None = None) -> tuple[CacheEntry | None, str | None]:
        """The entry to reuse for this frame (its age advanced), or (None, the reason to refresh).
        Structured scenes: ``lod``, the anchors the level of detail selects now (more than
        ``cfg.lod_tolerance`` of them changed is a refresh, "lod"), and ``derive_at``, the point a
        derivation would use now (a view direction that could have turned further than
        ``cfg.max_view_turn_deg`` is a refresh, "view direction")."""
        e = self.entry
        if e is None:
            reason, self._dropped = self._dropped or "first", None
            return None, reason
        reason = self._refresh_reason(e, key, views, cfg, lod, derive_at)
        if reason is not None:
            # The old front goes now, before the refresh builds the new one: holding both would
            # double the cache's memory at every refresh (a visible set of a 8M-Gaussian scene is
            # over a GB).
            self.entry = None
            return None, reason
        e.age += 1
        return e, None

    def _refresh_reason(self, e: CacheEntry, key: tuple, views: ViewBatch, cfg: CacheConfig,
                        lod: torch.Tensor | None, derive_at: torch.Tensor | None) -> str | None:
        """Why ``e`` cannot serve this frame (begin's rules), or None."""
        if e.key != key:
            return _describe_change(e.key, key)
        if e.age + 1 >= self.depth(cfg):
            return "age"
        if lod is not None and e.lod is not None:
            if int((lod != e.lod).sum()) > cfg.lod_tolerance * max(1, int(e.lod.sum())):
                return "lod"
        if derive_at is not None and e.derived_at is not None:
            # The direction to an anchor at distance r turns by at most asin(shift / r).
            shift = float((derive_at - e.derived_at).norm())
            if shift >= e.anchor_nearest or math.asin(shift / e.anchor_nearest) > math.radians(cfg.max_view_turn_deg):
                return "view direction"
        return motion_reason(e.poses, e.nearest, views, cfg) or None

    def store(self, key: tuple, payload: dict, views: ViewBatch, points: torch.Tensor, extents: torch.Tensor,
              saved_ms: float, nbytes: int, lod: torch.Tensor | None = None,
              derived_at: torch.Tensor | None = None, anchors: torch.Tensor | None = None) -> CacheEntry:
        """A new entry from a refresh. ``points`` [P, 3] and ``extents`` [P] are every Gaussian of
        the scene (not only the culled ones: what lies outside the views, behind the eyes
        included, is what motion can bring in) with the radius it can reach. Structured scenes:
        ``derived_at`` [3], the derivation point, and ``anchors`` [A', 3], those the LOD selected."""
        nearest = math.inf
        if derived_at is not None and anchors is not None and anchors.shape[0]:
            nearest = float((anchors - derived_at).norm(dim=1).min())
        self.entry = CacheEntry(key, payload, [c.T_world_cam for c in views.cameras],
                                nearest_distances(points, extents, views), saved_ms, nbytes, lod, derived_at,
                                nearest)
        return self.entry

    def end(self, stats: CacheStats, frame_ms: float) -> None:
        """The frame's statistics into the totals, and its time into the depth controller."""
        if self.controller is not None:
            self.controller.update(frame_ms)
        self.totals.add(stats)


def nearest_distances(points: torch.Tensor, extents: torch.Tensor, views: ViewBatch) -> list[float]:
    """Per view, the distance from its eye to the nearest of ``points`` [P, 3] less that point's
    ``extents`` [P] (in any direction; at least near_m; far_m when there are none)."""
    out = []
    for e in range(views.n_views):
        if points.shape[0] == 0:
            out.append(views.far_m)
            continue
        d = (points - views.positions[e]).norm(dim=1) - extents
        out.append(max(float(d.min()), views.near_m))
    return out


def motion_reason(poses: list[torch.Tensor], nearest: list[float], views: ViewBatch, cfg: CacheConfig) -> str | None:
    """Why views that were at ``poses`` (T_world_cam) at the refresh need a refresh now, or None.

    The bound: a point at distance r from an eye sees its direction turn by at most
    asin(shift / r) <= shift / (r - shift) when the eye moves by ``shift``, and by ``angle`` when
    it turns; a direction at tan-angle t from the axis moves on screen by f (1 + t^2) per radian,
    and the views reach t = lim at most. Every Gaussian of the scene is at least ``nearest`` away
    (less its extent), whatever its direction: content behind or beside the eyes, which a step
    back or aside brings into view, is bounded too. A refresh happens before anything could have
    moved more than the cache's margin on screen (10% slack covers the first-order terms)."""
    motion_px = 0.0
    for i, cam in enumerate(views.cameras):
        T_now, T_then = cam.T_world_cam, poses[i]
        shift = float((T_now[:3, 3] - T_then[:3, 3]).norm())
        angle = _rotation_angle(T_then[:3, :3], T_now[:3, :3])
        if shift > cfg.max_translation_m and shift > cfg.translation_per_depth * nearest[i]:
            return "translation"
        if angle > math.radians(cfg.max_rotation_deg):
            return "rotation"
        if shift >= 0.5 * nearest[i]:
            return "translation"  # the near content could come from anywhere: no first-order bound
        intr = cam.intrinsics
        f = max(intr.fx, intr.fy)
        lim = max(intr.width - intr.cx, intr.cx) / intr.fx + max(intr.height - intr.cy, intr.cy) / intr.fy
        turn = angle + shift / (nearest[i] - shift)
        motion_px = max(motion_px, 1.1 * f * turn * (1 + lim * lim))
    return "frustum" if motion_px > cfg.margin_px else None
