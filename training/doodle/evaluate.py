"""How well a drawing model keeps the product's promise, measured on held-out real data only.

A drawing model is any ``Painter``: numpy_bitmaps (N, 28, 28) in, uint8 faces (N, S, S, 3) out.
Every figure is reported beside the same figure for real anime faces, so each reads as a ratio
to real data, and no single number is read alone:

- **realism**: Fréchet distances between the faces and held-out real anime faces, on pixels
  average-pooled to 4x4 and to 8x8 and on the substitute random-conv features (``randconv``);
  the same distances for a second set of held-out real faces give the floor (ratio 1), and
  random StyleGAN faces are measured in the same run by the caller as another row. Those
  distances hardly see fine texture (a face grown grainy or blotchy at 1-2 px), so beside them
  stands **texture**: the sliced Wasserstein distance of 7x7 patches of the faces' Laplacian
  bands at the full side and at half of it (``training.metrics.LaplacianSWD``), with the same
  floor.
- **diversity**: the mean L1 distance between the faces of different drawings, and the
  **colour spread**, the root of the total variance of the faces' mean colours; both as ratios
  to the same among real faces.
- **matching**: can a face be traced back to its own drawing? The face is turned into a sketch by
  a fixed edge detector (``training.data.edge_sketches``, which no drawing model trains on),
  blurred, and compared with every drawing of its group of ``group`` by cosine similarity;
  top-1 is the share of faces whose own drawing ranks first (chance: 1 / group). Measured at
  two scales: 28 px lightly blurred (``fine``, which a model that paints the strokes into the
  face as dark lines wins easily) and 7x7 (``coarse``: where the mass of the face's lines is).
- **controlled edits**: pairs of synthetic drawings that differ in one thing (eye size, mouth,
  hair strokes, face shape, tilt) must give faces that differ in that thing. For each edit:
  how much the face changes against how much it changes when the same drawing is drawn again
  by another hand (``change_ratio``; about 1 means the edit does nothing), and whether the face
  measurement that belongs to the edit (``measure.face_measures``: the roll for tilt, the skin
  region's height/width for a long face, its area for hair, the eye band's and the mouth's
  darkness) moved the expected way (``agreement``, the share of pairs). Each edit gets a grid.
- **follow**: on the real held-out doodles, the correlation of each drawing attribute, read by
  the evaluation's own reader (``measure.DoodleReader``, not any model's encoder), with its face
  measurement, and top-1 matching of faces to drawings in the space of those five pairs.

The splits are fixed: real doodles from ``QUICKDRAW_HOLDOUT_START`` (never trained on), and anime
faces from ``ANIME_HOLDOUT_START`` (``ANIME_REF`` faces as the reference set, then ``ANIME_CMP``
as the second real set). StyleGAN priors trained from now on leave those faces out
(``anime_limit``); a model trained on all faces (the first shipped StyleGAN) has seen them,
which the report says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.drawing import rasterize
from training.data import edge_sketches, load_anime_faces, load_quickdraw
from training.doodles import DoodleParams, draw_doodle, edited, sample_doodle_params
from training.doodle.measure import face_measures, follow_scores
from training.metrics import FeatureStats, LaplacianSWD, RandomConvFeatures, frechet_distance

#: Anime faces from this index on are held out for evaluation.
ANIME_HOLDOUT_START = 13400
ANIME_REF = 1000   # faces [13400, 14400): the reference set
ANIME_CMP = 400    # faces [14400, 14800): the second real set, the floor of every distance

Painter = Callable[[np.ndarray], np.ndarray]


def heldout_faces(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(reference, comparison) real anime faces, never trained on by priors that hold them out."""
    faces = load_anime_faces(Path(data_dir))[ANIME_HOLDOUT_START:]
    return faces[:ANIME_REF], faces[ANIME_REF:ANIME_REF + ANIME_CMP]


def heldout_doodles(data_dir: Path, count: int = 400) -> np.ndarray:
    return load_quickdraw(Path(data_dir), "holdout")[:count]


# ---------------------------------------------------------------------------------------------
# Realism and diversity.


def _pooled(images: np.ndarray, side: int) -> np.ndarray:
    x = images.astype(np.float64) / 127.5 - 1.0
    n, s = len(x), x.shape[1]
    k = s // side
    return x.reshape(n, side, k, side, k, 3).mean(axis=(2, 4)).reshape(n, -1)


@dataclass
class RealReference:
    """What every set of faces is compared with; computed once per evaluation run."""

    stats: dict[str, FeatureStats]
    floor: dict[str, float]          # the distance of the second real set: ratio 1
    diversity: float
    colour_spread: float
    texture: LaplacianSWD

    @classmethod
    def of(cls, reference: np.ndarray, comparison: np.ndarray) -> "RealReference":
        feats = _features(reference)
        stats = {k: FeatureStats.of(v) for k, v in feats.items()}
        cmp = _features(comparison)
        floor = {k: frechet_distance(FeatureStats.of(cmp[k]), stats[k]) for k in stats}
        texture = LaplacianSWD(reference)
        floor.update(_texture(texture, comparison))
        return cls(stats, floor, pairwise_l1(comparison), colour_spread(comparison), texture)


_RANDCONV = None


def _features(images: np.ndarray) -> dict[str, np.ndarray]:
    global _RANDCONV
    if _RANDCONV is None:
        _RANDCONV = RandomConvFeatures()
    return {"pixels4": _pooled(images, 4), "pixels8": _pooled(images, 8),
            "randconv": _RANDCONV.features(images, batch_size=100)}


def _texture(swd: LaplacianSWD, images: np.ndarray) -> dict[str, float]:
    """The Laplacian-patch SWD at the full side (``texture1``: 1-2 px detail) and at half of it
    (``texture2``)."""
    fine, coarse = swd.distances(images)
    return {"texture1": fine, "texture2": coarse}


def pairwise_l1(images: np.ndarray, max_pairs: int = 20000, seed: int = 0) -> float:
    """Mean L1 distance (pixels in [0, 1]) between different images, over random pairs."""
    x = images.reshape(len(images), -1).astype(np.int16)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), max_pairs)
    j = rng.integers(0, len(x), max_pairs)
    keep = i != j
    i, j = i[keep], j[keep]
    total = 0  # exact integer sums, a few hundred pairs at a time (no gigabyte of copies)
    for k in range(0, len(i), 256):
        total += int(np.abs(x[i[k:k + 256]] - x[j[k:k + 256]]).sum(dtype=np.int64))
    return total / (len(i) * x.shape[1] * 255.0)


def colour_spread(images: np.ndarray) -> float:
    """Root of the total variance of the images' mean colours (RGB in [0, 1])."""
    means = images.reshape(len(images), -1, 3).astype(np.float64).mean(axis=1) / 255.0
    return float(np.sqrt(np.trace(np.cov(means, rowvar=False))))


def realism_and_diversity(faces: np.ndarray, real: RealReference) -> dict[str, float]:
    feats = _features(faces)
    out: dict[str, float] = {}
    for k, f in feats.items():
        fd = frechet_distance(FeatureStats.of(f), real.stats[k])
        out[f"fd_{k}"] = fd
        out[f"fd_{k}_ratio"] = fd / real.floor[k]
    for k, d in _texture(real.texture, faces).items():
        out[f"swd_{k}"] = d
        out[f"swd_{k}_ratio"] = d / real.floor[k]
    out["diversity"] = pairwise_l1(faces)
    out["diversity_ratio"] = out["diversity"] / real.diversity
    out["colour_spread"] = colour_spread(faces)
    out["colour_spread_ratio"] = out["colour_spread"] / real.colour_spread
    return out


# ---------------------------------------------------------------------------------------------
# Matching faces back to their drawings.


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)]
    p = np.pad(x.astype(np.float64), pad, mode="constant")
    h, w = x.shape[-2:]
    rows = sum(k[i] * p[..., i:i + h, :] for i in range(2 * r + 1))
    return sum(k[i] * rows[..., :, i:i + w] for i in range(2 * r + 1))


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def face_sketches(faces: np.ndarray) -> np.ndarray:
    """The fixed edge sketch of each face (N, 28, 28) in [0, 1]."""
    return edge_sketches(faces, 28).astype(np.float64) / 255.0


def match_descriptors(maps: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 28, 28) ink maps in [0, 1] -> unit descriptors at the two scales."""
    fine = _blur(maps, 1.0)
    coarse = maps.reshape(len(maps), 7, 4, 7, 4).mean(axis=(2, 4))
    return {"fine": _unit(fine), "coarse": _unit(coarse)}


def matching(doodles: np.ndarray, faces: np.ndarray, group: int = 50) -> dict[str, float]:
    """Top-1 share of faces whose own drawing is the most similar in its group, per scale."""
    d = match_descriptors(doodles.astype(np.float64) / 255.0)
    f = match_descriptors(face_sketches(faces))
    out = {}
    n = (len(doodles) // group) * group
    for scale in d:
        hits = []
        for g in range(0, n, group):
            sim = f[scale][g:g + group] @ d[scale][g:g + group].T   # face i x drawing j
            hits.append(sim.argmax(axis=1) == np.arange(group))
        out[f"match_top1_{scale}"] = float(np.concatenate(hits).mean())
    out["match_chance"] = 1.0 / group
    return out


# ---------------------------------------------------------------------------------------------
# Controlled edits.

#: Each edit: a name, the two values of the parameters it changes (drawing A, drawing B), and
#: the face measurement (``measure.face_measures``) that should move, with the way it should go.
EDITS: dict[str, tuple[dict, dict, str, float]] = {
    "eyes small -> big": ({"eye_kind": "circle", "eye_size": 4.0}, {"eye_kind": "circle", "eye_size": 20.0}, "eye_dark", 1),
    "mouth smile -> open": ({"mouth_kind": "smile"}, {"mouth_kind": "open", "mouth_width": 0.55}, "mouth_dark", 1),
    "mouth smile -> frown": ({"mouth_kind": "smile"}, {"mouth_kind": "frown"}, "mouth_dark", -1),
    "hair none -> strokes": ({"hair": 0}, {"hair": 10, "hair_length": 35.0}, "skin_area", -1),
    "face round -> long": ({"aspect": 0.8}, {"aspect": 1.4}, "skin_aspect", 1),
    "tilt left -> right": ({"tilt": -0.35}, {"tilt": 0.35}, "roll", -1),
}


def edit_pairs(count: int = 16, seed: int = 0) -> dict[str, list[tuple[DoodleParams, DoodleParams]]]:
    """For every edit, ``count`` base doodles (real-like parameters with an outline, level, and
    of middling shape) in their A and B versions."""
    rng = np.random.default_rng(seed)
    bases = []
    for _ in range(count):
        p = sample_doodle_params(rng)
        bases.append(edited(p, outline=True, tilt=0.0, aspect=1.0, hair=0, eye_kind="circle", eye_size=9.0,
                            mouth_kind="smile", shear=0.0))
    return {name: [(edited(b, **a), edited(b, **bb)) for b in bases] for name, (a, bb, _, _) in EDITS.items()}


def draw(params: list[DoodleParams], seed: int) -> np.ndarray:
    """numpy_bitmaps of the drawings, each drawn by a hand seeded from ``seed`` and its index."""
    return np.stack([rasterize([s.tolist() for s in draw_doodle(p, np.random.default_rng((seed, i)))], 28)
                     for i, p in enumerate(params)])


def controlled_edits(paint: Painter, count: int = 16, seed: int = 0,
                     grid_dir: Path | None = None, label: str = "model") -> dict[str, dict[str, float]]:
    """Per edit: ``change_ratio`` (how much the face changes, against how much it changes when
    the same drawings are drawn again by another hand), the mean change of the edit's face
    measurement, and ``agreement``, the share of pairs whose measurement moved the expected way."""
    out = {}
    for name, pairs in edit_pairs(count, seed).items():
        _, _, measure, sign = EDITS[name]
        a_params, b_params = [p[0] for p in pairs], [p[1] for p in pairs]
        da, db = draw(a_params, seed), draw(b_params, seed)
        da_again = draw(a_params, seed + 1)   # the same drawings by another hand
        fa, fb, fa2 = paint(da), paint(db), paint(da_again)
        change = np.abs(fa.astype(np.float32) - fb).mean()
        noise = np.abs(fa.astype(np.float32) - fa2).mean()
        ma, mb = face_measures(fa)[measure], face_measures(fb)[measure]
        moved = sign * (mb - ma)
        out[name] = {"change": float(change / 255.0), "noise": float(noise / 255.0),
                     "change_ratio": float(change / max(noise, 1e-6)), "measure": measure,
                     "measure_change": float(np.mean(mb - ma)), "agreement": float(np.mean(moved > 0))}
        if grid_dir is not None:
            edit_grid(da, fa, db, fb, Path(grid_dir) / f"edit_{_slug(name)}_{_slug(label)}.png")
    return out


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_").replace("__", "_")


def _tile(bitmap: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(255 - bitmap).resize((size, size), Image.Resampling.BILINEAR)
    return np.repeat(np.asarray(im)[..., None], 3, axis=2)


def edit_grid(da, fa, db, fb, path: Path, rows: int = 6, size: int = 64) -> None:
    """Rows: drawing A, face A, drawing B, face B."""
    lines = []
    for i in range(min(rows, len(da))):
        faces = [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS)) for f in (fa[i], fb[i])]
        lines.append(np.concatenate([_tile(da[i], size), faces[0], _tile(db[i], size), faces[1]], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(lines, axis=0)).save(path)


def side_by_side(doodles: np.ndarray, rows: dict[str, np.ndarray], path: Path, count: int = 12, size: int = 64) -> None:
    """One column per drawing: the drawing, then each model's face for it."""
    lines = [np.concatenate([_tile(d, size) for d in doodles[:count]], axis=1)]
    for faces in rows.values():
        lines.append(np.concatenate([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                                     for f in faces[:count]], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(lines, axis=0)).save(path)


# ---------------------------------------------------------------------------------------------


def evaluate_faces(faces: np.ndarray, doodles: np.ndarray, real: RealReference,
                   readings: dict[str, np.ndarray] | None = None) -> dict:
    """Realism, diversity and both matchings of faces made for ``doodles`` (for faces made
    without them, random or real ones, the matchings are at chance by construction, which their
    rows show). ``readings``: the evaluation reader's attributes of the doodles."""
    out: dict = {**realism_and_diversity(faces, real), **matching(doodles, faces)}
    if readings is not None:
        out.update(follow_scores(readings, faces))
    return out
