"""Which per-pixel depth reprojects a rendered eye best: the expected depth (Images.depth, a blend of
every layer a pixel sees) or the median depth (Images.median_depth, the depth of the splat where the
transmittance crosses one half).

Along a seeded VR head motion, each exact render is warped into the next view with each depth, and
the warped image is compared with that view's exact render:
  stereo    the left eye into the right eye of the same frame;
  temporal  the left eye of frame f into the left eye of frame f + 1.
The warp is a plain forward splat (each source pixel reprojected to the nearest target pixel, the
nearest depth winning); a measurement of the depths, not the renderer's warp. Reported per depth:
the share of target pixels a source pixel lands on (coverage), the PSNR over the pixels both depths
cover (the same pixels for both), and the share of those whose error exceeds 8/255.

Then the reference reprojection (gscache.stages.reproject: median depth splatted into the target,
sampled back bilinearly where the depths agree) on the same pairs: the share of the target's
covered pixels (exact alpha >= 0.5) it declares valid, its PSNR over them and the share over 8/255.

Usage: python3 scripts/depth_for_reprojection.py [SCENE] [--frames 12] [--size 512] [--distance 2.2]
"""

from __future__ import annotations

import argparse
import math

import torch


def forward_warp(rgb: torch.Tensor, depth: torch.Tensor, src_view: torch.Tensor, src_K: torch.Tensor,
                 dst_view: torch.Tensor, dst_K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [H, W, 3] and depth [H, W] (view-space z, 0: no depth) of one view splatted into
    another (T_cam_world [4, 4] and K [3, 3] each); returns the warped rgb and a [H, W] bool mask
    of the target pixels that received a source pixel."""
    from gscache.stages.reproject import camera_transforms, pixel_rays, transform_points

    H, W = depth.shape
    ok = depth > 0
    dst = transform_points(pixel_rays(src_K, H, W)[ok] * depth[ok].double()[:, None],
                           camera_transforms(src_view, dst_view)[0])
    zd = dst[:, 2]
    ud = dst_K[0, 0] * dst[:, 0] / zd + dst_K[0, 2] - 0.5
    vd = dst_K[1, 1] * dst[:, 1] / zd + dst_K[1, 2] - 0.5
    ui, vi = torch.round(ud).long(), torch.round(vd).long()
    inside = (zd > 0) & (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    target = (vi * W + ui)[inside]
    zd, colours = zd[inside], rgb[ok][inside]
    nearest = torch.full((H * W,), math.inf, dtype=torch.float64).scatter_reduce(0, target, zd, "amin")
    wins = zd == nearest[target]
    out = torch.zeros(H * W, 3)
    out[target[wins]] = colours[wins]
    mask = torch.zeros(H * W, dtype=torch.bool)
    mask[target[wins]] = True
    return out.reshape(H, W, 3), mask.reshape(H, W)


def main(argv: list[str] | None = None) -> int:
    from gscache import RenderConfig, Renderer, StereoRig
    from gscache.api import open_scene
    from gscache.bench.report import cpu_model
    from gscache.camera import views_of
    from gscache.trajectory import named_trajectory

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", nargs="?", help="scene (default: the embedded demo scene)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=512, help="pixels per side of each eye")
    ap.add_argument("--distance", type=float, default=2.2, help="viewing distance in scene radii")
    ap.add_argument("--elevation", type=float, default=20.0)
    args = ap.parse_args(argv)
    scene = open_scene(args.scene)
    traj = named_trajectory("vr", scene, args.frames + 1, distance=args.distance, elevation_deg=args.elevation)
    renderer = Renderer(scene, RenderConfig(backend="cpu"))
    frames = []
    for T in traj.T_world_head:
        rig = StereoRig.symmetric(T.float(), args.size, args.size)
        frames.append((renderer.render(rig), views_of(rig, "cpu")))
    rows = {"stereo": [], "temporal": []}
    for f in range(args.frames):
        (img, views), (nxt, nviews) = frames[f], frames[f + 1]
        pairs = {"stereo": (img, 0, views, img, 1, views), "temporal": (img, 0, views, nxt, 0, nviews)}
        for kind, (src, e, sv, dst, d, dv) in pairs.items():
            warped = {}
            for name in ("depth", "median_depth"):
                warped[name] = forward_warp(src.rgb[e], getattr(src, name)[e], sv.viewmats[e], sv.Ks[e],
                                            dv.viewmats[d], dv.Ks[d])
            both = warped["depth"][1] & warped["median_depth"][1]
            exact = dst.rgb[d].clamp(0, 1)
            row = {}
            for name, (rgb, mask) in warped.items():
                err = (rgb.clamp(0, 1) - exact)[both]
                mse = float((err ** 2).mean()) if err.numel() else 0.0
                row[name] = (float(mask.float().mean()), -10 * math.log10(max(mse, 1e-12)),
                             float((err.abs().amax(-1) > 8 / 255).float().mean()) if err.numel() else 0.0)
            rows[kind].append(row)
    back = _backward_rows(frames, args.frames, args.size)
    print(f"{scene.source}: {args.frames} frames of vr head motion, {args.size}x{args.size} per eye; {cpu_model()}")
    print(f"{'warp':9} {'depth':13} {'coverage':>9} {'PSNR (dB, pixels both cover)':>29} {'> 8/255':>8}")
    for kind, per_frame in rows.items():
        for name in ("depth", "median_depth"):
            cov = sum(r[name][0] for r in per_frame) / len(per_frame)
            p = sum(r[name][1] for r in per_frame) / len(per_frame)
            worst = min(r[name][1] for r in per_frame)
            bad = sum(r[name][2] for r in per_frame) / len(per_frame)
            label = "expected" if name == "depth" else "median"
            print(f"{kind:9} {label:13} {cov:>9.3f} {f'{p:.2f} mean, {worst:.2f} worst':>29} {bad:>8.4f}")
    print("reference reprojection (median depth, backward bilinear sample where depths agree):")
    print(f"{'warp':9} {'valid / covered':>16} {'PSNR (dB, valid pixels)':>29} {'> 8/255':>8}")
    for kind, per_frame in back.items():
        share = sum(r[0] for r in per_frame) / len(per_frame)
        p = sum(r[1] for r in per_frame) / len(per_frame)
        worst = min(r[1] for r in per_frame)
        bad = sum(r[2] for r in per_frame) / len(per_frame)
        print(f"{kind:9} {share:>16.3f} {f'{p:.2f} mean, {worst:.2f} worst':>29} {bad:>8.4f}")
    return 0


def _backward_rows(frames, n: int, size: int) -> dict[str, list]:
    """Per pair: (valid share of the target's covered pixels, PSNR over valid pixels, share of
    valid pixels over 8/255) of gscache.stages.reproject."""
    from gscache.stages.reproject import reproject

    rows = {"stereo": [], "temporal": []}
    for f in range(n):
        (img, views), (nxt, nviews) = frames[f], frames[f + 1]
        for kind, (dst, d, dv) in {"stereo": (img, 1, views), "temporal": (nxt, 0, nviews)}.items():
            out = reproject(img.rgb[0], img.alpha[0], img.median_depth[0], views.viewmats[0], views.Ks[0],
                            dv.viewmats[d], dv.Ks[d], size, size)
            covered = dst.alpha[d] >= 0.5
            err = (out.rgb.clamp(0, 1) - dst.rgb[d].clamp(0, 1))[out.valid]
            mse = float((err ** 2).mean()) if err.numel() else 0.0
            rows[kind].append((float((out.valid & covered).sum()) / max(1, int(covered.sum())),
                               -10 * math.log10(max(mse, 1e-12)),
                               float((err.abs().amax(-1) > 8 / 255).float().mean()) if err.numel() else 0.0))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
