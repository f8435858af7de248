"""Mutation check of the kernel tests: plant known kernel bugs one at a time and report which
the test suite catches, and in which pass.

Each mutant is one textual change of cuda/kernels/*.cu, cuda/common.cuh or
gscache/backends/cuda.py, applied to a copy of the repository. The copy's suite runs in up to
three passes, stopping at the first that fails (the bug is caught):

  plain    the kernel tests with the emulated cuda backend in its default random serial
           schedule (and the cpu backend, which shares common.cuh)
  address  the cuda-sim tests with the kernels built with AddressSanitizer + UBSan
  thread   the cuda-sim tests with ThreadSanitizer and the free-running schedule

Usage:  python3 scripts/mutation_check.py [--only NAME ...] [--list] [--out mutation.json]
Exit status 1 when any mutant survives every pass. It takes a few minutes per surviving
mutant and well under a minute per caught one on a 2-core machine; CI runs only
tests/simt/test_mutants.py, which checks that every mutant still applies to the sources.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository
    old: str  # must occur exactly once
    new: str
    what: str


MUTANTS = [
    Mutant("raster-no-batch-barrier", "cuda/kernels/rasterize.cu", "        __syncthreads();\n", "",
           "remove the barrier between loading a batch of splats into shared memory and reading it"),
    Mutant("raster-no-reuse-barrier", "cuda/kernels/rasterize.cu", "if (__syncthreads_count(done) == n) break;",
           "if (done && !done) break;",
           "remove the barrier before the next batch's loads (and the tile's early exit with it): a race"),
    Mutant("raster-early-return", "cuda/kernels/rasterize.cu", "    const int start = p.ranges[2 * tile]",
           "    if (!inside) return;\n    const int start = p.ranges[2 * tile]",
           "return before the barriers for pixels outside the image (diverges at sizes that are not tile "
           "multiples)"),
    Mutant("raster-no-pixel-stop", "cuda/kernels/rasterize.cu", "j < count && !done; ++j", "j < count; ++j",
           "drop the early-exit condition of a finished pixel"),
    Mutant("raster-batch-bound", "cuda/kernels/rasterize.cu", "        if (idx < end) {", "        if (idx <= end) {",
           "off-by-one bounds test of a batch's loads (reads one intersection past the tile)"),
    Mutant("raster-shared-undersized", "gscache/backends/cuda.py", "shared_mem=ts * ts * SPLAT_FLOATS * 4",
           "shared_mem=ts * ts * (SPLAT_FLOATS - 1) * 4", "launch rasterize with too little shared memory"),
    Mutant("raster-one-eye", "gscache/backends/cuda.py", "(bins.tiles_x, bins.tiles_y, E), (ts, ts)",
           "(bins.tiles_x, bins.tiles_y, 1), (ts, ts)", "a grid that covers only the first eye"),
    Mutant("bin-count-bounds", "cuda/kernels/bin.cu", "    if (f >= (long long)p.E * p.V) return;\n    int lo[2], hi[2];\n    p.counts",
           "    if (f > (long long)p.E * p.V) return;\n    int lo[2], hi[2];\n    p.counts",
           "off-by-one bounds test in bin_count_kernel (one thread past the end reads and writes)"),
    Mutant("bin-emit-eye-stride", "cuda/kernels/bin.cu", "const long long tile = eye * T + ", "const long long tile = eye * (T - 1) + ",
           "wrong stride of the eye in the tile id"),
    Mutant("bin-ranges-last-end", "cuda/kernels/bin.cu", "gs_tile_lower_bound(p.keys, p.n_isect, t + 1)",
           "gs_tile_lower_bound(p.keys, p.n_isect - 1, t + 1)", "off-by-one end of the last non-empty tile"),
    Mutant("bin-ranges-empty-tiles", "cuda/kernels/bin.cu", "    p.ranges[2 * t] = (int)gs_tile_lower_bound(p.keys, p.n_isect, t);",
           "    if (t > 0 && gs_tile_lower_bound(p.keys, p.n_isect, t) == gs_tile_lower_bound(p.keys, p.n_isect, t + 1)) {\n"
           "        p.ranges[2 * t] = p.ranges[2 * t + 1] = 0;\n        return;\n    }\n"
           "    p.ranges[2 * t] = (int)gs_tile_lower_bound(p.keys, p.n_isect, t);",
           "the old contract bug: empty tiles after non-empty ones written as (0, 0)"),
    Mutant("shade-sh-stride", "cuda/kernels/shade.cu", "p.sh + (long long)p.K * 3 * i", "p.sh + (long long)p.K * i",
           "wrong stride between Gaussians' SH coefficients"),
    Mutant("project-conic-stride", "cuda/kernels/project.cu", "p.conics + 3 * f", "p.conics + 2 * f",
           "wrong stride of the conics output"),
    Mutant("blend-depth-weight", "cuda/common.cuh", "    depth_acc += w * depth;", "    depth_acc += alpha * depth;",
           "depth accumulated without the transmittance"),
    Mutant("derive-no-weight-barrier", "cuda/kernels/derive.cu",
           "    for (int i = threadIdx.x; i < n_weights; i += blockDim.x) s_weights[i] = weights[i];\n    __syncthreads();",
           "    for (int i = threadIdx.x; i < n_weights; i += blockDim.x) s_weights[i] = weights[i];",
           "remove the barrier after staging the MLP weights in shared memory"),
    Mutant("derive-copy-stride", "cuda/kernels/derive.cu", "i += blockDim.x) s_weights[i]", "i += blockDim.x + 1) s_weights[i]",
           "wrong stride of the weight-staging loop (some weights never copied)"),
    Mutant("derive-early-return", "cuda/kernels/derive.cu",
           "    const float* w = gs_stage_weights(p.weights, p.n_weights, p.use_shared);\n    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= p.n) return;",
           "    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= p.n) return;\n    const float* w = gs_stage_weights(p.weights, p.n_weights, p.use_shared);",
           "return before the weight-staging barrier in derive_count_kernel (anchor counts not a multiple of the block)"),
    Mutant("derive-shared-limit", "gscache/backends/cuda.py", "use_shared = n_weights * 4 <= SHARED_MEM_LIMIT",
           "use_shared = n_weights * 4 <= 8 * SHARED_MEM_LIMIT", "ask for more shared memory than a launch may have"),
    Mutant("reproject-no-depth-test", "cuda/common.cuh", "fabs(zt - zs) <= p.depth_tolerance * zs",
           "fabs(zt - zs) <= 1e30 * zs", "sample across silhouettes: drop the taps' depth agreement test"),
    Mutant("reproject-splat-bounds", "cuda/common.cuh", "x >= 0.0 && x < p.width && y >= 0.0 && y < p.height",
           "x >= 0.0 && x <= p.width && y >= 0.0 && y < p.height",
           "off-by-one bounds test of the depth splat (writes one pixel past a row, or past the buffer)"),
    Mutant("raster-mask-inverted", "cuda/kernels/rasterize.cu", "(p.pixel_mask && !p.pixel_mask[",
           "(p.pixel_mask && p.pixel_mask[", "draw the pixels a pixel mask leaves out, and not the wanted ones"),
    Mutant("stats-invalid-counted", "cuda/common.cuh", "            if (!p.valid[i]) continue;\n            const int xl",
           "            const int xl", "tile statistics over the pixels the warp refused too"),
    Mutant("stats-neighbour-unclamped", "cuda/common.cuh", "xr = x + 1 < p.width ? x + 1 : x;", "xr = x + 1;",
           "the right neighbour of a row's last pixel read past the row (or the buffer)"),
    Mutant("composite-tile-flag", "cuda/common.cuh", "const bool reused = p.reused[t] != 0;",
           "const bool reused = p.reused[t / 2] != 0;", "the composite reads another tile's reuse flag"),
    Mutant("composite-truth-count", "cuda/common.cuh", "                count += 1.0;", "                count += 2.0;",
           "the measured error averaged over twice the pixels"),
    Mutant("fovea-band-skipped", "cuda/common.cuh", "out[s * i + o] = band ? gs_lerp(up, out[s * i + o], w) : up;",
           "out[s * i + o] = up;", "the band not blended: the periphery up to the fovea's rectangle"),
    Mutant("fovea-upsample-far-tap", "cuda/common.cuh", "*i1 = k < n - 1 ? k + 1 : k;", "*i1 = k + 1;",
           "the upsampling's far neighbour read past the last row or column"),
    Mutant("scale-low-pass-scaled", "cuda/common.cuh", "const float a = (float)(sx * sx * (C * inv - eps) + eps);",
           "const float a = (float)(sx * sx * (C * inv));",
           "the periphery's low-pass term scaled with the splat instead of added in its own pixels"),
    Mutant("scale-means-y-by-sx", "cuda/common.cuh", "m[1] = p.means2d[2 * f + 1] * p.sy;",
           "m[1] = p.means2d[2 * f + 1] * p.sx;", "the centres' rows scaled by the width's ratio"),
    Mutant("threads-per-block", "gscache/backends/cuda.py", "THREADS = 256 ", "THREADS = 2048 ",
           "a block size over the hardware limit"),
]

# test_mutants.py checks the mutants against the (here mutated) sources: it would "catch" every one.
KERNEL_TESTS = ["tests/backends", "tests/simt", "tests/unit/test_cache.py", "tests/unit/test_reproject.py",
                "tests/unit/test_pixel_reuse.py", "--ignore=tests/simt/test_mutants.py"]
SIM_TESTS = ["tests/backends/test_kernel_matrix.py", "tests/backends/test_stages.py", "tests/backends/test_derive.py",
             "tests/backends/test_fovea_composite.py", "tests/backends/test_scale_projection.py",
             "tests/unit/test_reproject.py", "tests/unit/test_pixel_reuse.py"]


def _lib(name: str) -> str:
    return subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()


def passes() -> dict[str, tuple[list[str], dict[str, str]]]:
    libstdcxx = _lib("libstdc++.so")  # preloaded too, so the sanitizers' C++ interceptors resolve
    return {
        "plain": (KERNEL_TESTS, {}),
        # --capture=sys: a sanitizer's report goes straight to stderr, not into a capture lost at the abort.
        "address": (SIM_TESTS + ["--capture=sys", "-k", "cuda-sim or schedule or derivation"],
                    {"LD_PRELOAD": f"{_lib('libasan.so')} {libstdcxx}", "ASAN_OPTIONS": "detect_leaks=0",
                     "GSCACHE_SIMT_SANITIZE": "address"}),
        "thread": (SIM_TESTS + ["--capture=sys", "-k", "(cuda-sim or schedule or derivation) and not plant"],
                   {"LD_PRELOAD": f"{_lib('libtsan.so')} {libstdcxx}",
                    "TSAN_OPTIONS": "ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66",
                    "GSCACHE_SIMT_SANITIZE": "thread", "GSCACHE_SIMT_SCHEDULE": "free"}),
    }


def apply(root: Path, m: Mutant) -> None:
    path = root / m.path
    text = path.read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"mutant {m.name}: its text occurs {text.count(m.old)} times in {m.path}, not once")
    path.write_text(text.replace(m.old, m.new))


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)


def run(root: Path, args: list[str], extra: dict[str, str], cache: Path) -> tuple[int, str, float]:
    env = dict(os.environ, PYTHONPATH=str(root), GSCACHE_KERNEL_DIR=str(root / "cuda"), GSCACHE_CACHE=str(cache),
               PYTHONDONTWRITEBYTECODE="1", **extra)
    data = REPO.parent / "shared" / "data"
    if data.is_dir():
        env.setdefault("GSCACHE_DATA", str(data))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR", "Fatal Python error")) or "Sanitizer:" in ln]
    return proc.returncode, (failed[0] if failed else lines[-1] if lines else "")[:200], time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    ap.add_argument("--passes", nargs="*", choices=["plain", "address", "thread"],
                    help="run only these passes (default: all, in order, up to the first that catches)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--out", type=Path, default=Path("mutation.json"), help="JSON report")
    args = ap.parse_args(argv)
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:26s} {m.path:26s} {m.what}")
        return 0
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    results = []
    for m in tqdm(chosen, desc="mutants", unit="mutant"):
        with tempfile.TemporaryDirectory(prefix=f"gs_mutant_{m.name}_") as tmp:
            root = Path(tmp) / "repo"
            copy_repo(root)
            apply(root, m)
            caught_by, detail, seconds = None, "", 0.0
            for name, (tests, extra) in passes().items():
                if args.passes and name not in args.passes:
                    continue
                rc, detail, took = run(root, tests, extra, Path(tmp) / "cache")
                seconds += took
                if rc not in (0, 5):  # 5: nothing collected, which no pass here should be
                    caught_by = name
                    break
            results.append({"mutant": m.name, "file": m.path, "what": m.what, "caught_by": caught_by,
                            "detail": detail, "seconds": round(seconds, 1)})
            tqdm.write(f"{m.name:26s} {'caught by ' + caught_by if caught_by else 'SURVIVED':18s} {detail}")
    caught = sum(r["caught_by"] is not None for r in results)
    print(f"\n{caught} of {len(results)} planted kernel bugs caught")
    for name in passes():
        print(f"  {name:8s} {sum(r['caught_by'] == name for r in results)}")
    args.out.write_text(json.dumps({"caught": caught, "planted": len(results), "mutants": results}, indent=1))
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
