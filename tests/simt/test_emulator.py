"""The SIMT emulator's execution model, on probe kernels (tests/simt/probe.cu) built together
with the product kernels: barrier counts, divergence, deadlock, launch limits, shared memory
(uninitialised reads, overruns, a missing barrier) and the order of each schedule."""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

import pytest
import torch

from gscache import backends
from gscache.backends._loader import KernelTree, kernel_dir
from tests._backends import params

pytestmark = pytest.mark.parametrize("_sim", params("cuda-sim"))  # skipped with the reason where no g++
SERIAL = ("forward", "reverse", "random")
# The sanitizer pass of .ci/run builds the probes instrumented too.
SANITIZE = os.environ.get("GSCACHE_SIMT_SANITIZE") or None


class ProbeParams(ctypes.Structure):
    _fields_ = [("out", ctypes.c_void_p), ("counter", ctypes.c_void_p), ("n", ctypes.c_int), ("mode", ctypes.c_int)]


@pytest.fixture(scope="module")
def probe_src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("simt_probe") / "cuda"
    shutil.copytree(kernel_dir(), src, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(Path(__file__).with_name("probe.cu"), KernelTree.at(src).kernels / "probe.cu")
    return src


def _runtime(src, schedule="forward", **kw):
    from gscache.backends.simt import SimRuntime

    return SimRuntime(schedule, src=src, sanitize=SANITIZE, **kw)


def _launch(rt, kernel, grid, block, n=0, mode=0, shared=0, out_len=None):
    out = torch.zeros(out_len or 2 * grid[0] * block[0], dtype=torch.int32)
    counter = torch.zeros(1, dtype=torch.int32)
    p = ProbeParams(out.data_ptr(), counter.data_ptr(), n, mode)
    rt.launch("probe", kernel, torch.device("cpu"), grid, block, p, shared)
    return out


@pytest.mark.parametrize("schedule", ("free",) + SERIAL)
def test_syncthreads_count(_sim, probe_src, schedule):
    out = _launch(_runtime(probe_src, schedule), "probe_count", (3,), (64,), n=21)
    assert out[: 3 * 64].tolist() == [21] * (3 * 64)


@pytest.mark.parametrize("schedule", ("free",) + SERIAL)
@pytest.mark.parametrize("mode,what", [(0, "exited while"), (1, "waits at")])
def test_barrier_divergence_is_reported(_sim, probe_src, schedule, mode, what):
    from gscache.backends.simt import KernelFault

    with pytest.raises(KernelFault, match=f"probe_divergent.*barrier divergence.*{what}"):
        _launch(_runtime(probe_src, schedule), "probe_divergent", (1,), (32,), mode=mode)


def test_a_barrier_that_never_completes_is_a_deadlock_not_a_hang(_sim, probe_src):
    from gscache.backends.simt import KernelFault

    with pytest.raises(KernelFault, match="deadlock"):
        _launch(_runtime(probe_src, "free", timeout_s=0.3), "probe_sleep", (1,), (8,), n=1500)
    # Within the timeout the same kernel is fine.
    assert _launch(_runtime(probe_src, "free", timeout_s=5.0), "probe_sleep", (1,), (8,), n=50)[:8].tolist() == [1] * 8


@pytest.mark.parametrize("grid,block,shared,what", [
    ((1,), (1025,), 0, "blockDim.x = 1025"),
    ((1,), (32, 32, 2), 0, "2048 threads per block"),
    ((1,), (8, 8, 65), 0, "blockDim.z = 65"),
    ((1, 65536), (32,), 0, "gridDim.y = 65536"),
    ((1,), (32,), 48 * 1024 + 4, "49156 bytes of dynamic shared memory"),
])
def test_launches_over_the_hardware_limits_fail(_sim, probe_src, grid, block, shared, what):
    from gscache.backends.simt import KernelFault

    with pytest.raises(KernelFault, match=what):
        _launch(_runtime(probe_src), "probe_count", grid, block, shared=shared, out_len=64)


def test_uninitialised_shared_memory_reads_as_all_ones(_sim, probe_src):
    out = _launch(_runtime(probe_src), "probe_shared", (1,), (16,), mode=0, shared=16 * 4)
    assert out[:16].tolist() == [-1] * 16  # 0xFFFFFFFF: NaN as a float


@pytest.mark.skipif(SANITIZE == "address", reason="AddressSanitizer aborts the process at the overrun itself "
                    "(no guard bytes in its build); scripts/mutation_check.py shows it")
def test_a_write_past_the_shared_memory_is_reported(_sim, probe_src):
    from gscache.backends.simt import KernelFault

    with pytest.raises(KernelFault, match="wrote past the end of its 64 bytes of dynamic shared memory"):
        _launch(_runtime(probe_src), "probe_shared", (1,), (16,), mode=1, shared=16 * 4)


@pytest.mark.parametrize("schedule", ("free",) + SERIAL)
def test_exchange_through_shared_memory_with_a_barrier(_sim, probe_src, schedule):
    out = _launch(_runtime(probe_src, schedule), "probe_shared", (1,), (32,), mode=2, shared=32 * 4)
    assert out[:32].tolist() == [(t + 1) % 32 + 100 for t in range(32)]


@pytest.mark.parametrize("schedule", ("forward", "reverse"))
def test_the_serial_schedules_expose_a_missing_barrier(_sim, probe_src, schedule):
    out = _launch(_runtime(probe_src, schedule), "probe_shared", (1,), (32,), mode=3, shared=32 * 4)
    assert -1 in out[:32].tolist()  # some thread read its neighbour's slot before the neighbour wrote it


def test_schedule_orders(_sim, probe_src):
    n = 16
    runs = {s: _launch(_runtime(probe_src, s, seed=7), "probe_order", (1,), (n,)) for s in SERIAL}
    before = {s: out[0::2].tolist() for s, out in runs.items()}  # the turn each thread had
    assert before["forward"] == list(range(n))
    assert before["reverse"] == list(range(n))[::-1]
    assert sorted(before["random"]) == list(range(n)) and before["random"] not in (before["forward"],
                                                                                    before["reverse"])
    after = runs["random"][1::2].tolist()
    assert sorted(after) == list(range(n, 2 * n)) and after != [v + n for v in before["random"]]  # drawn again
    again = _launch(_runtime(probe_src, "random", seed=7), "probe_order", (1,), (n,))
    assert torch.equal(again, runs["random"])  # deterministic for a seed


def test_serial_schedules_shuffle_the_blocks(_sim, probe_src):
    out = _launch(_runtime(probe_src, "forward", seed=3), "probe_order", (8,), (4,))
    first_turn = out[0::2].reshape(8, 4)[:, 0].tolist()  # when each block's thread 0 ran
    assert sorted(first_turn) == [8 * i for i in range(8)] and first_turn != sorted(first_turn)


def test_the_registered_backend_uses_the_emulator(_sim):
    impl = backends.get("cuda-sim", "cpu")
    assert impl.name == "cuda-sim" and impl.device_types == ("cpu",)
    from gscache.bench.runner import ladder

    assert backends.get("auto", "cpu").name != "cuda-sim"  # never picked by "auto"
    assert backends.by_name_only("cuda-sim") and not backends.by_name_only("cpu")
    assert not any(name.startswith("cuda-sim") for name, _ in ladder("cpu"))  # nor by the ladder
