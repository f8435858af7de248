"""``gscache view --xr`` against a real OpenXR runtime, where one is named: set XR_RUNTIME_JSON to
its manifest (e.g. Monado's null compositor, README "Into the headset"). Skipped otherwise: CI
has no runtime of its own beyond the project's test runtime (test_xr_session.py)."""

from __future__ import annotations

import os

import pytest

from tests._helpers import random_scene
from tests.viewer.test_xr_session import validation_findings, validation_on

RUNTIME = os.environ.get("XR_RUNTIME_JSON")


@pytest.mark.skipif(not RUNTIME, reason="XR_RUNTIME_JSON is not set: no real OpenXR runtime to test against")
def test_frames_reach_a_real_runtime_with_the_validation_layer_silent(x_display, tmp_path, monkeypatch):
    pytest.importorskip("xr", reason="pyopenxr is not installed (pip install -r requirements.txt)")
    from gscache.viewer import Viewer, ViewerOptions

    report = tmp_path / "core_validation.txt"
    validation_on(monkeypatch, report)
    viewer = Viewer(random_scene(600, seed=2, sh_degree=1),
                    ViewerOptions(backend="cpu", visible=False, xr=True, frames=30, xr_scale=0.25,
                                  screenshot_dir=tmp_path, record_path=tmp_path / "path.json"))
    out = viewer.session.xr
    assert viewer.run() == 0
    assert out.frames_submitted >= 30 and out.order.frames == out.frames_submitted
    assert validation_findings(report) == []
