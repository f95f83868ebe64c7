"""The exported models at work, with ONNX Runtime (no torch): what the API serves, what the
worker samples and what training evaluates and draws figures from all run through here.

- ``session_providers`` / ``open_session``: one choice of execution providers for every session
  (CUDA only where the NVIDIA driver loads, else the CPU, without an error per session).
- ``Ensemble``: a sketch->anime model's members, each a variation of the face for a drawing.
- ``FaceModel``: an exported StyleGAN (mapping z -> w, synthesis ws -> image) with truncation,
  style mixing and interpolation done between the two graphs in numpy, as in StyleGAN:
  ``w' = w_avg + psi * (w - w_avg)``; a mixed face takes one face's w for some style inputs and
  another's for the rest. A seed's z is drawn with numpy's ``RandomState(seed)``.

Every model's files are checked against their manifest's sha256 before a session is opened.
"""

from __future__ import annotations

import ctypes
import functools
import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
from PIL import Image

from core.drawing import Drawing, rasterize
from core.faces import LAYER_GROUPS, FacesIn, InterpolateIn, MixIn, SampleIn
from core.manifest import ModelManifest
from core.preprocess import bitmap_to_input, output_to_images

log = logging.getLogger(__name__)


# -- execution providers -----------------------------------------------------------------------

@functools.cache
def _preload_cuda() -> None:
    """Let onnxruntime-gpu find CUDA and cuDNN from the nvidia-* wheels, when they are installed."""
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


def open_session(path: Path, providers: list[str] | None, threads: int = 0) -> ort.InferenceSession:
    """An inference session on ``session_providers(providers)``; ``threads`` 0 lets ONNX Runtime decide."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3  # a missing CUDA runtime is reported once, in plain words, not per session
    return ort.InferenceSession(str(path), sess_options=opts, providers=session_providers(providers))


# -- sketch -> anime ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MemberInfo:
    index: int
    label: str
    step: int | None


class DrawingModel(Protocol):
    """What serves the drawing endpoint: a CycleGAN ``Ensemble`` or a doodle encoder on the
    StyleGAN prior (``core.doodle_model.DoodleFaceModel``). ``controls`` names the keyword
    arguments its ``translate`` takes beyond the drawing and the members (a seed for new colours,
    how closely to follow the drawing)."""

    folder: Path
    manifest: ModelManifest
    members: list[MemberInfo]
    providers: list[str]
    controls: tuple[str, ...]

    @property
    def name(self) -> str: ...

    @property
    def image_size(self) -> int: ...

    def translate(self, drawing: Drawing, members: list[int], **controls: Any) -> list[np.ndarray]: ...


def open_drawing_model(folder: Path, providers: list[str] | None, threads: int = 0, *,
                       extra_folders: list[Path] | None = None, models_dir: Path | None = None) -> DrawingModel:
    """The serving runtime of the model in ``folder``: its manifest's kind names it in the
    registry of model kinds. ``extra_folders`` (more ensemble members) only for an ensemble;
    ``models_dir``: where a model built on another one (a doodle encoder's prior) finds it."""
    from core.kinds import UnknownKind, kind_of_manifest

    folder = Path(folder)
    manifest = ModelManifest.load(folder)
    try:
        kind = kind_of_manifest(manifest.kind)
    except UnknownKind as exc:
        raise ValueError(f"{folder}: {exc}") from None
    if not kind.serves_drawings or kind.runtime is None:
        raise ValueError(f"{folder} holds a {kind.name} model, which does not turn drawings into faces")
    runtime = kind.runtime.load()
    if runtime is Ensemble:
        return Ensemble(folder, providers, threads, extra_folders)
    if extra_folders:
        raise ValueError(f"{manifest.name} is not an ensemble: other versions cannot join it")
    return runtime(folder, providers, threads, models_dir=models_dir)


class Ensemble:
    """The members of one exported sketch->anime model, ready to run."""

    controls: tuple[str, ...] = ()

    def __init__(self, folder: Path, providers: list[str], intra_op_threads: int = 0,
                 extra_folders: list[Path] | None = None):
        """``extra_folders``: other exported models whose members join this ensemble as more
        variations; they must read the same input (size, line width, padding)."""
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        self.manifest.verify(self.folder)  # refuses tampered or missing files
        files = [(self.folder / m.file, m.label, m.source.get("step")) for m in self.manifest.graphs()]
        for extra in extra_folders or []:
            other = ModelManifest.load(Path(extra))
            other.verify(Path(extra))
            if other.input != self.manifest.input:
                raise ValueError(f"{extra} reads a different input ({other.input}) than {self.folder} "
                                 f"({self.manifest.input}); it cannot join the ensemble")
            files += [(Path(extra) / m.file, f"{other.name} v{other.version}: {m.label or 'variation'}",
                       m.source.get("step")) for m in other.graphs()]
        self.sessions = [open_session(path, providers, intra_op_threads) for path, _, _ in files]
        self.providers = self.sessions[0].get_providers()
        if "CUDAExecutionProvider" in session_providers(providers) and "CUDAExecutionProvider" not in self.providers:
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

    def translate(self, drawing: Drawing, members: list[int], **controls: Any) -> list[np.ndarray]:
        """Anime faces (uint8 HxWx3 at the model's size), one per requested member. An ensemble
        takes no controls: its members are its variations."""
        if controls:
            raise ValueError(f"{self.name} takes no {', '.join(sorted(controls))}")
        return [faces[0] for faces in self.translate_bitmaps(self.bitmap(drawing), members)]

    def translate_bitmaps(self, bitmaps: np.ndarray, members: list[int]) -> list[np.ndarray]:
        """numpy_bitmaps (N, H, W) to faces: one uint8 (N, S, S, 3) array per requested member."""
        x = bitmap_to_input(bitmaps, self.image_size)
        out = []
        for i in members:
            sess = self.sessions[i]
            out.append(output_to_images(sess.run(None, {sess.get_inputs()[0].name: x})[0]))
        return out


# -- random faces ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleSpec:
    z_dim: int
    w_dim: int
    num_ws: int
    w_avg: np.ndarray
    image_size: int


class FaceModel:
    """An exported StyleGAN, verified against its manifest, ready to sample."""

    def __init__(self, folder: Path, providers: list[str] | None = None, threads: int = 0):
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        self.manifest.verify(self.folder)
        style = self.manifest.stylegan
        if style is None:
            raise ValueError(f"{self.folder} is not a StyleGAN export (its manifest has no stylegan block)")
        self.spec = StyleSpec(z_dim=style.z_dim, w_dim=style.w_dim, num_ws=style.num_ws,
                              w_avg=np.asarray(style.w_avg, np.float32), image_size=self.manifest.output.image_size)
        files = {m.label or m.file: self.folder / m.file for m in self.manifest.members}
        self.mapping = open_session(files[style.mapping], providers, threads)
        self.synthesis = open_session(files[style.synthesis], providers, threads)
        self.providers = self.synthesis.get_providers()

    # -- the steps -----------------------------------------------------------------------------

    def z(self, seeds: list[int]) -> np.ndarray:
        return np.stack([np.random.RandomState(s).randn(self.spec.z_dim) for s in seeds]).astype(np.float32)

    def w(self, seeds: list[int], psi: float) -> np.ndarray:
        """(N, w_dim) mapped and truncated."""
        z = self.z(seeds)
        w = self.mapping.run(None, {self.mapping.get_inputs()[0].name: z})[0]
        return self.spec.w_avg + psi * (w - self.spec.w_avg)

    def arrays(self, ws: np.ndarray, batch: int = 100) -> np.ndarray:
        """(N, num_ws, w_dim) -> uint8 faces (N, S, S, 3), drawn ``batch`` at a time."""
        out = []
        for i in range(0, len(ws), batch):
            y = self.synthesis.run(None, {self.synthesis.get_inputs()[0].name: ws[i:i + batch].astype(np.float32)})[0]
            out.append(np.clip((y.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8))
        return np.concatenate(out)

    def images(self, ws: np.ndarray) -> list[Image.Image]:
        """(N, num_ws, w_dim) -> PIL images."""
        return [Image.fromarray(p) for p in self.arrays(ws, batch=max(1, len(ws)))]

    def broadcast(self, w: np.ndarray) -> np.ndarray:
        return np.repeat(w[:, None, :], self.spec.num_ws, axis=1)

    def layer_range(self, layers: str | list[int] | tuple[int, int]) -> tuple[int, int]:
        """[first, last) style inputs for a group name or an explicit [first, last] pair."""
        n = self.spec.num_ws
        if isinstance(layers, str):
            lo, hi = LAYER_GROUPS[layers]
            first, last = int(round(lo * n)), int(round(hi * n))
            return first, max(last, first + 1)
        first, last = int(layers[0]), int(layers[1])
        if not 0 <= first <= last < n:
            raise ValueError(f"layers [{first}, {last}] are outside 0..{n - 1}")
        return first, last + 1

    # -- the pictures ----------------------------------------------------------------------------

    #: The upscaler (``core.upscale.Upscaler``) that enlarges the faces to a size asked for; None:
    #: Lanczos. Set by whoever serves the pictures (the sampling worker).
    upscaler = None

    def sized(self, ws: np.ndarray, size: int) -> list[Image.Image]:
        """The faces of styles (N, num_ws, w_dim) as pictures of ``size``, enlarged by the upscaler
        where one is set."""
        faces = self.arrays(ws, batch=max(1, len(ws)))
        if self.upscaler is not None:
            return self.upscaler.resize(faces, size)
        return [Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS) for f in faces]

    def faces(self, seeds: list[int], psi: float, size: int) -> Image.Image:
        return _row(self.sized(self.broadcast(self.w(seeds, psi)), size), size)

    def mix(self, row_seeds: list[int], col_seeds: list[int], layers, psi: float, size: int) -> Image.Image:
        """A grid as in StyleGAN's figure: top row the column faces, left column the row faces,
        and inside, each column face with the chosen style inputs taken from the row face."""
        first, last = self.layer_range(layers)
        w_rows, w_cols = self.w(row_seeds, psi), self.w(col_seeds, psi)
        cols = self.sized(self.broadcast(w_cols), size)
        rows = self.sized(self.broadcast(w_rows), size)
        grid = Image.new("RGB", ((len(col_seeds) + 1) * size, (len(row_seeds) + 1) * size), "white")
        for j, im in enumerate(cols):
            grid.paste(im, ((j + 1) * size, 0))
        for i, im in enumerate(rows):
            grid.paste(im, (0, (i + 1) * size))
            ws = self.broadcast(w_cols).copy()
            ws[:, first:last, :] = w_rows[i]
            for j, mixed in enumerate(self.sized(ws, size)):
                grid.paste(mixed, ((j + 1) * size, (i + 1) * size))
        return grid

    def interpolate(self, seed_a: int, seed_b: int, frames: int, psi: float, size: int) -> list[Image.Image]:
        """Frames along the straight line between the two faces' w (w space is the smooth one)."""
        wa, wb = self.w([seed_a, seed_b], psi)
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
        return self.sized(self.broadcast(wa[None] * (1 - t) + wb[None] * t), size)

    def render(self, request: SampleIn) -> tuple[bytes, str]:
        """The picture a request asks for, encoded: (bytes, media type)."""
        buf = io.BytesIO()
        match request:
            case FacesIn():
                self.faces(request.seeds, request.psi, request.size).save(buf, "PNG")
            case MixIn():
                self.mix(request.row_seeds, request.col_seeds, request.layers, request.psi, request.size).save(buf, "PNG")
            case InterpolateIn(format="strip"):
                frames = self.interpolate(request.seed_a, request.seed_b, request.frames, request.psi, request.size)
                _row(frames, request.size).save(buf, "PNG")
            case InterpolateIn():
                frames = self.interpolate(request.seed_a, request.seed_b, request.frames, request.psi, request.size)
                loop = frames + frames[-2:0:-1]  # there and back again
                loop[0].save(buf, "GIF", save_all=True, append_images=loop[1:], duration=120, loop=0)
                return buf.getvalue(), "image/gif"
            case _:
                raise TypeError(f"not a sample request: {type(request).__name__}")
        return buf.getvalue(), "image/png"


def _row(images: list[Image.Image], size: int) -> Image.Image:
    strip = Image.new("RGB", (size * len(images), size))
    for k, im in enumerate(images):
        strip.paste(im, (k * size, 0))
    return strip
