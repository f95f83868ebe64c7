"""Faces from drawings on the torch side (sample grids, evaluation during training): the same
assembly the served model does in numpy (``core.doodle_model``), checked against it by a test.

A face's styles: the identity w (from the drawing's z, or a seed's), truncated towards w_avg by
psi; optionally the fine layers (colours) from another w (a palette); then, for every walk, the
identity's own component along the walk is taken out and the drawing's coefficient put in.
"""

from __future__ import annotations

import numpy as np
import torch

from training.gans.stylegan import StyleGenerator


def walk_coefficients(attributes: np.ndarray, walks, names: tuple[str, ...], strength: float = 1.0) -> np.ndarray:
    """(N, K) coefficients of the walks for attributes (N, A) in ``names`` order."""
    out = np.zeros((len(attributes), len(walks)), np.float32)
    for k, m in enumerate(walks):
        a = attributes[:, names.index(m.attribute)]
        out[:, k] = np.clip(m.scale * (a - m.centre), m.low, m.high) * strength
    return out


def assemble(ws: torch.Tensor, w_avg: torch.Tensor, directions: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """ws (N, L, D) with each walk's component replaced by its coefficient.

    ``directions`` (K, L, D) are zero outside each walk's layers."""
    out = ws.clone()
    for k in range(len(directions)):
        d = directions[k]
        u = d / d.norm()
        comp = ((out - w_avg) * u).sum(dim=(1, 2), keepdim=True)
        out = out - comp * u + coefficients[:, k, None, None] * d
    return out


@torch.no_grad()
def faces_from_codes(G: StyleGenerator, z: torch.Tensor, coefficients: torch.Tensor, directions: torch.Tensor,
                     psi: float, batch: int = 100) -> torch.Tensor:
    """Images (N, 3, S, S) in about [-1, 1] for identity latents z and walk coefficients."""
    w = G.mapping(z, psi=psi)
    ws = assemble(G.broadcast(w), G.mapping.w_avg, directions, coefficients)
    return torch.cat([G.synthesis(ws[i:i + batch], noise_mode="const") for i in range(0, len(ws), batch)])
