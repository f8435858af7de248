"""Pixel reuse over several devices (gscache.multi with CacheConfig.pixel_reuse): the presenting
renderer decides which tiles to rasterize, only those are spread over the devices, and every
frame is the single-device pixel-reuse frame bit for bit (rasterized pixels are exact either way;
the warp and the decisions are the presenter's); a failed device's tiles are re-rendered."""

from __future__ import annotations

import pytest
import torch

from gscache import Renderer, StereoRig, open_renderer
from gscache.multi import ProcessDevice
from gscache.multi.devices import LocalDevice
from gscache.trajectory import vr_head_motion
from tests.multi._faults import FaultyDevice
from tests.unit.test_pixel_reuse import START, _cfg, wall_scene


def _frames(multi, single, poses, w=160, h=128):
    for T in poses:
        rig = StereoRig.symmetric(T, w, h, 70.0)
        yield multi.render(rig), single.render(rig), rig


@pytest.mark.parametrize("mode", ["temporal", "stereo"])
def test_split_pixel_reuse_equals_one_device_and_schedules_only_rasterized_tiles(mode):
    scene = wall_scene(7)
    cfg = _cfg(mode, bound=4.0)
    poses = vr_head_motion(START, 7, seed=7, sway_m=0.0).T_world_head
    with open_renderer(scene, cfg, devices=["local"]) as multi:
        multi.add_devices([LocalDevice(Renderer(scene, cfg), "cpu-replica")])
        single = Renderer(scene, cfg)
        reused_any = False
        for k, (a, b, rig) in enumerate(_frames(multi, single, poses)):
            assert torch.equal(a.rgb, b.rgb) and torch.equal(a.median_depth, b.median_depth), k
            assert a.reuse.tiles_reused == b.reuse.tiles_reused
            share = sum(a.reuse.tiles_reused) / 2
            reused_any |= share > 0
            # Only rasterized tiles are scheduled: the cost the devices were given is that of
            # the tiles not reused (whole tiles: those with refused pixels count whole).
            scheduled = sum(d.cost for d in a.schedule.devices)
            full = float(multi.last_costs.sum())
            assert scheduled <= full + 1e-6
            if share > 0:
                assert scheduled < full
            assert any(d.state == "working" for d in a.schedule.devices)
        assert reused_any


def test_a_device_that_fails_mid_frame_has_its_tiles_rerendered_with_reuse(tmp_path):
    scene = wall_scene(7)
    cfg = _cfg("temporal", bound=4.0)
    poses = vr_head_motion(START, 5, seed=7, sway_m=0.0).T_world_head
    with open_renderer(scene, cfg, devices=["local"]) as multi:
        worker = FaultyDevice(ProcessDevice(scene, cfg, 1, name="proc1", factory=Renderer))
        multi.add_devices([worker])
        single = Renderer(scene, cfg)
        for k, (a, b, rig) in enumerate(_frames(multi, single, poses)):
            if k == 3:
                while not multi.plan(rig, [0, 1]).bands[1]:
                    multi.throughput[1] *= 2
                worker.fail_next("raise")
            assert torch.equal(a.rgb, b.rgb), k
        states = [d.state for d in a.schedule.devices]
        assert states[1].startswith("failed") or multi.devices[1].failed
