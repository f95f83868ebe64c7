"""Data for training: anime faces, real Quick, Draw! doodles, synthetic doodles, edge sketches.

Everything is read from the data folder (``Settings.data_dir``), never copied into the project.
Loaders return uint8 numpy arrays; ``SketchSource`` mixes the sketch kinds by weight, and every
draw takes an explicit ``numpy.random.Generator`` so a training step is reproducible from
(seed, step) alone.
"""

from __future__ import annotations

import io
import logging
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from core.configs.cyclegan import MixConfig
from core.drawing import rasterize
from training.doodles import synthetic_doodle

log = logging.getLogger(__name__)

ANIME_ZIP = Path("anime_faces_64") / "anime_faces_64.zip"
QUICKDRAW_NPY = Path("quickdraw_smiley_face") / "smiley_face_28x28.npy"

#: Real doodles from this index on are held out: training never sees them.
QUICKDRAW_HOLDOUT_START = 3600


class DataError(RuntimeError):
    """A data file is missing or malformed; the message says which and where."""


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(
            f"data file not found: {path}. Set D2A_DATA_DIR to the folder that holds the data sets."
        )
    return path


def zip_image_names(zf: zipfile.ZipFile) -> list[str]:
    """The image entries of a zip, sorted by name: the order ``load_image_zip`` decodes them in."""
    return sorted(
        n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")) and "__MACOSX" not in n
    )


@lru_cache(maxsize=4)
def load_image_zip(path: Path, size: int | None = None, limit: int | None = None) -> np.ndarray:
    """Decode every image in a zip (sorted by name) to uint8 RGB, shape (N, S, S, 3)."""
    _require(path)
    images = []
    with zipfile.ZipFile(path) as zf:
        names = zip_image_names(zf)
        if limit is not None:
            names = names[:limit]
        for name in names:
            with Image.open(io.BytesIO(zf.read(name))) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.LANCZOS)
                images.append(np.asarray(im))
    if not images:
        raise DataError(f"no images in {path}")
    sizes = {im.shape for im in images}
    if len(sizes) != 1:
        raise DataError(f"images in {path} differ in size ({sorted(sizes)}); pass size=")
    return np.stack(images)


def load_anime_faces(data_dir: Path, size: int = 64, limit: int | None = None) -> np.ndarray:
    return load_image_zip(Path(data_dir) / ANIME_ZIP, size, limit)


def load_anime(data_dir: Path, source: Path | None, size: int, limit: int | None = None) -> np.ndarray:
    """The anime side of a training run: an uploaded image zip when given, else the data
    folder's anime faces."""
    if source is not None:
        return load_image_zip(Path(source), size, limit)
    return load_anime_faces(data_dir, size, limit)


def load_quickdraw(data_dir: Path, split: str = "train") -> np.ndarray:
    """Quick, Draw! "smiley face" numpy_bitmaps, shape (N, 28, 28), ink 255 on 0.

    ``split`` is "train" (the first 3,600), "holdout" (the last 400) or "all".
    """
    path = _require(Path(data_dir) / QUICKDRAW_NPY)
    arr = np.load(path)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 784:
        raise DataError(f"{path}: expected uint8 (N, 784), got {arr.dtype} {arr.shape}")
    arr = arr.reshape(-1, 28, 28)
    if split == "train":
        return arr[:QUICKDRAW_HOLDOUT_START]
    if split == "holdout":
        return arr[QUICKDRAW_HOLDOUT_START:]
    if split == "all":
        return arr
    raise ValueError(f"unknown split {split!r}; valid: train, holdout, all")


# ---------------------------------------------------------------------------------------------
# Doodles as the canvas sends them, and as the models read them.


def doodle_to_raw(strokes: list[np.ndarray], rng: np.random.Generator | None = None) -> list[list[list[float]]]:
    """Strokes as Quick, Draw! raw format lists ``[[x...], [y...], [t...]]`` (what the canvas sends)."""
    t = 0.0
    out = []
    for s in strokes:
        n = s.shape[1]
        times = t + np.arange(n) * 16.0
        t = float(times[-1]) + (rng.uniform(150, 400) if rng is not None else 250.0)
        out.append([s[0].round(1).tolist(), s[1].round(1).tolist(), times.tolist()])
    return out


def render_doodle(strokes: list[np.ndarray], size: int = 28) -> np.ndarray:
    return rasterize([s.tolist() for s in strokes], size)


# ---------------------------------------------------------------------------------------------
# Edge sketches of anime faces (the Avatar Artist paper's first experiment).


def _conv2(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size 2-D correlation over the last two axes, edge-padded."""
    kh, kw = kernel.shape
    p = np.pad(img, [(0, 0)] * (img.ndim - 2) + [(kh // 2, kh // 2), (kw // 2, kw // 2)], mode="edge")
    out = np.zeros_like(img, dtype=np.float32)
    h, w = img.shape[-2:]
    for i in range(kh):
        for j in range(kw):
            out += kernel[i, j] * p[..., i : i + h, j : j + w]
    return out


def edge_sketches(faces: np.ndarray, size: int = 28, keep: float = 0.07) -> np.ndarray:
    """Canny-style edge maps of RGB faces (N, S, S, 3) as numpy_bitmaps (N, size, size).

    Gaussian blur, Sobel gradients, non-maximum suppression across the gradient direction, and
    a per-image threshold that keeps the strongest ``keep`` fraction of pixels as ink; then the
    map is thickened a little and shrunk to ``size`` so its lines look like doodle strokes.
    """
    gray = faces.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    g = np.array([1, 4, 6, 4, 1], dtype=np.float32)
    gray = _conv2(gray, np.outer(g, g) / 256.0)
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
    gx, gy = _conv2(gray, sx), _conv2(gray, sx.T)
    mag = np.hypot(gx, gy)
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    # Neighbours along the gradient direction, quantised to 0, 45, 90, 135 degrees.
    pad = np.pad(mag, [(0, 0), (1, 1), (1, 1)])
    h, w = mag.shape[-2:]

    def shifted(dy, dx):
        return pad[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    q = np.round(angle / 45.0).astype(int) % 4
    offsets = {0: (0, 1), 1: (1, 1), 2: (1, 0), 3: (1, -1)}
    is_max = np.zeros_like(mag, dtype=bool)
    for k, (dy, dx) in offsets.items():
        sel = q == k
        is_max |= sel & (mag >= shifted(dy, dx)) & (mag >= shifted(-dy, -dx))
    thin = np.where(is_max, mag, 0.0)
    thresh = np.quantile(thin.reshape(len(thin), -1), 1.0 - keep, axis=1)[:, None, None]
    edges = (thin > np.maximum(thresh, 1e-6)).astype(np.float32)
    edges = np.maximum(edges, _conv2(edges, np.ones((2, 2), np.float32) / 2.0).clip(0, 1))
    out = np.empty((len(edges), size, size), dtype=np.uint8)
    for i, e in enumerate(edges):
        im = Image.fromarray((e * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BOX)
        a = np.asarray(im).astype(np.float32)
        out[i] = np.clip(a * (255.0 / max(a.max(), 1.0)) * 1.3, 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------


class SketchSource:
    """Draws sketch-domain bitmaps (28 px numpy_bitmaps) from a weighted mix of kinds."""

    def __init__(self, mix: MixConfig, quickdraw: np.ndarray | None, edges: np.ndarray | None,
                 raster_size: int = 28):
        self.p = np.asarray(mix.probabilities())
        if self.p[0] > 0 and (quickdraw is None or len(quickdraw) == 0):
            raise DataError("the sketch mix asks for Quick, Draw! doodles but none were loaded")
        if self.p[2] > 0 and (edges is None or len(edges) == 0):
            raise DataError("the sketch mix asks for edge sketches but none were made")
        self.quickdraw = quickdraw
        self.edges = edges
        self.raster_size = raster_size

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        kinds = rng.choice(3, size=n, p=self.p)
        out = np.empty((n, self.raster_size, self.raster_size), dtype=np.uint8)
        for i, k in enumerate(kinds):
            if k == 0:
                out[i] = self.quickdraw[rng.integers(len(self.quickdraw))]
            elif k == 1:
                out[i] = render_doodle(synthetic_doodle(rng), self.raster_size)
            else:
                out[i] = self.edges[rng.integers(len(self.edges))]
        return out
