"""Octree-GS / Scaffold-GS checkpoints in the layout their training writes, and the derivation
checked against per-anchor transcriptions of upstream's formulas (set_anchor_mask, the
rasterizer's visibility test used by prefilter_voxel, the feature bank, progressive LOD).
scripts/compare_upstream_structured.py compares with the upstream code itself."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from gscache import GscacheError, Renderer, RenderConfig, load_scene, save_scene
from gscache.camera import Camera, Intrinsics, look_at, views_of
from gscache.config import DeriveConfig
from gscache.scene import write_structured
from gscache.scene.structured import AnchorMLPs, StructuredScene
from gscache.stages.derive import derive, derive_anchors, lod_levels, lod_mask, prefilter, visible_anchors
from tests._helpers import random_scene

F, K = 16, 5


def _mlp(n_in: int, n_out: int, act, g: torch.Generator, gain: float = 2.0) -> torch.nn.Sequential:
    first, second = torch.nn.Linear(n_in, 32), torch.nn.Linear(32, n_out)
    for lin in (first, second):
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * gain / math.sqrt(lin.weight.shape[1]))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.3)
    layers = [first, torch.nn.ReLU(), second] + ([act] if act is not None else [])
    return torch.nn.Sequential(*layers).eval()


def _model(seed=0, fork=2, n_levels=4, appearance=0, bank=False, add_level=False, dists=(False, False, False),
           rounding="round", scaffold=False, A=600) -> StructuredScene:
    """A random Octree-GS (or Scaffold-GS) model in a 4 m box around the origin."""
    g = torch.Generator().manual_seed(seed)
    anchors = (torch.rand(A, 3, generator=g) - 0.5) * 4.0
    levels = torch.zeros(A) if scaffold else torch.randint(0, n_levels, (A,), generator=g).float()
    extra = torch.zeros(A) if scaffold else (torch.rand(A, generator=g) - 0.5) * 0.6
    quats = torch.nn.functional.normalize(torch.randn(A, 4, generator=g), dim=1)
    scales = torch.cat([torch.full((A, 3), 0.05), torch.full((A, 3), 0.03)], 1) * torch.exp(
        0.3 * torch.randn(A, 6, generator=g))
    base = F + 3 + int(add_level)
    table = torch.randn(20, appearance, generator=g) if appearance else None
    mlps = AnchorMLPs(_mlp(base + dists[0], K, torch.nn.Tanh(), g), _mlp(base + dists[1], 7 * K, None, g),
                      _mlp(base + dists[2] + appearance, 3 * K, torch.nn.Sigmoid(), g), *dists, add_level,
                      appearance=table,
                      feature_bank=_mlp(4 if scaffold else 3 + int(add_level), 3, torch.nn.Softmax(dim=1), g)
                      if bank else None, bank_dist=scaffold)
    return StructuredScene(anchors, torch.randn(A, K, 3, generator=g), torch.randn(A, F, generator=g) * 0.5, scales,
                           levels, extra, mlps, voxel_size=0.0 if scaffold else 0.05,
                           standard_dist=0.0 if scaffold else 4.0, fork=fork,
                           n_levels=1 if scaffold else int(levels.max() - levels.min()) + 1, lod_rounding=rounding,
                           source=f"model(seed={seed})", anchor_quats=quats)


def _write_run(scene: StructuredScene, run, iteration=30000):
    """A training output folder: run/cfg_args and run/point_cloud/iteration_N/."""
    folder = run / "point_cloud" / f"iteration_{iteration}"
    write_structured(scene, folder)
    (folder / "cfg_args").replace(run / "cfg_args")
    return run


def _camera(position, target=(0.0, 0.0, 0.0), size=(317, 241), fov=60.0) -> Camera:
    return Camera.from_pose(look_at(position, target), Intrinsics.from_fov(fov, *size))


CAMERAS = [((0.0, -1.0, -7.0), (0.0, 0.0, 0.0)), ((2.5, 0.5, -3.0), (0.0, 0.0, 0.0)),
           ((0.0, 0.0, -3.0), (2.5, 0.0, 0.0)),  # looking at the box edge: partly out of view
           ((0.3, 0.2, 0.1), (1.0, 0.0, 1.0))]  # inside the box: anchors behind and beside the eye


# ---- loading ------------------------------------------------------------------------------------

def test_a_training_output_folder_gives_its_highest_iteration_or_the_one_asked_for(tmp_path):
    run = _write_run(_model(seed=1, A=400), tmp_path / "run")
    _write_run(_model(seed=2, A=300), run, iteration=7000)
    assert load_scene(run).count == 400
    assert load_scene(run, iteration=7000).count == 300
    assert load_scene(run / "point_cloud" / "iteration_7000").count == 300  # the iteration folder
    assert load_scene(run / "point_cloud" / "iteration_7000" / "point_cloud.ply").count == 300  # the PLY
    with pytest.raises(GscacheError, match=r"iteration=5: .*saved iterations \[7000, 30000\]"):
        load_scene(run, iteration=5)
    # A 3DGS run has the same layout with a Gaussian PLY: it loads as an explicit scene.
    save_scene(random_scene(50, seed=3), tmp_path / "3dgs" / "point_cloud" / "iteration_30000" / "point_cloud.ply")
    assert load_scene(tmp_path / "3dgs").count == 50


def test_the_level_count_is_max_minus_min_plus_one_as_upstream_counts_it(tmp_path):
    scene = _model(seed=13, A=200)
    shifted = dataclasses.replace(scene, levels=scene.levels.clamp(min=1.0))  # levels 1..3: no level 0
    back = load_scene(_write_run(shifted, tmp_path / "run"))
    assert back.n_levels == 3  # max 3 - min 1 + 1, not max + 1
    levels, _ = lod_levels(back, torch.tensor([0.0, 0.0, -1.0]))
    assert int(levels.max()) <= 2  # the clamp to [0, n_levels - 1] upstream applies


def test_cfg_args_is_read_as_train_py_writes_it(tmp_path):
    run = _write_run(_model(seed=1, A=100, fork=3, rounding="floor", dists=(True, False, True), appearance=8),
                     tmp_path / "run")
    text = (run / "cfg_args").read_text()
    # What upstream's Namespace also holds: lists, paths, floats; fields in any order.
    (run / "cfg_args").write_text(text[:-1] + ", source_path='/data/x', resolution_scales=[1.0], extend=1.1, "
                                              "model_path='outputs/x')")
    scene = load_scene(run)
    assert (scene.fork, scene.lod_rounding) == (3, "floor")
    assert (scene.mlps.opacity_dist, scene.mlps.cov_dist, scene.mlps.color_dist) == (True, False, True)
    assert scene.mlps.appearance.shape == (20, 8)
    for text in ("import os", "os.system('true')"):  # never evaluated: parsed as literals only
        (run / "cfg_args").write_text(text)
        with pytest.raises(GscacheError, match="cfg_args: expected 'Namespace"):
            load_scene(run)


def test_without_cfg_args_only_what_the_widths_decide_is_inferred(tmp_path):
    run = _write_run(_model(seed=4, A=100, dists=(True, False, False)), tmp_path / "run")
    (run / "cfg_args").unlink()
    with pytest.raises(GscacheError, match=r"fork and dist2level are in neither .*cfg_args=\{'fork': 2"):
        load_scene(run)  # an Octree-GS model: the LOD settings are nowhere in the files
    with pytest.warns(UserWarning, match="inferred from the MLP widths: add_level=False, opacity distance input=True"):
        scene = load_scene(run, cfg_args={"fork": 2, "dist2level": "round"})
    assert scene.mlps.opacity_dist and not scene.mlps.cov_dist and not scene.mlps.add_level
    ambiguous = _write_run(_model(seed=4, A=100, add_level=True), tmp_path / "amb")
    (ambiguous / "cfg_args").unlink()  # every MLP one wider: the level, or the distance everywhere?
    with pytest.raises(GscacheError, match="either the distance or the level; say which: cfg_args add_level"):
        load_scene(ambiguous, cfg_args={"fork": 2, "dist2level": "round"})
    scene = load_scene(ambiguous, cfg_args={"fork": 2, "dist2level": "round", "add_level": True})
    assert scene.mlps.add_level and not scene.mlps.opacity_dist
    scaffold = _write_run(_model(seed=5, A=100, scaffold=True, appearance=4), tmp_path / "scaffold")
    (scaffold / "cfg_args").unlink()  # Scaffold-GS has no LOD: the widths say everything
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_scene(scaffold).mlps.appearance.shape == (20, 4)
    with pytest.raises(GscacheError, match="cfg_args: unknown field"):
        load_scene(scaffold, cfg_args={"forks": 2})


# ---- level of detail and the anchor pre-filter -------------------------------------------------

def _upstream_level(scene, a: int, centre) -> tuple[int, float]:
    """set_anchor_mask for one anchor, in float64 scalars: (int level, progressive fade)."""
    level = int(scene.levels[a])
    shift = (scene.voxel_size / 2) / scene.fork ** level
    pos = [float(scene.anchors[a, i]) + shift for i in range(3)]
    dist = math.sqrt(sum((pos[i] - float(centre[i])) ** 2 for i in range(3)))
    pred = math.log2(scene.standard_dist / dist) / math.log2(scene.fork) + float(scene.extra_levels[a])
    top = scene.n_levels - 1
    if scene.lod_rounding == "progressive":
        p = min(max(pred + 1.0, 0.9999), top + 0.9999)
        return math.floor(p), (p - math.floor(p)) if math.floor(p) == level else 1.0
    r = {"round": round, "floor": math.floor, "ceil": math.ceil}[scene.lod_rounding](pred)  # round: half to even
    return min(max(r, 0), top), 1.0


@pytest.mark.parametrize("fork,rounding", [(2, "round"), (2, "floor"), (2, "ceil"), (4, "round"), (3, "progressive")])
def test_lod_selection_is_upstreams(fork, rounding):
    scene = _model(seed=6, fork=fork, rounding=rounding)
    for position, _ in CAMERAS:
        centre = torch.tensor(position)
        levels, fade = lod_levels(scene, centre)
        mask = lod_mask(scene, centre)
        for a in range(scene.count):
            level, f = _upstream_level(scene, a, centre)
            assert levels[a] == level, (a, float(levels[a]), level)
            assert bool(mask[a]) == (int(scene.levels[a]) <= level)
            if fade is not None:
                assert abs(float(fade[a]) - f) < 1e-5


def _rasterizer_visible(scene, a: int, cam: Camera) -> bool:
    """The 3DGS rasterizer's test of one anchor as a Gaussian (in_frustum, computeCov2D, the
    eigenvalue radius and getRect of forward.cu), in float64 scalars."""
    T = cam.T_cam_world.double()
    p = [sum(float(T[r, c]) * float(scene.anchors[a, c]) for c in range(3)) + float(T[r, 3]) for r in range(3)]
    if p[2] <= 0.2:
        return False
    w, x, y, z = (float(v) for v in scene.anchor_quats[a])
    R = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    s = [float(scene.scales[a, i]) for i in range(3)]
    cov = [[sum(R[i][k] * s[k] ** 2 * R[j][k] for k in range(3)) for j in range(3)] for i in range(3)]
    intr = cam.intrinsics
    W, H = intr.width, intr.height
    limx, limy = 1.3 * W / (2 * intr.fx), 1.3 * H / (2 * intr.fy)
    tz = p[2]
    tx = min(max(p[0] / tz, -limx), limx) * tz
    ty = min(max(p[1] / tz, -limy), limy) * tz
    J = [[intr.fx / tz, 0.0, -intr.fx * tx / tz ** 2], [0.0, intr.fy / tz, -intr.fy * ty / tz ** 2]]
    Wm = [[float(T[r, c]) for c in range(3)] for r in range(3)]
    M = [[sum(J[i][k] * Wm[k][j] for k in range(3)) for j in range(3)] for i in range(2)]
    c2 = [[sum(M[i][k] * cov[k][l] * M[j][l] for k in range(3) for l in range(3)) for j in range(2)] for i in range(2)]
    a_, b_, c_ = c2[0][0] + 0.3, c2[0][1], c2[1][1] + 0.3
    det = a_ * c_ - b_ * b_
    if det == 0:
        return False
    mid = 0.5 * (a_ + c_)
    lam = mid + math.sqrt(max(0.1, mid * mid - det))
    r = math.ceil(3 * math.sqrt(lam))
    px = intr.fx * p[0] / tz + intr.cx - 0.5  # ndc2Pix of the projected point
    py = intr.fy * p[1] / tz + intr.cy - 0.5
    gx, gy = (W + 15) // 16, (H + 15) // 16
    x0, x1 = min(gx, max(0, int((px - r) / 16))), min(gx, max(0, int((px + r + 15) / 16)))
    y0, y1 = min(gy, max(0, int((py - r) / 16))), min(gy, max(0, int((py + r + 15) / 16)))
    return (x1 - x0) * (y1 - y0) != 0


def test_the_anchor_prefilter_is_the_rasterizers_visibility_test():
    scene = _model(seed=7, A=800)
    ids = torch.arange(scene.count)
    kept_somewhere = dropped_somewhere = 0
    for position, target in CAMERAS:
        cam = _camera(position, target)
        ours = prefilter(scene, ids, views_of(cam, "cpu"))
        theirs = torch.tensor([_rasterizer_visible(scene, a, cam) for a in range(scene.count)])
        assert torch.equal(ours, theirs), f"{int((ours != theirs).sum())} anchors differ at {position}"
        kept_somewhere += int(ours.sum())
        dropped_somewhere += int((~ours).sum())
    assert kept_somewhere > 0 and dropped_somewhere > 0  # both outcomes exercised


def test_the_reach_cull_is_conservative_and_the_prefilter_drops_border_content():
    """"reach" derives every anchor whose Gaussians can reach the image (its frame equals deriving
    every LOD-selected anchor); upstream's pre-filter drops some of them."""
    scene = _model(seed=8, A=800)
    cam = _camera(*CAMERAS[2])  # partly out of view
    views = views_of(cam, "cpu")
    position = cam.position.float()
    everything = derive_anchors(scene, torch.nonzero(lod_mask(scene, position)).squeeze(1), position)
    reach = derive(scene, views, position, anchor_cull="reach")
    cfg = RenderConfig(backend="torch")
    full, with_reach = Renderer(everything, cfg).render(cam), Renderer(reach, cfg).render(cam)
    torch.testing.assert_close(with_reach.rgb, full.rgb, rtol=0, atol=1e-6)
    pre = visible_anchors(scene, views, position, anchor_cull="prefilter")
    assert pre.numel() < visible_anchors(scene, views, position, anchor_cull="reach").numel()


# ---- appearance, feature bank, progressive ------------------------------------------------------

def _render(scene, cam, **derive_cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Renderer(scene, RenderConfig(backend="cpu", derive=DeriveConfig(**derive_cfg))).render(cam)


def test_appearance_embeddings_select_the_colour_and_fused_equals_reference():
    scene = _model(seed=9, appearance=8)
    cam = _camera(*CAMERAS[1])
    views, position = views_of(cam, "cpu"), cam.position.float()
    ids = visible_anchors(scene, views, position)
    fused = Renderer(scene, RenderConfig(backend="cpu")).backend.derive
    for index in (0, 5, 19):
        ref, ker = derive_anchors(scene, ids, position, index), fused(scene, ids, position, index)
        assert ref.count == ker.count > 0
        torch.testing.assert_close(ker.sh, ref.sh, rtol=0, atol=1e-5)
        # The colour MLP's input ends with that row of the table.
        d = scene.anchors[ids[:1]] - position
        inp = torch.cat([scene.features[ids[:1]], d / d.norm(), scene.mlps.appearance[index:index + 1]], 1)
        kept = (scene.mlps.opacity(inp[:, :F + 3]) > 0).reshape(-1)
        first = scene.mlps.color(inp).reshape(-1, 3)[kept]
        torch.testing.assert_close(0.5 + 0.28209479177387814 * ref.sh[: len(first), 0], first, rtol=0, atol=1e-6)
    a, b = _render(scene, cam), _render(scene, cam, appearance_index=5)
    assert float((a.rgb - b.rgb).abs().max()) > 0.05  # another embedding, another look
    with pytest.raises(GscacheError, match=r"derive.appearance_index: 20 is out of range; .* 20 appearance"):
        _render(scene, cam, appearance_index=20)


@pytest.mark.parametrize("scaffold,add_level", [(False, False), (False, True), (True, False)])
def test_feature_bank_mixes_as_upstream_and_fused_equals_reference(scaffold, add_level):
    scene = _model(seed=10, bank=True, scaffold=scaffold, add_level=add_level, appearance=4 if scaffold else 0)
    cam = _camera(*CAMERAS[1])
    views, position = views_of(cam, "cpu"), cam.position.float()
    ids = visible_anchors(scene, views, position)
    ref = derive_anchors(scene, ids, position)
    ker = Renderer(scene, RenderConfig(backend="cpu")).backend.derive(scene, ids, position, 0)
    assert ref.count == ker.count > 0
    for field in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(ker, field), getattr(ref, field), rtol=1e-5, atol=1e-5)
    # The mix of one anchor by hand: every-4th and every-2nd features tiled (not interleaved).
    a = int(ids[0])
    d = scene.anchors[a] - position
    bank_in = torch.cat([d / d.norm(), d.norm()[None]]) if scaffold else \
        torch.cat([d / d.norm()] + ([scene.levels[a:a + 1]] if add_level else []))
    with torch.no_grad():
        w = scene.mlps.feature_bank(bank_in[None])[0]
    f = scene.features[a]
    mixed = torch.tensor([float(f[4 * (j % (F // 4))] * w[0] + f[2 * (j % (F // 2))] * w[1] + f[j] * w[2])
                          for j in range(F)])
    no_bank = dataclasses.replace(scene, features=scene.features.clone(), mlps=dataclasses.replace(
        scene.mlps, feature_bank=None))
    no_bank.features[a] = mixed
    by_hand = derive_anchors(no_bank, ids[:1], position)
    torch.testing.assert_close(ref.means[: by_hand.count], by_hand.means, rtol=0, atol=1e-6)
    torch.testing.assert_close(ref.sh[: by_hand.count], by_hand.sh, rtol=0, atol=1e-5)


def test_progressive_lod_fades_the_selected_level_and_the_fused_path_falls_back():
    scene = _model(seed=11, rounding="progressive")
    cam = _camera(*CAMERAS[0])
    position = cam.position.float()
    ids = torch.nonzero(lod_mask(scene, position)).squeeze(1)
    plain = derive_anchors(dataclasses.replace(scene, lod_rounding="floor"), ids, position)
    faded = derive_anchors(scene, ids, position)
    _, fade = lod_levels(scene, position)
    assert (fade < 1).any() and faded.count <= plain.count
    assert float(faded.opacities.sum()) < float(plain.opacities.sum())
    with pytest.warns(Warning, match="progressive"):
        fused = Renderer(scene, RenderConfig(backend="cpu")).backend.derive(scene, ids, position, 0)
    torch.testing.assert_close(fused.opacities, faded.opacities)


def test_a_loaded_checkpoint_renders_what_was_written(tmp_path):
    scene = _model(seed=12, appearance=6, bank=True, dists=(True, True, False))
    run = _write_run(scene, tmp_path / "run")
    back = load_scene(run)
    cam = _camera(*CAMERAS[3])
    for cfg in ({}, {"appearance_index": 3}, {"anchor_cull": "reach"}):
        torch.testing.assert_close(_render(back, cam, **cfg).rgb, _render(scene, cam, **cfg).rgb, rtol=0, atol=1e-5)


def test_the_upstream_codes_own_checkpoints_and_dumps_when_present():
    """The dumps of scripts/upstream_structured/make.py (upstream's code run on the CPU): every
    LOD mask identical, every derived Gaussian within float rounding. Skipped without them."""
    import os
    from pathlib import Path

    root = Path(os.environ.get("GSCACHE_UPSTREAM_STRUCTURED", Path(__file__).resolve().parents[3]
                               / "upstream_structured_out"))
    folders = sorted(p.parent for p in root.glob("*/cameras.json"))
    if not folders:
        pytest.skip(f"no upstream dumps at {root} (run scripts/upstream_structured/make.py, or set "
                    "GSCACHE_UPSTREAM_STRUCTURED)")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "compare_upstream", Path(__file__).resolve().parents[2] / "scripts" / "compare_upstream_structured.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    fns = {"reference": derive_anchors, "cpu": Renderer(random_scene(1), RenderConfig(backend="cpu")).backend.derive}
    for folder in folders:
        for row in compare.compare(folder, fns):
            assert row["lod_diff"] == 0, row
            for name in fns:
                count, err, diffs = row[name]
                assert count == row["gaussians"] and err <= compare.TOLERANCE, (folder.name, row["cam"], name, diffs)
