"""The anime upscaler's configuration (no torch): its network, what it learns from and how long.
Written as JSON beside every checkpoint and export."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The selfie2anime anime faces [0, 3000) train (``SELFIE_ANIME_HOLDOUT_START``: [3000, 3400) are
#: held out, shared with the photo evaluation); the 64 px anime faces [0, 13400) train and
#: [13400, end) are held out, as the drawing evaluation's.
FACES64_HOLDOUT_START = 13400


class UpscalerConfig(BaseModel):
    """A small CNN that doubles a face's side, trained on real anime faces made smaller and
    spoiled the ways our generators' faces are (blur, noise, JPEG), with L1 on the pixels and on
    their gradients (clean lines without invented texture)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["upscaler"] = Field("upscaler", description="an anime-face upscaler (2x)",
                                      json_schema_extra={"enum": ["upscaler"], "readOnly": True})
    channels: int = Field(24, ge=4, le=128, description="channels of every convolution")
    blocks: int = Field(5, ge=2, le=16, description="convolutions, the first and last included")
    steps: int = Field(12000, ge=1, description="optimiser steps")
    batch_size: int = Field(32, ge=1, le=256, description="pairs per step")
    patch: int = Field(64, ge=16, le=128, description="side of the large picture of a training pair")
    lr: float = Field(2e-3, gt=0, le=1, description="learning rate (Adam), lowered to a tenth along a cosine")
    edge_weight: float = Field(0.5, ge=0, le=10, description="weight of the L1 of the pictures' gradients")
    pairs: int = Field(24000, ge=64, le=1_000_000, description="training pairs drawn once, half from each face set")
    blur: float = Field(0.5, ge=0, le=1, description="share of pairs blurred before they are made smaller")
    noise: float = Field(0.5, ge=0, le=1, description="share of pairs with pixel noise")
    jpeg: float = Field(0.4, ge=0, le=1, description="share of pairs saved as JPEG")
    grain: float = Field(0.5, ge=0, le=1, description="share of pairs with grain like the StyleGAN prior's: blotchy "
                                                      "noise, 2-3 pixels across, that the network learns to remove "
                                                      "rather than sharpen")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the pairs drawn, the initial weights and the batches")
    log_every: int = Field(50, ge=1, description="steps between lines of loss_log.jsonl")
    checkpoint_every: int = Field(1000, ge=1, description="steps between checkpoints")
