"""Stroke parsing, Quick, Draw! simplification and the numpy_bitmap renderer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.drawing import (
    MAX_INK_LENGTH,
    MAX_POINTS_PER_STROKE,
    MAX_POINTS_TOTAL,
    MAX_STROKES,
    Drawing,
    DrawingError,
    ink_length,
    parse_strokes,
    rasterize,
    rdp,
    render,
    simplify,
)
from conftest import random_strokes


def test_parse_accepts_raw_and_simplified_formats():
    raw = [[[0, 10, 20], [0, 5, 0], [0, 16, 33]]]
    simple = [[[0, 10, 20], [0, 5, 0]]]
    a, b = parse_strokes(raw), parse_strokes(simple)
    assert np.array_equal(a.strokes[0], b.strokes[0])
    assert a.strokes[0].shape == (2, 3)


@pytest.mark.parametrize(
    "strokes, words",
    [
        ([], "empty"),
        ([[[1, 2], [1]]], "ragged"),
        ([[[1, 2], [1, 2], [0]]], "ragged"),
        ([[[], []]], "no points"),
        ([[[1, float("nan")], [1, 2]]], "finite"),
        ([[[1, float("inf")], [1, 2]]], "finite"),
        ([[[1, 2e9], [1, 2]]], "beyond"),
        ([[[1, 2]]], "must be"),
        ([[[1, "a"], [1, 2]]], "numbers"),
        ([[[0, 1]] * 2] * (MAX_STROKES + 1), "too many strokes"),
        ([[list(range(MAX_POINTS_PER_STROKE + 1))] * 2], "limit"),
        ("not a list", "list"),
    ],
)
def test_parse_rejects_bad_drawings_with_a_reason(strokes, words):
    with pytest.raises(DrawingError, match=words):
        parse_strokes(strokes)


def _zigzag(n: int, amplitude: float, x0: float = 0.0, dx: float = 0.01) -> list[list[float]]:
    """A stroke of n points going up and down by ``amplitude``: the most line per point."""
    return [[x0 + i * dx for i in range(n)], [amplitude * (i % 2) for i in range(n)]]


def test_the_drawing_from_the_hardening_issue_is_refused():
    # 8 strokes of 4,096 zig-zag points (390 KB) took 2.1 s of CPU each; a taller zig-zag within
    # the old limits took minutes (simplification resamples every unit of line).
    with pytest.raises(DrawingError, match="limit"):
        parse_strokes([_zigzag(4096, 1000, x0=float(i), dx=1.0) for i in range(8)])
    few_points_long_lines = [_zigzag(200, 1000, x0=float(i)) for i in range(4)]  # 800 points, ~800 full-height lines
    with pytest.raises(DrawingError, match="too many long lines"):
        parse_strokes(few_points_long_lines)


def test_the_worst_drawing_within_the_limits_is_cheap():
    """The costliest shapes within the limits (every point kept by the simplification, all the
    line the limit allows, long strokes for the simplification's n * kept worst case) rasterize
    in well under a second: measured 0.2-0.3 s on the 2-core test machine; 2.1 s and minutes before."""
    per, n = MAX_POINTS_PER_STROKE, MAX_POINTS_TOTAL // MAX_POINTS_PER_STROKE
    frame = [[0.0, 255.0], [0.0, 255.0]]  # the drawing spans the 256-unit space: no rescaling
    amplitude = 0.98 * (MAX_INK_LENGTH - 400) / MAX_POINTS_TOTAL
    shapes = {
        "small zig-zags": [_zigzag(per - 1, 4.5, x0=10.0 * i, dx=0.05) for i in range(n)] + [frame],
        "the most line": [_zigzag(per - 1, amplitude, x0=float(i), dx=0.25) for i in range(n)] + [frame],
    }
    assert simplify(parse_strokes(shapes["small zig-zags"])).n_points > 0.9 * MAX_POINTS_TOTAL  # every point kept
    assert ink_length(parse_strokes(shapes["the most line"]).strokes) > 0.95 * MAX_INK_LENGTH
    for name, raw in shapes.items():
        t0 = time.process_time()
        drawing = parse_strokes(raw)
        assert drawing.n_points > 0.99 * MAX_POINTS_TOTAL
        rasterize(drawing, 28)
        assert time.process_time() - t0 < 1.0, name


def test_simplify_normalises_to_quickdraw_space(rng):
    for _ in range(50):
        d = simplify(parse_strokes(random_strokes(rng)))
        pts = np.concatenate(d.strokes, axis=1)
        # top-left aligned and scaled so the longest side spans 0..255; RDP may drop an extreme
        # point, but never by more than its epsilon
        assert np.all(pts.min(axis=1) >= -1e-9) and np.all(pts.min(axis=1) <= 2.0)
        assert pts.max() <= 255.0 + 1e-9 and pts.max() >= 253.0


def test_simplify_keeps_shape_within_epsilon():
    t = np.linspace(0, 2 * np.pi, 400)
    circle = [np.stack([100 + 90 * np.cos(t), 100 + 90 * np.sin(t)]).tolist()]
    d = simplify(parse_strokes(circle))
    s = d.strokes[0]
    assert 10 < s.shape[1] < 60  # far fewer points than drawn
    # every resampled point of the scaled circle stays within epsilon of the simplified polyline
    dense = np.stack([127.5 + 127.5 * np.cos(t), 127.5 + 127.5 * np.sin(t)])
    segs = list(zip(s.T[:-1], s.T[1:]))

    def dist(p):
        best = np.inf
        for a, b in segs:
            ab = b - a
            u = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-12), 0, 1)
            best = min(best, np.linalg.norm(p - (a + u * ab)))
        return best

    assert max(dist(p) for p in dense.T) <= 2.0 + 0.2


def test_rdp_drops_collinear_points_and_keeps_corners():
    line = np.array([[0, 1, 2, 3, 4, 10, 10], [0, 0, 0, 0, 0, 0, 10]], dtype=float)
    out = rdp(line, 2.0)
    assert out.T.tolist() == [[0, 0], [10, 0], [10, 10]]


def test_single_point_drawing_renders_a_centred_dot():
    img = rasterize([[[5], [5]]], 28)
    assert img.max() > 64  # a 1.5 px round dot: visible, not saturated (as cairo draws it)
    ys, xs = np.nonzero(img)
    assert abs(ys.mean() - 13.5) < 1 and abs(xs.mean() - 13.5) < 1


def test_render_is_white_on_black_and_any_size(rng):
    d = simplify(parse_strokes(random_strokes(rng, 3)))
    for size in (28, 64, 128):
        img = render(d, size)
        assert img.shape == (size, size) and img.dtype == np.uint8
        assert img[0, 0] == 0 and img.max() == 255
    # the same drawing at two sizes agrees once brought to one size
    small = render(d, 28).astype(float)
    big = render(d, 112).astype(float).reshape(28, 4, 28, 4).mean(axis=(1, 3))
    assert np.abs(small - big).mean() < 4.0


def test_matches_the_cairo_reference_on_many_random_drawings(rng):
    cairo_reference = pytest.importorskip("cairo_reference")
    pytest.importorskip("cairo")
    diffs = []
    for _ in range(300):
        d = simplify(parse_strokes(random_strokes(rng)))
        ours = render(d, 28).astype(float)
        ref = cairo_reference.cairo_render(list(d.strokes), 28).astype(float)
        diffs.append(np.abs(ours - ref).mean())
    assert max(diffs) <= 2.0, f"worst mean abs difference {max(diffs):.2f}/255"
    assert np.mean(diffs) < 1.0


def test_matches_the_cairo_reference_at_larger_sizes(rng):
    cairo_reference = pytest.importorskip("cairo_reference")
    pytest.importorskip("cairo")
    for size in (64, 128):
        for _ in range(20):
            d = simplify(parse_strokes(random_strokes(rng)))
            diff = np.abs(render(d, size).astype(float) - cairo_reference.cairo_render(list(d.strokes), size)).mean()
            assert diff <= 2.0


def test_matches_the_cairo_reference_at_odd_sizes(rng):
    # the renderer lays rows side by side at multiples of the width: odd widths must work too
    cairo_reference = pytest.importorskip("cairo_reference")
    pytest.importorskip("cairo")
    for size in (9, 29, 57):
        for _ in range(10):
            d = simplify(parse_strokes(random_strokes(rng)))
            diff = np.abs(render(d, size).astype(float) - cairo_reference.cairo_render(list(d.strokes), size)).mean()
            assert diff <= 2.0


def test_drawing_dataclass_counts_points():
    d = Drawing((np.zeros((2, 3)), np.zeros((2, 4))))
    assert d.n_points == 7
