"""DCGAN networks (Radford et al. 2016), also used by LSGAN and WGAN-div.

Generator: z (B, z_dim) seen as a 1x1 image; a 4x4 transposed conv to 4x4, then stride-2
transposed convs that double the size and halve the channels, batch norm and ReLU after every
layer but the last, tanh out. Discriminator: stride-2 4x4 convs that halve the size and double
the channels, LeakyReLU 0.2, batch norm after every layer but the first, a 4x4 conv to one logit.
No sigmoid anywhere: the cross-entropy loss takes logits (``binary_cross_entropy_with_logits``),
the least-squares and Wasserstein losses take raw scores.

A WGAN-div critic is the same discriminator with ``norm="layer"`` or ``"none"``: batch norm
couples the samples of a batch, which a per-sample gradient penalty must not see. The critic's
first conv has a bias. Without it, bias-free conv, LeakyReLU and bias-free conv are positively
homogeneous, so a per-sample layer norm after them makes D(a x) = D(x) for every a > 0: the
critic cannot see how strong an image is, and a generator learns to hide in faint noise, where
the input gradient (about 1/a) is also what the penalty sees.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn


def _levels(image_size: int) -> int:
    """Stride-2 (de)convolutions between 4x4 and the image size."""
    n = int(math.log2(image_size)) - 2
    if n < 1 or 4 * 2**n != image_size:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return n


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        z_dim: int = 100,       # length of the latent vector
        ngf: int = 64,          # channels of the last hidden layer; doubled towards 4x4
        image_size: int = 64,   # output side, a power of two
        channels: int = 3,      # output channels
    ):
        super().__init__()
        self.z_dim = z_dim
        n = _levels(image_size)
        ch = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B, channels, S, S) in [-1, 1]."""
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(
        self,
        ndf: int = 64,          # channels of the first layer; doubled per halving
        image_size: int = 64,   # input side, a power of two
        channels: int = 3,      # input channels
        norm: Literal["batch", "layer", "none"] = "batch",  # after every conv but the first
    ):
        super().__init__()
        n = _levels(image_size)
        # DCGAN's convs have no bias; the critic's first one does (see the module's docstring).
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=norm != "batch"), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"), _norm(norm, ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, S, S) -> (B,) logits / critic scores."""
        return self.net(x).flatten()


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group: normalises each sample over (C, H, W)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; valid: batch, layer, none")


def init_dcgan_weights(net: nn.Module) -> None:
    """DCGAN's init: conv weights N(0, 0.02); norm scales N(1, 0.02), shifts 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
