"""CycleGAN training: sketch domain (A) <-> anime faces (B).

Losses as in the papers: LSGAN adversarial loss, cycle L1 (lambda_cycle), identity L1
(lambda_identity * lambda_cycle), a 50-image history pool for the discriminators, Adam (lr 2e-4,
beta1 0.5), constant learning rate then linear decay to zero. The loop, data, checkpoints and
resume are the shared framework's (``training.translation``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.configs.cyclegan import CycleGANConfig, MixConfig  # noqa: F401 - re-exported
from training.cyclegan import PatchDiscriminator, ResnetGenerator
from training.translation import ImagePool, TranslationTrainer, adversarial  # noqa: F401 - ImagePool re-exported


class CycleGANTrainer(TranslationTrainer):
    KIND = "cyclegan"
    TITLE = "CycleGAN"
    CONFIG = CycleGANConfig
    GENERATORS = ("G_AB", "G_BA")
    DISCRIMINATORS = ("D_A", "D_B")
    EXPORTED = ("G_AB",)

    @classmethod
    def snapshot_kind(cls) -> str:
        return "cyclegan-G_AB"

    @classmethod
    def build_networks(cls, c: CycleGANConfig) -> dict[str, nn.Module]:
        return {
            "G_AB": ResnetGenerator(3, 3, c.ngf, c.n_blocks),  # sketch -> anime
            "G_BA": ResnetGenerator(3, 3, c.ngf, c.n_blocks),  # anime -> sketch
            "D_A": PatchDiscriminator(3, c.ndf, minibatch_std=c.minibatch_discrimination, minibatch_kind=c.minibatch_kind),
            "D_B": PatchDiscriminator(3, c.ndf, minibatch_std=c.minibatch_discrimination, minibatch_kind=c.minibatch_kind),
        }

    @classmethod
    def exported_network(cls, config: CycleGANConfig, nets: dict[str, nn.Module]) -> nn.Module:
        return nets["G_AB"]

    def reconstruct(self, fake: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.G_BA(fake[i : i + 32]) for i in range(0, len(fake), 32)])

    def train_step(self, step: int) -> dict[str, float]:
        c = self.config
        real_A, real_B, rng = self.batch(step)
        self.freeze_discriminators()
        self.opt_G.zero_grad(set_to_none=True)
        fake_B = self.G_AB(real_A)
        rec_A = self.G_BA(fake_B)
        fake_A = self.G_BA(real_B)
        rec_B = self.G_AB(fake_A)
        loss_gan = adversarial(self.D_B(fake_B), 1.0, c.gan_loss) + adversarial(self.D_A(fake_A), 1.0, c.gan_loss)
        loss_cycle = (F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B)) * c.lambda_cycle
        if c.lambda_identity > 0:
            loss_idt = (F.l1_loss(self.G_AB(real_B), real_B) + F.l1_loss(self.G_BA(real_A), real_A)) * c.lambda_cycle * c.lambda_identity
        else:
            loss_idt = torch.zeros(())
        loss_G = loss_gan + loss_cycle + loss_idt
        loss_G.backward()
        self.opt_G.step()
        d_a, d_b = self.discriminator_step([(self.D_A, real_A, fake_A, self.pool_A), (self.D_B, real_B, fake_B, self.pool_B)], rng)
        return {"G": loss_G.item(), "G_gan": loss_gan.item(), "cycle": loss_cycle.item(),
                "identity": loss_idt.item(), "D_A": d_a, "D_B": d_b}
