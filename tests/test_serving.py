"""Which drawing model serves when files go bad, and getting back without a restart.

- a promoted version whose file was damaged is refused; when nothing else serves its name, the
  intact bundled model does, and the store says truthfully what serves and why;
- restoring the damaged file is noticed on the next poll: the promoted version serves again;
- with no database (bundled models only), a damaged bundled model is 503 with the reason, and
  restoring it serves again on the next poll, without a restart.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.db import crud
from backend.db.session import make_engine, make_sessionmaker, upgrade_database
from backend.serving import ModelStore, ServingWatcher
from backend.settings import Settings
from core.manifest import ModelManifest

ROOT = Path(__file__).resolve().parents[1]

FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]


def _damage(folder: Path) -> tuple[Path, bytes]:
    """Flip one byte of the first member file; returns (file, its good bytes)."""
    member = folder / ModelManifest.load(folder).members[0].file
    good = member.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    member.write_bytes(bytes(bad))
    return member, good


@pytest.fixture
def deployment(tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    promoted = tmp_path / "versions" / "v2"
    shutil.copytree(tiny_model, promoted)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", models_dir=models,
                        default_model="sketch2anime", drawing_models=["sketch2anime"], model_poll_s=0,
                        providers=["CPUExecutionProvider"])
    upgrade_database(settings.database_url)
    Session = make_sessionmaker(make_engine(settings.database_url))
    with Session() as s:
        v = crud.create_model_version(s, name="sketch2anime", version="v2", kind="cyclegan-sketch2anime",
                                      manifest=ModelManifest.load(promoted).model_dump(mode="json"), folder=str(promoted))
        crud.set_active_model_version(s, version_id=v.id)
    return settings, Session, promoted


def test_a_damaged_promoted_version_falls_back_to_the_bundled_model_and_comes_back(deployment):
    settings, Session, promoted = deployment
    member, good = _damage(promoted)
    store = ModelStore(default="sketch2anime")
    watcher = ServingWatcher(store, Session, settings)

    watcher.check()
    serving = store.get()
    assert serving is not None, store.errors  # not 503: the bundled model serves
    assert serving.folder == settings.models_dir / "sketch2anime"
    assert "v2" in store.errors["sketch2anime"] and "sha256" in store.errors["sketch2anime"]
    assert "the bundled" in store.errors["sketch2anime"]
    assert watcher.check() == []  # nothing changed on disk: not tried again
    with TestClient(create_app(settings)) as client:  # and the API says so (a new process, same files)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and "v2 was refused" in ready["refused"]["sketch2anime"]
        listed = client.get("/api/v1/models").json()[0]
        assert listed["serving"] and "the bundled sketch2anime keeps serving" in listed["error"]

    member.write_bytes(good)  # the operator restores the file
    assert watcher.check() == ["sketch2anime"]
    assert store.get().folder == promoted and "sketch2anime" not in store.errors


def test_the_damaged_version_never_replaces_a_good_one_that_serves(deployment):
    settings, Session, promoted = deployment
    store = ModelStore(default="sketch2anime")
    watcher = ServingWatcher(store, Session, settings)
    watcher.check()
    assert store.get().folder == promoted
    _damage(promoted)
    with Session() as s:  # promoted again (as a new poll would see a new choice)
        v = crud.create_model_version(s, name="sketch2anime", version="v3", kind="cyclegan-sketch2anime",
                                      manifest=ModelManifest.load(promoted).model_dump(mode="json"), folder=str(promoted))
        crud.set_active_model_version(s, version_id=v.id)
    watcher.check()
    assert store.get().folder == promoted  # the v2 session loaded before still serves
    assert "v3" in store.errors["sketch2anime"] and "v2 keeps serving" in store.errors["sketch2anime"]


def test_without_a_database_a_damaged_bundled_model_recovers_without_a_restart(tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    member, good = _damage(models / "sketch2anime")
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", models_dir=models,
                        default_model="sketch2anime", drawing_models=["sketch2anime"], model_poll_s=0.2,
                        providers=["CPUExecutionProvider"])
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/translate", json={"strokes": FACE, "size": 64})
        assert r.status_code == 503 and "sha256" in r.json()["detail"]
        member.write_bytes(good)
        client.app.state.watcher.check()
        assert client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}).status_code == 200


@pytest.mark.parametrize("promoted", [True, False], ids=["a promoted version", "the bundled one"])
def test_a_drawing_model_on_a_damaged_prior_comes_back_when_the_prior_is_restored(tmp_path, promoted):
    """The doodle encoder draws with the StyleGAN prior. With the prior's mapping damaged it is
    refused (and its bundled fallback too: the same prior); when the prior is restored it serves
    again on the next poll. Before, a refused choice was tried again only when its own files
    changed, not its prior's, and stayed down until a restart."""
    models = tmp_path / "models"
    for name in ("doodle_encoder", "anime_faces", "face_check"):
        shutil.copytree(ROOT / "models" / name, models / name)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", models_dir=models,
                        default_model="doodle_encoder", drawing_models=["doodle_encoder"], model_poll_s=0,
                        providers=["CPUExecutionProvider"])
    upgrade_database(settings.database_url)
    Session = make_sessionmaker(make_engine(settings.database_url))
    folder = models / "doodle_encoder"
    if promoted:
        folder = tmp_path / "versions" / "v2"
        shutil.copytree(models / "doodle_encoder", folder)
        with Session() as s:
            v = crud.create_model_version(s, name="doodle_encoder", version="v2", kind="doodle-encoder-stylegan",
                                          manifest=ModelManifest.load(folder).model_dump(mode="json"),
                                          folder=str(folder))
            crud.set_active_model_version(s, version_id=v.id)
    mapping = models / "anime_faces" / "mapping.onnx"
    good = mapping.read_bytes()
    mapping.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])
    store = ModelStore(default="doodle_encoder")
    watcher = ServingWatcher(store, Session, settings)

    watcher.check()
    assert store.get() is None and "mapping.onnx" in store.errors["doodle_encoder"]
    assert watcher.check() == []            # nothing changed on disk: not tried again
    mapping.write_bytes(good)               # the operator restores the prior's file
    assert watcher.check() == ["doodle_encoder"]
    assert store.get() is not None and store.get().folder == folder and "doodle_encoder" not in store.errors


def test_the_admin_api_comes_back_with_the_database_and_never_shows_its_internals(tmp_path, tiny_model):
    import time

    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    missing = tmp_path / "not-yet"  # a file where the database's folder should be: it cannot open
    missing.write_text("in the way")
    settings = Settings(database_url=f"sqlite:///{missing / 'app.db'}", models_dir=models, default_model="sketch2anime",
                        drawing_models=["sketch2anime"], model_poll_s=0, db_retry_s=0.5,
                        providers=["CPUExecutionProvider"], admin_username="root", admin_password="a long password",
                        datasets_dir=tmp_path / "datasets")
    login = {"username": "root", "password": "a long password"}
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}).status_code == 200
        r = client.post("/api/v1/admin/login", json=login)
        assert r.status_code == 503 and r.headers.get("retry-after")
        assert "not-yet" not in r.text and "sqlite" not in r.text.lower() and "unable" not in r.text
        missing.unlink()  # the database is reachable now
        deadline = time.monotonic() + 15
        while (r := client.post("/api/v1/admin/login", json=login)).status_code == 503:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert r.status_code == 200 and r.json()["token"]
