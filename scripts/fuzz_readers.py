"""A fuzz campaign over the scene readers, with the outcome of every input counted: each real
scene of ../shared/data (and generated PLY and point-cloud files) is mutated in many ways
(truncated, bytes flipped, garbage inserted, digits of the header changed, zeros spliced in)
and loaded in a subprocess with a memory and time limit. Outcomes per category:

  loads        a Scene came back
  clear error  GscacheError (naming the file)
  other        any other exception, a crash, a hang past the time limit, or the memory limit

Usage: python3 scripts/fuzz_readers.py [--cases 200] [--seed 0] [--data DIR]
Exit status 1 when any input ends as "other".
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 6 << 30
TIME_LIMIT_S = 60
CHILD = r"""
import resource, sys, warnings
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
from gscache import GscacheError, load_scene
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        load_scene(sys.argv[1]); print("loads")
    except GscacheError:
        print("clear error")
    except MemoryError:
        print("other: MemoryError")
    except Exception as exc:
        print(f"other: {{type(exc).__name__}}: {{exc}}"[:300])
"""


def mutations(data: bytes, rng: np.random.Generator, n: int):
    for _ in range(n):
        kind = int(rng.integers(5))
        b = bytearray(data)
        if kind == 0:
            yield "truncated", bytes(b[: int(rng.integers(0, len(b)))])
        elif kind == 1:
            for pos in rng.integers(0, len(b), size=int(rng.integers(1, 32))):
                b[pos] = int(rng.integers(256))
            yield "bytes flipped", bytes(b)
        elif kind == 2:
            pos = int(rng.integers(0, len(b)))
            yield "garbage inserted", bytes(b[:pos] + rng.bytes(int(rng.integers(1, 256))) + b[pos:])
        elif kind == 3:
            for pos in range(min(400, len(b))):
                if 48 <= b[pos] <= 57 and rng.random() < 0.3:
                    b[pos] = 48 + int(rng.integers(10))
            yield "header numbers", bytes(b)
        else:
            third = len(b) // 3  # a third of zeros spliced in after the first third (the file grows)
            yield "zeros spliced in", bytes(b[:third]) + b"\0" * (len(b) - 2 * third) + bytes(b[2 * third:])


def run(path: Path) -> str:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD.format(mem=MEMORY_LIMIT), str(path)], capture_output=True,
                             text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        return f"other: no answer within {TIME_LIMIT_S} s"
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else f"other: exit {out.returncode} {out.stderr[-200:]}"
    return line


def sources(data: Path, tmp: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO))
    from gscache.scene import save_scene
    from tests._helpers import random_scene

    out = {}
    for name in ("plant.splat", "garden_points.npz", "guitar.compressed.ply"):
        if (data / name).exists():
            out[name] = data / name
    if (data / "playbot_sog").is_dir():
        zipped = tmp / "playbot.sog"
        shutil.make_archive(str(tmp / "playbot"), "zip", data / "playbot_sog")
        (tmp / "playbot.zip").rename(zipped)
        out["playbot.sog"] = zipped
    save_scene(random_scene(300, seed=1, sh_degree=3), tmp / "generated.ply")
    out["generated.ply"] = tmp / "generated.ply"
    return out


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200, help="mutated inputs per source file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("GSCACHE_DATA", REPO.parent / "shared" / "data")))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    table: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    others = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        srcs = sources(args.data, tmp)
        bar = tqdm(total=args.cases * len(srcs), desc="fuzz", unit="input")
        for name, path in srcs.items():
            data = path.read_bytes()
            target = tmp / f"fuzz{path.suffix or '.bin'}"
            for category, mutated in mutations(data, rng, args.cases):
                target.write_bytes(mutated)
                outcome = run(target)
                table[(name, category)][outcome.split(":")[0]] += 1
                if outcome.startswith("other"):
                    others.append(f"{name} / {category}: {outcome}")
                bar.update()
        bar.close()
    print(f"{'source':24s} {'mutation':18s} {'loads':>6s} {'clear error':>12s} {'other':>6s}")
    for (name, category), c in sorted(table.items()):
        print(f"{name:24s} {category:18s} {c['loads']:6d} {c['clear error']:12d} {c['other']:6d}")
    total = sum(table.values(), collections.Counter())
    print(f"{'all':43s} {total['loads']:6d} {total['clear error']:12d} {total['other']:6d}")
    for line in others[:20]:
        print("  " + line)
    return 1 if others else 0


if __name__ == "__main__":
    raise SystemExit(main())
