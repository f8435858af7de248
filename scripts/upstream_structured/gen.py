#!/usr/bin/env python3
"""Generate ONE configuration with upstream's own code (make.py runs it once per config).

Each config needs a fresh interpreter, because Octree-GS and Scaffold-GS share the top-level
package names scene/utils/arguments/gaussian_renderer.

usage: python3 gen.py <config> --repo <Octree-GS or Scaffold-GS work tree> --out <dir>

Steps (all upstream functions are imported from the given work tree, never copied):
  1. build the argument parser exactly like upstream train.py (ModelParams/OptimizationParams/
     PipelineParams), parse the config's command line, dataset = lp.extract(args); write cfg_args
     like train.py's prepare_output_and_logger: str(Namespace(**vars(dataset))).
  2. GaussianModel(...) with the positional arguments train.py uses, set_appearance(20) (what
     Scene does, 20 training cameras), fill the parameters with random plausible values (the
     attribute layout create_from_pcd produces), then upstream Scene.save(7000) with perturbed
     values and Scene.save(30000) with the final values.
  3. Load it back like upstream render.py: parser with ModelParams(sentinel=True) +
     PipelineParams + render.py's own args, get_combined_args() with argv
     ['render.py', '-m', model_path], GaussianModel(...) as render_sets does, upstream
     Scene(..., load_iteration=-1, shuffle=False) (only the dataset reader callback is replaced,
     by one that returns our camera infos), gaussians.eval().
  4. For each test camera (scene.getTestCameras(), uid 0..5): Octree: set_anchor_mask(
     view.camera_center, scene.loaded_iter, view.resolution_scale); then
     generate_neural_gaussians(view, gaussians, visible_mask=<LOD mask | all anchors>,
     is_training=False[, ape_code=-1]) and once more with is_training=True to get
     neural_opacity / mask; dump to <out>/<config>/cam<i>.npz.
"""
import argparse
import json
import math
import os
import sys
import types

import numpy as np
import torch

import cpu_shim
from configs import CONFIGS

NUM_TRAIN_CAMS = 20
VOXEL_SIZE = 0.05
# 8, not upstream's typical ~3: with 3 most test cameras select only level 0; with 8 each mixes
# 2-4 levels (upstream derives it as about the 0.999-quantile of the camera distances)
STANDARD_DIST = 8.0
BOX = 2.0  # anchors in [-2, 2]^3 (a 4 m box around the origin)
N_ANCHORS = 2000
CONVENTION = ("W2C is OpenCV world-to-camera (x right, y down, z forward); upstream R = "
              "W2C[:3,:3].T, T = W2C[:3,3]; FoVx = 2*atan(W/(2*fx)), FoVy = 2*atan(H/(2*fy)); "
              "cx = W/2, cy = H/2 (upstream has no principal-point offset)")


# ----------------------------------------------------------------------------------------------
# cameras (OpenCV convention W2C: x right, y down, z forward)
def look_at_w2c(eye, target, up=(0.0, 1.0, 0.0), roll_deg=0.0):
    eye = np.asarray(eye, np.float64)
    f = np.asarray(target, np.float64) - eye
    f /= np.linalg.norm(f)
    x = np.cross(f, np.asarray(up, np.float64))
    x /= np.linalg.norm(x)
    y = np.cross(f, x)
    if roll_deg:
        a = math.radians(roll_deg)
        x, y = math.cos(a) * x + math.sin(a) * y, -math.sin(a) * x + math.cos(a) * y
    R = np.stack([x, y, f], 0)  # rows = camera axes in world coords -> world->camera rotation
    W2C = np.eye(4)
    W2C[:3, :3] = R
    W2C[:3, 3] = -R @ eye
    return W2C


def test_camera_specs():
    d0 = np.array([0.1, 0.2, 1.0])
    d0 = d0 / np.linalg.norm(d0) * 8.0
    d5 = np.array([-0.7, -0.35, -0.6])
    d5 = d5 / np.linalg.norm(d5) * 6.0
    return [
        # name, eye, target, up, roll, W, H, fx, fy
        ("far_8m", d0, (0, 0, 0), (0, 1, 0), 0.0, 640, 480, 500.0, 500.0),
        ("mid_4m", (3.0, 1.0, 2.5), (0, 0, 0), (0, 1, 0), 0.0, 317, 241, 300.0, 300.0),
        ("oblique_2.5m_nonsquare", (-1.8, -0.6, 1.6), (0.1, 0, 0), (0, 1, 0), 0.0, 640, 480, 520.0, 505.0),
        ("box_edge_partly_outside", (2.5, 0.3, 4.5), (2.0, 0.0, 0.0), (0, 1, 0), 0.0, 317, 241, 260.0, 260.0),
        ("very_close_inside_0.5m", (0.25, 0.15, 0.4), (0.0, 0.0, -1.0), (0, 1, 0), 0.0, 640, 480, 450.0, 450.0),
        ("low_6m_rolled", d5, (0, 0.2, 0), (0, 1, 0), 20.0, 317, 241, 280.0, 280.0),
    ]


def train_camera_specs():
    """Only their number matters (it sizes the appearance embedding): a 5 m ring at 32x24."""
    out = []
    for i in range(NUM_TRAIN_CAMS):
        a = 2 * math.pi * i / NUM_TRAIN_CAMS
        eye = (5.0 * math.cos(a), 1.0 + 0.5 * math.sin(3 * a), 5.0 * math.sin(a))
        out.append((f"train_{i:03d}", eye, (0, 0, 0), (0, 1, 0), 0.0, 32, 24, 30.0, 30.0))
    return out


def make_cam_infos(specs, CameraInfo, focal2fov):
    """Turn (W2C, fx, fy, W, H) into upstream CameraInfo exactly like readColmapCameras does:
    R = W2C[:3,:3].T (upstream stores the transposed rotation), T = W2C[:3,3],
    FovX = focal2fov(fx, W), FovY = focal2fov(fy, H). Also returns the cameras.json entries."""
    from PIL import Image
    infos, meta = [], []
    for uid, (name, eye, tgt, up, roll, W, H, fx, fy) in enumerate(specs):
        W2C = look_at_w2c(eye, tgt, up, roll)
        R = np.transpose(W2C[:3, :3])
        T = np.array(W2C[:3, 3])
        FovX = focal2fov(fx, W)
        FovY = focal2fov(fy, H)
        img = Image.new("RGB", (W, H))
        infos.append(CameraInfo(uid=uid, R=R, T=T, FovY=FovY, FovX=FovX, image=img,
                                image_path="", image_name=name, width=W, height=H))
        meta.append({"uid": uid, "image_name": name, "width": W, "height": H, "fx": fx, "fy": fy,
                     "cx": W / 2.0, "cy": H / 2.0, "FoVx": FovX, "FoVy": FovY, "W2C": W2C.tolist(),
                     "eye": np.asarray(eye, float).tolist(), "R_upstream": R.tolist(),
                     "T_upstream": T.tolist(), "znear": 0.01, "zfar": 100.0, "resolution_scale": 1.0})
    return infos, meta


# ----------------------------------------------------------------------------------------------
# parameters
def random_params(repo, fork, n_offsets, feat_dim, rng):
    """Plausible random anchor parameters (numpy float32), anchors on octree voxel grids."""
    P = {}
    init_pos = np.float32(-BOX * 1.1)
    if repo == "octree":
        L = 3 if fork >= 4 else 4
        counts = [350, 450, 550, 450] if L == 4 else [500, 700, 600]
        n_grown = N_ANCHORS - sum(counts)
        # the "grown" anchors get random levels, so the level order is not monotonic
        levels = np.concatenate([np.full(c, lv) for lv, c in enumerate(counts)] +
                                [rng.integers(0, L, n_grown)]).astype(np.int32)
        pos = rng.uniform(-BOX, BOX, (N_ANCHORS, 3))
        cur = VOXEL_SIZE / (float(fork) ** levels.astype(np.float64))
        pos = (np.round((pos - init_pos) / cur[:, None]) * cur[:, None] + init_pos).astype(np.float32)
        P["level"] = levels[:, None]
        P["extra_level"] = rng.uniform(-0.3, 0.3, N_ANCHORS).astype(np.float32)
    else:
        pos = rng.uniform(-BOX, BOX, (N_ANCHORS, 3))
        pos = (np.round((pos - init_pos) / VOXEL_SIZE) * VOXEL_SIZE + init_pos).astype(np.float32)
    P["anchor"] = pos
    P["offset"] = rng.normal(0, 1, (N_ANCHORS, n_offsets, 3)).astype(np.float32)
    P["anchor_feat"] = rng.normal(0, 0.5, (N_ANCHORS, feat_dim)).astype(np.float32)
    P["opacity"] = (math.log(0.1 / 0.9) + rng.normal(0, 0.1, (N_ANCHORS, 1))).astype(np.float32)
    sc = np.empty((N_ANCHORS, 6))
    sc[:, :3] = math.log(0.05) + rng.normal(0, 0.15, (N_ANCHORS, 3))   # offset scaling ~0.05 m
    sc[:, 3:] = math.log(0.06) + rng.normal(0, 0.15, (N_ANCHORS, 3))   # base scale; *sigmoid(~0) -> ~0.03 m
    P["scaling"] = sc.astype(np.float32)
    rot = np.zeros((N_ANCHORS, 4), np.float32)
    rot[:, 0] = 1.0
    P["rotation"] = rot
    return P


def perturb_params(P, rng):
    """'iteration_7000' version: fewer anchors (first 90%), noisier features/extra_level."""
    n = int(N_ANCHORS * 0.9)
    Q = {k: v[:n].copy() for k, v in P.items()}
    Q["anchor_feat"] += rng.normal(0, 0.2, Q["anchor_feat"].shape).astype(np.float32)
    Q["offset"] *= np.float32(0.8)
    if "extra_level" in Q:
        Q["extra_level"] = (Q["extra_level"] * 0.5).astype(np.float32)
    return Q


def assign_params(g, P, repo):
    """Same attribute layout/dtypes as upstream create_from_pcd."""
    nn = torch.nn
    g._anchor = nn.Parameter(torch.tensor(P["anchor"]).requires_grad_(True))
    g._offset = nn.Parameter(torch.tensor(P["offset"]).requires_grad_(True))
    g._anchor_feat = nn.Parameter(torch.tensor(P["anchor_feat"]).requires_grad_(True))
    g._scaling = nn.Parameter(torch.tensor(P["scaling"]).requires_grad_(True))
    g._rotation = nn.Parameter(torch.tensor(P["rotation"]).requires_grad_(False))
    g._opacity = nn.Parameter(torch.tensor(P["opacity"]).requires_grad_(False))
    if repo == "octree":
        g._level = torch.tensor(P["level"], dtype=torch.int)
        g._extra_level = torch.tensor(P["extra_level"], dtype=torch.float)
        g._anchor_mask = torch.ones(g._anchor.shape[0], dtype=torch.bool)
        g.voxel_size = torch.tensor(VOXEL_SIZE, dtype=torch.float32)      # 0-dim tensor as in create_from_pcd
        g.standard_dist = torch.tensor(STANDARD_DIST, dtype=torch.float32)  # 0-dim tensor as in set_level
        g.levels = int(P["level"].max()) + 1
        g.init_level = int(g.levels / 2)


def mlp_modules(g):
    mods = [g.mlp_opacity, g.mlp_cov, g.mlp_color]
    if g.use_feat_bank:
        mods.append(g.mlp_feature_bank)
    if g.appearance_dim > 0:
        mods.append(g.embedding_appearance)
    return mods


def scale_mlps(g):
    """Upstream default init, scaled up so tanh opacities are spread (both signs, |o| up to ~1)."""
    with torch.no_grad():
        for mod, s in ((g.mlp_opacity, 3.0), (g.mlp_cov, 2.0), (g.mlp_color, 2.0)):
            for p in mod.parameters():
                p.mul_(s)
        if g.use_feat_bank:
            for p in g.mlp_feature_bank.parameters():
                p.mul_(3.0)


def to_np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ----------------------------------------------------------------------------------------------
# upstream calls
def import_upstream(repo_dir):
    """Import the upstream modules from repo_dir (after the stubs on sys.path, so that the
    CPU stubs stand in for the CUDA extensions)."""
    sys.path.insert(1, repo_dir)
    import arguments
    import gaussian_renderer
    import scene
    from scene.dataset_readers import CameraInfo, SceneInfo
    from utils.graphics_utils import focal2fov
    return types.SimpleNamespace(arguments=arguments, scene=scene, CameraInfo=CameraInfo,
                                 SceneInfo=SceneInfo, focal2fov=focal2fov, renderer=gaussian_renderer)


def install_fake_reader(U, train_infos, test_infos):
    """Replace the only data I/O: the COLMAP reader Scene picks because source_path has sparse/."""
    def fake_reader(*args, **kwargs):
        return U.SceneInfo(point_cloud=None, train_cameras=list(train_infos), test_cameras=list(test_infos),
                           nerf_normalization={"translate": np.zeros(3), "radius": 5.0}, ply_path="")

    U.scene.sceneLoadTypeCallbacks["Colmap"] = fake_reader


def new_gaussian_model(U, repo, d):
    """GaussianModel(...) with the positional arguments train.py and render.py's render_sets use."""
    if repo == "octree":
        return U.scene.GaussianModel(d.feat_dim, d.n_offsets, d.fork, d.use_feat_bank, d.appearance_dim,
                                     d.add_opacity_dist, d.add_cov_dist, d.add_color_dist, d.add_level,
                                     d.visible_threshold, d.dist2level, d.base_layer, d.progressive, d.extend)
    return U.scene.GaussianModel(d.feat_dim, d.n_offsets, d.voxel_size, d.update_depth, d.update_init_factor,
                                 d.update_hierachy_factor, d.use_feat_bank, d.appearance_dim, d.ratio,
                                 d.add_opacity_dist, d.add_cov_dist, d.add_color_dist)


def train_dataset(U, flags, source_path, model_path):
    """train.py's argument handling; writes cfg_args like prepare_output_and_logger."""
    A = U.arguments
    parser = argparse.ArgumentParser(description="Training script parameters")
    lp = A.ModelParams(parser)
    A.OptimizationParams(parser)
    A.PipelineParams(parser)
    args = parser.parse_args(flags + ["-s", source_path, "-m", model_path])
    dataset = lp.extract(args)
    with open(os.path.join(dataset.model_path, "cfg_args"), "w") as f:
        f.write(str(argparse.Namespace(**vars(dataset))))
    return dataset


def build_and_save(U, repo, dataset, n_train_cams, rng):
    """Fill a GaussianModel with random values and save iterations 7000 (perturbed) and 30000.
    The torch and numpy RNG draws happen in a fixed order, which keeps the output deterministic."""
    g = new_gaussian_model(U, repo, dataset)
    g.set_appearance(n_train_cams)  # what Scene.__init__ does
    scale_mlps(g)
    fork = dataset.fork if repo == "octree" else 2
    P30 = random_params(repo, fork, dataset.n_offsets, dataset.feat_dim, rng)
    P7 = perturb_params(P30, rng)
    # Scene.save only reads model_path and gaussians, so call it unbound on a stand-in
    fake_scene = types.SimpleNamespace(model_path=dataset.model_path, gaussians=g)
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in mlp_modules(g)]
    with torch.no_grad():
        for m in mlp_modules(g):
            for p in m.parameters():
                p.mul_(0.9).add_(0.05 * torch.randn_like(p))
    assign_params(g, P7, repo)
    U.scene.Scene.save(fake_scene, 7000)
    for m, sd in zip(mlp_modules(g), saved):
        m.load_state_dict(sd)
    assign_params(g, P30, repo)
    U.scene.Scene.save(fake_scene, 30000)


def render_args(U, repo, model_path):
    """render.py's parser and get_combined_args(), as if run as `render.py -m <model_path>`."""
    A = U.arguments
    parser = argparse.ArgumentParser(description="Testing script parameters")
    model = A.ModelParams(parser, sentinel=True)
    A.PipelineParams(parser)
    parser.add_argument("--iteration", default=-1, type=int)
    if repo == "octree":
        parser.add_argument("--ape", default=10, type=int)
    parser.add_argument("--skip_train", action="store_true")
    parser.add_argument("--skip_test", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    if repo == "octree":
        parser.add_argument("--show_level", action="store_true")
    old_argv = sys.argv
    sys.argv = ["render.py", "-m", model_path]  # get_combined_args reads sys.argv itself
    try:
        rargs = A.get_combined_args(parser)
    finally:
        sys.argv = old_argv
    return model.extract(rargs), rargs


def load_like_render(U, repo, model_path):
    ds, rargs = render_args(U, repo, model_path)
    gaussians = new_gaussian_model(U, repo, ds)
    if repo == "octree":
        scene = U.scene.Scene(ds, gaussians, load_iteration=rargs.iteration, shuffle=False,
                              resolution_scales=ds.resolution_scales)
    else:
        scene = U.scene.Scene(ds, gaussians, load_iteration=rargs.iteration, shuffle=False)
    gaussians.eval()
    return ds, gaussians, scene


def dump_camera(U, repo, ds, gaussians, scene, view):
    """upstream's LOD mask and derived Gaussians for one camera -> (npz fields, summary entry)."""
    D = {}
    N = gaussians.get_anchor.shape[0]
    if repo == "octree":
        gaussians.set_anchor_mask(view.camera_center, scene.loaded_iter, view.resolution_scale)
        anchor_mask = gaussians._anchor_mask.clone()
        if ds.dist2level == "progressive":
            D["prog_ratio"] = to_np(gaussians._prog_ratio)
            D["transition_mask"] = to_np(gaussians.transition_mask)
        kw = {"ape_code": -1}  # render.py's default: appearance row = view.uid
        D["resolution_scale"] = np.float64(view.resolution_scale)
    else:
        anchor_mask = torch.ones(N, dtype=torch.bool)
        kw = {}
    vis = anchor_mask  # prefilter_voxel needs the CUDA visible_filter, so it is not applied
    D["anchor_mask"] = to_np(anchor_mask)
    D["visible_mask"] = to_np(vis)
    gen = U.renderer.generate_neural_gaussians
    xyz, color, opacity, scaling, rot = gen(view, gaussians, vis.clone(), is_training=False, **kw)
    # only the training branch returns neural_opacity and mask; the Gaussians must not change
    r = gen(view, gaussians, vis.clone(), is_training=True, **kw)
    for a, b in zip((xyz, color, opacity, scaling, rot), r[:5]):
        assert torch.equal(a, b)
    D["xyz"], D["color"], D["opacity"], D["scaling"], D["rot"] = map(to_np, (xyz, color, opacity, scaling, rot))
    D["neural_opacity"], D["mask"] = to_np(r[5]), to_np(r[6])
    D["camera_center"] = to_np(view.camera_center)
    D["world_view_transform"] = to_np(view.world_view_transform)
    D["projection_matrix"] = to_np(view.projection_matrix)
    D["full_proj_transform"] = to_np(view.full_proj_transform)
    D["FoVx"], D["FoVy"] = np.float64(view.FoVx), np.float64(view.FoVy)
    D["width"], D["height"] = np.int64(view.image_width), np.int64(view.image_height)
    D["uid"] = np.int64(view.uid)
    D["R"], D["T"] = np.asarray(view.R, np.float64), np.asarray(view.T, np.float64)
    D["loaded_iter"] = np.int64(scene.loaded_iter)
    D["n_anchors"] = np.int64(N)
    if repo == "octree":
        D["levels"] = to_np(gaussians.levels)
        D["voxel_size"] = to_np(gaussians.voxel_size)
        D["standard_dist"] = to_np(gaussians.standard_dist)
        D["fork"] = np.int64(gaussians.fork)
    summary = {"cam": view.uid, "uid": view.uid, "anchors_selected": int(vis.sum()), "n_anchors": N,
               "gaussians": int(xyz.shape[0]), "gaussians_total": int(r[6].numel())}
    return D, summary


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


# ----------------------------------------------------------------------------------------------
def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", choices=CONFIGS)
    ap.add_argument("--repo", required=True, help="work tree of the config's upstream repository")
    ap.add_argument("--out", required=True, help="output root; writes <out>/<config>/ and <out>/data/")
    return ap.parse_args()


def main():
    args = parse_args()
    cpu_shim.install()  # before any torch op and before any upstream import
    name = args.config
    repo, flags, desc = CONFIGS[name]
    U = import_upstream(os.path.abspath(args.repo))

    cfg_dir = os.path.join(args.out, name)
    model_path = os.path.join(cfg_dir, "model")
    source_path = os.path.join(args.out, "data", "synthetic_box")  # an empty sparse/ -> Scene picks "Colmap"
    os.makedirs(os.path.join(source_path, "sparse"), exist_ok=True)
    os.makedirs(model_path, exist_ok=True)

    test_infos, test_meta = make_cam_infos(test_camera_specs(), U.CameraInfo, U.focal2fov)
    train_infos, _ = make_cam_infos(train_camera_specs(), U.CameraInfo, U.focal2fov)
    install_fake_reader(U, train_infos, test_infos)

    dataset = train_dataset(U, flags, source_path, model_path)
    seed = 1000 + sorted(CONFIGS).index(name)
    torch.manual_seed(seed)
    build_and_save(U, repo, dataset, len(train_infos), np.random.default_rng(seed))

    summary = []
    with torch.no_grad():
        ds, gaussians, scene = load_like_render(U, repo, model_path)
        views = scene.getTestCameras()
        assert [v.uid for v in views] == list(range(len(views)))
        for i, view in enumerate(views):
            D, s = dump_camera(U, repo, ds, gaussians, scene, view)
            np.savez(os.path.join(cfg_dir, f"cam{i}.npz"), **D)
            summary.append(s)

    write_json(os.path.join(cfg_dir, "cameras.json"),
               {"convention": CONVENTION, "num_train_cameras": len(train_infos), "cameras": test_meta})
    write_json(os.path.join(cfg_dir, "summary.json"),
               {"config": name, "repo": repo, "description": desc, "train_flags": flags,
                "loaded_iter": scene.loaded_iter, "cameras": summary})
    print(name, "ok", json.dumps(summary))


if __name__ == "__main__":
    main()
