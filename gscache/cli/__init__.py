"""The command line, ``gscache COMMAND``: :func:`main` and the parser, assembled from one module per
command (render, bench, view, generate, convert, info), each with its ``add_parser(subparsers)`` and
its ``run(args) -> int``; _common holds what they share. distributed is the torchrun entry point
(``torchrun ... -m gscache.cli.distributed``), not a subcommand.

argparse rather than a config-driven CLI library: the commands take a handful of flat options,
and argparse gives clear errors with no extra dependency.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import GscacheError, GscacheRuntimeError, GscacheWarning
from . import bench, convert, generate, info, render, view

COMMANDS = (render, bench, view, generate, convert, info)  # in the order `gscache --help` lists them


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gscache", description="Cache-centric 3DGS renderer for VR stereo.")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line message (or the help)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with warnings.catch_warnings():  # restores showwarning and the filters afterwards
            warnings.simplefilter("always", GscacheWarning)
            warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
            return args.func(args)
    except GscacheError as exc:
        print(f"gscache {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be read or written: the user's to fix
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"gscache {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except GscacheRuntimeError as exc:
        print(f"gscache {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gscache {args.command}: interrupted", file=sys.stderr)
        return 130
