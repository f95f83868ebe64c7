"""The anime upscaler: a tiny run trains, resumes to the very weights of a run that never
stopped and exports with ONNX-torch parity; a tiny job trains and exports through the registry
as the job runner does, stops when cancelled and resumes; the runtime doubles as often as a size asks and
Lanczos does only the rest; the shipped one beats Lanczos and bicubic on held-out faces; the API
enlarges faces with it, and with Lanczos where it cannot."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from backend.app import create_app
from backend.settings import Settings
from core.configs.upscale import UpscalerConfig
from core.upscale import Upscaler

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "upscaler"
TINY = UpscalerConfig(channels=4, blocks=2, steps=6, batch_size=4, patch=32, pairs=64, checkpoint_every=3, log_every=2)
FACE = [[[30, 70, 110, 70, 30], [20, 10, 50, 90, 50]], [[50, 52], [40, 42]], [[88, 90], [40, 42]],
        [[50, 70, 90], [70, 80, 70]]]


def fake_faces(seed: int = 0) -> dict[str, np.ndarray]:
    """A few blocky colour fields in the two sizes (fewer than a split's start: all train)."""
    rng = np.random.default_rng(seed)
    large = np.repeat(np.repeat(rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), 16, axis=1), 16, axis=2)
    small = np.repeat(np.repeat(rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8), 16, axis=1), 16, axis=2)
    return {"large": large, "small": small}


@pytest.fixture(scope="module")
def faces():
    return fake_faces()


class Stop(Exception):
    pass


def test_a_tiny_run_resumes_to_the_weights_of_a_run_that_never_stopped_and_exports_with_parity(tmp_path, faces):
    from training.upscale.export import export
    from training.upscale.train import UpscalerTrainer

    whole = UpscalerTrainer(TINY, tmp_path / "whole", tmp_path, threads=1, faces=faces)
    whole.run()

    def stop_at_3(p):
        assert p.total_steps == 6 and set(p.losses) == {"loss", "l1", "edges"}
        if p.step == 3:
            raise Stop

    with pytest.raises(Stop):
        UpscalerTrainer(TINY, tmp_path / "split", tmp_path, threads=1, faces=faces).run(stop_at_3)
    resumed = UpscalerTrainer(TINY, tmp_path / "split", tmp_path, threads=1, faces=faces)
    assert resumed.load_checkpoint() and resumed.step == 3
    resumed.run()
    for a, b in zip(whole.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="another config"):
        UpscalerTrainer(TINY.model_copy(update={"lr": 1e-4}), tmp_path / "split", tmp_path, faces=faces).load_checkpoint()

    out = export(whole, tmp_path / "upscaler", {"psnr": 1.0})
    model = Upscaler(out, ["CPUExecutionProvider"], 1)
    assert model.manifest.members[0].parity_max_abs_diff < 1e-4
    assert (out / "upscaler.safetensors").is_file() and (out / "samples.jpg").is_file()
    x = faces["small"][-3:]
    with torch.no_grad():
        want = whole.net(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0))
    want = np.clip(np.rint((want.numpy() + 1) * 127.5), 0, 255).transpose(0, 2, 3, 1)
    assert np.abs(model.enlarge(x).astype(int) - want).max() <= 1


def _image_zip(path: Path, pictures: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for i, picture in enumerate(pictures):
            buf = io.BytesIO()
            Image.fromarray(picture).save(buf, format="PNG")
            zf.writestr(f"{i:04d}.png", buf.getvalue())
    return path


def test_a_tiny_job_trains_and_exports_through_the_registry_as_the_runner_does(tmp_path, faces):
    """The runner's path: the kind's trainer with an uploaded zip as ``anime_source``,
    ``load_checkpoint``, ``run(reporter, resume=False)`` (a reporter that cancels stops it with a
    checkpoint; a new worker resumes), then the kind's exporter: a manifest the runtime serves,
    measured on the zip's held-out faces. A fake data folder holds the 64 px faces."""
    from core.kinds import get_kind, kind_of_manifest
    from core.progress import TrainingCancelled
    from training.data import ANIME_ZIP

    kind = get_kind("upscaler")
    assert kind_of_manifest("anime-upscaler") is kind and kind.runtime.load() is Upscaler
    data_dir = tmp_path / "data"
    _image_zip(data_dir / ANIME_ZIP, faces["small"])
    upload = _image_zip(tmp_path / "upload.zip", faces["large"])
    config = kind.config.model_validate({**TINY.model_dump(), "kind": "upscaler"})
    run_dir = tmp_path / "job-1"
    events = []

    def cancel_at_4(p):
        events.append(p)
        if p.step == 4:
            raise TrainingCancelled("cancel requested")

    trainer = kind.trainer.load()(config, run_dir, data_dir, anime_source=upload)
    assert not trainer.load_checkpoint()
    assert len(trainer.faces["large"]) == 40 and trainer.starts["large"] == 35   # the zip's last eighth held out
    with pytest.raises(TrainingCancelled):
        trainer.run(cancel_at_4, resume=False)
    assert [p.step for p in events] == [1, 2, 3, 4] and events[2].checkpoint_path is not None
    assert all(set(p.losses) == set(kind.shown_losses) and p.total_steps == 6 for p in events)

    trainer = kind.trainer.load()(config, run_dir, data_dir, anime_source=upload)   # the retry
    assert trainer.load_checkpoint() and trainer.step == 4
    trainer.run(events.append, resume=False)
    assert trainer.step == 6 and events[-1].step == 6 and events[-1].checkpoint_path is not None

    out = tmp_path / "models" / "upscaler-job1"
    manifest = kind.exporter.load()(run_dir, out, name="upscaler", version="job1", data_dir=data_dir)
    assert (manifest.name, manifest.version, manifest.kind) == ("upscaler", "job1", kind.manifest_kind)
    assert {m.label for m in manifest.members} == {"upscaler", "torch_weights"}
    assert manifest.metrics["faces_large"] == 5 and "psnr_large_spoiled_upscaler" in manifest.metrics
    assert "path" not in manifest.data[0] and manifest.data[0]["faces"] == "[0, 35) trained on, [35, 40) held out"
    model = kind.runtime.load()(out, ["CPUExecutionProvider"], 1)
    assert model.enlarge(faces["small"][:2]).shape == (2, 128, 128, 3)
    assert model.manifest.members[0].parity_max_abs_diff < 1e-4


def test_the_runtime_doubles_as_often_as_a_size_asks_and_lanczos_does_the_rest():
    model = Upscaler(SHIPPED, ["CPUExecutionProvider"], 1)
    assert [model.passes(64, s) for s in (32, 64, 100, 128, 200, 256, 512, 2048)] == [0, 0, 0, 1, 1, 2, 3, 3]
    faces = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for size in (48, 64, 128, 200, 256):
        pictures = model.resize(faces, size)
        assert len(pictures) == 2 and all(p.size == (size, size) for p in pictures)
    # a size that is a doubling is the network's own output, untouched by Lanczos
    assert np.array_equal(np.asarray(model.resize(faces, 256)[0]), model.enlarge(model.enlarge(faces))[0])


def test_the_shipped_upscaler_beats_lanczos_and_bicubic_on_held_out_faces(data_dir):
    """Held-out selfie2anime faces [3000, 3400) and 64 px faces [13400, end) (the first 60 of
    each), made half as large cleanly and as our generators spoil faces, through the served
    runtime: higher PSNR and SSIM than both on every column."""
    from training.upscale.train import evaluate, face_sets

    model = Upscaler(SHIPPED, ["CPUExecutionProvider"], 1)
    got = evaluate(model.enlarge, face_sets(data_dir), count=60)
    for key, value in got.items():
        if key.endswith("_upscaler"):
            for other in ("lanczos", "bicubic"):
                assert value > got[key.replace("_upscaler", f"_{other}")], (key, got)
    assert got["psnr_large_clean_upscaler"] > got["psnr_large_clean_lanczos"] + 1.0, got


def _png(content: bytes) -> Image.Image:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(content))


def test_the_api_enlarges_faces_with_the_upscaler_and_with_lanczos_where_it_cannot(tmp_path):
    with TestClient(create_app(Settings())) as client:
        big = client.post("/api/v1/translate", json={"strokes": FACE, "size": 256, "member": 0})
        assert big.status_code == 200 and big.headers["x-upscaler"] == "upscaler v1"
        assert _png(big.content).size == (256, 256)
        odd = client.post("/api/v1/translate", json={"strokes": FACE, "size": 200, "response": "json", "member": 0})
        assert odd.status_code == 200 and odd.json()["upscaler"] == "upscaler v1"
        assert _png(__import__("base64").b64decode(odd.json()["images"][0]["png_base64"])).size == (200, 200)
        own = client.post("/api/v1/translate", json={"strokes": FACE, "size": 64, "member": 0})
        assert own.status_code == 200 and "x-upscaler" not in own.headers
    # a damaged upscaler: faces still come, enlarged with Lanczos
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    (models / "upscaler" / "upscaler.onnx").write_bytes(b"not a graph")
    with TestClient(create_app(Settings(models_dir=models))) as client:
        r = client.post("/api/v1/translate", json={"strokes": FACE, "size": 256, "member": 0})
        assert r.status_code == 200 and "x-upscaler" not in r.headers and _png(r.content).size == (256, 256)
    with TestClient(create_app(Settings(upscaler=None))) as client:
        r = client.post("/api/v1/translate", json={"strokes": FACE, "size": 256, "member": 0})
        assert r.status_code == 200 and "x-upscaler" not in r.headers


def test_the_photo_composite_lays_the_upscaled_face_over_the_photo(data_dir):
    """A held-out selfie at 768 px: with the upscaler the anime face is enlarged onto the photo by
    it, so the composite changes only where the face and hair were, and has more detail there."""
    from core.configs.translation import PHOTO_HOLDOUT_START
    from core.photo import PhotoModel
    from training.train_selfie import load_photos

    model = PhotoModel(ROOT / "models" / "selfie2anime", ["CPUExecutionProvider"], 1)
    photos = load_photos(data_dir, 256)[PHOTO_HOLDOUT_START:PHOTO_HOLDOUT_START + 12]
    # at a phone photo's size, where the face is more than twice the model's 128 px
    photo = next(big for big in (Image.fromarray(p).resize((768, 768), Image.Resampling.LANCZOS) for p in photos)
                 if model.transform(big) is not None)
    plain = model.transform(photo)
    model.upscaler = Upscaler(SHIPPED, ["CPUExecutionProvider"], 1)
    sharp = model.transform(photo)
    assert np.array_equal(plain.anime, sharp.anime) and plain.crop == sharp.crop
    changed = np.abs(plain.composite.astype(int) - sharp.composite).sum(axis=-1) > 0
    left, top, side = plain.crop
    outside = changed.copy()
    outside[max(0, top):top + side, max(0, left):left + side] = False
    assert changed.any() and not outside.any()

    def detail(x):
        g = x.astype(np.float32).mean(axis=-1)[max(0, top):top + side, max(0, left):left + side]
        return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())

    assert detail(sharp.composite) > detail(plain.composite)


def test_a_promoted_upscaler_serves_and_a_damaged_one_is_refused(tmp_path):
    """The serving watcher follows the upscaler's promoted version like a drawing model's: a good
    one serves from the next poll; a damaged one is refused and the one before keeps serving;
    restored, it serves."""
    from backend.db import crud
    from backend.db.session import make_engine, make_sessionmaker, upgrade_database
    from backend.serving import ModelStore, ServingWatcher, UpscalerSlot
    from core.manifest import ModelManifest

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", drawing_models=["doodle_encoder"],
                        model_poll_s=0, providers=["CPUExecutionProvider"])
    upgrade_database(settings.database_url)
    Session = make_sessionmaker(make_engine(settings.database_url))
    slot = UpscalerSlot(settings)
    watcher = ServingWatcher(ModelStore(default="doodle_encoder"), Session, settings, upscaler=slot)
    watcher.check()
    assert slot.folder == SHIPPED and slot.get() is not None

    def promote(version: str) -> Path:
        folder = tmp_path / "versions" / version
        shutil.copytree(SHIPPED, folder)
        with Session() as s:
            v = crud.create_model_version(s, name="upscaler", version=version, kind="anime-upscaler",
                                          manifest=ModelManifest.load(folder).model_dump(mode="json"), folder=str(folder))
            crud.set_active_model_version(s, version_id=v.id)
        return folder

    good = promote("job1")
    assert "upscaler" in watcher.check() and slot.folder == good
    assert watcher.check() == []                       # nothing changed: nothing loaded again
    bad = promote("job2")
    graph = bad / "upscaler.onnx"
    saved = graph.read_bytes()
    graph.write_bytes(saved[:-10])
    assert watcher.check() == [] and slot.folder == good and "job2" in slot.error
    assert watcher.check() == []                       # refused once, not again until its files change
    graph.write_bytes(saved)
    assert "upscaler" in watcher.check() and slot.folder == bad and slot.error is None
