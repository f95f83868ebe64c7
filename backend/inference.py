"""Sketch-to-anime inference with ONNX Runtime (no torch in this process).

``Ensemble`` loads every member of an exported model after checking its sha256 against the
manifest and creates one inference session per member, once. ``ModelStore`` holds the serving
ensemble behind a lock so a new one can replace it atomically: a request in flight keeps the
ensemble it started with.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.drawing import Drawing, rasterize
from core.manifest import ModelManifest
from core.preprocess import bitmap_to_input, output_to_images

log = logging.getLogger(__name__)

_dlls_preloaded = False


def _preload_cuda() -> None:
    """Let onnxruntime-gpu find CUDA and cuDNN from the nvidia-* wheels, when they are installed."""
    global _dlls_preloaded
    if _dlls_preloaded:
        return
    _dlls_preloaded = True
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - only a missing optional GPU runtime
            log.debug("no CUDA libraries to preload: %s", exc)


@functools.cache
def _cuda_driver() -> bool:
    """Whether the NVIDIA driver's CUDA library loads here (checked once per process)."""
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
        return True
    except OSError:
        log.info("no CUDA driver on this machine: ONNX Runtime runs on the CPU")
        return False


def session_providers(requested: list[str] | None) -> list[str]:
    """The execution providers to open a session with: those of ``requested`` (default CUDA, then
    CPU) that this ONNX Runtime build has, in order, CUDA's only where the driver loads, since
    without it ONNX Runtime logs an error for every session before falling back; at least CPU."""
    available = ort.get_available_providers()
    wanted = [p for p in (requested or ["CUDAExecutionProvider", "CPUExecutionProvider"]) if p in available]
    if "CUDAExecutionProvider" in wanted:
        if _cuda_driver():
            _preload_cuda()
        else:
            wanted.remove("CUDAExecutionProvider")
    return wanted or ["CPUExecutionProvider"]


@dataclass(frozen=True)
class MemberInfo:
    index: int
    label: str
    step: int | None


class Ensemble:
    """The members of one exported model, ready to run."""

    def __init__(self, folder: Path, providers: list[str], intra_op_threads: int = 0,
                 extra_folders: list[Path] | None = None):
        """``extra_folders``: other exported models whose members join this ensemble as more
        variations; they must read the same input (size, line width, padding)."""
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        self.manifest.verify(self.folder)  # refuses tampered or missing files
        files = [(self.folder / m.file, m.label, m.source.get("step")) for m in self.manifest.members]
        for extra in extra_folders or []:
            other = ModelManifest.load(Path(extra))
            other.verify(Path(extra))
            if other.input != self.manifest.input:
                raise ValueError(f"{extra} reads a different input ({other.input}) than {self.folder} "
                                 f"({self.manifest.input}); it cannot join the ensemble")
            files += [(Path(extra) / m.file, f"{other.name} v{other.version}: {m.label or 'variation'}",
                       m.source.get("step")) for m in other.members]
        wanted = session_providers(providers)
        opts = ort.SessionOptions()
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        opts.log_severity_level = 3  # a missing CUDA runtime is reported below, once, in plain words
        self.sessions = [
            ort.InferenceSession(str(path), sess_options=opts, providers=wanted) for path, _, _ in files
        ]
        self.providers = self.sessions[0].get_providers()
        if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in self.providers:
            log.info("CUDA execution provider unavailable here; running on the CPU")
        log.info("model %s v%s: %d members on %s", self.manifest.name, self.manifest.version,
                 len(self.sessions), self.providers[0])
        self.members = [MemberInfo(i, label or f"variation {i + 1}", step)
                        for i, (_, label, step) in enumerate(files)]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def image_size(self) -> int:
        return self.manifest.input.image_size

    def bitmap(self, drawing: Drawing) -> np.ndarray:
        """The numpy_bitmap this model reads for a drawing."""
        spec = self.manifest.input
        return rasterize(drawing, spec.raster_size, line_diameter=spec.line_diameter, padding=spec.padding)

    def translate(self, drawing: Drawing, members: list[int]) -> list[np.ndarray]:
        """Anime faces (uint8 HxWx3 at the model's size), one per requested member."""
        return [faces[0] for faces in self.translate_bitmaps(self.bitmap(drawing), members)]

    def translate_bitmaps(self, bitmaps: np.ndarray, members: list[int]) -> list[np.ndarray]:
        """numpy_bitmaps (N, H, W) to faces: one uint8 (N, S, S, 3) array per requested member."""
        x = bitmap_to_input(bitmaps, self.image_size)
        out = []
        for i in members:
            sess = self.sessions[i]
            out.append(output_to_images(sess.run(None, {sess.get_inputs()[0].name: x})[0]))
        return out


class ModelStore:
    """The ensemble that serves the drawing endpoint; swapped atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Ensemble | None = None
        self.error: str | None = None

    def get(self) -> Ensemble | None:
        with self._lock:
            return self._current

    def load(self, folder: Path, providers: list[str], intra_op_threads: int = 0,
             extra_folders: list[Path] | None = None) -> Ensemble:
        """Load and verify a model; only when that succeeds does it replace the current one."""
        ensemble = Ensemble(folder, providers, intra_op_threads, extra_folders)
        with self._lock:
            self._current = ensemble
            self.error = None
        return ensemble
