"""Data loaders, synthetic doodles and edge sketches, on the real shared data."""

from __future__ import annotations

import numpy as np
import pytest

from core.configs.cyclegan import MixConfig
from core.drawing import parse_strokes
from training.doodles import synthetic_doodle
from training.data import (
    DataError,
    SketchSource,
    doodle_to_raw,
    edge_sketches,
    load_anime_faces,
    load_quickdraw,
    render_doodle,
)


def test_quickdraw_splits_are_disjoint_and_shaped(data_dir):
    train, hold, every = (load_quickdraw(data_dir, s) for s in ("train", "holdout", "all"))
    assert train.shape == (3600, 28, 28) and hold.shape == (400, 28, 28) and every.shape == (4000, 28, 28)
    assert train.dtype == np.uint8
    assert np.array_equal(np.concatenate([train, hold]), every)
    # numpy_bitmap convention: white ink on a black background
    assert every[:, 0, 0].max() == 0 and every.max() == 255
    with pytest.raises(ValueError, match="valid"):
        load_quickdraw(data_dir, "test")


def test_anime_faces_load_as_rgb(data_dir):
    faces = load_anime_faces(data_dir, 64, 16)
    assert faces.shape == (16, 64, 64, 3) and faces.dtype == np.uint8
    assert faces.std() > 20  # real pictures, not blank
    assert load_anime_faces(data_dir, 32, 4).shape == (4, 32, 32, 3)


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="D2A_DATA_DIR"):
        load_quickdraw(tmp_path)


def test_synthetic_doodles_look_like_quickdraw_smileys(data_dir):
    rng = np.random.default_rng(0)
    synth = np.stack([render_doodle(synthetic_doodle(rng)) for _ in range(200)])
    real = load_quickdraw(data_dir, "train")[:200]
    assert synth.shape == real.shape and synth.dtype == np.uint8
    # similar amount of ink and the drawing centred, as in the real doodles
    ink_s, ink_r = (synth > 128).mean(), (real > 128).mean()
    assert 0.5 < ink_s / ink_r < 2.0
    ys, xs = np.nonzero(synth.mean(axis=0) > 30)
    assert abs(ys.mean() - 13.5) < 3 and abs(xs.mean() - 13.5) < 3
    # different seeds give different doodles; the same seed the same one
    a = render_doodle(synthetic_doodle(np.random.default_rng(1)))
    b = render_doodle(synthetic_doodle(np.random.default_rng(1)))
    c = render_doodle(synthetic_doodle(np.random.default_rng(2)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_synthetic_doodle_exports_to_the_canvas_format():
    rng = np.random.default_rng(3)
    raw = doodle_to_raw(synthetic_doodle(rng), rng)
    assert all(len(s) == 3 and len(s[0]) == len(s[1]) == len(s[2]) for s in raw)
    times = [t for s in raw for t in s[2]]
    assert times == sorted(times)
    parse_strokes(raw)


def test_edge_sketches_follow_the_face(data_dir):
    faces = load_anime_faces(data_dir, 64, 8)
    edges = edge_sketches(faces, 28)
    assert edges.shape == (8, 28, 28) and edges.dtype == np.uint8
    ink = (edges > 128).mean(axis=(1, 2))
    assert np.all(ink > 0.02) and np.all(ink < 0.5)
    flat = np.zeros((1, 64, 64, 3), np.uint8)
    assert edge_sketches(flat, 28).max() == 0  # nothing to trace, no ink


def test_sketch_source_respects_the_mix(data_dir):
    qd = load_quickdraw(data_dir, "train")[:50]
    src = SketchSource(MixConfig(quickdraw=1.0, synthetic=0.0, edges=0.0), qd, None)
    batch = src.sample(np.random.default_rng(0), 10)
    assert all(any(np.array_equal(b, q) for q in qd) for b in batch)
    with pytest.raises(DataError):
        SketchSource(MixConfig(quickdraw=0.0, synthetic=0.0, edges=1.0), qd, None)
    with pytest.raises(ValueError):
        MixConfig(quickdraw=0, synthetic=0, edges=0)
