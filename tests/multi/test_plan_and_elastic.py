"""The tile planner and the elastic controller: pure functions, checked on synthetic and real
cost maps and on synthetic timing sequences."""

from __future__ import annotations

import pytest
import torch

from gscache import GscacheError, Renderer, RenderConfig, StereoRig
from gscache.multi import ElasticController, plan_tiles, row_costs
from gscache.scenes import demo_scene
from gscache.trajectory import default_head_pose


def _covers_every_row_once(plan, n_eyes, tiles_y):
    seen = torch.zeros(n_eyes, tiles_y, dtype=torch.int32)
    for bands in plan.bands:
        for b in bands:
            seen[b.eye, b.row0:b.row1] += 1
    return bool((seen == 1).all())


@pytest.mark.parametrize("weights", [[1.0], [1.0, 1.0], [1.0, 1.0, 1.0], [3.0, 1.0], [1.0, 2.0, 4.0, 1.0],
                                     [1.0] * 8])
def test_plans_cover_every_row_once_and_balance(weights):
    gen = torch.Generator().manual_seed(len(weights))
    costs = torch.rand(2, 64, generator=gen) * 100 + 1  # fine-grained rows: good balance is possible
    plan = plan_tiles(costs, weights)
    assert plan.n_devices == len(weights) and _covers_every_row_once(plan, 2, 64)
    assert plan.balance() < 1.1
    assert plan == plan_tiles(costs, weights)  # deterministic
    # Each device's load is close to its share of the total.
    total = sum(plan.loads)
    for load, w in zip(plan.loads, weights):
        assert abs(load / total - w / sum(weights)) < 0.06


def test_whole_eyes_when_they_balance_and_bands_when_not():
    even = torch.full((2, 32), 10.0)
    assert plan_tiles(even, [1.0, 1.0]).kind == "whole-eyes"
    lopsided = torch.cat([torch.full((1, 32), 30.0), torch.full((1, 32), 10.0)])
    plan = plan_tiles(lopsided, [1.0, 1.0])
    assert plan.kind == "bands" and plan.balance() < 1.05
    assert plan_tiles(even, [1.0, 1.0, 1.0]).kind == "bands"  # a third device would idle


def test_bad_planner_input():
    with pytest.raises(GscacheError, match="weights"):
        plan_tiles(torch.ones(2, 4), [1.0, 0.0])
    with pytest.raises(GscacheError, match="costs"):
        plan_tiles(-torch.ones(2, 4), [1.0])


def test_balance_on_a_real_cost_map():
    scene = demo_scene()
    rig = StereoRig.symmetric(default_head_pose(scene), 256, 256, 90.0)
    frame = Renderer(scene, RenderConfig(backend="cpu")).render(rig)
    tiles_x = tiles_y = 16
    rows = row_costs(frame.tile_costs, tiles_x, tiles_y)
    assert float(rows.sum()) == frame.counters.n_intersections
    for n in (2, 4, 8):
        plan = plan_tiles(rows, [1.0] * n)
        assert _covers_every_row_once(plan, 2, tiles_y)
        # Rows are the unit of work: the balance is limited by the costliest row.
        bound = 1.0 + n * float(rows.max()) / float(rows.sum())
        assert plan.balance() <= bound


def _run(controller, frame_ms_seq, predict):
    decisions = []
    for ms in frame_ms_seq:
        decisions.append(controller.update(ms, predict))
    return decisions


def test_elastic_scales_out_with_warmup_and_in_without_oscillating():
    c = ElasticController(n_max=4, target_ms=10.0, hysteresis=3, warmup_frames=2)
    slow = lambda n: 30.0 / n  # noqa: E731  predicted frame time with n devices
    decisions = _run(c, [25.0] * 3, slow)
    assert decisions == [None, None, "grow"] and c.active == 2 and c.working == [0]  # warming
    _run(c, [25.0, 25.0], slow)
    assert c.working == [0, 1]
    # Frames now meet the target with 2 devices; one device would not (30 > 0.7 * 10): stay.
    assert _run(c, [9.0] * 20, slow) == [None] * 20 and c.active == 2
    # The load drops: one device would do (predicted 5 < 7) -> shrink once, after the hysteresis.
    light = lambda n: 5.0  # noqa: E731
    decisions = _run(c, [4.0] * 10, light)
    assert decisions.count("shrink") == 1 and c.active == 1 and decisions.index("shrink") == 2


def test_elastic_never_exceeds_its_bounds():
    c = ElasticController(n_max=2, target_ms=5.0, hysteresis=1, warmup_frames=0)
    _run(c, [100.0] * 20, lambda n: 100.0)
    assert c.active == 2
    _run(c, [1.0] * 20, lambda n: 0.1)
    assert c.active == 1
    with pytest.raises(GscacheError, match="n_max >= 1"):
        ElasticController(n_max=0, target_ms=5.0)


def test_simulation_script_predicts_a_speed_up(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "simulate_devices.py"
    spec = importlib.util.spec_from_file_location("simulate_devices", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--frames", "5", "--size", "128x128", "--backend", "cpu", "--devices", "1,2,4",
                        "--plot", str(tmp_path / "sim.png")]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    ms = {int(r[0]): float(r[1]) for r in rows}
    assert set(ms) == {1, 2, 4} and ms[1] > ms[2] > ms[4]  # more devices, less rasterization each
    assert (tmp_path / "sim.png").stat().st_size > 0
