"""The import graph of the gscache package against its layers: cycles, imports from a lower layer
to a higher one, and the largest modules and functions.

Layers, lowest first (a module may import from its own layer and the ones below, never above):

  0 records   records, camera, config, errors, presets, scene/*, scenes/*, sh, trajectory, ...
  1 stages    stages/*, cache
  2 backends  backends/*
  3 pipeline  pipeline, pixel_reuse
  4 renderer  renderer
  5 multi     multi/* (the multi-device renderer, its devices and ranks)
  6 api       api, the package itself (gscache/__init__)
  7 faces     cli/* (the commands and the torchrun entry point cli/distributed), convert, bench/*, viewer/*

Every import counts, at module level or inside a function (an import hidden in a function still
makes the dependency). Usage: python3 scripts/import_graph.py [--json FILE]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Source folders of the installed package names (pyproject's package-dir).
ROOTS = {"gscache": REPO / "gscache", "gscache.scenes": REPO / "scenes", "gscache.viewer": REPO / "viewer",
         "gscache._cuda": REPO / "cuda"}
LAYERS = ["records", "stages", "backends", "pipeline", "renderer", "multi", "api", "faces"]
RULES = [  # (module-name prefix, layer); the longest matching prefix wins
    ("gscache", "records"),
    ("gscache.stages", "stages"), ("gscache.cache", "stages"),
    ("gscache.backends", "backends"),
    ("gscache.pipeline", "pipeline"), ("gscache.pixel_reuse", "pipeline"),
    ("gscache.renderer", "renderer"),
    ("gscache.multi", "multi"),
    ("gscache.api", "api"), ("gscache.__init__", "api"),
    ("gscache.cli", "faces"), ("gscache.bench", "faces"), ("gscache.convert", "faces"), ("gscache.viewer", "faces"),
]


def layer_of(module: str) -> str:
    best = max((p for p, _ in RULES if module == p or module.startswith(p + ".")), key=len)
    return dict(RULES)[best]


def modules() -> dict[str, Path]:
    out = {}
    for pkg, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts]
            name = ".".join([pkg, *parts])
            if parts[-1] == "__init__":
                name = ".".join([pkg, *parts[:-1]]) if len(parts) > 1 else f"{pkg}.__init__"
            out[name] = path
    return out


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if importer.endswith(".__init__"):
        base = base[:-1]
    elif not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    known = set(mods)

    def target(name: str) -> str | None:
        while name:
            if name in known:
                return name
            if f"{name}.__init__" in known:
                return f"{name}.__init__"
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                # `from X import a`: a dependency on the module X.a where there is one, else on X.
                base = _resolve(mod, is_package, node)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known or f"{base}.{a.name}.__init__" in known
                         else base for a in node.names]
            for n in names:
                t = target(n)
                if t is not None and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def sizes(mods: dict[str, Path]) -> tuple[list, list]:
    lines = sorted(((len(p.read_text().splitlines()), m) for m, p in mods.items()), reverse=True)
    funcs = []
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((node.end_lineno - node.lineno + 1, f"{m}:{node.name}"))
    return lines, sorted(funcs, reverse=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="import graph of gscache against its layers")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args(argv)
    mods = modules()
    graph = imports(mods)
    rank = {m: LAYERS.index(layer_of(m)) for m in mods}
    upward = sorted((m, d) for m, deps in graph.items() for d in deps if rank[d] > rank[m])
    found = cycles(graph)
    mod_sizes, func_sizes = sizes(mods)
    print(f"modules: {len(mods)}, import edges: {sum(len(d) for d in graph.values())}")
    print(f"import cycles: {len(found)}")
    for c in found:
        print("  " + " <-> ".join(c))
    print(f"imports from a lower layer to a higher one: {len(upward)}")
    for m, d in upward:
        print(f"  {m} ({layer_of(m)}) -> {d} ({layer_of(d)})")
    print("largest modules (lines): " + ", ".join(f"{m} {n}" for n, m in mod_sizes[:5]))
    print("largest functions (lines): " + ", ".join(f"{f} {n}" for n, f in func_sizes[:5]))
    if args.json:
        args.json.write_text(json.dumps({"cycles": found, "upward": upward, "modules": mod_sizes[:10],
                                         "functions": func_sizes[:10]}, indent=1))
    return 0 if not found and not upward else 1


if __name__ == "__main__":
    raise SystemExit(main())
