"""The upscaler's network: doubles the side of a picture in [-1, 1].

A few 3x3 convolutions at the input's size read the picture; the last one gives four sub-pixels
per pixel and channel, a pixel shuffle lays them out at twice the size, and they are added to
the bilinear enlargement of the input: the network only learns what it misses (sharp edges,
clean lines), and starts as bilinear (bicubic in ONNX Runtime costs more than the whole network).
All the work is at the small side, so doubling a 64 px face costs about as much as a 64 px
convolution stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upscaler2x(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N, 3, 2H, 2W), about [-1, 1]."""

    def __init__(self, channels: int = 32, blocks: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(0.1)]
        for _ in range(blocks - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1)]
        layers += [nn.Conv2d(channels, 3 * 4, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(2)
        nn.init.zeros_(layers[-1].weight)   # starts as bilinear
        nn.init.zeros_(layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return base + self.shuffle(self.body(x))
