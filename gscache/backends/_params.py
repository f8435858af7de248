"""The kernels' parameter structs of cuda/common.cuh, mirrored once in ctypes.

Every kernel (cuda/kernels/*.cu), every entry point of the cpu library (cuda/host/host.cpp) and
every SIMT emulation launch takes one of these structs (by value on the GPU, by pointer on the
host), so an argument list is written once in C and once here.
``tests/backends/test_kernel_contract.py`` compiles a probe of every field's offset and every
struct's size against this mirror. Pointer fields hold device addresses for the cuda backend and
host addresses otherwise.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

_P = ctypes.c_void_p
_I32 = ctypes.c_int
_I64 = ctypes.c_longlong
_F32 = ctypes.c_float
_F64 = ctypes.c_double


class GsView(ctypes.Structure):
    """``struct GsView``: one view (T_cam_world rotation and translation, intrinsics, size, clip)."""

    _fields_ = [
        ("R", ctypes.c_float * 9),
        ("t", ctypes.c_float * 3),
        ("fx", _F32), ("fy", _F32), ("cx", _F32), ("cy", _F32),
        ("width", _I32), ("height", _I32),
        ("near_m", _F32), ("far_m", _F32),
    ]


def _struct(name: str, pointers: list[str], scalars: list[tuple[str, type]], doc: str) -> type[ctypes.Structure]:
    return type(name, (ctypes.Structure,), {"_fields_": [(p, _P) for p in pointers] + scalars, "__doc__": doc})


GsCullParams = _struct("GsCullParams", ["means", "scales", "views", "keep"],
                       [("N", _I64), ("E", _I32), ("eps2d", _F32), ("extent_sigma", _F32), ("margin_px", _F32)],
                       "``struct GsCullParams`` (cpu library only).")
GsReprojectParams = _struct("GsReprojectParams",
                            ["rgb", "alpha", "median", "dst_from_src", "src_from_dst", "src_K", "dst_K", "zbuf",
                             "zfill", "out_rgb", "out_alpha", "out_depth", "out_valid"],
                            [("src_width", _I32), ("src_height", _I32), ("width", _I32), ("height", _I32),
                             ("depth_tolerance", _F64)],
                            "``struct GsReprojectParams``.")
GsTileStatsParams = _struct("GsTileStatsParams", ["rgb", "alpha", "depth", "valid", "stats"],
                            [("width", _I32), ("height", _I32), ("tile_px", _I32), ("tiles_x", _I32),
                             ("tiles_y", _I32)], "``struct GsTileStatsParams``.")
GsReuseCompositeParams = _struct("GsReuseCompositeParams",
                                 ["w_rgb", "w_alpha", "w_depth", "valid", "reused", "rgb", "alpha", "depth", "median",
                                  "truth"],
                                 [("width", _I32), ("height", _I32), ("tile_px", _I32), ("tiles_x", _I32),
                                  ("tiles_y", _I32)], "``struct GsReuseCompositeParams``.")
GsFoveaCompositeParams = _struct("GsFoveaCompositeParams",
                                 ["rgb", "alpha", "depth", "median", "p_rgb", "p_alpha", "p_depth", "p_median",
                                  "rects"],
                                 [("E", _I32), ("width", _I32), ("height", _I32), ("p_width", _I32),
                                  ("p_height", _I32), ("band_px", _I32)], "``struct GsFoveaCompositeParams``.")
GsShadeParams = _struct("GsShadeParams", ["means", "quats", "scales", "sh", "positions", "covars", "colors"],
                        [("E", _I32), ("V", _I32), ("K", _I32), ("degree", _I32)], "``struct GsShadeParams``.")
GsProjectParams = _struct("GsProjectParams", ["means", "covars", "views", "means2d", "conics", "depths", "radii"],
                          [("E", _I32), ("V", _I32), ("eps2d", _F32), ("extent_sigma", _F32)],
                          "``struct GsProjectParams``.")
GsScaleProjectionParams = _struct("GsScaleProjectionParams",
                                  ["means2d", "conics", "depths", "views", "out_means2d", "out_conics", "out_radii"],
                                  [("E", _I32), ("V", _I32), ("sx", _F32), ("sy", _F32), ("eps2d", _F32),
                                   ("extent_sigma", _F32)], "``struct GsScaleProjectionParams``.")
GsBinParams = _struct("GsBinParams", ["means2d", "radii", "depths", "counts", "offsets", "keys", "ids", "ranges"],
                      [("n_isect", _I64), ("E", _I32), ("V", _I32), ("tile_px", _I32), ("tiles_x", _I32),
                       ("tiles_y", _I32), ("shared_depth", _I32)],
                      "``struct GsBinParams`` (count, emit and tile-range kernels; the cpu library's binning).")
GsRasterParams = _struct("GsRasterParams",
                         ["means2d", "conics", "opacities", "colors", "depths", "gaussian_ids", "ranges", "background",
                          "out_rgb", "out_alpha", "out_depth", "out_median_depth", "pixel_mask"],
                         [("E", _I32), ("V", _I32), ("tile_px", _I32), ("tiles_x", _I32), ("tiles_y", _I32),
                          ("width", _I32), ("height", _I32), ("alpha_max", _F32), ("alpha_min", _F32),
                          ("t_min", _F32)],
                         "``struct GsRasterParams``.")
GsDeriveParams = _struct("GsDeriveParams",
                         ["ids", "anchors", "features", "levels", "offsets", "scales", "viewpoint", "layers", "mlps",
                          "weights", "opac", "counts", "starts", "means", "quats", "out_scales", "opacities", "sh"],
                         [("n", _I64), ("F", _I32), ("k", _I32), ("add_level", _I32), ("n_weights", _I32),
                          ("use_shared", _I32)],
                         "``struct GsDeriveParams`` (count and emit kernels).")

PARAM_STRUCTS = (GsView, GsCullParams, GsReprojectParams, GsTileStatsParams, GsReuseCompositeParams,
                 GsFoveaCompositeParams, GsShadeParams,
                 GsProjectParams, GsScaleProjectionParams, GsBinParams, GsRasterParams, GsDeriveParams)


def fill(cls: type[ctypes.Structure], **fields) -> ctypes.Structure:
    """One parameter struct with every field given: tensors become their data pointers, ctypes
    arrays their addresses, everything else its value. A missing or unknown field is an error
    (a pointer left at 0 would be a crash in a kernel, not a message)."""
    names = [f[0] for f in cls._fields_]
    missing, unknown = set(names) - set(fields), set(fields) - set(names)
    if missing or unknown:
        raise TypeError(f"{cls.__name__}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    out = cls()
    for name, value in fields.items():
        if isinstance(value, torch.Tensor):
            value = value.data_ptr()
        elif isinstance(value, ctypes.Array):
            value = ctypes.addressof(value)
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        setattr(out, name, value)
    return out


def as_kernel_arg(params: ctypes.Structure) -> np.ndarray:
    """The struct as CuPy passes a struct by value: a size-one array of the struct's dtype (numpy
    takes the ctypes layout, offsets and alignment included)."""
    return np.frombuffer(bytes(params), dtype=np.dtype(type(params))).copy()
