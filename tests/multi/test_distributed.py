"""Two ranks of a gloo group on loopback, launched like torchrun would (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT): rank 1 renders its bands, rank 0 presents and compares every frame
with its own single-process render."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from gscache.scene import save_scene
from tests.conftest import REPO
from tests._helpers import random_scene


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two_ranks(tmp_path, timeout_s: int, rank1_module: str = "gscache.cli.distributed") -> list:
    path = tmp_path / "scene.ply"
    save_scene(random_scene(2000, seed=9, sh_degree=1), path)
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        module = rank1_module if rank == 1 else "gscache.cli.distributed"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", module, str(path), "--frames", "4", "--size", "64x48",
             "--backend", "cpu", "--timeout", str(timeout_s), "--check"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO))
    return procs


pytestmark = pytest.mark.slow


def test_two_gloo_ranks_render_the_single_process_frames(tmp_path):
    procs = _launch_two_ranks(tmp_path, 60)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert procs[1].returncode == 0, outs[1]
    assert procs[0].returncode == 0, outs[0]
    assert "identical to the single-process render" in outs[0] and "rank1" in outs[0]
    assert "frames with re-rendered bands 0" in outs[0]


def test_a_rank_that_stops_answering_is_dropped_and_its_bands_rerendered(tmp_path):
    procs = _launch_two_ranks(tmp_path, 5, "tests.multi._faulty_rank")  # rank 1 hangs at frame 2
    try:
        out = procs[0].communicate(timeout=120)[0]
    finally:
        procs[1].kill()
        procs[1].communicate()
    assert procs[0].returncode == 0, out
    assert "identical to the single-process render" in out  # rank 0 re-rendered the lost bands
    assert "frames with re-rendered bands 1" in out  # frame 2; later frames without rank 1
