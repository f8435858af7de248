"""``gscache generate``: write a procedural structured scene (the city or the demo square as
anchors) as an Octree-GS checkpoint folder."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import GscacheError
from ._common import at_least, positive

GENERATORS = ("structured-city", "structured-demo")


def add_parser(subparsers) -> None:
    g = subparsers.add_parser("generate", help="write a procedural structured scene as an Octree-GS checkpoint folder")
    g.add_argument("kind", choices=GENERATORS, help="structured-city: a city of streets and buildings (~470k "
                   "anchors, 4 levels of detail by default); structured-demo: the demo square as ~4k anchors")
    g.add_argument("out", help="the checkpoint folder to create (must not exist, or be empty)")
    g.add_argument("--blocks", type=at_least(1, int), default=6, help="structured-city: blocks per side (40 m each)")
    g.add_argument("--levels", type=at_least(1, int), default=4, help="structured-city: levels of detail")
    g.add_argument("--spacing", type=positive(float), default=1.0, help="structured-city: anchor spacing of the finest level, m")
    g.add_argument("--seed", type=at_least(0, int), default=0, help="layout, features and MLP weights")
    g.add_argument("--view-dependence", type=at_least(0.0, float), default=1.0,
                   help="structured-demo: scale of the colour MLP's view dependence (1: a mild sheen; 20: colours that "
                        "swing with the view as an untrained model's do)")
    g.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise GscacheError(f"{out}: exists and is not empty; choose a new folder")
    start = time.perf_counter()
    if args.kind == "structured-city":
        from ..scenes.structured_city import structured_city

        scene = structured_city(blocks=args.blocks, levels=args.levels, finest_spacing_m=args.spacing, seed=args.seed)
    else:
        from ..scenes import structured_demo

        scene = structured_demo(seed=args.seed, view_dependence=args.view_dependence)
    _write_in_place(scene, out)
    levels = ", ".join(f"L{level}: {int((scene.levels == level).sum())}" for level in range(scene.n_levels))
    print(f"wrote {out}: {scene.count} anchors x {scene.n_offsets} Gaussians ({levels}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def _write_in_place(scene, out: Path) -> None:
    """Write the checkpoint beside ``out`` and rename it into place: no half-written checkpoint is
    left behind."""
    import shutil
    import tempfile

    from ..atomic import umask
    from ..scene.checkpoint import write_structured

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700
        write_structured(scene, tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
