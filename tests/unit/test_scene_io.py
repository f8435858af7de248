"""Scene readers and writers: round trips, real data, content detection and bad input."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch

from gscache import GscacheError, load_scene, save_scene
from gscache.errors import GscacheWarning
from gscache.scene import detect_format, read_npz_cameras
from gscache.scene.record import make_scene
from tests._helpers import random_scene
from tests.conftest import data_file
from tests.unit._sog_writer import encode_sog, write_sog_folder, write_sog_zip


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_round_trip(tmp_path, degree):
    scene = random_scene(257, seed=degree, sh_degree=degree)
    path = tmp_path / "s.ply"
    save_scene(scene, path)
    back = load_scene(path)
    assert back.sh_degree == degree and back.count == scene.count
    torch.testing.assert_close(back.means, scene.means)
    torch.testing.assert_close(back.sh, scene.sh)
    torch.testing.assert_close(back.quats, scene.quats)
    torch.testing.assert_close(back.scales, scene.scales, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(back.opacities, scene.opacities, rtol=1e-6, atol=1e-6)


def test_a_binary_ply_read_in_chunks_is_the_same_scene(tmp_path, monkeypatch):
    """read_ply reads a binary body a chunk of vertices at a time into the scene's tensors: chunks
    that split the vertices unevenly (7 rows) give the scene read in one chunk, bit for bit,
    little- and big-endian, float and double properties; a body shorter than the header says is
    refused before anything is allocated."""
    import gscache.scene.ply as ply

    scene = random_scene(53, seed=4, sh_degree=3)
    path = tmp_path / "s.ply"
    save_scene(scene, path)
    whole = load_scene(path)
    monkeypatch.setattr(ply, "CHUNK_ROWS", 7)
    chunked = load_scene(path)
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert torch.equal(getattr(chunked, name), getattr(whole, name)), name
    # The same vertices as big-endian doubles.
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode().replace("binary_little_endian", "binary_big_endian").replace("property float ",
                                                                                              "property double ")
    body = np.frombuffer(raw[end:], "<f4").astype(">f8").tobytes()
    (tmp_path / "be.ply").write_bytes(header.encode() + body)
    big = load_scene(tmp_path / "be.ply")
    torch.testing.assert_close(big.sh, whole.sh, rtol=0, atol=0)
    torch.testing.assert_close(big.scales, whole.scales)
    (tmp_path / "short.ply").write_bytes(raw[:-5])
    with pytest.raises(GscacheError, match=r"short\.ply: truncated: 53 vertices"):
        load_scene(tmp_path / "short.ply")


def test_ply_extra_properties_are_ignored_and_f_rest_is_channel_major(tmp_path):
    # Hand-written PLY: one Gaussian of degree 1 with an extra property in the middle.
    names = ["x", "y", "z", "extra", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    values = [1, 2, 3, 99, 0.1, 0.2, 0.3] + list(range(10, 19)) + [0.0, 0.0, np.log(2), np.log(3), 2, 0, 0, 0]
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
    header += "".join(f"property float {n}\n" for n in names) + "end_header\n"
    path = tmp_path / "hand.ply"
    path.write_bytes(header.encode() + np.array(values, "<f4").tobytes())
    s = load_scene(path)
    assert s.sh_degree == 1
    # f_rest_0..2 are the red coefficients 1..3, f_rest_3..5 green, f_rest_6..8 blue.
    torch.testing.assert_close(s.sh[0, 1:, 0], torch.tensor([10.0, 11.0, 12.0]))
    torch.testing.assert_close(s.sh[0, 1:, 2], torch.tensor([16.0, 17.0, 18.0]))
    torch.testing.assert_close(s.scales[0], torch.tensor([1.0, 2.0, 3.0]))
    assert s.opacities[0] == 0.5 and torch.equal(s.quats[0], torch.tensor([1.0, 0, 0, 0]))


def test_ascii_ply_is_read(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat ascii 1.0\nelement vertex 2\n" + "".join(f"property float {n}\n" for n in names) + "end_header\n"
    rows = "1 2 3 0 0 0 0 0 0 0 1 0 0 0\n4 5 6 0 0 0 0 0 0 0 1 0 0 0\n"
    (tmp_path / "a.ply").write_text(header + rows)
    s = load_scene(tmp_path / "a.ply")
    torch.testing.assert_close(s.means[1], torch.tensor([4.0, 5.0, 6.0]))


def test_splat_round_trip_is_exact_after_quantisation(tmp_path):
    scene = random_scene(100, seed=3, sh_degree=0)
    p1, p2 = tmp_path / "a.splat", tmp_path / "b.splat"
    save_scene(scene, p1)
    once = load_scene(p1)
    save_scene(once, p2)
    assert p1.read_bytes() == p2.read_bytes()  # quantisation is idempotent
    torch.testing.assert_close(once.means, scene.means)
    torch.testing.assert_close(once.scales, scene.scales)
    assert (once.opacities - scene.opacities).abs().max() <= 0.5 / 255 + 1e-6
    dots = (once.quats * scene.quats).sum(-1).abs()  # q and -q are the same rotation
    assert dots.min() > 0.999


def test_splat_writer_warns_about_dropped_sh(tmp_path):
    with pytest.warns(GscacheWarning, match="SH degree 2"):
        save_scene(random_scene(5, sh_degree=2), tmp_path / "x.splat")


def test_sog_folder_and_zip_decode_the_same(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    means = rng.normal(0, 2, (n, 3))
    quats = rng.normal(0, 1, (n, 4))
    log_scales = rng.uniform(-6, -1, (n, 3))
    f_dc = rng.normal(0, 1, (n, 3))
    opac = rng.uniform(0, 1, n)
    rest = rng.normal(0, 0.3, (n, 8, 3))
    files = encode_sog(means, quats, log_scales, f_dc, opac, rest)
    folder = load_scene(write_sog_folder(files, tmp_path / "sog"))
    zipped = load_scene(write_sog_zip(files, tmp_path / "scene.sog"))
    assert folder.count == n and folder.sh_degree == 2
    for a, b in zip(folder.tensors(), zipped.tensors()):
        assert torch.equal(a, b)
    torch.testing.assert_close(folder.means.double(), torch.from_numpy(means), rtol=2e-3, atol=2e-3)
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    assert (folder.quats.double() * torch.from_numpy(q)).sum(-1).abs().min() > 0.99
    torch.testing.assert_close(folder.opacities.double(), torch.from_numpy(opac), atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(folder.sh[:, 1:].double(), torch.from_numpy(rest), atol=0.02, rtol=0)


def test_npz_points_become_isotropic_gaussians(tmp_path):
    pts = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0), [0.0], indexing="ij"), -1).reshape(-1, 3) * 0.1
    path = tmp_path / "p.npz"
    np.savez(path, means3d=pts, colors=np.full((25, 3), 255, np.uint8))
    s = load_scene(path)
    assert s.count == 25 and s.sh_degree == 0
    assert torch.allclose(s.scales[:, 0], s.scales[:, 2])
    assert 0.09 < s.scales.median() < 0.13  # spacing 0.1: RMS distance to 3 neighbours
    torch.testing.assert_close(0.5 + 0.28209479177387814 * s.sh[:, 0], torch.ones(25, 3))


def test_format_is_detected_from_content_not_suffix(tmp_path):
    scene = random_scene(10, sh_degree=1)
    save_scene(scene, tmp_path / "a.ply")
    save_scene(random_scene(10, sh_degree=0), tmp_path / "b.splat")
    shutil.copy(tmp_path / "a.ply", tmp_path / "a.bin")
    shutil.copy(tmp_path / "b.splat", tmp_path / "b.data")
    assert detect_format(tmp_path / "a.bin") == "ply"
    assert detect_format(tmp_path / "b.data") == "splat"
    assert load_scene(tmp_path / "a.bin").sh_degree == 1


def test_point_cloud_ply_is_rejected(tmp_path):
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    (tmp_path / "pc.ply").write_bytes(header.encode() + np.zeros(3, "<f4").tobytes())
    with pytest.raises(GscacheError, match="point cloud"):
        load_scene(tmp_path / "pc.ply")


def test_bad_f_rest_count_is_rejected(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "f_rest_0", "f_rest_1", "f_rest_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" + "".join(f"property float {n}\n" for n in names) + "end_header\n"
    (tmp_path / "x.ply").write_bytes(header.encode() + np.zeros(len(names), "<f4").tobytes())
    with pytest.raises(GscacheError, match="f_rest"):
        load_scene(tmp_path / "x.ply")


def test_nan_and_inf_gaussians_are_dropped_with_a_count(tmp_path):
    scene = random_scene(20, seed=1, sh_degree=0)
    means = scene.means.clone()
    means[3, 0] = float("nan")
    means[7, 2] = float("inf")
    with pytest.warns(GscacheWarning, match="dropped 2 of 20 Gaussians"):
        s = make_scene(means, scene.quats, scene.scales, scene.opacities, scene.sh, source="t")
    assert s.count == 18


def test_zero_gaussian_files_load(tmp_path):
    (tmp_path / "empty.splat").write_bytes(b"")
    assert load_scene(tmp_path / "empty.splat").count == 0  # what the writer makes of no Gaussians
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(GscacheError, match="empty"):
        load_scene(tmp_path / "empty.bin")
    save_scene(random_scene(0, sh_degree=1), tmp_path / "zero.ply")
    assert load_scene(tmp_path / "zero.ply").count == 0


@pytest.mark.parametrize(
    "content,message",
    [(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n\x00\x00", "truncated"),
     (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty quux x\nend_header\n", "unsupported property"),
     (b"ply\nformat nonsense 1.0\nend_header\n", "format"),
     (b"\x00" * 33, "unrecognised"),
     (b"PK\x03\x04garbage", "zip")],
)
def test_bad_files_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(GscacheError, match=message) as info:
        load_scene(path)
    assert "bad.bin" in str(info.value)


def test_truncated_splat_by_suffix(tmp_path):
    (tmp_path / "t.splat").write_bytes(b"\x00" * 40)
    with pytest.raises(GscacheError, match="multiple of 32"):
        load_scene(tmp_path / "t.splat")


def test_missing_file_and_folder_without_meta(tmp_path):
    with pytest.raises(GscacheError, match="no such"):
        load_scene(tmp_path / "nope.ply")
    with pytest.raises(GscacheError, match="meta.json"):
        load_scene(tmp_path)


# Real scenes from ../shared/data (skipped with a reason when absent).

def test_real_plant_splat_loads():
    s = load_scene(data_file("plant.splat"))
    assert s.count == 113648 and s.sh_degree == 0
    assert (s.means.abs() < 1.0).all()


def test_real_playbot_sog_loads():
    s = load_scene(data_file("playbot_sog"))
    assert s.count == 500000 and s.sh_degree == 2
    assert torch.allclose(s.quats.norm(dim=1), torch.ones(s.count), atol=1e-5)
    # The bounds are those of meta.json, decoded: the y range is [-0.73, 0.05] in log space.
    assert -1.09 < s.means[:, 1].min() < -1.07 and 0.04 < s.means[:, 1].max() < 0.06


def test_real_playbot_as_zipped_sog_equals_folder(tmp_path):
    folder = data_file("playbot_sog")
    with zipfile.ZipFile(tmp_path / "playbot.sog", "w", compression=zipfile.ZIP_STORED) as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    a, b = load_scene(folder), load_scene(tmp_path / "playbot.sog")
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))


def test_real_garden_points_and_cameras_load():
    path = data_file("garden_points.npz")
    s = load_scene(path)
    assert s.count == 138766
    cams = read_npz_cameras(path)
    assert len(cams) == 3 and (cams[0].width, cams[0].height) == (648, 420)
