"""The doodle encoder: a small CNN that reads a doodle's attributes (``attributes.ATTRIBUTES``)
off its bitmap, and an identity head that turns the same features into a latent z, so that every
drawing has a face of its own and drawings that look alike get faces that look alike.

Identity: the encoder's features of the real training doodles are whitened (their mean removed,
their top principal components scaled to unit variance) and turned by a fixed random rotation
into a z of the generator's length. Over real doodles z is then spread like N(0, I) (what the
mapping network was trained on), so the faces are as varied and as realistic as random ones;
within that, z moves smoothly with the drawing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.doodle.attributes import ATTRIBUTES, BINARY


class DoodleEncoder(nn.Module):
    def __init__(
        self,
        width: int = 32,        # channels of the first convolution, doubled twice
        features: int = 256,    # length of the feature vector the heads read
        raster_size: int = 28,  # side of the input bitmap
    ):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 4 * w, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        side = raster_size
        for _ in range(3):
            side = (side + 1) // 2
        self.fc = nn.Sequential(nn.Linear(4 * w * side * side, features), nn.LeakyReLU(0.2))
        self.head = nn.Linear(features, len(ATTRIBUTES))
        # Attribute units: the head learns standardised targets; these undo that.
        self.register_buffer("attr_mean", torch.zeros(len(ATTRIBUTES)))
        self.register_buffer("attr_std", torch.ones(len(ATTRIBUTES)))
        self.register_buffer("binary", torch.tensor([a in BINARY for a in ATTRIBUTES]))

    def forward(self, sketch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sketch (B, 3, S, S), dark ink on white in [-1, 1] -> (raw head output (B, A), features (B, F))."""
        f = self.fc(self.body(sketch))
        return self.head(f), f

    def attributes(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw head output -> attributes in drawing units (probabilities for the yes/no ones)."""
        return torch.where(self.binary, torch.sigmoid(raw), raw * self.attr_std + self.attr_mean)


class IdentityHead(nn.Module):
    """features -> z: whiten with the real doodles' statistics, rotate into z_dim."""

    def __init__(self, features: int = 256, z_dim: int = 256):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("projection", torch.zeros(z_dim, features))

    @torch.no_grad()
    def fit(self, feats: np.ndarray, components: int, seed: int) -> None:
        f = np.asarray(feats, np.float64)
        mean = f.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov(f - mean, rowvar=False))
        order = np.argsort(values)[::-1][:components]
        whiten = vectors[:, order] / np.sqrt(np.maximum(values[order], 1e-12))    # (F, k)
        z_dim = self.projection.shape[0]
        rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(z_dim, components)))
        # k unit-variance components spread over z_dim: each z entry then has variance 1.
        proj = rotation * np.sqrt(z_dim / components) @ whiten.T                     # (z_dim, F)
        self.mean.copy_(torch.from_numpy(mean).float())
        self.projection.copy_(torch.from_numpy(proj).float())

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) @ self.projection.t()


class EncoderGraph(nn.Module):
    """What is exported: sketch -> (attributes in drawing units, identity z)."""

    def __init__(self, encoder: DoodleEncoder, identity: IdentityHead):
        super().__init__()
        self.encoder, self.identity = encoder, identity

    def forward(self, sketch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, feats = self.encoder(sketch)
        return self.encoder.attributes(raw), self.identity(feats)
