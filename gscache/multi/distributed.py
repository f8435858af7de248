"""The multi-device protocol across machines, over torch.distributed (gloo on CPUs, NCCL-capable
groups on GPUs): rank 0 presents (plans, gathers, recovers), every other rank is a device that
holds a replica of the scene and renders its bands. Messages are pickled objects: rank 0 sends
("frame", id, rig, bands), ("reset",) or ("stop",), a rank answers ("result", id, ShareResult) or
("error", id, text). A rank that does not answer within the group's timeout fails the receive;
its bands are then re-rendered on rank 0 and the rank is dropped.

Run (one machine, two ranks; on several machines give each torchrun the same --rdzv endpoint):

    torchrun --nproc-per-node 2 -m gscache.multi.distributed SCENE --frames 60 --size 512x512 --check
    # machine A (rank 0 presents):  torchrun --nnodes 2 --node-rank 0 --nproc-per-node 1 \\
    #     --master-addr A --master-port 29500 -m gscache.multi.distributed SCENE --frames 60
    # machine B:                   the same with --node-rank 1 (and the scene at the same path)
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

from ..camera import StereoRig
from ..config import RenderConfig
from ..errors import GscacheError
from .devices import DeviceFailed, ShareResult, render_share
from .plan import Band


class RankDevice:
    """Rank ``rank`` of the default process group, seen from rank 0."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.name = f"rank{rank}"
        self.failed = False
        self.frame_id = 0

    def submit(self, rig: StereoRig, bands: tuple[Band, ...]) -> int:
        self.frame_id += 1
        try:
            dist.send_object_list([("frame", self.frame_id, rig, bands)], dst=self.rank)
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

    def close(self) -> None:
        if not self.failed:
            try:
                dist.send_object_list([("stop",)], dst=self.rank)
            except RuntimeError:
                pass


def serve(renderer) -> None:
    """A device rank's loop: render the frames rank 0 sends until it says stop.

    Fault injection (tests): GSCACHE_FAULT=raise|hang with GSCACHE_FAULT_FRAME=N makes frame N
    fail or never be answered."""
    fault = os.environ.get("GSCACHE_FAULT")
    fault_frame = int(os.environ.get("GSCACHE_FAULT_FRAME", "0"))
    while True:
        box = [None]
        dist.recv_object_list(box, src=0)
        msg = box[0]
        if msg[0] == "stop":
            return
        if msg[0] == "reset":
            renderer.reset_cache()
            continue
        _, frame_id, rig, bands = msg
        try:
            if fault and frame_id == fault_frame:
                if fault == "hang":
                    time.sleep(3600)
                raise RuntimeError("injected fault")
            reply = ("result", frame_id, render_share(renderer, rig, bands))
        except Exception as exc:  # reported to rank 0, which re-renders the bands
            reply = ("error", frame_id, f"{type(exc).__name__}: {exc}")
        dist.send_object_list([reply], dst=0)


def init_group(timeout_s: float) -> None:
    """The default group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("GSCACHE_DIST_BACKEND") == "nccl" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def main(argv: list[str] | None = None) -> int:
    from ..cli import open_scene, parse_size
    from ..renderer import Renderer
    from ..trajectory import named_trajectory
    from .scheduler import MultiDeviceRenderer, ScheduleConfig

    p = argparse.ArgumentParser(prog="python -m gscache.multi.distributed",
                                description="Render a VR trajectory with the tiles spread over torchrun's ranks.")
    p.add_argument("scene", nargs="?", help="scene file (every rank loads it; default: the demo scene)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--size", default="512x512")
    p.add_argument("--fov", type=float, default=90.0)
    p.add_argument("--backend", default="auto")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a silent rank is dropped")
    p.add_argument("--no-local", action="store_true", help="rank 0 only presents (no tiles of its own)")
    p.add_argument("--check", action="store_true", help="rank 0 also renders alone and compares (bit for bit)")
    args = p.parse_args(argv)
    init_group(args.timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        scene = open_scene(args.scene)
        cfg = RenderConfig(backend=args.backend)
        if rank != 0:
            serve(Renderer(scene, cfg))
            return 0
        width, height = parse_size(args.size)
        traj = named_trajectory("vr", scene, args.frames)
        template = StereoRig.symmetric(traj.T_world_head[0], width, height, args.fov)
        presenter = Renderer(scene, cfg)
        multi = MultiDeviceRenderer(scene, cfg, [] if args.no_local else ["local"],
                                    ScheduleConfig(timeout_s=args.timeout), presenter=presenter)
        multi.add_devices([RankDevice(r) for r in range(1, world)])
        single = Renderer(scene, cfg) if args.check else None
        names = multi.names
        times, balance, identical, recovered = [], [], True, 0
        try:
            for pose in traj.T_world_head:
                rig = template.with_pose(pose)
                frame = multi.render(rig)
                times.append(frame.schedule.wall_ms)
                recovered += frame.schedule.recovered_ms > 0
                balance.append(frame.schedule.balance)
                if single is not None:
                    identical &= torch.equal(frame.rgb, single.render(rig).rgb)
        finally:
            multi.close()
        warm = times[2:] or times
        print(f"ranks {world}: median {statistics.median(warm):.1f} ms per stereo frame "
              f"({1000 / statistics.median(warm):.2f} FPS), balance slowest/mean {statistics.median(balance):.2f}, "
              f"devices {names}, frames with re-rendered bands {recovered}")
        if single is not None:
            print("split frames identical to the single-process render" if identical else "MISMATCH")
        return 0 if identical else 1
    except GscacheError as exc:
        print(f"rank {rank}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        time.sleep(0.1)
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
