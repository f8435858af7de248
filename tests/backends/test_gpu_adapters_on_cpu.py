"""The Python side of the two GPU backends that only a GPU runs, exercised on the CPU.

* cuda: the backend itself runs on every machine as ``cuda-sim`` (its kernels under the SIMT
  emulation, in every backend-parametrised test); what remains GPU-only is CupyRuntime, the
  CuPy launch. Here it runs against a stand-in CuPy that records each launch, to check that
  the parameter struct goes by value the way CuPy passes structs (a size-one array of the
  struct's dtype, the bytes of the C layout) on torch's stream.
* gsplat: the adapter runs end to end on gsplat's own pure-PyTorch functions in place of its
  CUDA ones, so the conversions (key layout, flattened ids, offsets, depth channel) are checked
  against the torch reference.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import types

import numpy as np
import pytest
import torch

from gscache.camera import views_of
from gscache.config import BinConfig, CullConfig, ProjectConfig, RasterConfig, ShadeConfig
from gscache.stages import bin_tiles, cull, project, rasterize, shade
from tests._helpers import random_scene, rig


def test_cupy_runtime_passes_the_parameter_struct_by_value(monkeypatch):
    from gscache.backends import cuda as cuda_backend
    from gscache.backends._params import GsShadeParams, fill

    launched = []

    class Kernel:
        def __call__(self, grid, block, args, shared_mem=0):
            launched.append((grid, block, args, shared_mem))

    class Stream:
        device_index, cuda_stream = 0, 1234

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        Device=lambda index: contextlib.nullcontext(),
        ExternalStream=lambda ptr, index: contextlib.nullcontext(("stream", ptr))))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cuda_backend, "cuda_module", lambda file, index: types.SimpleNamespace(
        get_function=lambda name: Kernel()))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    means = torch.zeros(5, 3)
    params = fill(GsShadeParams, means=means, quats=0, scales=0, sh=0, positions=0, covars=0, colors=0, E=2, V=5,
                  K=4, degree=1)
    cuda_backend.CupyRuntime().launch("shade", "shade_kernel", torch.device("cuda", 0), (1,), (256,), params, 64)
    (grid, block, args, shared), = launched
    assert grid == (1,) and block == (256,) and shared == 64 and len(args) == 1
    arg = args[0]
    assert isinstance(arg, np.ndarray) and arg.size == 1  # CuPy 13 passes size-one arrays by value
    assert arg.dtype.itemsize == ctypes.sizeof(GsShadeParams) and arg.tobytes() == bytes(params)
    assert int(arg["means"][0]) == means.data_ptr() and int(arg["V"][0]) == 5


def test_views_tensor_has_the_struct_layout():
    from gscache.backends._params import GsView
    from gscache.backends.cuda import _views_tensor

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
