"""The one channel through which a training loop reports: the CLI draws a progress bar from it,
the job queue writes it into the job record. A callback may raise ``TrainingCancelled`` to stop
the loop cleanly after the current step (the checkpoint is written first)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class TrainingCancelled(Exception):
    """Raised by a progress callback to stop training cooperatively."""


@dataclass(frozen=True)
class Progress:
    step: int                      # steps done so far
    total_steps: int
    epoch: float                   # passes over the target domain so far
    elapsed_s: float               # wall time spent training, over all resumptions
    eta_s: float | None            # estimated seconds left
    losses: dict[str, float] = field(default_factory=dict)  # latest averaged losses
    sample_path: Path | None = None      # a sample grid written at this step
    checkpoint_path: Path | None = None  # a checkpoint written at this step
    metrics: dict[str, float] = field(default_factory=dict)  # held-out metrics at this step

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


ProgressCallback = Callable[[Progress], None]
