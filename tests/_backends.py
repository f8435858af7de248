"""Backends as test parameters, from the registry: an unavailable backend is a skip with the
registry's reason (never silently dropped), and the GPU ones carry the ``cuda`` marker."""

from __future__ import annotations

import random

import pytest
import torch

from gscache import backends

GPU_BACKENDS = ("cuda", "gsplat")


def device_of(name: str) -> torch.device:
    """The device a backend's tensors live on (a random visible GPU for the GPU backends, so that
    multi-GPU machines exercise device handling)."""
    if name not in GPU_BACKENDS:
        return torch.device("cpu")
    return torch.device("cuda", random.randrange(torch.cuda.device_count()))


def params(*names: str) -> list:
    """pytest parameters for ``names``, each skipped with its reason where it cannot run."""
    reasons = backends.available()
    out = []
    for name in names:
        marks = [pytest.mark.cuda] if name in GPU_BACKENDS else []
        if reasons[name] != "ok":
            marks.append(pytest.mark.skip(reason=f"backend {name!r} unavailable: {reasons[name]}"))
        out.append(pytest.param(name, marks=marks, id=name))
    return out
