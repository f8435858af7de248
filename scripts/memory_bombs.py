"""Small inputs that ask for huge memory, each run in a child process with an address-space
limit; prints the outcome (refused with a GscacheError, or rendered) and the child's peak RSS.

  sog-count      a SOG whose meta.json declares 2^26 Gaussians, with 8192x8192 WebP images
  sog-image      a SOG of 1,000 Gaussians whose means_l.webp is 8192x8192 (a few kB of WebP)
  npz-inflate    a 1.4 MB .npz whose 'means3d' inflates to 120M x 3 float32 (1.4 GB)
  big-gaussians  20,000 large Gaussians filling a 1024x1024 stereo view (torch reference, cpu)
  8k-stereo      an 8000x8000 stereo frame; 16k-mono: a 16384x16384 mono frame

Usage: python3 scripts/memory_bombs.py [--limit-gib 8]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, sys, warnings
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path.insert(0, {repo!r})
warnings.simplefilter("ignore")
import torch
from gscache import GscacheError, RenderConfig, Renderer, StereoRig, load_scene
from gscache.camera import Camera
from gscache.trajectory import default_head_pose
def peak():  # VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
try:
{body}
    print(f"rendered | {{peak():.0f}}")
except GscacheError as exc:
    print(f"refused: {{str(exc)[:160]}} | {{peak():.0f}}")
except MemoryError:
    print(f"MemoryError (the limit) | {{peak():.0f}}")
"""

BIG_GAUSSIANS = """
    from tests._helpers import random_scene
    import dataclasses
    scene = random_scene(20000, seed=0)
    scene = scene.edited(scales=torch.full_like(scene.scales, 1.0))  # 1 m each, 3 m in front
    rig = StereoRig.symmetric(default_head_pose(scene), 1024, 1024, 90.0)
    Renderer(scene, RenderConfig(backend="{backend}")).render(rig)
"""


def _webp(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 255)).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def _sog(path: Path, count: int, big: str | None, side: int) -> None:
    """A SOG zip of ``count`` Gaussians whose images are ``side`` pixels square, except ``big``
    (8192 square); every image is one colour, so each is a few kB."""
    sys.path.insert(0, str(REPO))
    from tests.unit._sog_writer import encode_sog, write_sog_zip

    rng = np.random.default_rng(0)
    n = 16
    files = encode_sog(rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.uniform(-5, -1, (n, 3)),
                       rng.normal(size=(n, 3)), rng.uniform(size=n))
    meta = json.loads(files["meta.json"])
    meta["count"] = count
    files["meta.json"] = json.dumps(meta).encode()
    for name in [k for k in files if k.endswith(".webp")]:
        files[name] = _webp(8192 if big in (name, "all") else side)
    write_sog_zip(files, path)


def _npz_inflating(path: Path, rows: int) -> None:
    """An .npz whose deflated members inflate to ``rows`` x 3 float32 zeros (streamed: the
    generator never holds the array)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, dtype, cols in (("means3d", np.float32, 3), ("colors", np.uint8, 3)):
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                         "shape": (rows, cols)})
                chunk = bytes(np.dtype(dtype).itemsize * cols * (1 << 20))
                for _ in range(rows >> 20):
                    f.write(chunk)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit-gib", type=float, default=8.0, help="address-space limit of each child")
    args = ap.parse_args(argv)
    limit = int(args.limit_gib * 2**30)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _sog(tmp / "count.sog", 1 << 26, "all", 8192)
        _sog(tmp / "image.sog", 1000, "means_l.webp", 32)
        _npz_inflating(tmp / "inflate.npz", 120 << 20)
        cases = {
            "sog-count": (tmp / "count.sog", f"    load_scene({str(tmp / 'count.sog')!r})"),
            "sog-image": (tmp / "image.sog", f"    load_scene({str(tmp / 'image.sog')!r})"),
            "npz-inflate": (tmp / "inflate.npz", f"    load_scene({str(tmp / 'inflate.npz')!r})"),
            "big-gaussians torch": (None, BIG_GAUSSIANS.format(backend="torch").strip("\n")),
            "big-gaussians cpu": (None, BIG_GAUSSIANS.format(backend="cpu").strip("\n")),
            "8k-stereo": (None, "    from tests._helpers import random_scene\n    s = random_scene(100, seed=0)\n"
                                "    Renderer(s, RenderConfig(backend='cpu')).render("
                                "StereoRig.symmetric(default_head_pose(s), 8000, 8000, 90.0))"),
            "16k-mono": (None, "    from tests._helpers import random_scene\n    s = random_scene(100, seed=0)\n"
                               "    rig = StereoRig.symmetric(default_head_pose(s), 16384, 16384, 90.0)\n"
                               "    Renderer(s, RenderConfig(backend='cpu')).render("
                               "Camera.from_pose(default_head_pose(s), rig.left))"),
        }
        print(f"limit per child: {args.limit_gib:.1f} GiB of address space")
        print(f"{'input':22s} {'file size':>10s} {'peak RSS':>9s}  outcome")
        failures = 0
        for name, (path, body) in cases.items():
            code = CHILD.format(limit=limit, repo=str(REPO), body=body)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else \
                f"crashed (exit {out.returncode}): {out.stderr.strip()[-160:]} | nan"
            outcome, _, rss = line.rpartition(" | ")
            size = f"{path.stat().st_size / 1e3:.1f} kB" if path else "-"
            print(f"{name:22s} {size:>10s} {float(rss):7.0f} MiB  {outcome}")
            failures += not outcome.startswith(("refused", "rendered"))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
