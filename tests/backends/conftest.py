"""Backend fixtures from the registry: an unavailable backend is skipped with the registry's reason."""

from __future__ import annotations

import random

import pytest
import torch

from gscache import backends

KERNEL_BACKENDS = ["cpu", "cuda-sim", "cuda", "gsplat"]


def backend_device(name: str) -> torch.device:
    if name in ("cpu", "cuda-sim"):
        return torch.device("cpu")
    # No pinned cuda:0: a random visible GPU, so multi-GPU machines exercise device handling.
    return torch.device("cuda", random.randrange(torch.cuda.device_count()))


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    reason = backends.available()[request.param]
    if reason != "ok":
        pytest.skip(f"backend {request.param!r} unavailable: {reason}")
    return backends.get(request.param, backend_device(request.param).type), backend_device(request.param)
