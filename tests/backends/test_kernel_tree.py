"""The layout of the kernel sources (cuda/, installed as gscache._cuda) as the loader sees it, and
the cache keys of its builds: each covers every source file the build compiles, by name and content."""

from __future__ import annotations

import shutil

from gscache.backends._loader import KernelTree, kernel_dir


def test_every_part_is_where_the_loader_looks():
    tree = KernelTree.at()
    assert tree.root == kernel_dir() and (tree.root / "common.cuh").is_file()
    assert {p.stem for p in tree.cu_files()} == {"bin", "derive", "foveate", "project", "rasterize", "reproject", "reuse",
                                                     "shade"}
    assert all(p.parent == tree.root / "kernels" for p in tree.cu_files())
    assert (tree.host / "host.cpp").is_file() and tree.host == tree.root / "host"
    assert (tree.simt / "simt.hpp").is_file() and (tree.simt / "simt.cpp").is_file()
    # Nothing is left beside common.cuh that a build would no longer find.
    assert sorted(p.name for p in tree.root.iterdir() if p.is_file() and p.suffix != ".py") == ["common.cuh"]


def _rel(tree, files):
    return [p.relative_to(tree.root).as_posix() for p in files]


def test_the_cache_key_covers_every_included_source():
    tree = KernelTree.at()
    assert _rel(tree, tree.closure([tree.host / "host.cpp"])) == ["common.cuh", "host/host.cpp"]
    simt = tree.closure([tree.simt / "simt.hpp", tree.simt / "simt.cpp", *tree.cu_files()])
    assert _rel(tree, simt) == ["common.cuh", *_rel(tree, tree.cu_files()), "simt/simt.cpp", "simt/simt.hpp"]
    for cu in tree.cu_files():
        assert _rel(tree, tree.closure([cu])) == ["common.cuh", f"kernels/{cu.name}"]


def test_a_new_header_and_a_moved_file_change_the_key(tmp_path):
    root = tmp_path / "cuda"
    shutil.copytree(kernel_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    tree = KernelTree.at(root)
    entry = [tree.host / "host.cpp"]
    before = tree.key_inputs(tree.closure(entry))
    (root / "extra.cuh").write_text("#pragma once\n")
    common = root / "common.cuh"
    common.write_text(common.read_text().replace("#pragma once\n", '#pragma once\n#include "extra.cuh"\n', 1))
    assert _rel(tree, tree.closure(entry)) == ["common.cuh", "extra.cuh", "host/host.cpp"]
    # The same bytes under another name are another key.
    renamed = root / "host" / "cpu.cpp"
    shutil.copy(tree.host / "host.cpp", renamed)
    a, b = tree.key_inputs([tree.host / "host.cpp"]), tree.key_inputs([renamed])
    assert a[1] == b[1] and a != b and before != tree.key_inputs(tree.closure(entry))
