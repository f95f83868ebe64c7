"""Hair as drawn: the hair strokes are read apart from the face (they neither change who the face
is nor roll it), long strokes falling beside the face lengthen the hair beside the cheeks,
spikes on top shorten it, a dot says nothing, and a drawing without hair paints the face it
painted before the walk existed."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.doodle_model import STROKE_ATTRIBUTES, hair_drop
from core.drawing import parse_strokes
from training.doodle.hair_edits import bases, hair_edits, strokes_of
from training.doodles import draw_doodle_parts, sample_doodle_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    from core.doodle_model import DoodleFaceModel

    return DoodleFaceModel(ROOT / "models" / "doodle_encoder", ["CPUExecutionProvider"], 1)


def parts_of(style: str, tilt: float, seed: int):
    rng = np.random.default_rng(seed)
    p = replace(sample_doodle_params(rng), outline=True, outline_halves=False, hair=4, hair_style=style,
                hair_length=30.0, tilt=tilt, shear=0.0)
    drawn = draw_doodle_parts(p, rng)
    return [s for _, s in drawn], [part for part, _ in drawn]


def test_how_far_the_hair_falls_is_read_upright_and_specks_do_not_count():
    for seed in range(6):
        long_strokes, long_parts = parts_of("long", 0.0, seed)
        spiky_strokes, spiky_parts = parts_of("spiky", 0.0, seed)
        assert hair_drop(long_strokes, long_parts, 0.0) > 1.0          # below the chin
        assert hair_drop(spiky_strokes, spiky_parts, 0.0) < 0.0        # on top of the head
        # the same drawing tilted 25 degrees, read with its tilt, falls as far
        tilted, tilted_parts = parts_of("long", math.radians(25), seed)
        assert hair_drop(tilted, tilted_parts, math.radians(25)) == pytest.approx(
            hair_drop(long_strokes, long_parts, 0.0), abs=0.15)
    strokes, parts = parts_of("long", 0.0, 0)
    no_hair = [(s, p) for s, p in zip(strokes, parts) if p != "hair"]
    assert math.isnan(hair_drop([s for s, _ in no_hair], [p for _, p in no_hair], 0.0))
    outline = strokes[parts.index("outline")]
    speck = np.array([[outline[0].mean(), outline[0].mean() + 1.0], [outline[1].max() + 40, outline[1].max() + 40]])
    assert math.isnan(hair_drop([*[s for s, _ in no_hair], speck], [*[p for _, p in no_hair], "hair"], 0.0))
    assert math.isnan(hair_drop([s for s, p in zip(strokes, parts) if p == "hair"], ["hair"] * 4, 0.0))
    # a fringe (down from the top of the head into the forehead) says nothing of the hair's length;
    # the same stroke carried on down beside the cheek does
    (x0, y0), (x1, y1) = outline.min(axis=1), outline.max(axis=1)
    cx, cy, ry = (x0 + x1) / 2, (y0 + y1) / 2, (y1 - y0) / 2
    fringe = np.array([[cx + 5, cx], [y0, cy - 0.4 * ry]])
    falling = np.array([[cx, x0 - 10, x0 - 15], [y0, cy, cy + 0.9 * ry]])
    assert math.isnan(hair_drop([outline, fringe], ["outline", "hair"], 0.0))
    assert hair_drop([outline, fringe, falling], ["outline", "hair", "hair"], 0.0) == pytest.approx(0.9, abs=0.05)


def test_the_shipped_export_has_the_long_hair_walk_set_by_the_strokes(model):
    walk = next(w for w in model.spec.walks if w.name == "long_hair")
    assert walk.attribute in STROKE_ATTRIBUTES and walk.keep_identity
    assert walk.low < 0 < walk.high
    assert model.directions.shape[0] == len(model.spec.walks)


def test_a_drawing_without_hair_paints_the_face_it_painted_before(model):
    """The long-hair walk adds to the face's own hair: with no hair strokes it does not move,
    and the strokes' path gives exactly the bitmap's face."""
    for i, p in enumerate(bases(4, seed=5)):
        drawing = parse_strokes([s.tolist() for s in strokes_of(p, 5, i, None)])
        assert "hair" not in model.parts(drawing)
        bitmap = model.bitmap(drawing)[None]
        attributes, _ = model.read(bitmap, [drawing])
        assert np.isnan(attributes[0, -len(STROKE_ATTRIBUTES):]).all()
        assert np.array_equal(model.translate(drawing, [0, 1, 2]), list(model.paint(bitmap, variations=3)[0]))


def test_hair_strokes_keep_who_the_face_is_and_set_how_long_its_hair_is(model):
    k = [w.name for w in model.spec.walks].index("long_hair")
    for i, p in enumerate(bases(4, seed=6)):
        plain = parse_strokes([s.tolist() for s in strokes_of(p, 6, i, None)])
        read = {}
        for added in ("long", "spiky"):
            drawing = parse_strokes([s.tolist() for s in strokes_of(p, 6, i, added)])
            attributes, z = model.read(model.bitmap(drawing)[None], [drawing])
            _, z_plain = model.read(model.bitmap(plain)[None], [plain])
            # the identity is read off the drawing without its hair: the plain drawing's
            assert np.allclose(z, z_plain, atol=1e-5)
            read[added] = model.coefficients(attributes, 1.0)[0, k]
        assert read["long"] > 0.5 and read["spiky"] < 0


def test_long_hair_strokes_lengthen_the_hair_beside_the_cheeks_and_a_dot_does_not(model, tmp_path):
    rows = hair_edits(model, count=16, seed=0, grid_dir=tmp_path, label="test")
    long, spiky, dot = rows["hair none -> long strokes"], rows["hair none -> spiky"], rows["a dot (control)"]
    assert long["hair_sides_after"] - long["hair_sides_before"] > 0.06
    assert spiky["hair_sides_after"] < spiky["hair_sides_before"]
    assert abs(dot["hair_sides_after"] - dot["hair_sides_before"]) < 0.03
    assert long["agreement"] > 2 * dot["moved"] and dot["change_ratio"] < 0.3 < long["change_ratio"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["hair_dot_test.png", "hair_long_test.png",
                                                          "hair_spiky_test.png"]


def test_attaching_the_stroke_walks_twice_replaces_them(tmp_path):
    from core.doodle_model import DoodleFaceModel
    from training.doodle.stroke_walks import attach

    for name in ("doodle_encoder", "anime_faces", "face_check"):
        shutil.copytree(ROOT / "models" / name, tmp_path / name)
    before = json.loads((tmp_path / "doodle_encoder" / "manifest.json").read_text())["doodle"]["walks"]
    for _ in range(2):
        metrics = attach(tmp_path / "doodle_encoder", steps=3, measure_faces=6)
    assert set(metrics) == {"long_hair"} and 0 <= metrics["long_hair"]["hair_sides_0"] <= 1
    after = json.loads((tmp_path / "doodle_encoder" / "manifest.json").read_text())["doodle"]["walks"]
    assert [w["name"] for w in after] == [w["name"] for w in before]      # replaced, not added twice
    model = DoodleFaceModel(tmp_path / "doodle_encoder", ["CPUExecutionProvider"], 1)   # its checksums hold
    assert model.directions.shape[0] == len(after)


def test_hair_squiggles_read_apart_neither_roll_a_level_head_nor_break_it_as_often(model):
    """The hostile set's level drawings with hair of every style: painted from their strokes (the
    page's path, the hair read apart) the heads lean less and the guard stops fewer faces than
    painted from their bitmaps (as before), and as little as a plain drawing's lean."""
    from training.doodle.hostile import hostile_drawings, hostile_set, report
    from training.doodles import HAIR_STYLES

    cases = {k: v for k, v in hostile_set(12).items() if k in (*HAIR_STYLES, "plain")}
    strokes = hostile_drawings(12)
    before = {r["case"]: r for r in report(model, cases, follows=(None,))}
    after = {r["case"]: r for r in report(model, cases, follows=(None,), strokes=strokes)}
    assert before["plain"] == after["plain"]        # no hair: the very same faces
    lean = {k: np.mean([r[c]["roll"] for c in HAIR_STYLES]) for k, r in (("before", before), ("after", after))}
    stopped = {k: np.mean([r[c]["stopped"] for c in HAIR_STYLES]) for k, r in (("before", before), ("after", after))}
    assert lean["after"] < lean["before"] - 1.5 and lean["after"] < after["plain"]["roll"] + 2.0, lean
    assert stopped["after"] < stopped["before"], stopped
