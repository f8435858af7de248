"""The benchmark's outputs: a terminal table, a JSON report and a PNG plot."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from ..atomic import atomic_write
from .runner import ConfigResult, speedups

SCHEMA = "gscache-bench/1"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the gscache checkout, with "+dirty" for uncommitted changes (None if unknown)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def environment(device: torch.device) -> dict:
    env = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {p: _version(p) for p in ("gscache", "torch", "numpy", "gsplat", "cupy-cuda12x", "cupy-cuda13x")},
        "git_commit": git_commit(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def _finite(x):
    """JSON has no infinity: identical images are reported as psnr_db null with "exact": true."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _json_quality(q: dict) -> dict:
    """The quality figures with every infinite PSNR (identical images) as null, per frame and
    for the worst frame too, and "exact" saying whether the whole run was."""
    out = {k: _finite(v) if k.startswith("psnr") else v for k, v in q.items()}
    if "psnr_db" in q:
        out["exact"] = not math.isfinite(q["psnr_db"])
    if "frames" in q:
        out["frames"] = [_json_quality(f) for f in q["frames"]]
        out["worst_frame"] = _json_quality(q["worst_frame"])
        for f in (*out["frames"], out["worst_frame"]):
            f.pop("exact", None)
    return out


def build_report(results: list[ConfigResult], scene_info: dict, settings: dict, trajectory: str,
                 device: torch.device) -> dict:
    """The JSON report. ``speedup_vs_first`` / ``_no_reuse`` / ``_unfoveated`` are ratios of median
    frame times; ``speedups`` gives each with a bootstrap 95% interval and the per-frame paired
    ratios' min / median / max (meaningful when the run was interleaved: settings["interleaved"])."""
    spreads = speedups(results)
    configs = []
    for r in results:
        s = r.summary()
        sp = spreads[r.name]
        s["speedups"] = sp
        s["speedup_vs_first"] = sp["vs_first"]["ratio"]
        s["speedup_vs_no_reuse"] = sp["vs_no_reuse"]["ratio"] if "vs_no_reuse" in sp else None
        s["speedup_vs_unfoveated"] = sp["vs_unfoveated"]["ratio"] if "vs_unfoveated" in sp else None
        s["quality"] = _json_quality(s["quality"])
        configs.append(s)
    return {"schema": SCHEMA, "environment": environment(device), "scene": scene_info, "trajectory": trajectory,
            "settings": settings, "configs": configs}


def write_json(report: dict, path: Path) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(report, indent=2, allow_nan=False).encode())


def format_table(report: dict) -> str:
    env = report["environment"]
    machine = env.get("gpu") or env["cpu"]
    st = report["settings"]
    sc = report["scene"]
    size = (f"{sc['anchors']} anchors x {sc['offsets_per_anchor']} Gaussians, {sc['levels']} levels" if "anchors" in sc
            else f"{sc['gaussians']} Gaussians")
    how = "interleaved frame by frame" if st.get("interleaved", True) else "one configuration after another"
    lines = [
        f"{sc['source']}: {size}; {st['frames']} stereo frames of "
        f"{st['width']}x{st['height']} per eye ({report['trajectory']}), {how}; {machine}",
        f"{'config':22} {'median ms':>10} {'p95 ms':>8} {'FPS':>7} {'speed-up [95% CI]':>19} {'vs none':>7} {'PSNR dB':>8} "
        f"{'worst':>6} {'SSIM':>7} {'FLIP':>6} {'max err':>8} {'hits':>5} {'D':>4} {'peak MiB':>9} {'visible':>9} "
        f"{'isects':>9} {'evals':>10} {'reused':>7} {'raster':>7}",
    ]
    for c in report["configs"]:
        q = c["quality"]
        psnr_txt = "exact" if q.get("exact") else (f"{q['psnr_db']:.1f}" if q else "-")
        worst = q.get("worst_frame", {}).get("psnr_db")
        worst_txt = "-" if not q else ("exact" if worst is None else f"{worst:.1f}")
        w = c["work_per_frame"]
        evals = f"{w['gaussian_pixel_evaluations']:.3g}" if w["gaussian_pixel_evaluations"] else "-"
        vs_none = f"{c['speedup_vs_no_reuse']:6.2f}x" if c["speedup_vs_no_reuse"] else "      -"
        cache = c["cache"]
        hits = f"{cache['hit_rate']:5.0%}" if cache else "    -"
        depth = f"{cache['mean_depth']:4.1f}" if cache else "   -"
        lo, hi = c["speedups"]["vs_first"]["ci95"]
        pr = c.get("pixel_reuse")
        reuse = (f"{pr['tiles_reused_mean']:7.1%} {pr['pixels_rasterized_mean']:7.1%}" if pr else f"{'-':>7} {'-':>7}")
        lines.append(
            f"{c['name']:22} {c['median_ms']:10.1f} {c['p95_ms']:8.1f} {c['fps']:7.2f} "
            f"{c['speedup_vs_first']:6.2f}x [{lo:4.2f}-{hi:4.2f}] "
            f"{vs_none} {psnr_txt:>8} {worst_txt:>6} {q.get('ssim', float('nan')):7.4f} {q.get('flip', float('nan')):6.4f} "
            f"{q.get('max_abs_error', float('nan')):8.2g} "
            f"{hits} {depth} {c['peak_memory_bytes'] / 2**20:9.0f} {w['visible_gaussians']:9.0f} "
            f"{w['tile_intersections']:9.0f} {evals:>10} {reuse}"
        )
    foveated = [c for c in report["configs"] if "psnr_fovea_db" in c["quality"]]
    if foveated:
        lines.append("foveation (speed-up over the same configuration unfoveated [95% CI] (paired per-frame min-max); "
                     "PSNR dB / SSIM / FLIP of the fovea's exact rectangle, the periphery (the rest) and the whole "
                     "image):")

        def db(v):
            return "exact" if v is None else f"{v:.1f}"

        for c in foveated:
            q, sp = c["quality"], c["speedups"].get("vs_unfoveated")
            ratio = (f"{sp['ratio']:5.2f}x [{sp['ci95'][0]:.2f}-{sp['ci95'][1]:.2f}] "
                     f"({sp['paired_min']:.2f}-{sp['paired_max']:.2f})") if sp else "(no unfoveated run)"
            lines.append(f"  {c['name']:28} {ratio}; fovea {db(q['psnr_fovea_db'])} / {q['ssim_fovea']:.4f} / "
                         f"{q['flip_fovea']:.4f}, periphery {db(q['psnr_periphery_db'])} / {q['ssim_periphery']:.4f} / "
                         f"{q['flip_periphery']:.4f}, whole {db(q['psnr_db'])} / {q['ssim']:.4f} / {q['flip']:.4f}")
            paused = c.get("foveation_paused_share") or 0.0
            parts = []
            if c.get("drawn_per_region"):
                parts.append("drawn per frame: " + ", ".join(
                    f"{name} {d['gaussians_mean']:,.0f} gaussians / {d['intersections_mean']:,.0f} tile hits"
                    for name, d in c["drawn_per_region"].items()))
            if paused:
                parts.append(f"{paused:.0%} of frames unfoveated (the pay-off controller's probes, or it did not pay)")
            if parts:
                lines.append("  " + " " * 28 + " " + "; ".join(parts))
    multi = [c for c in report["configs"] if c.get("devices")]
    if multi:
        lines.append("devices (share of the tile cost, median device ms; balance = slowest / mean device time):")
        for c in multi:
            d = c["devices"]
            parts = [f"{x['name']} {x['cost_share']:.0%} {x['median_device_ms']:.1f} ms" for x in d["per_device"]]
            lines.append(f"  {c['name']:22} " + ", ".join(parts) + f"; balance {d['balance_median']:.2f}; "
                         f"plans {d['plans']}; recovered frames {d['recovered_frames']}")
    lines.append("median stage times (ms):")
    for c in report["configs"]:
        if c.get("devices"):
            continue  # a multi-device frame's stages ran on several devices: see the devices lines
        stages = " ".join(f"{k}={v:.1f}" for k, v in c["stages_median_ms"].items())
        if c.get("derive_share"):
            stages += f" (derive {c['derive_share']:.0%} of the frame time)"
        refreshes = ", ".join(f"{k} {v}" for k, v in c["cache"].get("refreshes", {}).items())
        lines.append(f"  {c['name']:22} {stages}" + (f"; refreshes: {refreshes}" if refreshes else ""))
    return "\n".join(lines)


def write_plot(report: dict, path: Path) -> None:
    """Frame time along the trajectory per configuration, and speed against PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_q) = plt.subplots(1, 2, figsize=(12, 4.5))
    for c in report["configs"]:
        ax_t.plot(range(len(c["frame_ms"])), c["frame_ms"], label=c["name"])
    ax_t.set_yscale("log")
    ax_t.set_xlabel("frame along the trajectory")
    ax_t.set_ylabel("stereo frame time (ms, log)")
    ax_t.set_title("frame time")
    ax_t.legend()
    finite = [c["quality"]["psnr_db"] for c in report["configs"] if c["quality"].get("psnr_db") is not None]
    exact_at = (max(finite) if finite else 60.0) + 5.0  # where identical-to-reference configs are drawn
    for c in report["configs"]:
        q = c["quality"]
        if not q:
            continue
        x = exact_at if q["exact"] else q["psnr_db"]
        # A legend rather than labels at the points: rungs of a ladder often sit on top of each other.
        ax_q.scatter([x], [c["fps"]], label=c["name"] + (" (exact)" if q["exact"] else ""), alpha=0.8)
    ax_q.set_yscale("log")
    ax_q.set_xlabel("PSNR vs exact reference (dB; exact plotted at the right)")
    ax_q.set_ylabel("FPS (stereo frames/s, log)")
    ax_q.set_title("speed against image error")
    if any(c["quality"] for c in report["configs"]):
        ax_q.legend(fontsize=7)
    env = report["environment"]
    fig.suptitle(f"{report['scene']['source']} - {env.get('gpu') or env['cpu']}", fontsize=9)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
