"""Does a face have what a face needs? The exported face check, in ONNX Runtime (no torch).

A face check (``training.face_check``) is a small CNN that gives, for a face picture, the
probability that each part a face must have is there: the left eye, the right eye, the mouth.
A face passes when every part is at least the threshold written in its manifest. The drawing
model runs it on every face before it is returned and shrinks the drawing's moves for a face
that fails (``core.doodle_model``): a walk pushed too far turns a head into a smear with no eyes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.manifest import FaceCheckSpec, FaceInput, ModelIntegrityError, ModelManifest
from core.runtime import open_session

KIND = "face-check"


class FaceCheck:
    """An exported face check, verified against its manifest, ready to run."""

    def __init__(self, folder: Path, providers: list[str] | None = None, threads: int = 0):
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        if self.manifest.kind != KIND or self.manifest.face_check is None or not isinstance(self.manifest.input, FaceInput):
            raise ModelIntegrityError(f"{self.folder} is not a face check (its manifest's kind is {self.manifest.kind!r})")
        self.manifest.verify(self.folder)
        self.spec: FaceCheckSpec = self.manifest.face_check
        self.image_size = self.manifest.input.image_size
        self.session = open_session(self.folder / self.manifest.graphs()[0].file, providers, threads)
        self._input = self.session.get_inputs()[0].name

    @property
    def parts(self) -> list[str]:
        return self.spec.parts

    def scores(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, S, S, 3) -> the probability of each part (N, len(parts))."""
        faces = np.asarray(faces)
        if faces.shape[1] != self.image_size:
            faces = np.stack([np.asarray(Image.fromarray(f).resize((self.image_size,) * 2, Image.Resampling.LANCZOS))
                              for f in faces])
        x = np.ascontiguousarray(faces.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)
        return self.session.run(None, {self._input: x})[0]

    def passes(self, faces: np.ndarray) -> np.ndarray:
        """Whether each face (N, S, S, 3) has every part: bool (N,)."""
        return (self.scores(faces) >= self.spec.threshold).all(axis=1)
