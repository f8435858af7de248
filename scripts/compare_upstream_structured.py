"""gscache against upstream Octree-GS / Scaffold-GS on the checkpoints and dumps that
scripts/upstream_structured/make.py writes with the upstream code itself: for every
configuration and camera, the anchors the level of detail selects and the Gaussians derived from
upstream's selection (torch reference and the fused cpu kernel), attribute by attribute.

Usage: python3 scripts/compare_upstream_structured.py [--data DIR] [configs...]
Exit status 1 when any camera differs beyond float rounding (a different anchor or Gaussian
count, or an attribute off by more than 1e-5).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def _camera(entry: dict):
    from gscache.camera import Camera, Intrinsics

    intr = Intrinsics(entry["fx"], entry["fy"], entry["cx"], entry["cy"], entry["width"], entry["height"])
    return Camera(intr, torch.tensor(entry["W2C"], dtype=torch.float32))


def _max_diff(ours: torch.Tensor, theirs: np.ndarray) -> float:
    if ours.shape[0] != theirs.shape[0]:
        return float("inf")
    return float((ours.reshape(theirs.shape) - torch.from_numpy(theirs)).abs().max()) if ours.numel() else 0.0


def compare(folder: Path, derive_fns: dict) -> list[dict]:
    from gscache import load_scene
    from gscache.stages.derive import lod_mask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scene = load_scene(folder / "model")
    cams = json.loads((folder / "cameras.json").read_text())["cameras"]
    rows = []
    for i, entry in enumerate(cams):
        up = np.load(folder / f"cam{i}.npz")
        uid = int(up["uid"])
        # Upstream's camera centre (the float32 inverse of its view matrix) and ours.
        centre = torch.from_numpy(up["camera_center"]).float()
        ours_centre = _camera(entry).position.float()
        lod = lod_mask(scene, centre).numpy()
        lod_own = lod_mask(scene, ours_centre).numpy()
        row = {"config": folder.name, "cam": i, "iteration": int(up["loaded_iter"]),
               "anchors": int(up["anchor_mask"].sum()), "lod_diff": int((lod != up["anchor_mask"]).sum()),
               "lod_diff_own_centre": int((lod_own != up["anchor_mask"]).sum()),
               "centre_diff": float((ours_centre - centre).abs().max()), "gaussians": int(up["xyz"].shape[0])}
        ids = torch.from_numpy(np.nonzero(up["anchor_mask"])[0]).long()
        for name, fn in derive_fns.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                derived = fn(scene, ids, centre, uid if scene.mlps.appearance is not None else 0)
            colour = 0.5 + 0.28209479177387814 * derived.sh[:, 0]
            diffs = {"xyz": _max_diff(derived.means, up["xyz"]), "color": _max_diff(colour, up["color"]),
                     "opacity": _max_diff(derived.opacities, up["opacity"]),
                     "scaling": _max_diff(derived.scales, up["scaling"]), "rot": _max_diff(derived.quats, up["rot"])}
            row[name] = (derived.count, max(diffs.values()), diffs)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from gscache.backends import get
    from gscache.stages.derive import derive_anchors

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "upstream_structured_out",
                    help="the --out folder of scripts/upstream_structured/make.py")
    ap.add_argument("configs", nargs="*", help="configurations (default: every folder with cameras.json)")
    args = ap.parse_args(argv)
    folders = [args.data / c for c in args.configs] if args.configs else \
        sorted(p.parent for p in args.data.glob("*/cameras.json"))
    if not folders:
        print(f"{args.data}: no upstream dumps (run scripts/upstream_structured/make.py first)", file=sys.stderr)
        return 2
    fns = {"reference": derive_anchors, "cpu fused": get("cpu").derive}
    bad = 0
    print(f"{'config':7s} {'cam':>3s} {'iter':>6s} {'anchors':>7s} {'LOD diff':>8s} {'(own centre)':>12s} "
          f"{'gaussians':>9s} " + " ".join(f"{n + ' count / max err':>26s}" for n in fns))
    for folder in folders:
        for r in compare(folder, fns):
            cells = []
            for name in fns:
                count, err, _ = r[name]
                cells.append(f"{count:>9d} / {err:9.2e}".rjust(26))
                bad += count != r["gaussians"] or not err <= TOLERANCE
            bad += r["lod_diff"] != 0
            print(f"{r['config']:7s} {r['cam']:3d} {r['iteration']:6d} {r['anchors']:7d} {r['lod_diff']:8d} "
                  f"{r['lod_diff_own_centre']:12d} {r['gaussians']:9d} " + " ".join(cells))
    print("all cameras agree" if not bad else f"{bad} disagreements")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
