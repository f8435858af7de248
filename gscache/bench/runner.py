"""Runs the configurations of a benchmark over the same stereo frames."""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from dataclasses import dataclass, field

import torch

from .. import backends
from ..camera import StereoRig
from ..config import CacheConfig, DeriveConfig, RenderConfig
from ..errors import GscacheError
from ..api import default_device, open_renderer
from ..presets import FOVEATION_LEVELS, REUSE_MODES, foveation_level
from ..scene.record import Scene
from ..trajectory import Trajectory
from .memory import PeakMemory
from .quality import measure_quality
from .stats import ratio_spread, summarize

STAGES = ("derive", "cull", "shade", "project", "bin", "rasterize", "warp", "composite")


@dataclass(frozen=True)
class BenchSettings:
    """What every configuration of one benchmark renders."""

    width: int = 512
    """Per-eye width, pixels."""
    height: int = 512
    """Per-eye height, pixels."""
    fov_y_deg: float = 90.0
    """Vertical field of view per eye (headsets: about 90-100 degrees)."""
    ipd_m: float = 0.063
    """Interpupillary distance."""
    warmup: int = 3
    """Untimed frames rendered first (compilation, allocator growth, caches)."""
    quality_frames: int = 4
    """Frames, evenly spaced along the trajectory, compared with the exact reference render."""
    device: str | None = None
    """Torch device; None: cuda when present, else cpu."""


@dataclass
class ConfigResult:
    """Everything measured for one configuration."""

    name: str
    config: RenderConfig
    frame_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    visible: list[int] = field(default_factory=list)
    intersections: list[int] = field(default_factory=list)
    evaluations: list[int] = field(default_factory=list)
    peak_memory_bytes: int = 0
    memory_kind: str = ""
    quality: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    """Multi-device configurations: the devices (gscache.multi.parse_devices specs)."""
    schedules: list = field(default_factory=list, repr=False)
    """Multi-device configurations: each timed frame's gscache.multi.ScheduleStats."""
    samples: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)
    tiles_reused: list[float] = field(default_factory=list)
    """Pixel reuse: each timed frame's share of tiles taken from the warp (mean over the eyes)."""
    pixels_rasterized: list[float] = field(default_factory=list)
    """Pixel reuse: each timed frame's share of pixels rasterized (mean over the eyes)."""
    regions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Foveation: per region (FoveaStats.regions), each timed frame's (Gaussians, intersections)."""
    fovea_paused: list[bool] = field(default_factory=list)
    """Foveation: each timed frame rendered unfoveated by the pay-off controller (FoveaStats.paused)."""

    def summary(self) -> dict:
        """The JSON-ready figures of this configuration."""
        out = {"name": self.name, **summarize(self.frame_ms)}
        out["stages_median_ms"] = {s: statistics.median(v) for s, v in self.stage_ms.items()}
        total = sum(self.frame_ms)
        out["derive_share"] = sum(self.stage_ms["derive"]) / total if total > 0 else 0.0
        out["peak_memory_bytes"] = self.peak_memory_bytes
        out["memory_kind"] = self.memory_kind
        out["work_per_frame"] = {
            "visible_gaussians": statistics.mean(self.visible),
            "tile_intersections": statistics.mean(self.intersections),
            "gaussian_pixel_evaluations": statistics.mean(self.evaluations) if self.evaluations else None,
        }
        out["quality"] = self.quality
        out["cache"] = self.cache
        out["pixel_reuse"] = ({"tiles_reused_mean": statistics.mean(self.tiles_reused),
                               "tiles_reused_min": min(self.tiles_reused),
                               "pixels_rasterized_mean": statistics.mean(self.pixels_rasterized),
                               "pixels_rasterized_max": max(self.pixels_rasterized),
                               "tiles_reused": self.tiles_reused, "pixels_rasterized": self.pixels_rasterized}
                              if self.tiles_reused else None)
        out["drawn_per_region"] = {name: {"gaussians_mean": statistics.mean(g for g, _ in v),
                                          "intersections_mean": statistics.mean(n for _, n in v)}
                                   for name, v in self.regions.items()} or None
        out["foveation_paused_share"] = statistics.mean(self.fovea_paused) if self.fovea_paused else None
        if self.devices:
            out["devices"] = self.schedule_summary()
        out["frame_ms"] = self.frame_ms
        out["render_config"] = config_to_dict(self.config)
        return out


    def schedule_summary(self) -> dict:
        """Per device: mean share of the tile cost, median time, states; and the balance
        (slowest / mean device time) and active devices per frame."""
        frames = self.schedules
        names = [d.name for d in frames[0].devices] if frames else []
        per_device = []
        for i, name in enumerate(names):
            costs = [f.devices[i].cost for f in frames]
            totals = [sum(d.cost for d in f.devices) or 1.0 for f in frames]
            states = [f.devices[i].state.split(":")[0] for f in frames]
            per_device.append({"name": name, "cost_share": statistics.mean(c / t for c, t in zip(costs, totals)),
                               "median_device_ms": statistics.median(f.devices[i].device_ms for f in frames),
                               "frames": {s: states.count(s) for s in sorted(set(states))}})
        return {"specs": list(self.devices), "per_device": per_device,
                "balance_median": statistics.median(f.balance for f in frames) if frames else None,
                "active_mean": statistics.mean(f.active for f in frames) if frames else None,
                "plans": {k: sum(f.plan == k for f in frames) for k in sorted({f.plan for f in frames})},
                "recovered_frames": sum(f.recovered_ms > 0 for f in frames)}


def config_to_dict(cfg: RenderConfig) -> dict:
    return dataclasses.asdict(cfg)


REFERENCE_DERIVE = "-ref"
"""Mode suffix: derive with the torch reference instead of the backend's fused kernel."""
BOUND = ":"
"""Mode suffix before a pixel-reuse error bound in 8-bit levels, e.g. reproj:4."""
FOVEATED = "+fov-"
"""Mode suffix before a foveation level (gscache.presets.FOVEATION_LEVELS), e.g. dynamic+fov-medium."""
LOD = "+lod-"
"""Suffix after a foveation level: the periphery level of detail's threshold in periphery pixels
(FoveationConfig.periphery_lod_px), e.g. dynamic+fov-medium+lod-8."""


def named_config(name: str, device_type: str) -> tuple[str, RenderConfig]:
    """(name, configuration) for "BACKEND" or "BACKEND/MODE" (MODE in REUSE_MODES, default
    "stereo", optionally with the suffix "-ref": structured scenes derive with the torch reference
    rather than the backend's fused kernel; a pixel-reuse mode then optionally ":BOUND", its
    CacheConfig.reuse_error_bound in 8-bit levels; then optionally "+fov-LEVEL", a foveation
    level, itself optionally with "+lod-PX", the periphery's level of detail); BACKEND may be
    "auto", resolved to what it picks."""
    backend_name, _, mode = name.partition("/")
    mode = mode or "stereo"
    mode, _, level = mode.partition(FOVEATED)
    level, lod_sep, lod_text = level.partition(LOD)
    mode, colon, bound_text = mode.partition(BOUND)
    foveation = foveation_level(level, f"--configs {name!r}: foveation level") if level else FOVEATION_LEVELS["off"]
    if lod_sep:
        try:
            lod_px = float(lod_text)
        except ValueError:
            lod_px = math.nan
        if not (lod_px > 0 and math.isfinite(lod_px)):
            raise GscacheError(f"--configs {name!r}: '+lod-PX' is the periphery level of detail's threshold in "
                               f"periphery pixels, a number > 0; got {lod_text!r}")
        foveation = dataclasses.replace(foveation, periphery_lod_px=lod_px)
    fused = not mode.endswith(REFERENCE_DERIVE)
    base_mode = mode if fused else mode[: -len(REFERENCE_DERIVE)]
    known = ["auto", *backends.available()]
    if backend_name not in known:
        raise GscacheError(f"--configs: unknown backend {backend_name!r} in {name!r}; known: {', '.join(known)}")
    if base_mode not in REUSE_MODES:
        raise GscacheError(f"--configs: unknown reuse mode {base_mode!r} in {name!r}; known: {', '.join(REUSE_MODES)}"
                           f" (each optionally with {REFERENCE_DERIVE})")
    cache = REUSE_MODES[base_mode]
    if colon:
        try:
            bound = float(bound_text)
        except ValueError:
            bound = math.nan
        if cache.pixel_reuse == "off" or not bound > 0 or not math.isfinite(bound):
            raise GscacheError(f"--configs {name!r}: ':BOUND' is a pixel-reuse mode's error bound, a number of 8-bit "
                               f"levels > 0 after reproj or reproj-stereo; got {bound_text!r} after {base_mode!r}")
        cache = dataclasses.replace(cache, reuse_error_bound=bound)
    resolved = backends.get(backend_name, device_type).name  # GscacheError with the reason if it cannot run
    shown = f"{mode}{colon}{bound_text}"
    return f"{resolved}/{shown}{FOVEATED + level if level else ''}{LOD + lod_text if lod_sep else ''}", RenderConfig(
        backend=resolved, cache=cache, derive=DeriveConfig(fused=fused), foveation=foveation)


def ladder(device_type: str, backend: str = "auto", structured: bool = False) -> list[tuple[str, RenderConfig]]:
    """The ablation ladder.

    Explicit scenes: every backend available for the device with no reuse (the torch reference
    first), then, with ``backend``, each reuse rung in turn: stereo exact, + approximate stereo
    colours, + temporal cache with D = 2, 4, 8, + dynamic D, + pixel reuse between the eyes
    (reproj-stereo) or across frames (reproj).

    Structured scenes (``structured``), all with ``backend``: derive per eye per frame with the
    reference derivation (the baseline), + shared stereo derivation, + derived-Gaussian cache
    with D = 2, 4, 8 and dynamic, + the backend's fused derivation kernel (if it has one; pixel
    reuse on structured scenes: --configs BACKEND/reproj). The
    exact torch reference renders only the frames whose quality is measured (it takes seconds
    per frame on a city).

    Both ladders end with the last reuse rung foveated at each level (low, medium, high,
    medium-ring).
    """
    best = backends.get(backend, device_type)
    levels = [n for n in FOVEATION_LEVELS if n != "off"]
    if structured:
        rungs = [named_config(f"{best.name}/{mode}{REFERENCE_DERIVE}", device_type)
                 for mode in ("none", "stereo", "D2", "D4", "D8", "dynamic")]
        if best.fused_derive:
            rungs.append(named_config(f"{best.name}/dynamic", device_type))
        last = rungs[-1][0].partition("/")[2]
        return rungs + [named_config(f"{best.name}/{last}{FOVEATED}{lv}", device_type) for lv in levels]
    rungs = [named_config("torch/none", device_type)]
    for name, status in backends.available().items():
        if name == "torch" or status != "ok" or backends.by_name_only(name):
            continue
        try:
            rungs.append(named_config(f"{name}/none", device_type))
        except GscacheError:  # runs, but not on this device type
            continue
    rungs += [named_config(f"{best.name}/{mode}", device_type) for mode in REUSE_MODES if mode != "none"]
    return rungs + [named_config(f"{best.name}/dynamic{FOVEATED}{lv}", device_type) for lv in levels]


def is_exact(cfg: RenderConfig) -> bool:
    """A configuration whose images are the exact reference: the torch backend with no
    approximate reuse (stereo exact or not; structured scenes derived per eye), default stage
    settings."""
    exact_cache = (not cfg.cache.approx_stereo_colors and not cfg.cache.temporal
                   and not cfg.cache.shared_derivation and cfg.cache.pixel_reuse == "off")
    return cfg.backend == "torch" and exact_cache and dataclasses.replace(
        cfg, device=None, cache=CacheConfig(), derive=DeriveConfig()) == RenderConfig(backend="torch")


def _sample_indices(n_frames: int, n_samples: int) -> list[int]:
    n_samples = max(0, min(n_samples, n_frames))
    if n_samples == 0:
        return []
    if n_samples == 1:
        return [0]
    return sorted({round(i * (n_frames - 1) / (n_samples - 1)) for i in range(n_samples)})


def _record(res: ConfigResult, frame, i: int, samples: list[int]) -> None:
    if frame.schedule is not None:
        res.frame_ms.append(frame.schedule.wall_ms)
        res.schedules.append(frame.schedule)
    else:
        res.frame_ms.append(frame.times.total_ms)
    for s in STAGES:
        res.stage_ms[s].append(getattr(frame.times, f"{s}_ms"))
    res.visible.append(frame.counters.n_visible)
    res.intersections.append(frame.counters.n_intersections)
    if frame.counters.n_evaluations is not None:
        res.evaluations.append(frame.counters.n_evaluations)
    if frame.reuse is not None:
        res.tiles_reused.append(sum(frame.reuse.tiles_reused) / len(frame.reuse.tiles_reused))
        res.pixels_rasterized.append(sum(frame.reuse.pixels_rasterized) / len(frame.reuse.pixels_rasterized))
    if frame.foveation is not None:
        f = frame.foveation
        res.fovea_paused.append(f.paused)
        for name, g, n in zip(f.regions, f.gaussians, f.intersections):
            res.regions.setdefault(name, []).append((g, n))
    if i in samples:
        res.samples[i] = frame.rgb.detach().cpu()


def _cache_figures(renderer) -> dict:
    t = renderer.cache_totals
    return {"hit_rate": t.hit_rate, "hits": t.hits, "refreshes": dict(t.refreshes), "mean_depth": t.mean_depth,
            "time_saved_ms": t.time_saved_ms, "max_cache_bytes": t.max_cache_bytes}


def run_bench(scene: Scene, trajectory: Trajectory, configs: list[tuple[str, RenderConfig]], settings: BenchSettings,
              progress: bool = True, device_sets: list[tuple[str, ...]] | None = None,
              interleave: bool = True) -> list[ConfigResult]:
    """Render ``trajectory`` in stereo with every configuration and measure it.

    Interleaved (the default): every configuration keeps its own renderer and cache, and frame i
    is rendered by each of them before frame i + 1 (the order rotating from frame to frame), so
    load that comes and goes on the machine lands on all configurations alike and the ratios
    between them (report: ``speedup_*`` with a bootstrap interval) are measured on the same
    moments; peak memory is then one figure for the whole run. Sequential: each configuration
    runs the whole trajectory in turn, with its own peak memory.

    Returns one ConfigResult per configuration, in order, with quality measured against the exact
    reference (the torch backend) on the sampled frames. With ``device_sets`` every configuration
    runs once per set of devices (an empty set: one device, no scheduler), named CONFIG@DEVICES;
    a multi-device frame's time is its wall time on the presenting device.
    """
    from tqdm import tqdm

    if not configs:
        raise GscacheError("bench: no configuration to run")
    device = torch.device(settings.device) if settings.device else default_device()
    template = StereoRig.symmetric(trajectory.T_world_head[0], settings.width, settings.height,
                                   settings.fov_y_deg, settings.ipd_m)
    rigs = list(trajectory.rigs(template))
    samples = _sample_indices(len(rigs), settings.quality_frames)
    runs = [(f"{name}@{','.join(ds)}" if ds else name, dataclasses.replace(cfg, device=str(device)), ds)
            for name, cfg in configs for ds in (device_sets or [()])]
    results = [ConfigResult(name, cfg, devices=tuple(ds)) for name, cfg, ds in runs]
    bar = tqdm(total=len(runs) * (settings.warmup + len(rigs)), desc="bench", unit="frame", disable=not progress)
    if interleave:
        renderers = [open_renderer(scene, cfg, devices=list(ds) or None) for _, cfg, ds in runs]
        for i in range(settings.warmup):
            for r in renderers:
                r.render(rigs[i % len(rigs)])
                bar.update()
        for r in renderers:
            r.reset_cache()  # timed frames start with an empty cache and fresh totals
        with PeakMemory(device) as mem:
            for i, rig in enumerate(rigs):
                for k in range(len(runs)):
                    j = (i + k) % len(runs)  # rotate: no configuration always runs right after another
                    _record(results[j], renderers[j].render(rig), i, samples)
                    bar.update()
        for res, r, (_, cfg, _) in zip(results, renderers, runs):
            res.peak_memory_bytes, res.memory_kind = mem.peak_bytes, f"{mem.kind} (whole interleaved run)"
            if cfg.cache.temporal:
                res.cache = _cache_figures(r)
            r.close()
        del renderers
    else:
        for res, (_, cfg, devices) in zip(results, runs):
            renderer = open_renderer(scene, cfg, devices=list(devices) or None)
            for i in range(settings.warmup):
                renderer.render(rigs[i % len(rigs)])
                bar.update()
            renderer.reset_cache()
            with PeakMemory(device) as mem:
                for i, rig in enumerate(rigs):
                    _record(res, renderer.render(rig), i, samples)
                    bar.update()
            res.peak_memory_bytes, res.memory_kind = mem.peak_bytes, mem.kind
            if cfg.cache.temporal:
                res.cache = _cache_figures(renderer)
            renderer.close()
            del renderer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    bar.close()

    # Quality against the exact reference: the torch backend's own frames when it was run with
    # the default stage settings, else a separate (untimed) reference render of the samples.
    reference = next((r.samples for r in results if is_exact(r.config)), None)
    if reference is None and samples:
        ref_renderer = open_renderer(scene, RenderConfig(backend="torch", device=str(device),
                                                    cache=REUSE_MODES["none"]))
        reference = {i: ref_renderer.render(rigs[i]).rgb.detach().cpu() for i in samples}
    for res in results:
        if not samples:
            continue
        ours = torch.stack([res.samples[i] for i in samples])
        ref = torch.stack([reference[i] for i in samples])
        res.quality = measure_quality(ours, ref, samples, settings.width, settings.height, settings.fov_y_deg,
                                      res.config.foveation)
    return results


def speedups(results: list[ConfigResult]) -> dict[str, dict]:
    """Per configuration: its speed-up over the first, over the same backend without reuse and,
    for a foveated one, over the same configuration unfoveated (when they ran), each from the
    frame times of the same frames with a bootstrap interval (gscache.bench.stats.ratio_spread)."""
    by_name = {r.name: r for r in results}
    no_reuse = {r.config.backend: r for r in results if not r.config.cache.stereo and not r.config.foveation.enabled}
    out = {}
    for r in results:
        entry = {"vs_first": ratio_spread(results[0].frame_ms, r.frame_ms)}
        own = no_reuse.get(r.config.backend)
        if own is not None:
            entry["vs_no_reuse"] = ratio_spread(own.frame_ms, r.frame_ms)
        # the same name without +fov-LEVEL[+lod-PX]
        plain = by_name.get(re.sub(re.escape(FOVEATED) + r"[a-z-]+(\+lod-[^+]+)?", "", r.name))
        if r.config.foveation.enabled and plain is not None:
            entry["vs_unfoveated"] = ratio_spread(plain.frame_ms, r.frame_ms)
        out[r.name] = entry
    return out
