"""The sketch->anime CycleGAN's configuration: pydantic models with no torch import, so the API can
validate a job before it is queued. Written as JSON beside every checkpoint and export."""

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


class CycleGANConfig(BaseModel):
    """Everything that determines a CycleGAN run; written as JSON beside every checkpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: int = Field(64, ge=24, le=512, multiple_of=4,
                            description="side of the images the networks see (a multiple of 4: the generator halves it twice)")
    raster_size: int = Field(28, ge=16, le=512, description="sketches are drawn at this size, then resized")
    ngf: int = Field(32, ge=4, le=256, description="generator width: channels of the generators' first layer")
    ndf: int = Field(64, ge=4, le=256, description="discriminator width: channels of the discriminators' first layer")
    n_blocks: int = Field(6, ge=1, le=16, description="residual blocks in each generator")
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
    lambda_cycle: float = Field(10.0, ge=0, description="weight of the cycle-consistency loss")
    lambda_identity: float = Field(0.5, ge=0, description="weight of the identity loss, relative to lambda_cycle")
    pool_size: int = Field(50, ge=0, description="history of generated images shown to the discriminators")
    flip: bool = Field(True, description="random horizontal flips, both domains")
    sharpness: float = Field(0.0, ge=0, le=1, description="probability of a random sharpness change (factor 0.5..2)")
    fuzzy_labels: bool = Field(False, description="discriminator targets 0.9 / 0.1 instead of 1 / 0")
    minibatch_discrimination: bool = Field(
        False, description="discriminators also see the batch's feature spread (needs batch_size > 1)")
    mix: MixConfig = Field(MixConfig(), description="relative weights of what the sketch side is made of")
    anime_limit: int | None = Field(None, ge=1, description="use only the first N anime faces (empty: all)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the weights and every random draw: same seed, same run")
    log_every: int = Field(50, ge=1, description="steps between lines of loss_log.jsonl")
    sample_every: int = Field(1000, ge=1, description="steps between sample grids (and held-out metrics)")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints; a retry resumes from the last one")
    snapshot_every: int = Field(0, ge=0, description="steps between snapshots of the sketch->anime generator (0: never)")
    eval_count: int = Field(200, ge=0, description="held-out doodles scored at each sample grid")

    @model_validator(mode="after")
    def _check(self) -> "CycleGANConfig":
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
