"""SPZ and PlayCanvas compressed PLY: readers cross-checked against an independent implementation
(the gsply package), writers round-tripped within each format's quantisation, content detection,
axis conventions, bad input and ``gscache convert``."""

from __future__ import annotations

import gzip
import json
import math
import struct

import numpy as np
import pytest
import torch

from gscache import GscacheError, load_scene, save_scene
from gscache.bench.metrics import psnr
from gscache.camera import Intrinsics, StereoRig, look_at
from gscache.cli import main
from gscache.renderer import render
from gscache.scene import detect_format
from gscache.scene.cply import CHUNK
from gscache.scene.record import make_scene
from gscache.scene.spz import encode_spz
from gscache.sh import eval_sh, num_sh_coeffs
from tests.conftest import data_file
from tests.unit._spz_legacy import encode_legacy_spz

gsply = pytest.importorskip("gsply", reason="gsply (the independent reader/writer the formats are checked "
                                            "against) is not installed: pip install gsply[spz]")

SQRT_HALF = math.sqrt(0.5)


def scene_for(n: int, degree: int, seed: int = 0, spread: float = 1.5):
    """Gaussians inside every format's ranges (SPZ: |SH| < 1, log scale in [-10, 6], |DC| < 3.3),
    with view-dependent colour, in front of a camera at the origin looking down +z."""
    g = np.random.default_rng(seed)
    means = g.uniform(-spread, spread, (n, 3)) + (0, 0, 4)
    quats = g.normal(size=(n, 4))
    scales = np.exp(g.uniform(np.log(0.01), np.log(0.3), (n, 3)))
    opac = g.uniform(0.05, 1.0, n)
    sh = np.clip(g.normal(0, 0.35, (n, num_sh_coeffs(degree), 3)), -0.95, 0.95)
    sh[:, 0] = g.uniform(-1.5, 1.5, (n, 3))
    return make_scene(means, quats, scales, opac, sh, source=f"scene_for({n}, {degree})")


def _rig(size=(67, 45)):
    intr = Intrinsics.from_fov(60.0, *size)
    return StereoRig(torch.linalg.inv(look_at((0.3, -0.2, -0.5), (0.0, 0.0, 4.0))), intr, intr)


def _angle_deg(a, b):
    qa = torch.nn.functional.normalize(a.double(), dim=1)
    qb = torch.nn.functional.normalize(b.double(), dim=1)
    return torch.rad2deg(2 * torch.acos((qa * qb).sum(1).abs().clamp(max=1)))


def _gs_linear(d):
    """A gsply GSData (log scales, logit opacities) as activated arrays."""
    return d.means, np.exp(d.scales), 1 / (1 + np.exp(-d.opacities.astype(np.float64))), d.quats


# --- compressed PLY ---------------------------------------------------------------------------

def test_real_compressed_ply_matches_gsply():
    path = data_file("guitar.compressed.ply")
    ours = load_scene(path)
    ref = gsply.plyread(str(path))
    means, scales, opac, quats = _gs_linear(ref)
    assert ours.count == len(means) == 90854 and ours.sh_degree == 0
    np.testing.assert_allclose(ours.means.numpy(), means, atol=1e-6)
    np.testing.assert_allclose(ours.scales.numpy(), scales, rtol=1e-5)
    np.testing.assert_allclose(ours.opacities.numpy(), opac, atol=5e-5)  # gsply: byte 255 -> logit 10
    np.testing.assert_allclose(ours.sh[:, 0].numpy(), ref.sh0, atol=1e-5)
    assert float(_angle_deg(ours.quats, torch.from_numpy(quats)).max()) < 0.01


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_compressed_ply_written_by_gsply_reads_as_gsply_reads_it(tmp_path, degree):
    scene = scene_for(3 * CHUNK + 37, degree, seed=degree)  # a partial last chunk
    path = tmp_path / "g.compressed.ply"
    sh = scene.sh.numpy()
    gsply.plywrite(str(path), scene.means.numpy(), np.log(scene.scales.numpy()), scene.quats.numpy(),
                   np.log(scene.opacities.numpy() / (1 - scene.opacities.numpy())), sh[:, 0],
                   sh[:, 1:] if degree else None, compressed=True)
    assert detect_format(path) == "compressed-ply"
    ours, ref = load_scene(path), gsply.plyread(str(path))
    means, scales, opac, quats = _gs_linear(ref)
    np.testing.assert_allclose(ours.means.numpy(), means, atol=1e-6)
    np.testing.assert_allclose(ours.scales.numpy(), scales, rtol=1e-5)
    np.testing.assert_allclose(ours.opacities.numpy(), opac, atol=5e-5)  # gsply: byte 255 -> logit 10
    np.testing.assert_allclose(ours.sh[:, 0].numpy(), ref.sh0, atol=1e-5)
    assert float(_angle_deg(ours.quats, torch.from_numpy(quats)).max()) < 0.01
    if degree:
        # gsply decodes byte q as (q + 0.5) / 32 - 4 everywhere, splat-transform (and gscache) give
        # bytes 0 and 255 the range's ends, -4 and 4: they agree to 1/64.
        np.testing.assert_allclose(ours.sh[:, 1:].numpy(), ref.shN, atol=1 / 64 + 1e-6)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_compressed_ply_writer_round_trips_within_its_quantisation(tmp_path, degree):
    scene = scene_for(5 * CHUNK + 1, degree, seed=10 + degree)
    path = tmp_path / "o.compressed.ply"
    order = torch.as_tensor(save_scene(scene, path))
    assert sorted(order.tolist()) == list(range(scene.count))
    back = load_scene(path)
    ref = gsply.plyread(str(path))  # an independent reader of what gscache wrote
    np.testing.assert_allclose(back.means.numpy(), ref.means, atol=1e-6)
    src = {k: getattr(scene, k)[order] for k in ("means", "scales", "opacities", "quats", "sh")}
    chunk = torch.arange(scene.count) // CHUNK

    def bound(values, bits):  # half a quantisation step of each splat's chunk range, per axis
        lo = torch.stack([values[chunk == c].min(0).values for c in range(int(chunk.max()) + 1)])
        hi = torch.stack([values[chunk == c].max(0).values for c in range(int(chunk.max()) + 1)])
        return ((hi - lo)[chunk] / (2 * (2 ** torch.tensor(bits) - 1))).double() + 1e-6

    assert ((back.means - src["means"]).abs() <= bound(src["means"], [11, 10, 11])).all()
    log_err = (back.scales.log() - src["scales"].log()).abs()
    assert (log_err <= bound(src["scales"].log(), [11, 10, 11]) + 1e-5).all()
    assert float((back.opacities - src["opacities"]).abs().max()) <= 0.5 / 255 + 1e-6
    rgb = 0.5 + 0.28209479177387814 * src["sh"][:, 0]
    rgb_back = 0.5 + 0.28209479177387814 * back.sh[:, 0]
    assert ((rgb_back - rgb).abs() <= bound(rgb, [8, 8, 8]) + 1e-6).all()
    assert float(_angle_deg(back.quats, src["quats"]).max()) < 0.25  # 10 bits of sqrt(2) per component
    if degree:
        assert float((back.sh[:, 1:] - src["sh"][:, 1:]).abs().max()) <= 1 / 32 + 1e-6  # a bin of 1/32
    rig = _rig()
    assert psnr(render(back, rig).images.rgb, render(scene, rig).images.rgb) > 35


# --- SPZ --------------------------------------------------------------------------------------

def _rub(scene):
    """gsply data of a gscache scene in SPZ's axes (x right, y up, z back): y and z flipped in the
    positions and quaternions, and the SH coefficients odd in (y, z) negated."""
    from gscache.scene.spz import _flip_signs

    means = scene.means.numpy().copy()
    means[:, 1:] *= -1
    q = scene.quats.numpy().copy()
    q[:, 2:] *= -1
    sh = scene.sh.numpy() * _flip_signs(scene.sh_degree)[None, :, None]
    op = np.clip(scene.opacities.numpy().astype(np.float64), 1e-6, 1 - 1e-6)  # byte 255 is opacity 1
    return gsply.GSData(means=means, scales=np.log(scene.scales.numpy()), quats=q,
                        opacities=np.log(op / (1 - op)).astype(np.float32), sh0=sh[:, 0],
                        shN=sh[:, 1:] if scene.sh_degree else None)


def _spz_bounds(scene, back, degree):
    """Within SPZ's quantisation: positions 2^-12 m / 2, opacity 1/510, DC 1/(2*0.15*255), log
    scale 1/32, rotations 9 bits of sqrt(1/2), SH (Niantic's writer) 5 bits in degree 1 and 4 bits
    above, plus a byte's rounding."""
    assert float((back.means - scene.means).abs().max()) <= 0.5 / 4096 + 1e-6
    assert float((back.opacities - scene.opacities).abs().max()) <= 0.5 / 255 + 1e-6
    assert float((back.sh[:, 0] - scene.sh[:, 0]).abs().max()) <= 0.5 / (0.15 * 255) + 1e-5
    assert float((back.scales.log() - scene.scales.log()).abs().max()) <= 1 / 32 + 1e-5
    assert float(_angle_deg(back.quats, scene.quats).max()) < 0.3
    if degree:
        assert float((back.sh[:, 1:4] - scene.sh[:, 1:4]).abs().max()) <= 4.5 / 128 + 1e-6
    if degree >= 2:
        assert float((back.sh[:, 4:] - scene.sh[:, 4:]).abs().max()) <= 8.5 / 128 + 1e-6


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_spz_written_by_gsply_is_read_in_gscache_axes(tmp_path, version, degree):
    scene = scene_for(1001, degree, seed=20 + degree)
    path = tmp_path / "g.bin"  # detected by content, not by the name
    gsply.write_spz(str(path), _rub(scene), version=version)
    assert detect_format(path) == "spz"
    back = load_scene(path)
    assert back.count == scene.count and back.sh_degree == degree
    _spz_bounds(scene, back, degree)
    ref = gsply.read_spz(str(path))  # gsply keeps SPZ's axes
    np.testing.assert_allclose(back.means.numpy() * [1, -1, -1], ref.means, atol=1e-6)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("degree", [0, 2, 3])
def test_spz_writer_round_trips_and_gsply_reads_the_same(tmp_path, version, degree):
    scene = scene_for(777, degree, seed=30 + degree)
    path = tmp_path / "o.spz"
    save_scene(scene, path, spz_version=version)
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b" if version == 3 else raw[:4] == b"NGSP"
    back = load_scene(path)
    _spz_bounds(scene, back, degree)
    ref = gsply.read_spz(str(path))
    expect = _rub(back)
    np.testing.assert_allclose(ref.means, expect.means, atol=1e-6)
    np.testing.assert_allclose(ref.sh0, expect.sh0, atol=1e-5)
    np.testing.assert_allclose(ref.scales, expect.scales, atol=1e-5)
    assert float(_angle_deg(torch.from_numpy(ref.quats), torch.from_numpy(expect.quats)).max()) < 0.01
    if degree:
        np.testing.assert_allclose(ref.shN, expect.shN, atol=1e-6)
    rig = _rig()
    assert psnr(render(back, rig).images.rgb, render(scene, rig).images.rgb) > 35


@pytest.mark.parametrize("version", [1, 2])
def test_spz_v1_and_v2_decode_as_niantic_defines_them(tmp_path, version):
    g = np.random.default_rng(version)
    n, degree = 300, 1
    means = g.uniform(-3, 3, (n, 3))
    q = g.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    alpha, color, scale = g.integers(0, 256, n), g.integers(0, 256, (n, 3)), g.integers(0, 256, (n, 3))
    sh = g.uniform(-1, 1, (n, 3, 3))
    data = encode_legacy_spz(version, means, alpha, color, scale, q, sh, degree)
    path = tmp_path / f"v{version}.spz"
    path.write_bytes(data)
    ours = load_scene(path)
    rdf = np.array([1, -1, -1])
    # v1 positions are float16, v2 24-bit fixed point of 2^-12.
    np.testing.assert_allclose(ours.means.numpy() * rdf, means, atol=2e-3 if version == 1 else 0.5 / 4096 + 1e-6)
    np.testing.assert_allclose(ours.opacities.numpy(), alpha / 255, atol=1e-6)
    np.testing.assert_allclose(ours.sh[:, 0].numpy(), (color / 255 - 0.5) / 0.15, atol=1e-5)
    np.testing.assert_allclose(ours.scales.numpy(), np.exp(scale / 16 - 10), rtol=1e-5)
    # x, y, z of the quaternion with w >= 0 in a byte each, w rebuilt; then y and z flipped.
    xyz = np.round((q[:, :3] * np.where(q[:, 3:] < 0, -1, 1) + 1) * 127.5) / 127.5 - 1
    w = np.sqrt(np.maximum(0, 1 - (xyz ** 2).sum(1)))
    expect_q = np.stack([w, xyz[:, 0], -xyz[:, 1], -xyz[:, 2]], axis=1)
    np.testing.assert_allclose(ours.quats.numpy(), expect_q / np.linalg.norm(expect_q, axis=1, keepdims=True),
                               atol=1e-5)  # w = sqrt(1 - ...) in float32
    if version == 2:
        # gsply reads version 2 the same way (its v1 reader expects 24-bit positions, which Niantic's
        # reader, splat-utils' float16 path, does not: version 1 is compared with the encoder only).
        ref = gsply.read_spz(str(path))
        np.testing.assert_allclose(ours.means.numpy() * rdf, ref.means, atol=1e-6)
        np.testing.assert_allclose(ours.sh[:, 0].numpy(), ref.sh0, atol=1e-5)
        rq = ref.quats.copy()
        rq[:, 2:] *= -1
        assert float(_angle_deg(ours.quats, torch.from_numpy(rq)).max()) < 0.01
        from gscache.scene.spz import _flip_signs

        np.testing.assert_allclose(ours.sh[:, 1:].numpy(), ref.shN * _flip_signs(1)[None, 1:, None], atol=1e-6)


def test_spz_axes_are_converted_with_the_sh():
    """An SPZ scene rendered as gscache loads it equals the original rendered through the y/z
    mirror: the view-dependent colour seen from a direction d in RDF is the stored colour at the
    mirrored direction."""
    from gscache.scene.spz import _flip_signs

    g = torch.Generator().manual_seed(0)
    sh = torch.randn(50, 16, 3, generator=g, dtype=torch.float64)
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, generator=g, dtype=torch.float64), dim=1)
    flipped = sh * torch.from_numpy(_flip_signs(3))[None, :, None]
    mirror = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(eval_sh(flipped, dirs, 3), eval_sh(sh, dirs * mirror, 3))


def test_spz_stored_position_is_mirrored_into_opencv_axes(tmp_path):
    q = np.array([[0.0, 0.0, 0.0, 1.0]])
    data = encode_legacy_spz(2, np.array([[1.0, 2.0, 3.0]]), [255], [[128, 128, 128]], [[100, 100, 100]], q,
                             np.zeros((1, 0, 3)), 0)
    (tmp_path / "one.spz").write_bytes(data)
    s = load_scene(tmp_path / "one.spz")
    torch.testing.assert_close(s.means, torch.tensor([[1.0, -2.0, -3.0]]))


# --- every writer: detection, single and empty scenes, convert --------------------------------

@pytest.mark.parametrize("name", ["s.spz", "s.compressed.ply", "s.ply", "s.splat"])
@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_gaussian_scenes_round_trip(tmp_path, name, n):
    scene = scene_for(max(n, 1), 1, seed=5)
    if n == 0:
        scene = scene.edited(**{k: getattr(scene, k)[:0] for k in ("means", "quats", "scales", "opacities", "sh")})
    save_scene(scene, tmp_path / name)
    back = load_scene(tmp_path / name)
    assert back.count == n
    if n:
        assert float((back.means - scene.means).abs().max()) < 1e-3


@pytest.mark.parametrize("name,fmt", [("s.spz", "spz"), ("s.compressed.ply", "compressed-ply")])
def test_new_formats_are_detected_without_their_names(tmp_path, name, fmt):
    save_scene(scene_for(300, 2), tmp_path / name)
    renamed = tmp_path / "scene.dat"
    (tmp_path / name).rename(renamed)
    assert detect_format(renamed) == fmt and load_scene(renamed).count == 300


def _spz_v3(n=10, degree=1, version=3, count=None, bits=12):
    body = bytes(n * (9 + 1 + 3 + 3 + 4 + 3 * (num_sh_coeffs(degree) - 1)))
    return gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, version, n if count is None else count, degree, bits, 0, 0)
                         + body)


@pytest.mark.parametrize("data,message", [
    (_spz_v3(count=11), "truncated"),
    (_spz_v3(version=7), "SPZ version 7"),
    (_spz_v3(version=0), "SPZ version 0"),
    (_spz_v3(degree=6), "SH degree 6"),
    (_spz_v3(bits=30), "fractional bits 30"),
    (gzip.compress(b"NOPE" + bytes(40)), "SPZ magic"),
    (_spz_v3()[:-6], "cut short"),
    (_spz_v3()[:12] + b"\xff" * 8 + _spz_v3()[20:], "damaged SPZ gzip stream"),
    (b"NGSP" + struct.pack("<I", 4) + bytes(8), "v4 header needs 32 bytes"),
    (struct.pack("<IIIBBBBI12x", 0x5053474E, 4, 10, 0, 12, 0, 5, 999), "table of contents"),
    (struct.pack("<IIIBBBBI12x", 0x5053474E, 4, 10, 0, 12, 0, 2, 32), "has 2 streams"),
    (struct.pack("<IIIBBBBI12x", 0x5053474E, 4, 10**9, 0, 12, 0, 5, 32), "more than a 32-byte file can hold"),
])
def test_bad_spz_files_name_the_file_and_field(tmp_path, data, message):
    path = tmp_path / "bad.spz"
    path.write_bytes(data)
    with pytest.raises(GscacheError, match=message) as info:
        load_scene(path)
    assert str(path) in str(info.value)


def _cply(tmp_path, edit):
    path = tmp_path / "c.compressed.ply"
    save_scene(scene_for(300, 1), path)
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header, body = edit(raw[:end].decode(), raw[end:])
    path.write_bytes(header.encode() + body)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda h, b: (h, b[:-10]), "truncated"),
    (lambda h, b: (h.replace("element chunk 2", "element chunk 3"), b), "3 chunks for 300 splats"),
    (lambda h, b: (h.replace("property uint packed_scale", "property uint packed_scalx"), b), "lacks \\['packed_scale'\\]"),
    (lambda h, b: (h.replace("property float max_b\n", ""), b), "'chunk' properties"),
    (lambda h, b: (h.replace("property uint packed_color", "property float packed_color"), b), "must be uint"),
    (lambda h, b: (h.replace("element sh 300", "element sh 299"), b), "'sh' element has 299 rows"),
    (lambda h, b: (h.replace("binary_little_endian", "binary_big_endian"), b), "must be binary_little_endian"),
    (lambda h, b: (h.replace("property uchar f_rest_8\n", ""), b), "'sh' element has properties"),
])
def test_bad_compressed_ply_files_name_the_file_and_field(tmp_path, edit, message):
    path = _cply(tmp_path, edit)
    with pytest.raises(GscacheError, match=message) as info:
        load_scene(path)
    assert str(path) in str(info.value)


def test_convert_reports_the_loss_and_drops_bands(tmp_path, capsys):
    src = tmp_path / "src.ply"
    save_scene(scene_for(400, 3, seed=3), src)
    report = tmp_path / "r.json"
    assert main(["convert", str(src), str(tmp_path / "out.spz"), "--sh-degree", "1", "--views", "2",
                 "--size", "48x32", "--report", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "SH degree 3 -> 1" in out and "render PSNR" in out and "rotation" in out
    r = json.loads(report.read_text())
    assert r["sh_degree_out"] == 1 and len(r["view_psnr"]) == 2
    # Dropping bands 2 and 3 costs render PSNR, not per-attribute error (those compare the bands kept).
    assert max(r["view_psnr"]) < 60
    pos = next(a for a in r["attributes"] if a["name"] == "position")
    assert 0 < pos["max"] <= 0.5 / 4096 * math.sqrt(3) + 1e-6
    assert load_scene(tmp_path / "out.spz").sh_degree == 1


def test_convert_refuses_unknown_targets_and_the_source_itself(tmp_path, capsys):
    src = tmp_path / "src.ply"
    save_scene(scene_for(10, 0), src)
    assert main(["convert", str(src), str(tmp_path / "x.obj")]) == 2
    assert "x.obj: can write" in capsys.readouterr().err
    assert main(["convert", str(src), str(src)]) == 2
    assert "the target is the source" in capsys.readouterr().err
    assert not (tmp_path / "x.obj").exists()


def _v4_with(scene, flags=0, extension=b"", degree_override=None):
    """gscache's v4 bytes with extension records inserted before the table of contents."""
    import zstandard

    from gscache.scene.spz import HEADER_V4, TOC_ENTRY, encode_spz

    raw = encode_spz(scene, 4)
    magic, version, n, degree, bits, _, streams, toc = HEADER_V4.unpack_from(raw)
    table, body = raw[toc:toc + streams * TOC_ENTRY.size], raw[toc + streams * TOC_ENTRY.size:]
    if degree_override is not None:  # append zero-coefficient band 4 to the SH stream
        sizes = [TOC_ENTRY.unpack_from(table, i * TOC_ENTRY.size) for i in range(streams)]
        parts, at = [], 0
        for c, _u in sizes:
            parts.append(zstandard.ZstdDecompressor().decompress(body[at:at + c]))
            at += c
        sh = np.frombuffer(parts[-1], np.uint8).reshape(n, 15, 3)
        parts[-1] = np.concatenate([sh, np.full((n, 9, 3), 128, np.uint8)], axis=1).tobytes()
        comp = [zstandard.ZstdCompressor().compress(p) for p in parts]
        table = b"".join(TOC_ENTRY.pack(len(c), len(p)) for c, p in zip(comp, parts))
        body, degree = b"".join(comp), degree_override
    header = HEADER_V4.pack(magic, version, n, degree, bits, flags, streams, HEADER_V4.size + len(extension))
    return header + extension + table + body


def test_spz_coordinate_system_extension_is_honoured(tmp_path):
    scene = scene_for(50, 1, seed=7)
    rub = load_scene(_write(tmp_path / "rub.spz", _v4_with(scene)))
    # The same bytes declared as RDF: nothing is flipped, so y and z come out mirrored.
    record = struct.pack("<III", 0xADBE0003, 4, 6)
    rdf = load_scene(_write(tmp_path / "rdf.spz", _v4_with(scene, flags=2, extension=record)))
    torch.testing.assert_close(rdf.means, rub.means * torch.tensor([1.0, -1.0, -1.0]))
    bad = struct.pack("<III", 0xADBE0003, 4, 12)
    with pytest.raises(GscacheError, match="coordinate-system extension names system 12"):
        load_scene(_write(tmp_path / "rfu.spz", _v4_with(scene, flags=2, extension=bad)))
    other = struct.pack("<II", 0xADBE0002, 12) + bytes(12)  # a camera record: skipped
    assert load_scene(_write(tmp_path / "cam.spz", _v4_with(scene, flags=2, extension=other))).count == 50


def test_spz_degree_4_is_read_to_degree_3_with_a_warning(tmp_path):
    from gscache.errors import GscacheWarning

    scene = scene_for(40, 3, seed=8)
    with pytest.warns(GscacheWarning, match="SH degree 4"):
        back = load_scene(_write(tmp_path / "d4.spz", _v4_with(scene, degree_override=4)))
    assert back.sh_degree == 3
    torch.testing.assert_close(back.sh, load_scene(_write(tmp_path / "d3.spz", _v4_with(scene))).sh)


def test_early_version_4_files_in_the_gzip_layout_are_read(tmp_path):
    from gscache.scene.spz import HEADER

    scene = scene_for(60, 2, seed=9)
    v3 = gzip.decompress(encode_spz(scene, 3))
    early = gzip.compress(HEADER.pack(*((HEADER.unpack_from(v3)[0], 4) + HEADER.unpack_from(v3)[2:])) + v3[16:])
    torch.testing.assert_close(load_scene(_write(tmp_path / "e.spz", early)).means,
                               load_scene(_write(tmp_path / "v3.spz", gzip.compress(v3))).means)


def _write(path, data):
    path.write_bytes(data)
    return path


def test_compressed_ply_without_colour_ranges_reads_the_colour_bytes_as_colours(tmp_path):
    """Files from before splat-transform stored colour ranges have 12 chunk properties; their colour
    bytes are the colour 0.5 + C0 * f_dc itself."""
    path = tmp_path / "c.compressed.ply"
    save_scene(scene_for(300, 0), path)
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode()
    for p in ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b"):
        header = header.replace(f"property float {p}\n", "")
    chunks = np.frombuffer(raw[end:end + 2 * 18 * 4], "<f4").reshape(2, 18)
    old = path.with_name("old.compressed.ply")
    old.write_bytes(header.encode() + chunks[:, :12].tobytes() + raw[end + 2 * 18 * 4:])
    packed = np.frombuffer(raw[end + 2 * 18 * 4:], "<u4").reshape(300, 4)[:, 3]
    rgb = np.stack([(packed >> 24) & 255, (packed >> 16) & 255, (packed >> 8) & 255], axis=1) / 255
    back = load_scene(old)
    np.testing.assert_allclose(0.5 + 0.28209479177387814 * back.sh[:, 0].numpy(), rgb, atol=1e-6)
    torch.testing.assert_close(back.means, load_scene(path).means)
