"""CycleGAN networks: a ResNet generator and a 70x70 PatchGAN discriminator.

Generator (Zhu et al. 2017, appendix): c7s1-ngf, d(2ngf), d(4ngf), n residual blocks R(4ngf),
u(2ngf), u(ngf), c7s1-out, tanh. Reflection padding, instance norm without affine parameters.
Discriminator: C64-C128-C256-C512 with 4x4 kernels, instance norm after the first layer,
LeakyReLU 0.2, one output channel per 70x70 patch (no sigmoid: LSGAN loss).
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,   # channels of the input image
        out_channels: int = 3,  # channels of the output image
        ngf: int = 64,          # filters in the first layer; doubled at each downsampling
        n_blocks: int = 6,      # residual blocks at the bottleneck (6 for 128 px, 9 for 256 px)
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,  # channels of the judged image
        ndf: int = 64,         # filters in the first layer
        n_layers: int = 3,     # strided layers; 3 gives the 70x70 receptive field
        minibatch_std: bool = False,  # append the batch's feature spread before the last layer
    ):
        super().__init__()
        self.minibatch_std = minibatch_std
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        # Without the spread feature the last layer stays inside ``net`` (checkpoint keys as before).
        if minibatch_std:
            self.net = nn.Sequential(*layers)
            self.head = nn.Conv2d(ch + 1, 1, 4, stride=1, padding=1)
        else:
            self.net = nn.Sequential(*layers, nn.Conv2d(ch, 1, 4, stride=1, padding=1))
            self.head = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        if self.head is None:
            return h
        return self.head(torch.cat([h, minibatch_spread(h)], dim=1))


def minibatch_spread(h: torch.Tensor) -> torch.Tensor:
    """One extra feature map: the mean over features of the standard deviation across the batch
    (a light form of minibatch discrimination: a collapsed generator gives a batch with no
    spread, which the discriminator can then see). Zero for a batch of one."""
    if h.shape[0] < 2:
        return h.new_zeros(h.shape[0], 1, *h.shape[2:])
    spread = h.std(dim=0, unbiased=False).mean()
    return spread.expand(h.shape[0], 1, *h.shape[2:])


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, 0.02) for convolutions, as the CycleGAN reference does; zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
