"""Faces at the size people see them: the exported anime upscaler, in ONNX Runtime (no torch).

Every face the product makes is small (64 px from the StyleGAN prior and the drawing models,
128 px from the photo model). Shown at 256-600 px, a Lanczos enlargement is blurry and blocky. The
upscaler (``training.upscale``) doubles a face's side; ``Upscaler.resize`` runs it as often as a
size asks (64 -> 128 -> 256 ...), and Lanczos does only the last step to a size that is not the
face's side times a power of two (and any shrinking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.manifest import FaceInput, ModelIntegrityError, ModelManifest
from core.runtime import open_session

KIND = "anime-upscaler"
#: Runs of the graph one call does at most (64 px -> 512 px).
MAX_PASSES = 3


class Upscaler:
    """An exported upscaler, verified against its manifest, ready to run."""

    def __init__(self, folder: Path, providers: list[str] | None = None, threads: int = 0):
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        if self.manifest.kind != KIND or self.manifest.upscale is None or not isinstance(self.manifest.input, FaceInput):
            raise ModelIntegrityError(f"{self.folder} is not an upscaler (its manifest's kind is {self.manifest.kind!r})")
        self.manifest.verify(self.folder)
        self.scale = self.manifest.upscale.scale
        self.session = open_session(self.folder / self.manifest.graphs()[0].file, providers, threads)
        self._input = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return self.manifest.name

    def enlarge(self, faces: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> uint8 (N, scale S, scale S, 3): one run of the graph."""
        x = np.ascontiguousarray(np.asarray(faces).transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0
        y = self.session.run(None, {self._input: x})[0]
        return np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)

    def passes(self, side: int, size: int) -> int:
        """How many runs a face of ``side`` takes towards ``size``: as many as keep it at most
        ``size`` (the rest is Lanczos), ``MAX_PASSES`` at most."""
        n = 0
        while n < MAX_PASSES and side * self.scale ** (n + 1) <= size:
            n += 1
        return n

    def resize(self, faces: np.ndarray, size: int) -> list[Image.Image]:
        """uint8 faces (N, S, S, 3) as pictures of ``size`` x ``size``."""
        faces = np.asarray(faces)
        for _ in range(self.passes(faces.shape[1], size)):
            faces = self.enlarge(faces)
        pictures = [Image.fromarray(f) for f in faces]
        if faces.shape[1] != size:
            pictures = [p.resize((size, size), Image.Resampling.LANCZOS) for p in pictures]
        return pictures


def lanczos(faces: np.ndarray, size: int) -> list[Image.Image]:
    """What serves without an upscaler: Lanczos all the way."""
    return [Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS) for f in np.asarray(faces)]
