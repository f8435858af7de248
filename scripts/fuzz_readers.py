"""A fuzz campaign over the scene readers, with the outcome of every input counted: each real
scene of ../shared/data (and generated PLY and point-cloud files) is mutated in many ways
(truncated, bytes flipped, garbage inserted, digits of the header changed, zeros spliced in)
and loaded in a subprocess with a memory and time limit. Folder scenes (the unbundled SOG
playbot, a structured checkpoint with its PLY, MLPs and cfg_args) get one member mutated per
input. Outcomes per category:

  loads        a Scene came back
  clear error  GscacheError naming the file (or folder) and what in it is wrong
  generic      GscacheError from load_scene's catch-all ("damaged or unsupported ..."): it
               names the file and the exception, but no reader check named the field
  other        any other exception, a GscacheError that does not name the file, a crash, a
               hang past the time limit, or the memory limit

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
    except GscacheError as exc:
        msg = str(exc).replace(chr(10), " ")
        if sys.argv[2] not in msg:
            print(f"other: the error does not name the file: {{msg}}"[:300])
        elif "damaged or unsupported" in msg:
            print(f"generic: {{msg}}"[:400])
        else:
            print(f"clear error: {{msg}}"[:400])
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


def run(path: Path, named: Path) -> str:
    """Load ``path`` in a child process; its error must name ``named`` (the file, or the folder)."""
    try:
        out = subprocess.run([sys.executable, "-c", CHILD.format(mem=MEMORY_LIMIT), str(path), str(named)],
                             capture_output=True, text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        return f"other: no answer within {TIME_LIMIT_S} s"
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else f"other: exit {out.returncode} {out.stderr[-200:]}"
    return line


def sources(data: Path, tmp: Path) -> dict[str, Path]:
    """Name -> a scene file, or a scene folder (mutated one member at a time)."""
    sys.path.insert(0, str(REPO))
    from gscache.scene import save_scene, write_structured
    from scenes import structured_demo
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
        out["playbot_sog/"] = data / "playbot_sog"
    write_structured(structured_demo(seed=0), tmp / "structured")
    out["structured/"] = tmp / "structured"
    save_scene(random_scene(300, seed=1, sh_degree=3), tmp / "generated.ply")
    out["generated.ply"] = tmp / "generated.ply"
    for name, version in (("generated.spz (v3)", 3), ("generated.spz (v4)", 4)):
        save_scene(random_scene(300, seed=2, sh_degree=3), tmp / f"generated_v{version}.spz", spz_version=version)
        out[name] = tmp / f"generated_v{version}.spz"
    save_scene(random_scene(700, seed=3, sh_degree=3), tmp / "generated.compressed.ply")
    out["generated.compressed.ply (SH 3)"] = tmp / "generated.compressed.ply"
    return out


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200, help="mutated inputs per source file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=0, help="print this many distinct error messages per source")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("GSCACHE_DATA", REPO.parent / "shared" / "data")))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    table: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    others = []
    messages: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        srcs = sources(args.data, tmp)
        bar = tqdm(total=args.cases * len(srcs), desc="fuzz", unit="input")
        for name, path in srcs.items():
            members = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix != ".txt") \
                if path.is_dir() else [None]
            for case in range(args.cases):
                member = members[int(rng.integers(len(members)))]
                if member is None:
                    target = named = tmp / f"fuzz{path.suffix or '.bin'}"
                    data = path.read_bytes()
                else:  # a copy of the folder with one member mutated
                    named = tmp / "fuzzdir"
                    shutil.rmtree(named, ignore_errors=True)
                    shutil.copytree(path, named)
                    target = named / member
                    data = target.read_bytes()
                category, mutated = next(mutations(data, rng, 1))
                target.write_bytes(mutated)
                outcome = run(named, named)
                cls = outcome.split(":")[0]
                key = (name, category if member is None else f"{member}: {category}")
                table[key][cls] += 1
                messages[(name, cls)].append(outcome)
                if cls == "other":
                    others.append(f"{name} / {key[1]}: {outcome}")
                bar.update()
        bar.close()
    classes = ("loads", "clear error", "generic", "other")
    print(f"{'source':22s} {'mutation':34s} " + " ".join(f"{c:>11s}" for c in classes))
    for (name, category), c in sorted(table.items()):
        print(f"{name:22s} {category:34s} " + " ".join(f"{c[k]:11d}" for k in classes))
    total = sum(table.values(), collections.Counter())
    print(f"{'all':57s} " + " ".join(f"{total[k]:11d}" for k in classes))
    if args.examples:
        for (name, cls), lines in sorted(messages.items()):
            if cls in ("clear error", "generic"):
                for line in sorted(set(lines))[:args.examples]:
                    print(f"  {name} {line}"[:300])
    for line in others[:20]:
        print("  " + line)
    return 1 if others else 0


if __name__ == "__main__":
    raise SystemExit(main())
