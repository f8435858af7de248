"""Octree-GS and Scaffold-GS checkpoints, as their training scripts write them.

A training run's output folder holds ``cfg_args`` (the printed argparse Namespace of the model
options) and ``point_cloud/iteration_N/`` folders; each iteration folder holds
``point_cloud.ply`` and the MLPs as TorchScript traces: ``opacity_mlp.pt``, ``cov_mlp.pt``,
``color_mlp.pt``, and ``embedding_appearance.pt`` (appearance_dim > 0) and
``feature_bank_mlp.pt`` (use_feat_bank) where the model has them. Any of the three (output
folder, iteration folder, PLY) can be loaded; the output folder gives its highest iteration
unless one is asked for.

The PLY's ``vertex`` element holds per anchor, in float32: ``x y z``; Octree-GS then ``level``,
``extra_level`` and ``info`` (row 0 voxel_size, row 1 standard_dist), Scaffold-GS ``nx ny nz``
(zeros); ``f_offset_*`` (3k values, axis-major: the k x-offsets, then the k y's, the k z's),
``f_anchor_feat_*`` (F), ``opacity`` (unused), ``scale_0..5`` (log: 0..2 scale the offsets, 3..5
the Gaussians) and ``rot_0..3`` (the anchor's rotation, used by the anchor pre-filter).

What the files do not say is read from ``cfg_args`` (fork, dist2level, which MLPs take the
distance, add_level); without it only what the MLP widths determine uniquely is inferred and
anything else must be given with ``cfg_args={...}`` overrides (``--cfg-args`` on the command line).
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import GscacheError
from .ply import _read_vertices
from .structured import LOD_ROUNDINGS, UPSTREAM_FILES, AnchorMLPs, StructuredScene, mlp_input_width

MLP_FILES = tuple(UPSTREAM_FILES[name] for name in ("opacity", "cov", "color"))
APPEARANCE_FILE = "embedding_appearance.pt"
BANK_FILE = UPSTREAM_FILES["feature_bank"]
CFG_FIELDS = ("fork", "dist2level", "add_opacity_dist", "add_cov_dist", "add_color_dist", "add_level",
              "appearance_dim", "use_feat_bank", "n_offsets", "feat_dim")
"""The cfg_args fields the reader uses (overridable with ``cfg_args={...}``)."""


# ---- where the files are ------------------------------------------------------------------------

def is_training_output(folder: Path) -> bool:
    """A folder with point_cloud/iteration_N/ folders (Octree-GS, Scaffold-GS and 3DGS runs)."""
    return (folder / "point_cloud").is_dir() and any(_iterations(folder))


def _iterations(folder: Path) -> dict[int, Path]:
    out = {}
    for sub in (folder / "point_cloud").glob("iteration_*"):
        m = re.fullmatch(r"iteration_(\d+)", sub.name)
        if m and sub.is_dir() and (sub / "point_cloud.ply").is_file():
            out[int(m.group(1))] = sub
    return out


def iteration_folder(path: str | os.PathLike, iteration: int | None = None) -> Path:
    """The folder holding point_cloud.ply for ``path`` (a training output folder, an iteration
    folder or the PLY): the highest iteration, or ``iteration``."""
    path = Path(path)
    if path.is_file():
        if iteration is not None:
            raise GscacheError(f"{path}: iteration={iteration} needs the training output folder, not a PLY")
        return path.parent
    if is_training_output(path):
        found = _iterations(path)
        if iteration is None:
            return found[max(found)]
        if iteration not in found:
            raise GscacheError(f"{path}: iteration={iteration}: no point_cloud/iteration_{iteration}/point_cloud.ply; "
                               f"the run saved iterations {sorted(found)}")
        return found[iteration]
    if iteration is not None:
        raise GscacheError(f"{path}: iteration={iteration} needs a training output folder (with point_cloud/iteration_N/)")
    return path


def find_cfg_args(folder: Path) -> Path | None:
    """The run's cfg_args: beside the PLY, or in the training output folder two levels up."""
    for candidate in (folder / "cfg_args", folder.parent / "cfg_args", folder.parent.parent / "cfg_args"):
        if candidate.is_file():
            return candidate
    return None


def parse_cfg_args(text: str, where: str) -> dict:
    """The fields of a printed ``Namespace(...)``: Python literals where they are literals, the
    source text otherwise."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise GscacheError(f"{where}: expected 'Namespace(name=value, ...)' as train.py writes it "
                           f"({type(exc).__name__}: {exc})") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Namespace"):
        raise GscacheError(f"{where}: expected 'Namespace(name=value, ...)' as train.py writes it")
    out = {}
    for kw in tree.keywords:
        if kw.arg is None:
            continue
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            out[kw.arg] = ast.unparse(kw.value)
    return out


# ---- the MLPs -----------------------------------------------------------------------------------

def _load_module(path: Path) -> torch.nn.Module:
    try:
        with warnings.catch_warnings():  # the checkpoint format is TorchScript, deprecated or not
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - TorchScript raises several types for damaged archives
        raise GscacheError(f"{path}: cannot load the TorchScript module: {str(exc).splitlines()[0]}") from None
    return module.eval()


def _embedding_table(path: Path) -> torch.Tensor:
    """The [C, D] table of a saved appearance embedding (an nn.Embedding, maybe wrapped)."""
    module = _load_module(path)
    tables = [t for t in module.state_dict().values() if t.dim() == 2]
    if len(tables) != 1:
        raise GscacheError(f"{path}: expected one [cameras, appearance_dim] embedding table, found "
                           f"{[tuple(t.shape) for t in tables]}")
    table = tables[0].detach().float().contiguous()
    if not torch.isfinite(table).all():
        raise GscacheError(f"{path}: the appearance embeddings hold NaN or Inf values")
    return table


# ---- reading ------------------------------------------------------------------------------------

def _flag(cfg: dict, name: str, where: str) -> bool | None:
    value = cfg.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in ("True", "False"):
        return value == "True"
    raise GscacheError(f"{where}: cfg_args {name}={value!r}; expected True or False")


def _resolve_inputs(folder: Path, where: str, cfg: dict, widths: dict[str, int], base: int, octree: bool,
                    app_dim: int, guessed: list[str]) -> dict[str, bool]:
    """Which MLP takes the distance and whether they take the level: from cfg_args, or inferred
    from the MLP input widths where they decide it uniquely (``guessed`` collects what was)."""
    level = _flag(cfg, "add_level", where) if octree else False
    dists = {name: _flag(cfg, flag, where) for name, flag in
             (("opacity_mlp.pt", "add_opacity_dist"), ("cov_mlp.pt", "add_cov_dist"), ("color_mlp.pt", "add_color_dist"))}
    extra = {name: widths[name] - base - (app_dim if name == "color_mlp.pt" else 0) for name in widths}
    if level is None:  # the level is in every MLP or in none: one width without it (or with both) decides
        if any(e == 0 for e in extra.values()):
            level = False
        elif any(e == 2 for e in extra.values()):
            level = True
        else:
            raise GscacheError(f"{where}: every MLP takes one input beyond the feature and view direction, which is "
                               "either the distance or the level; say which: cfg_args add_level=True, or add_level=False "
                               "with add_opacity_dist/add_cov_dist/add_color_dist=True")
        guessed.append(f"add_level={level}")
    out = {}
    for name, dist in dists.items():
        got = extra[name] - int(level)
        if dist is None:
            if got not in (0, 1):
                raise GscacheError(f"{folder / name}: input width {widths[name]} fits no combination of features "
                                   f"{base - 3} + view direction 3 (+ distance 1){' + level 1' if level else ''}"
                                   f"{f' + appearance {app_dim}' if name == 'color_mlp.pt' and app_dim else ''}")
            dist = bool(got)
            guessed.append(f"{name[:-7]} distance input={dist}")
        elif got != int(dist):
            raise GscacheError(f"{folder / name}: input width {widths[name]}, but cfg_args says "
                               f"{base + int(dist) + int(level) + (app_dim if name == 'color_mlp.pt' else 0)} "
                               f"(features {base - 3} + view direction 3{' + distance 1' if dist else ''}"
                               f"{' + level 1' if level else ''}"
                               f"{f' + appearance {app_dim}' if name == 'color_mlp.pt' and app_dim else ''})")
        out[name] = dist
    out["level"] = level
    return out


def _anchor_table(ply: Path, cfg: dict, where: str) -> dict:
    """The anchors' arrays from the PLY (checked: names, finite values, integer levels, the
    n_offsets / feat_dim cfg_args give), and voxel_size / standard_dist from Octree-GS's 'info'."""
    table = _read_vertices(str(ply), ply.read_bytes())
    names = set(table.dtype.names or ())
    n_off = sum(1 for n in names if n.startswith("f_offset_"))
    n_feat = sum(1 for n in names if n.startswith("f_anchor_feat_"))
    if n_off == 0 or n_feat == 0:
        raise GscacheError(f"{ply}: no f_offset_*/f_anchor_feat_* properties, so not a structured (anchor) model")
    if n_off % 3:
        raise GscacheError(f"{ply}: {n_off} f_offset_* properties is not 3 * n_offsets")
    need = ["x", "y", "z"] + [f"scale_{i}" for i in range(6)] + [f"f_offset_{i}" for i in range(n_off)] + \
        [f"f_anchor_feat_{i}" for i in range(n_feat)]
    missing = [n for n in need if n not in names]
    if missing:
        raise GscacheError(f"{ply}: missing anchor properties {missing[:8]}")
    octree = "level" in names
    A, k = len(table), n_off // 3
    for field, have in (("n_offsets", k), ("feat_dim", n_feat)):
        if field in cfg and cfg[field] != have:
            raise GscacheError(f"{where}: {field}={cfg[field]!r}, but {ply} has {have} "
                               f"({'f_offset_* / 3' if field == 'n_offsets' else 'f_anchor_feat_*'})")

    def cols(cols_names):
        return np.stack([table[n].astype(np.float32) for n in cols_names], axis=1) if A else \
            np.zeros((0, len(cols_names)), np.float32)

    out = {"octree": octree, "k": k, "n_feat": n_feat, "anchors": cols(["x", "y", "z"]),
           "offsets": cols([f"f_offset_{i}" for i in range(n_off)]).reshape(A, 3, k).transpose(0, 2, 1),  # axis-major
           "features": cols([f"f_anchor_feat_{i}" for i in range(n_feat)]),
           "quats": cols([f"rot_{i}" for i in range(4)]) if all(f"rot_{i}" in names for i in range(4)) else
           np.tile(np.float32([1, 0, 0, 0]), (A, 1)),
           "levels": table["level"].astype(np.float32) if octree else np.zeros(A, np.float32),
           "extra": table["extra_level"].astype(np.float32) if "extra_level" in names else np.zeros(A, np.float32)}
    with np.errstate(over="ignore"):
        out["scales"] = np.exp(cols([f"scale_{i}" for i in range(6)]))
    for name, key in (("x/y/z", "anchors"), ("f_offset", "offsets"), ("f_anchor_feat", "features"),
                      ("scale", "scales"), ("rot", "quats"), ("level", "levels"), ("extra_level", "extra")):
        if not np.isfinite(out[key]).all():
            raise GscacheError(f"{ply}: {name} holds NaN or Inf values")
    if octree and A and not np.array_equal(out["levels"], np.round(out["levels"])):
        raise GscacheError(f"{ply}: level holds non-integer values (Octree-GS stores integer levels)")
    norms = np.linalg.norm(out["quats"].astype(np.float64), axis=1, keepdims=True)
    if A and (norms == 0).any():
        raise GscacheError(f"{ply}: rot_0..3 holds a zero quaternion")
    out["quats"] = (out["quats"] / np.maximum(norms, 1e-12)).astype(np.float32)  # F.normalize, as the pre-filter
    out["voxel_size"] = out["standard_dist"] = 0.0
    if octree:
        if "info" not in names or A < 2:
            raise GscacheError(f"{ply}: an Octree-GS PLY needs 'info' (rows 0 and 1: voxel_size, standard_dist) and "
                               "at least 2 anchors")
        out["voxel_size"], out["standard_dist"] = (float(np.float32(table["info"][i])) for i in (0, 1))
        if not (out["voxel_size"] >= 0 and out["standard_dist"] >= 0):
            raise GscacheError(f"{ply}: info holds voxel_size {out['voxel_size']} and standard_dist "
                               f"{out['standard_dist']}; expected non-negative values")
    return out


def _lod_settings(folder: Path, cfg_path: Path | None, cfg: dict, where: str, lod: bool) -> tuple[int, str]:
    """(fork, dist2level): from cfg_args; a model with levels of detail without them is refused
    (neither the PLY nor the MLPs hold them, and a wrong guess renders the wrong levels)."""
    fork, rounding = cfg.get("fork"), cfg.get("dist2level")
    if lod and (fork is None or rounding is None):
        lacking = [n for n, v in (("fork", fork), ("dist2level", rounding)) if v is None]
        looked = "no cfg_args in " + ", ".join(str(p) for p in (folder, folder.parent, folder.parent.parent)) \
            if cfg_path is None else f"{cfg_path} lacks them"
        raise GscacheError(f"{folder}: an Octree-GS model's {' and '.join(lacking)} are in neither the PLY nor the "
                           f"MLPs ({looked}); give them: load_scene(path, cfg_args={{'fork': 2, 'dist2level': "
                           f"'round'}}) or --cfg-args fork=2,dist2level=round (the values the run was trained with), "
                           "or put the run's cfg_args beside point_cloud/")
    fork = 2 if fork is None else fork
    rounding = "round" if rounding is None else rounding
    if isinstance(fork, bool) or not isinstance(fork, int) or fork < 2:
        raise GscacheError(f"{where}: fork={fork!r}; expected an integer >= 2")
    if rounding not in LOD_ROUNDINGS:
        raise GscacheError(f"{where}: dist2level={rounding!r}; expected one of {', '.join(LOD_ROUNDINGS)}")
    return fork, rounding


def _optional_modules(folder: Path, cfg: dict, where: str, n_feat: int) -> tuple[torch.Tensor | None, Path | None]:
    """The appearance table and the feature bank's file where the model has them; cfg_args and
    the files present must agree."""
    app_file, bank_file = folder / APPEARANCE_FILE, folder / BANK_FILE
    appearance = _embedding_table(app_file) if app_file.is_file() else None
    app_dim = 0 if appearance is None else appearance.shape[1]
    if "appearance_dim" in cfg and cfg["appearance_dim"] != app_dim:
        have = f"{APPEARANCE_FILE} of width {app_dim}" if appearance is not None else f"no {APPEARANCE_FILE}"
        raise GscacheError(f"{where}: appearance_dim={cfg['appearance_dim']!r}, but {folder} has {have}")
    use_bank = _flag(cfg, "use_feat_bank", where)
    if use_bank is not None and use_bank != bank_file.is_file():
        raise GscacheError(f"{where}: use_feat_bank={use_bank}, but {folder} "
                           f"{'has no' if use_bank else 'has a'} {BANK_FILE}")
    if bank_file.is_file() and n_feat % 4:
        raise GscacheError(f"{folder / 'point_cloud.ply'}: a feature bank mixes every 4th feature, so feat_dim must "
                           f"be a multiple of 4, got {n_feat}")
    return appearance, bank_file if bank_file.is_file() else None


def read_structured(path: str | os.PathLike, iteration: int | None = None, cfg_args: dict | None = None
                    ) -> StructuredScene:
    """Read an Octree-GS / Scaffold-GS checkpoint: a training output folder (its highest
    iteration, or ``iteration``), an iteration folder, or its point_cloud.ply.

    ``cfg_args``: values of the run's cfg_args fields (see ``CFG_FIELDS``) that override, or stand
    in for, the file's; needed where a model without cfg_args leaves them undetermined.
    """
    folder = iteration_folder(path, iteration)
    ply = folder / "point_cloud.ply"
    if not ply.is_file():
        raise GscacheError(f"{folder}: no point_cloud.ply, so this is not a structured checkpoint")
    overrides = dict(cfg_args or {})
    unknown = sorted(set(overrides) - set(CFG_FIELDS))
    if unknown:
        raise GscacheError(f"cfg_args: unknown field(s) {unknown}; the reader uses {', '.join(CFG_FIELDS)}")
    cfg_path = find_cfg_args(folder)
    where = str(cfg_path or folder)
    cfg = parse_cfg_args(cfg_path.read_text(errors="replace"), str(cfg_path)) if cfg_path else {}
    cfg.update(overrides)

    t = _anchor_table(ply, cfg, where)
    octree, n_feat = t["octree"], t["n_feat"]
    appearance, bank_file = _optional_modules(folder, cfg, where, n_feat)
    app_dim = 0 if appearance is None else appearance.shape[1]
    fork, rounding = _lod_settings(folder, cfg_path, cfg, where, octree and t["standard_dist"] > 0)

    guessed: list[str] = []
    opacity, cov, color = (_load_mlp(folder / name) for name in MLP_FILES)
    widths = {name: mlp_input_width(m, str(folder / name)) for name, m in zip(MLP_FILES, (opacity, cov, color))}
    inputs = _resolve_inputs(folder, where, cfg, widths, n_feat + 3, octree, app_dim, guessed)
    bank = _load_module(bank_file) if bank_file is not None else None
    mlps = AnchorMLPs(opacity, cov, color, inputs["opacity_mlp.pt"], inputs["cov_mlp.pt"], inputs["color_mlp.pt"],
                      inputs["level"], appearance, bank, bank_dist=not octree)
    if guessed:
        warnings.warn(f"{folder}: no cfg_args; inferred from the MLP widths: {', '.join(guessed)}", stacklevel=3)
    levels = t["levels"]
    n_levels = int(levels.max() - levels.min()) + 1 if len(levels) else 1
    arrays = {name: torch.from_numpy(np.ascontiguousarray(t[name]))
              for name in ("anchors", "offsets", "features", "scales", "levels", "extra", "quats")}
    return StructuredScene(arrays["anchors"], arrays["offsets"], arrays["features"], arrays["scales"],
                           arrays["levels"], arrays["extra"], mlps, t["voxel_size"], t["standard_dist"], int(fork),
                           n_levels, lod_rounding=rounding, source=str(folder), anchor_quats=arrays["quats"])


def _load_mlp(path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise GscacheError(f"{path.parent}: missing {path.name}: a structured checkpoint needs {', '.join(MLP_FILES)}")
    return _load_module(path)


# ---- writing ------------------------------------------------------------------------------------

def _save_module(module: torch.nn.Module, path: Path, example: torch.Tensor) -> None:
    with warnings.catch_warnings():  # the checkpoint format is TorchScript, deprecated or not
        warnings.simplefilter("ignore")
        if isinstance(module, torch.jit.ScriptModule):
            scripted = module
        else:  # traced, as the training code saves them
            scripted = torch.jit.trace(module.cpu().eval(), example)
        with atomic_write(path) as f:
            torch.jit.save(scripted, f)


class _Embedding(torch.nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding.from_pretrained(table.cpu())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.embedding(idx)


def write_structured(scene: StructuredScene, folder: str | os.PathLike) -> None:
    """Write an iteration folder as Octree-GS saves one (point_cloud.ply, the traced MLPs, the
    embedding and feature bank where the model has them), with a cfg_args beside it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    A, k, F = scene.count, scene.n_offsets, scene.features.shape[1]
    m = scene.mlps
    # Scaffold-GS's layout (no levels) for a model without level of detail, else Octree-GS's.
    octree = scene.standard_dist > 0 or bool(scene.levels.any()) or bool(scene.extra_levels.any())
    if octree and m.bank_dist:
        raise GscacheError(f"{folder}: a Scaffold-GS feature bank (bank_dist) on a model with levels of detail has no "
                           "checkpoint layout")
    if octree and A < 2:
        raise GscacheError(f"{folder}: an Octree-GS checkpoint stores voxel_size and standard_dist in its first two "
                           f"anchors' 'info'; this model has {A}")
    quats = scene.anchor_quats if scene.anchor_quats is not None else torch.tensor([1.0, 0, 0, 0]).expand(A, 4)
    cols = {"x": scene.anchors[:, 0], "y": scene.anchors[:, 1], "z": scene.anchors[:, 2]}
    if octree:
        info = np.zeros(A, np.float32)
        info[0], info[1] = scene.voxel_size, scene.standard_dist
        cols.update({"level": scene.levels, "extra_level": scene.extra_levels, "info": torch.from_numpy(info)})
    else:
        cols.update({n: torch.zeros(A) for n in ("nx", "ny", "nz")})
    off = scene.offsets.permute(0, 2, 1).reshape(A, 3 * k)  # axis-major
    cols.update({f"f_offset_{i}": off[:, i] for i in range(3 * k)})
    cols.update({f"f_anchor_feat_{i}": scene.features[:, i] for i in range(F)})
    cols["opacity"] = torch.zeros(A)
    log_scales = torch.log(scene.scales)
    cols.update({f"scale_{i}": log_scales[:, i] for i in range(6)})
    cols.update({f"rot_{i}": quats[:, i] for i in range(4)})
    names = list(cols)
    body = np.stack([cols[n].detach().cpu().float().numpy() for n in names], axis=1).astype("<f4") if A else \
        np.zeros((0, len(names)), "<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {A}\n"
    header += "".join(f"property float {n}\n" for n in names) + "end_header\n"
    with atomic_write(folder / "point_cloud.ply") as f:
        f.write(header.encode("ascii"))
        f.write(body.tobytes())
    base = F + 3 + int(m.add_level)
    for name, module, dist, extra in zip(MLP_FILES, (m.opacity, m.cov, m.color), (m.opacity_dist, m.cov_dist, m.color_dist),
                                         (0, 0, m.appearance_dim)):
        _save_module(module, folder / name, torch.rand(1, base + int(dist) + extra))
    if m.appearance is not None:
        _save_module(_Embedding(m.appearance), folder / APPEARANCE_FILE, torch.zeros(1, dtype=torch.long))
    if m.feature_bank is not None:
        _save_module(m.feature_bank, folder / BANK_FILE, torch.rand(1, 3 + int(m.bank_dist or m.add_level)))
    args = (f"Namespace(feat_dim={F}, n_offsets={k}, fork={scene.fork}, use_feat_bank={m.feature_bank is not None}, "
            f"appearance_dim={m.appearance_dim}, add_opacity_dist={m.opacity_dist}, add_cov_dist={m.cov_dist}, "
            f"add_color_dist={m.color_dist}, add_level={m.add_level}, dist2level='{scene.lod_rounding}')")
    with atomic_write(folder / "cfg_args") as f:
        f.write(args.encode())


__all__ = ["read_structured", "write_structured", "iteration_folder", "is_training_output", "parse_cfg_args",
           "CFG_FIELDS"]
