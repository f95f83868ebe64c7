"""Strokes in, Quick, Draw!-style bitmaps out.

One implementation, ``rasterize``, serves both the API and training, so what the model saw in
training is what the canvas produces. It follows how Google prepared the Quick, Draw! data:

1. ``simplify``: align the drawing to the top-left corner (min 0), scale it uniformly so the
   largest coordinate is 255, resample every stroke at 1-unit spacing and simplify it with
   Ramer-Douglas-Peucker (epsilon 2.0).
2. ``render``: the numpy_bitmap recipe. White strokes on black, anti-aliased, round caps and
   joins, line diameter 16 and padding 16 in the 256-unit space, bounding box centred.

Everything is pure numpy, worked on all strokes of a drawing at once: a drawing is a few dozen
short strokes, and a numpy call costs about a microsecond whatever its size, so loops over
strokes, segments or pixels would cost more than the arithmetic. Inside, a drawing travels as
flat points, (2, N) with the strokes one after another, and the number of points of each
stroke; ``rasterize`` keeps it that way from validation to pixels, while ``parse_strokes``,
``simplify`` and ``render`` take and give ``Drawing``'s per-stroke arrays.

The renderer measures the exact round-capped stroke shape (a point is inside when its distance
to the polyline is at most the radius) on several sample rows per pixel, exactly along each
row, and composites strokes one over another, as cairo's OVER operator does.
"""

from __future__ import annotations

import functools
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


_PLAIN_NUMBERS = frozenset((int, float))


def parse_strokes(raw: object) -> Drawing:
    """Validate strokes in any of the accepted formats and return them as a ``Drawing``.

    Accepted per stroke: Quick, Draw! raw ``[[x...], [y...], [t...]]`` (times are checked and
    dropped), simplified ``[[x...], [y...]]``. The browser canvas sends the raw form.
    """
    return Drawing(_split(*_parse_flat(raw)))


def _parse_flat(raw: object) -> tuple[np.ndarray, np.ndarray]:
    """``parse_strokes``'s checks, giving the drawing as flat points and points per stroke.

    The structure is checked stroke by stroke in Python; the numbers are converted and checked
    in one numpy pass over the whole drawing rather than one per stroke. Errors are reported as
    a stroke-by-stroke check would: the first stroke with any problem is the one named.
    """
    if not isinstance(raw, (list, tuple)):
        raise DrawingError("strokes must be a list of strokes")
    if len(raw) == 0:
        raise DrawingError("the drawing is empty: draw at least one stroke")
    if len(raw) > MAX_STROKES:
        raise DrawingError(f"too many strokes: {len(raw)} (the limit is {MAX_STROKES})")
    xs: list = []
    ys: list = []
    ts: list = []
    lengths: list[int] = []
    timed: list[bool] = []
    for i, stroke in enumerate(raw):
        try:
            rows = _stroke_rows(i, stroke)
            if len(xs) + len(rows[0]) > MAX_POINTS_TOTAL:
                raise DrawingError(f"too many points in all (the limit is {MAX_POINTS_TOTAL})")
        except DrawingError:
            _check_numbers(xs, ys, ts, lengths, timed)  # a bad number in an earlier stroke comes first
            raise
        xs += rows[0]
        ys += rows[1]
        ts += rows[2] if len(rows) == 3 else ()
        lengths.append(len(rows[0]))
        timed.append(len(rows) == 3)
    pts, counts = _check_numbers(xs, ys, ts, lengths, timed), np.array(lengths)
    ink = _ink_length_flat(pts, counts)
    if ink > MAX_INK_LENGTH:
        raise DrawingError(f"too many long lines: {ink:,.0f} units of line where the limit is {MAX_INK_LENGTH:,.0f} "
                           "(lengths in a drawing scaled to 256 units)")
    return pts, counts


def ink_length(strokes: list[Stroke] | tuple[Stroke, ...]) -> float:
    """Total length of the strokes once the drawing is scaled to the 256-unit space, as
    ``simplify`` scales it: about the number of points its 1-unit resampling makes, so it bounds
    the work one drawing may cost."""
    return _ink_length_flat(np.concatenate(strokes, axis=1), np.array([s.shape[1] for s in strokes]))


def _ink_length_flat(pts: np.ndarray, lengths: np.ndarray) -> float:
    extent = float((pts.max(axis=1) - pts.min(axis=1)).max())
    if extent == 0:
        return 0.0
    seg = np.hypot(*(pts[:, 1:] - pts[:, :-1]))
    seg[np.cumsum(lengths)[:-1] - 1] = 0.0  # the hop from one stroke's end to the next one's start is no ink
    return float(seg.sum()) * 255.0 / extent


def _stroke_rows(i: int, stroke: object) -> list:
    """The rows (x, y and maybe t) of stroke ``i`` once its structure is checked: lists of plain
    numbers, all of one length, at least one point and at most the per-stroke limit."""
    if not isinstance(stroke, (list, tuple)) or len(stroke) not in (2, 3):
        raise DrawingError(f"stroke {i} must be [[x...], [y...]] or [[x...], [y...], [t...]]")
    rows = []
    for name, row in zip("xyt", stroke):
        if not isinstance(row, (list, tuple)):
            raise DrawingError(f"stroke {i}: {name} must be a list of numbers")
        # The common case, only ints and floats, is told by the set of types; anything else
        # (bools are out, subclasses of int and float are in) is checked value by value.
        if not _PLAIN_NUMBERS.issuperset(map(type, row)) and any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in row
        ):
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
    return rows


def _check_numbers(xs: list, ys: list, ts: list, lengths: list[int], timed: list[bool]) -> np.ndarray:
    """The strokes' points as one (2, N) float array, once every coordinate and time is finite
    and every coordinate within ±MAX_ABS_COORDINATE; otherwise the first stroke that fails is
    named. One check covers the drawing; the culprit is looked for only on failure."""
    pts = np.array([xs, ys], dtype=np.float64).reshape(2, -1)
    times = np.array(ts, dtype=np.float64)
    if np.isfinite(times).all() and (
        pts.size == 0 or (np.isfinite(pts).all() and np.abs(pts).max() <= MAX_ABS_COORDINATE)
    ):
        return pts
    start = t_start = 0
    for i, (n, has_times) in enumerate(zip(lengths, timed)):
        xy = pts[:, start : start + n]
        t = times[t_start : t_start + n] if has_times else times[:0]
        if not (np.isfinite(xy).all() and np.isfinite(t).all()):
            raise DrawingError(f"stroke {i} has a coordinate that is not a finite number")
        if np.abs(xy).max() > MAX_ABS_COORDINATE:
            raise DrawingError(f"stroke {i} has a coordinate beyond ±{MAX_ABS_COORDINATE:g}")
        start += n
        t_start += n if has_times else 0
    return pts


def _flatten(drawing: Drawing) -> tuple[np.ndarray, np.ndarray]:
    """A drawing as flat points (2, N), strokes one after another, and points per stroke."""
    return np.concatenate(drawing.strokes, axis=1), np.array([s.shape[1] for s in drawing.strokes])


def _split(pts: np.ndarray, lengths: np.ndarray) -> tuple[Stroke, ...]:
    """Flat points back into one (2, n) array per stroke (views of the flat array)."""
    return tuple(np.split(pts, np.cumsum(lengths[:-1]), axis=1))


def _resample(pts: np.ndarray, lengths: np.ndarray, spacing: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` units along each stroke, keeping both ends, as Quick, Draw!
    resamples before RDP; but only those RDP could keep (all strokes at once).

    Along a straight segment of a stroke the distance to any chord changes linearly, so RDP's
    farthest point in a span is always a segment's first or last sample (on a tie, the first of
    the tied points is one too). So only the samples either side of each drawn point are made,
    about two per point where a long stroke has one per unit of length, and RDP keeps the same
    points from them (but where distances tie exactly, which rounding decides either way): the
    work follows the points drawn, not the length of the ink.

    Takes and returns flat points and points per stroke. A stroke of no length becomes its first
    point.
    """
    ends = np.cumsum(lengths)
    seg = np.hypot(*(pts[:, 1:] - pts[:, :-1]))
    # The hop from a stroke's last point to the next stroke's first gets length 1 on the running
    # length, so each stroke's stretch of it is its own and no sample lands between strokes.
    seg[ends[:-1] - 1] = 1.0
    run = np.concatenate(([0.0], np.cumsum(seg)))
    begin, end = run[ends - lengths], run[ends - 1]
    length = end - begin
    n = np.floor(length / spacing)
    counts = (n + 1 + (n * spacing < length)).astype(np.intp)
    first = np.cumsum(counts) - counts
    at = (np.arange(counts.sum()) - np.repeat(first, counts)) * spacing + np.repeat(begin, counts)
    at[first + counts - 1] = end  # each stroke's last sample is exactly its end
    # The samples either side of each drawn point: the first at or after it and the one before
    # (before a stroke's first point, that is the previous stroke's last sample, or for the very
    # first point the spare slot at the end).
    near = np.searchsorted(at, run)
    made = np.zeros(at.size + 1, dtype=bool)
    made[near] = made[near - 1] = True
    at = at[made[:-1]]
    counts = np.add.reduceat(made[:-1], first, dtype=np.intp)
    return np.array((np.interp(at, run, pts[0]), np.interp(at, run, pts[1]))), counts


def _rdp_keep(pts: np.ndarray, lengths: np.ndarray, epsilon: float) -> np.ndarray:
    """Which of the flat points Ramer-Douglas-Peucker keeps, for all strokes at once.

    Breadth-first rather than recursive: the kept points (at first each stroke's ends) cut the
    strokes into spans, and each pass measures every point's distance to its span's chord, finds
    each span's farthest point (the first one on a tie) and, where that is more than ``epsilon``
    away, keeps it, splitting the span there. The outcome is the recursion's; the numpy calls
    are a couple of dozen per level of the recursion instead of several per span. A stroke's
    last point and the next stroke's first make a span with nothing between them, which never
    splits.
    """
    n = pts.shape[1]
    if epsilon < 0:  # every point is farther than that
        return np.ones(n, dtype=bool)
    ends = np.cumsum(lengths)
    keep = np.zeros(n, dtype=bool)
    keep[ends - lengths] = keep[ends - 1] = True
    index = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            bounds = np.concatenate((np.flatnonzero(keep), [n]))
            span = np.repeat(np.arange(bounds.size - 1), bounds[1:] - bounds[:-1])  # point by point
            # Per span: its first point, its chord to the next kept point (the last point's is to
            # the first, and never used), the chord's length; then that for each point.
            start = pts.take(bounds[:-1], axis=1)
            chord = pts.take(bounds[1:], axis=1, mode="wrap") - start
            norm = np.hypot(chord[0], chord[1])
            per_point = np.concatenate((start, chord, norm[None])).take(span, axis=1)
            off = pts - per_point[:2]
            dist = np.abs(per_point[2] * off[1] - per_point[3] * off[0]) / per_point[4]
            if not norm.all():  # a span whose ends meet: distance to that point
                closed = (norm == 0).take(span)
                dist[closed] = np.hypot(off[0][closed], off[1][closed])
            peak = np.maximum.reduceat(dist, bounds[:-1])
            split = peak > epsilon
            if not split.any():
                return keep
            at = np.minimum.reduceat(np.where(dist == peak.take(span), index, n), bounds[:-1])
            keep[at[split]] = True


def rdp(stroke: Stroke, epsilon: float = 2.0) -> Stroke:
    """Ramer-Douglas-Peucker simplification of one stroke (iterative, so long strokes cannot
    overflow a stack)."""
    n = stroke.shape[1]
    if n < 3:
        return stroke
    return stroke[:, _rdp_keep(stroke, np.array([n]), epsilon)]


def simplify(drawing: Drawing, epsilon: float = 2.0) -> Drawing:
    """Quick, Draw!'s simplification: top-left align, scale to 0..255, resample, RDP."""
    return Drawing(_split(*_simplify_flat(*_flatten(drawing), epsilon)))


def _simplify_flat(pts: np.ndarray, lengths: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """``simplify`` on flat points and points per stroke."""
    lo = pts.min(axis=1, keepdims=True)
    extent = float((pts.max(axis=1, keepdims=True) - lo).max())
    scale = 255.0 / extent if extent > 0 else 1.0
    pts, lengths = _resample((pts - lo) * scale, lengths, 1.0)
    keep = _rdp_keep(pts, lengths, epsilon)
    return pts[:, keep], np.add.reduceat(keep, np.cumsum(lengths) - lengths, dtype=np.intp)


#: Per-stroke coverage cells the renderer holds at once (8 MiB of float64). A 28 px drawing
#: never reaches it; at large sizes, drawings with many strokes are composited in batches.
_MAX_CELLS = 1 << 20


def _sample_rows(size: int) -> int:
    """Sample rows per pixel row: 7 at 28 px, where the line is 1.5 px wide (the fewest for
    which the pictures agree with cairo's better than a 10 x 10 supersampling grid's do, on
    average and on the worst drawing); more for smaller images (at most 16), fewer for larger
    ones (at least 4), where a pixel is a smaller part of the line."""
    return max(4, min(16, 196 // size))


def render(
    drawing: Drawing,
    size: int = 28,
    *,
    line_diameter: float = LINE_DIAMETER,
    padding: float = PADDING,
    supersample: int | None = None,
) -> np.ndarray:
    """Rasterize a simplified drawing (coordinates in 0..255) as a numpy_bitmap.

    ``supersample`` is the number of sample rows per pixel row (default ``_sample_rows``); along
    a row, coverage is exact. Returns a uint8 array of shape (size, size): 0 is background, 255
    is ink.
    """
    return _render_flat(*_flatten(drawing), size, line_diameter, padding, supersample)


def _render_flat(
    pts: np.ndarray, lengths: np.ndarray, size: int, line_diameter: float, padding: float, rows: int | None,
    corner: tuple[float, float] | None = None,
) -> np.ndarray:
    """``render`` on flat points and points per stroke. ``corner``: the bottom-right corner of
    the drawing the points belong to (default: theirs), so that some strokes of a drawing can
    be drawn where they are in the whole drawing's picture."""
    if size < 8 or size > 1024:
        raise DrawingError("size must be between 8 and 1024 pixels")
    total_padding = padding * 2.0 + line_diameter
    scale = size / (SPACE + total_padding)
    right, bottom = corner if corner is not None else pts.max(axis=1).tolist()
    shift = np.array([[(SPACE - right + total_padding) / 2.0], [(SPACE - bottom + total_padding) / 2.0]])
    pts = (pts + shift) * scale  # the bounding box centred, in pixel units
    if lengths.min() == 1:  # a one-point stroke is a dot: a segment of length 0
        dot = lengths == 1
        pts = np.repeat(pts, np.repeat(dot + 1, lengths), axis=1)
        lengths = lengths + dot
    args = (line_diameter / 2.0 * scale, size, rows or _sample_rows(size))
    per_batch = max(1, _MAX_CELLS // (size * (size + 2)))
    with np.errstate(divide="ignore", invalid="ignore"):  # 1 / 0 and 0 / 0 are expected below
        if lengths.size <= per_batch:
            uncovered = _uncovered(pts, lengths, *args)
        else:
            parts = np.split(pts, np.cumsum(lengths)[per_batch - 1 : -1 : per_batch], axis=1)
            batches = np.split(lengths, range(per_batch, lengths.size, per_batch))
            uncovered = functools.reduce(
                np.multiply, (_uncovered(part, batch, *args) for part, batch in zip(parts, batches))
            )
    return np.rint(uncovered * -255.0 + 255.0).astype(np.uint8)


def _uncovered(pts: np.ndarray, lengths: np.ndarray, radius: float, size: int, rows: int,
               each: bool = False) -> np.ndarray:
    """What compositing the strokes one over another (cairo's OVER) leaves of the background in
    each pixel: the product over strokes of (1 - the fraction of the pixel the stroke covers).
    ``each``: what each stroke alone leaves, (strokes, size, size), before the product.

    ``pts`` are flat points in pixel units, ``lengths`` the points per stroke (2 or more; a dot
    repeats its point). A stroke is the union of its segments' capsules (the points within
    ``radius`` of the segment). Its coverage of a pixel is measured on ``rows`` sample rows
    across the pixel, at y = (k + 0.5) / rows for sample row k of the image:

    1. On a sample row y, a capsule covers one interval (it is convex), the union of the chords
       of the circles of radius ``radius`` centred on the segment. The circle whose chord
       reaches furthest left is the one centred at height y - lean, lean = radius * dx *
       sign(dy) / length (where the outline's slope matches the segment's), or the segment's
       end nearest that when it falls off the segment; the one reaching furthest right, at
       y + lean. So each end of the interval is one circle's chord end: no case analysis.
    2. A stroke covers the union of its capsules' intervals on that row. Sorted by start, each
       interval is clipped to begin and end no earlier than the furthest end before it in its
       stroke and row; what is left of the intervals is disjoint and makes up the union.
    3. An interval [a, b] covers clamp(b - j, 0, 1) - clamp(a - j, 0, 1) of pixel column j. Each
       clamp term is a step at floor(e) softened by its fraction, so every interval end adds two
       weights to a per-(stroke, pixel row) histogram, and a running sum along the row turns
       them into coverage.

    Everything runs on all segments and sample rows at once: a drawing is a few dozen segments
    and about a thousand (segment, sample row) pairs, and each numpy call costs about a
    microsecond whatever its size, so the number of calls, not the arithmetic, sets the time.
    """
    n_rows = size * rows
    n_cells = lengths.size * size * (size + 2)
    ends = np.cumsum(lengths)
    # Segments join consecutive points; the one from a stroke's last point to the next stroke's
    # first is given no sample rows.
    p, q = pts[:, :-1], pts[:, 1:]
    d = q - p
    lean = np.copysign(radius / np.hypot(d[0], d[1]), d[1]) * d[0]  # nan for a dot
    # Sample rows k0 up to k_end cross the capsule: (k + 0.5) / rows within its top and bottom,
    # and the image (none for a capsule above or below it).
    k0 = np.maximum(np.ceil(np.minimum(p[1], q[1]) * rows - (radius * rows + 0.5)), 0)
    k_end = np.minimum(np.floor(np.maximum(p[1], q[1]) * rows + (radius * rows + 0.5)), n_rows)
    count = np.maximum(k_end - k0, 0).astype(np.intp)
    count[ends[:-1] - 1] = 0
    # From here on the strokes are stacked: stroke s is drawn on its own image, s images further
    # down, so one sample row (and one pixel row) number tells both the stroke and the row.
    stacked = np.repeat(np.arange(lengths.size) * float(size), lengths)[:-1]
    k0 += stacked * rows - (np.cumsum(count) - count) + 0.5  # a pair's sample row + 0.5: its index + k0
    top = p[1] + stacked
    # Per segment: p (stacked), dx, dy, 1 / dy, the heights lean above and below p, and k0; then
    # the same for each pair.
    table = np.array((p[0], top, d[0], d[1], 1.0 / d[1], top + lean, top - lean, k0))
    pairs = np.repeat(table, count, axis=1)
    n_pairs = pairs.shape[1]
    if n_pairs == 0:  # the whole drawing lies off the image
        return np.ones((lengths.size, size, size) if each else (size, size))
    row = np.arange(n_pairs) + pairs[7]  # (the sample row + 0.5)
    y = row * (1.0 / rows)

    # 1. Each pair's interval, from the two circles (rows of ``t``: furthest left, furthest
    # right) at t along the segment; row 2 of ``span`` will locate its pixel row in the histogram.
    t = (y - pairs[5:7]) * pairs[4]
    np.fmin(t, 1.0, out=t)
    np.fmax(t, 0.0, out=t)  # a nan (a dot; a level segment's top or bottom row) becomes 1
    centre = pairs[0] + t * pairs[2]
    rise = (y - pairs[1]) - t * pairs[3]  # the row's height above each circle's centre
    half_chord = np.sqrt(np.abs(radius * radius - rise * rise))  # abs: |rise| <= radius, but for rounding
    span = np.empty((3, n_pairs))
    np.subtract(centre[0], half_chord[0], out=span[0])
    np.add(centre[1], half_chord[1], out=span[1])
    np.maximum(span[:2], 0, out=span[:2])  # within the image
    np.minimum(span[:2], size, out=span[:2])

    # 2. The union per stroke and sample row. Shifting the intervals of sample row k by
    # (2k + 1) * (size + 2), a whole number, lays the rows one after another on one number line,
    # so one sort and one running maximum serve all of them.
    shift = row * (2.0 * (size + 2))
    span[:2] += shift
    np.subtract(np.floor(y) * (size + 2), shift, out=span[2])  # from there to its histogram row
    span = span.take(np.argsort(span[0], kind="stable"), axis=1)
    reach = np.maximum.accumulate(span[1])
    np.maximum(span[:2, 1:], reach[:-1], out=span[:2, 1:])

    # 3. Coverage: weights at the two columns around each interval end (rows: starts, ends, then
    # the same one column on), counted negative, so that with a 1 at the start of every pixel row
    # the running sums along rows give what the stroke leaves uncovered: 1 - coverage.
    column = np.floor(span[:2])
    at = np.empty((4, n_pairs), dtype=np.intp)
    np.add(column, span[2], out=at[:2], casting="unsafe")
    np.add(at[:2], 1, out=at[2:])
    sign = np.array([[-1.0 / rows], [1.0 / rows]])  # a start takes away, an end gives back
    weight = np.empty((4, n_pairs))
    np.multiply(span[:2] - column, sign, out=weight[2:])
    np.subtract(sign, weight[2:], out=weight[:2])
    hist = np.bincount(at.ravel(), weights=weight.ravel(), minlength=n_cells).reshape(-1, size + 2)
    hist[:, 0] += 1.0
    left = np.cumsum(hist, axis=1)[:, :size].reshape(lengths.size, size, size)
    return left if each else np.multiply.reduce(left, axis=0)


def rasterize(
    drawing: Drawing | object,
    size: int = 28,
    *,
    line_diameter: float = LINE_DIAMETER,
    padding: float = PADDING,
) -> np.ndarray:
    """Simplify and render a drawing (a parsed ``Drawing``, or raw strokes, validated first): the
    one path from strokes to a numpy_bitmap. The API's models, training's synthetic doodles and
    the data-set previews all go through it. Raw strokes stay flat arrays from validation to
    pixels, without the per-stroke arrays of a ``Drawing``."""
    pts, lengths = _flatten(drawing) if isinstance(drawing, Drawing) else _parse_flat(drawing)
    return _render_flat(*_simplify_flat(pts, lengths, 2.0), size, line_diameter, padding, None)


def rasterize_strokes(
    drawing: Drawing | object,
    size: int = 28,
    *,
    line_diameter: float = LINE_DIAMETER,
    padding: float = PADDING,
) -> tuple[np.ndarray, np.ndarray]:
    """``rasterize``'s numpy_bitmap of the whole drawing, and each stroke alone drawn where it is
    in that picture: (size, size) and (strokes, size, size), uint8. What the stroke reader sees."""
    pts, lengths = _flatten(drawing) if isinstance(drawing, Drawing) else _parse_flat(drawing)
    pts, lengths = _simplify_flat(pts, lengths, 2.0)
    if lengths.size <= max(1, _MAX_CELLS // (size * (size + 2))):
        # every stroke in one pass: ``_render_flat``'s steps, keeping each stroke's picture
        total_padding = padding * 2.0 + line_diameter
        scale = size / (SPACE + total_padding)
        right, bottom = pts.max(axis=1).tolist()
        flat = (pts + np.array([[(SPACE - right + total_padding) / 2.0], [(SPACE - bottom + total_padding) / 2.0]])) * scale
        counts = lengths
        if lengths.min() == 1:
            dot = lengths == 1
            flat = np.repeat(flat, np.repeat(dot + 1, lengths), axis=1)
            counts = lengths + dot
        with np.errstate(divide="ignore", invalid="ignore"):
            left = _uncovered(flat, counts, line_diameter / 2.0 * scale, size, _sample_rows(size), each=True)
        whole = np.multiply.reduce(left, axis=0)   # as ``_uncovered`` composes them
        return (np.rint(whole * -255.0 + 255.0).astype(np.uint8),
                np.rint(left * -255.0 + 255.0).astype(np.uint8))
    whole = _render_flat(pts, lengths, size, line_diameter, padding, None)
    corner = tuple(pts.max(axis=1).tolist())
    starts = np.cumsum(lengths) - lengths
    each = [_render_flat(pts[:, a:a + n], np.array([n]), size, line_diameter, padding, None, corner)
            for a, n in zip(starts.tolist(), lengths.tolist())]
    return whole, np.stack(each)
