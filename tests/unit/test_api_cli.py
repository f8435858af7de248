"""The public API (render, Renderer, configs, backends) and the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gscache import GscacheError, RenderConfig, Renderer, render
from gscache import backends
from gscache.cli import main
from gscache.config import RasterConfig
from gscache.scenes import city_scene, demo_scene
from tests._helpers import random_scene, rig


def test_render_returns_a_frame_with_times_and_counters():
    frame = render(random_scene(200, seed=1), rig(64, 48), RenderConfig(device="cpu"))
    assert frame.rgb.shape == (2, 48, 64, 3) and frame.alpha.shape == (2, 48, 64)
    assert frame.counters.n_gaussians == 200 and 0 < frame.counters.n_visible <= 200
    assert frame.counters.n_intersections > 0
    assert frame.times.total_ms > 0 and frame.times.rasterize_ms > 0
    sbs = frame.to_uint8()
    assert sbs.shape == (48, 128, 3) and sbs.dtype == np.uint8


def test_renderer_keeps_the_scene_and_renders_repeatably():
    r = Renderer(random_scene(100), RenderConfig(device="cpu"))
    a, b = r.render(rig()), r.render(rig())
    assert torch.equal(a.rgb, b.rgb)


def test_backend_registry_lists_torch_and_rejects_unknown_names():
    assert backends.available()["torch"] == "ok"
    assert backends.get("auto").name in backends.available()
    with pytest.raises(GscacheError, match="unknown"):
        Renderer(random_scene(3), RenderConfig(backend="nope"))


@pytest.mark.parametrize("kwargs,field", [(dict(raster=RasterConfig(background=(2.0, 0, 0))), "background"),
                                          (dict(raster=RasterConfig(alpha_max=0.0)), "alpha_max")])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(GscacheError, match=field):
        RenderConfig(**kwargs)


def test_demo_scene_is_deterministic_and_view_dependent():
    a, b = demo_scene(seed=0), demo_scene(seed=0)
    assert 20_000 <= a.count <= 80_000 and a.sh_degree == 3
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))
    assert a.sh[:, 1:].abs().max() > 0.1  # view-dependent SH bands are present


def test_city_scene_scales_to_the_requested_count():
    c = city_scene(n_gaussians=200_000, blocks=3)
    assert 150_000 < c.count < 260_000


def test_cli_render_writes_a_side_by_side_png(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["render", "--out", str(out), "--size", "48x32"]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (32, 96, 3)
    assert img.max() > 50  # the demo scene is visible, not just background
    assert "stereo frame" in capsys.readouterr().out


def test_cli_render_mono_and_trajectory_frames(tmp_path):
    assert main(["render", "--out", str(tmp_path / "m.png"), "--size", "32x32", "--mono"]) == 0
    assert np.asarray(Image.open(tmp_path / "m.png")).shape == (32, 32, 3)
    assert main(["render", "--out", str(tmp_path / "v.png"), "--size", "16x16", "--trajectory", "vr", "--frames", "3"]) == 0
    assert sorted(p.name for p in tmp_path.glob("v_*.png")) == ["v_0000.png", "v_0001.png", "v_0002.png"]


def test_cli_render_with_pixel_reuse(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path / "r.png"), "--size", "64x48", "--backend", "cpu", "--trajectory",
                 "vr", "--frames", "4", "--reuse", "reproj", "--reuse-bound", "3"]) == 0
    assert "pixel reuse (reproj)" in capsys.readouterr().out
    assert main(["render", "--out", str(tmp_path / "x.png"), "--reuse", "stereo", "--reuse-bound", "3"]) == 2
    assert "--reuse-bound" in capsys.readouterr().err


def test_cli_render_of_a_scene_file(tmp_path):
    from gscache import save_scene

    save_scene(random_scene(50, sh_degree=1), tmp_path / "s.ply")
    assert main(["render", str(tmp_path / "s.ply"), "--out", str(tmp_path / "s.png"), "--size", "24x24"]) == 0
    assert (tmp_path / "s.png").exists()


def test_cli_render_foveated_with_a_gaze(tmp_path):
    """The fovea of a foveated CLI render is the plain render's pixels (the PNG bytes)."""
    from gscache import save_scene
    from gscache.presets import FOVEATION_LEVELS
    from gscache.stages.foveate import fovea_layout

    save_scene(random_scene(400, sh_degree=1, spread=2.0), tmp_path / "s.ply")
    args = [str(tmp_path / "s.ply"), "--size", "64x48", "--backend", "cpu"]
    assert main(["render", *args, "--out", str(tmp_path / "plain.png")]) == 0
    assert main(["render", *args, "--out", str(tmp_path / "fov.png"), "--foveation", "medium", "--gaze", "0.3,0.6"]) == 0
    plain, fov = (np.asarray(Image.open(tmp_path / f)) for f in ("plain.png", "fov.png"))
    x0, y0, x1, y1 = fovea_layout(64, 48, 1, FOVEATION_LEVELS["medium"], torch.tensor([[0.3, 0.6]])).inner[0]
    assert np.array_equal(plain[y0:y1, x0:x1], fov[y0:y1, x0:x1]) and not np.array_equal(plain, fov)


@pytest.mark.parametrize("argv,message", [
    (["render", "--out", "x.png", "--gaze", "middle", "--foveation", "low"], "--gaze"),
    (["render", "--out", "x.png", "--gaze", "2,0.5", "--foveation", "low", "--size", "16x16"], "gaze"),
    (["render", "--out", "x.png", "--size", "big"], "--size"),
    (["render", "--out", "x.png", "--frames", "0"], "--frames"),
    (["render", "/no/such/scene.ply", "--out", "x.png"], "no such scene file"),
    (["render", "--out", "x.jpg", "--size", "8x8"], ".png"),
    (["render", "--out", "x.png", "--background", "1,2"], "--background"),
    (["info", "/no/such.splat"], "no such scene file"),
])
def test_cli_bad_options_fail_clearly(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*tmp"))


def test_cli_info_and_console_script(tmp_path):
    from gscache import save_scene

    save_scene(random_scene(30, sh_degree=3), tmp_path / "s.ply")
    out = subprocess.run([sys.executable, "-m", "gscache.cli", "info", str(tmp_path / "s.ply")],
                         capture_output=True, text=True, check=True).stdout
    assert "gaussians:   30" in out and "sh degree:   3" in out and "MiB" in out


def test_cuda_device_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the error is for machines without one")
    with pytest.raises(GscacheError, match="config.device"):
        Renderer(random_scene(3), RenderConfig(device="cuda"))


def test_cli_prints_loader_warnings(tmp_path, capsys):
    from gscache import save_scene

    save_scene(random_scene(10, sh_degree=0), tmp_path / "s.splat")
    data = bytearray((tmp_path / "s.splat").read_bytes())
    data[12:16] = np.float32(-1.0).tobytes()  # first Gaussian's x scale: not drawable, dropped on load
    (tmp_path / "s.splat").write_bytes(bytes(data))
    assert main(["info", str(tmp_path / "s.splat")]) == 0
    assert "warning: " in capsys.readouterr().err


def test_cli_path_errors_are_one_line_with_exit_2(tmp_path, capsys):
    from gscache.cli import main

    (tmp_path / "file").write_text("x")
    for argv in (["render", "--out", str(tmp_path / "file" / "x.png"), "--size", "16x16"],
                 ["render", "--seed", "-1", "--out", str(tmp_path / "a.png")],
                 ["render", "--distance", "-1", "--out", str(tmp_path / "a.png")],
                 ["generate", "structured-city", str(tmp_path / "file")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err and "Traceback" not in "\n".join(err) and "error" in err[-1], argv


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    from gscache.atomic import atomic_write

    target = tmp_path / "out.png"
    dead = tmp_path / ".out.png.999999999.abcd.tmp"  # no process has that pid
    dead.write_bytes(b"")
    with atomic_write(target) as f:
        f.write(b"data")
    assert target.read_bytes() == b"data" and not dead.exists()
    assert not list(tmp_path.glob(".out.png.*"))


def test_ctrl_c_exits_130_without_a_traceback(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    # SIGINT as a terminal's foreground process has it: a shell starts background jobs with it
    # ignored, and the child would inherit that (the run would just go on).
    proc = subprocess.Popen([sys.executable, "-m", "gscache.cli", "bench", "--frames", "400", "--configs", "torch",
                             "--size", "256x256", "--out", str(tmp_path / "b")], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupt once the frames run (its progress bar is up), not during the imports.
    seen = ""
    while "bench:" not in seen and proc.poll() is None:
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
