"""Strokes in, Quick, Draw!-style bitmaps out.

One implementation, ``rasterize``, serves both the API and training, so what the model saw in
training is what the canvas produces. It follows how Google prepared the Quick, Draw! data:

1. ``simplify``: align the drawing to the top-left corner (min 0), scale it uniformly so the
   largest coordinate is 255, resample every stroke at 1-unit spacing and simplify it with
   Ramer-Douglas-Peucker (epsilon 2.0).
2. ``render``: the numpy_bitmap recipe. White strokes on black, anti-aliased, round caps and
   joins, line diameter 16 and padding 16 in the 256-unit space, bounding box centred.

The renderer is pure numpy: it supersamples the exact round-capped stroke shape (a point is
inside when its distance to the polyline is at most the radius) and composites strokes one over
another, as cairo's OVER operator does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The Quick, Draw! coordinate space after simplification: 0..255 on the longest side.
SPACE = 256.0
LINE_DIAMETER = 16.0
PADDING = 16.0

# Limits on what one request may hold, which bound the work one drawing may cost. A kid's face is
# a few dozen strokes of a few hundred points and about 1,000-2,000 units of line in the 256-unit
# space (the synthetic doodles: at most 1,830). The work grows with the points the simplification
# keeps (the renderer draws one segment per kept point) and with the length of line (resampled at
# 1 unit, then simplified stroke by stroke, at worst line x points of the stroke): the worst
# drawings within these limits take 0.2-0.3 s of CPU on a 2-core machine (tests/test_drawing.py);
# under the old ones (32,768 points, no bound on line) a zig-zag drawing took from 2 s to minutes.
MAX_STROKES = 256
MAX_POINTS_PER_STROKE = 1024
MAX_POINTS_TOTAL = 4096
MAX_INK_LENGTH = 20_000.0  # total length of line, in the 256-unit space (about 80 lines across it)
MAX_ABS_COORDINATE = 1e6

Stroke = np.ndarray  # float64 array of shape (2, n): row 0 holds x, row 1 holds y


class DrawingError(ValueError):
    """A drawing that cannot be rasterized; the message says what is wrong, for people."""


@dataclass(frozen=True)
class Drawing:
    """A validated drawing: a non-empty list of strokes, each a (2, n) float array, n >= 1."""

    strokes: tuple[Stroke, ...]

    @property
    def n_points(self) -> int:
        return sum(s.shape[1] for s in self.strokes)


def parse_strokes(raw: object) -> Drawing:
    """Validate strokes in any of the accepted formats and return them as a ``Drawing``.

    Accepted per stroke: Quick, Draw! raw ``[[x...], [y...], [t...]]`` (times are checked and
    dropped), simplified ``[[x...], [y...]]``. The browser canvas sends the raw form.
    """
    if not isinstance(raw, (list, tuple)):
        raise DrawingError("strokes must be a list of strokes")
    if len(raw) == 0:
        raise DrawingError("the drawing is empty: draw at least one stroke")
    if len(raw) > MAX_STROKES:
        raise DrawingError(f"too many strokes: {len(raw)} (the limit is {MAX_STROKES})")
    strokes: list[Stroke] = []
    total = 0
    for i, stroke in enumerate(raw):
        if not isinstance(stroke, (list, tuple)) or len(stroke) not in (2, 3):
            raise DrawingError(
                f"stroke {i} must be [[x...], [y...]] or [[x...], [y...], [t...]]"
            )
        rows = []
        for name, row in zip("xyt", stroke):
            if not isinstance(row, (list, tuple)):
                raise DrawingError(f"stroke {i}: {name} must be a list of numbers")
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in row):
                raise DrawingError(f"stroke {i}: {name} must hold only numbers")
            rows.append(row)
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise DrawingError(
                f"stroke {i} is ragged: x, y{', t' if len(rows) == 3 else ''} have lengths "
                + ", ".join(str(len(r)) for r in rows)
            )
        n = lengths.pop()
        if n == 0:
            raise DrawingError(f"stroke {i} has no points")
        if n > MAX_POINTS_PER_STROKE:
            raise DrawingError(
                f"stroke {i} has {n} points (the limit is {MAX_POINTS_PER_STROKE} per stroke)"
            )
        total += n
        if total > MAX_POINTS_TOTAL:
            raise DrawingError(f"too many points in all (the limit is {MAX_POINTS_TOTAL})")
        arr = np.asarray(rows, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise DrawingError(f"stroke {i} has a coordinate that is not a finite number")
        if np.abs(arr[:2]).max() > MAX_ABS_COORDINATE:
            raise DrawingError(
                f"stroke {i} has a coordinate beyond ±{MAX_ABS_COORDINATE:g}"
            )
        strokes.append(arr[:2].copy())
    ink = ink_length(strokes)
    if ink > MAX_INK_LENGTH:
        raise DrawingError(f"too many long lines: {ink:,.0f} units of line where the limit is {MAX_INK_LENGTH:,.0f} "
                           "(lengths in a drawing scaled to 256 units)")
    return Drawing(tuple(strokes))


def ink_length(strokes: list[Stroke] | tuple[Stroke, ...]) -> float:
    """Total length of the strokes once the drawing is scaled to the 256-unit space, as
    ``simplify`` scales it: the number of points its 1-unit resampling makes."""
    allpts = np.concatenate(strokes, axis=1)
    extent = float((allpts.max(axis=1) - allpts.min(axis=1)).max())
    if extent == 0:
        return 0.0
    return sum(float(np.hypot(*np.diff(s, axis=1)).sum()) for s in strokes) * 255.0 / extent


def _resample(stroke: Stroke, spacing: float = 1.0) -> Stroke:
    """Points every ``spacing`` units along the polyline, keeping both ends."""
    if stroke.shape[1] < 2:
        return stroke
    seg = np.diff(stroke, axis=1)
    seg_len = np.hypot(seg[0], seg[1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    length = cum[-1]
    if length == 0:
        return stroke[:, :1]
    n = int(math.floor(length / spacing))
    at = np.arange(n + 1) * spacing
    if at[-1] < length:
        at = np.append(at, length)
    x = np.interp(at, cum, stroke[0])
    y = np.interp(at, cum, stroke[1])
    return np.stack([x, y])


def rdp(stroke: Stroke, epsilon: float = 2.0) -> Stroke:
    """Ramer-Douglas-Peucker simplification (iterative, so long strokes cannot overflow a stack)."""
    n = stroke.shape[1]
    if n < 3:
        return stroke
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    pts = stroke.T
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        p, q = pts[a], pts[b]
        mid = pts[a + 1 : b]
        d = q - p
        norm = math.hypot(d[0], d[1])
        if norm == 0:
            dist = np.hypot(mid[:, 0] - p[0], mid[:, 1] - p[1])
        else:
            dist = np.abs(d[0] * (mid[:, 1] - p[1]) - d[1] * (mid[:, 0] - p[0])) / norm
        k = int(np.argmax(dist))
        if dist[k] > epsilon:
            split = a + 1 + k
            keep[split] = True
            stack.append((a, split))
            stack.append((split, b))
    return stroke[:, keep]


def simplify(drawing: Drawing, epsilon: float = 2.0) -> Drawing:
    """Quick, Draw!'s simplification: top-left align, scale to 0..255, resample, RDP."""
    allpts = np.concatenate(drawing.strokes, axis=1)
    lo = allpts.min(axis=1, keepdims=True)
    extent = float((allpts.max(axis=1, keepdims=True) - lo).max())
    scale = 255.0 / extent if extent > 0 else 1.0
    out = []
    for s in drawing.strokes:
        s = (s - lo) * scale
        out.append(rdp(_resample(s, 1.0), epsilon))
    return Drawing(tuple(out))


def _stroke_coverage(
    pts: np.ndarray, radius: float, size: int, ss: int
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Fraction of each pixel covered by one round-capped, round-joined stroke.

    ``pts`` are device-space points of shape (n, 2). Returns the coverage of the pixels in the
    stroke's bounding box and that box (y0, y1, x0, x1), or None when it misses the image.
    """
    x0 = max(int(math.floor(pts[:, 0].min() - radius)), 0)
    x1 = min(int(math.ceil(pts[:, 0].max() + radius)), size)
    y0 = max(int(math.floor(pts[:, 1].min() - radius)), 0)
    y1 = min(int(math.ceil(pts[:, 1].max() + radius)), size)
    if x0 >= x1 or y0 >= y1:
        return None
    # Sample points at the centres of an ss x ss grid inside every pixel of the box.
    offs = (np.arange(ss) + 0.5) / ss
    gx = (np.arange(x0, x1)[:, None] + offs[None, :]).reshape(-1)
    gy = (np.arange(y0, y1)[:, None] + offs[None, :]).reshape(-1)
    best = np.full((gy.size, gx.size), np.inf)
    r2 = radius * radius
    if len(pts) == 1:
        segs = [(pts[0], pts[0])]
    else:
        segs = list(zip(pts[:-1], pts[1:]))
    for p, q in segs:
        # Only the sub-rectangle this segment can reach.
        sx0 = np.searchsorted(gx, min(p[0], q[0]) - radius)
        sx1 = np.searchsorted(gx, max(p[0], q[0]) + radius, side="right")
        sy0 = np.searchsorted(gy, min(p[1], q[1]) - radius)
        sy1 = np.searchsorted(gy, max(p[1], q[1]) + radius, side="right")
        if sx0 >= sx1 or sy0 >= sy1:
            continue
        px = gx[sx0:sx1][None, :] - p[0]
        py = gy[sy0:sy1][:, None] - p[1]
        d = q - p
        dd = d[0] * d[0] + d[1] * d[1]
        if dd > 0:
            t = np.clip((px * d[0] + py * d[1]) / dd, 0.0, 1.0)
            ex = px - t * d[0]
            ey = py - t * d[1]
        else:
            ex, ey = px, py
        dist2 = ex * ex + ey * ey
        view = best[sy0:sy1, sx0:sx1]
        np.minimum(view, dist2, out=view)
    inside = (best <= r2).astype(np.float32)
    cov = inside.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return cov, (y0, y1, x0, x1)


def render(
    drawing: Drawing,
    size: int = 28,
    *,
    line_diameter: float = LINE_DIAMETER,
    padding: float = PADDING,
    supersample: int | None = None,
) -> np.ndarray:
    """Rasterize a simplified drawing (coordinates in 0..255) as a numpy_bitmap.

    Returns a uint8 array of shape (size, size): 0 is background, 255 is ink.
    """
    if size < 8 or size > 1024:
        raise DrawingError("size must be between 8 and 1024 pixels")
    ss = supersample or max(4, min(16, int(math.ceil(256 / size))))
    total_padding = padding * 2.0 + line_diameter
    scale = size / (SPACE + total_padding)
    allpts = np.concatenate(drawing.strokes, axis=1)
    bbox = allpts.max(axis=1)
    offset = (SPACE - bbox) / 2.0  # centre the bounding box, as the reference recipe does
    radius = line_diameter / 2.0 * scale
    canvas = np.zeros((size, size), dtype=np.float32)
    for s in drawing.strokes:
        pts = ((s + offset[:, None] + total_padding / 2.0) * scale).T
        got = _stroke_coverage(pts, radius, size, ss)
        if got is None:
            continue
        cov, (y0, y1, x0, x1) = got
        region = canvas[y0:y1, x0:x1]
        region += cov * (1.0 - region)  # OVER compositing, stroke after stroke
    return np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)


def rasterize(
    drawing: Drawing | object,
    size: int = 28,
    *,
    line_diameter: float = LINE_DIAMETER,
    padding: float = PADDING,
) -> np.ndarray:
    """Simplify and render a drawing (a parsed ``Drawing``, or raw strokes, validated first): the
    one path from strokes to a numpy_bitmap. The API's models, training's synthetic doodles and
    the data-set previews all go through it."""
    if not isinstance(drawing, Drawing):
        drawing = parse_strokes(drawing)
    return render(simplify(drawing), size, line_diameter=line_diameter, padding=padding)
