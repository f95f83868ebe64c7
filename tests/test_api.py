"""The REST API with the shipped model: every accepted format, every kind of bad input."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from backend.app import create_app
from core.manifest import ModelManifest
from backend.settings import Settings
from training.data import doodle_to_raw
from training.doodles import synthetic_doodle

FACE_SIMPLE = [
    [[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
    [[50, 52], [50, 52]],
    [[80, 82], [50, 52]],
    [[45, 65, 85], [75, 85, 75]],
]
FACE_RAW = [[x, y, [i * 10.0 for i in range(len(x))]] for x, y in FACE_SIMPLE]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings())) as c:
        yield c


def _png(content: bytes) -> Image.Image:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(content))


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["model"] == "doodle_encoder"
    assert set(r.json()["models"]) == {"doodle_encoder", "sketch2anime", "lineart"}
    assert r.json()["providers"][0] in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_models_lists_the_drawing_models_the_default_and_the_random_face_model(client):
    listed = client.get("/api/v1/models").json()
    assert listed[0]["name"] == "doodle_encoder"  # the default first
    models = {m["name"]: m for m in listed}
    assert set(models) == {"doodle_encoder", "sketch2anime", "lineart", "anime_faces"}
    assert models["anime_faces"]["draws_from"] == "seed" and not models["anime_faces"]["default"]
    models.pop("anime_faces")
    lineart = models.pop("lineart")
    assert lineart["serving"] and lineart["pen"] == "line_art" and lineart["raster_size"] == 64
    # served to apps, but not offered to kids on the drawing page unless the server says so
    assert lineart["on_page"] is False and all(m["on_page"] for m in models.values())
    assert all(m["serving"] and m["draws_from"] == "drawing" and m["raster_size"] == 28 and m["pen"] == "doodle"
               for m in models.values())
    assert models["doodle_encoder"]["default"] and not models["sketch2anime"]["default"]
    assert models["doodle_encoder"]["controls"] == ["seed", "follow", "colors"] and models["sketch2anime"]["controls"] == []
    assert len(models["doodle_encoder"]["members"]) == 3 and len(models["sketch2anime"]["members"]) >= 1


def test_a_request_picks_its_model(client):
    body = {"strokes": FACE_SIMPLE, "size": 64, "response": "json"}
    default = client.post("/api/v1/translate", json=body).json()
    cyclegan = client.post("/api/v1/translate", json={**body, "model": "sketch2anime"}).json()
    assert default["model"] == "doodle_encoder" and cyclegan["model"] == "sketch2anime"
    assert default["images"][0]["png_base64"] != cyclegan["images"][0]["png_base64"]
    r = client.post("/api/v1/translate", json={**body, "model": "anime_faces"})
    assert r.status_code == 422 and "unknown model" in r.json()["detail"] and "sketch2anime" in r.json()["detail"]


def test_seed_gives_new_colours_and_follow_moves_the_face(client):
    def face(**kw):
        r = client.post("/api/v1/translate", json={"strokes": FACE_SIMPLE, "size": 64, **kw})
        assert r.status_code == 200, r.text
        return np.asarray(_png(r.content), np.float32)

    own, seven, seven_again, eight = face(), face(seed=7), face(seed=7), face(seed=8)
    assert np.array_equal(seven, seven_again)  # a seed is a palette: the same every time
    assert np.abs(seven - eight).mean() > 3 and np.abs(own - seven).mean() > 3
    assert np.abs(face(follow=0.0) - face(follow=1.0)).mean() > 3
    # a palette changes the colours and keeps the layout: the faces' light and dark places agree
    # much better with each other than with the face of another drawing
    other = np.asarray(_png(client.post("/api/v1/translate", json={
        "strokes": [[[0, 100, 200, 100, 0], [0, 200, 0, 100, 0]]], "size": 64, "seed": 8}).content), np.float32)
    lum = [x.mean(axis=-1).ravel() for x in (seven, eight, other)]
    assert np.corrcoef(lum[0], lum[1])[0, 1] > np.corrcoef(lum[2], lum[1])[0, 1]


def test_a_line_drawing_is_coloured_as_drawn_by_the_line_art_model(client):
    """The line-art model colours the drawing it is given instead of reinventing a face: a
    lopsided drawing (hair strands on one side only) and its mirror image give faces that are
    mirror images of each other, far more alike mirrored than as they come."""
    def face(strokes):
        r = client.post("/api/v1/translate", json={"strokes": strokes, "size": 64, "model": "lineart"})
        assert r.status_code == 200, r.text
        return np.asarray(_png(r.content).convert("RGB"), np.float32)

    detailed = [[[40, 60, 128, 196, 216], [140, 60, 20, 60, 140]],        # hair line
                [[60, 128, 196], [170, 240, 170]],                        # chin
                [[90, 100, 110], [120, 112, 120]], [[146, 156, 166], [120, 112, 120]],   # eyes
                [[110, 128, 146], [190, 198, 190]],                       # mouth
                [[50, 70, 60, 80, 70, 90], [70, 150, 90, 170, 110, 200]],  # hair strands, left only
                [[45, 55, 65], [60, 200, 240]]]
    mirrored = [[[256 - x for x in xs], ys] for xs, ys in detailed]
    a, b = face(detailed), face(mirrored)
    colour = a.max(axis=2) - a.min(axis=2)
    assert colour.mean() > 20  # a coloured face, not a grey copy of the lines
    grey_a, grey_b = a.mean(axis=2).ravel(), b.mean(axis=2)

    def corr(x, y):
        return float(np.corrcoef(x, y.ravel())[0, 1])

    assert corr(grey_a, grey_b[:, ::-1]) > 0.8 and corr(grey_a, grey_b[:, ::-1]) > corr(grey_a, grey_b) + 0.2


def test_controls_a_model_does_not_take_are_a_422(client):
    r = client.post("/api/v1/translate", json={"strokes": FACE_SIMPLE, "model": "sketch2anime", "follow": 0.5})
    assert r.status_code == 422 and "takes no follow" in r.json()["detail"]


@pytest.mark.parametrize("strokes", [FACE_SIMPLE, FACE_RAW], ids=["simplified", "raw"])
@pytest.mark.parametrize("size", [64, 128, 256])
def test_translate_formats_give_a_png_of_the_declared_size(client, strokes, size):
    r = client.post("/api/v1/translate", json={"strokes": strokes, "size": size})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = _png(r.content)
    assert img.size == (size, size) and img.mode == "RGB"
    assert np.asarray(img).std() > 5  # a picture, not a flat colour


def test_canvas_format_from_a_synthetic_doodle(client):
    rng = np.random.default_rng(0)
    strokes = doodle_to_raw(synthetic_doodle(rng), rng)
    r = client.post("/api/v1/translate", json={"strokes": strokes})
    assert r.status_code == 200 and _png(r.content).size == (256, 256)


@pytest.mark.parametrize("model", ["doodle_encoder", "sketch2anime", "lineart"])
def test_all_members_as_json_and_as_a_strip(client, model):
    n = len(next(m for m in client.get("/api/v1/models").json() if m["name"] == model)["members"])
    body = {"strokes": FACE_RAW, "member": "all", "size": 64, "model": model}
    r = client.post("/api/v1/translate", json={**body, "response": "json"})
    out = r.json()
    assert r.status_code == 200 and out["model"] == model and len(out["images"]) == n
    for i, im in enumerate(out["images"]):
        assert im["member"] == i and _png(base64.b64decode(im["png_base64"])).size == (64, 64)
    strip = client.post("/api/v1/translate", json=body)
    assert _png(strip.content).size == (64 * n, 64)


def test_same_drawing_same_picture_and_different_drawings_differ(client):
    a = client.post("/api/v1/translate", json={"strokes": FACE_SIMPLE, "size": 64}).content
    b = client.post("/api/v1/translate", json={"strokes": FACE_SIMPLE, "size": 64}).content
    other = [[[0, 100, 200, 100, 0], [0, 200, 0, 100, 0]]]
    c = client.post("/api/v1/translate", json={"strokes": other, "size": 64}).content
    assert a == b and a != c


BAD = {
    "empty": ({"strokes": []}, "empty"),
    "empty stroke": ({"strokes": [[[], []]]}, "no points"),
    "ragged": ({"strokes": [[[1, 2, 3], [1, 2]]]}, "ragged"),
    "ragged time": ({"strokes": [[[1, 2], [1, 2], [1]]]}, "ragged"),
    "one row": ({"strokes": [[[1, 2]]]}, "must be"),
    "absurd": ({"strokes": [[[1, 1e12], [1, 2]]]}, "beyond"),
    "too many strokes": ({"strokes": [[[1], [1]]] * 300}, "at most 256"),
    "too many points": ({"strokes": [[list(range(5000)), list(range(5000))]]}, "limit"),
    "strings": ({"strokes": [[["a", "b"], [1, 2]]]}, "valid number"),
    "no strokes": ({}, "Field required"),
    "bad member": ({"strokes": FACE_SIMPLE, "member": 99}, "does not exist"),
    "bad member word": ({"strokes": FACE_SIMPLE, "member": "some"}, "all"),
    "bad size": ({"strokes": FACE_SIMPLE, "size": 5}, "greater than or equal"),
    "huge size": ({"strokes": FACE_SIMPLE, "size": 1024}, "over the limit"),
    "bad response": ({"strokes": FACE_SIMPLE, "response": "gif"}, "png"),
    "extra field": ({"strokes": FACE_SIMPLE, "colour": "red"}, "Extra inputs"),
    "follow past 1": ({"strokes": FACE_SIMPLE, "follow": 1.5}, "less than or equal"),
    "negative seed": ({"strokes": FACE_SIMPLE, "seed": -1}, "greater than or equal"),
    "odd model name": ({"strokes": FACE_SIMPLE, "model": "../etc"}, "pattern"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_a_422_that_says_why(client, name):
    body, words = BAD[name]
    r = client.post("/api/v1/translate", json=body)
    assert r.status_code == 422, r.text
    assert words in json.dumps(r.json()), r.text


def test_a_drawing_is_parsed_once_per_request(client, monkeypatch):
    from backend import schemas

    calls = []
    parse = schemas.parse_strokes
    monkeypatch.setattr(schemas, "parse_strokes", lambda raw: calls.append(len(raw)) or parse(raw))
    assert client.post("/api/v1/translate", json={"strokes": FACE_SIMPLE, "size": 64}).status_code == 200
    assert calls == [len(FACE_SIMPLE)]
    r = client.post("/api/v1/translate", json={"strokes": [[[], []]]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "strokes"]


@pytest.mark.parametrize("raw", [b"NaN", b"{\"strokes\": [[[1, NaN], [1, 2]]]}",
                                 b"{\"strokes\": [[[1, Infinity], [1, 2]]]}", b"{not json", b""])
def test_malformed_or_non_finite_json_is_a_422(client, raw):
    r = client.post("/api/v1/translate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


def test_oversized_body_is_refused_before_parsing(client):
    r = client.post("/api/v1/translate", content=b"[" + b"1," * 3_000_000 + b"1]",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_openapi_documents_translate(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/translate" in spec["paths"]
    assert "strokes" in spec["components"]["schemas"]["TranslateRequest"]["properties"]


def test_a_tampered_model_is_not_served(tmp_path):
    shutil.copytree(Settings().models_dir / "sketch2anime", tmp_path / "sketch2anime")
    m = ModelManifest.load(tmp_path / "sketch2anime")
    with open(tmp_path / "sketch2anime" / m.members[0].file, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with TestClient(create_app(Settings(models_dir=tmp_path, default_model="sketch2anime"))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "sha256" in r.json()["reason"]
        t = c.post("/api/v1/translate", json={"strokes": FACE_SIMPLE})
        assert t.status_code == 503 and "sha256" in t.json()["detail"]
