"""Configurations of the image-to-image models that turn drawings into anime faces: pydantic
models with no torch import, so the API can validate a job before it is queued. Written as JSON
beside every checkpoint and export.

``TranslationConfig`` holds what every such run has (image sizes, batch, optimiser and its
schedule, the discriminators, seed, logging); ``UnpairedConfig`` adds what the unpaired methods
read (the sketch domain's mix, the history pool). One class per kind on top, holding only the
fields that kind reads, so the dashboard form (made from the JSON schema) shows no setting
that would be ignored:

- ``core.configs.cyclegan.CycleGANConfig``: ResNet generators, cycle and identity losses;
- ``DiscoGANConfig``: U-Net generators (encoder-decoder with skip connections), reconstruction loss;
- ``UNITConfig``: VAE encoders and generators sharing a latent space, with the KL terms;
- ``LineArtConfig``: the paired model: anime faces and their own edge sketches, U-Net + L1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MixConfig(BaseModel):
    """Relative weights of the sketch kinds in the sketch domain."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    quickdraw: float = Field(0.5, ge=0, description="weight of real Quick, Draw! doodles")
    synthetic: float = Field(0.4, ge=0, description="weight of synthetic doodles drawn as strokes")
    edges: float = Field(0.1, ge=0, description="weight of edge sketches of anime faces")

    @model_validator(mode="after")
    def _some_weight(self) -> "MixConfig":
        if self.quickdraw + self.synthetic + self.edges <= 0:
            raise ValueError("sketch mix weights must be >= 0 and not all zero")
        return self

    def probabilities(self) -> tuple[float, float, float]:
        """(quickdraw, synthetic, edges) as probabilities that sum to 1."""
        total = self.quickdraw + self.synthetic + self.edges
        return self.quickdraw / total, self.synthetic / total, self.edges / total


def _unet_fits(image_size: int, depth: int) -> None:
    """A U-Net halves the image ``depth`` times: the side must divide evenly."""
    if image_size % (2 ** depth):
        raise ValueError(f"image_size must be a multiple of 2^unet_depth = {2 ** depth}")


class TranslationConfig(BaseModel):
    """What every drawing -> anime-face run has; written as JSON beside every checkpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: int = Field(64, ge=24, le=512, multiple_of=4,
                            description="side of the images the networks see (a multiple of 4: the generator halves it twice)")
    ndf: int = Field(64, ge=4, le=256, description="discriminator width: channels of the discriminators' first layer")
    batch_size: int = Field(1, ge=1, le=256, description="images per step")
    steps: int = Field(20000, ge=1, description="total optimisation steps")
    decay_steps: int = Field(10000, ge=0, description="the learning rate falls linearly to 0 over the last decay_steps")
    lr: float = Field(2e-4, gt=0, le=1, description="learning rate of the generators")
    lr_d: float | None = Field(None, gt=0, le=1, description="learning rate of the discriminators (empty: same as lr)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="Adam, or SGD with momentum")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, le=0.1, description="L2 weight decay of both optimisers")
    schedule: Literal["linear", "cyclic"] = Field(
        "linear", description="linear: constant, then linear decay over decay_steps; cyclic: triangular cycles")
    cycle_steps: int = Field(2000, ge=2, description="cyclic schedule: steps per cycle (lr goes 10% -> 100% -> 10%)")
    gan_loss: Literal["lsgan", "bce"] = Field(
        "lsgan", description="adversarial loss: least squares (LSGAN) or the original cross-entropy (BCE)")
    flip: bool = Field(True, description="random horizontal flips, both domains")
    sharpness: float = Field(0.0, ge=0, le=1, description="probability of a random sharpness change (factor 0.5..2)")
    fuzzy_labels: bool = Field(False, description="discriminator targets 0.9 / 0.1 instead of 1 / 0")
    minibatch_discrimination: bool = Field(
        False, description="discriminators also see how the images of the batch differ (needs batch_size > 1)")
    minibatch_kind: Literal["stddev", "salimans"] = Field(
        "stddev", description="with minibatch discrimination: the batch's feature spread (one map, as in "
                              "progressive GANs) or Salimans et al.'s learned similarities to the other images")
    anime_limit: int | None = Field(None, ge=1, description="use only the first N anime faces (empty: all)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the weights and every random draw: same seed, same run")
    log_every: int = Field(50, ge=1, description="steps between lines of loss_log.jsonl")
    sample_every: int = Field(1000, ge=1, description="steps between sample grids (and held-out metrics)")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints; a retry resumes from the last one")
    snapshot_every: int = Field(0, ge=0, description="steps between snapshots of the sketch->anime generator (0: never)")
    eval_count: int = Field(200, ge=0, description="held-out doodles scored at each sample grid")

    @model_validator(mode="after")
    def _check(self) -> "TranslationConfig":
        if self.decay_steps > self.steps:
            raise ValueError("decay_steps cannot exceed steps")
        if self.minibatch_discrimination and self.batch_size < 2:
            raise ValueError("minibatch_discrimination compares the images of a batch: it needs batch_size 2 or more")
        return self

    def lr_at(self, step: int, base: float | None = None) -> float:
        """The learning rate at ``step`` for a base rate (default ``lr``).

        linear: constant, then linear decay to zero over the last ``decay_steps``.
        cyclic: triangular cycles of ``cycle_steps`` between 10 % and 100 % of the base rate.
        """
        lr = self.lr if base is None else base
        if self.schedule == "cyclic":
            phase = (step % self.cycle_steps) / self.cycle_steps
            return lr * (0.1 + 0.9 * (1.0 - abs(2.0 * phase - 1.0)))
        start = self.steps - self.decay_steps
        if step < start or self.decay_steps == 0:
            return lr
        return lr * max(0.0, 1.0 - (step - start) / self.decay_steps)


class UnpairedConfig(TranslationConfig):
    """An unpaired run: a sketch domain mixed from several sources, and anime faces."""

    raster_size: int = Field(28, ge=16, le=512, description="sketches are drawn at this size, then resized")
    pool_size: int = Field(50, ge=0, description="history of generated images shown to the discriminators")
    mix: MixConfig = Field(MixConfig(), description="relative weights of what the sketch side is made of")


class DiscoGANConfig(UnpairedConfig):
    """DiscoGAN (Kim et al. 2017): two U-Net generators, each image must come back after the round
    trip (the reconstruction loss), no identity loss; the paper's cross-entropy GAN loss and
    squared-error reconstruction with weight 1 by default."""

    kind: Literal["discogan"] = Field("discogan", description="the model kind (fixed)")

    ngf: int = Field(32, ge=4, le=256, description="generator width: channels of the U-Net's first layer")
    unet_depth: int = Field(5, ge=2, le=7, description="down-sampling levels of the U-Net (each halves the image)")
    lambda_cycle: float = Field(1.0, ge=0, description="weight of the reconstruction loss")
    reconstruction: Literal["mse", "l1"] = Field("mse", description="distance of the reconstruction loss")
    gan_loss: Literal["lsgan", "bce"] = Field("bce", description="adversarial loss (DiscoGAN's paper: cross-entropy)")

    @model_validator(mode="after")
    def _fits(self) -> "DiscoGANConfig":
        _unet_fits(self.image_size, self.unet_depth)
        return self


class UNITConfig(UnpairedConfig):
    """UNIT (Liu et al. 2017): two VAE encoders whose last layers are shared, two generators whose
    first layers are shared, so both domains meet in one latent space. Loss weights keep the
    paper's ratios (GAN 10, KL 0.1, reconstruction 100, cycle KL 0.1, cycle reconstruction 100),
    divided by 10."""

    kind: Literal["unit"] = Field("unit", description="the model kind (fixed)")

    ngf: int = Field(32, ge=4, le=256, description="width: channels of the encoders' first layer")
    n_res: int = Field(3, ge=1, le=8, description="residual blocks of each encoder and generator that are their own")
    n_shared: int = Field(1, ge=1, le=4, description="residual blocks shared by the two encoders (and by the two generators)")
    lambda_gan: float = Field(1.0, ge=0, description="weight of the adversarial losses")
    lambda_kl: float = Field(0.01, ge=0, description="weight of the KL term of each domain's VAE")
    lambda_rec: float = Field(10.0, ge=0, description="weight of each VAE's L1 reconstruction")
    lambda_cycle_kl: float = Field(0.01, ge=0, description="weight of the KL term of the cycle")
    lambda_cycle: float = Field(10.0, ge=0, description="weight of the cycle's L1 reconstruction")


class LineArtConfig(TranslationConfig):
    """The paired line-art model (pix2pix-style): each anime face and its own edge sketch are a
    pair; a U-Net colours the sketch, judged by a discriminator that sees sketch and face
    together, plus L1 to the real face. It reads thin lines at full size, not 28 px doodles."""

    kind: Literal["lineart"] = Field("lineart", description="the model kind (fixed)")

    raster_size: int = Field(64, ge=16, le=512, description="line drawings are drawn at this size, then resized")
    ngf: int = Field(32, ge=4, le=256, description="generator width: channels of the U-Net's first layer")
    unet_depth: int = Field(5, ge=2, le=7, description="down-sampling levels of the U-Net (each halves the image)")
    lambda_l1: float = Field(100.0, ge=0, description="weight of the L1 distance to the real face")
    line_diameter: float = Field(6.0, gt=0, le=32, description="pen width in the 256-unit drawing space (the thin pen)")
    padding: float = Field(4.0, ge=0, le=64, description="margin around the drawing, in the 256-unit drawing space")
    edge_keep: float = Field(0.07, gt=0, lt=0.5, description="share of each face's pixels its edge sketch keeps as ink")
    thicken: float = Field(0.3, ge=0, le=1, description="probability that a training sketch's lines are drawn thicker")
    anime_limit: int | None = Field(13400, ge=1, description="use only the first N anime faces (the rest are held out "
                                                             "for evaluation)")

    @model_validator(mode="after")
    def _fits(self) -> "LineArtConfig":
        _unet_fits(self.image_size, self.unet_depth)
        return self


#: The fixed held-out parts of the selfie2anime data: never trained on, used by every measure.
PHOTO_HOLDOUT_START = 1700   # face photos [1700, 1924): 224 held-out selfies
SELFIE_ANIME_HOLDOUT_START = 3000   # selfie2anime anime faces [3000, 3400): 400 held-out faces


class Selfie2AnimeConfig(TranslationConfig):
    """The selfie -> anime CycleGAN (the selfie2anime paper's model): photos of faces (A) and
    anime faces (B) at 128 px, ResNet generators with 9 blocks, PatchGAN, LSGAN loss, cycle and
    identity losses, the history pool, flips. Trains on photos [0, 1700) and anime faces
    [0, 3000); the rest is held out."""

    kind: Literal["selfie2anime"] = Field("selfie2anime", description="the model kind (fixed)")
    image_size: int = Field(128, ge=32, le=512, multiple_of=4, description="side of the images the networks see")
    ngf: int = Field(64, ge=4, le=256, description="generator width: channels of the generators' first layer")
    n_blocks: int = Field(9, ge=1, le=16, description="residual blocks in each generator")
    lambda_cycle: float = Field(10.0, ge=0, description="weight of the cycle-consistency loss")
    lambda_identity: float = Field(0.5, ge=0, description="weight of the identity loss, relative to lambda_cycle")
    pool_size: int = Field(50, ge=0, description="history of generated images shown to the discriminators")
    eval_count: int = Field(100, ge=0, description="held-out photos scored at each sample grid")
