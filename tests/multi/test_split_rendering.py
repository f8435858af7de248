"""Split rendering equals single-device rendering bit for bit (in-process devices and CPU worker
processes, several plans, both eyes), and failed or hung workers are recovered within a frame."""

from __future__ import annotations

import time

import pytest
import torch

from gscache import CacheConfig, GscacheError, Renderer, RenderConfig, StereoRig, open_renderer
from gscache.camera import Camera
from gscache.multi import Band, ProcessDevice, ScheduleConfig, parse_devices
from gscache.multi.devices import render_share
from gscache.scenes import structured_demo
from gscache.trajectory import default_head_pose, vr_head_motion
from tests._backends import params
from tests._helpers import random_scene
from tests.multi._faults import FaultyDevice, HangAtFifth

CFG = RenderConfig(backend="cpu")


@pytest.fixture(scope="module")
def scene():
    return random_scene(3000, seed=5, sh_degree=2)


def _rig(scene, w=96, h=80):
    return StereoRig.symmetric(default_head_pose(scene), w, h, 80.0)


def _assemble(rig, shares):
    """The shares' rgb [2, H, W, 3] and median depth [2, H, W]."""
    rgb = torch.zeros(2, rig.height, rig.width, 3)
    median = torch.zeros(2, rig.height, rig.width)
    for res in shares:
        for band, (r, _, _, m) in zip(res.bands, res.rows):
            rgb[band.eye, band.row0 * 16:band.row0 * 16 + r.shape[0]] = r
            median[band.eye, band.row0 * 16:band.row0 * 16 + r.shape[0]] = m
    return rgb, median


@pytest.mark.parametrize("split", [
    [[Band(0, 0, 5)], [Band(1, 0, 5)]],  # whole eyes
    [[Band(0, 0, 2)], [Band(0, 2, 5), Band(1, 0, 1)], [Band(1, 1, 5)]],  # bands across the eye boundary
    [[Band(0, 0, 1), Band(1, 4, 5)], [Band(0, 1, 5), Band(1, 0, 4)]],  # several bands per device
])
@pytest.mark.parametrize("backend", params("cpu", "cuda-sim"))
def test_any_split_of_the_tiles_reassembles_the_exact_frame(scene, split, backend):
    cfg = RenderConfig(backend=backend)
    rig = _rig(scene)
    full = Renderer(scene, cfg).render(rig)
    shares = [render_share(Renderer(scene, cfg), rig, tuple(bands)) for bands in split]
    rgb, median = _assemble(rig, shares)
    assert torch.equal(rgb, full.rgb) and torch.equal(median, full.median_depth)


def test_tile_mask_leaves_other_tiles_at_the_background_and_skips_eyes_without_tiles(scene):
    rig = _rig(scene)
    mask = torch.zeros(2, 6 * 5, dtype=torch.bool)
    mask[1, :6] = True  # the first tile row of the right eye
    frame = Renderer(scene, CFG).render(rig, tile_mask=mask)
    full = Renderer(scene, CFG).render(rig)
    assert torch.equal(frame.rgb[1, :16], full.rgb[1, :16])
    assert frame.alpha[0].sum() == 0 and frame.alpha[1, 16:].sum() == 0
    # The right eye was binned in full, the left (no tile in the mask) not at all.
    assert frame.counters.n_intersections == int(full.tile_costs[1].sum()) < full.counters.n_intersections
    assert torch.equal(frame.tile_costs[1], full.tile_costs[1]) and frame.tile_costs[0].sum() == 0
    assert frame.images.evaluations < full.images.evaluations

@pytest.mark.slow

def test_worker_processes_render_exactly_and_recover_from_faults(scene):
    traj = vr_head_motion(default_head_pose(scene), 6, seed=2)
    template = _rig(scene)
    single = Renderer(scene, CFG)
    with open_renderer(scene, CFG, devices=["local"], schedule=ScheduleConfig(timeout_s=5.0)) as multi:
        # Worker 2 stays alive but stops answering at its fifth frame (the timeout path).
        workers = [FaultyDevice(ProcessDevice(scene, CFG, 1, name=f"proc{i}", factory=factory))
                   for i, factory in ((1, Renderer), (2, HangAtFifth))]
        multi.add_devices(workers)
        for pose in traj.T_world_head[:3]:  # plans change as throughputs are measured
            rig = template.with_pose(pose)
            frame, exact = multi.render(rig), single.render(rig)
            # Shared-memory rows from the worker processes: every image plane, median depth included.
            assert torch.equal(frame.rgb, exact.rgb) and torch.equal(frame.median_depth, exact.median_depth)
            assert frame.schedule.wall_ms > 0 and frame.schedule.active == 3
        rig = template.with_pose(traj.T_world_head[3])
        while not multi.plan(rig, [0, 1, 2]).bands[1]:  # make sure the worker has tiles to lose
            multi.throughput[1] *= 2
        workers[0].fail_next("raise")
        frame = multi.render(rig)
        assert torch.equal(frame.rgb, single.render(rig).rgb)  # its bands re-rendered by the presenter
        states = [d.state for d in frame.schedule.devices]
        assert states[1].startswith("failed") and "IndexError" in states[1]  # the worker's own error
        assert frame.schedule.recovered_ms > 0 and frame.schedule.active == 2
        # A hung worker: dropped after the timeout, its tiles re-rendered, no hang.
        rig = template.with_pose(traj.T_world_head[4])
        while not multi.plan(rig, [0, 2]).bands[1]:
            multi.throughput[2] *= 2
        start = time.perf_counter()
        frame = multi.render(rig)
        took = time.perf_counter() - start
        assert torch.equal(frame.rgb, single.render(rig).rgb)
        assert 5.0 <= took < 5.0 + 10.0  # the timeout, then the recovery
        assert frame.schedule.devices[2].state.startswith("failed") and not workers[1].process.is_alive()
        assert multi.working() == [0]
        frame = multi.render(template.with_pose(traj.T_world_head[5]))  # goes on with the presenter alone
        assert torch.equal(frame.rgb, single.render(template.with_pose(traj.T_world_head[5])).rgb)

@pytest.mark.slow

def test_structured_scene_and_temporal_cache_on_workers():
    scene = structured_demo(seed=0, spacing=0.4)
    cfg = RenderConfig(backend="cpu", cache=CacheConfig(depth=3))
    rig = StereoRig.symmetric(default_head_pose(scene), 64, 48, 80.0)
    single = Renderer(scene, cfg)
    with open_renderer(scene, cfg, devices=["proc", "proc"]) as multi:
        for _ in range(3):  # D = 3: a refresh, then hits, on every device as on one
            a, b = multi.render(rig), single.render(rig)
            assert torch.equal(a.rgb, b.rgb)
        assert a.cache is not None and a.cache.hit


def test_device_specs():
    assert parse_devices(["local", "proc", "proc:2", "cuda:1"]) == [
        ("local", {}), ("proc", {"threads": 1}), ("proc", {"threads": 2}), ("cuda", {"device": "cuda:1"})]
    for bad in (["gpu"], ["proc:0"], []):
        with pytest.raises(GscacheError, match="devices"):
            parse_devices(bad)


def test_elastic_schedule_grows_with_a_warm_up_when_frames_miss_the_target(scene):
    rig = _rig(scene)
    single = Renderer(scene, CFG).render(rig)
    schedule = ScheduleConfig(target_ms=1e-3, hysteresis=2, warmup_frames=1)  # every frame misses
    with open_renderer(scene, CFG, devices=["local", "local"], schedule=schedule) as r:
        states = []
        for _ in range(5):
            frame = r.render(rig)
            assert torch.equal(frame.rgb, single.rgb)  # whatever the device count
            states.append([d.state for d in frame.schedule.devices])
        assert states[0] == ["working", "idle"]
        assert ["working", "warming"] in states  # the new device renders a frame without tiles first
        assert states[-1] == ["working", "working"] and frame.schedule.active == 2


def test_a_mono_camera_is_refused_with_a_clear_error(scene):
    with open_renderer(scene, CFG, devices=["local"]) as multi:
        with pytest.raises(GscacheError, match="mono Camera.*single-device"):
            multi.render(Camera.from_pose(default_head_pose(scene), _rig(scene).left))
        frame = multi.render(_rig(scene))  # the same renderer goes on with stereo rigs
        assert frame.counters is not None and frame.schedule.active == 1


@pytest.mark.slow
def test_scene_changes_reach_workers_and_the_presenter_goes_on_alone(scene):
    rig = _rig(scene)
    other = random_scene(3000, seed=6, sh_degree=2)
    with open_renderer(scene, CFG, devices=["local", "proc"]) as multi:
        multi.render(rig)
        multi.set_scene(other)
        for _ in range(2):  # the worker renders the new scene too (its bands are exact)
            assert torch.equal(multi.render(rig).rgb, Renderer(other, CFG).render(rig).rgb)
        worker = multi.devices[1]
        worker.process.kill()
        worker.process.join()
        multi.render(rig)  # the worker's loss is found and its bands re-rendered
        multi.devices[0].failed = True  # and the local device marked gone: nothing left but the presenter
        frame = multi.render(rig)
        assert frame.schedule.active == 0 and "alone" in frame.schedule.plan
        assert torch.equal(frame.rgb, Renderer(other, CFG).render(rig).rgb)


@pytest.mark.slow
def test_a_stopped_worker_is_found_by_its_heartbeat_in_under_a_second(scene):
    rig = _rig(scene)
    with open_renderer(scene, CFG, devices=["local", "proc"], schedule=ScheduleConfig(timeout_s=30.0)) as multi:
        multi.render(rig)
        while not multi.plan(rig, [0, 1]).bands[1]:
            multi.throughput[1] *= 2
        multi.devices[1] = FaultyDevice(multi.devices[1])
        multi.devices[1].fail_next("stop")  # SIGSTOP: every thread of the worker stops
        start = time.perf_counter()
        frame = multi.render(rig)
        stalled = time.perf_counter() - start
        assert "no heartbeat" in frame.schedule.devices[1].state
        assert stalled < 1.0 + frame.schedule.recovered_ms / 1e3  # detection well under the 30 s timeout
        assert torch.equal(frame.rgb, Renderer(scene, CFG).render(rig).rgb)


@pytest.mark.slow
def test_concurrent_frames_from_two_threads_and_workers_reaped_without_close(scene):
    import concurrent.futures
    import gc

    rig = _rig(scene)
    multi = open_renderer(scene, CFG, devices=["local", "proc"])
    expected = Renderer(scene, CFG).render(rig).rgb
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        frames = list(pool.map(lambda _: multi.render(rig), range(6)))
    assert all(torch.equal(f.rgb, expected) for f in frames)
    process = multi.devices[1].process
    del multi, frames
    gc.collect()
    process.join(timeout=5)
    assert not process.is_alive() and process.exitcode is not None  # reaped, no zombie


@pytest.mark.slow
def test_config_changes_reach_every_device(scene):
    import dataclasses

    from gscache.config import BinConfig, RasterConfig

    rig = _rig(scene)
    new = dataclasses.replace(CFG, bin=BinConfig(tile_px=8), raster=RasterConfig(background=(0.2, 0.3, 0.4)))
    with open_renderer(scene, CFG, devices=["local", "proc"]) as multi:
        multi.render(rig)
        multi.set_config(new)
        for _ in range(2):  # the worker renders its bands with the new tiles and background too
            # Equal throughputs, so that the plan gives the worker rows whatever the machine's load
            # made of its last measurement (this test is about the config, not the planner).
            multi.throughput[1] = multi.throughput[0]
            frame = multi.render(rig)
            assert torch.equal(frame.rgb, Renderer(scene, new).render(rig).rgb)
        assert frame.schedule.devices[1].tiles > 0 and not frame.schedule.devices[1].state.startswith("failed")
    single = Renderer(scene, CFG)
    with pytest.raises(GscacheError, match="config.device"):
        single.set_config(dataclasses.replace(CFG, device="cuda:0"))


def _frames_until(multi, rig, done, limit_s=90.0):
    """Render frames until ``done(frame)`` or the time limit; returns the last frame."""
    deadline = time.monotonic() + limit_s
    while True:
        frame = multi.render(rig)
        if done(frame) or time.monotonic() > deadline:
            return frame
        time.sleep(0.05)


@pytest.mark.slow
def test_a_lost_worker_is_rebuilt_in_the_background_and_rejoins_after_warm_up(scene):
    rig = _rig(scene)
    other = random_scene(3000, seed=8, sh_degree=2)
    schedule = ScheduleConfig(retry_s=0.0, warmup_frames=2)
    with open_renderer(scene, CFG, devices=["proc"], schedule=schedule) as multi:
        assert multi.render(rig).schedule.active == 1
        first = multi.devices[0]
        first.process.kill()
        first.process.join()
        frame = multi.render(rig)  # found lost; the presenter renders the frame alone, exactly
        assert frame.schedule.devices[0].state.startswith("failed")
        assert torch.equal(frame.rgb, Renderer(scene, CFG).render(rig).rgb)
        frame = multi.render(rig)  # the rebuild starts: the frame loop does not wait for it
        assert "rebuilding" in frame.schedule.devices[0].state and "alone" in frame.schedule.plan
        multi.set_scene(other)  # while the worker starts: the one built from the old scene is not used
        states = []
        frame = _frames_until(multi, rig, lambda f: states.append(f.schedule.devices[0].state)
                              or f.schedule.devices[0].state == "working")
        assert frame.schedule.devices[0].state == "working", states[-3:]
        assert multi.devices[0] is not first and multi.devices[0].process.is_alive()
        assert states.count("warming") == 2  # warm-up frames without tiles before it took work
        assert torch.equal(frame.rgb, Renderer(other, CFG).render(rig).rgb)
    assert not first.process.is_alive()


def test_reviver_backs_off_gives_up_and_forgets_settled_failures():
    from gscache.multi.revive import Reviver

    class Built:
        closed = False

        def close(self):
            self.closed = True

    outcomes = []

    def build(i):
        def make():
            if outcomes.pop(0) == "fail":
                raise RuntimeError("no GPU")
            return Built()
        return make

    def settle(rev, *args):
        for job in list(rev.pending.values()):
            concurrent.futures.wait([job.future])
        return rev.poll(*args)

    import concurrent.futures

    rev = Reviver(retry_s=1.0, max_tries=2, settle_frames=3)
    yes = lambda i: True  # noqa: E731
    assert rev.poll([0], yes, build, 0, now=0.0) == {}  # found failed at t=0: back-off 1 s
    outcomes += ["fail"]
    rev.poll([0], yes, build, 0, now=1.0)
    assert rev.state(0) == "rebuilding"
    assert settle(rev, [0], yes, build, 0, 1.5) == {} and "RuntimeError: no GPU" in rev.errors[0]
    assert rev.poll([0], yes, build, 0, now=3.0) == {} and not rev.pending  # second back-off is 2 s
    outcomes += ["ok"]
    rev.poll([0], yes, build, 0, now=3.6)
    ready = settle(rev, [0], yes, build, 0, 3.7)
    assert list(ready) == [0] and rev.tries[0] == 2
    rev.frame_served([0, 0, 0])  # three frames with tiles: it settled
    rev.poll([0], yes, build, 0, now=10.0)  # fails again later: a new failure, tries start again
    assert rev.tries[0] == 0 and rev.state(0) is None
    outcomes += ["ok", "ok"]
    rev.poll([0], yes, build, 0, now=11.0)
    assert settle(rev, [0], yes, build, 1, 11.1) == {}  # built from generation 0, scheduler at 1: dropped
    assert rev.state(0) == "rebuilding" and rev.tries[0] == 1  # and started again at once, not counted
    assert list(settle(rev, [0], yes, build, 1, 11.2)) == [0]
    rev2 = Reviver(retry_s=0.0, max_tries=1)
    outcomes += ["fail"]
    rev2.poll([3], yes, build, 0, now=0.0)
    settle(rev2, [3], yes, build, 0, 0.1)
    rev2.poll([3], yes, build, 0, now=5.0)
    assert not rev2.pending and rev2.state(3).startswith("gave up after 1 rebuilds (RuntimeError: no GPU")
    assert Reviver(retry_s=None).poll([0], yes, build, 0, now=100.0) == {}
    assert not Reviver(retry_s=0.0).poll([0], lambda i: False, build, 0, now=1.0)  # a rank: never rebuilt
