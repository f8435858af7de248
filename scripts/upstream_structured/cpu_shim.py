"""Runtime shims that let upstream Octree-GS / Scaffold-GS Python code run on a CPU-only torch
build without editing any upstream file.

install() does:
  * prepends this folder's stubs/ to sys.path (CPU stand-ins for the CUDA extensions
    simple_knn._C, diff_gaussian_rasterization and torch_scatter, and an empty cv2);
  * np.int = int (upstream load_ply_sparse_gaussian uses the alias removed in NumPy 1.24);
  * torch.nn.Module.cuda returns self (covers nn.Sequential and loaded TorchScript modules);
  * torch.cuda.synchronize / empty_cache become no-ops;
  * enters a global TorchFunctionMode that turns Tensor.cuda(...) into a no-op and rewrites
    device="cuda" / torch.device("cuda") arguments (keyword arguments of any torch function or
    Tensor method, positional arguments of Tensor.to) to the CPU.
No numerical behaviour changes: all math runs with the same float32 torch ops on the CPU.
"""
import os
import sys

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

STUBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stubs")
_CPU = torch.device("cpu")


def _is_cuda(d):
    if isinstance(d, torch.device):
        return d.type == "cuda"
    if isinstance(d, str):
        return d == "cuda" or d.startswith("cuda:")
    return False


class CudaToCpuMode(TorchFunctionMode):
    """Upstream hard-codes device="cuda" and .cuda() all over; send all of it to the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda:
            return args[0]
        if "device" in kwargs and _is_cuda(kwargs["device"]):
            kwargs["device"] = _CPU
        if func is torch.Tensor.to:
            args = tuple(_CPU if _is_cuda(a) else a for a in args)
        return func(*args, **kwargs)


_MODE = None


def install():
    global _MODE
    if STUBS not in sys.path:
        sys.path.insert(0, STUBS)
    np.int = int
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.empty_cache = lambda *a, **k: None
    if _MODE is None:
        _MODE = CudaToCpuMode()
        _MODE.__enter__()
