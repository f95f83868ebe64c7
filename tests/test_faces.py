"""Random anime faces: the API under /api/v1/faces and the kids' faces page, end to end.

A tiny StyleGAN is trained for 2 steps and exported into a scratch models folder (beside a
copy of the shipped sketch model, which /readyz needs); the API (uvicorn) and a Celery worker on
the ``sampling`` queue run as real processes on a scratch database and broker.

- faces from seeds: a strip of the right size; the same request again comes from the cache (same
  request id, no new row, no new work); a seed always gives the same face, different seeds
  different faces; psi 0 gives the average face whatever the seed;
- style mixing: the grid's top row and left column are the parents, the inside cells differ from
  both, an explicit [0, num_ws - 1] range gives the row face itself;
- interpolation: a there-and-back GIF of ``2 * frames - 2`` frames, or a strip;
- bad input is 422 (and queues nothing), no face model is 503, and with no worker a request
  answers 202 with an address that gives the picture once a worker starts;
- the page in a real Chromium: new faces, picking A and B, a mix, the psi slider, saving a PNG,
  a morph GIF, a 202 answer and an error with "Try again", and the phone layout.

Set D2A_SCREENSHOTS=1 to also save docs/img/faces_page.png.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from a11y import assert_focus_ring, axe_violations, covered_controls, in_view, tab_to, unnamed_buttons
from conftest import ROOT, wait_for_function
from procs import Proc, api_client, env_for, start_api, start_worker, wait_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GIF_MAGIC = b"GIF89a"
SHOTS_DIR = ROOT / "docs" / "img"

TINY = dict(kind="stylegan", image_size=16, z_dim=8, w_dim=8, ngf=4, ndf=4, max_channels=8, mapping_layers=2,
            batch_size=4, steps=2, anime_limit=32, log_every=1, sample_every=2, checkpoint_every=1,
            sample_count=4, eval_count=8, seed=3, ema_rampup=None, r1_every=2)


# ---------------------------------------------------------------------------------------------
# The model, the processes


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, data_dir) -> Path:
    """A models folder with the tiny StyleGAN as "anime_faces" and the shipped sketch model."""
    import torch

    from training.export_gan import export_gan_run
    from core.configs.gans import load_gan_config
    from training.train_gan import GANTrainer

    base = tmp_path_factory.mktemp("faces_model")
    shutil.copytree(ROOT / "models" / "sketch2anime", base / "models" / "sketch2anime")
    if os.environ.get("D2A_SCREENSHOTS") == "1":  # pictures for the docs show the shipped model
        shutil.copytree(ROOT / "models" / "anime_faces", base / "models" / "anime_faces")
        return base / "models"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        GANTrainer(load_gan_config(TINY), base / "run", data_dir).run()
        export_gan_run(base / "run", base / "models" / "anime_faces", name="anime_faces", version="test")
    finally:
        torch.set_num_threads(threads)
    return base / "models"


def faces_env(state: Path, models: Path, **extra: str) -> dict[str, str]:
    # the scratch models folder holds the CycleGAN and a scratch StyleGAN: the CycleGAN draws
    return env_for(state, D2A_MODELS_DIR=str(models), D2A_FACE_MODEL="anime_faces",
                   D2A_DEFAULT_MODEL="sketch2anime", D2A_DRAWING_MODELS='["sketch2anime"]',
                   D2A_PROVIDERS=json.dumps(["CPUExecutionProvider"]), D2A_INTRA_OP_THREADS="1",
                   D2A_LOG_LEVEL="warning", **extra)


def worker_ready(w: Proc) -> bool:
    if not w.alive():
        raise AssertionError(f"the worker exited:\n{w.tail()}")
    return " ready." in w.tail(200)


@dataclass
class Deployment:
    base: str
    state: Path
    client: httpx.Client
    api: Proc
    worker: Proc
    num_ws: int

    def rows(self, where: str = "1=1", *args) -> list[tuple]:
        with sqlite3.connect(self.state / "app.db", timeout=10) as db:
            return db.execute(f"SELECT id, kind, cache_key, status FROM sample_requests WHERE {where}", args).fetchall()

    def logs(self) -> str:
        return f"--- api:\n{self.api.tail()}\n--- worker:\n{self.worker.tail()}"


@pytest.fixture(scope="module")
def deployment(models_dir, tmp_path_factory):
    state = tmp_path_factory.mktemp("faces_state")
    env = faces_env(state, models_dir, D2A_SAMPLE_WAIT_S="60")
    api, base = start_api(env, state / "api.log")
    worker = start_worker(env, state / "worker.log", "sampler", queues="sampling")
    client = api_client(base, timeout=90)
    try:
        wait_for(lambda: worker_ready(worker), 90, "the sampling worker to start", on_timeout=worker.tail)
        num_ws = json.loads((models_dir / "anime_faces" / "manifest.json").read_text())["stylegan"]["num_ws"]
        yield Deployment(base, state, client, api, worker, num_ws)
    finally:
        client.close()
        worker.discard()
        api.stop()


# ---------------------------------------------------------------------------------------------
# Helpers


def picture(r: httpx.Response, media: str = "image/png") -> Image.Image:
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == media
    assert r.content[:8 if media == "image/png" else 6] == (PNG_MAGIC if media == "image/png" else GIF_MAGIC)
    return Image.open(io.BytesIO(r.content))


def rgb(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def cell(a: np.ndarray, col: int, row: int, size: int) -> np.ndarray:
    return a[row * size:(row + 1) * size, col * size:(col + 1) * size]


def diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in 0..255 levels."""
    return float(np.abs(a - b).mean())


def faces(d: Deployment, seeds: list[int], psi: float, size: int) -> np.ndarray:
    return rgb(picture(d.client.post("/api/v1/faces/random", json={"seeds": seeds, "psi": psi, "size": size})))


# ---------------------------------------------------------------------------------------------
# The API


def test_faces_from_seeds_are_cached_and_deterministic(deployment):
    d = deployment
    body = {"seeds": [1, 2, 3], "psi": 1.0, "size": 64}
    t0 = time.monotonic()
    first = d.client.post("/api/v1/faces/random", json=body)
    fresh_s = time.monotonic() - t0
    strip = picture(first)
    assert strip.size == (3 * 64, 64)
    rid = first.headers["x-request-id"]
    mine = d.rows("id = ?", int(rid))
    assert mine and mine[0][1] == "faces" and mine[0][3] == "done", mine
    rows_before = d.rows()

    t0 = time.monotonic()
    again = d.client.post("/api/v1/faces/random", json=body)
    cached_s = time.monotonic() - t0
    assert again.status_code == 200 and again.headers["x-request-id"] == rid
    assert again.content == first.content
    assert d.rows() == rows_before, "the cached answer made a new request"
    assert d.rows("cache_key = ?", mine[0][2]) == mine
    assert cached_s < 2.0, f"the cached answer took {cached_s:.2f} s (fresh: {fresh_s:.2f} s)"

    a = rgb(strip)
    one, two, three = (cell(a, k, 0, 64) for k in range(3))
    assert min(diff(one, two), diff(two, three), diff(one, three)) > 2, "different seeds gave the same face"
    # a seed is a face: seed 2 alone (another batch, another request) is the strip's middle face
    alone = faces(d, [2], 1.0, 64)
    assert alone.shape == (64, 64, 3) and np.abs(alone - two).max() <= 2
    # a different size is a different request, not the cached picture
    assert d.client.post("/api/v1/faces/random", json={**body, "size": 32}).headers["x-request-id"] != rid


def test_psi_zero_is_the_average_face_for_every_seed(deployment):
    d = deployment
    avg = faces(d, [4, 5, 6], 0.0, 48)
    cells = [cell(avg, k, 0, 48) for k in range(3)]
    assert all(np.array_equal(cells[0], c) for c in cells[1:]), [diff(cells[0], c) for c in cells[1:]]
    assert np.array_equal(cell(faces(d, [99], 0.0, 48), 0, 0, 48), cells[0])
    wild = faces(d, [4, 5, 6], 1.0, 48)
    assert diff(cell(wild, 0, 0, 48), cells[0]) > 2 and diff(cell(wild, 0, 0, 48), cell(wild, 1, 0, 48)) > 2
    half = faces(d, [4], 0.5, 48)  # psi moves a face towards the average
    assert diff(half, cells[0]) < diff(cell(wild, 0, 0, 48), cells[0])


def test_style_mixing_grid(deployment):
    d = deployment
    s = 64
    r = d.client.post("/api/v1/faces/mix", json={"row_seeds": [1], "col_seeds": [2], "layers": "coarse",
                                                  "psi": 1.0, "size": s})
    grid = rgb(picture(r))
    assert grid.shape == (2 * s, 2 * s, 3)
    assert (cell(grid, 0, 0, s) == 255).all(), "the top-left corner is not blank"
    face_1, face_2 = faces(d, [1], 1.0, s), faces(d, [2], 1.0, s)
    assert np.abs(cell(grid, 1, 0, s) - face_2).max() <= 2, "the top row is not the column face"
    assert np.abs(cell(grid, 0, 1, s) - face_1).max() <= 2, "the left column is not the row face"
    coarse = cell(grid, 1, 1, s)
    assert diff(coarse, face_1) > 2 and diff(coarse, face_2) > 2, "the mix is one of its parents"

    mixed = {"coarse": coarse}
    for layers in ("middle", "fine"):
        g = rgb(picture(d.client.post("/api/v1/faces/mix", json={"row_seeds": [1], "col_seeds": [2],
                                                                  "layers": layers, "psi": 1.0, "size": s})))
        mixed[layers] = cell(g, 1, 1, s)
        assert diff(mixed[layers], face_1) > 1 and diff(mixed[layers], face_2) > 1, layers
    assert diff(mixed["coarse"], mixed["fine"]) > 2 and diff(mixed["coarse"], mixed["middle"]) > 1

    # every style input from the row face: the row face itself; explicit ranges work
    everything = rgb(picture(d.client.post("/api/v1/faces/mix", json={
        "row_seeds": [1], "col_seeds": [2], "layers": [0, d.num_ws - 1], "psi": 1.0, "size": s})))
    assert np.abs(cell(everything, 1, 1, s) - face_1).max() <= 2

    # a bigger grid: one more row and column than seeds
    big = picture(d.client.post("/api/v1/faces/mix", json={"row_seeds": [1, 3], "col_seeds": [2, 4, 5],
                                                             "layers": "middle", "size": 32}))
    assert big.size == (4 * 32, 3 * 32)


def test_interpolation_gif_goes_there_and_back(deployment):
    d = deployment
    r = d.client.post("/api/v1/faces/interpolate", json={"seed_a": 1, "seed_b": 2, "frames": 5, "psi": 1.0,
                                                          "size": 64, "format": "gif"})
    gif = picture(r, "image/gif")
    assert gif.size == (64, 64)
    assert gif.n_frames == 5 * 2 - 2
    frames = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(rgb(gif))
    face_1, face_2 = faces(d, [1], 1.0, 64), faces(d, [2], 1.0, 64)
    assert diff(frames[0], face_1) < 6 < diff(frames[0], face_2)  # a GIF has 256 colours: close, not equal
    assert diff(frames[4], face_2) < 6 < diff(frames[4], face_1)
    assert np.array_equal(frames[3], frames[5]) and np.array_equal(frames[1], frames[7])  # and back again

    strip = picture(d.client.post("/api/v1/faces/interpolate", json={"seed_a": 1, "seed_b": 2, "frames": 4,
                                                                      "size": 32, "format": "strip"}))
    assert strip.size == (4 * 32, 32)


@pytest.mark.parametrize("path, body", [
    ("random", {"seeds": [1], "psi": 2}),
    ("random", {"seeds": list(range(17))}),
    ("random", {"seeds": []}),
    ("random", {"seeds": [-1]}),
    ("random", {"seeds": [2**32]}),
    ("random", {"seeds": [1], "size": 1000}),
    ("mix", {"row_seeds": [1], "col_seeds": [2], "layers": [5, 1]}),
    ("mix", {"row_seeds": [1], "col_seeds": [2], "layers": [-1, 2]}),
    ("mix", {"row_seeds": [1], "col_seeds": [2], "layers": [0, 99]}),  # past the model's style inputs
    ("mix", {"row_seeds": [1], "col_seeds": [2], "layers": "hair"}),
    ("mix", {"row_seeds": [], "col_seeds": [2]}),
    ("interpolate", {"seed_a": 1, "seed_b": 2, "frames": 1}),
    ("interpolate", {"seed_a": 1, "seed_b": 2, "frames": 48, "size": 256, "format": "strip"}),
    ("interpolate", {"seed_a": 1, "seed_b": 2, "format": "mp4"}),
])
def test_bad_requests_are_422_and_queue_nothing(deployment, path, body):
    before = deployment.rows()
    r = deployment.client.post(f"/api/v1/faces/{path}", json=body)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"][0] == "body"
    assert deployment.rows() == before


def test_unknown_request_is_404_and_api_keys_are_checked(deployment):
    r = deployment.client.get("/api/v1/faces/requests/987654")
    assert r.status_code == 404 and "987654" in r.json()["detail"]
    # no key: the kids' page; a key must be a real one (the API-key dependency runs)
    r = deployment.client.post("/api/v1/faces/random", json={"seeds": [1]}, headers={"X-API-Key": "d2a_not_a_key"})
    assert r.status_code == 401, r.text
    schema = deployment.client.get("/openapi.json").json()
    params = schema["paths"]["/api/v1/faces/random"]["post"].get("parameters", [])
    assert not [p for p in params if p.get("required")], params  # nothing but the JSON body is required


def test_no_face_model_is_503(models_dir, tmp_path):
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from backend.settings import Settings

    settings = Settings(models_dir=models_dir, default_model="sketch2anime", drawing_models=["sketch2anime"],
                        face_model="not_installed", database_url=f"sqlite:///{tmp_path / 'a.db'}",
                        samples_dir=tmp_path / "samples", model_poll_s=0, providers=["CPUExecutionProvider"])
    with TestClient(create_app(settings)) as client:
        for path, body in [("random", {"seeds": [1]}), ("mix", {"row_seeds": [1], "col_seeds": [2]}),
                           ("interpolate", {"seed_a": 1, "seed_b": 2})]:
            r = client.post(f"/api/v1/faces/{path}", json=body)
            assert r.status_code == 503, r.text
            assert "no random-face model" in r.json()["detail"]
        with sqlite3.connect(tmp_path / "a.db") as db:
            assert db.execute("SELECT COUNT(*) FROM sample_requests").fetchone() == (0,)


def test_the_operators_size_limit_holds_for_faces_too(models_dir, tmp_path):
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from backend.settings import Settings

    settings = Settings(models_dir=models_dir, default_model="sketch2anime", drawing_models=["sketch2anime"],
                        database_url=f"sqlite:///{tmp_path / 'a.db'}", max_output_size=96,
                        samples_dir=tmp_path / "samples", model_poll_s=0, providers=["CPUExecutionProvider"])
    with TestClient(create_app(settings)) as client:
        for path, body in [("random", {"seeds": [1], "size": 128}),
                           ("mix", {"row_seeds": [1], "col_seeds": [2], "size": 97}),
                           ("interpolate", {"seed_a": 1, "seed_b": 2, "size": 128})]:
            r = client.post(f"/api/v1/faces/{path}", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["detail"][0]["loc"] == ["body", "size"] and "limit of 96" in r.json()["detail"][0]["msg"]
        with sqlite3.connect(tmp_path / "a.db") as db:
            assert db.execute("SELECT COUNT(*) FROM sample_requests").fetchone() == (0,)


def test_without_a_worker_the_answer_is_202_then_the_picture(models_dir, tmp_path):
    env = faces_env(tmp_path, models_dir, D2A_SAMPLE_WAIT_S="0.3")
    api, base = start_api(env, tmp_path / "api.log")
    worker = None
    try:
        with api_client(base) as client:
            body = {"seeds": [7, 8], "psi": 0.8, "size": 40}
            r = client.post("/api/v1/faces/random", json=body)
            assert r.status_code == 202, r.text
            queued = r.json()
            assert queued["status"] == "queued" and queued["url"] == f"/api/v1/faces/requests/{queued['request_id']}"
            # the same request while it waits: the same request, not a second one
            assert client.post("/api/v1/faces/random", json=body).json()["request_id"] == queued["request_id"]
            polled = client.get(queued["url"])
            assert polled.status_code == 202 and polled.json()["status"] == "queued"

            worker = start_worker(env, tmp_path / "worker.log", "late", queues="sampling")
            done = wait_for(lambda: (g := client.get(queued["url"])).status_code != 202 and g, 120,
                            "the queued request to be made", on_timeout=lambda: worker.tail() + api.tail())
            strip = picture(done)
            assert strip.size == (80, 40) and done.headers["x-request-id"] == str(queued["request_id"])
            again = client.post("/api/v1/faces/random", json=body)  # now from the cache, at once
            assert again.status_code == 200 and again.content == done.content
            with sqlite3.connect(tmp_path / "app.db") as db:
                assert db.execute("SELECT COUNT(*), MIN(status) FROM sample_requests").fetchone() == (1, "done")
    finally:
        if worker is not None:
            worker.discard()
        api.stop()


def test_one_client_cannot_hold_the_sampling_queue(models_dir, tmp_path):
    """One client sending many different morphs held the only worker for minutes. Now each client
    has at most two requests waiting (429 with Retry-After), other clients are not held back by
    its cap, its drawing page keeps working, and a request costs its per-minute budget one call
    per 8 faces drawn. No worker runs here, so requests stay waiting."""
    env = faces_env(tmp_path, models_dir, D2A_SAMPLE_WAIT_S="0.1", D2A_SAMPLE_PENDING_PER_CLIENT="2",
                    D2A_ANONYMOUS_REQUESTS_PER_MINUTE="40", D2A_TRUSTED_PROXIES='["127.0.0.1"]')
    api, base = start_api(env, tmp_path / "api.log")
    stroke = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]]]

    def morph(client: str, seed: int, frames: int = 8) -> httpx.Response:
        return c.post("/api/v1/faces/interpolate", headers={"X-Forwarded-For": client},
                      json={"seed_a": seed, "seed_b": seed + 1, "frames": frames, "size": 32})

    try:
        with api_client(base) as c:
            assert [morph("10.0.0.1", s).status_code for s in (1, 2)] == [202, 202]
            third = morph("10.0.0.1", 3)
            assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
            assert "still being made" in third.json()["detail"]
            assert morph("10.0.0.1", 1).status_code == 202       # joining its own waiting request: no new work
            assert morph("10.0.0.2", 3).status_code == 202       # another client is not held back
            drawing = c.post("/api/v1/translate", headers={"X-Forwarded-For": "10.0.0.1"},
                             json={"strokes": stroke, "size": 64})
            assert drawing.status_code == 200                    # the drawing page goes on
            # Cost: a 48-frame morph is 6 calls of the 40 a minute, so 34 calls are left, not 39.
            assert morph("10.0.0.3", 100, frames=48).status_code == 202
            codes = [c.post("/api/v1/translate", headers={"X-Forwarded-For": "10.0.0.3"},
                            json={"strokes": stroke, "size": 28}).status_code for _ in range(36)]
            assert codes.count(200) == 34 and codes[34:] == [429, 429], codes
    finally:
        api.stop()


def test_a_damaged_face_model_is_503_and_serves_again_when_restored(models_dir, tmp_path, monkeypatch):
    """A damaged mapping graph was a 500 from the worker; now the route refuses it with a
    sentence, queues nothing, and serves again as soon as the file is restored."""
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from backend.jobs import service
    from backend.settings import Settings

    sent = []
    monkeypatch.setattr(service, "enqueue_sample", lambda request_id: sent.append(request_id) or "task")
    models = tmp_path / "models"
    shutil.copytree(models_dir / "anime_faces", models / "anime_faces")
    mapping = models / "anime_faces" / "mapping.onnx"
    good = mapping.read_bytes()
    settings = Settings(models_dir=models, default_model="sketch2anime", drawing_models=[],
                        database_url=f"sqlite:///{tmp_path / 'a.db'}", samples_dir=tmp_path / "samples",
                        model_poll_s=0, sample_wait_s=0.1, providers=["CPUExecutionProvider"])
    with TestClient(create_app(settings)) as client:
        mapping.write_bytes(good[:-10] + b"0123456789")
        r = client.post("/api/v1/faces/random", json={"seeds": [1]})
        assert r.status_code == 503 and "damaged" in r.json()["detail"] and "mapping.onnx" in r.json()["detail"]
        with sqlite3.connect(tmp_path / "a.db") as db:
            assert db.execute("SELECT COUNT(*) FROM sample_requests").fetchone() == (0,)
        assert sent == []
        mapping.write_bytes(good)
        assert client.post("/api/v1/faces/random", json={"seeds": [1]}).status_code == 202   # queued now
        assert len(sent) == 1


# ---------------------------------------------------------------------------------------------
# The page, in a real Chromium


def _loaded(page, selector: str, timeout: float = 60000) -> dict:
    """Waits for a shown, decoded image; returns its src and natural size."""
    wait_for_function(page, f"""() => {{
        const im = document.querySelector('{selector}');
        return im && !im.hidden && im.complete && im.naturalWidth > 0;
    }}""", timeout=timeout)
    return page.evaluate(f"""() => {{
        const im = document.querySelector('{selector}');
        return {{src: im.getAttribute('src'), w: im.naturalWidth, h: im.naturalHeight,
                 shown: im.getBoundingClientRect().width}};
    }}""")


def _blob_bytes(page, url: str) -> bytes:
    data = page.evaluate("""async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))""", url)
    return bytes(data)


def _idle(page, frame: str) -> None:
    wait_for_function(page, f"document.getElementById('{frame}').getAttribute('aria-busy') === 'false'", timeout=60000)


def _shoot(page, name: str) -> None:
    """With D2A_SCREENSHOTS=1: the whole page into docs/img, in a window as tall as the page."""
    if os.environ.get("D2A_SCREENSHOTS") != "1":
        return
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    for _ in range(2):  # (the layout may settle once more at the new height)
        page.set_viewport_size({"width": width, "height": page.evaluate("document.documentElement.scrollHeight")})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS_DIR / name))


@pytest.mark.browser
def test_the_faces_page(deployment, browser, tmp_path):
    d = deployment
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    posts: list = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and "/api/v1/faces/" in r.url else None)
    try:
        page.goto(d.base + "/")
        page.locator("#to-faces").click()  # the drawing page links to this one
        page.wait_for_url("**/faces/")
        page.wait_for_selector("body[data-ready='true']")
        assert page.locator("#mix-coarse").is_disabled() and page.locator("#download").is_disabled()

        # two new faces: each appears big and in the row; they become face A and face B
        shown = []
        for k in range(2):
            page.locator("#new-face").click()
            _idle(page, "face-frame")
            wait_for_function(page, f"document.querySelectorAll('#face-history li').length === {k + 1}")
            shown.append(_loaded(page, "#face-main"))
            assert shown[-1]["w"] == 256 and shown[-1]["shown"] >= 300
        assert shown[0]["src"] != shown[1]["src"]
        req = posts[-1]
        assert req.url.endswith("/api/v1/faces/random") and req.post_data_json["psi"] == pytest.approx(0.7)
        seeds = [int(s) for s in page.eval_on_selector_all("#face-history li", "ls => ls.map(l => l.dataset.seed)")]
        assert len(set(seeds)) == 2

        # pick them the other way round: the older face is B, the newer A
        page.locator("#face-history li:nth-child(1) .pick-a").click()  # (newest first)
        page.locator("#face-history li:nth-child(2) .pick-b").click()
        assert page.locator("#face-history li:nth-child(1) .pick-a").get_attribute("aria-pressed") == "true"
        assert page.locator("#face-history li:nth-child(2) .pick-b").get_attribute("aria-pressed") == "true"
        _loaded(page, "#face-a")
        _loaded(page, "#face-b")
        # tapping a face in the row shows it big again
        page.locator("#face-history li:nth-child(2) .pick-face").click()
        wait_for_function(page, "document.getElementById('face-main').getAttribute('src') === "
                               "document.querySelector('#face-history li:nth-child(2) img').getAttribute('src')")
        assert page.locator("#face-history li:nth-child(2) .pick-face").get_attribute("aria-current") == "true"
        assert page.locator("#face-main").get_attribute("src") == shown[0]["src"]

        # a mix: B with A's coarse styles, the grid's bottom-right cell
        page.locator("#mix-coarse").click()
        _idle(page, "mix-frame")
        mix = _loaded(page, "#mix-result")
        assert posts[-1].url.endswith("/api/v1/faces/mix")
        assert posts[-1].post_data_json == {"row_seeds": [seeds[0]], "col_seeds": [seeds[1]], "layers": "coarse",
                                            "psi": pytest.approx(0.7), "size": 256}
        assert (mix["w"], mix["h"]) == (256, 256)
        grid = rgb(picture(d.client.post("/api/v1/faces/mix", json=posts[-1].post_data_json)))
        cut = rgb(Image.open(io.BytesIO(_blob_bytes(page, mix["src"]))))
        assert np.abs(cut - cell(grid, 1, 1, 256)).max() <= 1, "the page shows another cell than the mix"
        assert page.locator("#mix-coarse").get_attribute("aria-pressed") == "true"

        # the slider, to its safe end with the keyboard: the big face (the older one) is drawn again at psi 0.3
        before = page.locator("#face-main").get_attribute("src")
        page.locator("#psi").focus()
        page.keyboard.press("Home")
        wait_for_function(page, f"document.getElementById('face-main').getAttribute('src') !== '{before}'", timeout=60000)
        _idle(page, "face-frame")
        assert posts[-1].post_data_json == {"seeds": [seeds[1]], "psi": pytest.approx(0.3), "size": 256}
        assert page.locator("#psi-word").inner_text() == "Very safe"
        safe = _loaded(page, "#face-main")

        # save the big face: the very PNG on screen
        with page.expect_download() as info:
            page.locator("#download").click()
        target = tmp_path / info.value.suggested_filename
        info.value.save_as(target)
        data = target.read_bytes()
        assert data[:8] == PNG_MAGIC and target.suffix == ".png"
        assert data == _blob_bytes(page, safe["src"])
        assert Image.open(io.BytesIO(data)).size == (256, 256)

        # morph: a GIF, from A to B
        page.locator("#morph").click()
        _idle(page, "morph-frame")
        morph = _loaded(page, "#morph-result")
        assert posts[-1].post_data_json == {"seed_a": seeds[0], "seed_b": seeds[1], "frames": 12,
                                            "psi": pytest.approx(0.3), "size": 256, "format": "gif"}
        gif = _blob_bytes(page, morph["src"])
        assert gif[:6] == GIF_MAGIC and Image.open(io.BytesIO(gif)).n_frames == 12 * 2 - 2

        # a 202 answer: the page shows the spinner and asks the given address until it has the face
        def still_drawing(route):
            real = route.fetch()
            rid = real.headers["x-request-id"]
            time.sleep(0.3)
            route.fulfill(status=202, content_type="application/json",
                          body=json.dumps({"request_id": int(rid), "status": "queued",
                                           "url": f"/api/v1/faces/requests/{rid}"}))

        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/api/v1/faces/requests/" in r.url else None)
        page.route("**/api/v1/faces/random", still_drawing)
        page.locator("#new-face").click()
        wait_for_function(page, "document.getElementById('face-frame').getAttribute('aria-busy') === 'true'")
        assert page.locator("#face-busy").is_visible()
        assert "drawing your face" in page.locator("#face-busy").inner_text().lower()
        _idle(page, "face-frame")
        wait_for_function(page, "document.querySelectorAll('#face-history li').length === 3")
        assert polls, "the page did not ask the 202's address"
        assert page.locator("#message").get_attribute("data-kind") == "success"
        _loaded(page, "#face-main")
        page.unroute("**/api/v1/faces/random")

        assert not problems, problems
        # an error: a friendly message and "Try again", which works once the API does
        page.route("**/api/v1/faces/mix", lambda route: route.fulfill(
            status=500, content_type="application/json", body=json.dumps({"detail": "the faces could not be made: x"})))
        page.locator("#mix-fine").click()
        wait_for_function(page, "document.getElementById('message').dataset.kind === 'error'")
        _idle(page, "mix-frame")
        status = page.locator("#status").inner_text()
        assert "try again" in status.lower() and "500" not in status and "detail" not in status
        assert page.locator("#retry").is_visible()
        page.unroute("**/api/v1/faces/mix")
        page.locator("#retry").click()
        wait_for_function(page, "document.getElementById('message').dataset.kind === 'success'", timeout=60000)
        assert posts[-1].post_data_json["layers"] == "fine" and page.locator("#retry").is_hidden()
        _loaded(page, "#mix-result")

        _shoot(page, "faces_page.png")
        # (Chromium logs the failed request itself; nothing else may go wrong)
        assert [p for p in problems if "status of 500" not in p] == [], problems
    finally:
        context.close()


@pytest.mark.browser
def test_the_faces_page_on_a_phone(deployment, browser):
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2,
                                  has_touch=True, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(deployment.base + "/")  # the drawing page's link: big enough, and no sideways scroll
        page.wait_for_selector("#canvas")
        link = page.locator("#to-faces").bounding_box()
        assert link["width"] >= 48 and link["height"] >= 48
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        page.locator("#to-faces").tap()
        page.wait_for_selector("body[data-ready='true']")
        for _ in range(2):
            page.locator("#new-face").tap()
            _idle(page, "face-frame")
        _loaded(page, "#face-main")
        layout = page.evaluate("""() => {
            const small = Array.from(document.querySelectorAll('button, a.btn, input'))
                .filter((b) => b.offsetParent !== null)
                .map((b) => ({id: b.id || b.className, w: b.getBoundingClientRect().width,
                              h: b.getBoundingClientRect().height}))
                .filter((b) => b.w < 48 || b.h < 48);
            const r = (s) => document.querySelector(s).getBoundingClientRect().toJSON();
            return {small, scroll: document.documentElement.scrollWidth, inner: innerWidth,
                    face: r('#face-main'), make: r('.make-card'), mix: r('.mix-card')};
        }""")
        assert layout["scroll"] <= layout["inner"], "the page scrolls sideways on a phone"
        assert not layout["small"], f"touch targets under 48px: {layout['small']}"
        assert layout["face"]["width"] >= 280  # the face is big
        assert layout["mix"]["top"] >= layout["make"]["bottom"] - 1  # one column
        page.locator("#mix-middle").tap()
        _idle(page, "mix-frame")
        _loaded(page, "#mix-result")
        _shoot(page, "faces_page_phone.png")
        page.locator("#back").tap()  # and back to drawing
        page.wait_for_url(deployment.base + "/")
        page.wait_for_selector("#canvas")
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.parametrize("size", [{"width": 390, "height": 844}, {"width": 1280, "height": 800}],
                         ids=["phone", "laptop"])
def test_the_faces_page_keeps_the_face_in_view_and_works_from_the_keyboard(deployment, browser, size):
    """On a phone and a laptop: New face, pressed from the keyboard, shows a face whole in the
    window; the message covers neither New face nor Save; every button has a name and shows a
    focus ring."""
    phone = size["width"] < 500
    context = browser.new_context(viewport=size, has_touch=phone, is_mobile=phone)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        page.goto(deployment.base + "/faces/")
        page.wait_for_selector("body[data-ready='true']")
        assert covered_controls(page) == []

        tab_to(page, "#new-face")
        assert_focus_ring(page, "#new-face")
        page.locator("#new-face").focus()
        page.keyboard.press("Enter")
        _idle(page, "face-frame")
        _loaded(page, "#face-main")
        view = in_view(page, "#face-main")
        assert view["whole"], f"the face is not in the window: {view}"
        assert in_view(page, "#new-face")["whole"] and in_view(page, "#download")["whole"]
        assert covered_controls(page) == []
        assert page.evaluate("document.getElementById('status').textContent").startswith("Say hello")

        assert unnamed_buttons(page) == []
        tab_to(page, "#download")
        assert_focus_ring(page, "#download")
        tab_to(page, "#psi")
        page.keyboard.press("End")  # all the way to "wilder": the face again, and no "!." typo
        wait_for_function(page, "document.getElementById('status').textContent.includes('super wild')", timeout=60000)
        status = page.locator("#status").inner_text()
        assert status.endswith("super wild!") and "!." not in status, status
        assert not problems, problems
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.parametrize("size", [{"width": 390, "height": 844}, {"width": 1280, "height": 800}],
                         ids=["phone", "laptop"])
def test_the_faces_page_passes_axe(deployment, browser, size):
    """No serious or critical axe-core violation: at the start, and with two faces, A and B picked
    and a mix shown."""
    phone = size["width"] < 500
    context = browser.new_context(viewport=size, has_touch=phone, is_mobile=phone)
    page = context.new_page()
    try:
        page.goto(deployment.base + "/faces/")
        page.wait_for_selector("body[data-ready='true']")
        assert axe_violations(page) == []
        for k in range(2):
            page.locator("#new-face").click()
            _idle(page, "face-frame")
            wait_for_function(page, f"document.querySelectorAll('#face-history li').length === {k + 1}")
        page.locator("#mix-fine").click()
        _idle(page, "mix-frame")
        _loaded(page, "#mix-result")
        assert axe_violations(page) == []
    finally:
        context.close()
