"""Pixel reuse over several devices (CacheConfig.pixel_reuse with gscache.multi): the presenting
renderer warps its last frame and decides which tiles and pixels to rasterize
(gscache.pixel_reuse.back_with_reuse); each of its rasterization passes (stereo: the eye
rasterized in full, then the warped one; temporal: both eyes at once) is planned over the working
devices by the last cost of those tiles alone, each scaled by the share of its pixels to
rasterize, and sent to them with the tile and pixel masks; the presenter rasterizes its own share
and the bands of devices that failed, and composites. Frames are the single-device pixel-reuse
frames bit for bit (tests/multi/test_pixel_reuse_split.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from ..camera import StereoRig
from ..errors import GscacheRuntimeError
from ..pixel_reuse import PassResult
from ..records import Frame, Images
from ..stages.bin import tile_grid
from ..stages.reuse import TileGrid
from .devices import DeviceFailed, ShareResult
from .plan import Band, band_mask, plan_tiles


def render_reusing(multi, rig: StereoRig, working: list[int], start: float) -> Frame:
    """One frame of ``multi`` (a MultiDeviceRenderer) with pixel reuse (the module docstring):
    the presenter's frame, with the ScheduleStats of its passes."""
    multi.grid = tile_grid(rig, multi.config.bin)
    tiles_x, tiles_y = multi.grid
    if multi.last_costs is not None and multi.last_costs.shape[1] != tiles_x * tiles_y:
        multi.last_costs = None
    log = _PassLog(torch.zeros(2, tiles_y, tiles_x, dtype=torch.float64), warming=multi._warming())

    def rasterize(eyes, tiles, pixels, local):
        return _reuse_pass(multi, rig, working, eyes, tiles, pixels, local, log)

    frame = multi.presenter.render(rig, rasterize_with=rasterize)
    wall_ms = (time.perf_counter() - start) * 1e3
    results = {i: _merged(parts) for i, parts in log.results.items()}
    shares = {i: tuple(b) for i, b in log.shares.items()}
    stats = multi._update(shares, results, log.failed, log.kind, wall_ms, log.recovered_ms, per_tile=log.cost)
    if frame.cache is not None:
        multi.totals.add(frame.cache)
    return replace(frame, schedule=stats)


def _reuse_pass(multi, rig: StereoRig, working: list[int], eyes: list, tiles, pixels, local, log: "_PassLog"):
    """One rasterization pass of a pixel-reuse frame (gscache.pixel_reuse.Rasterize): the
    tiles asked for, planned over ``working`` by the last costs of those tiles alone, sent
    to the devices, this device's own share and the bands of failed devices rasterized by
    ``local``, the rows gathered into [n, H, W] images."""
    tiles_x, tiles_y = multi.grid
    E, H, W, tp = 2, rig.height, rig.width, multi.config.bin.tile_px
    wanted = torch.zeros(E, tiles_y, tiles_x, dtype=torch.bool)
    wanted[eyes] = True if tiles is None else tiles.cpu()
    # Each tile's cost scaled by the share of its pixels to rasterize (the rasterizers clip
    # every splat to the wanted pixels' box: a reused tile with a few refused pixels is cheap).
    share = wanted.double()
    every = None
    if pixels is not None:
        every = torch.ones(E, H, W, dtype=torch.bool)
        every[eyes] = pixels.cpu()
        share = share * TileGrid(W, H, tp).blocks(every.permute(1, 2, 0), False).double().mean(dim=2).permute(2, 0, 1)
    known = multi.last_costs.reshape(E, tiles_y, tiles_x) if multi.last_costs is not None else torch.ones(
        E, tiles_y, tiles_x, dtype=torch.float64)
    # A device that failed in an earlier pass of this frame takes no more tiles.
    working = [i for i in working if i not in log.failed and not multi.devices[i].failed]
    plan = plan_tiles((known * share).sum(dim=2), multi._weights(working)) if working else None
    log.kind = plan.kind if plan is not None else "presenter alone (every device failed)"
    presenter = next((i for i in working if getattr(multi.devices[i], "renderer", None) is multi.presenter), None)
    flat = wanted.reshape(E, -1)
    tokens, mine, failed_now = {}, (), set()
    if plan is None:  # every device failed in an earlier pass: the presenter rasterizes it all
        mine, presenter = tuple(Band(e, 0, tiles_y) for e in eyes), -1
    for k, i in enumerate(working):
        bands = tuple(b for b in plan.bands[k] if b.eye in eyes)
        if not bands:
            continue
        log.shares.setdefault(i, []).extend(bands)
        if i == presenter:
            mine = bands
            continue
        try:
            tokens[i] = multi.devices[i].submit(rig, bands, flat, every)
        except DeviceFailed as exc:
            log.failed[i] = str(exc)
            failed_now.add(i)
    for i in log.warming:  # warm-up: the frame without tiles (scene copy, cache fill), once
        try:
            tokens[i] = multi.devices[i].submit(rig, ())
        except DeviceFailed:
            pass
    log.warming = []
    device = multi.presenter.device
    n = len(eyes)
    blank = Images.background(n, H, W, multi.config.raster.background, device)
    out = [blank.rgb, blank.alpha, blank.depth, blank.median_depth]

    def run_here(bands) -> PassResult:
        mask = band_mask(bands, E, tiles_x, tiles_y).reshape(E, tiles_y, tiles_x) & wanted
        done = local(eyes, mask[eyes].to(device), pixels)
        planes = (done.images.rgb, done.images.alpha, done.images.depth, done.images.median_depth)
        for b in bands:
            y0, y1 = b.row0 * tp, min(b.row1 * tp, H)
            for dst, src in zip(out, planes):
                dst[eyes.index(b.eye), y0:y1] = src[eyes.index(b.eye), y0:y1]
        return done

    if mine:
        t0 = time.perf_counter()
        done = run_here(mine)
        ms = (time.perf_counter() - t0) * 1e3
        log.results.setdefault(presenter, []).append(ShareResult(mine, [], None, ms, ms, 0.0))
        _local_costs(multi, eyes, wanted, done.tile_costs)
    results = {}
    for i, token in tokens.items():
        try:
            results[i] = multi.devices[i].result(token, multi.schedule.timeout_s)
        except DeviceFailed as exc:
            log.failed[i] = str(exc)
            failed_now.add(i)
            continue
        log.results.setdefault(i, []).append(results[i])
        for band, rows in zip(results[i].bands, results[i].rows):
            if rows[3] is None:
                raise GscacheRuntimeError(f"{multi.devices[i].name}: its backend gives no median depth; "
                                          "pixel reuse needs it on every device")
            y0 = band.row0 * tp
            for dst, src in zip(out, rows):
                dst[eyes.index(band.eye), y0:y0 + src.shape[0]] = src.to(device)
    lost = tuple(b for i in failed_now for b in log.shares.get(i, ()) if b.eye in eyes)
    if lost:
        t0 = time.perf_counter()
        done = run_here(lost)
        log.recovered_ms += (time.perf_counter() - t0) * 1e3
        _local_costs(multi, eyes, wanted, done.tile_costs)
    multi._take_costs(log.shares, results, eyes)
    known = multi.last_costs.reshape(E, tiles_y, tiles_x)
    log.cost += known * share
    costs = (known[eyes] * wanted[eyes]).reshape(n, -1).to(device=device, dtype=torch.int32)
    images = Images(out[0], out[1], out[2], out[3])
    return PassResult(images, int(known[eyes].sum()), costs)


def _local_costs(multi, eyes: list, wanted: torch.Tensor, tile_costs: torch.Tensor) -> None:
    """The presenter's own pass costs into the cost map: only its rasterized tiles were binned
    in full (pixel_reuse.keep_for_tiles), so only those tiles are updated."""
    E, ty, tx = wanted.shape
    if multi.last_costs is None:
        multi.last_costs = torch.ones(E, ty * tx, dtype=torch.float64)
    got = torch.zeros(E, ty * tx, dtype=torch.float64)
    got[eyes] = tile_costs.double().cpu()
    multi.last_costs = torch.where(wanted.reshape(E, -1) & (got > 0), got, multi.last_costs)


@dataclass
class _PassLog:
    """What the passes of one pixel-reuse frame did, for its ScheduleStats."""

    cost: torch.Tensor
    """[E, tiles_y, tiles_x] the cost of each tile rasterized (0 where reused)."""
    warming: list[int]
    shares: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)
    recovered_ms: float = 0.0
    kind: str = "bands"


def _merged(parts: list[ShareResult]) -> ShareResult:
    """One device's passes of a frame as one ShareResult (times summed)."""
    return ShareResult(tuple(b for p in parts for b in p.bands), [], None, sum(p.device_ms for p in parts),
                       sum(p.raster_ms for p in parts), sum(p.front_ms for p in parts))
