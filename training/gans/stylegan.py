"""A small StyleGAN2-style generator and its residual discriminator (Karras et al. 2019, 2020).

Generator = ``mapping`` (z -> w) + ``synthesis`` (ws -> image):

- Mapping: z is normalised to unit second moment, then ``num_layers`` fully connected layers
  with leaky ReLU make w. ``w_avg`` tracks an exponential moving average of the w's seen in
  training; truncation pulls w towards it: w' = w_avg + psi * (w - w_avg), so psi = 0 gives
  the "average face" for every z.
- Synthesis: a learned 4x4 constant, then per resolution (8, 16, ..., image_size) two 3x3
  modulated convolutions (the first after a 2x bilinear upsampling), each followed by noise
  with a learned strength, a bias and leaky ReLU; every resolution adds its toRGB output to
  the upsampled image so far (skip architecture). Each layer reads its own w: the input is
  ``ws`` of shape (B, num_ws, w_dim), num_ws = 2 * log2(image_size) - 2 (the toRGB of a
  resolution shares its w with the next resolution's first conv, as in StyleGAN2).
- Modulated convolution (StyleGAN2): the style s = A(w) scales the input channels, the
  convolution runs with shared weights, and the output channels are divided by their expected
  norm sqrt(sum_{in,k} (s_in * W[out,in,k])^2) ("demodulation"). That replaces AdaIN, whose
  per-image instance normalisation threw away magnitude information and made the generator
  smuggle it through a blob ("droplet" artefacts). Scaling activations rather than
  weights is the same maths and keeps one ordinary convolution per layer, so the graph exports
  to ONNX with a dynamic batch axis (per-sample weights would need a grouped convolution whose
  group count is the batch size).
- Equalised learning rate everywhere: weights are stored N(0, 1) and scaled by He's constant at
  run time, so Adam's step is alike for every layer; the mapping network's rate is further
  multiplied by ``lr_mult`` (0.01 in StyleGAN).

No progressive growing: every layer trains at full resolution from the first step (StyleGAN2
replaced growing with the skip generator and residual discriminator used here). Simplified
against StyleGAN2: bilinear up/downsampling instead of FIR filters, no path-length
regulariser, no output clamping (fp32 only).

Discriminator: fromRGB, residual blocks that halve the resolution (two 3x3 convs, average-pool
then conv for the downsampling, a 1x1 skip, summed and scaled by 1/sqrt(2)), minibatch
standard deviation, a 3x3 conv, two fully connected layers to one logit.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
NoiseMode = Literal["random", "const", "none"]


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU 0.2 with gain sqrt(2), which keeps the activations' second moment near 1."""
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def channels_at(res: int, image_size: int, width: int, max_channels: int) -> int:
    """``width`` channels at full resolution, doubled per halving, at most ``max_channels``."""
    return min(width * (image_size // res), max_channels)


def _resolutions(image_size: int) -> list[int]:
    """8, 16, ..., image_size."""
    n = int(math.log2(image_size))
    if image_size < 8 or 2**n != image_size:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return [2**i for i in range(3, n + 1)]


class EqualLinear(nn.Module):
    def __init__(
        self,
        in_features: int,       # input length
        out_features: int,      # output length
        bias_init: float = 0.0,  # initial bias (1 for style affines: styles start at 1)
        lr_mult: float = 1.0,   # learning-rate multiplier of this layer
        activate: bool = False,  # leaky ReLU (gain sqrt 2) after the bias
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mult))
        self.weight_gain = lr_mult / math.sqrt(in_features)
        self.bias_gain = lr_mult
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return lrelu(x) if self.activate else x


class EqualConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,             # square kernel side (odd); "same" padding
        bias: bool = True,
        activate: bool = False,  # leaky ReLU (gain sqrt 2) after the bias
        down: bool = False,      # 2x average-pool before the convolution
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2
        self.activate, self.down = activate, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return lrelu(x) if self.activate else x


class ModulatedConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,             # square kernel side (odd); "same" padding
        w_dim: int,              # length of w, mapped to one style per input channel
        demodulate: bool = True,  # normalise each output channel (False for toRGB)
        up: bool = False,        # 2x bilinear upsampling before the convolution
    ):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate, self.up = demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (B, in, H, W), w (B, w_dim) -> (B, out, H', W')."""
        styles = self.affine(w)                              # (B, in)
        weight = self.weight * self.weight_gain              # (out, in, k, k)
        x = x * styles[:, :, None, None]                     # modulation, on the activations
        if self.up:
            x = upsample2(x)                                 # linear: commutes with the modulation
        x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # |s * W[o]|^2 summed over (in, k, k) for every sample and output channel at once
            norm2 = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # (B, out)
            x = x * torch.rsqrt(norm2 + 1e-8)[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,   # output side; sizes the constant noise map
        up: bool = False,  # 2x upsampling first
    ):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # A fixed noise map for deterministic output (samples, export); saved with the weights.
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "random") -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, w_dim: int, img_channels: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: upsampling conv, conv, toRGB added to the upsampled image. Reads 3 w's."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int = 3):
        super().__init__()
        self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, w_dim, img_channels)

    def forward(self, x: torch.Tensor, img: torch.Tensor, ws: torch.Tensor,
                noise_mode: NoiseMode) -> tuple[torch.Tensor, torch.Tensor]:
        """ws: (B, 3, w_dim) for conv0, conv1, toRGB."""
        x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, 1], noise_mode)
        return x, upsample2(img) + self.torgb(x, ws[:, 2])


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        w_dim: int = 256,         # length of each w
        image_size: int = 64,     # output side, a power of two >= 8
        width: int = 32,          # channels at full resolution, doubled per halving
        max_channels: int = 256,  # cap on the channels of any layer
        img_channels: int = 3,
    ):
        super().__init__()
        ch = lambda res: channels_at(res, image_size, width, max_channels)  # noqa: E731
        self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
        self.conv4 = SynthesisLayer(ch(4), ch(4), w_dim, 4)
        self.torgb4 = ToRGB(ch(4), w_dim, img_channels)
        self.blocks = nn.ModuleList(
            SynthesisBlock(ch(res // 2), ch(res), w_dim, res, img_channels) for res in _resolutions(image_size))
        self.num_ws = 2 + 2 * len(self.blocks)
        self.w_dim = w_dim
        self.image_size = image_size

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "random") -> torch.Tensor:
        """ws (B, num_ws, w_dim) -> images (B, 3, S, S), about [-1, 1] (not squashed: clip to show)."""
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = self.conv4(x, ws[:, 0], noise_mode)
        img = self.torgb4(x, ws[:, 1])
        for i, block in enumerate(self.blocks):
            x, img = block(x, img, ws[:, 1 + 2 * i : 4 + 2 * i], noise_mode)
        return img


class MappingNetwork(nn.Module):
    def __init__(
        self,
        z_dim: int = 256,          # length of z
        w_dim: int = 256,          # length of w
        num_layers: int = 8,       # fully connected layers
        lr_mult: float = 0.01,     # learning-rate multiplier of every layer
        w_avg_beta: float = 0.995,  # decay of the running mean of w (for truncation)
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mult=lr_mult, activate=True) for i in range(num_layers))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.w_avg_beta = w_avg_beta
        self.z_dim, self.w_dim = z_dim, w_dim

    def forward(self, z: torch.Tensor, psi: float = 1.0, track_w_avg: bool = False) -> torch.Tensor:
        """z (B, z_dim) -> w (B, w_dim), truncated towards ``w_avg`` by ``psi`` (1: not at all)."""
        x = normalize_2nd_moment(z)
        for layer in self.layers:
            x = layer(x)
        if track_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if psi != 1:
            x = self.w_avg.lerp(x, psi)
        return x


def style_mix(ws: torch.Tensor, ws2: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Layers before ``cutoff`` read ``ws``, the rest ``ws2`` (both (B, num_ws, w_dim))."""
    return torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)


class StyleGenerator(nn.Module):
    def __init__(
        self,
        z_dim: int = 256,          # length of z
        w_dim: int = 256,          # length of w
        image_size: int = 64,      # output side
        width: int = 32,           # channels at full resolution, doubled per halving
        max_channels: int = 256,   # cap on the channels of any layer
        mapping_layers: int = 8,   # fully connected layers of the mapping network
        mapping_lr_mult: float = 0.01,  # learning-rate multiplier of the mapping network
    ):
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mult)
        self.synthesis = SynthesisNetwork(w_dim, image_size, width, max_channels)
        self.num_ws = self.synthesis.num_ws
        self.z_dim, self.w_dim, self.image_size = z_dim, w_dim, image_size

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, num_ws, w_dim): the same style for every layer."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, psi: float = 1.0, noise_mode: NoiseMode = "random") -> torch.Tensor:
        return self.synthesis(self.broadcast(self.mapping(z, psi)), noise_mode)

    def parameter_names_through(self, resolution: int) -> list[str]:
        """Names of the parameters that make the picture up to ``resolution`` px: the mapping
        network, the constant, the 4 px layer and toRGB, and every block of that side or less."""
        names = []
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "mapping" or parts[1] in ("const", "conv4", "torgb4"):
                names.append(name)
            elif parts[1] == "blocks" and 8 << int(parts[2]) <= resolution:
                names.append(name)
        return names

    def training_ws(self, z: torch.Tensor, z2: torch.Tensor, mixing_prob: float,
                    track_w_avg: bool = True) -> torch.Tensor:
        """The ws of a training batch, tracking ``w_avg`` (unless the mapping is kept fixed). Style mixing regularisation: with
        probability ``mixing_prob`` the batch switches from z's styles to z2's at a random layer
        (1..num_ws-1), so no layer can rely on its neighbours reading the same style. Draws from
        torch's global generator (the trainer seeds it per step)."""
        ws = self.broadcast(self.mapping(z, track_w_avg=track_w_avg))
        mix = torch.rand(()).item() < mixing_prob
        cutoff = int(torch.randint(1, self.num_ws, ()).item())
        if mix:
            ws = style_mix(ws, self.broadcast(self.mapping(z2)), cutoff)
        return ws


class MinibatchStd(nn.Module):
    """Appends one channel: the standard deviation of features within groups of samples,
    averaged, so the discriminator can see a batch that lacks variety."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:
            g -= 1
        y = x.reshape(g, b // g, c, h, w)                    # sample i*(b//g)+m is member i of group m
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (b//g, c, h, w)
        y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # back to (b, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activate=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, activate=True, down=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


class StyleDiscriminator(nn.Module):
    def __init__(
        self,
        image_size: int = 64,     # input side, a power of two >= 8
        width: int = 32,          # channels at full resolution, doubled per halving
        max_channels: int = 256,  # cap on the channels of any layer
        mbstd_group: int = 4,     # minibatch standard deviation group size
        img_channels: int = 3,
    ):
        super().__init__()
        ch = lambda res: channels_at(res, image_size, width, max_channels)  # noqa: E731
        self.from_rgb = EqualConv2d(img_channels, ch(image_size), 1, activate=True)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(ch(res), ch(res // 2)) for res in reversed(_resolutions(image_size))))
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualConv2d(ch(4) + 1, ch(4), 3, activate=True)
        self.fc = EqualLinear(ch(4) * 16, ch(4), activate=True)
        self.out = EqualLinear(ch(4), 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B,) logits."""
        x = self.blocks(self.from_rgb(img))
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).flatten()
