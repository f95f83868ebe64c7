"""The admin API in-process, on a fresh SQLite database per module: login and sessions, API keys
and their rate limit on the drawing endpoint, job validation, promotion / rollback / ensemble
with the sha256 check, and data-set uploads (every rule, and nothing left behind on refusal)."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from backend.app import create_app
from backend.db import crud
from backend.settings import Settings
from core.kinds import KINDS

ADMIN = ("root", "a long enough password")
FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("admin")
    models = base / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")  # the "bundled" model of this deployment
    settings = Settings(database_url=f"sqlite:///{base / 'app.db'}", models_dir=models, datasets_dir=base / "datasets",
                        default_model="sketch2anime", drawing_models=["sketch2anime"],
                        admin_username=ADMIN[0], admin_password=ADMIN[1], model_poll_s=0,
                        upload_max_bytes=200_000, upload_max_unpacked_bytes=2_000_000, upload_max_files=50,
                        login_attempts_per_minute=1000)
    with TestClient(create_app(settings)) as client:
        yield client, settings, base


@pytest.fixture(scope="module")
def admin(env):
    client, _, _ = env
    r = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


# -- auth ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/admin/jobs", "/api/v1/admin/models", "/api/v1/admin/api-keys",
                                  "/api/v1/admin/datasets", "/api/v1/admin/queue", "/api/v1/admin/me"])
def test_admin_routes_refuse_anonymous_and_forged(env, path):
    client, _, _ = env
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer 1.9999999999.deadbeef"}).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_login_wrong_password_then_cookie_session(env):
    client, _, _ = env
    r = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": "wrong"})
    assert r.status_code == 401 and "wrong" in r.json()["detail"]
    assert client.post("/api/v1/admin/login", json={"username": "nobody", "password": "x"}).status_code == 401
    with TestClient(client.app) as c2:  # a browser: the cookie carries the session
        r = c2.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
        assert c2.get("/api/v1/admin/me").json()["username"] == ADMIN[0]
        c2.post("/api/v1/admin/logout")
        assert c2.get("/api/v1/admin/me").status_code == 401


def test_expired_session_is_refused(env):
    from backend import auth

    client, _, _ = env
    token = auth.make_session_token(client.app.state.secret, 1, ttl_s=-1)
    assert client.get("/api/v1/admin/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_login_attempts_are_limited(tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", models_dir=models, model_poll_s=0,
                        default_model="sketch2anime", datasets_dir=tmp_path / "ds", login_attempts_per_minute=3)
    with TestClient(create_app(settings)) as c:
        codes = [c.post("/api/v1/admin/login", json={"username": "x", "password": "y"}).status_code for _ in range(5)]
    assert codes[:3] == [401] * 3 and codes[3:] == [429, 429]


def _app(tmp_path, tiny_model, **extra):
    models = tmp_path / "models"
    if not models.exists():
        shutil.copytree(tiny_model, models / "sketch2anime")
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", models_dir=models, model_poll_s=0,
                               default_model="sketch2anime", drawing_models=["sketch2anime"],
                               datasets_dir=tmp_path / "ds", admin_username=ADMIN[0], admin_password=ADMIN[1],
                               **extra))


def _login(client: TestClient, password: str = ADMIN[1], **kwargs):
    return client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": password}, **kwargs)


def test_logout_revokes_the_token(env):
    client, _, _ = env
    with TestClient(client.app) as browser:
        token = _login(browser).json()["token"]
        cookie = browser.cookies.get("d2a_session")
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/admin/me", headers=bearer).status_code == 200
        assert browser.post("/api/v1/admin/logout").status_code == 200
    # the same token, kept by whoever saw it, no longer opens the dashboard: not as a bearer token,
    # not as a cookie
    assert client.get("/api/v1/admin/me", headers=bearer).status_code == 401
    with TestClient(client.app, cookies={"d2a_session": cookie}) as replay:
        assert replay.get("/api/v1/admin/me").status_code == 401
    # another session of the same admin is not logged out with it
    other = {"Authorization": f"Bearer {_login(client).json()['token']}"}
    assert client.get("/api/v1/admin/me", headers=other).status_code == 200
    assert client.post("/api/v1/admin/logout", headers=other).status_code == 200
    assert client.get("/api/v1/admin/me", headers=other).status_code == 401


def test_cookie_requests_that_change_things_must_come_from_the_app_itself(env):
    client, _, _ = env
    new_key = {"name": "csrf?", "rate_limit_per_minute": 5}
    with TestClient(client.app) as browser:
        token = _login(browser).json()["token"]
        foreign = {"Origin": "https://evil.example"}
        r = browser.post("/api/v1/admin/api-keys", json=new_key, headers=foreign)
        assert r.status_code == 403 and "origin" in r.json()["detail"]
        assert browser.post("/api/v1/admin/api-keys", json=new_key,
                            headers={"Referer": "https://evil.example/page"}).status_code == 403
        assert browser.post("/api/v1/admin/api-keys", json=new_key, headers={"Origin": "null"}).status_code == 403
        assert browser.post("/api/v1/admin/logout", headers=foreign).status_code == 403  # still logged in
        assert browser.get("/api/v1/admin/api-keys", headers=foreign).status_code == 200  # reading changes nothing
        assert browser.post("/api/v1/admin/api-keys", json=new_key,
                            headers={"Origin": "http://testserver"}).status_code == 201
        assert browser.post("/api/v1/admin/api-keys", json=new_key,
                            headers={"Referer": "http://testserver/admin/"}).status_code == 201
        # a bearer token is not sent by browsers on their own: no origin check
        assert client.post("/api/v1/admin/api-keys", json=new_key,
                           headers={**foreign, "Authorization": f"Bearer {token}"}).status_code == 201


def test_wrong_passwords_from_one_address_never_lock_the_admin_out_elsewhere(tmp_path, tiny_model):
    app = _app(tmp_path, tiny_model, login_attempts_per_minute=3)
    with TestClient(app, client=("198.51.100.66", 1)) as attacker, TestClient(app, client=("192.0.2.10", 1)) as admin:
        window = int(time.time() // 60)
        codes = [_login(attacker, "guess").status_code for _ in range(11)]
        right_from_attacker = _login(attacker).status_code
        same_window = int(time.time() // 60) == window
        # the real admin, elsewhere, gets in, as often as needed: successes are not failures
        assert [_login(admin).status_code for _ in range(5)] == [200] * 5
        if same_window:
            assert codes == [401] * 3 + [429] * 8 and right_from_attacker == 429


def test_forwarded_addresses_count_only_from_configured_proxies(tmp_path, tiny_model):
    app = _app(tmp_path, tiny_model, login_attempts_per_minute=3)
    with TestClient(app, client=("198.51.100.66", 1)) as direct:
        window = int(time.time() // 60)
        codes = [_login(direct, "guess", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(5)]
        if int(time.time() // 60) == window:  # a new X-Forwarded-For per try changes nothing
            assert codes == [401] * 3 + [429] * 2
    app = _app(tmp_path, tiny_model, login_attempts_per_minute=3, trusted_proxies=["10.0.0.0/8"])
    with TestClient(app, client=("10.1.2.3", 1)) as proxy:
        window = int(time.time() // 60)
        # behind the proxy, each forwarded client is its own; a spoofed address ahead of the one
        # the proxy saw is ignored
        spread = [_login(proxy, "guess", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(5)]
        one = [_login(proxy, "guess", headers={"X-Forwarded-For": f"192.0.2.{i}, 203.0.113.99"}).status_code
               for i in range(5)]
        if int(time.time() // 60) == window:
            assert spread == [401] * 5 and one == [401] * 3 + [429] * 2


@pytest.mark.parametrize("path", ["/", "/admin/", "/faces/", "/api/v1/models", "/healthz", "/api/v1/admin/me"])
def test_pages_and_the_api_send_security_headers(env, path):
    client, _, _ = env
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


def test_the_api_docs_page_still_loads_under_its_own_policy(env):
    client, _, _ = env
    r = client.get("/docs")
    assert r.status_code == 200 and "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_the_pages_have_no_inline_script_or_style_that_the_policy_would_block():
    import re

    from backend.app import FRONTEND_DIR

    for page in FRONTEND_DIR.rglob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page  # every script is a file
        assert not re.search(r"\son[a-z]+\s*=", html), page  # no onclick= and friends
        assert not re.search(r"<style|\sstyle\s*=", html), page
        assert "javascript:" not in html, page


# -- API keys --------------------------------------------------------------------------------------

def test_api_key_lifecycle_and_rate_limit(env, admin):
    client, _, _ = env
    r = client.post("/api/v1/admin/api-keys", json={"name": "partner app", "rate_limit_per_minute": 3}, headers=admin)
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    listed = client.get("/api/v1/admin/api-keys", headers=admin).json()
    assert [k for k in listed if k["id"] == created["id"]] and all("key" not in k for k in listed)
    body = {"strokes": FACE, "size": 64}
    # the drawing endpoint: open without a key, checked with one
    assert client.post("/api/v1/translate", json=body).status_code == 200
    assert client.post("/api/v1/translate", json=body, headers={"X-API-Key": "d2a_wrong"}).status_code == 401
    window = int(time.time() // 60)
    codes = [client.post("/api/v1/translate", json=body, headers={"X-API-Key": key}).status_code for _ in range(4)]
    if int(time.time() // 60) == window:  # all four in one rate window
        assert codes == [200, 200, 200, 429]
    r = client.post("/api/v1/translate", json=body, headers={"X-API-Key": key})
    if r.status_code == 429:
        assert int(r.headers["Retry-After"]) > 0 and "per minute" in r.json()["detail"]
    # revoked keys are refused
    assert client.delete(f"/api/v1/admin/api-keys/{created['id']}", headers=admin).status_code == 200
    assert client.post("/api/v1/translate", json=body, headers={"X-API-Key": key}).status_code == 401


def test_anonymous_calls_have_a_budget_per_address(tmp_path, tiny_model):
    """Without a key the drawing endpoint is open, but each address has its own per-minute budget
    (a kid's live preview fits in it; a script does not), and a 422 spends it too."""
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", models_dir=models, model_poll_s=0,
                        default_model="sketch2anime", drawing_models=["sketch2anime"], datasets_dir=tmp_path / "ds",
                        anonymous_requests_per_minute=3)
    body = {"strokes": FACE, "size": 64}
    app = create_app(settings)
    with TestClient(app) as c, TestClient(app, client=("203.0.113.7", 4000)) as other:
        window = int(time.time() // 60)
        codes = [c.post("/api/v1/translate", json=body).status_code for _ in range(2)]
        codes.append(c.post("/api/v1/translate", json={"strokes": []}).status_code)
        r = c.post("/api/v1/translate", json=body)
        codes.append(r.status_code)
        if int(time.time() // 60) == window:  # all in one rate window
            assert codes == [200, 200, 422, 429]
            assert int(r.headers["Retry-After"]) > 0 and "per minute" in r.json()["detail"]
        assert other.post("/api/v1/translate", json=body).status_code == 200  # another address: its own budget


# -- jobs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, field", [
    ({"lr": -1}, "lr"), ({"steps": 10, "decay_steps": 20}, "config"), ({"optimizer": "rmsprop"}, "optimizer"),
    ({"no_such_field": 1}, "no_such_field"), ({"mix": {"quickdraw": -1}}, "mix.quickdraw"),
])
def test_invalid_job_configs_are_refused_with_the_field(env, admin, config, field):
    client, _, _ = env
    r = client.post("/api/v1/admin/jobs", json={"kind": "cyclegan", "config": config}, headers=admin)
    assert r.status_code == 422
    assert any(p["field"] == field for p in r.json()["detail"]), r.json()
    assert client.get("/api/v1/admin/jobs", headers=admin).json() == []  # nothing was queued


def test_job_kinds_schema_lists_the_papers_hyper_parameters(env, admin):
    client, _, _ = env
    props = client.get("/api/v1/admin/job-kinds", headers=admin).json()["cyclegan"]["properties"]
    for name in ("lr", "lr_d", "beta1", "beta2", "optimizer", "momentum", "batch_size", "steps", "decay_steps",
                 "schedule", "weight_decay", "lambda_cycle", "lambda_identity", "n_blocks", "image_size",
                 "flip", "sharpness", "fuzzy_labels", "minibatch_discrimination", "seed"):
        assert name in props, name


def test_job_kinds_have_titles_and_every_field_a_description(env, admin):
    client, _, _ = env
    kinds = client.get("/api/v1/admin/job-kinds", headers=admin).json()
    assert list(kinds) == ["cyclegan", "discogan", "unit", "lineart", "selfie2anime", "doodle_encoder", "dcgan", "lsgan",
                           "wgan_div", "stylegan", "upscaler"]
    assert kinds["cyclegan"]["title"] == "CycleGAN: drawings to anime faces"
    for name, schema in kinds.items():
        assert all(prop.get("description") for prop in schema["properties"].values()), name


def test_an_unknown_job_kind_is_a_422_that_lists_the_valid_ones(env, admin):
    client, _, _ = env
    r = client.post("/api/v1/admin/jobs", json={"kind": "biggan", "config": {}}, headers=admin)
    assert r.status_code == 422
    assert f"unknown model kind 'biggan'; valid: {', '.join(KINDS)}" in r.text
    assert client.get("/api/v1/admin/jobs", headers=admin).json() == []  # nothing was queued


def test_missing_job_is_404(env, admin):
    client, _, _ = env
    for path in ("/api/v1/admin/jobs/999", "/api/v1/admin/jobs/999/sample"):
        assert client.get(path, headers=admin).status_code == 404
    assert client.post("/api/v1/admin/jobs/999/cancel", headers=admin).status_code == 404


def test_a_queue_that_is_down_is_a_503_and_the_job_says_so_then_moves_are_409(env, admin, monkeypatch):
    from backend.jobs.celery_app import celery_app

    client, _, _ = env

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_app, "send_task", down)
    r = client.post("/api/v1/admin/jobs", json={"kind": "dcgan", "config": {"steps": 5}}, headers=admin)
    assert r.status_code == 503 and r.json()["detail"] == "the job queue is not reachable: broker down"
    (job,) = [j for j in client.get("/api/v1/admin/jobs", headers=admin).json() if j["kind"] == "dcgan"]
    assert job["status"] == "failed" and job["error"].startswith("The job queue could not be reached")
    assert "ConnectionError: broker down" in job["error"]
    r = client.post(f"/api/v1/admin/jobs/{job['id']}/retry", headers=admin)  # still down: failed again
    assert r.status_code == 503
    assert client.get(f"/api/v1/admin/jobs/{job['id']}", headers=admin).json()["status"] == "failed"
    r = client.post(f"/api/v1/admin/jobs/{job['id']}/cancel", headers=admin)
    assert r.status_code == 409 and r.json()["detail"] == f"job {job['id']} is failed; only queued or running jobs can be cancelled"
    monkeypatch.undo()
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **k: type("Sent", (), {"id": "task-1"})())
    r = client.post(f"/api/v1/admin/jobs/{job['id']}/retry", headers=admin)  # the queue is back
    assert r.status_code == 200 and r.json()["status"] == "queued"
    r = client.post(f"/api/v1/admin/jobs/{job['id']}/retry", headers=admin)
    assert r.status_code == 409 and r.json()["detail"] == f"job {job['id']} is queued; only failed or cancelled jobs can be retried"
    assert client.post(f"/api/v1/admin/jobs/{job['id']}/cancel", headers=admin).json()["status"] == "cancelled"


# -- model versions ------------------------------------------------------------------------------

def _version(env, name: str, version: str):
    client, settings, base = env
    folder = base / "versions" / version
    shutil.copytree(settings.models_dir / "sketch2anime", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with client.app.state.Session() as s:
        v = crud.create_model_version(s, name=name, version=version, kind="cyclegan", manifest=manifest, folder=str(folder))
        return v.id, folder


def _serving(client):
    ready = client.get("/readyz").json()
    return ready["version"]


def test_promote_rollback_ensemble_and_tamper(env, admin):
    client, settings, _ = env
    assert _serving(client) == "1"  # the bundled model
    a, _ = _version(env, "sketch2anime", "va")
    b, folder_b = _version(env, "sketch2anime", "vb")
    members = len(client.get("/api/v1/models").json()[0]["members"])

    r = client.post(f"/api/v1/admin/models/{a}/promote", headers=admin)
    assert r.status_code == 200 and r.json()["loaded_here"] is True
    assert _serving(client) == "va"
    assert client.post(f"/api/v1/admin/models/{b}/promote", headers=admin).status_code == 200
    assert _serving(client) == "vb"

    # a request in flight keeps the ensemble it started with: grab it, swap, and still run it
    ens = client.app.state.store.get()
    assert client.post("/api/v1/admin/models/rollback", headers=admin).status_code == 200
    assert _serving(client) == "va"
    assert ens.translate_bitmaps(np.zeros((1, 28, 28), np.uint8), [0])[0].shape[0] == 1

    # a version whose file was changed is refused; the current one keeps serving
    member = next(folder_b.glob("*.onnx"))
    member.write_bytes(member.read_bytes()[:-8] + b"tampered")
    r = client.post(f"/api/v1/admin/models/{b}/promote", headers=admin)
    assert r.status_code == 409 and "sha256" in r.json()["detail"]
    assert _serving(client) == "va"
    assert client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}).status_code == 200

    # ensemble membership adds members to the served model, and takes them out again
    c, _ = _version(env, "sketch2anime", "vc")
    r = client.post(f"/api/v1/admin/models/{c}/ensemble", json={"in_ensemble": True}, headers=admin)
    assert r.status_code == 200
    assert len(client.app.state.store.get().members) == 2 * members
    r = client.post("/api/v1/translate", json={"strokes": FACE, "size": 64, "member": "all", "response": "json"})
    assert len(r.json()["images"]) == 2 * members
    client.post(f"/api/v1/admin/models/{c}/ensemble", json={"in_ensemble": False}, headers=admin)
    assert len(client.app.state.store.get().members) == members
    r = client.post(f"/api/v1/admin/models/{b}/ensemble", json={"in_ensemble": True}, headers=admin)
    assert r.status_code == 409  # the tampered one cannot join either

    # back to the bundled model when nothing earlier was promoted
    with client.app.state.Session() as s:
        for v in crud.list_model_versions(s):
            v.active, v.promoted_at = False, None
        s.commit()
    client.app.state.watcher.check()
    assert _serving(client) == "1"
    assert client.post("/api/v1/admin/models/rollback", headers=admin).status_code == 409


def test_other_models_cannot_serve_drawings(env, admin):
    client, _, _ = env
    other, _ = _version(env, "stylegan", "s1")
    r = client.post(f"/api/v1/admin/models/{other}/promote", headers=admin)
    assert r.status_code == 422


# -- data sets -------------------------------------------------------------------------------------

def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _png(size=(16, 16), color=(200, 100, 50)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _left_behind(settings) -> list[str]:
    root = settings.datasets_dir
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not str(p.relative_to(root)).startswith("builtin"))


def test_good_uploads_are_stored_with_counts_and_previews(env, admin):
    client, settings, _ = env
    good = {
        "faces.zip": _zip({f"img/{i}.png": _png(color=(i * 20, 80, 160)) for i in range(5)}),
        "doodles.ndjson": "\n".join(json.dumps({"word": "smiley face", "drawing": FACE}) for _ in range(3)).encode(),
        "bitmaps.npy": _npy(np.random.default_rng(0).integers(0, 255, (7, 784), dtype=np.uint8)),
    }
    counts = {"faces.zip": 5, "doodles.ndjson": 3, "bitmaps.npy": 7}
    for name, data in good.items():
        r = client.post("/api/v1/admin/datasets", files={"file": (name, data)}, data={"name": f"good {name}"}, headers=admin)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["item_count"] == counts[name] and body["has_preview"]
        preview = client.get(f"/api/v1/admin/datasets/{body['id']}/preview", headers=admin)
        assert preview.status_code == 200 and preview.content[:4] == b"\x89PNG"
    r = client.post("/api/v1/admin/datasets", files={"file": ("again.npy", good["bitmaps.npy"])},
                    data={"name": "good bitmaps.npy"}, headers=admin)
    assert r.status_code == 409


def _bomb_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, "PNG")  # 25 Mpx of zeros compresses to a few kB
    return buf.getvalue()


def _zip_with_raw_name(name: str) -> bytes:
    """A zip whose entry name is written as given (zipfile would clean an absolute name)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("placeholder.png")
        zf.writestr(info, _png())
    data = buf.getvalue()
    return data.replace(b"placeholder.png", name.encode().ljust(len("placeholder.png"), b"x")[:len("placeholder.png")])


BAD_UPLOADS = {
    "wrong kind": ("notes.txt", b"hello", 415, "upload a .zip"),
    "too large": ("big.npy", b"\0" * 300_000, 413, "limit"),
    "not a zip": ("broken.zip", b"PK\x03\x04 this is not a zip", 422, "zip"),
    "dot-dot entry": ("evil.zip", _zip({"../../escape.png": _png()}), 422, "outside the archive"),
    "absolute entry": ("abs.zip", _zip_with_raw_name("/etc/passwd.png"), 422, "outside the archive"),
    "zip bomb": ("bomb.zip", _zip({f"{i}.png": b"\0" * 600_000 for i in range(4)}), 413, "unpacks to"),
    "too many files": ("many.zip", _zip({f"{i}.png": _png() for i in range(60)}), 413, "at most 50"),
    "undecodable image": ("bad.zip", _zip({"a.png": _png(), "b.png": b"\x89PNG\r\n\x1a\n garbage"}), 422, "b.png"),
    "not an image": ("txt.zip", _zip({"a.txt": b"words"}), 422, "not an image file"),
    "decompression bomb": ("dbomb.zip", _zip({"huge.png": _bomb_png()}), 422, "too large to decode"),
    "ndjson not json": ("d.ndjson", b'{"drawing": [[[1,2],[3,4]]]}\nnot json\n', 422, "line 2"),
    "ndjson bad drawing": ("d2.ndjson", b'{"drawing": [[[1,2],[3]]]}\n', 422, "line 1"),
    "ndjson no drawing": ("d3.ndjson", b'{"word": "face"}\n', 422, "'drawing'"),
    "npy wrong dtype": ("f.npy", _npy(np.zeros((3, 784), np.float32)), 422, "uint8"),
    "npy wrong shape": ("s.npy", _npy(np.zeros((3, 100), np.uint8)), 422, "N x 784"),
    "npy pickle": ("p.npy", _npy(np.array([{"a": 1}], dtype=object)), 422, "numpy"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS), ids=list(BAD_UPLOADS))
def test_bad_uploads_are_refused_and_leave_nothing(env, admin, case):
    client, settings, _ = env
    filename, data, status, words = BAD_UPLOADS[case]
    before = _left_behind(settings)
    r = client.post("/api/v1/admin/datasets", files={"file": (filename, data)}, data={"name": f"bad {case}"}, headers=admin)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"], r.json()["detail"]
    assert _left_behind(settings) == before
    names = [d["name"] for d in client.get("/api/v1/admin/datasets", headers=admin).json()]
    assert f"bad {case}" not in names


# -- Redis down -------------------------------------------------------------------------------------

def test_with_redis_down_login_and_api_keys_still_work_and_limits_hold(tmp_path, tiny_model):
    """The rate limiters count in the process when Redis does not answer: never a 500."""
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", models_dir=models, model_poll_s=0,
                        default_model="sketch2anime", drawing_models=["sketch2anime"], datasets_dir=tmp_path / "ds",
                        admin_username=ADMIN[0], admin_password=ADMIN[1], redis_url="redis://127.0.0.1:1/0",
                        anonymous_requests_per_minute=1000)
    body = {"strokes": FACE, "size": 64}
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": "wrong"}).status_code == 401
        r = c.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        bearer = {"Authorization": f"Bearer {r.json()['token']}"}
        key = c.post("/api/v1/admin/api-keys", json={"name": "app", "rate_limit_per_minute": 2}, headers=bearer).json()["key"]
        window = int(time.time() // 60)
        codes = [c.post("/api/v1/translate", json=body, headers={"X-API-Key": key}).status_code for _ in range(3)]
        assert codes[:2] == [200, 200] and codes[2] in (200, 429)
        if int(time.time() // 60) == window:
            assert codes[2] == 429  # the key's limit is kept in the process meanwhile
        assert c.post("/api/v1/translate", json=body).status_code == 200  # the drawing page
