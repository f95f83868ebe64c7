"""Data for training: anime faces, real Quick, Draw! doodles, synthetic doodles, edge sketches.

Everything is read from the data folder (``Settings.data_dir``), never copied into the project.
Loaders return uint8 numpy arrays; ``SketchSource`` mixes the sketch kinds by weight, and every
draw takes an explicit ``numpy.random.Generator`` so a training step is reproducible from
(seed, step) alone.
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from core.configs.cyclegan import MixConfig
from core.drawing import rasterize

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
# Synthetic doodles: faces drawn as strokes, the way a kid draws them.


def _wobble(rng: np.random.Generator, n: int, amount: float) -> np.ndarray:
    """Smooth random deviation along a stroke: a few low-frequency sines."""
    t = np.linspace(0.0, 1.0, n)
    out = np.zeros(n)
    for k in range(1, 4):
        out += rng.normal(0, amount / k) * np.sin(2 * math.pi * k * t + rng.uniform(0, 2 * math.pi))
    return out


def _ellipse(rng, cx, cy, rx, ry, start, sweep, n, wobble) -> np.ndarray:
    a = start + np.linspace(0.0, sweep, n)
    r = 1.0 + _wobble(rng, n, wobble)
    return np.stack([cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)])


def synthetic_doodle(rng: np.random.Generator) -> list[np.ndarray]:
    """One face doodle as a list of (2, n) strokes in a 256-unit space (y grows downwards)."""
    strokes: list[np.ndarray] = []
    cx, cy = 128 + rng.normal(0, 6, 2)
    rx = rng.uniform(70, 110)
    ry = rx * rng.uniform(0.85, 1.2)
    has_outline = rng.random() > 0.05  # a few real smileys are only eyes and a mouth
    if has_outline:
        start = rng.uniform(0, 2 * math.pi)
        sweep = 2 * math.pi * rng.uniform(0.92, 1.08)
        if rng.random() < 0.2:  # drawn in two halves
            strokes.append(_ellipse(rng, cx, cy, rx, ry, start, sweep / 2, 40, 0.03))
            strokes.append(_ellipse(rng, cx, cy, rx, ry, start + sweep / 2, sweep / 2, 40, 0.03))
        else:
            strokes.append(_ellipse(rng, cx, cy, rx, ry, start, sweep, 80, 0.04))
    # Eyes.
    ey = cy - ry * rng.uniform(0.1, 0.4)
    ex = rx * rng.uniform(0.25, 0.45)
    eye_kind = rng.choice(["dot", "circle", "arc", "line"], p=[0.45, 0.3, 0.15, 0.1])
    er = rng.uniform(4, 16)
    for side in (-1, 1):
        x0 = cx + side * ex + rng.normal(0, 3)
        y0 = ey + rng.normal(0, 3)
        if eye_kind == "dot":
            strokes.append(np.array([[x0, x0 + rng.normal(0, 1.5)], [y0, y0 + rng.normal(0, 1.5)]]))
        elif eye_kind == "circle":
            strokes.append(_ellipse(rng, x0, y0, er, er * rng.uniform(0.8, 1.4), 0, 2 * math.pi, 16, 0.05))
        elif eye_kind == "arc":
            strokes.append(_ellipse(rng, x0, y0 + er / 2, er, er * 0.7, math.pi, math.pi, 10, 0.05))
        else:
            strokes.append(np.array([[x0, x0 + rng.normal(0, 2)], [y0 - er, y0 + er]]))
    if rng.random() < 0.25:  # eyebrows
        for side in (-1, 1):
            x0 = cx + side * ex
            y0 = ey - er - rng.uniform(6, 18)
            strokes.append(np.array([[x0 - 12, x0 + 12], [y0 + side * rng.normal(0, 3), y0 - side * rng.normal(0, 3)]]))
    if rng.random() < 0.35:  # nose
        ny = cy + ry * rng.uniform(0.0, 0.15)
        strokes.append(np.array([[cx, cx + rng.normal(0, 3), cx + rng.uniform(-8, 8)], [ny - 12, ny + 6, ny + 8]]))
    # Mouth.
    my = cy + ry * rng.uniform(0.3, 0.55)
    mw = rx * rng.uniform(0.3, 0.7)
    mouth_kind = rng.choice(["smile", "open", "line", "frown"], p=[0.65, 0.15, 0.1, 0.1])
    if mouth_kind == "smile":
        strokes.append(_ellipse(rng, cx, my - mw * 0.4, mw, mw * rng.uniform(0.4, 0.8), 0.15 * math.pi, 0.7 * math.pi, 20, 0.04))
    elif mouth_kind == "frown":
        strokes.append(_ellipse(rng, cx, my + mw * 0.3, mw * 0.8, mw * 0.4, 1.15 * math.pi, 0.7 * math.pi, 16, 0.04))
    elif mouth_kind == "open":
        arc = _ellipse(rng, cx, my - mw * 0.2, mw, mw * 0.7, 0.0, math.pi, 20, 0.04)
        strokes.append(np.concatenate([arc, arc[:, :1]], axis=1))
    else:
        strokes.append(np.array([[cx - mw, cx + mw], [my + rng.normal(0, 3), my + rng.normal(0, 3)]]))
    if has_outline and rng.random() < 0.5:  # hair: short strokes out of the top of the head
        n_hair = int(rng.integers(3, 12))
        for a in np.linspace(1.15 * math.pi, 1.85 * math.pi, n_hair) + rng.normal(0, 0.05, n_hair):
            x0, y0 = cx + rx * math.cos(a), cy + ry * math.sin(a)
            length = rng.uniform(15, 45)
            bend = rng.normal(0, 0.3)
            strokes.append(np.array([[x0, x0 + length * math.cos(a + bend)], [y0, y0 + length * math.sin(a + bend)]]))
    if has_outline and rng.random() < 0.15:  # ears
        for side in (-1, 1):
            strokes.append(_ellipse(rng, cx + side * rx * 1.02, cy, 12, 20, -math.pi / 2 if side > 0 else math.pi / 2, math.pi, 10, 0.05))
    # Whole-drawing jitter: small rotation and shear, then hand tremor on every point.
    theta = rng.normal(0, 0.08)
    shear = rng.normal(0, 0.05)
    m = np.array([[math.cos(theta), -math.sin(theta) + shear], [math.sin(theta), math.cos(theta)]])
    centre = np.array([[cx], [cy]])
    return [m @ (s - centre) + centre + rng.normal(0, 1.0, s.shape) for s in strokes]


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
