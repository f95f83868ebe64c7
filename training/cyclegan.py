"""The drawing -> anime-face networks: CycleGAN's ResNet generator and 70x70 PatchGAN
discriminator, the U-Net generator (DiscoGAN, the paired line-art model) and UNIT's encoders and
generators with shared layers.

CycleGAN:

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
        minibatch_std: bool = False,  # before the last layer, let it see how the batch's images differ
        minibatch_kind: str = "stddev",  # "stddev": one spread map; "salimans": learned similarities
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
        # Without the batch feature the last layer stays inside ``net`` (checkpoint keys as before).
        self.batch_features: nn.Module | None = None
        if minibatch_std:
            self.net = nn.Sequential(*layers)
            if minibatch_kind == "salimans":
                self.batch_features = MinibatchDiscrimination(ch)
                extra = self.batch_features.kernels
            else:
                extra = 1
            self.head = nn.Conv2d(ch + extra, 1, 4, stride=1, padding=1)
        else:
            self.net = nn.Sequential(*layers, nn.Conv2d(ch, 1, 4, stride=1, padding=1))
            self.head = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        if self.head is None:
            return h
        extra = minibatch_spread(h) if self.batch_features is None else self.batch_features(h)
        return self.head(torch.cat([h, extra], dim=1))


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination as Salimans et al. (2016) define it: each image's features f (here
    the discriminator's feature maps averaged over space) are multiplied by a learned tensor T
    into ``kernels`` rows of ``kernel_dim`` numbers, M = f T; for each row b, the image's closeness
    to every other image j of the batch is exp(-||M_b - M_j,b||_1), and the sums over j are
    ``kernels`` features the discriminator reads beside its own (broadcast as constant maps,
    since this discriminator judges patches). A collapsed generator's batch is close to itself
    in every row; a real batch is not. A batch of one has no other images: zeros."""

    def __init__(self, in_features: int, kernels: int = 16, kernel_dim: int = 8):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * (1.0 / in_features ** 0.5))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        m = (h.mean(dim=(2, 3)) @ self.T).view(n, self.kernels, self.kernel_dim)
        dist = (m[:, None] - m[None, :]).abs().sum(dim=3)          # (n, n, kernels)
        closeness = torch.exp(-dist).sum(dim=1) - 1.0                # minus each image's closeness to itself
        return closeness[:, :, None, None].expand(n, self.kernels, *h.shape[2:])


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


class UNetGenerator(nn.Module):
    """An encoder-decoder with skip connections (U-Net), as DiscoGAN's and pix2pix's generators:
    ``depth`` stride-2 4x4 convolutions (LeakyReLU 0.2, instance norm but on the first and the
    innermost), then as many stride-2 transposed convolutions (ReLU, instance norm), each reading
    the mirror level's features beside its own; tanh out."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 32, depth: int = 5):
        super().__init__()
        chans = [ngf * min(2 ** i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        prev = in_channels
        for i, ch in enumerate(chans):
            layers: list[nn.Module] = [nn.Conv2d(prev, ch, 4, stride=2, padding=1)]
            if 0 < i < depth - 1:
                layers.append(nn.InstanceNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            prev = ch
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            c_in = chans[i] if i == depth - 1 else chans[i] * 2
            if i == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, stride=2, padding=1),
                                             nn.Tanh()))
            else:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, chans[i - 1], 4, stride=2, padding=1),
                                             nn.InstanceNorm2d(chans[i - 1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = skips.pop()
        for i, layer in enumerate(self.up):
            if i > 0:
                h = torch.cat([h, skips.pop()], dim=1)
            h = layer(h)
        return h


class UNITEncoder(nn.Module):
    """UNIT's encoder of one domain: c7s1, two stride-2 downs, its own residual blocks, then the
    blocks shared with the other domain's encoder; returns the mean of the latent code."""

    def __init__(self, ngf: int, n_res: int, shared: nn.Module, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1), nn.InstanceNorm2d(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_res)]
        self.own = nn.Sequential(*layers)
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.own(x))


class UNITGenerator(nn.Module):
    """UNIT's generator of one domain: the residual blocks shared with the other domain's
    generator, its own blocks, two stride-2 ups and c7s1 to an image (tanh)."""

    def __init__(self, ngf: int, n_res: int, shared: nn.Module, out_channels: int = 3):
        super().__init__()
        ch = ngf * 4
        layers: list[nn.Module] = [ResidualBlock(ch) for _ in range(n_res)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1), nn.InstanceNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.shared = shared
        self.own = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.own(self.shared(z))


def shared_blocks(ngf: int, n: int) -> nn.Module:
    return nn.Sequential(*[ResidualBlock(ngf * 4) for _ in range(n)])


class EncodeDecode(nn.Module):
    """A UNIT translation as one network (for export and sampling): the mean code of one domain's
    encoder, decoded by the other domain's generator."""

    def __init__(self, encoder: nn.Module, generator: nn.Module):
        super().__init__()
        self.encoder, self.generator = encoder, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(self.encoder(x))
