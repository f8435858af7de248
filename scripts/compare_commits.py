"""Frame times of the benchmark ladder in two checkouts, interleaved round by round on this
machine (for changes that must cost nothing measurable, such as a refactor).

Usage: python3 scripts/compare_commits.py BEFORE_DIR [AFTER_DIR] [--rounds 3] [--frames 24]
       [--scene PATH] [--size 512x512] [--configs cpu/none,...]
BEFORE_DIR / AFTER_DIR are checkouts of the repository (AFTER_DIR: this one by default), e.g. a
`git worktree add /tmp/before REV`. Each round runs `gscache bench` on the scene (default: the
demo scene; VR head motion, 512x512 per eye, the cpu ladder) in each checkout, alternating which
goes first; the table gives, per configuration, the median over rounds of each checkout's median
frame time and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = "cpu/none,cpu/stereo,cpu/approx,cpu/D2,cpu/D4,cpu/D8,cpu/dynamic"


def _package_links(root: Path) -> list[Path]:
    """A checkout imported through PYTHONPATH needs the folders that pyproject maps into gscache:
    links made for the run (ignored by git) and removed after it."""
    made = []
    for name, target in (("_cuda", "cuda"), ("scenes", "scenes"), ("viewer", "viewer")):
        link = root / "gscache" / name
        if not link.exists():
            link.symlink_to(Path("..") / target)
            made.append(link)
    return made


def bench(root: Path, frames: int, out: Path, scene: str | None, size: str, configs: str) -> dict[str, float]:
    # GSCACHE_KERNEL_DIR is the checkout's cuda/ (the folder of common.cuh) in every layout: flat
    # before the split into kernels/, host/ and simt/, split after; each checkout's loader reads its own.
    env = dict(os.environ, PYTHONPATH=str(root), GSCACHE_KERNEL_DIR=str(root / "cuda"))
    # No quality frames: only the frame times are compared (and the reference renders would dominate).
    code = ("import sys; from gscache.cli import main; sys.exit(main(['bench', *sys.argv[5:], '--configs', "
            "sys.argv[1], '--frames', sys.argv[2], '--size', sys.argv[4], '--quality-frames', '0', "
            "'--no-progress', '--out', sys.argv[3]]))")
    scene_args = [str(Path(scene).resolve())] if scene else []
    subprocess.run([sys.executable, "-c", code, configs, str(frames), str(out), size, *scene_args], env=env, cwd=root,
                   check=True, capture_output=True, text=True)
    report = json.loads((out / "bench.json").read_text())
    return {c["name"]: c["median_ms"] for c in report["configs"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path, nargs="?", default=REPO)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--scene", default=None, help="scene path (default: the embedded demo scene)")
    ap.add_argument("--size", default="512x512", help="per-eye WxH")
    ap.add_argument("--configs", default=CONFIGS)
    args = ap.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    links = [link for root in trees.values() for link in _package_links(root)]
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for name in order:
                    runs[name].append(bench(trees[name], args.frames, Path(tmp) / f"{name}{r}", args.scene, args.size,
                                            args.configs))
                    print(f"round {r + 1}/{args.rounds}: {name} done", file=sys.stderr)
    finally:
        for link in links:
            link.unlink()
    print(f"{'config':16s} {'before ms':>10s} {'after ms':>10s} {'after/before':>13s}")
    for cfg in runs["before"][0]:
        b = statistics.median(run[cfg] for run in runs["before"])
        a = statistics.median(run[cfg] for run in runs["after"])
        print(f"{cfg:16s} {b:10.1f} {a:10.1f} {a / b:13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
