"""`import gscache` stays light, and every public name resolves."""

import subprocess
import sys


def test_import_loads_no_gpu_or_gui_library():
    code = (
        "import sys, gscache\n"
        "heavy = [m for m in ('cupy', 'gsplat', 'glfw', 'OpenGL') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import gscache loaded {out.stdout.strip()}"


def test_all_names_resolve():
    import gscache

    assert len(gscache.__all__) == len(set(gscache.__all__))
    for name in gscache.__all__:
        assert getattr(gscache, name) is not None, name


def test_imports_go_one_way_through_the_layers():
    """scripts/import_graph.py: no import cycle, no import from a lower layer to a higher one."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph)
    edges = graph.imports(graph.modules())
    assert graph.cycles(edges) == []
    rank = {m: graph.LAYERS.index(graph.layer_of(m)) for m in edges}
    upward = [(m, d) for m, deps in edges.items() for d in deps if rank[d] > rank[m]]
    assert upward == []
    # The torchrun entry point is a face (it imports gscache.api); the multi layer holds no exception.
    cli = [m for m in edges if m == "gscache.cli" or m.startswith("gscache.cli.")]
    assert "gscache.cli.distributed" in cli and all(graph.layer_of(m) == "faces" for m in cli)
    multi = [m for m in edges if m.startswith("gscache.multi.")]
    assert "gscache.multi.ranks" in multi and all(graph.layer_of(m) == "multi" for m in multi)
    assert not any(p.startswith("gscache.multi.") for p, _ in graph.RULES)


def test_every_backend_has_the_stage_signatures():
    import inspect

    from gscache import backends
    from gscache.stages import protocols

    expected = {"cull": protocols.CullFn, "shade": protocols.ShadeFn, "project": protocols.ProjectFn,
                "bin": protocols.BinFn, "rasterize": protocols.RasterizeFn, "derive": protocols.DeriveFn}
    checked = 0
    for name, status in backends.available().items():
        if status != "ok":
            continue
        impl = backends.get(name, "cpu")
        for stage, proto in expected.items():
            want = list(inspect.signature(proto.__call__).parameters)[1:]  # without self
            got = list(inspect.signature(getattr(impl, stage)).parameters)
            assert len(got) == len(want), f"{name}.{stage}{tuple(got)} vs {tuple(want)}"
        checked += 1
    assert checked >= 2  # torch and cpu at least
