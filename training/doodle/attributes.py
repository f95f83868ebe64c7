"""What a doodle holds, as numbers a network can learn to read off a bitmap.

Synthetic doodles are drawn from known ``DoodleParams``, so their attributes are known exactly;
the encoder learns to read them from the rendered bitmap, and then reads them off real
doodles, whose parameters nobody knows. Each attribute is in the units of the drawing:

==============  ===========================================================================
tilt            rotation of the face, radians, clockwise on screen
long            log(height / width) of the face outline: < 0 round and wide, > 0 long
eye_size        log(eye radius / face half-width); dots count as a radius of 6 units
eye_height      how far above the centre the eyes are, as a fraction of the half-height
mouth_open      1 for an open mouth (a closed shape), else 0
mouth_frown     1 for a frown, else 0
mouth_width     half-width of the mouth / half-width of the face
hair            hair strokes x their length / (10 x face half-width): 0 without hair
face_fraction   the outline's side / the whole drawing's side (hair and ears make it < 1)
face_x, face_y  the outline's centre minus the drawing's centre, / the drawing's side
outline         1 when the drawing has a face outline, else 0
==============  ===========================================================================
"""

from __future__ import annotations

import math

import numpy as np

from core.drawing import rasterize
from training.doodles import DoodleParams, draw_doodle, sample_doodle_params

ATTRIBUTES = ("tilt", "long", "eye_size", "eye_height", "mouth_open", "mouth_frown", "mouth_width",
              "hair", "face_fraction", "face_x", "face_y", "outline")
#: Attributes that are yes/no: learned as logits, read as probabilities.
BINARY = ("mouth_open", "mouth_frown", "outline")
DOT_EYE_RADIUS = 6.0


def attributes_of(p: DoodleParams, strokes: list[np.ndarray]) -> np.ndarray:
    """The attribute vector (float32, in ``ATTRIBUTES`` order) of a drawn synthetic doodle."""
    everything = np.concatenate(strokes, axis=1)
    lo, hi = everything.min(axis=1), everything.max(axis=1)
    side = float((hi - lo).max()) or 1.0
    n_outline = (2 if p.outline_halves else 1) if p.outline else 0
    outline = np.concatenate(strokes[:n_outline], axis=1) if n_outline else everything
    olo, ohi = outline.min(axis=1), outline.max(axis=1)
    centre = ((olo + ohi) / 2 - (lo + hi) / 2) / side
    eye_r = DOT_EYE_RADIUS if p.eye_kind == "dot" else max(p.eye_size, DOT_EYE_RADIUS)
    return np.array([
        p.tilt,
        math.log(p.aspect),
        math.log(eye_r / p.rx),
        p.eye_height,
        float(p.mouth_kind == "open"),
        float(p.mouth_kind == "frown"),
        p.mouth_width,
        p.hair * p.hair_length / (p.rx * 10) if p.outline else 0.0,
        float((ohi - olo).max()) / side,
        centre[0],
        centre[1],
        float(p.outline),
    ], dtype=np.float32)


def synthetic_pool(count: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic doodles over the wide parameter range: numpy_bitmaps (N, size, size)
    and their attributes (N, len(ATTRIBUTES)). Seeded: the same call gives the same pool."""
    rng = np.random.default_rng(seed)
    bitmaps = np.zeros((count, size, size), np.uint8)
    attrs = np.zeros((count, len(ATTRIBUTES)), np.float32)
    for i in range(count):
        p = sample_doodle_params(rng, wide=True)
        strokes = draw_doodle(p, rng)
        bitmaps[i] = rasterize([s.tolist() for s in strokes], size)
        attrs[i] = attributes_of(p, strokes)
    return bitmaps, attrs
