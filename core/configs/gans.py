"""Configurations of the unconditional anime-face generators: pydantic models with no torch
import, so the API can validate a job before it is queued. Written as JSON beside every
checkpoint and export.

One class per kind, all sharing ``GANConfig``'s fields; a kind's class fixes ``kind`` and holds
only the fields that kind reads, so the dashboard form (made from the JSON schema) shows no
setting that would be ignored. ``load_gan_config`` picks the class from the ``kind`` field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GANKind = Literal["dcgan", "lsgan", "wgan_div", "stylegan"]
DiffAugmentPolicy = Literal["none", "translation", "color,translation", "translation,cutout", "color,translation,cutout"]


class GANConfig(BaseModel):
    """What every unconditional generator run has: data, batch, optimiser, seed and logging."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: GANKind = Field(description="which generator and loss: dcgan, lsgan, wgan_div or stylegan")
    image_size: Literal[16, 32, 64, 128] = Field(64, description="side of the generated faces, in pixels")
    z_dim: int = Field(100, ge=1, le=1024, description="length of the latent vector z ~ N(0, I)")
    ngf: int = Field(64, ge=2, le=1024, description="generator width (channels of its last hidden layer)")
    ndf: int = Field(64, ge=2, le=1024, description="discriminator width (channels of its first layer)")
    batch_size: int = Field(64, ge=2, le=1024, description="real and generated images per step")
    steps: int = Field(20000, ge=1, description="generator updates in total")
    lr_g: float = Field(2e-4, gt=0, le=1, description="learning rate of the generator (Adam; DCGAN's 2e-4; some anime-face "
                                                      "DCGANs use 5e-4 here with 1e-4 for the discriminator)")
    lr_d: float = Field(2e-4, gt=0, le=1, description="learning rate of the discriminator (Adam)")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    flip: bool = Field(True, description="random horizontal flips of the real faces")
    sharpness: float = Field(0.0, ge=0, le=1,
                             description="probability of a random sharpness change (factor 0.5..2) of a real face")
    anime_limit: int | None = Field(None, ge=1, description="use only the first N anime faces (empty: all)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the weights and, with the step number, every random draw of a step")
    log_every: int = Field(50, ge=1, description="steps between lines of loss_log.jsonl")
    sample_every: int = Field(500, ge=1, description="steps between sample grids (and metrics)")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")
    sample_count: int = Field(64, ge=1, le=256, description="faces in a sample grid, from fixed latents")
    eval_count: int = Field(512, ge=0,
                            description="generated and real faces compared by the pixel Fréchet distance (0: none)")
    diffaugment: DiffAugmentPolicy = Field(
        "none", description="differentiable augmentation of the real and generated images the discriminator sees "
                            "(DiffAugment: colour, translation by up to 1/8, cutout of half the side); helps with "
                            "few training images")
    init_generator: str | None = Field(
        None, max_length=500,
        description="start the generator from these torch weights (an exported model folder with generator.safetensors, "
                    "or the file itself) to fine-tune it; the discriminator starts new (empty: from scratch)")
    init_discriminator: str | None = Field(
        None, max_length=500,
        description="start the discriminator from these torch weights (an exported model folder with "
                    "discriminator.safetensors, or the file itself), so a fine-tune needs no warm-up (empty: new)")
    d_warmup_steps: int = Field(
        0, ge=0, description="the first N steps update only the discriminator, so a new one catches up with a "
                             "fine-tuned generator before it steers it")


def _kind_field(kind: str, description: str) -> Any:
    """A kind's fixed ``kind`` field; the schema lists its one value (the form shows a fixed choice)."""
    return Field(kind, description=description, json_schema_extra={"enum": [kind], "readOnly": True})


class _ConvGANConfig(GANConfig):
    """Fields of the DCGAN-architecture kinds (DCGAN, LSGAN, WGAN-div)."""

    init: Literal["normal_0.02", "default"] = Field(
        "normal_0.02", description="weights N(0, 0.02) and norm scales N(1, 0.02) as in DCGAN, or PyTorch's default init")


class DCGANConfig(_ConvGANConfig):
    """DCGAN (Radford et al. 2016): transposed-conv generator, strided-conv discriminator with
    batch norm, the non-saturating cross-entropy loss."""

    kind: Literal["dcgan"] = _kind_field("dcgan", "DCGAN: cross-entropy loss")
    fuzzy_labels: bool = Field(False, description="discriminator targets 0.9 / 0.1 instead of 1 / 0")


class LSGANConfig(_ConvGANConfig):
    """LSGAN (Mao et al. 2017): the DCGAN networks with a least-squares loss (targets 0/1)."""

    kind: Literal["lsgan"] = _kind_field("lsgan", "LSGAN: least-squares loss on the DCGAN networks")
    fuzzy_labels: bool = Field(False, description="discriminator targets 0.9 / 0.1 instead of 1 / 0")


class WGANDivConfig(_ConvGANConfig):
    """WGAN-div (Wu et al. 2018): the DCGAN networks, a critic without batch norm, the
    Wasserstein divergence penalty k * E|grad D(x_hat)|^p on real/fake interpolations.

    ``n_critic`` defaults to 5 critic updates per generator update: WGAN-GP's setting, which the
    common WGAN-div implementations keep (with k = 2, p = 6 and Adam 2e-4, 0.5, 0.999). With one critic
    update a step already costs about 1.7 DCGAN steps on a CPU (the penalty differentiates
    through the critic twice), so the CPU config uses 2."""

    kind: Literal["wgan_div"] = _kind_field("wgan_div", "WGAN-div: Wasserstein divergence critic")
    n_critic: int = Field(5, ge=1, le=20, description="critic updates per generator update")
    div_k: float = Field(2.0, gt=0, description="weight k of the divergence penalty")
    div_p: float = Field(6.0, gt=0, description="power p of the gradient norm in the penalty")
    critic_norm: Literal["layer", "none"] = Field(
        "layer", description="normalisation in the critic: layer norm (over C, H, W) or none; never batch norm, "
                             "which would make the per-sample gradient penalty depend on the batch. Layer norm "
                             "makes the critic nearly blind to an image's strength (see gans/dcgan.py); the CPU "
                             "config uses none")


class StyleGANConfig(GANConfig):
    """StyleGAN2-style generator without progressive growing: a mapping network z -> w, a learned
    4x4 constant, modulated convolutions with weight demodulation (StyleGAN2; AdaIN's instance
    normalisation is what made StyleGAN's "droplet" artefacts, demodulation removes them), noise
    inputs, skip toRGB outputs, style mixing, an EMA generator, the logistic (non-saturating)
    loss and R1 on real images. The whole network trains at full resolution from step 0: no
    progressive growing (StyleGAN2 dropped it too). Widths: ``ngf``/``ndf`` channels at full
    resolution, doubled per halving up to ``max_channels``.

    R1 is used (gamma 0.05, lazily every 16 steps): StyleGAN2-ADA's rule of thumb
    0.0002 * resolution^2 / batch gives 0.01-0.03 at 64 px; a little more suits a small data set.
    No path-length regulariser (its cost is not worth it at these sizes)."""

    kind: Literal["stylegan"] = _kind_field("stylegan", "StyleGAN2-style generator (no progressive growing)")
    z_dim: int = Field(256, ge=1, le=1024, description="length of the latent vector z ~ N(0, I)")
    w_dim: int = Field(256, ge=1, le=1024, description="length of the intermediate latent w (the style)")
    mapping_layers: int = Field(8, ge=1, le=16, description="fully connected layers of the mapping network")
    mapping_lr_mult: float = Field(0.01, gt=0, le=1, description="learning-rate multiplier of the mapping network")
    ngf: int = Field(32, ge=2, le=1024, description="generator channels at full resolution (doubled per halving)")
    ndf: int = Field(32, ge=2, le=1024, description="discriminator channels at full resolution (doubled per halving)")
    max_channels: int = Field(256, ge=2, le=1024, description="cap on the channels of any layer, both networks")
    batch_size: int = Field(32, ge=2, le=1024, description="real and generated images per step")
    lr_g: float = Field(2e-3, gt=0, le=1, description="learning rate of the generator (Adam; equalised learning rate)")
    lr_d: float = Field(2e-3, gt=0, le=1, description="learning rate of the discriminator (Adam; equalised learning rate)")
    beta1: float = Field(0.0, ge=0, lt=1, description="Adam beta1")
    beta2: float = Field(0.99, ge=0, lt=1, description="Adam beta2")
    modulation: Literal["modconv"] = Field(
        "modconv", description="how styles enter the convolutions: modulated convolution with weight demodulation "
                               "(StyleGAN2); AdaIN is not offered, its instance normalisation causes droplet artefacts")
    style_mixing_prob: float = Field(0.9, ge=0, le=1,
                                     description="probability that a batch mixes two latents at a random layer")
    ema_half_life_images: int = Field(10000, ge=1, description="half-life of the EMA generator, in training images")
    ema_rampup: float | None = Field(
        0.05, gt=0, description="early on, the half-life is at most this fraction of the images seen (empty: no ramp-up)")
    r1_gamma: float = Field(0.05, ge=0, description="weight gamma of the R1 penalty gamma/2 * E|grad D(real)|^2 (0: none)")
    r1_every: int = Field(16, ge=1, description="lazy regularisation: R1 every N steps, scaled by N")
    mbstd_group: int = Field(4, ge=1, le=64, description="minibatch standard deviation group size in the discriminator")
    sample_truncation: float = Field(0.7, ge=0, le=1, description="truncation psi of the sample grids (1: none)")
    freeze_g_through: Literal[0, 4, 8, 16, 32] = Field(
        0, description="fine-tuning: keep the mapping network (and its w_avg) and every synthesis layer up to this side "
                       "in pixels as they are, so the pose and face shape that latent walks and encoders learned stay "
                       "while the finer layers (texture, colour) train (0: everything trains)")
    freeze_noise: bool = Field(
        False, description="fine-tuning: keep every layer's noise strength as it starts. Exports draw each layer's noise "
                           "from one constant map, so a strength that a fine-tune grows prints the same grain on every face")


GAN_CONFIGS: dict[str, type[GANConfig]] = {
    "dcgan": DCGANConfig,
    "lsgan": LSGANConfig,
    "wgan_div": WGANDivConfig,
    "stylegan": StyleGANConfig,
}


def load_gan_config(raw: dict[str, Any], kind: str | None = None) -> GANConfig:
    """The config of the kind named by ``kind`` (or by ``raw["kind"]``), validated."""
    kind = kind or raw.get("kind")
    if kind not in GAN_CONFIGS:
        raise ValueError(f"unknown GAN kind {kind!r}; valid: {', '.join(GAN_CONFIGS)}")
    return GAN_CONFIGS[kind].model_validate(raw)
