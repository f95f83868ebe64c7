"""A full disk: the calls that write answer a clear 507 and save nothing; drawing goes on.

The disk is made "full" where the app writes: the database's commit (SQLite says "database or
disk is full") and a file write (ENOSPC), as they fail on a real full disk.
"""

from __future__ import annotations

import errno
import shutil

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from backend.app import create_app
from backend.db import crud
from backend.settings import Settings

ADMIN = ("root", "a long enough password")
FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]


@pytest.fixture
def app(tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", models_dir=models, model_poll_s=0,
                        default_model="sketch2anime", drawing_models=["sketch2anime"], datasets_dir=tmp_path / "ds",
                        admin_username=ADMIN[0], admin_password=ADMIN[1], providers=["CPUExecutionProvider"])
    with TestClient(create_app(settings)) as client:
        token = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["token"]
        yield client, {"Authorization": f"Bearer {token}"}


def _full_database(monkeypatch):
    def full(self, *a, **kw):
        raise OperationalError("COMMIT", {}, Exception("database or disk is full"))
    monkeypatch.setattr(Session, "commit", full)


def test_a_full_disk_is_a_507_that_saves_nothing_and_drawing_goes_on(app, monkeypatch):
    client, admin = app
    with monkeypatch.context() as m:
        _full_database(m)
        r = client.post("/api/v1/admin/api-keys", json={"name": "kid app"}, headers=admin)
        assert r.status_code == 507 and "disk is full" in r.json()["detail"]
        assert client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}).status_code == 200
    keys = client.get("/api/v1/admin/api-keys", headers=admin).json()
    assert all(k["name"] != "kid app" for k in keys)  # nothing half-saved
    assert client.post("/api/v1/admin/api-keys", json={"name": "kid app"}, headers=admin).status_code in (200, 201)


def test_a_file_that_cannot_be_written_is_a_507(app, monkeypatch):
    client, admin = app

    def no_space(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(crud, "create_api_key", no_space)
    r = client.post("/api/v1/admin/api-keys", json={"name": "x"}, headers=admin)
    assert r.status_code == 507 and "try again later" in r.json()["detail"]


def test_any_other_failure_is_a_plain_500_without_internals(app, monkeypatch):
    client, admin = app

    def broken(*a, **kw):
        raise OSError(errno.EIO, "I/O error at /secret/path")

    monkeypatch.setattr(crud, "create_api_key", broken)
    r = client.post("/api/v1/admin/api-keys", json={"name": "x"}, headers=admin)
    assert r.status_code == 500 and "/secret/path" not in r.text


def test_a_keyed_drawing_call_goes_on_when_its_last_use_cannot_be_recorded(app, monkeypatch):
    client, admin = app
    plain = client.post("/api/v1/admin/api-keys", json={"name": "kid app"}, headers=admin).json()["key"]
    with monkeypatch.context() as m:
        _full_database(m)   # the call's only write is when the key was last used
        r = client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}, headers={"X-API-Key": plain})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        # a revoked key is still refused: only the bookkeeping is best effort
        bad = client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}, headers={"X-API-Key": "nope"})
        assert bad.status_code == 401


def test_a_well_signed_session_for_an_id_no_row_can_have_is_a_401(app):
    from backend import auth

    client, admin = app
    key = client.app.state.secret
    for user_id in (2**70, 2**31, 0, -1):
        token = auth.make_session_token(key, user_id, 600)
        for path in ("/api/v1/admin/jobs", "/api/v1/admin/models", "/api/v1/admin/me"):
            r = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, (user_id, path, r.status_code, r.text)
    assert client.get("/api/v1/admin/jobs", headers=admin).status_code == 200
