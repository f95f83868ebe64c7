"""Synthetic doodles: faces drawn as strokes, the way a kid draws them, from explicit parameters.

``DoodleParams`` says what the drawing holds (outline shape and tilt, eye kind and size, mouth
kind, hair strokes, ...); ``draw_doodle`` turns it into strokes with a hand's wobble and tremor;
``sample_doodle_params`` draws parameters from the distribution that was tuned to look like the
Quick, Draw! "smiley face" doodles. Making the parameters explicit is what lets the drawing model
train on doodles whose content is known (tilt, face shape, eye size, mouth, hair), and lets the
evaluation make pairs of drawings that differ in one thing only.

Strokes are (2, n) float arrays in a 256-unit space, y growing downwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

EyeKind = Literal["dot", "circle", "arc", "line"]
MouthKind = Literal["smile", "open", "line", "frown"]
#: How hair is drawn: tufts (short strokes out of the top of the head, as most smileys have),
#: long (wavy strands falling beside the face past the chin), spiky (one zigzag over the top),
#: scribble (a tangle of loops on top), bangs (strokes down across the forehead), curls (small
#: loops along the top of the head).
HairStyle = Literal["tufts", "long", "spiky", "scribble", "bangs", "curls"]
HAIR_STYLES: tuple[str, ...] = ("tufts", "long", "spiky", "scribble", "bangs", "curls")
#: What a stroke of a doodle draws.
PARTS: tuple[str, ...] = ("outline", "eye", "eyebrow", "nose", "mouth", "hair", "ear")


@dataclass(frozen=True)
class DoodleParams:
    """What one face doodle holds. Lengths are in the 256-unit space; angles in radians."""

    rx: float = 90.0                 # half-width of the face outline
    aspect: float = 1.0              # outline height / width: < 1 round and wide, > 1 long
    tilt: float = 0.0                # rotation of the whole face, clockwise on screen
    outline: bool = True             # a few real smileys are only eyes and a mouth
    outline_halves: bool = False     # the outline drawn in two strokes
    outline_start: float = 0.0       # where the pen starts on the outline
    outline_sweep: float = 2 * math.pi  # how far round it goes (a little short of or past a full turn)
    eye_kind: EyeKind = "dot"
    eye_size: float = 8.0            # eye radius (circles, arcs, lines); dots are pen-sized
    eye_height: float = 0.25         # eyes this far above the centre, as a fraction of the half-height
    eye_spread: float = 0.35         # eyes this far from the middle, as a fraction of the half-width
    eyebrows: bool = False
    nose: bool = False
    mouth_kind: MouthKind = "smile"
    mouth_width: float = 0.5         # half-width of the mouth, as a fraction of the half-width
    mouth_height: float = 0.42       # mouth this far below the centre, as a fraction of the half-height
    hair: int = 0                    # how many hair strokes (tufts, strands, spikes, loops); 0: no hair
    hair_length: float = 30.0
    hair_style: HairStyle = "tufts"
    ears: bool = False
    shear: float = 0.0
    tremor: float = 1.0              # hand tremor on every point


def sample_doodle_params(rng: np.random.Generator, *, wide: bool = False) -> DoodleParams:
    """Parameters like those of real Quick, Draw! smileys. ``wide``: tilt, face shape and eye
    size over a wider range than most real doodles show, so a model trained on them has seen
    every drawing a kid may make."""
    rx = rng.uniform(70, 110)
    outline = rng.random() > 0.05
    eye_kind = str(rng.choice(["dot", "circle", "arc", "line"], p=[0.45, 0.3, 0.15, 0.1]))
    return DoodleParams(
        rx=rx,
        aspect=rng.uniform(0.75, 1.45) if wide else rng.uniform(0.85, 1.2),
        tilt=rng.uniform(-0.5, 0.5) if wide else rng.normal(0, 0.08),
        outline=outline,
        outline_halves=rng.random() < 0.2,
        outline_start=rng.uniform(0, 2 * math.pi),
        outline_sweep=2 * math.pi * rng.uniform(0.92, 1.08),
        eye_kind=eye_kind,  # type: ignore[arg-type]
        eye_size=rng.uniform(3, 24) if wide else rng.uniform(4, 16),
        eye_height=rng.uniform(0.1, 0.4),
        eye_spread=rng.uniform(0.25, 0.45),
        eyebrows=rng.random() < 0.25,
        nose=rng.random() < 0.35,
        mouth_kind=str(rng.choice(["smile", "open", "line", "frown"], p=[0.65, 0.15, 0.1, 0.1])),  # type: ignore[arg-type]
        mouth_width=rng.uniform(0.3, 0.7),
        mouth_height=rng.uniform(0.3, 0.55),
        hair=int(rng.integers(3, 12)) if outline and rng.random() < 0.5 else 0,
        hair_length=rng.uniform(15, 45),
        ears=outline and rng.random() < 0.15,
        shear=rng.normal(0, 0.05),
        tremor=1.0,
    )


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


def draw_doodle(p: DoodleParams, rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of a doodle with parameters ``p``; ``rng`` draws only the hand's wobble,
    tremor and the small placement errors, so the same parameters always mean the same face."""
    return [stroke for _, stroke in draw_doodle_parts(p, rng)]


def draw_doodle_parts(p: DoodleParams, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """``draw_doodle``'s strokes, each with the part it draws (one of ``PARTS``)."""
    strokes: list[np.ndarray] = []
    roles: list[str] = []

    def add(role: str, stroke: np.ndarray) -> None:
        roles.append(role)
        strokes.append(stroke)

    cx, cy = 128 + rng.normal(0, 6, 2)
    rx, ry = p.rx, p.rx * p.aspect
    if p.outline:
        if p.outline_halves:
            half = p.outline_sweep / 2
            add("outline", _ellipse(rng, cx, cy, rx, ry, p.outline_start, half, 40, 0.03))
            add("outline", _ellipse(rng, cx, cy, rx, ry, p.outline_start + half, half, 40, 0.03))
        else:
            add("outline", _ellipse(rng, cx, cy, rx, ry, p.outline_start, p.outline_sweep, 80, 0.04))
    ey = cy - ry * p.eye_height
    ex = rx * p.eye_spread
    er = p.eye_size
    for side in (-1, 1):
        x0 = cx + side * ex + rng.normal(0, 3)
        y0 = ey + rng.normal(0, 3)
        if p.eye_kind == "dot":
            add("eye", np.array([[x0, x0 + rng.normal(0, 1.5)], [y0, y0 + rng.normal(0, 1.5)]]))
        elif p.eye_kind == "circle":
            add("eye", _ellipse(rng, x0, y0, er, er * rng.uniform(0.8, 1.4), 0, 2 * math.pi, 16, 0.05))
        elif p.eye_kind == "arc":
            add("eye", _ellipse(rng, x0, y0 + er / 2, er, er * 0.7, math.pi, math.pi, 10, 0.05))
        else:
            add("eye", np.array([[x0, x0 + rng.normal(0, 2)], [y0 - er, y0 + er]]))
    if p.eyebrows:
        for side in (-1, 1):
            x0 = cx + side * ex
            y0 = ey - er - rng.uniform(6, 18)
            add("eyebrow", np.array([[x0 - 12, x0 + 12], [y0 + side * rng.normal(0, 3), y0 - side * rng.normal(0, 3)]]))
    if p.nose:
        ny = cy + ry * rng.uniform(0.0, 0.15)
        add("nose", np.array([[cx, cx + rng.normal(0, 3), cx + rng.uniform(-8, 8)], [ny - 12, ny + 6, ny + 8]]))
    my = cy + ry * p.mouth_height
    mw = rx * p.mouth_width
    if p.mouth_kind == "smile":
        add("mouth", _ellipse(rng, cx, my - mw * 0.4, mw, mw * rng.uniform(0.4, 0.8), 0.15 * math.pi, 0.7 * math.pi, 20, 0.04))
    elif p.mouth_kind == "frown":
        add("mouth", _ellipse(rng, cx, my + mw * 0.3, mw * 0.8, mw * 0.4, 1.15 * math.pi, 0.7 * math.pi, 16, 0.04))
    elif p.mouth_kind == "open":
        arc = _ellipse(rng, cx, my - mw * 0.2, mw, mw * 0.7, 0.0, math.pi, 20, 0.04)
        add("mouth", np.concatenate([arc, arc[:, :1]], axis=1))
    else:
        add("mouth", np.array([[cx - mw, cx + mw], [my + rng.normal(0, 3), my + rng.normal(0, 3)]]))
    if p.outline and p.hair and p.hair_style == "tufts":
        for a in np.linspace(1.15 * math.pi, 1.85 * math.pi, p.hair) + rng.normal(0, 0.05, p.hair):
            x0, y0 = cx + rx * math.cos(a), cy + ry * math.sin(a)
            bend = rng.normal(0, 0.3)
            length = p.hair_length * rng.uniform(0.8, 1.2)
            add("hair", np.array([[x0, x0 + length * math.cos(a + bend)], [y0, y0 + length * math.sin(a + bend)]]))
    elif p.outline and p.hair:
        for stroke in _hair(p.hair_style, p.hair, p.hair_length, cx, cy, rx, ry, rng):
            add("hair", stroke)
    if p.outline and p.ears:
        for side in (-1, 1):
            add("ear", _ellipse(rng, cx + side * rx * 1.02, cy, 12, 20, -math.pi / 2 if side > 0 else math.pi / 2, math.pi, 10, 0.05))
    # The whole drawing: rotation (tilt) and shear about the centre, then tremor on every point.
    c, s = math.cos(p.tilt), math.sin(p.tilt)
    m = np.array([[c, -s + p.shear], [s, c]])
    centre = np.array([[cx], [cy]])
    return [(role, m @ (st - centre) + centre + rng.normal(0, p.tremor, st.shape)) for role, st in zip(roles, strokes)]


def _wavy(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, amplitude: float, waves: float,
          n: int = 30) -> np.ndarray:
    """A wavy line from ``start`` to ``end`` (2-vectors): a strand of hair as a hand draws it."""
    t = np.linspace(0.0, 1.0, n)
    line = start[:, None] + (end - start)[:, None] * t
    normal = np.array([-(end - start)[1], (end - start)[0]]) / (np.linalg.norm(end - start) or 1.0)
    phase = rng.uniform(0, 2 * math.pi)
    return line + normal[:, None] * amplitude * np.sin(2 * math.pi * waves * t + phase) * rng.uniform(0.7, 1.3)


def _hair(style: str, count: int, length: float, cx: float, cy: float, rx: float, ry: float,
          rng: np.random.Generator) -> list[np.ndarray]:
    """The hair strokes of a style other than tufts, around a face outline centred at (cx, cy)."""
    out: list[np.ndarray] = []
    if style == "long":
        # strands from the top of the head falling beside the cheeks to below the chin
        for k in range(max(2, count)):
            side = -1 if k % 2 == 0 else 1
            a = math.pi * (1.5 + side * rng.uniform(0.2, 0.4))
            start = np.array([cx + rx * math.cos(a), cy + ry * math.sin(a)])
            end = np.array([cx + side * rx * rng.uniform(1.05, 1.35), cy + ry * rng.uniform(1.0, 1.5)])
            out.append(_wavy(rng, start, end, rng.uniform(3, 10), rng.uniform(1.5, 3.5)))
    elif style == "spiky":
        a = np.linspace(1.08 * math.pi, 1.92 * math.pi, 2 * max(3, count) + 1)
        r = np.where(np.arange(len(a)) % 2 == 0, 1.0, 1.0 + length / rx * rng.uniform(0.8, 1.2, len(a)))
        out.append(np.stack([cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)]) + rng.normal(0, 2, (2, len(a))))
    elif style == "scribble":
        t = np.linspace(0, 2 * math.pi * max(3, count), 12 * max(3, count))
        w, h = rx * rng.uniform(0.6, 0.9), ry * rng.uniform(0.15, 0.3)
        x = cx + w * np.sin(t * rng.uniform(1.1, 1.6)) + rng.normal(0, 4, len(t))
        y = cy - ry * rng.uniform(0.85, 1.05) + h * np.cos(t) + rng.normal(0, 4, len(t))
        out.append(np.stack([x, y]))
    elif style == "bangs":
        xs = cx + rx * np.linspace(-0.75, 0.75, max(3, count)) + rng.normal(0, 3, max(3, count))
        for x0 in xs:
            top = cy - ry * math.sqrt(max(0.0, 1 - ((x0 - cx) / rx) ** 2))
            slant = rng.normal(0, 8)
            out.append(np.array([[x0, x0 + slant], [top, cy - ry * rng.uniform(0.35, 0.55)]]))
    elif style == "curls":
        for a in np.linspace(1.1 * math.pi, 1.9 * math.pi, max(3, count)):
            r = rng.uniform(8, 14) * length / 30
            x0, y0 = cx + (rx + r) * math.cos(a), cy + (ry + r) * math.sin(a)
            out.append(_ellipse(rng, x0, y0, r, r, rng.uniform(0, 2 * math.pi), 2 * math.pi * 1.1, 14, 0.08))
    else:
        raise ValueError(f"unknown hair style {style!r}; valid: {', '.join(HAIR_STYLES)}")
    return out


def synthetic_doodle(rng: np.random.Generator) -> list[np.ndarray]:
    """One face doodle as a list of (2, n) strokes, with parameters like real smileys'."""
    return draw_doodle(sample_doodle_params(rng), rng)


def edited(p: DoodleParams, **change) -> DoodleParams:
    """The same doodle with some parameters changed (for pairs that differ in one thing)."""
    return replace(p, **change)
