"""A procedural structured (Octree-GS style) scene: anchors on the demo town square's surfaces,
two levels of detail, and small MLPs with chosen weights, written in the real checkpoint format.

Each anchor's feature starts with the logits of its surface colour, so the colour MLP (feature
and view direction -> k colours, sigmoid) reproduces the colour with a view-dependent sheen; the
opacity MLP (tanh) keeps most Gaussians; the covariance MLP gives flat discs in the anchor's
plane (scale logits with a small spread, an identity-like rotation). Deterministic per seed.
"""

from __future__ import annotations

import numpy as np
import torch

from gscache.scene.structured import AnchorMLPs, StructuredScene

from .demo import _parts

FEATURES = 16
OFFSETS = 8


def _mlp(sizes: list[int], final: torch.nn.Module | None) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    if final is not None:
        layers.append(final)
    return torch.nn.Sequential(*layers)


def structured_demo(seed: int = 0, spacing: float = 0.12, add_dist: bool = True,
                    view_dependence: float = 1.0) -> StructuredScene:
    """The demo square as anchors (level 0 every other anchor, level 1 the rest; ~4k anchors at
    the default spacing), with MLPs taking feature, view direction and (optionally) distance.

    ``view_dependence`` scales the colour MLP's view-dependent weights: 1 gives a mild sheen;
    about 20 makes the colours swing with the view direction as an untrained (random-weight)
    model's do, where a cache that reuses derived colours shows its error."""
    rng = np.random.default_rng(seed)
    torch_gen = torch.Generator().manual_seed(seed)
    objects, _ = _parts(rng, spacing)
    means = np.concatenate([o.means for o in objects]).astype(np.float32)
    rgb = np.concatenate([o.rgb for o in objects]).clip(0.02, 0.98).astype(np.float32)
    A = len(means)
    features = rng.normal(0.0, 0.3, (A, FEATURES)).astype(np.float32)
    features[:, :3] = np.log(rgb / (1 - rgb))  # colour logits
    # Offsets: a ring of OFFSETS points around the anchor, in units of the offset scale.
    angle = 2 * np.pi * np.arange(OFFSETS) / OFFSETS
    ring = np.stack([np.cos(angle), np.zeros(OFFSETS), np.sin(angle)], axis=1)
    offsets = (ring[None] + rng.normal(0, 0.2, (A, OFFSETS, 3))).astype(np.float32)
    scales = np.concatenate([np.full((A, 3), spacing * 0.4), np.full((A, 3), spacing * 0.3)], axis=1)
    levels = (np.arange(A) % 2).astype(np.float32)
    scales[levels == 0] *= 1.6  # coarse anchors cover more
    extra = np.zeros(A, np.float32)

    n_in = FEATURES + 3 + int(add_dist)
    with torch.no_grad():
        color = _mlp([n_in, 32, 3 * OFFSETS], torch.nn.Sigmoid())
        torch.nn.init.zeros_(color[0].weight)
        torch.nn.init.zeros_(color[0].bias)
        for c in range(3):  # hidden units 2c and 2c+1 carry +logit and -logit of channel c
            color[0].weight[2 * c, c], color[0].weight[2 * c + 1, c] = 1.0, -1.0
        color[0].weight[6:, :n_in] = 0.3 * view_dependence * torch.randn(26, n_in, generator=torch_gen)
        color[2].weight.zero_()
        color[2].bias.zero_()
        for j in range(OFFSETS):
            for c in range(3):
                color[2].weight[3 * j + c, 2 * c], color[2].weight[3 * j + c, 2 * c + 1] = 1.0, -1.0
        color[2].weight[:, 6:] = 0.05 * view_dependence * torch.randn(3 * OFFSETS, 26, generator=torch_gen)
        opacity = _mlp([n_in, 16, OFFSETS], torch.nn.Tanh())
        torch.nn.init.normal_(opacity[0].weight, std=0.1, generator=torch_gen)
        opacity[2].weight.mul_(0.2)
        opacity[2].bias.fill_(1.2)  # most Gaussians kept, with opacity near tanh(1.2) = 0.83
        cov = _mlp([n_in, 16, 7 * OFFSETS], None)
        torch.nn.init.normal_(cov[0].weight, std=0.1, generator=torch_gen)
        cov[2].weight.mul_(0.1)
        bias = torch.zeros(OFFSETS, 7)
        bias[:, 3] = 1.0  # rotation near identity
        bias[:, 2] = -3.0  # thin along z: flat discs
        cov[2].bias.copy_(bias.reshape(-1))
    mlps = AnchorMLPs(opacity.eval(), cov.eval(), color.eval(), add_dist, add_dist, add_dist, False)
    lo, hi = means.min(0), means.max(0)
    standard_dist = float(np.linalg.norm(hi - lo))  # level 1 within about one scene size
    return StructuredScene(torch.from_numpy(means), torch.from_numpy(offsets), torch.from_numpy(features),
                           torch.from_numpy(scales.astype(np.float32)), torch.from_numpy(levels),
                           torch.from_numpy(extra), mlps, voxel_size=spacing, standard_dist=standard_dist, fork=2,
                           n_levels=2, source=f"structured_demo(seed={seed}"
                           + (f", view_dependence={view_dependence:g})" if view_dependence != 1.0 else ")"))
