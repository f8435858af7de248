"""Render a VR trajectory with the tiles spread over torchrun's ranks (the entry point of the
protocol in gscache.multi.ranks; rank 0 presents, every other rank is a device).

Run (one machine, two ranks; on several machines give each torchrun the same --rdzv endpoint):

    torchrun --nproc-per-node 2 -m gscache.cli.distributed SCENE --frames 60 --size 512x512 --check
    # machine A (rank 0 presents):  torchrun --nnodes 2 --node-rank 0 --nproc-per-node 1 \\
    #     --master-addr A --master-port 29500 -m gscache.cli.distributed SCENE --frames 60
    # machine B:                   the same with --node-rank 1 (and the scene at the same path)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.distributed as dist

from ..api import open_renderer, open_scene
from ..camera import StereoRig
from ..config import RenderConfig
from ..errors import GscacheError
from ..presets import parse_size
from ..renderer import Renderer
from ..trajectory import named_trajectory
from ..multi.ranks import RankDevice, init_group, serve
from ..multi.scheduler import MultiDeviceRenderer, ScheduleConfig


def main(argv: list[str] | None = None, factory=Renderer) -> int:
    """The entry point; ``factory(scene, config)`` builds each rank's renderer (tests pass one that
    misbehaves)."""

    p = argparse.ArgumentParser(prog="python -m gscache.cli.distributed",
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
            serve(factory(scene, cfg))
            return 0
        width, height = parse_size(args.size)
        traj = named_trajectory("vr", scene, args.frames)
        template = StereoRig.symmetric(traj.T_world_head[0], width, height, args.fov)
        multi = MultiDeviceRenderer(scene, cfg, [] if args.no_local else ["local"],
                                    ScheduleConfig(timeout_s=args.timeout), factory=factory)
        multi.add_devices([RankDevice(r) for r in range(1, world)])
        single = open_renderer(scene, cfg) if args.check else None
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
