"""Directions in the StyleGAN's latent space that do one visible thing: tilt the head, make the
face longer, zoom out, make the eyes bigger, open the mouth.

Each is learned as a *steerable walk* (after Jahanian et al., "On the steerability of generative
adversarial networks", 2020): a vector ``d`` over a set of style inputs such that moving a
face's styles by ``a * d`` makes the picture that a fixed image edit ``T(face, a)`` would make
(rotate it by ``a`` x 25 degrees, stretch it, zoom it, magnify the eyes, darken the mouth).
The generator is frozen; only ``d`` is trained, on random faces and random ``a`` in [-1, 1],
with the loss weighted where the edit acts. Because the face always comes out of the
generator, the walk can only reach faces the generator can make: the edit is the teacher, not
the result (a magnified eye in the target is a bigger eye in the face, not a stretched one).

Eye and mouth positions are the average positions in the anime-face crops (the faces are
aligned well enough for that; the loss weights are broad Gaussians around them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.gans.stylegan import StyleGenerator

#: Normalised image coordinates (x right, y down, both in [-1, 1]) of the eyes and the mouth.
EYES = ((-0.33, 0.12), (0.33, 0.12))
MOUTH = (0.0, 0.58)

Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _grid(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return xs, ys


def _affine(x: torch.Tensor, rows: list[list[torch.Tensor]]) -> torch.Tensor:
    theta = torch.stack([torch.stack(r, 1) for r in rows], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def rotate(x: torch.Tensor, a: torch.Tensor, degrees: float = 25.0) -> torch.Tensor:
    """Rotate by ``a * degrees`` (a > 0: anticlockwise on screen)."""
    ang = a * math.radians(degrees)
    c, s, z = torch.cos(ang), torch.sin(ang), torch.zeros_like(a)
    return _affine(x, [[c, -s, z], [s, c, z]])


def stretch(x: torch.Tensor, a: torch.Tensor, amount: float = 0.25) -> torch.Tensor:
    """Stretch vertically about the centre by 1 + ``a * amount`` (a > 0: a longer face)."""
    one, z = torch.ones_like(a), torch.zeros_like(a)
    return _affine(x, [[one, z, z], [z, 1.0 / (1.0 + amount * a), z]])


def zoom(x: torch.Tensor, a: torch.Tensor, amount: float = 0.25) -> torch.Tensor:
    """Zoom out by 1 + ``a * amount`` (a > 0: a smaller face with more around it)."""
    s, z = 1.0 + amount * a, torch.zeros_like(a)
    return _affine(x, [[s, z, z], [z, s, z]])


def eyes(x: torch.Tensor, a: torch.Tensor, amount: float = 0.35, radius: float = 0.28) -> torch.Tensor:
    """Magnify (a > 0) or shrink the picture around the two eyes."""
    n, _, h, w = x.shape
    xs, ys = _grid(n, h)
    gx, gy = xs.expand(n, -1, -1).clone(), ys.expand(n, -1, -1).clone()
    for ex, ey in EYES:
        dx, dy = xs - ex, ys - ey
        bump = torch.exp(-(dx ** 2 + dy ** 2) / radius ** 2)
        f = 1.0 / (1.0 + (amount * a)[:, None, None] * bump)
        gx, gy = gx + dx * (f - 1), gy + dy * (f - 1)
    return F.grid_sample(x, torch.stack([gx, gy], -1), padding_mode="border", align_corners=False)


def _mouth_mask(size: int) -> torch.Tensor:
    xs, ys = _grid(1, size)
    return torch.exp(-(((xs - MOUTH[0]) / 0.16) ** 2 + ((ys - MOUTH[1]) / 0.09) ** 2))[None, None]


def mouth(x: torch.Tensor, a: torch.Tensor, amount: float = 0.8) -> torch.Tensor:
    """a > 0: an open mouth (a dark red ellipse where the mouth is); a < 0: a closed one (the
    mouth takes the colour of the skin between the eyes)."""
    m = _mouth_mask(x.shape[-1])
    dark = torch.tensor([0.2, -0.6, -0.6])[None, :, None, None]
    h = x.shape[-1]
    skin = x[:, :, int(0.47 * h):int(0.53 * h), int(0.44 * h):int(0.56 * h)].mean(dim=(2, 3), keepdim=True)
    ap = a.clamp(min=0)[:, None, None, None]
    an = (-a).clamp(min=0)[:, None, None, None]
    return x + amount * m * (ap * (dark - x) + an * (skin - x))


#: Where long hair falls: beside the cheeks, outside |x| = HAIR_SIDE (the face's sides), below
#: HAIR_TOP (the temples); the stretch is anchored there.
HAIR_SIDE = 0.48
HAIR_TOP = -0.3


def _side_bands(size: int) -> torch.Tensor:
    """1 beside the cheeks (|x| past the face's sides), 0 over the face, smooth between."""
    xs, ys = _grid(1, size)
    across = ((xs.abs() - HAIR_SIDE) / 0.18).clamp(0, 1)
    down = ((ys - HAIR_TOP) / 0.25).clamp(0, 1)
    return (across * across * (3 - 2 * across) * down)[None, None]


def hair_long(x: torch.Tensor, a: torch.Tensor, amount: float = 0.6) -> torch.Tensor:
    """a > 0: the hair beside the cheeks falls further down (the sides of the picture below the
    temples stretched downwards, anchored at the temples); a < 0: it is pulled up, shorter. The
    middle of the face does not move."""
    n, _, h, w = x.shape
    xs, ys = _grid(n, h)
    side = _side_bands(h)[0, 0]
    factor = torch.exp(amount * a)[:, None, None]
    below = (ys - HAIR_TOP).clamp(min=0)
    src_y = ys - side * below * (1 - 1 / factor)
    grid = torch.stack([xs.expand(n, -1, -1), src_y], -1)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class Walk:
    """How one direction is taught: the image edit, the style inputs it may move, and where in
    the picture the loss looks hardest (extra weight on a mask, or none)."""

    transform: Transform
    layers: tuple[int, ...]
    focus: Callable[[int], torch.Tensor] | None = None
    focus_weight: float = 0.0
    #: Taught only towards positive ``a`` (the edit's other way is not one the generator can
    #: make well, and a straight line must serve both): the walk is then used one way only.
    one_sided: bool = False


def _mouth_focus(size: int) -> torch.Tensor:
    xs, ys = _grid(1, size)
    return torch.exp(-((xs / 0.2) ** 2 + ((ys - MOUTH[1]) / 0.12) ** 2))[None, None]


#: The walks, by name; the layer sets are of a 64 px generator with 10 style inputs.
WALKS: dict[str, Walk] = {
    "tilt": Walk(rotate, (0, 1, 2, 3, 4, 5)),
    "long": Walk(stretch, (0, 1, 2, 3, 4, 5)),
    "zoom_out": Walk(zoom, (0, 1, 2, 3, 4, 5)),
    "big_eyes": Walk(eyes, (0, 1, 2, 3, 4, 5, 6, 7)),
    "open_mouth": Walk(mouth, (2, 3, 4, 5, 6, 7), _mouth_focus, 30.0),
    "long_hair": Walk(hair_long, (0, 1, 2, 3, 4, 5), _side_bands, 4.0, one_sided=True),
}


def learn_walk(G: StyleGenerator, walk: Walk, *, steps: int = 300, batch: int = 12, lr: float = 0.05,
               psi: float = 0.8, border: int = 6, seed: int = 0,
               on_step: Callable[[int, float], None] | None = None) -> torch.Tensor:
    """The direction (len(layers), w_dim) for one walk. The generator stays frozen."""
    gen = torch.Generator().manual_seed(seed)
    layers = list(walk.layers)
    d = torch.zeros(len(layers), G.w_dim, requires_grad=True)
    opt = torch.optim.Adam([d], lr=lr)
    weight = None
    if walk.focus is not None:
        weight = 1.0 + walk.focus_weight * walk.focus(G.image_size)
    for step in range(steps):
        with torch.no_grad():
            w = G.mapping(torch.randn(batch, G.z_dim, generator=gen), psi=psi)
            ws = G.broadcast(w).clone()
            base = G.synthesis(ws, noise_mode="const")
        a = torch.rand(batch, generator=gen)
        if not walk.one_sided:
            a = a * 2 - 1
        target = walk.transform(base, a)
        moved = ws.clone()
        moved[:, layers] = moved[:, layers] + a[:, None, None] * d[None]
        out = G.synthesis(moved, noise_mode="const")
        if weight is not None:
            loss = ((out - target) ** 2 * weight).mean()
        else:
            b = border
            loss = F.mse_loss(out[..., b:-b, b:-b], target[..., b:-b, b:-b])
        loss = loss + 1e-4 * d.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, loss.item())
    return d.detach()
