"""Every reader, fed truncated and garbled versions of valid files (seeded): it loads or raises
GscacheError, and never crashes, hangs or raises anything else."""

from __future__ import annotations

import gzip
import time
import warnings

import numpy as np
import pytest

from gscache import GscacheError, load_scene, save_scene
from tests._helpers import random_scene
from tests.unit._sog_writer import encode_sog, write_sog_folder, write_sog_zip

CASES_PER_FORMAT = 60
MAX_SECONDS_PER_LOAD = 5.0


def _valid_files(tmp_path):
    save_scene(random_scene(40, seed=1, sh_degree=2), tmp_path / "v.ply")
    save_scene(random_scene(40, seed=2, sh_degree=0), tmp_path / "v.splat")
    np.savez(tmp_path / "v.npz", means3d=np.random.default_rng(0).normal(size=(40, 3)),
             colors=np.zeros((40, 3), np.uint8))
    rng = np.random.default_rng(3)
    files = encode_sog(rng.normal(size=(40, 3)), rng.normal(size=(40, 4)), rng.uniform(-5, -1, (40, 3)),
                       rng.normal(size=(40, 3)), rng.uniform(size=40), rng.normal(size=(40, 3, 3)))
    write_sog_zip(files, tmp_path / "v.sog")
    save_scene(random_scene(300, seed=4, sh_degree=3), tmp_path / "v.compressed.ply")
    save_scene(random_scene(40, seed=5, sh_degree=2), tmp_path / "v3.spz", spz_version=3)
    save_scene(random_scene(40, seed=6, sh_degree=1), tmp_path / "v4.spz", spz_version=4)
    return {"ply": tmp_path / "v.ply", "splat": tmp_path / "v.splat", "npz": tmp_path / "v.npz", "sog": tmp_path / "v.sog",
            "compressed-ply": tmp_path / "v.compressed.ply", "spz3": tmp_path / "v3.spz", "spz4": tmp_path / "v4.spz"}, files


def _mutations(data: bytes, rng: np.random.Generator):
    """Truncations, byte flips, inserted garbage and overwritten header numbers."""
    for _ in range(CASES_PER_FORMAT):
        kind = rng.integers(4)
        b = bytearray(data)
        if kind == 0:
            yield bytes(b[: rng.integers(0, len(b))])
        elif kind == 1:
            for pos in rng.integers(0, len(b), size=rng.integers(1, 16)):
                b[pos] = rng.integers(256)
            yield bytes(b)
        elif kind == 2:
            pos = rng.integers(0, len(b))
            yield bytes(b[:pos] + rng.bytes(int(rng.integers(1, 64))) + b[pos:])
        else:
            # Digits in the first 200 bytes (element counts, sizes) replaced by other digits.
            for pos in range(min(200, len(b))):
                if 48 <= b[pos] <= 57 and rng.random() < 0.3:
                    b[pos] = 48 + rng.integers(10)
            yield bytes(b)


def _load_or_error(path):
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_scene(path)
    except GscacheError as exc:
        assert str(path) in str(exc), f"the error does not name {path}: {exc}"
        # Every reader check names what it found wrong; load_scene's catch-all is only a last resort.
        assert "damaged or unsupported" not in str(exc), f"no reader check caught it: {exc}"
    assert time.perf_counter() - start < MAX_SECONDS_PER_LOAD, f"{path} took too long"


FUZZED = ["ply", "splat", "npz", "sog", "compressed-ply", "spz3", "spz4"]


@pytest.mark.parametrize("fmt", FUZZED)
def test_fuzzed_files_load_or_raise_gscache_error(tmp_path, fmt):
    valid, _ = _valid_files(tmp_path)
    rng = np.random.default_rng(FUZZED.index(fmt))
    data = valid[fmt].read_bytes()
    target = tmp_path / f"fuzz{valid[fmt].suffix}"
    for mutated in _mutations(data, rng):
        target.write_bytes(mutated)
        _load_or_error(target)


def test_fuzzed_spz_payloads_load_or_raise_gscache_error(tmp_path):
    """Mutations of an SPZ v3 file's gzip payload (header and sections), gzipped again: byte flips of
    the compressed file mostly stop at the gzip CRC, and these reach the decoder."""
    valid, _ = _valid_files(tmp_path)
    payload = gzip.decompress(valid["spz3"].read_bytes())
    rng = np.random.default_rng(21)
    target = tmp_path / "fuzz.spz"
    for mutated in _mutations(payload, rng):
        target.write_bytes(gzip.compress(mutated))
        _load_or_error(target)


def test_fuzzed_sog_folder_members(tmp_path):
    _, files = _valid_files(tmp_path)
    rng = np.random.default_rng(11)
    names = sorted(files)
    for i in range(CASES_PER_FORMAT):
        name = names[rng.integers(len(names))]
        broken = dict(files)
        broken[name] = next(_mutations(files[name], rng))
        folder = write_sog_folder(broken, tmp_path / f"sog{i}")
        _load_or_error(folder)


def test_fuzzed_structured_checkpoint_members(tmp_path):
    """A Scaffold-GS / Octree-GS checkpoint folder with one of its files (PLY, TorchScript MLPs,
    cfg_args) garbled per case."""
    import shutil

    from gscache.scene import write_structured
    from scenes import structured_demo

    write_structured(structured_demo(seed=0, spacing=0.5), tmp_path / "valid")  # a few hundred anchors
    members = sorted(p.name for p in (tmp_path / "valid").iterdir())
    rng = np.random.default_rng(12)
    for i in range(CASES_PER_FORMAT // 2):
        folder = tmp_path / f"s{i}"
        shutil.copytree(tmp_path / "valid", folder)
        name = members[rng.integers(len(members))]
        (folder / name).write_bytes(next(_mutations((folder / name).read_bytes(), rng)))
        _load_or_error(folder)


def _compressed_variants(tmp_path, rng):
    """npz archives stored, deflated and lzma-compressed, with garbled compressed members, and
    a zipped SOG with a flipped member: the decompressors' own errors must become GscacheError."""
    import zipfile

    arrays = {"means3d": rng.normal(size=(30, 3)), "colors": np.zeros((30, 3), np.uint8)}
    buf = tmp_path / "src.npz"
    np.savez(buf, **arrays)
    with zipfile.ZipFile(buf) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for i, method in enumerate((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA) * 8):
        path = tmp_path / f"c{i}.npz"
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        raw = bytearray(path.read_bytes())
        for pos in rng.integers(30, max(31, len(raw) - 30), size=rng.integers(1, 8)):  # inside the members
            raw[pos] ^= 0xFF
        path.write_bytes(bytes(raw))
        yield path


def test_fuzzed_compressed_containers_load_or_raise_gscache_error(tmp_path):
    rng = np.random.default_rng(21)
    n = 0
    for path in _compressed_variants(tmp_path, rng):
        _load_or_error(path)
        n += 1
    assert n == 24


@pytest.mark.parametrize("content", [b"\0" * 64, b"0" * 64, b"\x89PNG\r\n\x1a\n" + b"\1" * 56,
                                     bytes(range(256)) * 4])
def test_arbitrary_files_are_never_taken_for_splat(tmp_path, content):
    from gscache.scene import detect_format

    for name in ("blob.bin", "blob.splat"):
        path = tmp_path / name
        path.write_bytes(content)
        assert len(content) % 32 == 0
        with pytest.raises(GscacheError, match="splat|unrecognised"):
            detect_format(path)


def test_a_real_splat_is_still_detected_without_its_suffix(tmp_path):
    from gscache.scene import detect_format

    save_scene(random_scene(100, seed=3, sh_degree=0), tmp_path / "v.splat")
    (tmp_path / "v.splat").rename(tmp_path / "v.bin")
    assert detect_format(tmp_path / "v.bin") == "splat"
