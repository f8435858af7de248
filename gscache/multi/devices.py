"""The devices of a multi-device frame. Each holds a replica of the scene and its own renderer
(with its own cache), renders the frame's views up to the binning in full (so its records are
exactly the single-device ones) and rasterizes only the tiles of its bands. Renderers come from
the factory the caller injects (gscache.api passes gscache.Renderer); nothing here imports them.

A device has ``name``, ``failed``, ``submit(rig, bands, tiles=None, pixels=None) -> token``,
``result(token, timeout_s) -> ShareResult`` (or DeviceFailed), ``set_scene(scene)``, ``set_config(config)``, ``reset_cache()`` and ``close()``.

* LocalDevice: in this process, on a torch device (the presenting device, or another CUDA GPU),
  run on a worker thread (the kernels release the GIL).
* ProcessDevice: a worker process on this machine's CPU with its own thread count; the scene
  goes over once through shared memory, frames through a pipe, band rows through shared
  buffers made once per resolution (SharedRows).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import math
import os
import threading
import time
import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..camera import StereoRig
from ..config import RenderConfig
from ..errors import GscacheRuntimeError
from ..scene.record import Scene
from ..scene.structured import AnchorMLPs, StructuredScene
from ..stages.bin import tile_grid
from .plan import Band, band_mask


class DeviceFailed(GscacheRuntimeError):
    """A device raised, stopped answering or died; its tiles must be rendered elsewhere."""


@dataclass
class ShareResult:
    """What a device returns for one frame: the pixel rows of its bands and its timings."""

    bands: tuple[Band, ...]
    rows: list[tuple]
    """Per band: rgb [rows_px, W, 3], alpha, depth and median depth [rows_px, W] (CPU tensors;
    the median depth None where the device's backend gives none)."""
    tile_costs: torch.Tensor
    """[E, T] int32: intersections per tile of the whole frame (every device bins in full)."""
    device_ms: float
    """Wall time of the device's work for the frame."""
    raster_ms: float
    front_ms: float
    """Everything before rasterization (derive, cull, shade, project, bin)."""
    counters: object = None
    cache: object = None


def render_share(renderer, rig: StereoRig, bands: tuple[Band, ...], tiles: torch.Tensor | None = None,
                 pixels: torch.Tensor | None = None) -> ShareResult:
    """Render ``rig`` with ``renderer``, rasterizing only ``bands`` (and within them only the
    ``tiles`` [E, T] bool and the ``pixels`` [E, H, W] bool, where given: what pixel reuse left);
    returns their pixel rows (what was not rasterized at the background)."""
    start = time.perf_counter()
    tile_px = renderer.config.bin.tile_px
    tiles_x, tiles_y = tile_grid(rig, renderer.config.bin)
    mask = band_mask(bands, len(rig.eyes()), tiles_x, tiles_y)
    if tiles is not None:
        mask &= torch.as_tensor(tiles, dtype=torch.bool).reshape(mask.shape)
    frame = renderer.render(rig, tile_mask=mask, **({} if pixels is None else {"pixel_mask": pixels}))
    rows = []
    for b in bands:
        y0, y1 = b.row0 * tile_px, min(b.row1 * tile_px, rig.height)
        rows.append(tuple(None if t is None else t[b.eye, y0:y1].detach().cpu().contiguous()
                          for t in (frame.rgb, frame.alpha, frame.depth, frame.median_depth)))
    t = frame.times
    return ShareResult(bands, rows, frame.tile_costs.cpu(), (time.perf_counter() - start) * 1e3, t.rasterize_ms,
                       t.total_ms - t.rasterize_ms, frame.counters, frame.cache)


class LocalDevice:
    """A Renderer in this process (the presenting device's, or a replica on another GPU), run on
    a thread of its own."""

    def __init__(self, renderer, name: str) -> None:
        self.name = name
        self.renderer = renderer
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self.failed = False
        self._last: concurrent.futures.Future | None = None

    def submit(self, rig: StereoRig, bands: tuple[Band, ...], tiles: torch.Tensor | None = None,
               pixels: torch.Tensor | None = None) -> concurrent.futures.Future:
        self._last = self.pool.submit(render_share, self.renderer, rig, bands, tiles, pixels)
        return self._last

    def idle(self) -> bool:
        """No frame of this device is still running (one that timed out may still be)."""
        return self._last is None or self._last.done()

    def reset_cache(self) -> None:
        self.renderer.reset_cache()

    def set_scene(self, scene) -> None:
        self.renderer.set_scene(scene)

    def set_config(self, config: RenderConfig) -> None:
        self.renderer.set_config(dataclasses.replace(config, device=str(self.renderer.device)))

    def result(self, future: concurrent.futures.Future, timeout_s: float) -> ShareResult:
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            self.failed = True
            raise DeviceFailed(f"{self.name}: no answer within {timeout_s:.1f} s") from None
        except Exception as exc:  # the device's own error, reported with its name
            self.failed = True
            raise DeviceFailed(f"{self.name}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# ---- worker processes ------------------------------------------------------------------------

def pack_scene(scene) -> dict:
    """A picklable form of a scene: tensors (moved through shared memory by torch's pickler) and,
    for structured scenes, the MLPs as TorchScript bytes."""
    if isinstance(scene, Scene):
        return {"kind": "scene", "tensors": [t.cpu() for t in scene.tensors()], "version": scene.version,
                "source": scene.source}
    mlps, other = {}, {}
    for f in dataclasses.fields(AnchorMLPs):
        value = getattr(scene.mlps, f.name)
        if isinstance(value, torch.nn.Module):
            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = value if isinstance(value, torch.jit.ScriptModule) else torch.jit.script(value.cpu())
                torch.jit.save(scripted, buf)
            mlps[f.name] = buf.getvalue()
        else:  # flags, and the appearance embeddings (a tensor or None)
            other[f.name] = value.cpu() if isinstance(value, torch.Tensor) else value
    fields = {f.name: getattr(scene, f.name) for f in dataclasses.fields(StructuredScene) if f.name != "mlps" and f.init}
    fields = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in fields.items()}
    return {"kind": "structured", "fields": fields, "mlps": mlps, "other": other}


def unpack_scene(payload: dict):
    if payload["kind"] == "scene":
        means, quats, scales, opacities, sh = payload["tensors"]
        return Scene(means, quats, scales, opacities, sh, version=payload["version"], source=payload["source"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        modules = {k: torch.jit.load(io.BytesIO(v), map_location="cpu").eval() for k, v in payload["mlps"].items()}
    mlps = AnchorMLPs(**modules, **payload["other"])
    return StructuredScene(mlps=mlps, **payload["fields"])


def pack_mask(mask: torch.Tensor | None):
    """A bool mask as (shape, bits packed 8 to a byte) for a pipe; None stays None."""
    if mask is None:
        return None
    return tuple(mask.shape), np.packbits(mask.cpu().numpy().reshape(-1))


def unpack_mask(packed) -> torch.Tensor | None:
    if packed is None:
        return None
    shape, bits = packed
    return torch.from_numpy(np.unpackbits(bits, count=math.prod(shape)).reshape(shape).astype(bool))


def rig_message(rig: StereoRig) -> tuple:
    """A StereoRig as plain values (numpy pose): pickled by value, no shared-memory segment."""
    eyes = None if rig.eye_poses is None else tuple(T.numpy() for T in rig.eye_poses)
    return (rig.T_world_head.numpy(), rig.left, rig.right, rig.ipd_m, rig.near_m, rig.far_m, rig.convergence_m, eyes)


def rig_from_message(msg: tuple) -> StereoRig:
    return StereoRig(*msg)


class SharedRows:
    """Frame-sized images in shared memory, made once per resolution: a worker writes its bands'
    rows there and sends only which rows it wrote (a fresh shared segment per frame costs more
    than the copy itself)."""

    def __init__(self, height: int, width: int) -> None:
        self.key = (height, width)
        self.rgb = torch.zeros(2, height, width, 3).share_memory_()
        self.alpha = torch.zeros(2, height, width).share_memory_()
        self.depth = torch.zeros(2, height, width).share_memory_()
        self.median_depth = torch.zeros(2, height, width).share_memory_()

    def write(self, res: ShareResult, tile_px: int) -> None:
        # Worker processes render with CPU backends, which all give the median depth.
        for band, rows in zip(res.bands, res.rows):
            y0 = band.row0 * tile_px
            for dst, src in zip((self.rgb, self.alpha, self.depth, self.median_depth), rows):
                dst[band.eye, y0:y0 + src.shape[0]] = src

    def read(self, bands, tile_px: int) -> list:
        height = self.key[0]
        out = []
        for b in bands:
            y0, y1 = b.row0 * tile_px, min(b.row1 * tile_px, height)
            out.append(tuple(t[b.eye, y0:y1] for t in (self.rgb, self.alpha, self.depth, self.median_depth)))
        return out


def apply_control(renderer, msg: tuple, unpack=lambda scene: scene) -> bool:
    """A device's control messages, the same for worker processes and ranks: ("reset",),
    ("scene", packed scene) and ("config", RenderConfig). False for anything else (a frame)."""
    if msg[0] == "reset":
        renderer.reset_cache()
    elif msg[0] == "scene":
        renderer.set_scene(unpack(msg[1]))
    elif msg[0] == "config":
        renderer.set_config(dataclasses.replace(msg[1], device=str(renderer.device)))
    else:
        return False
    return True


HEARTBEAT_S = 0.05
"""How often a worker process stamps its heartbeat."""
HEARTBEAT_LOST_S = 0.75
"""A worker whose heartbeat is older than this is stopped or dead (a stopped process's threads
all stop; a busy one still beats: the kernels release the GIL)."""


def _beat(heartbeat: torch.Tensor) -> None:
    while True:
        heartbeat[0] = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        time.sleep(HEARTBEAT_S)


def worker_main(conn, payload: dict, config: RenderConfig, threads: int, factory, heartbeat: torch.Tensor) -> None:
    """A worker process: its thread count, the scene and a renderer (``factory``), then frames
    until told to stop, stamping ``heartbeat`` (shared memory) from a thread of its own."""
    threading.Thread(target=_beat, args=(heartbeat,), daemon=True, name="heartbeat").start()
    # Before the kernels' OpenMP runtime starts in this process (it reads the variable once).
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    try:
        renderer = factory(unpack_scene(payload), dataclasses.replace(config, device="cpu"))
        conn.send(("ready", os.getpid()))
    except Exception as exc:
        conn.send(("error", None, f"{type(exc).__name__}: {exc}"))
        return
    shared: SharedRows | None = None
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            return
        if apply_control(renderer, msg, unpack_scene):
            continue
        _, frame_id, rig_msg, bands, tiles, pixels = msg
        try:
            rig = rig_from_message(rig_msg)
            res = render_share(renderer, rig, bands, None if tiles is None else torch.from_numpy(tiles),
                               unpack_mask(pixels))
            new_buffers = shared is None or shared.key != (rig.height, rig.width)
            if new_buffers:
                shared = SharedRows(rig.height, rig.width)
            shared.write(res, renderer.config.bin.tile_px)
            res.rows = []  # the rows travel through `shared`
            res.tile_costs = res.tile_costs.numpy()
            conn.send(("result", frame_id, (res, shared if new_buffers else None)))
        except Exception as exc:
            conn.send(("error", frame_id, f"{type(exc).__name__}: {exc}"))


class ProcessDevice:
    """A worker process on the CPU with ``threads`` threads of its own, rendering with a renderer
    that ``factory(scene, config)`` builds there (it must pickle: a class or a module-level
    function)."""

    START_TIMEOUT_S = 120.0

    def __init__(self, scene, config: RenderConfig, threads: int = 1, name: str | None = None, *, factory) -> None:
        import torch.multiprocessing as mp

        self.name = name or f"proc:{threads}t"
        self.threads = threads
        self.failed = False
        self.frame_id = 0
        self.shared: SharedRows | None = None
        self.tile_px = config.bin.tile_px
        ctx = mp.get_context("spawn")  # fork would copy a process whose OpenMP threads are live
        self.conn, child = ctx.Pipe()
        self.heartbeat = torch.zeros(1, dtype=torch.float64).share_memory_()
        self.process = ctx.Process(target=worker_main,
                                   args=(child, pack_scene(scene), config, threads, factory, self.heartbeat),
                                   daemon=True, name=self.name)
        self.process.start()
        child.close()
        # Reaped when this device is dropped without close(), or at exit: no zombie workers.
        self._finalizer = weakref.finalize(self, _reap, self.process, self.conn)
        if not self.conn.poll(self.START_TIMEOUT_S):
            self.close()
            raise DeviceFailed(f"{self.name}: the worker did not start within {self.START_TIMEOUT_S:.0f} s")
        try:
            msg = self.conn.recv()
        except (EOFError, OSError) as exc:  # the worker died before it could say why
            self.close()
            raise DeviceFailed(f"{self.name}: the worker died at start ({type(exc).__name__})") from None
        if msg[0] != "ready":
            self.close()
            raise DeviceFailed(f"{self.name}: the worker failed to start: {msg[2]}")

    def reset_cache(self) -> None:
        self.conn.send(("reset",))

    def set_config(self, config: RenderConfig) -> None:
        self._send(("config", config))
        self.tile_px = config.bin.tile_px

    def set_scene(self, scene) -> None:
        self._send(("scene", pack_scene(scene)))

    def _send(self, msg: tuple) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError) as exc:
            self.failed = True
            raise DeviceFailed(f"{self.name}: the worker is gone ({exc})") from None

    def submit(self, rig: StereoRig, bands: tuple[Band, ...], tiles: torch.Tensor | None = None,
               pixels: torch.Tensor | None = None) -> int:
        self.frame_id += 1
        # The masks as numpy (the pixels packed 8 to a byte): pickled by value, no shared-memory
        # segment per frame.
        msg = ("frame", self.frame_id, rig_message(rig), bands, None if tiles is None else tiles.cpu().numpy(),
               pack_mask(pixels))
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError) as exc:
            self.failed = True
            raise DeviceFailed(f"{self.name}: the worker is gone ({exc})") from None
        return self.frame_id

    def result(self, frame_id: int, timeout_s: float) -> ShareResult:
        deadline = time.perf_counter() + timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                self._lost()
                raise DeviceFailed(f"{self.name}: no answer within {timeout_s:.1f} s")
            if not self.conn.poll(min(left, HEARTBEAT_LOST_S / 3)):
                silent = time.monotonic() - float(self.heartbeat[0])
                if silent > HEARTBEAT_LOST_S or not self.process.is_alive():
                    self._lost()
                    raise DeviceFailed(f"{self.name}: the worker stopped (no heartbeat for {silent:.2f} s)")
                continue
            try:
                kind, fid, body = self.conn.recv()
            except (EOFError, OSError) as exc:
                self.failed = True
                raise DeviceFailed(f"{self.name}: the worker died ({exc})") from None
            if fid != frame_id:
                continue  # a late answer to an abandoned frame
            if kind == "error":
                self.failed = True
                raise DeviceFailed(f"{self.name}: {body}")
            res, shared = body
            if shared is not None:
                self.shared = shared
            # Views of the shared rows: valid until this device's next frame (the caller copies them).
            res.rows = self.shared.read(res.bands, self.tile_px)
            res.tile_costs = torch.from_numpy(res.tile_costs)
            return res

    def _lost(self) -> None:
        """A worker that stopped answering is killed, not waited for."""
        self.failed = True
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2.0)
        self.close()

    def close(self) -> None:
        self._finalizer()


def _reap(process, conn) -> None:
    """Stop a worker process: ask, then kill; join it either way (no zombie)."""
    if process.is_alive():
        try:
            conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join(timeout=2.0)
    conn.close()
