#!/usr/bin/env python3
"""Write Octree-GS / Scaffold-GS checkpoints and LOD dumps with upstream's own code, on the CPU.

usage: python3 scripts/upstream_structured/make.py --octree PATH --scaffold PATH [--out DIR] [config ...]

PATH are work trees of github.com/city-super/Octree-GS and github.com/city-super/Scaffold-GS
(defaults: $GSCACHE_OCTREE_GS, $GSCACHE_SCAFFOLD_GS); only the repositories the chosen configs
need are required. Each config runs gen.py in its own interpreter (the two repositories share the
top-level package names scene/utils/arguments/gaussian_renderer, so they must not share
sys.modules). Afterwards <out>/<config>/model_cuda/ is written (the same checkpoint with its
TorchScript storages tagged 'cuda:0', as a GPU-trained checkpoint has them), and
<out>/index.json lists per-config results; a partial run merges into an existing index.json.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import cuda_tag
from configs import CONFIGS

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))
# outside the project tree: the output is large and must never end up in a commit
DEFAULT_OUT = os.path.join(os.path.dirname(PROJECT), "upstream_structured_out")

# what the upstream modules the harness loads import: the project's own dependencies, then three
# more that only upstream needs
PROJECT_MODULES = ("torch", "numpy", "PIL", "tqdm", "jaxtyping")
EXTRA_MODULES = ("plyfile", "einops", "colorama")

# option -> (environment variable with the default, GitHub repository)
REPOS = {
    "octree": ("GSCACHE_OCTREE_GS", "city-super/Octree-GS"),
    "scaffold": ("GSCACHE_SCAFFOLD_GS", "city-super/Scaffold-GS"),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for opt, (env, name) in REPOS.items():
        ap.add_argument(f"--{opt}", default=os.environ.get(env),
                        help=f"work tree of github.com/{name} (default: ${env})")
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    ap.add_argument("configs", nargs="*", metavar="config", help=f"default: all of {' '.join(CONFIGS)}")
    args = ap.parse_args()
    unknown = [n for n in args.configs if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {' '.join(unknown)}; choose from {' '.join(CONFIGS)}")
    return args


def fail(msg):
    print(f"make.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_modules():
    for mods, hint in ((PROJECT_MODULES, "pip install -r requirements.txt"),
                       (EXTRA_MODULES, "pip install " + " ".join(EXTRA_MODULES))):
        for mod in mods:
            if importlib.util.find_spec(mod) is None:
                fail(f"missing Python module '{mod}' (the upstream code imports it; {hint})")


def check_repo(opt, path):
    """Both repositories have scene/gaussian_model.py; only Octree-GS's defines set_anchor_mask,
    which tells the two apart when the options are swapped."""
    env, name = REPOS[opt]
    if not path:
        fail(f"--{opt} is not given and ${env} is not set (a work tree of github.com/{name})")
    model = os.path.join(path, "scene", "gaussian_model.py")
    if not os.path.isfile(model):
        fail(f"--{opt} {path} does not look like a work tree of github.com/{name} (no scene/gaussian_model.py)")
    with open(model) as f:
        is_octree = "def set_anchor_mask" in f.read()
    if is_octree != (opt == "octree"):
        fail(f"--{opt} {path} looks like the other repository, not github.com/{name}")
    return os.path.abspath(path)


def run_config(name, repo_dir, out):
    """gen.py in a fresh interpreter, then the model_cuda/ copy -> index.json entry."""
    d = os.path.join(out, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    p = subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), name, "--repo", repo_dir, "--out", out],
                       check=False, capture_output=True, text=True)
    repo, _, desc = CONFIGS[name]
    entry = {"repo": repo, "description": desc, "ok": p.returncode == 0}
    if entry["ok"]:
        cuda_tag.copy_retagged(os.path.join(d, "model"), os.path.join(d, "model_cuda"))
        with open(os.path.join(d, "summary.json")) as f:
            entry["summary"] = json.load(f)["cameras"]
        print(f"[ok]   {name}")
    else:
        entry["error"] = (p.stdout + p.stderr)[-4000:]
        print(f"[FAIL] {name}\n{entry['error']}")
    return entry


def write_index(out, index, partial):
    path = os.path.join(out, "index.json")
    merged = {}
    if partial and os.path.exists(path):
        with open(path) as f:
            merged = json.load(f)
    merged.update(index)
    with open(path, "w") as f:
        json.dump(merged, f, indent=1)


def main():
    args = parse_args()
    names = args.configs or list(CONFIGS)
    check_modules()
    repo_dirs = {opt: check_repo(opt, getattr(args, opt)) for opt in sorted({CONFIGS[n][0] for n in names})}
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    index = {n: run_config(n, repo_dirs[CONFIGS[n][0]], out) for n in names}
    write_index(out, index, partial=bool(args.configs))
    bad = [n for n, e in index.items() if not e["ok"]]
    print("failed:", bad if bad else "none")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
