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
