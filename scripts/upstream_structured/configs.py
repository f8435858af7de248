"""The configurations: name -> (repo, flags as they would be given to upstream train.py,
description). Plain Python, so that make.py can read them without importing torch."""

# OCT_SCRIPT = the per-dataset flags of Octree-GS train_tandt.sh (passed on through train.sh)
OCT_SCRIPT = ["--eval", "-r", "-1", "--fork", "2", "--ratio", "1", "--appearance_dim", "0",
              "--visible_threshold", "0.9", "--base_layer", "10", "--dist2level", "round",
              "--update_ratio", "0.2", "--progressive", "--init_level", "-1", "--dist_ratio", "0.999",
              "--levels", "-1", "--extra_ratio", "0.25", "--extra_up", "0.01", "--iterations", "40000"]


def _oct(**repl):
    """OCT_SCRIPT with the values of some flags replaced."""
    a = list(OCT_SCRIPT)
    for k, v in repl.items():
        a[a.index("--" + k) + 1] = v
    return a


CONFIGS = {
    "o1": ("octree", ["--eval"], "Octree ModelParams defaults (appearance_dim=32, fork=2, round, progressive=False)"),
    "o2": ("octree", OCT_SCRIPT, "per-dataset script settings (train_tandt.sh style): appearance_dim=0, progressive, round"),
    "o3": ("octree", OCT_SCRIPT + ["--add_opacity_dist", "--add_cov_dist", "--add_color_dist"], "o2 + add_opacity/cov/color_dist"),
    "o4": ("octree", OCT_SCRIPT + ["--add_level"], "o2 + add_level"),
    "o5": ("octree", _oct(dist2level="floor"), "o2 with dist2level=floor"),
    "o6": ("octree", _oct(dist2level="ceil"), "o2 with dist2level=ceil"),
    "o7": ("octree", _oct(dist2level="progressive"), "o2 with dist2level=progressive"),
    "o8": ("octree", _oct(fork="4"), "o2 with fork=4"),
    "o9": ("octree", OCT_SCRIPT + ["--use_feat_bank"], "o2 + use_feat_bank"),
    "o10": ("octree", OCT_SCRIPT + ["--use_feat_bank", "--add_level"], "o2 + use_feat_bank + add_level"),
    "s1": ("scaffold", ["--eval"], "Scaffold-GS ModelParams defaults (appearance_dim=32)"),
    "s2": ("scaffold", ["--eval", "--lod", "0", "--voxel_size", "0.01", "--update_init_factor", "16",
                        "--appearance_dim", "0", "--ratio", "1", "--iterations", "30000"],
           "Scaffold-GS train_tnt.sh style, appearance_dim=0"),
    "s3": ("scaffold", ["--eval", "--use_feat_bank", "--appearance_dim", "32", "--add_opacity_dist",
                        "--add_cov_dist", "--add_color_dist"],
           "Scaffold-GS use_feat_bank + appearance_dim=32 + all add_*_dist"),
}
