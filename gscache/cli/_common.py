"""What the commands share: argparse types that check ranges, the text parsers of --background,
--cfg-args and --gaze, the scene options and their loading, PNG writing and memory readings."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..api import open_scene
from ..errors import GscacheError


def at_least(low, kind):
    """An argparse type: a number of ``kind`` that is >= low (argparse prints the message)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected a value >= {low}, got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def positive(kind):
    """An argparse type: a finite number of ``kind`` that is > 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (value > 0 and value < float("inf")):
            raise argparse.ArgumentTypeError(f"expected a finite value > 0, got {text!r}")
        return value
    parse.__name__ = kind.__name__
    return parse


def parse_color(text: str) -> tuple[float, float, float]:
    try:
        rgb = tuple(float(v) for v in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
        raise GscacheError(f"--background: expected three numbers in [0, 1] like 0,0,0, got {text!r}")
    return rgb


def parse_cfg_overrides(text: str | None) -> dict | None:
    """``--cfg-args fork=2,dist2level=round`` -> {"fork": 2, "dist2level": "round"} (values as
    Python literals where they are, else text)."""
    if text is None:
        return None
    import ast

    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise GscacheError(f"--cfg-args: expected NAME=VALUE[,NAME=VALUE...], got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def parse_gaze_text(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise GscacheError(f"--gaze: expected X,Y fractions of the image (e.g. 0.5,0.5), got {text!r}") from None
    return x, y


def add_scene_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iteration", type=at_least(0, int), default=None,
                   help="a training output folder: load point_cloud/iteration_N (default: the highest)")
    p.add_argument("--cfg-args", default=None, metavar="NAME=VALUE,...",
                   help="Octree-GS / Scaffold-GS: cfg_args fields to override or supply, e.g. fork=2,dist2level=round")
    p.add_argument("--appearance-index", type=at_least(0, int), default=0,
                   help="models with appearance embeddings: the one novel views use (default 0)")


def load_scene(args):
    """The scene that ``args.scene`` and the options of :func:`add_scene_options` name."""
    return open_scene(args.scene, iteration=args.iteration, cfg_args=parse_cfg_overrides(args.cfg_args))


def write_png(rgb, path: Path) -> None:
    from PIL import Image

    from ..atomic import atomic_write

    suffix = path.suffix.lower()
    if suffix != ".png":
        raise GscacheError(f"--out: expected a .png file name, got {str(path)!r}")
    with atomic_write(path) as f:
        Image.fromarray(rgb).save(f, format="PNG")


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process, MiB (Linux; zeros elsewhere)."""
    import resource

    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        current = 0.0
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
