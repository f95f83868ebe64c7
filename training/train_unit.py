"""UNIT training (Liu, Breuel and Kautz 2017): sketch domain (A) <-> anime faces (B) through one
shared latent space.

Two VAE encoders whose last residual blocks are one module, two generators whose first blocks
are one module, two PatchGAN discriminators. As in the paper the code's variance is fixed at 1:
z = mu + N(0, I), so each KL term is the mean of mu^2 / 2 up to a constant. Per step:

- VAE: each domain reconstructs itself from its code (L1, ``lambda_rec``) with its KL (``lambda_kl``);
- GAN: a code of one domain decoded by the other domain's generator must fool that domain's
  discriminator (``lambda_gan``);
- cycle: the translated image, encoded again and decoded back, must return the input (L1,
  ``lambda_cycle``) with the KL of the second code (``lambda_cycle_kl``).

The exported sketch -> anime network is the sketch encoder's mean code decoded by the anime
generator. The loop, data, pools, checkpoints and resume are the shared framework's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.configs.translation import UNITConfig
from training.cyclegan import EncodeDecode, PatchDiscriminator, UNITEncoder, UNITGenerator, shared_blocks
from training.translation import TranslationTrainer, adversarial


def kl(mu: torch.Tensor) -> torch.Tensor:
    return 0.5 * mu.pow(2).mean()


class UNITTrainer(TranslationTrainer):
    KIND = "unit"
    TITLE = "UNIT"
    CONFIG = UNITConfig
    GENERATORS = ("E_A", "E_B", "G_A", "G_B")
    DISCRIMINATORS = ("D_A", "D_B")
    EXPORTED = ("E_A", "G_B")

    @classmethod
    def build_networks(cls, c: UNITConfig) -> dict[str, nn.Module]:
        enc_shared, gen_shared = shared_blocks(c.ngf, c.n_shared), shared_blocks(c.ngf, c.n_shared)

        def disc() -> nn.Module:
            return PatchDiscriminator(3, c.ndf, minibatch_std=c.minibatch_discrimination, minibatch_kind=c.minibatch_kind)

        return {"E_A": UNITEncoder(c.ngf, c.n_res, enc_shared), "E_B": UNITEncoder(c.ngf, c.n_res, enc_shared),
                "G_A": UNITGenerator(c.ngf, c.n_res, gen_shared), "G_B": UNITGenerator(c.ngf, c.n_res, gen_shared),
                "D_A": disc(), "D_B": disc()}

    @classmethod
    def exported_network(cls, config: UNITConfig, nets: dict[str, nn.Module]) -> nn.Module:
        return EncodeDecode(nets["E_A"], nets["G_B"])

    def reconstruct(self, fake: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.G_A(self.E_B(fake[i : i + 32])) for i in range(0, len(fake), 32)])

    def train_step(self, step: int) -> dict[str, float]:
        c = self.config
        real_A, real_B, rng = self.batch(step)
        # The codes' noise comes from the step's own generator, so a resumed run draws the same.
        gen = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**63)))

        def noisy(mu: torch.Tensor) -> torch.Tensor:
            return mu + torch.randn(mu.shape, generator=gen, device=mu.device)

        self.freeze_discriminators()
        self.opt_G.zero_grad(set_to_none=True)
        mu_A, mu_B = self.E_A(real_A), self.E_B(real_B)
        z_A, z_B = noisy(mu_A), noisy(mu_B)
        rec_A, rec_B = self.G_A(z_A), self.G_B(z_B)
        fake_B, fake_A = self.G_B(z_A), self.G_A(z_B)           # A -> B and B -> A
        mu_AB, mu_BA = self.E_B(fake_B), self.E_A(fake_A)
        cyc_A = self.G_A(noisy(mu_AB))
        cyc_B = self.G_B(noisy(mu_BA))
        loss_gan = (adversarial(self.D_B(fake_B), 1.0, c.gan_loss) + adversarial(self.D_A(fake_A), 1.0, c.gan_loss)) * c.lambda_gan
        loss_vae = ((F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B)) * c.lambda_rec
                    + (kl(mu_A) + kl(mu_B)) * c.lambda_kl)
        loss_cycle = ((F.l1_loss(cyc_A, real_A) + F.l1_loss(cyc_B, real_B)) * c.lambda_cycle
                      + (kl(mu_AB) + kl(mu_BA)) * c.lambda_cycle_kl)
        loss_G = loss_gan + loss_vae + loss_cycle
        loss_G.backward()
        self.opt_G.step()
        d_a, d_b = self.discriminator_step([(self.D_A, real_A, fake_A, self.pool_A), (self.D_B, real_B, fake_B, self.pool_B)], rng)
        return {"G": loss_G.item(), "G_gan": loss_gan.item(), "vae": loss_vae.item(), "cycle": loss_cycle.item(),
                "D_A": d_a, "D_B": d_b}
