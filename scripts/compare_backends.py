"""Time backends side by side on the same stereo frames and check that they agree.

    python scripts/compare_backends.py ../shared/data/plant.splat --size 512x512 --backends torch,cpu
    python scripts/compare_backends.py city:1000000 --size 2048x2048 --backends torch,cuda,gsplat --device cuda

The first backend is the baseline: ratios are its median frame time over each backend's, and
agreement is PSNR and max abs error of each backend's images against its images. Frames follow
a seeded VR head motion, the backends taking turns frame by frame; warm-up frames are not timed. Stage times are synchronised per stage
(gscache.pipeline), so on a GPU they are device times. Issue 4's `gscache bench` supersedes this
for full reports; this script stays the one-call check of scripts/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import sys

import torch


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {torch.get_num_threads()} torch threads"


def _scene(spec: str):
    if spec == "demo":
        from gscache.scenes import demo_scene

        return demo_scene()
    if spec.startswith("city:"):
        from gscache.scenes import city_scene

        return city_scene(int(spec.split(":", 1)[1]))
    from gscache import load_scene

    return load_scene(spec)


def main(argv=None) -> int:
    from gscache import RenderConfig, Renderer, StereoRig
    from gscache.presets import parse_size
    from gscache.trajectory import default_head_pose, vr_head_motion

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scene", help="scene path, 'demo', or 'city:N'")
    p.add_argument("--size", default="512x512", help="per-eye WxH or a preset")
    p.add_argument("--backends", default="torch,cpu", help="comma-separated; the first is the baseline")
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=5, help="timed stereo frames")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames first")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    width, height = parse_size(args.size)
    scene = _scene(args.scene)
    pose = default_head_pose(scene)
    template = StereoRig.symmetric(pose, width, height, fov_y_deg=70)
    rigs = list(vr_head_motion(pose, args.warmup + args.frames, seed=3).rigs(template))
    names = args.backends.split(",")
    print(f"{scene.source}: {scene.count} Gaussians, {width}x{height} per eye, stereo, on {_machine(device)}")
    renderers = {name: Renderer(scene, RenderConfig(backend=name, device=str(device))) for name in names}
    ms = {name: [] for name in names}
    evals = {name: [] for name in names}
    frames = {name: [] for name in names}
    last = {}
    # Backends take turns frame by frame, so a drift in the machine's speed hits all of them alike.
    for i, rig in enumerate(rigs):
        for name in names:
            frame = renderers[name].render(rig)
            last[name] = frame
            if i >= args.warmup:
                ms[name].append(frame.times.total_ms)
                evals[name].append((frame.counters.n_evaluations, frame.times.rasterize_ms))
                frames[name].append(frame.rgb.cpu())
    results = {name: (statistics.median(ms[name]), frames[name], evals[name], last[name].counters, last[name].times)
               for name in names}
    base_ms, base_frames = results[names[0]][0], results[names[0]][1]
    print(f"{'backend':8} {'median ms':>10} {'speed-up':>9} {'PSNR dB':>8} {'max err':>8} {'evals/s':>10}  stages (ms) of the last frame")
    for name in names:
        median_ms, frames, evals, counters, times = results[name]
        mse = statistics.mean(float(((a - b) ** 2).mean()) for a, b in zip(frames, base_frames))
        psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
        err = max(float((a - b).abs().max()) for a, b in zip(frames, base_frames))
        rate = "-"
        if evals[0][0] is not None:
            rate = f"{sum(e for e, _ in evals) / (sum(t for _, t in evals) / 1e3):.3g}"
        stages = " ".join(f"{k[:-3]}={getattr(times, k):.1f}" for k in ("cull_ms", "shade_ms", "project_ms", "bin_ms", "rasterize_ms"))
        print(f"{name:8} {median_ms:10.1f} {base_ms / median_ms:8.1f}x {psnr:8.1f} {err:8.2g} {rate:>10}  {stages}")
    print(f"work per frame: {counters.n_visible} visible, {counters.n_intersections} intersections"
          + (f", {counters.n_evaluations} Gaussian-pixel evaluations ({names[-1]})" if counters.n_evaluations else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
