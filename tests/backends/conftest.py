"""Backend fixtures from the registry: an unavailable backend is skipped with the registry's reason."""

from __future__ import annotations

import pytest

from gscache import backends
from tests._backends import device_of, params

KERNEL_BACKENDS = ["cpu", "cuda-sim", "cuda", "gsplat"]


@pytest.fixture(params=params(*KERNEL_BACKENDS))
def backend(request):
    device = device_of(request.param)
    return backends.get(request.param, device.type), device
