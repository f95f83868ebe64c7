"""The sketch->anime CycleGAN's configuration: pydantic models with no torch import, so the API can
validate a job before it is queued. Written as JSON beside every checkpoint and export."""

from __future__ import annotations

from pydantic import Field

from core.configs.translation import MixConfig, UnpairedConfig

__all__ = ["CycleGANConfig", "MixConfig"]


class CycleGANConfig(UnpairedConfig):
    """Everything that determines a CycleGAN run; written as JSON beside every checkpoint."""

    ngf: int = Field(32, ge=4, le=256, description="generator width: channels of the generators' first layer")
    n_blocks: int = Field(6, ge=1, le=16, description="residual blocks in each generator")
    lambda_cycle: float = Field(10.0, ge=0, description="weight of the cycle-consistency loss")
    lambda_identity: float = Field(0.5, ge=0, description="weight of the identity loss, relative to lambda_cycle")
