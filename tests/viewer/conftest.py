"""A real X display for the viewer tests: the one in $DISPLAY, else an Xvfb started here (CI
installs it). Without either, or without glfw/PyOpenGL, the window tests skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


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
