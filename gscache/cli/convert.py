"""``gscache convert``: write a scene in another format and print (optionally write as JSON) what
the format loses."""

from __future__ import annotations

from ..config import RenderConfig
from ..presets import UP_AXES, parse_size
from ._common import at_least


def add_parser(subparsers) -> None:
    c = subparsers.add_parser("convert", help="write a scene in another format and report what the format loses",
                              description="Formats by the target's name: .ply (Inria), .compressed.ply (PlayCanvas), "
                                          ".spz (Niantic), .splat (antimatter15). The report gives each attribute's "
                                          "quantisation error and the PSNR of renders of the converted scene against "
                                          "the original.")
    c.add_argument("source", help="any scene gscache reads (format from its content)")
    c.add_argument("target", help="the file to write (format from its name)")
    c.add_argument("--sh-degree", type=at_least(0, int), default=None, help="drop the SH bands above this degree")
    c.add_argument("--spz-version", type=int, choices=(3, 4), default=3,
                   help="SPZ: 3 (gzip, read by every SPZ loader) or 4 (a ZSTD stream per attribute)")
    c.add_argument("--views", type=at_least(0, int), default=4, help="stereo views rendered to compare (0: none)")
    c.add_argument("--size", default="256x256", help="per-eye WxH of the compared views")
    c.add_argument("--up", choices=sorted(UP_AXES), default="-y", help="the scene's up axis (for the orbit of views)")
    c.add_argument("--backend", default="auto", help="backend of the compared renders")
    c.add_argument("--device", default=None, help="torch device of the compared renders (default: cpu)")
    c.add_argument("--report", default=None, help="also write the report as JSON to this file")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run)


def run(args) -> int:
    import json

    from tqdm import tqdm

    from ..convert import convert

    bar = tqdm(total=args.views, desc="compare renders", unit="view", disable=args.views == 0 or args.no_progress)
    try:
        report = convert(args.source, args.target, sh_degree=args.sh_degree, spz_version=args.spz_version,
                         views=args.views, size=parse_size(args.size), up=UP_AXES[args.up],
                         config=RenderConfig(backend=args.backend, device=args.device or "cpu"), progress=bar.update)
    finally:
        bar.close()
    print(report.table())
    if args.report:
        from ..atomic import atomic_write

        with atomic_write(args.report) as f:
            f.write(json.dumps(report.as_dict(), indent=2).encode())
    return 0
