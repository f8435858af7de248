"""Shared fixtures: where the real scene data lives, small synthetic scenes, and an X display for
the window and OpenXR tests (the one in $DISPLAY, else an Xvfb started here; CI installs it;
without either, or without glfw/PyOpenGL, those tests skip with the reason)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """The shared real-scene folder ($GSCACHE_DATA, else ../shared/data beside the repo), or None."""
    env = os.environ.get("GSCACHE_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if path is None:
        pytest.skip("real scene data not found: set GSCACHE_DATA or place it at ../shared/data")
    return path


def data_file(name: str) -> Path:
    """A file of the shared data, or a skip with the reason."""
    path = data_dir()
    if path is None or not (path / name).exists():
        pytest.skip(f"real scene data {name!r} not found: set GSCACHE_DATA or place it at ../shared/data")
    return path / name


@pytest.fixture(scope="session")
def x_display():
    pytest.importorskip("glfw", reason="glfw is not installed (pip install -r requirements.txt)")
    pytest.importorskip("OpenGL.GL", reason="PyOpenGL is not installed (pip install -r requirements.txt)")
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no X display and no Xvfb to start one (apt-get install xvfb; .ci/run does)")
    # -displayfd: Xvfb picks a free display number itself and writes it to the pipe once it
    # listens (two test runs at once cannot both take the same number, as a scan for a free one
    # could: the second would then lose its display when the first run ended).
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number.isdigit():
        proc.kill()
        pytest.skip(f"Xvfb did not report a display (exit code {proc.poll()})")
    display = f":{number}"
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        del os.environ["DISPLAY"]
        proc.terminate()
        proc.wait(timeout=10)
