"""Trajectories: orbit, VR head motion, fly-through and Inria cameras.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gscache import GscacheError
from gscache import trajectories as tr
from gscache.camera import StereoRig, look_at


def test_orbit_keeps_its_radius_and_looks_at_the_centre():
    t = tr.orbit((1.0, 0.0, 2.0), 3.0, 36, height=0.5)
    centres = t.T_world_head[:, :3, 3]
    horizontal = centres - torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(horizontal[:, [0, 2]].norm(dim=1), torch.full((36,), 3.0, dtype=torch.float64))
    forward = t.T_world_head[:, :3, 2]
    to_centre = torch.nn.functional.normalize(-horizontal, dim=1)
    assert ((forward * to_centre).sum(1) > 0.99).all()


def test_vr_motion_is_seeded_and_has_realistic_head_speeds():
    start = look_at((0.0, -1.6, -3.0), (0.0, -1.0, 0.0))
    a = tr.vr_head_motion(start, 720, fps=72, seed=5)
    b = tr.vr_head_motion(start, 720, fps=72, seed=5)
    c = tr.vr_head_motion(start, 720, fps=72, seed=6)
    assert torch.equal(a.T_world_head, b.T_world_head)
    assert not torch.equal(a.T_world_head, c.T_world_head)
    speeds = tr.angular_speeds_deg_s(a)
    # Natural head turns: typically tens of degrees per second, peaks well under 300 deg/s.
    assert 5.0 < speeds.median() < 90.0
    assert speeds.max() < 300.0
    # Translations stay within a few centimetres of the start (seated or standing user).
    offsets = (a.T_world_head[:, :3, 3] - start[:3, 3]).norm(dim=1)
    assert offsets.max() < 0.2
    assert offsets[0] == 0.0  # it starts at the given pose


def test_fly_through_passes_through_its_waypoints():
    wp = np.array([[0.0, -1.0, 0.0], [4.0, -1.0, 2.0], [8.0, -2.0, 0.0]])
    t = tr.fly_through(wp, 41)
    torch.testing.assert_close(t.T_world_head[0, :3, 3], torch.from_numpy(wp[0]))
    torch.testing.assert_close(t.T_world_head[20, :3, 3], torch.from_numpy(wp[1]))
    torch.testing.assert_close(t.T_world_head[-1, :3, 3], torch.from_numpy(wp[2]))


def test_cameras_json_is_read_as_camera_to_world(tmp_path):
    T = look_at((1.0, 2.0, 3.0), (0.0, 0.0, 0.0)).numpy()
    cams = [{"id": 0, "img_name": "a", "width": 640, "height": 480, "position": T[:3, 3].tolist(),
             "rotation": T[:3, :3].tolist(), "fx": 500.0, "fy": 510.0}]
    (tmp_path / "cameras.json").write_text(json.dumps(cams))
    t = tr.read_cameras_json(tmp_path / "cameras.json")
    torch.testing.assert_close(t.T_world_head[0], torch.from_numpy(T))
    assert t.intrinsics[0].fy == 510.0 and t.intrinsics[0].cx == 320.0
    cam = t.cameras()[0]
    torch.testing.assert_close(cam.position, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("content,message", [("[", "cannot read"), ("{}", "non-empty JSON list"),
                                             ('[{"width": 1}]', "camera 0"), ('[{"width": 0, "height": 4, "position": [0,0,0], '
                                              '"rotation": [[1,0,0],[0,1,0],[0,0,1]], "fx": 1, "fy": 1}]', "width")])
def test_bad_cameras_json(tmp_path, content, message):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(GscacheError, match=message):
        tr.read_cameras_json(tmp_path / "c.json")


def test_rigs_follow_the_trajectory():
    t = tr.orbit((0.0, 0.0, 0.0), 2.0, 4)
    template = StereoRig.symmetric(torch.eye(4), 16, 16)
    rigs = list(t.rigs(template))
    assert len(rigs) == 4 and torch.equal(rigs[2].T_world_head, t.T_world_head[2])


def test_frame_count_is_checked():
    with pytest.raises(GscacheError, match="n_frames"):
        tr.orbit((0, 0, 0), 1.0, 0)
