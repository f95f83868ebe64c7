"""The hair rows of ``evaluate-drawing``'s edit table: the same drawing with hair strokes added,
painted through the served path (strokes in, as the page sends them), against the face of the
drawing without them.

- **long hair strokes**: two strands from the top of the head falling beside the cheeks to below
  the chin (the kid's long hair); the hair beside the face's cheeks should grow;
- **spiky hair**: a zigzag of spikes on top of the head; the hair beside the cheeks should not grow
  (it shrinks a little);
- **a dot (control)**: one dot near a corner of the drawing, which says nothing about the face.

A row's ``agreement`` is the share of drawings whose hair beside the cheeks
(``training.doodle.measure.hair_beside_cheeks``) moved the expected way by more than ``MOVED``;
for the control, ``moved`` is the share that moved either way by more than that (the lower the
better), and every row has it too. ``change_ratio`` is how much the face changes against how
much it changes when the same drawing is drawn again by another hand.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from core.drawing import parse_strokes
from training.doodle.measure import hair_beside_cheeks
from training.doodles import draw_doodle_parts, sample_doodle_params

#: A face's hair beside the cheeks moved when its share changed by more than this.
MOVED = 0.05
#: Row -> (what is added, the way the hair beside the cheeks should move: +1, -1, 0 for none).
ROWS = {"hair none -> long strokes": ("long", 1), "hair none -> spiky": ("spiky", -1),
        "a dot (control)": ("dot", 0)}


def bases(count: int, seed: int):
    """``count`` level doodles with an outline and no hair, as real smileys are drawn."""
    rng = np.random.default_rng(seed)
    return [replace(sample_doodle_params(rng), outline=True, hair=0, tilt=0.0, shear=0.0) for _ in range(count)]


def strokes_of(p, hand: int, index: int, added: str | None) -> list[np.ndarray]:
    """The doodle's strokes drawn by hand ``hand``; ``added``: "long" (two strands), "spiky", "dot",
    added to the very same strokes (nothing else of the drawing changes)."""
    strokes = [s for _, s in draw_doodle_parts(p, np.random.default_rng((hand, index)))]
    if added in ("long", "spiky"):
        hairy = replace(p, hair=2 if added == "long" else 6, hair_style=added, hair_length=30.0)
        strokes += [s for part, s in draw_doodle_parts(hairy, np.random.default_rng((hand, index))) if part == "hair"]
    if added == "dot":
        every = np.concatenate(strokes, axis=1)
        lo, hi = every.min(axis=1), every.max(axis=1)
        x, y = lo + 0.06 * (hi - lo)
        strokes.append(np.array([[x, x + 1.0], [y, y]]))
    return strokes


def paint(model, params, hand: int, added: str | None) -> np.ndarray:
    """Variation 0 of every drawing, through ``model.translate`` (the page's path)."""
    return np.stack([model.translate(parse_strokes([s.tolist() for s in strokes_of(p, hand, i, added)]), [0])[0]
                     for i, p in enumerate(params)])


def hair_edits(model, count: int = 16, seed: int = 0, grid_dir: Path | None = None,
               label: str = "model") -> dict[str, dict[str, float]]:
    """The hair rows of the edit table (see the module's docstring)."""
    params = bases(count, seed)
    plain = paint(model, params, seed, None)
    again = paint(model, params, seed + 1, None)
    noise = np.abs(plain.astype(np.float32) - again).mean()
    before = hair_beside_cheeks(plain)
    out: dict[str, dict[str, float]] = {}
    for name, (added, way) in ROWS.items():
        faces = paint(model, params, seed, added)
        after = hair_beside_cheeks(faces)
        delta = after - before
        out[name] = {"change_ratio": float(np.abs(plain.astype(np.float32) - faces).mean() / max(noise, 1e-6)),
                     "agreement": float((way * delta > MOVED).mean()) if way else float("nan"),
                     "moved": float((np.abs(delta) > MOVED).mean()),
                     "hair_sides_before": float(before.mean()), "hair_sides_after": float(after.mean())}
        if grid_dir is not None:
            grid(params, seed, added, plain, faces, Path(grid_dir) / f"hair_{added}_{label.replace(' ', '_')}.png")
    return out


def grid(params, hand: int, added: str, plain: np.ndarray, faces: np.ndarray, path: Path, count: int = 8,
         size: int = 96) -> None:
    """Four rows: the drawings, their faces, the drawings with ``added``, their faces."""
    from core.drawing import rasterize

    def tiles(strokes_list):
        return [np.repeat(np.asarray(Image.fromarray(255 - rasterize([s.tolist() for s in st], 64))
                                     .resize((size, size), Image.Resampling.BILINEAR))[..., None], 3, axis=2)
                for st in strokes_list]

    def row(images):
        return np.concatenate(images[:count], axis=1)

    def big(f):
        return [np.asarray(Image.fromarray(x).resize((size, size), Image.Resampling.LANCZOS)) for x in f]

    n = min(count, len(params))
    a = tiles([strokes_of(p, hand, i, None) for i, p in enumerate(params[:n])])
    b = tiles([strokes_of(p, hand, i, added) for i, p in enumerate(params[:n])])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([row(a), row(big(plain)), row(b), row(big(faces))], axis=0)).save(path)
