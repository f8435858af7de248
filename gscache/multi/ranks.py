"""The multi-device protocol across machines, over torch.distributed (gloo on CPUs, NCCL-capable
groups on GPUs): rank 0 presents (plans, gathers, recovers), every other rank is a device that
holds a replica of the scene and renders its bands. Messages are pickled objects: rank 0 sends
("frame", id, rig, bands, tiles, pixels), ("scene", scene), ("config", config), ("reset",) or ("stop",), a rank answers ("result", id, ShareResult) or
("error", id, text). A rank that does not answer within the group's timeout fails the receive;
its bands are then re-rendered on rank 0 and the rank is dropped. The torchrun entry point is
gscache.cli.distributed."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from ..camera import StereoRig
from .devices import DeviceFailed, ShareResult, apply_control, render_share
from .plan import Band


class RankDevice:
    """Rank ``rank`` of the default process group, seen from rank 0."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.name = f"rank{rank}"
        self.failed = False
        self.frame_id = 0

    def submit(self, rig: StereoRig, bands: tuple[Band, ...], tiles: torch.Tensor | None = None,
               pixels: torch.Tensor | None = None) -> int:
        self.frame_id += 1
        msg = ("frame", self.frame_id, rig, bands, None if tiles is None else tiles.cpu(),
               None if pixels is None else pixels.cpu())
        try:
            dist.send_object_list([msg], dst=self.rank)
        except RuntimeError as exc:
            self.failed = True
            raise DeviceFailed(f"{self.name}: send failed ({exc})") from None
        return self.frame_id

    def result(self, frame_id: int, timeout_s: float) -> ShareResult:
        box = [None]
        try:
            dist.recv_object_list(box, src=self.rank)  # bounded by the group's timeout
        except RuntimeError as exc:
            self.failed = True
            raise DeviceFailed(f"{self.name}: no answer ({exc})") from None
        kind, fid, body = box[0]
        if kind == "error" or fid != frame_id:
            self.failed = True
            raise DeviceFailed(f"{self.name}: {body if kind == 'error' else 'answered another frame'}")
        return body

    def reset_cache(self) -> None:
        dist.send_object_list([("reset",)], dst=self.rank)

    def set_scene(self, scene) -> None:
        dist.send_object_list([("scene", scene.to("cpu"))], dst=self.rank)

    def set_config(self, config) -> None:
        dist.send_object_list([("config", config)], dst=self.rank)

    def close(self) -> None:
        if not self.failed:
            try:
                dist.send_object_list([("stop",)], dst=self.rank)
            except RuntimeError:
                pass


def serve(renderer) -> None:
    """A device rank's loop: render the frames rank 0 sends until it says stop."""
    while True:
        box = [None]
        dist.recv_object_list(box, src=0)
        msg = box[0]
        if msg[0] == "stop":
            return
        if apply_control(renderer, msg):
            continue
        _, frame_id, rig, bands, tiles, pixels = msg
        try:
            reply = ("result", frame_id, render_share(renderer, rig, bands, tiles, pixels))
        except Exception as exc:  # reported to rank 0, which re-renders the bands
            reply = ("error", frame_id, f"{type(exc).__name__}: {exc}")
        dist.send_object_list([reply], dst=0)


def init_group(timeout_s: float) -> None:
    """The default group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("GSCACHE_DIST_BACKEND") == "nccl" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
