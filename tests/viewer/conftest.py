"""A real X display for the viewer tests: the one in $DISPLAY, else an Xvfb started here (CI
installs it). Without either, or without glfw/PyOpenGL, the window tests skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest


def _free_display() -> int:
    for n in range(90, 140):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    raise RuntimeError("no free X display number in :90..:139")


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
    display = f":{_free_display()}"
    proc = subprocess.Popen([xvfb, display, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):  # wait for its socket
        if os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"):
            break
        if proc.poll() is not None:
            pytest.skip(f"Xvfb {display} exited with {proc.returncode}")
        time.sleep(0.05)
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        del os.environ["DISPLAY"]
        proc.terminate()
        proc.wait(timeout=10)
