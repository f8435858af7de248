"""What is written twice must agree: the constants of cuda/common.cuh and of Python (key layout,
SH constants, FOV clamp, median-depth transmittance, MLP activation codes and width, floats per
splat), and every parameter
struct in C and in its ctypes mirror (every field's offset and size, the struct's size). Every
kernel takes one parameter struct. Every .cu file compiles with nvcc for sm_80 and sm_90 with
warnings treated as errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from gscache import records, sh
from gscache.backends._loader import KernelTree, kernel_dir


def _defines() -> dict[str, str]:
    text = (kernel_dir() / "common.cuh").read_text()
    return dict(re.findall(r"^#define (GS_\w+) (\S+)$", text, flags=re.M))


def test_key_layout_agrees():
    assert int(_defines()["GS_TILE_KEY_SHIFT"]) == records.TILE_KEY_SHIFT
    text = (kernel_dir() / "common.cuh").read_text()
    assert "bits 63..32  global tile id = eye * T + tile_y * tiles_x + tile_x" in text
    assert "eye * T + tile_y * tiles_x + tile_x" in records.__doc__


def test_sh_constants_agree():
    d = _defines()
    assert float(d["GS_SH_C0"].rstrip("f")) == pytest.approx(sh.SH_C0, rel=1e-15)
    assert float(d["GS_SH_C1"].rstrip("f")) == pytest.approx(sh.SH_C1, rel=1e-15)
    for i, v in enumerate(sh.SH_C2):
        assert float(d[f"GS_SH_C2_{i}"].rstrip("f")) == pytest.approx(v, rel=1e-15)
    for i, v in enumerate(sh.SH_C3):
        assert float(d[f"GS_SH_C3_{i}"].rstrip("f")) == pytest.approx(v, rel=1e-15)


def test_constants_agree():
    from gscache.backends import _mlp, cuda
    from gscache.stages.project import FOV_CLAMP
    from gscache.stages.rasterize import MEDIAN_T

    d = _defines()
    assert float(d["GS_FOV_CLAMP"].rstrip("f")) == FOV_CLAMP
    assert float(d["GS_MEDIAN_T"].rstrip("f")) == MEDIAN_T
    assert int(d["GS_MLP_MAX_WIDTH"]) == _mlp.MAX_WIDTH
    assert {k: int(d[f"GS_ACT_{k.upper()}"]) for k in _mlp.ACTIVATIONS} == _mlp.ACTIVATIONS
    assert int(d["GS_ACT_NONE"]) == 0 and 0 not in _mlp.ACTIVATIONS.values()
    assert int(d["GS_SPLAT_FLOATS"]) == cuda.SPLAT_FLOATS
    text = (KernelTree.at().kernels / "rasterize.cu").read_text()
    assert text.count("batch + ") == cuda.SPLAT_FLOATS - 1  # the shared arrays the kernel carves out


def test_parameter_structs_agree_with_their_mirror(tmp_path):
    """A probe compiled against common.cuh prints every mirrored field's offset and size, and each
    struct's size; a field missing in C fails the compile, one missing here changes the size."""
    import ctypes

    from gscache.backends._loader import host_compiler
    from gscache.backends._params import PARAM_STRUCTS

    cxx = host_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    lines = ['#include "common.cuh"', "#include <cstddef>", "#include <cstdio>", "int main() {"]
    expected = []
    for cls in PARAM_STRUCTS:
        name = cls.__name__
        lines.append(f'  std::printf("{name} %zu\\n", sizeof({name}));')
        expected.append(f"{name} {ctypes.sizeof(cls)}")
        for field, _ in cls._fields_:
            lines.append(f'  std::printf("{name}.{field} %zu %zu\\n", offsetof({name}, {field}), '
                         f"sizeof((({name}*)0)->{field}));")
            expected.append(f"{name}.{field} {getattr(cls, field).offset} {getattr(cls, field).size}")
    lines.append("}")
    src = tmp_path / "probe.cpp"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "probe"
    proc = subprocess.run([cxx, "-std=c++17", f"-I{kernel_dir()}", "-o", str(exe), str(src)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30).stdout.split("\n")
    assert printed[:-1] == expected


def test_every_kernel_takes_one_parameter_struct():
    from gscache.backends._loader import simt_kernels
    from gscache.backends._params import PARAM_STRUCTS

    kernels = simt_kernels()
    assert set(kernels) == {"shade_kernel", "project_kernel", "bin_count_kernel", "bin_emit_kernel",
                            "tile_ranges_kernel", "rasterize_kernel", "derive_count_kernel", "derive_emit_kernel",
                            "reproject_splat_kernel", "reproject_fill_kernel", "reproject_sample_kernel",
                            "tile_stats_kernel", "reuse_composite_kernel", "fovea_composite_kernel",
                            "scale_projection_kernel"}
    assert {struct for _, struct in kernels.values()} <= {cls.__name__ for cls in PARAM_STRUCTS}


def test_gsview_layout_agrees_in_the_cpu_library():
    from gscache import backends

    if backends.available()["cpu"] != "ok":
        pytest.skip(f"cpu backend unavailable: {backends.available()['cpu']}")
    import ctypes

    from gscache.backends._loader import host_library
    from gscache.backends._params import GsView

    assert host_library().gs_view_size() == ctypes.sizeof(GsView)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_cu_file_compiles_with_nvcc(tmp_path, arch):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        # CI sets GSCACHE_REQUIRE_NVCC=1: there a missing nvcc is a failure, not a skip.
        assert os.environ.get("GSCACHE_REQUIRE_NVCC") != "1", "nvcc is required (GSCACHE_REQUIRE_NVCC=1) but not found"
        pytest.skip("nvcc not found: the CUDA kernels cannot be compiled here")
    sources = KernelTree.at().cu_files()
    assert {p.stem for p in sources} >= {"shade", "project", "bin", "rasterize"}
    for src in sources:
        cmd = [nvcc, f"-arch={arch}", "-std=c++17", "-c", f"-I{kernel_dir()}", "--Werror", "all-warnings",
               "-Xcompiler", "-Wall", "-o", str(tmp_path / f"{src.stem}.o"), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{src.name} ({arch}):\n{proc.stderr}"


def test_cpu_backend_reports_a_missing_compiler(monkeypatch):
    from gscache import backends
    from gscache.backends import _loader

    monkeypatch.setenv("CXX", "/nonexistent/c++")
    _loader.host_library.cache_clear()
    try:
        reason = backends.available()["cpu"]
        assert reason != "ok" and "/nonexistent/c++" in reason
        assert backends.available()["torch"] == "ok"
    finally:
        monkeypatch.undo()
        _loader.host_library.cache_clear()


def test_auto_picks_the_cpu_kernels_on_a_cpu_device():
    from gscache import backends

    if backends.available()["cpu"] != "ok":
        pytest.skip(f"cpu backend unavailable: {backends.available()['cpu']}")
    assert backends.get("auto", "cpu").name == "cpu"
