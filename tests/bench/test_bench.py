"""The benchmark: statistics and metrics against known values, an end-to-end run on a tiny scene
(JSON schema, plot file), and bad options failing clearly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gscache import GscacheError
import torch

from gscache import save_scene
from gscache.bench.memory import PeakMemory
from gscache.bench.metrics import max_abs_error, psnr, ssim
from gscache.bench.stats import percentile, summarize
from gscache.cli import main
from gscache.trajectory import load_trajectory, orbit, save_trajectory
from tests._helpers import random_scene


def test_percentile_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.exponential(10.0, 37).tolist()
    for q in (0, 5, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)
    s = summarize([10.0, 20.0, 30.0])
    assert s["median_ms"] == 20.0 and s["fps"] == 50.0 and s["p95_ms"] == pytest.approx(29.0)
    with pytest.raises(GscacheError, match="no values"):
        percentile([], 50)


def test_psnr_known_values():
    a = torch.zeros(2, 16, 16, 3, dtype=torch.float64)
    b = torch.full((2, 16, 16, 3), 0.1, dtype=torch.float64)  # MSE 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-9)
    assert psnr(a, a) == math.inf
    assert max_abs_error(a, b) == pytest.approx(0.1)


def test_ssim_known_values():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 32, 32, 3, generator=g)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # Two constant images: variances are 0, so SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1).
    a = torch.full((1, 24, 24, 3), 0.2, dtype=torch.float64)
    b = torch.full((1, 24, 24, 3), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-9)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert 0.0 < ssim(x, noisy) < 0.9


def test_peak_memory_sees_an_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        base = mem.peak_bytes
        block = torch.ones(64 * 2**20)  # 256 MiB, touched
        block.add_(1)
        import time

        time.sleep(0.05)
        del block
    assert mem.kind == "rss" and mem.peak_bytes - base > 200 * 2**20


def test_trajectory_file_round_trip(tmp_path):
    t = orbit((0.0, 0.0, 0.0), 2.0, 5)
    save_trajectory(t, tmp_path / "path.json")
    back = load_trajectory(tmp_path / "path.json")
    assert torch.equal(back.T_world_head, t.T_world_head) and torch.equal(back.times_s, t.times_s)


@pytest.fixture
def tiny_scene(tmp_path):
    path = tmp_path / "tiny.ply"
    save_scene(random_scene(300, seed=2, sh_degree=1), path)
    return path


def test_bench_end_to_end_writes_json_and_plot(tmp_path, tiny_scene, capsys):
    out = tmp_path / "out"
    argv = ["bench", str(tiny_scene), "--ablation", "--frames", "4", "--warmup", "1", "--size", "48x32",
            "--quality-frames", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["schema"] == "gscache-bench/1"
    assert {"cpu", "torch_threads", "versions", "git_commit", "device"} <= set(report["environment"])
    assert report["scene"]["gaussians"] == 300 and report["settings"]["frames"] == 4
    names = [c["name"] for c in report["configs"]]
    assert names[0] == "torch/none"
    modes = [n.split("/")[1] for n in names]
    assert modes[-12:] == ["stereo", "approx", "D2", "D4", "D8", "dynamic",  # the reuse rungs, then foveated
                           "reproj-stereo", "reproj", "dynamic+fov-low", "dynamic+fov-medium", "dynamic+fov-high",
                           "dynamic+fov-medium-ring"]
    for c in report["configs"]:
        assert len(c["frame_ms"]) == 4 and c["median_ms"] > 0 and c["p95_ms"] >= c["median_ms"]
        assert c["fps"] == pytest.approx(1000 / c["median_ms"])
        assert set(c["stages_median_ms"]) == {"derive", "cull", "shade", "project", "bin", "rasterize", "warp",
                                              "composite"}
        reuse = c["pixel_reuse"]
        assert (reuse is None) == ("reproj" not in c["name"])
        if reuse is not None:  # the shares of the reused tiles and the rasterized pixels, per frame
            assert len(reuse["tiles_reused"]) == 4 and 0 <= reuse["tiles_reused_mean"] <= 1
            assert 0 < reuse["pixels_rasterized_mean"] <= 1
        assert c["peak_memory_bytes"] > 0 and c["memory_kind"] == "rss (whole interleaved run)"
        lo, hi = c["speedups"]["vs_first"]["ci95"]
        assert lo <= c["speedups"]["vs_first"]["ratio"] <= hi
        assert c["work_per_frame"]["tile_intersections"] > 0
        assert c["render_config"]["backend"] == c["name"].split("/")[0]
        q = c["quality"]
        assert q["sampled_frames"] == [0, 3] and [f["frame"] for f in q["frames"]] == [0, 3]
        assert 0 <= q["flip"] <= 1 and q["flip_ppd"] > 0
        finite = [f for f in q["frames"] if f["psnr_db"] is not None]  # None: an identical frame
        assert q["worst_frame"] in q["frames"]
        assert not finite or q["worst_frame"]["psnr_db"] == min(f["psnr_db"] for f in finite)
    ref = report["configs"][0]
    assert ref["quality"]["exact"] is True and ref["speedup_vs_first"] == 1.0
    assert ref["quality"]["flip"] == 0 and all(f["psnr_db"] is None for f in ref["quality"]["frames"])
    if "cpu/none" in names:
        cpu = report["configs"][names.index("cpu/none")]
        assert cpu["quality"]["psnr_db"] > 60 and cpu["quality"]["ssim"] > 0.999
        assert cpu["work_per_frame"]["gaussian_pixel_evaluations"] > 0
    d4 = report["configs"][names.index(names[-9])]  # .../D4
    assert d4["cache"]["hit_rate"] > 0 and d4["cache"]["refreshes"]["first"] == 1
    assert d4["speedup_vs_no_reuse"] is not None
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    medium = report["configs"][names.index(names[-3])]
    q = medium["quality"]
    assert q["psnr_fovea_db"] > 60 and q["psnr_periphery_db"] < q["psnr_fovea_db"] and q["ssim_periphery"] <= 1
    # (FLIP's filters span degrees of view, so the periphery's error reaches into a small fovea's
    # FLIP: only PSNR separates the regions at this size.)
    assert 0 <= q["flip_fovea"] <= 1 and {"flip_fovea", "psnr_periphery_db"} <= set(q["worst_frame"])
    assert medium["speedup_vs_unfoveated"] == medium["speedups"]["vs_unfoveated"]["ratio"] > 0
    assert medium["stages_median_ms"]["composite"] > 0
    drawn = medium["drawn_per_region"]  # what each region's view drew, per frame
    assert list(drawn)[0] == "fovea" and all(d["gaussians_mean"] > 0 for d in drawn.values())
    assert report["configs"][names.index(names[-7])]["drawn_per_region"] is None  # .../dynamic: not foveated
    ringed = report["configs"][-1]["drawn_per_region"]
    assert list(ringed) == ["fovea", "ring", "far"] and ringed["far"]["intersections_mean"] > 0
    assert report["configs"][-1]["speedup_vs_unfoveated"] is not None  # a level name with a hyphen
    table = capsys.readouterr().out
    assert "drawn per frame: fovea" in table
    assert "speed-up" in table and "torch" in table and "interleaved frame by frame" in table
    assert "dynamic+fov-medium" in table and "periphery" in table and "FLIP" in table and "worst" in table


def test_sequential_bench_and_foveation_for_every_configuration(tmp_path, tiny_scene):
    out = tmp_path / "out"
    assert main(["bench", str(tiny_scene), "--configs", "torch,cpu/stereo", "--foveation", "low", "--sequential",
                 "--frames", "3", "--warmup", "0", "--size", "48x32", "--quality-frames", "1", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert [c["name"] for c in report["configs"]] == ["torch/stereo+fov-low", "cpu/stereo+fov-low"]
    assert report["settings"]["interleaved"] is False
    assert all(c["memory_kind"] == "rss" and "psnr_fovea_db" in c["quality"] for c in report["configs"])


def test_ratio_spread_brackets_the_ratio_and_is_paired():
    from gscache.bench.stats import ratio_spread

    slow, fast = [10.0, 12.0, 30.0, 11.0, 10.5], [5.0, 6.0, 15.0, 5.5, 5.25]  # a busy frame hit both
    r = ratio_spread(slow, fast)
    assert r["ratio"] == pytest.approx(2.0) and r["paired_min"] == pytest.approx(2.0) == r["paired_max"]
    assert r["ci95"][0] <= 2.0 <= r["ci95"][1]
    with pytest.raises(GscacheError):
        ratio_spread([1.0], [1.0, 2.0])


def test_bench_replays_a_trajectory_file(tmp_path, tiny_scene):
    save_trajectory(orbit((0.0, 0.0, 3.0), 3.0, 3), tmp_path / "path.json")
    out = tmp_path / "out"
    assert main(["bench", str(tiny_scene), "--trajectory", str(tmp_path / "path.json"), "--configs", "torch",
                 "--size", "32x32", "--warmup", "0", "--quality-frames", "0", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["settings"]["frames"] == 3 and report["configs"][0]["quality"] == {}


@pytest.mark.parametrize("argv,message", [
    (["bench", "--size", "big8k"], "--size"),
    (["bench", "/no/such/scene.splat"], "no such scene file"),
    (["bench", "--frames", "0"], "--frames"),
    (["bench", "--configs", "warp-drive"], "unknown backend"),
    (["bench", "--configs", "torch/D3"], "unknown reuse mode"),
    (["bench", "--configs", "torch/dynamic:4"], "pixel-reuse mode's error bound"),
    (["bench", "--configs", "torch/reproj:-1"], "pixel-reuse mode's error bound"),
    (["bench", "--configs", "torch/reproj:lots"], "pixel-reuse mode's error bound"),
    (["bench", "--configs", "torch/dynamic+fov-medium+lod-0"], "periphery level of detail"),
    (["bench", "--configs", "torch/dynamic+fov-medium+lod-x"], "periphery level of detail"),
    (["bench", "--trajectory", "spiral"], "trajectory"),
    (["bench", "--quality-frames", "-1"], "--quality-frames"),
])
def test_bench_bad_options_fail_clearly(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bench_out").exists()


def test_a_reuse_mode_takes_its_error_bound_after_a_colon():
    from gscache.bench.runner import named_config

    name, cfg = named_config("cpu/reproj:8+fov-low", "cpu")
    assert name == "cpu/reproj:8+fov-low" and cfg.cache.pixel_reuse == "temporal"
    assert cfg.cache.reuse_error_bound == 8.0 and cfg.foveation.enabled
    assert named_config("cpu/reproj-stereo", "cpu")[1].cache.reuse_error_bound == 2.0  # the default
    name, cfg = named_config("cpu/dynamic+fov-high+lod-8", "cpu")
    assert name == "cpu/dynamic+fov-high+lod-8" and cfg.foveation.periphery_lod_px == 8.0
    assert cfg.foveation.periphery_scale == named_config("cpu/dynamic+fov-high", "cpu")[1].foveation.periphery_scale


def test_flip_and_the_viewing_condition():
    from gscache.bench.metrics import flip, pixels_per_degree

    assert pixels_per_degree(512, 512, 90.0) == pytest.approx(512 / 90.0)
    assert pixels_per_degree(2048, 1024, 90.0) > pixels_per_degree(1024, 1024, 90.0)
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 40, 56, 3, generator=g)
    small = (ref + 0.02 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    large = (ref + 0.2 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    assert flip(ref, ref, 10.0) == 0.0
    assert 0 < flip(small, ref, 10.0) < flip(large, ref, 10.0) <= 1
    left = torch.zeros(40, 56, dtype=torch.bool)
    left[:, :28] = True
    half = torch.where(left[..., None], large, ref)  # the error on the left half only
    assert flip(half, ref, 10.0, ~left) < flip(half, ref, 10.0, left)
