"""The Python side of the two GPU backends, exercised on the CPU.

No GPU is needed to catch most wiring mistakes of a GPU backend:
* cuda: every launch is checked against the kernel's C signature parsed from its .cu file
  (argument count, pointer dtypes, scalar widths, grid and block limits, shared memory), with a
  fake CuPy whose kernels do nothing. The arithmetic of those kernels is cuda/common.cuh, which
  the cpu backend runs on every machine; the launches themselves run in scripts/gpu_check.sh.
* gsplat: the adapter runs end to end on gsplat's own pure-PyTorch functions in place of its
  CUDA ones, so the conversions (key layout, flattened ids, offsets, depth channel) are checked
  against the torch reference.
"""

from __future__ import annotations

import contextlib
import re
import types

import numpy as np
import pytest
import torch

from gscache.backends._loader import kernel_dir
from gscache.camera import views_of
from gscache.config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
from gscache.stages import bin_tiles, cull, project, rasterize, shade
from tests._helpers import random_scene, rig

_C_TYPES = {"float*": torch.float32, "int*": torch.int32, "long long*": torch.int64, "GsView*": torch.uint8}
_SCALARS = {"int": np.int32, "long long": np.int64, "float": np.float32}


def kernel_signatures() -> dict[str, list[str]]:
    """kernel name -> parameter types ("float*", "int", ...) from every cuda/*.cu file."""
    out = {}
    for path in kernel_dir().glob("*.cu"):
        text = path.read_text()
        for name, params in re.findall(r'extern "C" __global__ void (\w+)\((.*?)\)\s*\{', text, flags=re.S):
            types_ = []
            for p in params.split(","):
                p = re.sub(r"\b(const|__restrict__)\b", " ", p).strip()
                base = " ".join(p.replace("*", " * ").split()[:-1])  # drop the parameter name
                types_.append(base.replace(" *", "*"))
            out[name] = types_
    return out


class _FakeArray:
    def __init__(self, t: torch.Tensor):
        self.tensor = t


class _FakeKernel:
    """Checks a launch against the kernel's signature; computes nothing, except that the count
    kernels write counts (``fill_counts``; 2 per anchor) so that the launches after them happen too."""

    fill_counts: torch.Tensor | None = None

    def __init__(self, name: str, signature: list[str], calls: list):
        self.name, self.signature, self.calls = name, signature, calls

    def __call__(self, grid, block, args, shared_mem=0):
        assert len(args) == len(self.signature), f"{self.name}: {len(args)} args, kernel takes {len(self.signature)}"
        for i, (arg, ctype) in enumerate(zip(args, self.signature)):
            if ctype.endswith("*"):
                assert isinstance(arg, _FakeArray), f"{self.name} arg {i}: expected a device array for {ctype}"
                assert arg.tensor.dtype == _C_TYPES[ctype], f"{self.name} arg {i}: {arg.tensor.dtype} for {ctype}"
                assert arg.tensor.is_contiguous(), f"{self.name} arg {i}: not contiguous"
            else:
                assert type(arg) is _SCALARS[ctype], f"{self.name} arg {i}: {type(arg).__name__} for {ctype}"
        assert all(1 <= g < 2**31 for g in grid) and all(b >= 1 for b in block)
        assert int(np.prod(block)) <= 1024 and shared_mem <= 48 * 1024
        if self.name == "bin_count_kernel" and _FakeKernel.fill_counts is not None:
            args[-1].tensor.copy_(_FakeKernel.fill_counts)
        if self.name == "derive_count_kernel":
            args[-1].tensor.fill_(2)  # every anchor keeps two Gaussians
        self.calls.append(self.name)


@pytest.fixture
def fake_cupy(monkeypatch):
    from gscache.backends import cuda as cuda_backend

    sigs = kernel_signatures()
    calls: list[str] = []
    module = types.SimpleNamespace(get_function=lambda name: _FakeKernel(name, sigs[name], calls))
    monkeypatch.setattr(cuda_backend, "cuda_module", lambda file, index: module)
    monkeypatch.setattr(cuda_backend, "_arr", lambda t: _FakeArray(t.detach()))
    monkeypatch.setattr(cuda_backend, "_on_torch_stream", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(cuda_backend, "check", lambda t, *a, **k: t)  # CPU tensors stand in for CUDA ones
    monkeypatch.setattr(cuda_backend, "_kernel",
                        lambda file, name, device: module.get_function(name))
    return cuda_backend, calls


def test_signatures_are_parsed():
    sigs = kernel_signatures()
    assert set(sigs) == {"shade_kernel", "project_kernel", "bin_count_kernel", "bin_emit_kernel",
                         "tile_ranges_kernel", "rasterize_kernel", "derive_count_kernel", "derive_emit_kernel"}
    assert sigs["project_kernel"][4] == "GsView*"


def test_cuda_backend_launches_match_the_kernel_signatures(fake_cupy):
    cuda_backend, calls = fake_cupy
    scene = random_scene(300, seed=1, sh_degree=2)
    views = views_of(rig(64, 48), "cpu")
    visible = cull(scene, views, CullConfig(), ProjectConfig())
    shaded_ref = shade(visible, views, ShadeConfig())
    projected = project(visible, shaded_ref, views, ProjectConfig())
    cuda_backend.shade(visible, views, ShadeConfig())
    cuda_backend.project(visible, shaded_ref, views, ProjectConfig())
    bins = bin_tiles(projected, views, BinConfig())
    _FakeKernel.fill_counts = bins.tiles_per_gaussian  # what the count kernel would write
    try:
        out = cuda_backend.bin_tiles(projected, views, BinConfig())
    finally:
        _FakeKernel.fill_counts = None
    assert out.isect_keys.shape == bins.isect_keys.shape and out.tile_ranges.shape == bins.tile_ranges.shape
    cuda_backend.rasterize(visible, shaded_ref, projected, bins, views, RasterConfig())
    assert calls == ["shade_kernel", "project_kernel", "bin_count_kernel", "bin_emit_kernel", "tile_ranges_kernel",
                     "rasterize_kernel"]


def test_cuda_derive_launches_match_the_kernel_signatures(fake_cupy):
    from gscache.scenes import structured_demo
    from gscache.stages.derive import lod_mask

    cuda_backend, calls = fake_cupy
    scene = structured_demo(seed=0, spacing=0.5)
    position = torch.tensor([0.0, -2.0, -5.0])
    ids = torch.nonzero(lod_mask(scene, position)).squeeze(1)
    out = cuda_backend.derive(scene, ids, position)  # the fake count kernel keeps two per anchor
    assert out.count == 2 * len(ids) and calls == ["derive_count_kernel", "derive_emit_kernel"]


def test_views_tensor_has_the_struct_layout():
    from gscache.backends._boundary import GsView
    from gscache.backends.cuda import _views_tensor
    import ctypes

    views = views_of(rig(64, 48), "cpu")
    raw = _views_tensor(views, torch.device("cpu"))
    assert raw.dtype == torch.uint8 and raw.numel() == 2 * ctypes.sizeof(GsView)
    floats = raw[: ctypes.sizeof(GsView)].view(torch.float32)
    torch.testing.assert_close(floats[:9], views.viewmats[0, :3, :3].reshape(-1))


def _gsplat_on_torch():
    """gsplat's _wrapper functions, backed by its pure-PyTorch implementations."""
    impl = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat is not installed")

    def fully_fused_projection(means, covars, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane):
        c = covars
        full = torch.stack([c[:, 0], c[:, 1], c[:, 2], c[:, 1], c[:, 3], c[:, 4], c[:, 2], c[:, 4], c[:, 5]], -1)
        radii, means2d, depths, conics, comp = impl._fully_fused_projection(
            means, full.reshape(-1, 3, 3), viewmats, Ks, width, height, eps2d, near_plane, far_plane)
        return radii, means2d, depths, conics, comp

    def isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height):
        return impl._isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height)

    return types.SimpleNamespace(
        quat_scale_to_covar_preci=lambda q, s, compute_preci, triu: impl._quat_scale_to_covar_preci(
            q, s, compute_preci=compute_preci, triu=triu),
        spherical_harmonics=lambda degree, dirs, coeffs: impl._spherical_harmonics(degree, dirs, coeffs),
        fully_fused_projection=fully_fused_projection,
        isect_tiles=isect_tiles,
        isect_offset_encode=lambda ids, n, tw, th: impl._isect_offset_encode(ids, n, tw, th),
        rasterize_to_pixels=_rasterize_to_pixels_per_tile,
    )


def _rasterize_to_pixels_per_tile(means2d, conics, colors, opacities, width, height, tile_size, isect_offsets,
                                  flatten_ids):
    """gsplat's rasterize_to_pixels semantics, one tile and one splat at a time (its own torch
    version needs a CUDA helper): per tile, the ids from isect_offsets to the next offset index the
    flattened [C * N] splats, blended front to back with gsplat's constants (alpha <= 0.999)."""
    C, N = means2d.shape[:2]
    ch = colors.shape[-1]
    out = torch.zeros(C, height, width, ch)
    alphas = torch.zeros(C, height, width, 1)
    offsets = torch.cat([isect_offsets.reshape(-1), torch.tensor([flatten_ids.shape[0]])]).tolist()
    th, tw = isect_offsets.shape[1:]
    flat_means, flat_conics = means2d.reshape(-1, 2), conics.reshape(-1, 3)
    flat_colors, flat_opac = colors.reshape(-1, ch), opacities.reshape(-1)
    for t in range(C * th * tw):
        c, ty, tx = t // (th * tw), (t // tw) % th, t % tw
        ys = torch.arange(ty * tile_size, min((ty + 1) * tile_size, height))
        xs = torch.arange(tx * tile_size, min((tx + 1) * tile_size, width))
        py, px = torch.meshgrid(ys.float() + 0.5, xs.float() + 0.5, indexing="ij")
        T = torch.ones_like(px)
        acc = torch.zeros(px.shape + (ch,))
        done = torch.zeros_like(px, dtype=torch.bool)
        for i in flatten_ids[offsets[t]:offsets[t + 1]].tolist():
            dx, dy = flat_means[i, 0] - px, flat_means[i, 1] - py
            a, b, cc = flat_conics[i]
            power = -0.5 * (a * dx * dx + cc * dy * dy) - b * dx * dy
            alpha = torch.clamp(flat_opac[i] * torch.exp(power), max=0.999)
            use = (power <= 0) & (alpha >= 1 / 255) & ~done
            T_next = T * (1 - alpha)
            stop = use & (T_next <= 1e-4)
            blend = use & ~stop
            acc = torch.where(blend[..., None], acc + (alpha * T)[..., None] * flat_colors[i], acc)
            T = torch.where(blend, T_next, T)
            done |= stop
        out[c, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = acc
        alphas[c, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1, 0] = 1 - T
    return out, alphas


def test_gsplat_adapter_matches_the_reference_on_gsplat_torch_functions(monkeypatch):
    from gscache.backends import gsplat_backend
    from tests._compare import assert_stage_close

    monkeypatch.setattr(gsplat_backend, "_gs", _gsplat_on_torch)
    scene = random_scene(40, seed=4, sh_degree=1, spread=1.0)  # gsplat's torch isect loops per Gaussian
    views = views_of(rig(48, 32), "cpu")
    visible = cull(scene, views, CullConfig(), ProjectConfig())
    shaded = shade(visible, views, ShadeConfig())
    projected = project(visible, shaded, views, ProjectConfig())
    bins = bin_tiles(projected, views, BinConfig())
    ref = rasterize(visible, shaded, projected, bins, views, RasterConfig(background=(0.1, 0.2, 0.3)))

    assert_stage_close(gsplat_backend.shade(visible, views, ShadeConfig()), shaded, "shade")
    assert_stage_close(gsplat_backend.bin_tiles(projected, views, BinConfig()), bins, "bin")
    out = gsplat_backend.rasterize(visible, shaded, projected, bins, views, RasterConfig(background=(0.1, 0.2, 0.3)))
    # gsplat clamps alpha at 0.999 where we clamp at 0.99: differences only where a splat is that
    # opaque at a pixel; the random scene's opacities are below 0.99 except where the torch
    # gsplat alpha rule and ours agree, so images match closely.
    assert float((out.rgb - ref.rgb).abs().max()) < 1e-4
    assert float((out.alpha - ref.alpha).abs().max()) < 1e-4
    proj = gsplat_backend.project(visible, shaded, views, ProjectConfig())
    both = (proj.radii > 0).all(-1) & (projected.radii > 0).all(-1)
    torch.testing.assert_close(proj.means2d[both], projected.means2d[both], rtol=1e-4, atol=1e-4)
