"""DiscoGAN training (Kim et al. 2017): sketch domain (A) <-> anime faces (B).

Two U-Net generators (encoder-decoder with skip connections) and two PatchGAN discriminators.
Each generator is trained to fool its discriminator and to bring the other domain's images back
after the round trip (the reconstruction loss, squared error by default as in the paper, with
weight ``lambda_cycle``); there is no identity loss. The loop, data, pools, checkpoints and
resume are the shared framework's (``training.translation``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.configs.translation import DiscoGANConfig
from training.cyclegan import PatchDiscriminator, UNetGenerator
from training.translation import TranslationTrainer, adversarial


class DiscoGANTrainer(TranslationTrainer):
    KIND = "discogan"
    TITLE = "DiscoGAN"
    CONFIG = DiscoGANConfig
    GENERATORS = ("G_AB", "G_BA")
    DISCRIMINATORS = ("D_A", "D_B")
    EXPORTED = ("G_AB",)

    @classmethod
    def build_networks(cls, c: DiscoGANConfig) -> dict[str, nn.Module]:
        def disc() -> nn.Module:
            return PatchDiscriminator(3, c.ndf, minibatch_std=c.minibatch_discrimination, minibatch_kind=c.minibatch_kind)

        return {"G_AB": UNetGenerator(3, 3, c.ngf, c.unet_depth), "G_BA": UNetGenerator(3, 3, c.ngf, c.unet_depth),
                "D_A": disc(), "D_B": disc()}

    @classmethod
    def exported_network(cls, config: DiscoGANConfig, nets: dict[str, nn.Module]) -> nn.Module:
        return nets["G_AB"]

    def reconstruct(self, fake: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.G_BA(fake[i : i + 32]) for i in range(0, len(fake), 32)])

    def train_step(self, step: int) -> dict[str, float]:
        c = self.config
        distance = F.mse_loss if c.reconstruction == "mse" else F.l1_loss
        real_A, real_B, rng = self.batch(step)
        self.freeze_discriminators()
        self.opt_G.zero_grad(set_to_none=True)
        fake_B, fake_A = self.G_AB(real_A), self.G_BA(real_B)
        loss_gan = adversarial(self.D_B(fake_B), 1.0, c.gan_loss) + adversarial(self.D_A(fake_A), 1.0, c.gan_loss)
        loss_rec = (distance(self.G_BA(fake_B), real_A) + distance(self.G_AB(fake_A), real_B)) * c.lambda_cycle
        loss_G = loss_gan + loss_rec
        loss_G.backward()
        self.opt_G.step()
        d_a, d_b = self.discriminator_step([(self.D_A, real_A, fake_A, self.pool_A), (self.D_B, real_B, fake_B, self.pool_B)], rng)
        return {"G": loss_G.item(), "G_gan": loss_gan.item(), "cycle": loss_rec.item(), "D_A": d_a, "D_B": d_b}
