"""The multi-device renderer: per frame, plan the tiles over the working devices from the last
frame's tile costs and each device's measured throughput, send every device the frame with its
bands, gather their pixel rows into the frame on the presenting device, and re-render the bands
of a device that failed or timed out there (within the same frame). An elastic controller decides
how many devices work when a frame-time target is set.

It composes single-device renderers built by an injected ``factory`` (gscache.api.open_renderer
passes gscache.Renderer) and has their protocol: ``render``, ``reset_cache``, ``cache_totals``,
``close``. A multi-device frame is a stereo frame: the tiles of both eyes of a StereoRig are
planned together; a mono Camera is refused with a GscacheError (render it on one device).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

import torch

from ..cache import CacheTotals
from ..camera import Camera, StereoRig
from ..config import RenderConfig
from ..errors import GscacheError, GscacheRuntimeError
from ..records import Frame, Images, StageTimes
from ..stages.bin import tile_grid
from .devices import DeviceFailed, LocalDevice, ProcessDevice, ShareResult, render_share
from .elastic import ElasticController
from .plan import TilePlan, plan_tiles, row_costs
from .revive import Reviver
from .split_reuse import render_reusing


@dataclass(frozen=True)
class ScheduleConfig:
    """How frames are spread over devices."""

    target_ms: float | None = None
    """Frame-time target of the elastic controller; None keeps every device working."""
    headroom: float = 0.7
    hysteresis: int = 3
    warmup_frames: int = 2
    timeout_s: float = 30.0
    """A device that has not answered a frame by then is dropped and its bands re-rendered by the
    presenting device (the worst-case recovery time of a hung device)."""
    ema: float = 0.3
    """Weight of the newest measurement in each device's throughput estimate."""
    retry_s: float | None = 2.0
    """A failed device (worker process or GPU replica) is rebuilt in the background this long
    after it failed, then warms up before it takes tiles again; the back-off doubles after each
    rebuild that does not last, and a device is given up after ``max_rebuilds``. None: never."""
    max_rebuilds: int = 3


@dataclass
class DeviceStats:
    name: str
    tiles: int
    cost: float
    """Intersections in its bands."""
    device_ms: float
    raster_ms: float
    state: str
    """"working" (had tiles), "idle" (no tiles this frame), "warming" (rendered the frame without
    tiles to fill its cache before it takes work), "failed: reason" (with "rebuilding" or "gave up
    ..." appended once a rebuild has started or been given up)."""


@dataclass
class ScheduleStats:
    """How one frame was spread (Frame.schedule)."""

    wall_ms: float
    plan: str
    active: int
    devices: list[DeviceStats] = field(default_factory=list)
    recovered_ms: float = 0.0
    """Time the presenting device spent re-rendering the bands of failed devices."""
    elastic: str | None = None

    @property
    def balance(self) -> float:
        """Measured slowest / mean device time over the devices that had tiles."""
        times = [d.device_ms for d in self.devices if d.tiles and d.state == "working"]
        return max(times) / (sum(times) / len(times)) if times and sum(times) > 0 else 1.0


def parse_devices(specs: list[str]) -> list[tuple[str, dict]]:
    """Device specs: "local" (the presenting device itself), "cuda:N" (another GPU of this
    machine, in this process), "proc" or "proc:T" (a CPU worker process with T threads, 1 by
    default)."""
    out = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if spec == "local":
            out.append(("local", {}))
        elif kind == "cuda":
            out.append(("cuda", {"device": spec}))
        elif kind == "proc":
            try:
                threads = int(arg) if arg else 1
            except ValueError:
                threads = 0
            if threads < 1:
                raise GscacheError(f"devices: {spec!r}: expected proc or proc:THREADS with THREADS >= 1")
            out.append(("proc", {"threads": threads}))
        else:
            raise GscacheError(f"devices: unknown device {spec!r}; expected local, cuda:N, proc or proc:THREADS")
    if not out:
        raise GscacheError("devices: expected at least one device")
    return out


class MultiDeviceRenderer:
    """Renders stereo rigs with their tiles spread over ``devices`` (see parse_devices; may be
    empty when devices are added later with :meth:`add_devices`). The presenting renderer
    (``factory(scene, config)``, on config.device) assembles every frame and renders the bands of
    devices that failed. Public state: ``devices``, ``throughput`` (measured intersections per
    raster millisecond of each), ``working()``, ``plan(rig, working)``."""

    def __init__(self, scene, config: RenderConfig, devices: list[str], schedule: ScheduleConfig | None = None,
                 *, factory) -> None:
        self.config = config
        self.schedule = schedule or ScheduleConfig()
        self.presenter = factory(scene, config)
        self.factory = factory
        self.devices: list = []
        self.specs: list = []
        """Per device: its parsed spec (how to rebuild it), or None for a device added from
        elsewhere (a torch.distributed rank), which is never rebuilt here."""
        self.reviver = Reviver(self.schedule.retry_s, self.schedule.max_rebuilds)
        self.rejoining: dict[int, int] = {}
        """Rebuilt device index -> frames of warm-up left before it takes tiles again."""
        self.generation = 0
        """Counts scene and config changes: a device rebuilt from an older one is not used."""
        try:
            for kind, args in (parse_devices(devices) if devices else []):
                self.specs.append((kind, args))
                if kind == "local":
                    self.devices.append(LocalDevice(self.presenter, f"local:{self.presenter.device}"))
                elif kind == "cuda":
                    replica = factory(scene, dataclasses.replace(config, device=args["device"]))
                    self.devices.append(LocalDevice(replica, args["device"]))
                else:
                    self.devices.append(ProcessDevice(scene, config, args["threads"],
                                                      name=f"proc{len(self.devices)}:{args['threads']}t",
                                                      factory=factory))
        except BaseException:
            self.close()
            raise
        n = len(self.devices)
        self.throughput = [1.0] * n  # intersections per raster millisecond, measured
        self.measured = [False] * n  # has the device's throughput been measured (had tiles)?
        self.front_ms = [0.0] * n
        self.last_costs: torch.Tensor | None = None
        """[2, T] intersections per tile of the last frame (the next frame's cost map)."""
        self.grid = (0, 0)
        self.totals = CacheTotals()
        """The cache statistics of the frames (as reported by the first device that answered)."""
        # One frame at a time: a second thread waits (the devices' pipes carry one frame each).
        self._lock = threading.RLock()
        self.elastic = (ElasticController(n, self.schedule.target_ms, self.schedule.headroom, self.schedule.hysteresis,
                                          self.schedule.warmup_frames)
                        if self.schedule.target_ms is not None else None)

    # The renderer protocol: what the presenting renderer is on, and the frames' cache totals.
    @property
    def device(self) -> torch.device:
        return self.presenter.device

    @property
    def backend(self):
        return self.presenter.backend

    @property
    def scene(self):
        return self.presenter.scene

    @property
    def cache_totals(self) -> CacheTotals:
        return self.totals

    def __enter__(self) -> "MultiDeviceRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset_cache(self) -> None:
        """Every device forgets its cache (and the totals start again)."""
        with self._lock:
            self.presenter.reset_cache()
            for dev in self._alive_others():
                dev.reset_cache()
            self.totals = CacheTotals()

    def set_scene(self, scene) -> None:
        """Replace the scene on the presenting renderer and on every device (their next frames
        refresh their caches)."""
        with self._lock:
            self.presenter.set_scene(scene)
            self._tell_devices("set_scene", scene)
            self.generation += 1

    def set_config(self, config: RenderConfig) -> None:
        """Change the settings on the presenting renderer and on every device (their next frames
        refresh their caches; the tile plans start again from the new grid)."""
        with self._lock:
            self.presenter.set_config(config)
            self._tell_devices("set_config", config)
            self.config = config
            self.last_costs = None
            self.generation += 1

    def _tell_devices(self, method: str, value) -> None:
        """``method(value)`` on every other live device; one that fails is marked failed and its
        tiles go elsewhere from the next frame on."""
        for dev in self._alive_others():
            try:
                getattr(dev, method)(value)
            except DeviceFailed:
                pass

    def _alive_others(self) -> list:
        """The devices that are alive, except those that render with the presenting renderer."""
        return [d for d in self.devices if not d.failed and getattr(d, "renderer", None) is not self.presenter]

    def add_devices(self, devices: list) -> None:
        """Devices built elsewhere (e.g. torch.distributed ranks), after the others."""
        self.devices += devices
        self.specs += [None] * len(devices)
        self.throughput += [1.0] * len(devices)
        self.measured += [False] * len(devices)
        self.front_ms += [0.0] * len(devices)
        if self.elastic is not None:
            self.elastic.n_max = len(self.devices)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.devices]

    def working(self) -> list[int]:
        """Indices of the devices that take tiles now (alive, and chosen by the elastic controller)."""
        alive = [i for i, d in enumerate(self.devices) if not d.failed and i not in self.rejoining]
        if self.elastic is None:
            return alive
        return [i for i in self.elastic.working if i in alive]

    def _warming(self) -> list[int]:
        warming = set(self.rejoining) | (set(self.elastic.warming) if self.elastic is not None else set())
        return sorted(i for i in warming if i < len(self.devices) and not self.devices[i].failed)

    # ---- rebuilding failed devices ------------------------------------------------------------

    def _can_rebuild(self, i: int) -> bool:
        spec = self.specs[i]
        if spec is None:
            return False
        if spec[0] == "local":  # the presenter's own device: only once its thread is free again
            return self.devices[i].idle()
        return True

    def _builder(self, i: int):
        """A function that builds a replacement of device ``i`` from the scene and config of now
        (run on the reviver's thread: a worker process takes seconds to start)."""
        (kind, args), scene, config, name = self.specs[i], self.presenter.scene, self.config, self.devices[i].name
        factory, presenter = self.factory, self.presenter
        if kind == "local":
            return lambda: LocalDevice(presenter, name)
        if kind == "cuda":
            return lambda: LocalDevice(factory(scene, dataclasses.replace(config, device=args["device"])), name)
        return lambda: ProcessDevice(scene, config, args["threads"], name=name, factory=factory)

    def _revive(self) -> None:
        failed = [i for i, d in enumerate(self.devices) if d.failed]
        for i, device in self.reviver.poll(failed, self._can_rebuild, self._builder, self.generation).items():
            self.devices[i].close()
            self.devices[i] = device
            self.measured[i], self.throughput[i], self.front_ms[i] = False, 1.0, 0.0
            if self.specs[i][0] != "local":  # the presenter's own device has the presenter's warm cache
                self.rejoining[i] = max(1, self.schedule.warmup_frames)

    def _weights(self, devices: list[int]) -> list[float]:
        """Throughputs for planning: a device not measured yet is assumed as fast as the mean of
        the measured ones (it gets a fair first share, then its own measurement)."""
        known = [self.throughput[i] for i in range(len(self.devices)) if self.measured[i]]
        guess = sum(known) / len(known) if known else 1.0
        return [self.throughput[i] if self.measured[i] else guess for i in devices]

    def plan(self, rig: StereoRig, working: list[int]) -> TilePlan:
        grid = tile_grid(rig, self.config.bin)
        if self.last_costs is None or grid != self.grid:
            self.last_costs, self.grid = None, grid
            costs = torch.ones(len(rig.eyes()), grid[1])  # first frame (or a new resolution): no cost map yet
        else:
            costs = row_costs(self.last_costs, *grid)
        return plan_tiles(costs, self._weights(working))

    def predict_ms(self, n: int) -> float:
        """Predicted frame time with the first ``n`` working devices (from the last cost map)."""
        working = self.working()[:n]
        if not working or self.last_costs is None:
            return float("inf")
        plan = plan_tiles(row_costs(self.last_costs, *self.grid), self._weights(working))
        return max(self.front_ms[i] + t for i, t in zip(working, plan.predicted_times()))

    def render(self, rig: StereoRig, gaze=None) -> Frame:
        """One stereo frame with its tiles spread over the working devices (thread safe: frames
        from several threads are rendered one after the other). ``gaze`` is Renderer.render's,
        for one interface: a frame over several devices is never foveated (open_renderer refuses
        foveation with devices), so there is no fovea to place."""
        del gaze
        with self._lock:
            return self._render(rig)

    def _render(self, rig: StereoRig) -> Frame:
        if isinstance(rig, Camera):
            raise GscacheError("camera_or_rig: multi-device rendering plans the tiles of both eyes of a StereoRig; "
                               "render a mono Camera with a single-device renderer (gscache.open_renderer without "
                               "devices)")
        if not isinstance(rig, StereoRig):
            raise GscacheError(f"camera_or_rig: expected a StereoRig, got {type(rig).__name__}")
        start = time.perf_counter()
        self._revive()
        working = self.working()
        if not working:
            return self._render_alone(rig, start)
        if self.config.cache.pixel_reuse != "off":
            return render_reusing(self, rig, working, start)
        plan = self.plan(rig, working)
        shares = {i: plan.bands[k] for k, i in enumerate(working)}
        for i in self._warming():
            shares[i] = ()  # warm-up: the frame without tiles (scene copy, cache fill)
        tokens, failed = {}, {}
        for i, bands in shares.items():
            try:
                tokens[i] = self.devices[i].submit(rig, bands)
            except DeviceFailed as exc:
                failed[i] = str(exc)
        results: dict[int, ShareResult] = {}
        for i, token in tokens.items():
            try:
                results[i] = self.devices[i].result(token, self.schedule.timeout_s)
            except DeviceFailed as exc:
                failed[i] = str(exc)
        recovered_ms = 0.0
        lost = tuple(b for i in failed for b in shares[i])
        if lost:
            t0 = time.perf_counter()
            results[-1] = render_share(self.presenter, rig, lost)
            recovered_ms = (time.perf_counter() - t0) * 1e3
        frame = self._assemble(rig, results)
        wall_ms = (time.perf_counter() - start) * 1e3
        stats = self._update(shares, results, failed, plan.kind, wall_ms, recovered_ms)
        if frame.cache is not None:
            self.totals.add(frame.cache)
        return Frame(frame.images, frame.times, frame.counters, frame.cache, frame.tile_costs, stats)

    def _render_alone(self, rig: StereoRig, start: float) -> Frame:
        """Every device is gone: the presenting renderer renders the whole frame (while rebuilt
        devices warm up on it without tiles)."""
        warming = {}
        for i in self._warming():
            try:
                warming[i] = self.devices[i].submit(rig, ())
            except DeviceFailed:
                pass
        frame = self.presenter.render(rig)
        warmed = set()
        for i, token in warming.items():
            try:
                self.devices[i].result(token, self.schedule.timeout_s)
            except DeviceFailed:
                continue
            warmed.add(i)
            if i in self.rejoining:
                self.rejoining[i] -= 1
                if self.rejoining[i] <= 0:
                    del self.rejoining[i]
        if frame.cache is not None:
            self.totals.add(frame.cache)
        wall_ms = (time.perf_counter() - start) * 1e3
        stats = ScheduleStats(wall_ms, "presenter alone (every device failed)", 0,
                              [DeviceStats(d.name, 0, 0.0, 0.0, 0.0,
                                           "warming" if i in warmed else self._failed_state(i, "failed"))
                               for i, d in enumerate(self.devices)])
        return dataclasses.replace(frame, schedule=stats)

    def _assemble(self, rig: StereoRig, results: dict[int, ShareResult]) -> Frame:
        if not results:  # the presenter re-renders every lost band, so some device always answers
            raise GscacheRuntimeError("multi-device rendering: no device returned the frame")
        device = self.presenter.device
        E, H, W = len(rig.eyes()), rig.height, rig.width
        blank = Images.background(E, H, W, self.config.raster.background, device)
        rgb, alpha, depth, median = blank.rgb, blank.alpha, blank.depth, blank.median_depth
        tile_px = self.config.bin.tile_px
        first = next(iter(results.values()))
        for res in results.values():
            for band, (r, a, d, m) in zip(res.bands, res.rows):
                y0 = band.row0 * tile_px
                rgb[band.eye, y0:y0 + r.shape[0]] = r.to(device)
                alpha[band.eye, y0:y0 + r.shape[0]] = a.to(device)
                depth[band.eye, y0:y0 + r.shape[0]] = d.to(device)
                if m is None:  # a device whose backend gives no median depth: the frame has none
                    median = None
                elif median is not None:
                    median[band.eye, y0:y0 + r.shape[0]] = m.to(device)
        times = StageTimes(rasterize_ms=max(r.raster_ms for r in results.values()))
        return Frame(Images(rgb, alpha, depth, median), times, first.counters, first.cache, first.tile_costs)

    def _update(self, shares, results, failed, kind: str, wall_ms: float, recovered_ms: float,
                per_tile: torch.Tensor | None = None) -> ScheduleStats:
        """The frame's ScheduleStats, and the measurements for the next plan. ``per_tile``
        [E, tiles_y, tiles_x]: the cost each tile had this frame (pixel reuse: only the tiles
        rasterized count); None: the binning's intersections, which become the next cost map."""
        tiles_x, tiles_y = self.grid
        if per_tile is None:
            self._take_costs(shares, results)
            per_tile = self.last_costs.reshape(-1, tiles_y, tiles_x) if self.last_costs is not None else None
        stats = ScheduleStats(wall_ms, kind, len(self.working()), recovered_ms=recovered_ms)
        warming = set(self._warming())
        a = self.schedule.ema
        for i, dev in enumerate(self.devices):
            bands, res = shares.get(i), results.get(i)
            cost = sum(float(per_tile[b.eye, b.row0:b.row1].sum()) for b in bands or ()) if per_tile is not None else 0.0
            if res is not None:
                if bands:
                    measured = max(cost, 1.0) / max(res.raster_ms, 1e-3)
                    self.throughput[i] = (1 - a) * self.throughput[i] + a * measured if self.measured[i] else measured
                    self.measured[i] = True
                self.front_ms[i] = (1 - a) * self.front_ms[i] + a * res.front_ms
            if i in failed or dev.failed:
                state = self._failed_state(i, f"failed: {failed[i]}" if i in failed else "failed")
            elif i in warming:
                state = "warming"
            else:
                state = "working" if bands else "idle"
            stats.devices.append(DeviceStats(dev.name, sum(b.rows for b in bands or ()) * tiles_x, cost,
                                             res.device_ms if res else 0.0, res.raster_ms if res else 0.0, state))
        for i in list(self.rejoining):
            if i in results and i not in failed:
                self.rejoining[i] -= 1
                if self.rejoining[i] <= 0:
                    del self.rejoining[i]
        self.reviver.frame_served([i for i in results if i >= 0 and shares.get(i)])
        if self.elastic is not None:
            stats.elastic = self.elastic.update(wall_ms, self.predict_ms)
        stats.active = len(self.working())
        return stats

    def _take_costs(self, shares, results, eyes=None) -> None:
        """The next cost map from this frame's binning: each eye's intersections per tile from a
        device that had tiles in that eye (a device does not bin an eye it has no tile of); an
        eye no device binned keeps its last costs."""
        for i, res in results.items():
            if res.tile_costs is None:
                continue
            costs = res.tile_costs.reshape(res.tile_costs.shape[0], -1).double()
            if self.last_costs is None or self.last_costs.shape != costs.shape:
                self.last_costs = costs.clone()
            had = {b.eye for b in (shares.get(i) or res.bands)}
            for e in had:
                if eyes is None or e in eyes:
                    self.last_costs[e] = costs[e]

    def _failed_state(self, i: int, state: str) -> str:
        extra = self.reviver.state(i)
        return f"{state}; {extra}" if extra else state

    def close(self) -> None:
        with self._lock:
            self.reviver.close()
            for dev in self.devices:
                dev.close()
            self.devices = []

