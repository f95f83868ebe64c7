"""Crayons: a colour per stroke, the hair's strokes found by the stroke reader, and the face's hair
in that colour on every variation; without crayons the variations' hair differs. The API refuses
colours it cannot use with a sentence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.colour import hair_colour, hex_lab
from core.drawing import parse_strokes
from training.doodles import HAIR_STYLES, draw_doodle_parts, sample_doodle_params

ROOT = Path(__file__).resolve().parents[1]
RED, BLUE = "#e53935", "#1e88e5"


@pytest.fixture(scope="module")
def model():
    from core.doodle_model import DoodleFaceModel

    return DoodleFaceModel(ROOT / "models" / "doodle_encoder", ["CPUExecutionProvider"], 1)


def hairy(count: int, seed: int) -> list[list[tuple[str, np.ndarray]]]:
    """Synthetic doodles with hair of every style (seeds no training used), their parts known."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        p = replace(sample_doodle_params(rng), outline=True, hair=6, hair_style=HAIR_STYLES[i % len(HAIR_STYLES)],
                    hair_length=35.0, tilt=0.0)
        out.append(draw_doodle_parts(p, rng))
    return out


def test_the_stroke_reader_finds_the_hair(model):
    found, truth = [], []
    for parts in hairy(24, seed=4242):
        drawing = parse_strokes([s.tolist() for _, s in parts])
        found += model.parts(drawing)
        truth += [part for part, _ in parts]
    found, truth = np.array(found), np.array(truth)
    hair = truth == "hair"
    assert (found[hair] == "hair").mean() >= 0.9          # hair strokes found
    assert (truth[found == "hair"] == "hair").mean() >= 0.9   # and little else called hair
    assert (found == truth).mean() >= 0.85


def test_a_crayon_on_the_hair_colours_every_variation_and_elsewhere_changes_nothing(model):
    red, blue = hex_lab(RED), hex_lab(BLUE)
    nearer = []
    for parts in hairy(8, seed=99):
        drawing = parse_strokes([s.tolist() for _, s in parts])
        plain = np.stack(model.translate(drawing, [0, 1, 2]))
        reds = np.stack(model.translate(drawing, [0, 1, 2], colors=[RED if p == "hair" else None for p, _ in parts]))
        blues = np.stack(model.translate(drawing, [0, 1, 2], colors=[BLUE if p == "hair" else None for p, _ in parts]))
        hr, hb, hp = hair_colour(reds), hair_colour(blues), hair_colour(plain)
        nearer += list((np.linalg.norm(hr - red, axis=1) < np.linalg.norm(hp - red, axis=1) - 10)
                       & (np.linalg.norm(hb - blue, axis=1) < np.linalg.norm(hr - blue, axis=1)))
        # a crayon on the mouth, or the black pen written out as nulls: not the hair's
        mouth = model.translate(drawing, [0, 1, 2], colors=[RED if p == "mouth" else None for p, _ in parts])
        assert np.array_equal(np.stack(mouth), plain)
        assert np.array_equal(np.stack(model.translate(drawing, [0, 1, 2], colors=[None] * len(parts))), plain)
    assert np.mean(nearer) >= 0.85, np.mean(nearer)


def test_without_crayons_the_variations_have_different_hair(model, data_dir):
    from training.data import load_quickdraw

    doodles = load_quickdraw(data_dir, "holdout")[:12]

    def spread(faces: np.ndarray) -> float:
        h = hair_colour(faces.reshape(-1, *faces.shape[2:])).reshape(len(faces), -1, 3)
        return float(np.mean([np.linalg.norm(h[:, i] - h[:, j], axis=1).mean() for i, j in ((0, 1), (0, 2), (1, 2))]))

    varied = spread(model.paint(doodles, variations=3))
    before = spread(model.paint(doodles, variations=3, vary_hair=False))   # the palettes alone
    assert varied >= 40 and varied > 1.5 * before, (varied, before)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from backend.app import create_app
    from backend.settings import Settings

    state = tmp_path_factory.mktemp("crayons")
    settings = Settings(model_poll_s=0, providers=["CPUExecutionProvider"], database_url=f"sqlite:///{state / 'a.db'}", secret_key="crayons",
                        datasets_dir=state / "datasets")
    with TestClient(create_app(settings)) as c:
        yield c


FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]


@pytest.mark.parametrize("colors, model, words", [
    ([RED, None], None, "one colour (or null) per stroke"),
    (["red", None, None, None], None, "pattern"),
    ([RED, None, None, None], "sketch2anime", "takes no colors"),
])
def test_colours_the_api_cannot_use_are_refused_with_a_sentence(client, colors, model, words):
    body = {"strokes": FACE, "colors": colors, "size": 64}
    if model:
        body["model"] = model
    r = client.post("/api/v1/translate", json=body)
    assert r.status_code == 422 and words in str(r.json()["detail"]), r.text


def test_the_api_takes_crayons_and_says_so(client):
    listed = {m["name"]: m for m in client.get("/api/v1/models").json()}
    assert "colors" in listed["doodle_encoder"]["controls"]
    assert "colors" not in listed["sketch2anime"]["controls"]
    hair = [[20, 30, 40, 50, 60], [15, 5, 0, 5, 15]]
    body = {"strokes": [*FACE, hair], "size": 64, "member": "all", "response": "json"}
    plain = client.post("/api/v1/translate", json=body)
    coloured = client.post("/api/v1/translate", json={**body, "colors": [None, None, None, None, RED]})
    assert plain.status_code == coloured.status_code == 200
    assert [i["png_base64"] for i in plain.json()["images"]] != [i["png_base64"] for i in coloured.json()["images"]]


def test_a_tiny_stroke_reader_trains_resumes_and_joins_an_export(tmp_path):
    import shutil

    from core.doodle_model import DoodleFaceModel
    from training.doodle.strokes import StrokePartsConfig, StrokePartsTrainer, attach

    tiny = StrokePartsConfig(doodles=24, validation=6, steps=4, batch=16, width=4, checkpoint_every=2)
    first = StrokePartsTrainer(replace(tiny, steps=2), tmp_path / "run", threads=1)
    first.run()
    with pytest.raises(ValueError, match="another config"):
        StrokePartsTrainer(tiny, tmp_path / "run", threads=1)
    trainer = StrokePartsTrainer(tiny, tmp_path / "whole", threads=1)
    metrics = trainer.run()
    assert {"accuracy", "hair_recall", "hair_precision"} <= set(metrics)
    models = tmp_path / "models"
    for name in ("anime_faces", "face_check"):
        (models / name).parent.mkdir(parents=True, exist_ok=True)
        (models / name).symlink_to(ROOT / "models" / name)
    shutil.copytree(ROOT / "models" / "doodle_encoder", models / "doodle_encoder")
    attach(trainer, models / "doodle_encoder", metrics)
    model = DoodleFaceModel(models / "doodle_encoder", ["CPUExecutionProvider"])
    member = next(m for m in model.manifest.members if m.label == "strokes")
    assert member.parity_max_abs_diff < 1e-4
    parts = model.parts(parse_strokes([s.tolist() for _, s in hairy(1, seed=3)[0]]))
    assert len(parts) == len(hairy(1, seed=3)[0]) and set(parts) <= set(model.spec.stroke_parts.parts)


def test_the_hair_colour_fit_moves_faces_toward_a_colour():
    from core.runtime import FaceModel
    from training.prior.colour import fit, move

    prior = FaceModel(ROOT / "models" / "anime_faces", ["CPUExecutionProvider"])
    predict, step, metrics = fit(prior, count=300, held_out=60)
    assert metrics["r2_a"] > 0.5
    w = prior.w([11, 12, 13, 14], 0.8) - prior.spec.w_avg
    base = np.repeat(w[:, None], prior.spec.num_ws, axis=1)
    target = hex_lab("#3caa46")
    moved = move(base, np.repeat(target[None], 4, 0), predict, step, (2, prior.spec.num_ws), 2.0)
    assert np.array_equal(moved[:, :2], base[:, :2])      # the pose's style inputs are left alone
    before = np.linalg.norm(hair_colour(prior.arrays(base + prior.spec.w_avg)) - target, axis=1)
    after = np.linalg.norm(hair_colour(prior.arrays(moved + prior.spec.w_avg)) - target, axis=1)
    assert (after < before).all() and (before - after).mean() > 20, (before, after)
