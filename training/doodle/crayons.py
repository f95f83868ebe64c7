"""Do crayons reach the face? Pairs of the same drawing with its hair in two crayon colours.

Synthetic doodles with hair (every style, their parts known: ``draw_doodle_parts``) are drawn
twice: hair strokes in crayon A, then in crayon B, everything else in the black pen. The faces
(variation 0, the drawing's own colours) should differ in their hair's colour and in little
else. Per crayon pair:

- ``change_ratio``: how much the face changed, against how much it changes when the same
  drawing with the same crayons is drawn again by another hand (about 1: the crayon did nothing);
- ``hair_distance``: the mean CIE76 distance of each face's hair (``core.colour.hair_colour``)
  from its own crayon, beside ``hair_distance_other``, from the other crayon;
- ``agreement``: the share of pairs where both faces' hair is nearer its own crayon than the
  other face's hair is.

A control row colours the mouth instead of the hair (a crayon that means nothing for the hair):
the face should not move (change ratio near 0: the same drawing in the same pen gives the same
face; 1 is as much as drawing it again), and its ``agreement`` is the share of faces whose hair
moved toward the crayon by more than 5 units (it should be 0).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from core.colour import hair_colour, hex_lab
from core.drawing import parse_strokes
from training.doodles import HAIR_STYLES, draw_doodle_parts, sample_doodle_params

PAIRS = (("#dc2828", "#2850dc"), ("#f0dc3c", "#1e1e1e"), ("#fa8cbe", "#3caa46"))
NAMES = {"#dc2828": "red", "#2850dc": "blue", "#f0dc3c": "yellow", "#1e1e1e": "black", "#fa8cbe": "pink",
         "#3caa46": "green"}


def hairy_doodles(count: int, seed: int):
    """``count`` synthetic doodle parameters with an outline and hair of every style in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        p = sample_doodle_params(rng)
        out.append(replace(p, outline=True, hair=int(rng.integers(4, 9)), hair_style=HAIR_STYLES[i % len(HAIR_STYLES)],
                           hair_length=float(rng.uniform(20, 45)), tilt=0.0))
    return out


def _paint(model, params, hand: int, colour_of) -> np.ndarray:
    """Variation 0 of every drawing, its strokes coloured by ``colour_of(part)``."""
    faces = []
    for i, p in enumerate(params):
        parts = draw_doodle_parts(p, np.random.default_rng((hand, i)))
        drawing = parse_strokes([s.tolist() for _, s in parts])
        faces.append(model.translate(drawing, [0], colors=[colour_of(part) for part, _ in parts])[0])
    return np.stack(faces)


def crayon_edits(model, count: int = 16, seed: int = 0, grid_dir: Path | None = None,
                 label: str = "model") -> dict[str, dict[str, float]]:
    """The crayon rows of the edit table (see the module's docstring)."""
    params = hairy_doodles(count, seed)
    out: dict[str, dict[str, float]] = {}
    for a, b in PAIRS:
        fa = _paint(model, params, seed, lambda part, c=a: c if part == "hair" else None)
        fb = _paint(model, params, seed, lambda part, c=b: c if part == "hair" else None)
        fa2 = _paint(model, params, seed + 1, lambda part, c=a: c if part == "hair" else None)
        ha, hb = hair_colour(fa), hair_colour(fb)
        ca, cb = hex_lab(a), hex_lab(b)
        da_own, da_other = np.linalg.norm(ha - ca, axis=1), np.linalg.norm(ha - cb, axis=1)
        db_own, db_other = np.linalg.norm(hb - cb, axis=1), np.linalg.norm(hb - ca, axis=1)
        agree = (np.linalg.norm(ha - ca, axis=1) < np.linalg.norm(hb - ca, axis=1)) & \
                (np.linalg.norm(hb - cb, axis=1) < np.linalg.norm(ha - cb, axis=1))
        change = np.abs(fa.astype(np.float32) - fb).mean()
        noise = np.abs(fa.astype(np.float32) - fa2).mean()
        name = f"hair crayon {NAMES[a]} -> {NAMES[b]}"
        out[name] = {"change_ratio": float(change / max(noise, 1e-6)), "agreement": float(agree.mean()),
                     "hair_distance": float(np.concatenate([da_own, db_own]).mean()),
                     "hair_distance_other": float(np.concatenate([da_other, db_other]).mean())}
        if grid_dir is not None:
            _grid(fa, fb, Path(grid_dir) / f"crayon_{NAMES[a]}_{NAMES[b]}_{label.replace(' ', '_')}.png")
    plain = _paint(model, params, seed, lambda part: None)
    mouth = _paint(model, params, seed, lambda part: "#dc2828" if part == "mouth" else None)
    again = _paint(model, params, seed + 1, lambda part: None)
    red = hex_lab("#dc2828")
    out["mouth crayon red (control)"] = {
        "change_ratio": float(np.abs(plain.astype(np.float32) - mouth).mean()
                              / max(np.abs(plain.astype(np.float32) - again).mean(), 1e-6)),
        "agreement": float((np.linalg.norm(hair_colour(mouth) - red, axis=1)
                            < np.linalg.norm(hair_colour(plain) - red, axis=1) - 5).mean()),
        "hair_distance": float(np.linalg.norm(hair_colour(mouth) - red, axis=1).mean()),
        "hair_distance_other": float(np.linalg.norm(hair_colour(plain) - red, axis=1).mean())}
    return out


def _grid(fa: np.ndarray, fb: np.ndarray, path: Path, count: int = 8, size: int = 96) -> None:
    """Two rows: the faces with crayon A, with crayon B."""
    rows = [np.concatenate([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                            for f in faces[:count]], axis=1) for faces in (fa, fb)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
