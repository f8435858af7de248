"""``gscache convert``: write a scene in another format and report what the format lost.

The report compares the scene as written (SH bands kept, in the original order) with the scene
read back from the new file, Gaussian by Gaussian (save_scene returns the written order), and
renders both from an orbit of views around the scene:

- per attribute (max, 99th percentile, RMS): position error (m, and as a fraction of the scene radius), scale error (relative,
  from the log-scale difference), rotation error (degrees between the quaternions), opacity error,
  DC colour error (in 8-bit levels of ``0.5 + C0 * f_dc``) and SH coefficient error;
- render PSNR / SSIM of the converted scene against the original (with every band it had), so a
  ``--sh-degree`` below the source's shows up here and not in the per-attribute rows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .api import open_renderer, open_scene
from .bench.metrics import psnr, ssim
from .camera import Intrinsics, StereoRig
from .config import RenderConfig
from .errors import GscacheError
from .scene import load_scene, save_scene, write_format
from .scene.structured import StructuredScene
from .sh import SH_C0, num_sh_coeffs
from .trajectory import named_trajectory, scene_frame


@dataclass
class AttributeLoss:
    """max, 99th percentile and RMS of one attribute's error over the Gaussians, in ``unit`` (the
    max shows values the format clamps, e.g. SPZ's log scales below -10; p99 the typical bound)."""

    name: str
    unit: str
    max: float
    p99: float
    rms: float


@dataclass
class ConvertReport:
    source: str
    target: str
    fmt: str
    count: int
    sh_degree_in: int
    sh_degree_out: int
    bytes_in: int
    bytes_out: int
    write_s: float
    read_s: float
    attributes: list[AttributeLoss] = field(default_factory=list)
    view_psnr: list[float] = field(default_factory=list)
    view_ssim: list[float] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{self.source} -> {self.target} ({self.fmt}): {self.count:,} Gaussians, SH degree "
                 f"{self.sh_degree_in} -> {self.sh_degree_out}, {self.bytes_in / 2**20:.2f} MiB -> "
                 f"{self.bytes_out / 2**20:.2f} MiB ({self.bytes_out / max(self.bytes_in, 1):.2f}x), "
                 f"written in {self.write_s:.2f} s, read back in {self.read_s:.2f} s",
                 f"  {'attribute':<22} {'max error':>14} {'99th pct':>14} {'RMS error':>14}"]
        for a in self.attributes:
            lines.append(f"  {a.name:<22} {_fmt(a.max):>10} {a.unit:<3} {_fmt(a.p99):>10} {a.unit:<3} "
                         f"{_fmt(a.rms):>10} {a.unit:<3}")
        if self.view_psnr:
            lines.append(f"  render PSNR vs the original, {len(self.view_psnr)} views: min {min(self.view_psnr):.2f} dB, "
                         f"mean {np.mean(self.view_psnr):.2f} dB; SSIM min {min(self.view_ssim):.4f}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["attributes"] = [a.__dict__ for a in self.attributes]
        return d


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:.3g}"


def _stats(name: str, unit: str, err: np.ndarray) -> AttributeLoss:
    err = np.abs(np.asarray(err, np.float64)).reshape(-1)
    if err.size == 0:
        return AttributeLoss(name, unit, 0.0, 0.0, 0.0)
    return AttributeLoss(name, unit, float(err.max()), float(np.quantile(err, 0.99)), float(np.sqrt((err ** 2).mean())))


def attribute_errors(a, b, radius: float) -> list[AttributeLoss]:
    """Per-attribute errors between two scenes of the same Gaussians in the same order."""
    if a.count != b.count:
        raise GscacheError(f"the converted scene holds {b.count} Gaussians and the source {a.count}")
    pa, pb = a.means.double().numpy(), b.means.double().numpy()
    pos = np.linalg.norm(pa - pb, axis=1)
    log_ratio = np.log(b.scales.double().numpy()) - np.log(a.scales.double().numpy())
    qa = torch.nn.functional.normalize(a.quats.double(), dim=1).numpy()
    qb = torch.nn.functional.normalize(b.quats.double(), dim=1).numpy()
    angle = np.degrees(2 * np.arccos(np.clip(np.abs((qa * qb).sum(axis=1)), 0, 1)))
    rgb = lambda s: 0.5 + SH_C0 * s.sh[:, 0].double().numpy()  # noqa: E731
    out = [_stats("position", "m", pos),
           _stats("position / radius", "", pos / max(radius, 1e-12)),
           _stats("scale (relative)", "", np.expm1(np.abs(log_ratio))),
           _stats("rotation", "deg", angle),
           _stats("opacity", "", b.opacities.double().numpy() - a.opacities.double().numpy()),
           _stats("colour (DC)", "/255", (rgb(b) - rgb(a)) * 255)]
    k = min(a.sh.shape[1], b.sh.shape[1])
    if k > 1:
        out.append(_stats("SH bands 1+", "", b.sh[:, 1:k].double().numpy() - a.sh[:, 1:k].double().numpy()))
    return out


def report_views(scene, n_views: int, size: tuple[int, int], up, fov_deg: float = 60.0) -> list[StereoRig]:
    """Stereo rigs on an orbit around the scene at 2.2 scene radii, 20 degrees up."""
    traj = named_trajectory("orbit", scene, n_views, up=up)
    intr = Intrinsics.from_fov(fov_deg, *size)
    return [StereoRig(T, intr, intr) for T in traj.T_world_head]


def convert(source: str | os.PathLike, target: str | os.PathLike, *, sh_degree: int | None = None,
            spz_version: int = 3, views: int = 4, size: tuple[int, int] = (256, 256), up=(0, -1, 0),
            config: RenderConfig | None = None, progress=None) -> ConvertReport:
    """Write the scene at ``source`` to ``target`` (format from its name) and measure the loss.

    ``sh_degree`` drops the bands above it (it cannot add bands); ``views`` stereo views of
    ``size`` per eye compare renders of the two scenes (0: none)."""
    fmt = write_format(target)
    if Path(source).resolve() == Path(target).resolve():
        raise GscacheError(f"{target}: the target is the source file; write to a new name")
    scene = open_scene(str(source))
    if isinstance(scene, StructuredScene):
        raise GscacheError(f"{source}: a structured (Octree-GS / Scaffold-GS) checkpoint holds anchors and MLPs, "
                           "not Gaussians; convert writes explicit Gaussian formats")
    original = scene
    if sh_degree is not None:
        if not 0 <= sh_degree <= 3:
            raise GscacheError(f"--sh-degree: expected 0 to 3, got {sh_degree}")
        if sh_degree < scene.sh_degree:
            scene = scene.edited(sh=scene.sh[:, :num_sh_coeffs(sh_degree)].contiguous())
    start = time.perf_counter()
    order = save_scene(scene, target, spz_version=spz_version)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    back = load_scene(target)
    read_s = time.perf_counter() - start
    src_path = Path(source)
    bytes_in = sum(p.stat().st_size for p in src_path.rglob("*") if p.is_file()) if src_path.is_dir() \
        else src_path.stat().st_size
    report = ConvertReport(str(source), str(target), fmt, scene.count, original.sh_degree, back.sh_degree,
                           bytes_in, Path(target).stat().st_size, write_s, read_s)
    idx = torch.as_tensor(order, dtype=torch.long)
    written = scene.edited(**{k: getattr(scene, k)[idx] for k in ("means", "quats", "scales", "opacities", "sh")})
    _, radius = scene_frame(original)
    report.attributes = attribute_errors(written, back, radius)
    if views:
        config = config or RenderConfig(device="cpu")
        with open_renderer(original, config) as r_a, open_renderer(back, config) as r_b:
            for rig in report_views(original, views, size, up):
                img_a, img_b = r_a.render(rig).images.rgb, r_b.render(rig).images.rgb
                report.view_psnr.append(psnr(img_a, img_b))
                report.view_ssim.append(ssim(img_a, img_b))
                if progress:
                    progress()
    return report

