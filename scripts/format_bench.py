"""Load time and peak memory of every reader, and the loss of every writer.

For each source (the real scenes in ../shared/data, and a synthetic scene of --count Gaussians
with SH degree 3), the scene is written in every format gscache writes; each file is then
loaded in a fresh interpreter (so the peak is the reader's own), reporting the median load time
over --repeats loads and the peak resident memory over what `import gscache` already holds.
The loss table is `gscache convert`'s report (per-attribute error and render PSNR) per format.

    python3 scripts/format_bench.py                    # real scenes + 1M synthetic
    python3 scripts/format_bench.py --count 200000 --repeats 1 --no-loss
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = [("ply", ".ply", 3), ("compressed PLY", ".compressed.ply", 3), ("SPZ v3", ".spz", 3),
           ("SPZ v4", ".v4.spz", 4), ("splat", ".splat", 3)]

CHILD = r"""
import json, sys, time, warnings
import gscache
def peak_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1])
def rss_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1])
base = rss_kib()
warnings.simplefilter('ignore')
t = time.perf_counter()
s = gscache.load_scene(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "peak_mib": (peak_kib() - base) / 1024, "count": s.count, "scene_mib": s.nbytes / 2**20}))
"""


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_in_child(path: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = runs[0]
    best["s"] = statistics.median(r["s"] for r in runs)
    best["peak_mib"] = max(r["peak_mib"] for r in runs)
    return best


def synthetic(count: int, seed: int = 0):
    import numpy as np

    from gscache.scene.record import make_scene

    g = np.random.default_rng(seed)
    means = g.normal(0, 2.0, (count, 3)).astype(np.float32)
    scales = np.exp(g.uniform(-5, -1.5, (count, 3))).astype(np.float32)
    sh = np.clip(g.normal(0, 0.3, (count, 16, 3)), -0.95, 0.95).astype(np.float32)
    sh[:, 0] = g.uniform(-1.5, 1.5, (count, 3))
    return make_scene(means, g.normal(size=(count, 4)).astype(np.float32), scales,
                      g.uniform(0.05, 1, count).astype(np.float32), sh, source=f"synthetic {count:,} (SH 3)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("GSCACHE_DATA", str(REPO.parent / "shared" / "data")))
    p.add_argument("--count", type=int, default=1_000_000, help="Gaussians of the synthetic scene (0: none)")
    p.add_argument("--repeats", type=int, default=3, help="loads per file (median time, highest peak)")
    p.add_argument("--no-loss", action="store_true", help="skip the convert (loss) table")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    from tqdm import tqdm

    from gscache import load_scene, save_scene
    from gscache.convert import convert

    data = Path(args.data)
    sources = {name: data / name for name in ("playbot_sog", "plant.splat", "guitar.compressed.ply")
               if (data / name).exists()}
    results = {"cpu": cpu_name(), "loads": [], "loss": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.count:
            save_scene(synthetic(args.count), tmp / "synthetic.ply")
            sources[f"synthetic {args.count:,} SH 3"] = tmp / "synthetic.ply"
        jobs = []
        for name, src in sources.items():
            jobs.append((name, "as found", src))
            scene = load_scene(src)
            for fmt, suffix, version in TARGETS:
                target = tmp / f"{Path(name).name.split('.')[0].replace(' ', '_')}{suffix}"
                if target != src:
                    save_scene(scene, target, spz_version=version)
                jobs.append((name, fmt, target))
            del scene
        for name, fmt, path in tqdm(jobs, desc="loads", unit="file"):
            r = load_in_child(path, args.repeats)
            size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
            results["loads"].append({"source": name, "format": fmt, "file_mib": size / 2**20, **r})
        if not args.no_loss:
            for name, src in sources.items():
                for fmt, suffix, version in tqdm(TARGETS, desc=f"convert {name}", unit="format"):
                    rep = convert(src, tmp / f"loss{suffix}", spz_version=version, views=4)
                    results["loss"].append({**rep.as_dict(), "source": name, "format": fmt})
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    print_tables(results, args.repeats)
    return 0


def print_tables(results: dict, repeats: int) -> None:
    print(f"\nLoads ({results['cpu']}; median of {repeats} loads in a fresh interpreter; peak RSS over "
          "`import gscache`):")
    print("| source | file | MiB | Gaussians | load s | peak MiB | scene MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results["loads"]:
        print(f"| {r['source']} | {r['format']} | {r['file_mib']:.1f} | {r['count']:,} | {r['s']:.2f} | "
              f"{r['peak_mib']:.0f} | {r['scene_mib']:.0f} |")
    if results["loss"]:
        print("\nLoss (gscache convert; max / 99th percentile / RMS per attribute; render PSNR over 4 stereo views at 256x256):")
        print("| source | format | MiB | position mm | scale % | rotation deg | opacity | DC /255 | SH | PSNR min/mean dB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in results["loss"]:
            a = {x["name"]: x for x in r["attributes"]}

            def cell(key, scale=1.0, digits=3):
                if key not in a:
                    return "-"
                return (f"{a[key]['max'] * scale:.{digits}g} / {a[key]['p99'] * scale:.{digits}g} / "
                        f"{a[key]['rms'] * scale:.{digits}g}")

            print(f"| {r['source']} | {r['format']} | {r['bytes_out'] / 2**20:.2f} | {cell('position', 1000)} | "
                  f"{cell('scale (relative)', 100)} | {cell('rotation')} | {cell('opacity')} | {cell('colour (DC)')} | "
                  f"{cell('SH bands 1+')} | {min(r['view_psnr']):.1f} / {sum(r['view_psnr']) / len(r['view_psnr']):.1f} |")


if __name__ == "__main__":
    sys.exit(main())
