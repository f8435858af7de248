"""Calibrate the pixel-reuse error predictor (gscache.stages.reuse) against measured errors.

Along seeded VR head motions (and a fast head turn), exact renders of both eyes are warped into
other views as the pixel-reuse cache would (stereo: left into right of the same frame; temporal:
each eye of frame f into the same eye of frame f + 1) with the backend's warp; for every tile the
warp covers at least half of (pixel_reuse.MIN_VALID_SHARE; its other pixels are rasterized), the predictor's features and the tile's true RMS error over its valid pixels against
the exact render of the target are collected. The fit: non-negative weights minimising the pinball loss at
``--quantile`` of the true error (a bound that the true error exceeds on that share of tiles),
then the share of tiles over the bound, over 2x and 4x it, with the weights fitted and with the
ones in gscache.stages.reuse.COEFFICIENTS. Also the share of such tiles (reusable at all).

Usage: python3 scripts/calibrate_reuse.py [SCENE ...] [--frames 8] [--size 384] [--backend cpu]
       (no scene: the embedded demo scene; plant and playbot from ../shared/data are typical)
"""

from __future__ import annotations

import argparse
import math

import torch


def collect(scene, frames: int, size: int, backend: str, distance: float, elevation: float, turn_deg_s: float,
            seed: int, tolerance: float) -> tuple[dict, dict]:
    """(features and true errors of reusable tiles, counts of tiles) for one scene and motion."""
    from gscache import RenderConfig, Renderer, StereoRig
    from gscache.camera import views_of
    from gscache.pixel_reuse import MIN_VALID_SHARE
    from gscache.stages.reuse import FEATURES, TileGrid, tile_errors, true_tile_errors
    from gscache.trajectory import head_turn, named_trajectory

    traj = named_trajectory("vr", scene, frames + 1, seed=seed, distance=distance, elevation_deg=elevation)
    if turn_deg_s:
        traj = head_turn(traj.T_world_head[0], frames + 1, speed_deg_s=turn_deg_s)
    poses = traj.T_world_head
    renderer = Renderer(scene, RenderConfig(backend=backend))
    rendered = []
    for T in poses:
        rig = StereoRig.symmetric(T.float(), size, size)
        views = views_of(rig, renderer.device)
        rendered.append((renderer.render(rig), views))
    grid = TileGrid(size, size, 16)
    out = {k: [] for k in (*FEATURES, "true", "cost", "temporal")}
    counts = {"tiles": 0, "complete": 0, "cost": 0, "cost_temporal": 0}
    sh = renderer.scene.sh if hasattr(renderer.scene, "sh") else None
    for f in range(frames):
        (img, views), (nxt, nviews) = rendered[f], rendered[f + 1]
        for src, s, sv, dst, d, dv in ((img, 0, views, img, 1, views), (img, 0, views, nxt, 0, nviews),
                                       (img, 1, views, nxt, 1, nviews)):
            temporal = dst is nxt
            warped = renderer.backend.reproject(src.rgb[s], src.alpha[s], src.median_depth[s], sv.viewmats[s],
                                                sv.Ks[s], dv.viewmats[d], dv.Ks[d], size, size, tolerance)
            rates = _rates(renderer, sh, dv, d, grid)
            te = tile_errors(renderer.backend.tile_stats(warped, grid), grid, sv.viewmats[s], sv.Ks[s], sv.positions[s], dv.viewmats[d], dv.Ks[d],
                             dv.positions[d], rates, None)
            true = true_tile_errors(warped.rgb, dst.rgb[d], grid, warped.valid)
            keep = grid.blocks(warped.valid, False).float().mean(dim=-1) >= MIN_VALID_SHARE
            counts["tiles"] += keep.numel()
            counts["complete"] += int(keep.sum())
            cost = dst.tile_costs[d].reshape(grid.tiles_y, grid.tiles_x).double()  # intersections per tile
            counts["cost"] += float(cost.sum())
            counts["cost_temporal"] += float(cost.sum()) if temporal else 0.0
            out["cost"].append(cost[keep])
            out["temporal"].append(torch.full((int(keep.sum()),), temporal))
            for k in FEATURES:
                out[k].append(te.features[k][keep])
            out["true"].append(true[keep])
    return {k: torch.cat(v) for k, v in out.items()}, counts


def _rates(renderer, sh, views, e, grid):
    """Tile view rates of view ``e`` from the scene's SH (all Gaussians, projected afresh)."""
    from gscache.stages.reuse import tile_view_rates, view_rates

    if sh is None or sh.shape[1] <= 1:
        return torch.zeros(grid.tiles_y, grid.tiles_x)
    from gscache.records import Shaded, Visible

    s = renderer.scene
    visible = Visible(torch.arange(s.count), s.means, s.quats, s.scales, s.opacities, s.sh)
    shaded = renderer.backend.shade(visible, views.select(e), renderer.config.shade)
    projected = renderer.backend.project(visible, shaded, views.select(e), renderer.config.project)
    return tile_view_rates(view_rates(sh), projected.means2d[0], projected.radii[0], grid)


def fit(data: dict, quantile: float, steps: int = 1500) -> dict:
    """Non-negative weights (features and a floor) minimising the pinball loss at ``quantile``
    (the weight of the measured history is kept: exact sources have none)."""
    from gscache.stages.reuse import COEFFICIENTS, FEATURES

    X = torch.stack([data[k] for k in FEATURES] + [torch.ones_like(data["true"])], dim=1).double()
    y = data["true"].double()
    raw = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(steps):
        w = torch.nn.functional.softplus(raw)
        r = y - X @ w
        loss = torch.maximum(quantile * r, (quantile - 1) * r).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = torch.nn.functional.softplus(raw).detach()
    return {**{k: float(w[i]) for i, k in enumerate(FEATURES)}, "floor": float(w[-1]), "safety": COEFFICIENTS["safety"]}


def exceed(data: dict, weights: dict) -> tuple[float, float, float]:
    from gscache.stages.reuse import FEATURES

    bound = weights["safety"] * (weights["floor"] + sum(weights[k] * data[k] for k in FEATURES))
    t = data["true"]
    n = max(1, t.numel())
    return (float((t > bound).sum()) / n, float((t > 2 * bound).sum()) / n, float((t > 4 * bound).sum()) / n)


def main(argv: list[str] | None = None) -> int:
    from gscache.api import open_scene
    from gscache.bench.report import cpu_model
    from gscache.stages.reuse import COEFFICIENTS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenes", nargs="*", help="scenes ('demo' or none: the embedded demo scene)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--distance", type=float, default=0.6, help="viewing distance in scene radii (close: fills the view)")
    ap.add_argument("--elevation", type=float, default=10.0)
    ap.add_argument("--turn", type=float, default=120.0, help="the fast head turn's yaw rate, degrees per second")
    ap.add_argument("--quantile", type=float, default=0.995)
    ap.add_argument("--tolerance", type=float, default=None, help="the warp's depth tolerance (default: the cache's)")
    args = ap.parse_args(argv)
    from gscache.config import CacheConfig

    tolerance = args.tolerance if args.tolerance is not None else CacheConfig().reuse_depth_tolerance
    parts, total = [], {"tiles": 0, "complete": 0, "cost": 0, "cost_temporal": 0}
    for path in args.scenes or [None]:
        scene = open_scene(None if path in ("-", "demo") else path)
        for seed, turn in ((0, 0.0), (1, 0.0), (2, args.turn)):
            data, counts = collect(scene, args.frames, args.size, args.backend, args.distance, args.elevation, turn,
                                   seed, tolerance)
            parts.append(data)
            for k in total:
                total[k] += counts[k]
            print(f"{getattr(scene, 'source', path)} seed {seed} turn {turn:g} deg/s: reusable tiles "
                  f"{counts['complete'] / max(1, counts['tiles']):.3f}, true error p50/p99/max "
                  f"{_q(data['true'], 0.5):.2f}/{_q(data['true'], 0.99):.2f}/{float(data['true'].max()):.2f} levels")
    data = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    # The ceiling: the share of the rasterizer's work (intersections) in tiles an oracle would
    # reuse (half their pixels valid, true error within the bound), whatever the predictor.
    for b in (1.0, 2.0, 3.0, 4.0, 8.0):
        shares = []
        for name, pick, all_cost in (("stereo", ~data["temporal"], total["cost"] - total["cost_temporal"]),
                                     ("temporal", data["temporal"], total["cost_temporal"])):
            share = float(data["cost"][pick & (data["true"] <= b)].sum()) / max(1.0, all_cost)
            shares.append(f"{name} {share:.3f} ({1 / max(1e-9, 1 - share):.2f}x)")
        print(f"oracle at a bound of {b:g} levels: share of the intersections in reusable tiles "
              f"(rasterization at best so much faster): {', '.join(shares)}")
    weights = fit(data, args.quantile)
    print(f"{cpu_model()}; {data['true'].numel()} reusable tiles of {total['tiles']} "
          f"({total['complete'] / max(1, total['tiles']):.3f}), depth tolerance {tolerance}")
    for name, w in (("fitted", weights), ("COEFFICIENTS", COEFFICIENTS)):
        over, over2, over4 = exceed(data, w)
        print(f"{name:13} " + ", ".join(f"{k} {v:.4g}" for k, v in w.items())
              + f": true error over the bound {over:.4f}, over 2x {over2:.5f}, over 4x {over4:.5f}")
    return 0


def _q(t: torch.Tensor, q: float) -> float:
    return float(torch.quantile(t.float(), q)) if t.numel() else math.nan


if __name__ == "__main__":
    raise SystemExit(main())
