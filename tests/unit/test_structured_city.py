"""The generated structured city, the altitude sweep, unsupported checkpoint features, and the
structured benchmark ladder."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gscache import GscacheError, load_scene
from gscache.bench.runner import ladder, named_config
from gscache.cli import main
from gscache.scene import write_structured
from gscache.scenes.structured_city import structured_city
from gscache.stages.derive import derive_anchors, lod_mask
from gscache.trajectory import altitude_sweep, named_trajectory

UP = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def small_city():
    return structured_city(blocks=2, levels=3, finest_spacing_m=2.0)

@pytest.mark.slow

def test_default_city_is_city_scale():
    city = structured_city()
    counts = [int((city.levels == level).sum()) for level in range(city.n_levels)]
    assert city.count >= 200_000 and city.n_levels == 4 and all(c > 1000 for c in counts)
    assert counts == sorted(counts)  # finer levels hold more anchors
    lo, hi = city.bounds()
    assert float(hi[0] - lo[0]) > 200 and float(-lo[1]) > 40  # 240 m across, towers up to 60 m


def test_city_is_deterministic_and_seeded():
    a, b = structured_city(blocks=1, levels=2, finest_spacing_m=2.0), structured_city(blocks=1, levels=2, finest_spacing_m=2.0)
    assert torch.equal(a.anchors, b.anchors) and torch.equal(a.features, b.features)
    c = structured_city(blocks=1, levels=2, finest_spacing_m=2.0, seed=1)
    assert not torch.equal(a.features, c.features)


def test_city_mlps_are_plausible_and_view_dependent(small_city):
    city = small_city
    glass = city.features[:, 3] > 1.0
    ids = torch.nonzero(glass).squeeze(1)[:400]
    assert len(ids) > 50
    colours = []
    for position in ([0.0, -20.0, -60.0], [60.0, -20.0, 0.0], [0.0, -90.0, 5.0]):
        out = derive_anchors(city, ids, torch.tensor(position))
        colours.append(torch.sigmoid(torch.zeros(1)) if out.count == 0 else out.sh.mean())
    assert max(colours) - min(colours) > 1e-3  # glass glints depend on where it is seen from
    every = torch.arange(city.count)
    far = derive_anchors(city, every, torch.tensor([0.0, -400.0, 0.0]))
    kept = far.count / (city.count * city.n_offsets)
    assert 0.5 < kept < 0.95  # the opacity MLP prunes a share of the Gaussians, as trained models do
    assert (far.opacities > 0).all() and (far.opacities < 1).all()
    # Coarse anchors fade out where the next finer level is drawn: almost none of level 0 near the eye.
    eye = torch.tensor([0.0, -1.7, 0.0])
    near_ids = torch.nonzero(((city.anchors - eye).norm(dim=1) < 15) & (city.levels == 0)).squeeze(1)
    assert len(near_ids) > 0
    assert derive_anchors(city, near_ids, eye).count < 0.01 * len(near_ids) * city.n_offsets
    assert lod_mask(city, eye)[city.levels == city.n_levels - 1].any()


def test_altitude_sweep_climbs_from_the_street(small_city):
    traj = altitude_sweep(small_city, 40)
    heights = -traj.T_world_head[:, 1, 3]  # up is -y
    assert heights[0] < 0.05 * heights[-1] and bool((heights[1:] > heights[:-1]).all())
    forward = traj.T_world_head[:, :3, 2]
    assert abs(float(forward[0] @ UP)) < 0.2  # level at street level
    assert float(forward[-1] @ UP) < -0.6  # looking down from above
    assert len(named_trajectory("altitude", small_city, 12)) == 12


def test_cfg_args_and_the_checkpoint_files_must_agree(tmp_path, small_city):
    write_structured(small_city, tmp_path / "ok")
    assert load_scene(tmp_path / "ok").lod_rounding == "round"
    for name, text, match in (
            ("app", "appearance_dim=32", "appearance_dim=32, but .* has no embedding_appearance.pt"),
            ("bank", "use_feat_bank=True", "use_feat_bank=True, but .* has no feature_bank_mlp.pt"),
            ("fork", "fork=1", "fork=1; expected an integer >= 2"),
            ("offsets", "n_offsets=3", "n_offsets=3, but .* has 10")):
        write_structured(small_city, tmp_path / name)
        cfg = (tmp_path / name / "cfg_args").read_text()
        key = text.split("=")[0]
        cfg = cfg.replace(f"{key}=", f"{key}_old=").replace(")", f", {text})")
        (tmp_path / name / "cfg_args").write_text(cfg)
        with pytest.raises(GscacheError, match=match):
            load_scene(tmp_path / name)
    write_structured(small_city, tmp_path / "emb")
    (tmp_path / "emb" / "embedding_appearance.pt").write_bytes(b"x")
    with pytest.raises(GscacheError, match="embedding_appearance.pt: cannot load"):
        load_scene(tmp_path / "emb")
    for rounding in ("floor", "ceil", "progressive"):
        write_structured(small_city, tmp_path / rounding)
        cfg = (tmp_path / rounding / "cfg_args").read_text().replace("'round'", f"'{rounding}'")
        (tmp_path / rounding / "cfg_args").write_text(cfg)
        assert load_scene(tmp_path / rounding).lod_rounding == rounding


def test_structured_ladder_and_reference_suffix():
    names = [n for n, _ in ladder("cpu", "cpu", structured=True)]
    assert names == ["cpu/none-ref", "cpu/stereo-ref", "cpu/D2-ref", "cpu/D4-ref", "cpu/D8-ref", "cpu/dynamic-ref",
                     "cpu/dynamic", "cpu/dynamic+fov-low", "cpu/dynamic+fov-medium", "cpu/dynamic+fov-high",
                     "cpu/dynamic+fov-medium-ring"]
    name, cfg = named_config("cpu/D4-ref+fov-high", "cpu")
    assert not cfg.derive.fused and cfg.foveation.periphery_scale < 1 and name == "cpu/D4-ref+fov-high"
    with pytest.raises(GscacheError, match="foveation level"):
        named_config("cpu/D4+fov-ultra", "cpu")
    name, cfg = named_config("cpu/D4-ref", "cpu")
    assert not cfg.derive.fused and cfg.cache.depth == 4
    assert named_config("cpu/D4", "cpu")[1].derive.fused
    with pytest.raises(GscacheError, match="reuse mode 'D3'"):
        named_config("cpu/D3-ref", "cpu")


def test_generate_and_bench_a_structured_city(tmp_path, capsys):
    out = tmp_path / "city"
    assert main(["generate", "structured-city", str(out), "--blocks", "1", "--levels", "2", "--spacing", "2"]) == 0
    assert (out / "point_cloud.ply").is_file() and not list(tmp_path.glob(".city.*"))
    assert main(["generate", "structured-city", str(out)]) != 0
    assert "not empty" in capsys.readouterr().err
    assert main(["bench", str(out), "--ablation", "--backend", "cpu", "--trajectory", "altitude", "--frames", "4",
                 "--warmup", "1", "--size", "48x48", "--quality-frames", "2", "--no-progress",
                 "--out", str(tmp_path / "b")]) == 0
    report = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert report["scene"]["anchors"] > 1000 and report["scene"]["levels"] == 2
    by_name = {c["name"]: c for c in report["configs"]}
    assert list(by_name)[0] == "cpu/none-ref" and "cpu/dynamic" in by_name
    base = by_name["cpu/none-ref"]
    assert 0 < base["derive_share"] < 1 and base["stages_median_ms"]["derive"] > 0
    assert base["quality"]["psnr_db"] is None or base["quality"]["psnr_db"] > 60  # per-eye derivation is exact
    assert all(math.isfinite(c["median_ms"]) for c in report["configs"])
    cache = by_name["cpu/D4-ref"]["cache"]
    assert cache["hits"] + sum(cache["refreshes"].values()) == 4  # every frame a hit or a counted refresh
