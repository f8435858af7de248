"""Every kernel's resources, as nvcc compiles it for sm_80 and sm_90 (`--resource-usage`), fit the
largest launch cuda.py makes: registers x threads per block within the 64K registers of a block,
static + dynamic shared memory within 48 KiB (no kernel opts in to more), stack within the local
memory of a thread. The launches are the real ones: gscache/backends/cuda.py driven on the SIMT
emulation at its largest configurations (tile_px 32, MLP weights in shared memory), so a change
of block size or shared-memory arithmetic is checked here before a GPU says "too many resources
requested for launch"."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess

import pytest
import torch

from gscache import backends
from gscache.backends._loader import KernelTree, kernel_dir, simt_kernels
from gscache.camera import StereoRig, look_at, views_of
from gscache.config import BinConfig, CullConfig, FoveationConfig, ProjectConfig, RasterConfig, ShadeConfig
from gscache.scenes import structured_demo
from gscache.stages.derive import lod_mask
from gscache.records import Images
from gscache.stages.foveate import fovea_layout
from gscache.stages.reuse import TileGrid
from tests._helpers import random_scene

REGISTERS_PER_BLOCK = 65536
REGISTER_ALLOCATION = 256  # registers are allocated per warp in units of 256
SHARED_PER_BLOCK = 48 * 1024
LOCAL_PER_THREAD = 512 * 1024


def _nvcc() -> str:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        assert os.environ.get("GSCACHE_REQUIRE_NVCC") != "1", "nvcc is required (GSCACHE_REQUIRE_NVCC=1) but not found"
        pytest.skip("nvcc not found: kernel resources cannot be measured here")
    return nvcc


def resource_usage(arch: str) -> dict[str, dict[str, int]]:
    """kernel -> registers, stack (bytes per thread) and static shared memory, from ptxas."""
    out = {}
    for src in KernelTree.at().cu_files():
        proc = subprocess.run([_nvcc(), f"-arch={arch}", "-std=c++17", "--resource-usage", "-c", f"-I{kernel_dir()}",
                               "-o", os.devnull, str(src)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout + proc.stderr
        for name, body in re.findall(r"Function properties for (\w+)\n(.*?)(?=ptxas info    : Compile time)", text, re.S):
            regs = re.search(r"Used (\d+) registers", body)
            stack = re.search(r"(\d+) bytes stack frame", body)
            smem = re.search(r"(\d+) bytes smem", body)
            out[name] = {"registers": int(regs.group(1)), "stack": int(stack.group(1)) if stack else 0,
                         "static_shared": int(smem.group(1)) if smem else 0}
    return out


def largest_launches() -> dict[str, tuple[int, int]]:
    """kernel -> (most threads per block, most dynamic shared bytes) over cuda.py's launches."""
    from gscache.backends.cuda import backend_on
    from gscache.backends.simt import SimRuntime

    reason = backends.available()["cuda-sim"]
    if reason != "ok":
        pytest.skip(f"backend 'cuda-sim' unavailable: {reason}")
    rt = SimRuntime("forward")
    impl = backend_on(rt)
    scene = random_scene(300, seed=2, sh_degree=3)
    rig = StereoRig.symmetric(look_at((0.0, 0.0, 0.0), (0.0, 0.0, 3.0)), 70, 50, fov_y_deg=60)
    views = views_of(rig, "cpu")
    for tile_px in (8, 16, 32):
        visible = impl.cull(scene, views, CullConfig(), ProjectConfig())
        shaded = impl.shade(visible, views, ShadeConfig())
        projected = impl.project(visible, shaded, views, ProjectConfig())
        bins = impl.bin(projected, views, BinConfig(tile_px=tile_px))
        impl.rasterize(visible, shaded, projected, bins, views, RasterConfig())
    structured = structured_demo(seed=0, spacing=0.5)
    position = torch.tensor([0.0, -2.0, -5.0])
    impl.derive(structured, torch.nonzero(lod_mask(structured, position)).squeeze(1), position)
    frame = impl.rasterize(visible, shaded, projected, bins, views, RasterConfig())
    warped = impl.reproject(frame.rgb[0], frame.alpha[0], frame.median_depth[0], views.viewmats[0], views.Ks[0],
                            views.viewmats[1], views.Ks[1], rig.height, rig.width)
    grid = TileGrid(rig.width, rig.height, 16)
    impl.tile_stats(warped, grid)
    impl.reuse_composite(warped, torch.ones(grid.tiles_y, grid.tiles_x, dtype=torch.bool), frame.rgb[1].clone(),
                         frame.alpha[1].clone(), frame.depth[1].clone(), frame.median_depth[1].clone(), grid)
    layout = fovea_layout(rig.width, rig.height, 2, FoveationConfig(periphery_scale=0.5), None)
    small = Images(frame.rgb[:, ::2, ::2].contiguous(), frame.alpha[:, ::2, ::2].contiguous(),
                   frame.depth[:, ::2, ::2].contiguous(), frame.median_depth[:, ::2, ::2].contiguous())
    impl.fovea_composite(frame, small, layout)
    impl.scale_projection(projected, views, views.scaled(0.5), ProjectConfig())
    out: dict[str, tuple[int, int]] = {}
    for name, _, block, shared in rt.launches:
        threads = math.prod(block)
        prev = out.get(name, (0, 0))
        out[name] = (max(prev[0], threads), max(prev[1], shared))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernel_resources_fit_the_launches(arch):
    usage = resource_usage(arch)
    launches = largest_launches()
    assert set(usage) == set(simt_kernels()) and set(launches) == set(simt_kernels())
    for name, (threads, dynamic_shared) in launches.items():
        u = usage[name]
        warps = math.ceil(threads / 32)
        per_warp = math.ceil(u["registers"] * 32 / REGISTER_ALLOCATION) * REGISTER_ALLOCATION
        assert warps * per_warp <= REGISTERS_PER_BLOCK, (
            f"{name} ({arch}): {u['registers']} registers x {threads} threads exceed a block's registers")
        assert u["static_shared"] + dynamic_shared <= SHARED_PER_BLOCK, f"{name} ({arch}): shared memory"
        assert u["stack"] <= LOCAL_PER_THREAD, f"{name} ({arch}): stack"
    assert launches["rasterize_kernel"][0] == 1024  # tile_px 32 was launched
