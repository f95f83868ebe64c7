"""Adversarial losses: one object per kind with two entry points, ``discriminator(D, real, fake)``
and ``generator(D, fake)``. Each returns the loss to minimise and the parts worth logging.

- ``CrossEntropyLoss``: DCGAN's loss on logits (the sigmoid lives inside
  ``binary_cross_entropy_with_logits``); the generator's is the non-saturating -log D(G(z)).
  StyleGAN uses it too (it is StyleGAN2's logistic loss, softplus(-D) / softplus(D)).
- ``LeastSquaresLoss``: LSGAN, (D(x) - b)^2 / 2 + (D(G(z)) - a)^2 / 2 and (D(G(z)) - c)^2 / 2 with
  a = 0, b = c = 1 (the 0-1 coding of Mao et al.).
- ``WassersteinDivLoss``: WGAN-div, D(G(z)) - D(x) + k * E|grad D(x_hat)|^p with x_hat a random
  interpolation of real and fake; the generator minimises -D(G(z)).
- ``r1_penalty``: E|grad D(x)|^2 on real images (Mescheder et al. 2018), StyleGAN's regulariser.

Fuzzy labels (targets 0.9 / 0.1) apply to the discriminator's targets only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Critic = Callable[[torch.Tensor], torch.Tensor]


def _targets(fuzzy: bool) -> tuple[float, float]:
    return (0.9, 0.1) if fuzzy else (1.0, 0.0)


class CrossEntropyLoss:
    def __init__(self, fuzzy_labels: bool = False):
        self.real_target, self.fake_target = _targets(fuzzy_labels)

    def discriminator(self, D: Critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        r, f = D(real), D(fake)
        loss = (F.binary_cross_entropy_with_logits(r, torch.full_like(r, self.real_target))
                + F.binary_cross_entropy_with_logits(f, torch.full_like(f, self.fake_target)))
        return loss, {"D_real": r.mean().item(), "D_fake": f.mean().item()}

    def generator(self, D: Critic, fake: torch.Tensor) -> torch.Tensor:
        f = D(fake)
        return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))


class LeastSquaresLoss:
    def __init__(self, fuzzy_labels: bool = False):
        self.real_target, self.fake_target = _targets(fuzzy_labels)

    def discriminator(self, D: Critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        r, f = D(real), D(fake)
        loss = 0.5 * ((r - self.real_target) ** 2).mean() + 0.5 * ((f - self.fake_target) ** 2).mean()
        return loss, {"D_real": r.mean().item(), "D_fake": f.mean().item()}

    def generator(self, D: Critic, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((D(fake) - 1.0) ** 2).mean()


def wgan_div_penalty(D: Critic, real: torch.Tensor, fake: torch.Tensor, k: float, p: float,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """k * mean over the batch of |grad_x D(x_hat)|_2^p, x_hat = eps * real + (1 - eps) * fake,
    eps ~ U(0, 1) per sample unless given (shape (B,)). Differentiable in D's parameters."""
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    sq_norm = grad.flatten(1).pow(2).sum(1)
    return k * sq_norm.pow(p / 2).mean()


class WassersteinDivLoss:
    def __init__(self, k: float = 2.0, p: float = 6.0):
        self.k, self.p = k, p

    def discriminator(self, D: Critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        r, f = D(real), D(fake)
        penalty = wgan_div_penalty(D, real, fake, self.k, self.p)
        loss = f.mean() - r.mean() + penalty
        return loss, {"wdist": (r.mean() - f.mean()).item(), "div": penalty.item()}

    def generator(self, D: Critic, fake: torch.Tensor) -> torch.Tensor:
        return -D(fake).mean()


def r1_penalty(D: Critic, real: torch.Tensor) -> torch.Tensor:
    """E|grad_x D(x)|_2^2 over a batch of real images. Differentiable in D's parameters."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()
