"""Differentiable augmentation of everything the discriminator sees (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training").

With few training images the discriminator memorises them and its feedback to the generator
stops being useful. Augmenting only the real images would teach the generator to draw the
augmentations; DiffAugment instead applies the same random transformations to real *and*
generated images, every time the discriminator looks at either (its own update, the R1 penalty,
and the generator's update), and the transformations are differentiable, so the generator's
gradient passes through them. The paper reports FID cut about 2-2.5x with 1k-5k images.

Policies (each draws fresh random parameters per image, from torch's global generator, which
the trainer seeds per step, so a resumed run takes the same augmentations):

- ``color``: brightness (add U(-0.5, 0.5)), saturation (scale each pixel's distance from its
  channel mean by U(0, 2)), contrast (scale the distance from the image mean by U(0.5, 1.5));
- ``translation``: shift by up to 1/8 of the side in x and y, whole pixels, zeros shifted in;
- ``cutout``: zero a square of half the side at a random place (it may hang over the edge).

Images are (B, C, H, W) in [-1, 1]; the values may leave that range, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

def _uniform(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """One U(lo, hi) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (hi - lo) + lo


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def _shift_index(n: int, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For shifts (B,), the source index of every output position (B, n), clamped into range,
    and whether it came from inside the image."""
    src = torch.arange(n, device=shift.device)[None, :] - shift[:, None]
    inside = (src >= 0) & (src < n)
    return src.clamp(0, n - 1), inside


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    dy = torch.randint(-int(h * ratio + 0.5), int(h * ratio + 0.5) + 1, (b,), device=x.device)
    dx = torch.randint(-int(w * ratio + 0.5), int(w * ratio + 0.5) + 1, (b,), device=x.device)
    iy, in_y = _shift_index(h, dy)
    ix, in_x = _shift_index(w, dx)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, iy[:, :, None], ix[:, None, :]]  # (B, H, W, C)
    keep = (in_y[:, :, None] & in_x[:, None, :]).unsqueeze(-1)
    return (out * keep).permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's centre, anywhere such that part of the square lies inside the image
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch)
    in_x = (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
    hole = in_y[:, :, None] & in_x[:, None, :]
    return x * (~hole).unsqueeze(1).to(x.dtype)


_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"color": color, "translation": translation, "cutout": cutout}
POLICIES = tuple(_OPS)


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """"color,translation" -> ("color", "translation"); "" or "none" -> (). Unknown names raise."""
    names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else list(policy)
    names = [p for p in names if p and p != "none"]
    unknown = [p for p in names if p not in _OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; valid: {', '.join(POLICIES)}")
    return tuple(names)


def _apply(x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    for name in names:
        x = _OPS[name](x)
    return x.contiguous()


def diff_augment(x: torch.Tensor, policy: str | Sequence[str]) -> torch.Tensor:
    return _apply(x, parse_policy(policy))


class AugmentedCritic(nn.Module):
    """What the losses call "D" under DiffAugment: D(augment(x)). It holds no weights of its own."""

    def __init__(self, D: nn.Module, policy: str | Sequence[str]):
        super().__init__()
        self.D = D
        self.policy = parse_policy(policy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(_apply(x, self.policy))  # parsed once, in __init__
