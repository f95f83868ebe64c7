"""Photos to anime faces: the face search, the crop, the mask and the composite; the selfie2anime
kind's smoke, resume and parity tests; and ``POST /api/v1/photo`` with every kind of bad input,
and a deployment that writes nothing while it handles photos."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from core.configs.translation import PHOTO_HOLDOUT_START
from core.photo import PhotoError, composite, crop_box, decode_photo, face_mask, find_face

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, ngf=8, ndf=8, n_blocks=1, batch_size=2, steps=2, decay_steps=1, log_every=1,
            sample_every=2, checkpoint_every=1, snapshot_every=1, eval_count=8, pool_size=3, anime_limit=64)


@pytest.fixture(scope="module")
def photos(data_dir) -> np.ndarray:
    from training.train_selfie import load_photos

    return load_photos(data_dir, 256)[PHOTO_HOLDOUT_START:]


def jpeg(image: np.ndarray | Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="JPEG", quality=92, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, data_dir) -> Path:
    """The shipped models, and a tiny selfie2anime model trained for 2 steps and exported."""
    from core.kinds import get_kind
    from training.export import export_run

    base = tmp_path_factory.mktemp("photo_models")
    kind = get_kind("selfie2anime")
    kind.trainer.load()(kind.config(**TINY), base / "run", data_dir, threads=1).run()
    models = base / "models"
    models.mkdir()
    for folder in (ROOT / "models").iterdir():
        if folder.is_dir():
            (models / folder.name).symlink_to(folder)
    export_run(base / "run", models / "selfie_tiny", snapshots=[2], data_dir=data_dir)
    return models


# -- the pieces ---------------------------------------------------------------------------------


def test_a_face_is_found_cropped_masked_and_blended_back(photos):
    found = [find_face(p) for p in photos[:40]]
    assert sum(f is not None for f in found) >= 28  # most held-out selfies (frontal Haar cascade)
    image = photos[next(i for i, f in enumerate(found) if f is not None)]
    face = find_face(image)
    left, top, side = crop_box(face, 1.37, 0.07)
    assert side > face.w and left < face.x and top < face.y
    mask = face_mask(image, face, left, top, side)
    assert mask.shape == (side, side) and 0 <= mask.min() and mask.max() <= 1
    cx, cy = int(face.x + face.w / 2 - left), int(face.y + face.h / 2 - top)
    assert mask[cy, cx] > 0.9                   # the middle of the face is in the mask
    red = np.zeros((side, side, 3), np.float32)
    red[..., 0] = 255
    out = composite(image, red, mask, left, top)
    assert out.shape == image.shape
    assert out[int(face.y + face.h / 2), int(face.x + face.w / 2), 0] > 240   # blended where the face is
    # Outside the mask the photo is untouched.
    full = np.zeros(image.shape[:2], np.float32)
    ys, xs = slice(max(0, top), min(image.shape[0], top + side)), slice(max(0, left), min(image.shape[1], left + side))
    full[ys, xs] = mask[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
    outside = full < 1e-3
    assert outside.any() and np.array_equal(out[outside], image[outside])


def test_no_face_in_a_landscape(rng):
    sky = np.zeros((200, 300, 3), np.uint8)
    sky[:100] = (120, 170, 230)
    sky[100:] = (60, 140, 60)
    assert find_face(sky) is None
    assert find_face((rng.random((200, 200, 3)) * 255).astype(np.uint8)) is None


def test_decode_respects_exif_orientation_and_refuses_what_it_cannot_use(photos):
    upright = photos[0]
    turned = Image.fromarray(upright).rotate(90, expand=True)    # stored turned...
    exif = Image.Exif()
    exif[0x0112] = 6                                            # ...with "rotate 90 CW to view"
    got = np.asarray(decode_photo(jpeg(turned, exif=exif)))
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright).mean() < 12       # upright again (JPEG noise only)
    with pytest.raises(PhotoError) as e:
        decode_photo(b"hello, this is not a picture")
    assert e.value.status == 415
    gif = io.BytesIO()
    Image.fromarray(upright).save(gif, format="GIF")
    with pytest.raises(PhotoError) as e:
        decode_photo(gif.getvalue())
    assert e.value.status == 415 and "GIF" in str(e.value)
    with pytest.raises(PhotoError) as e:
        decode_photo(png_bomb())
    assert e.value.status == 422 and "pixels" in str(e.value)
    with pytest.raises(PhotoError) as e:
        decode_photo(jpeg(upright)[:3000])                      # cut off half-way
    assert e.value.status == 422


def png_bomb(side: int = 60000) -> bytes:
    """A PNG of a few hundred bytes whose header declares side x side pixels (3.6 gigapixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


# -- the selfie2anime kind -----------------------------------------------------------------------


def test_selfie2anime_trains_resumes_and_exports_with_parity(tmp_path, data_dir):
    from core.kinds import get_kind
    from core.photo import PhotoModel
    from training.export import PARITY_TOLERANCE, export_run, load_generator
    from training.train_selfie import load_photos, photos_to_input

    kind = get_kind("selfie2anime")
    trainer_cls, config = kind.trainer.load(), kind.config(**{**TINY, "steps": 3, "decay_steps": 2})
    straight = trainer_cls(config, tmp_path / "a", data_dir, threads=1)
    events = []
    metrics = straight.run(events.append)
    assert set(events[-1].losses) == {"G", "G_gan", "cycle", "identity", "D_A", "D_B"}
    assert set(metrics) == {"holdout_cycle_l1", "output_diversity"}
    trainer_cls(config, tmp_path / "b", data_dir, threads=1).run(stop_at=2)
    resumed = trainer_cls(config, tmp_path / "b", data_dir, threads=1)
    assert resumed.load_checkpoint() and resumed.step == 2
    resumed.run()
    for name in straight.networks:
        for k, v in getattr(straight, name).state_dict().items():
            torch.testing.assert_close(v, getattr(resumed, name).state_dict()[k], rtol=0, atol=1e-6, msg=f"{name}.{k}")
    manifest = export_run(tmp_path / "a", tmp_path / "model", snapshots=[3], data_dir=data_dir)
    assert manifest.kind == "cyclegan-selfie2anime" and manifest.input.source == "photo"
    assert manifest.members[0].parity_max_abs_diff <= PARITY_TOLERANCE
    assert 1.1 < manifest.input.crop_scale < 2.0   # measured on the training photos
    # The served model paints what the trained generator paints.
    g, _, _ = load_generator(tmp_path / "a" / "snapshots" / "step_0000003.pt")
    crops = load_photos(data_dir, 32)[PHOTO_HOLDOUT_START:PHOTO_HOLDOUT_START + 4]
    with torch.no_grad():
        want = g(torch.from_numpy(photos_to_input(crops))).numpy()
    want = np.rint(np.clip((want + 1) * 127.5, 0, 255)).transpose(0, 2, 3, 1)
    got = PhotoModel(tmp_path / "model").anime(crops)
    assert np.abs(got.astype(int) - want).max() <= 1


def test_the_photo_study_measures_runs_beside_its_baselines(tmp_path, data_dir, models_dir):
    """The study's measures on a trained run: the photos against themselves keep everything, random
    anime faces keep no layout, and the table, the JSON and the labelled grid are written."""
    import json

    from training.photo_study import evaluate, person_kept

    run = tmp_path / "tiny"
    run.mkdir()
    (run / "model").symlink_to(models_dir / "selfie_tiny")
    (run / "metrics.json").write_text(json.dumps({"holdout_cycle_l1": 0.5}))
    (run / "loss_log.jsonl").write_text("".join(json.dumps({"step": i, "elapsed": 0.5 * i, "cycle": 3.0 / i, "G_gan": 1.0})
                                                + "\n" for i in (1, 2, 3)))
    summary = evaluate(tmp_path, data_dir, ["tiny", "never_trained"], photo_count=112)
    rows = summary["rows"]
    assert list(rows) == ["tiny", "random held-out anime faces (no photo read)", "the photos themselves"]
    assert rows["tiny"]["holdout_cycle_l1"] == 0.5 and rows["tiny"]["train_s"] == 1.5
    themselves = rows["the photos themselves"]
    assert themselves["layout"] == pytest.approx(1.0) and themselves["hair_dark"] == pytest.approx(1.0)
    assert themselves["colour_shift"] == 0.0 and themselves["layout_mismatched"] < 0.5
    random = rows["random held-out anime faces (no photo read)"]
    assert abs(random["layout"]) < 0.3 and abs(random["hair_dark"]) < 0.3
    # the random faces come from the second held-out set: about as far from the reference as it is
    assert 0.5 < random["fd_pixels4_ratio"] < 2.0
    table = (tmp_path / "photo_study.md").read_text().splitlines()
    assert table[0].startswith("| run | realism") and len(table) == 2 + len(rows)
    assert json.loads((tmp_path / "photo_study.json").read_text())["grid_rows"][0] == "held-out photos"
    grid = Image.open(tmp_path / "photo_study_grid.png")
    assert grid.size == (150 + 10 * 96, 3 * 96)  # photos, the run, random anime faces
    assert Image.open(tmp_path / "photo_study_curves.png").size == (2000, 380)  # four terms side by side
    # a face that is its photo turned upside down has its light and dark parts the other way round
    ramp = np.linspace(0, 255, 64)[None, :, None, None] * np.ones((4, 64, 64, 3))
    ramp = (ramp + np.random.default_rng(0).normal(0, 20, ramp.shape)).clip(0, 255).astype(np.uint8)
    assert person_kept(ramp, ramp[:, ::-1])["layout"] < -0.9


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(models_dir):
    from backend.app import create_app
    from backend.settings import Settings

    settings = Settings(models_dir=models_dir, photo_model="selfie_tiny", photo_max_bytes=200_000)
    with TestClient(create_app(settings)) as c:
        yield c


def post(client, data: bytes | None, *, name="photo.jpg", mime="image/jpeg", **fields):
    files = {"photo": (name, data, mime)} if data is not None else None
    return client.post("/api/v1/photo", files=files, data=fields or None)


def test_a_photo_becomes_an_anime_face_over_the_photo(client, photos):
    photo = photos[0]
    r = post(client, jpeg(photo))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.shape == photo.shape
    changed = np.abs(out.astype(int) - photo).mean(axis=2) > 30
    assert 0.1 < changed.mean() < 0.95    # the face and hair are painted over, not the whole picture
    j = post(client, jpeg(photo), response="json").json()
    assert j["model"] == "selfie2anime" and j["face"]["w"] > 50
    anime = Image.open(io.BytesIO(base64.b64decode(j["anime_png_base64"])))
    assert anime.size == (32, 32)
    alone = post(client, jpeg(photo), output="anime")
    assert Image.open(io.BytesIO(alone.content)).size == (32, 32)


@pytest.mark.parametrize("case", ["not multipart", "no photo field", "not a picture", "gif", "bomb", "damaged",
                                  "too many bytes", "no face", "bad option"])
def test_bad_photos_are_refused_clearly(client, photos, case):
    if case == "not multipart":
        r = client.post("/api/v1/photo", content=jpeg(photos[0]), headers={"content-type": "image/jpeg"})
        want = 415
    elif case == "no photo field":
        r = client.post("/api/v1/photo", files={"picture": ("a.jpg", jpeg(photos[0]), "image/jpeg")})
        want = 422
    elif case == "not a picture":
        r, want = post(client, b"%PDF-1.4 hello", name="a.pdf", mime="application/pdf"), 415
    elif case == "gif":
        buf = io.BytesIO()
        Image.fromarray(photos[0]).save(buf, format="GIF")
        r, want = post(client, buf.getvalue(), name="a.gif", mime="image/gif"), 415
    elif case == "bomb":
        r, want = post(client, png_bomb(), name="a.png", mime="image/png"), 422
    elif case == "damaged":
        r, want = post(client, jpeg(photos[0])[:2000]), 422
    elif case == "too many bytes":
        noise = (np.random.default_rng(0).random((800, 800, 3)) * 255).astype(np.uint8)
        big = io.BytesIO()
        Image.fromarray(noise).save(big, format="PNG")
        assert len(big.getvalue()) > 200_000 + 1024 * 1024
        r, want = post(client, big.getvalue(), name="a.png", mime="image/png"), 413
    elif case == "no face":
        sky = np.zeros((256, 256, 3), np.uint8)
        sky[:128] = (120, 170, 230)
        r, want = post(client, jpeg(sky)), 422
    else:
        r, want = post(client, jpeg(photos[0]), output="sketch"), 422
    assert r.status_code == want, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    if case == "no face":
        assert "no face found" in detail
    if case == "bomb":
        assert "pixels" in detail


def test_the_photo_route_is_in_the_openapi_schema(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/photo"]["post"]
    body = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["photo"] and {"413", "415", "422"} <= set(op["responses"])
    # the JSON answer's schema is a reference that resolves (an inlined model's own "$defs" did not)
    ok = op["responses"]["200"]["content"]
    assert "image/png" in ok
    ref = ok["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["properties"]["face"]["$ref"].rsplit("/", 1)[1] in spec["components"]["schemas"]


def test_a_deployment_writes_nothing_while_it_handles_photos(tmp_path, models_dir, photos):
    """The API in its own process, its temporary folder and state in empty folders: after photos
    big and small (a large body would be spooled to a temporary file by a multipart parser that
    does so) and bad ones, no file was made or changed there, nor under the models, and the log
    holds nothing of them."""
    import httpx

    from procs import env_for, start_api

    state, tmp = tmp_path / "state", tmp_path / "tmp"
    state.mkdir()
    tmp.mkdir()
    env = env_for(state, D2A_MODELS_DIR=str(models_dir), D2A_PHOTO_MODEL="selfie_tiny", TMPDIR=str(tmp),
                  D2A_PROVIDERS='["CPUExecutionProvider"]', D2A_EMBEDDED_WORKER="0", D2A_LOG_LEVEL="info")
    proc, base = start_api(env, tmp_path / "api.log")

    def files() -> dict[str, tuple[int, int]]:
        out = {}
        for root in (state, tmp, *(p.resolve() for p in models_dir.iterdir())):
            for p in Path(root).rglob("*"):
                if p.is_file() and not p.name.startswith("app.db"):   # the database's own pages change
                    st = p.stat()
                    out[str(p)] = (st.st_size, st.st_mtime_ns)
        return out

    try:
        before = files()
        big = np.asarray(Image.fromarray(photos[1]).resize((2000, 2000), Image.Resampling.BICUBIC))
        noisy = np.clip(big.astype(int) + np.random.default_rng(1).integers(-20, 20, big.shape), 0, 255).astype(np.uint8)
        bodies = [jpeg(photos[1]), jpeg(noisy), b"not a photo"]
        assert len(bodies[1]) > 1024 * 1024   # over the spooling threshold of a temp-file parser
        with httpx.Client(base_url=base, timeout=60) as c:
            codes = [c.post("/api/v1/photo", files={"photo": ("secret-selfie.jpg", b, "image/jpeg")}).status_code
                     for b in bodies]
        assert codes == [200, 200, 415]
        after = files()
    finally:
        proc.stop()
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert "secret-selfie" not in (tmp_path / "api.log").read_text()


# -- under abuse -------------------------------------------------------------------------------


def _form_body(parts: list[tuple[str, bytes]], boundary: str = "b0und") -> tuple[bytes, dict[str, str]]:
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + data + b"\r\n"
                    for name, data in parts) + f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize("case", ["twelve thousand fields", "nested 3,000 deep", "endless part headers",
                                  "never closed", "no boundary"])
def test_hostile_forms_are_a_4xx_with_a_sentence(client, photos, case):
    """Before, the standard library's e-mail parser read these on the event loop: 60,000 fields
    took 11 s of it (and were then served; 12,000 fit this client's body limit), 3,000 levels of
    nesting were a plain-text 500."""
    photo = jpeg(photos[0])
    if case == "twelve thousand fields":
        body, headers = _form_body([("photo", photo)] + [(f"f{i}", b"x" * 20) for i in range(12_000)])
    elif case == "nested 3,000 deep":
        inner = b"x"
        for depth in range(3000):
            inner = (f"--n{depth}\r\nContent-Type: multipart/mixed; boundary=n{depth - 1}\r\n\r\n".encode() + inner
                     + f"\r\n--n{depth}--".encode())
        body = (b"--top\r\nContent-Disposition: form-data; name=\"photo\"\r\n"
                b"Content-Type: multipart/mixed; boundary=n2999\r\n\r\n" + inner + b"\r\n--top--\r\n")
        headers = {"content-type": "multipart/form-data; boundary=top"}
    elif case == "endless part headers":
        body, headers = _form_body([("photo", photo)])
        body = body.replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"p" * 20_000 + b"\r\n\r\n", 1)
    elif case == "never closed":
        body, headers = _form_body([("photo", photo)])
        body = body[: -len("--b0und--\r\n") - 2]
    else:
        body, headers = _form_body([("photo", photo)])
        headers = {"content-type": "multipart/form-data"}
    r = client.post("/api/v1/photo", content=body, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert isinstance(detail, str) and len(detail.split()) >= 4


def test_the_documented_size_limit_is_the_enforced_one(client, photos):
    """The client's limit is 200,000 bytes: a photo of exactly that is read, one byte more is a
    413 (before, anything up to the body limit, 1 MiB more, was taken)."""
    photo = jpeg(photos[0])
    exact = photo + b"\0" * (200_000 - len(photo))        # bytes after a JPEG's end are ignored by readers
    assert post(client, exact).status_code == 200
    r = post(client, exact + b"\0")
    assert r.status_code == 413 and "200,000 bytes" in r.json()["detail"]


def test_the_same_photos_give_the_same_answers_eight_at_once(models_dir, photos):
    """One face detector shared by threads answered differently under load; GrabCut's random
    generator, one per thread, made masks differ by which thread cut them."""
    from concurrent.futures import ThreadPoolExecutor

    from core.photo import PhotoModel

    sample = list(photos[:48])
    one_by_one = [find_face(p) for p in sample]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(find_face, sample)) == one_by_one
        assert list(pool.map(find_face, sample[::-1])) == one_by_one[::-1]
        model = PhotoModel(models_dir / "selfie_tiny", ["CPUExecutionProvider"], 1)
        with_faces = [Image.fromarray(p) for p, f in zip(sample, one_by_one) if f is not None][:8]
        alone = [model.transform(p).composite for p in with_faces]
        together = [r.composite for r in pool.map(model.transform, with_faces * 2)]
    assert all(np.array_equal(a, b) for a, b in zip(alone * 2, together))


def _damage(path: Path) -> bytes:
    good = path.read_bytes()
    path.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    return good


def test_a_damaged_photo_model_falls_back_then_recovers_without_a_restart(tmp_path, models_dir, photos, monkeypatch):
    """Damaged promoted and bundled models: 503 with a sentence (before: a 500). The bundled one
    restored: it serves, with no restart; the promoted one restored: it serves; a model that
    loaded keeps serving from memory when its file is damaged afterwards."""
    import json
    import shutil

    from backend.app import create_app
    from backend.db import crud
    from backend.settings import Settings

    models = tmp_path / "models"
    shutil.copytree(models_dir / "selfie_tiny", models / "selfie_tiny")
    promoted = tmp_path / "promoted"
    shutil.copytree(models_dir / "selfie_tiny", promoted)
    manifest = json.loads((promoted / "manifest.json").read_text())
    (promoted / "manifest.json").write_text(json.dumps({**manifest, "version": "9"}))
    graph = next((models / "selfie_tiny").glob("*.onnx"))
    settings = Settings(models_dir=models, photo_model="selfie_tiny", drawing_models=[], model_poll_s=0,
                        database_url=f"sqlite:///{tmp_path / 'app.db'}", datasets_dir=tmp_path / "ds")
    with TestClient(create_app(settings)) as c:
        with c.app.state.Session() as db:
            v = crud.create_model_version(db, name="selfie_tiny", version="9", kind="selfie2anime", manifest={},
                                          folder=str(promoted))
            crud.set_active_model_version(db, version_id=v.id)
        photo = jpeg(photos[0])

        def served() -> str | int:
            r = post(c, photo, response="json")
            return r.json()["version"] if r.status_code == 200 else r.status_code

        good_promoted = _damage(promoted / graph.name)
        good = _damage(graph)
        r = post(c, photo)
        assert r.status_code == 503 and "cannot serve" in r.json()["detail"] and "Retry-After" in r.headers
        # A refused folder is not checked again on every request, only when its files change.
        checks = []
        monkeypatch.setattr("core.manifest.ModelManifest.verify", lambda self, folder: checks.append(folder))
        assert post(c, photo).status_code == 503 and checks == []
        monkeypatch.undo()
        graph.write_bytes(good)                        # the bundled one restored
        assert served() == manifest["version"]
        (promoted / graph.name).write_bytes(good_promoted)
        assert served() == "9"                         # the promoted one restored
        _damage(promoted / graph.name)
        assert served() == "9"                         # loaded and checked: keeps serving from memory


def hostile_webp(side: int) -> bytes:
    """A lossless WebP of a few dozen bytes that decodes to side x side pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 120, 90)).save(buf, format="WEBP", lossless=True, quality=0, method=0)
    return buf.getvalue()


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def test_hostile_uploads_at_once_cost_at_most_the_memory_budget(tmp_path, models_dir, photos):
    """Six uploads at once of a tiny WebP that decodes to 9 megapixels (about 150 MB each to
    decode): the server's peak memory grows by at most its photo budget, not six times one
    decode (before: four 40-megapixel ones took a server from 0.24 to 2.9 GB)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from procs import env_for, start_api

    budget_mb = 200
    state = tmp_path / "state"
    state.mkdir()
    env = env_for(state, D2A_MODELS_DIR=str(models_dir), D2A_PHOTO_MODEL="selfie_tiny",
                  D2A_PROVIDERS='["CPUExecutionProvider"]', D2A_EMBEDDED_WORKER="0",
                  D2A_PHOTO_MEMORY_MB=str(budget_mb), D2A_PHOTO_WAIT_S="120",
                  D2A_ANONYMOUS_REQUESTS_PER_MINUTE="0")
    proc, base = start_api(env, tmp_path / "api.log")
    bomb = hostile_webp(3000)
    assert len(bomb) < 2000
    try:
        with httpx.Client(base_url=base, timeout=180) as c:
            def send(data: bytes) -> int:
                return c.post("/api/v1/photo", files={"photo": ("a.webp", data, "image/webp")}).status_code

            assert send(jpeg(photos[0])) == 200     # everything loaded, before measuring
            pid = proc.p.pid
            Path(f"/proc/{pid}/clear_refs").write_text("5")   # the peak starts again from here
            before = _status(pid, "VmRSS")
            with ThreadPoolExecutor(6) as pool:
                codes = list(pool.map(send, [bomb] * 6))
            peak = _status(pid, "VmHWM")
    finally:
        proc.stop()
    assert codes == [422] * 6                       # a flat colour: read, and no face in it
    grown = (peak - before) / 2**20
    assert grown < budget_mb + 60, f"peak memory grew by {grown:.0f} MB with a budget of {budget_mb} MB"
