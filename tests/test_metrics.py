"""FID / KID: the two distances on hand-computed cases, the substitute extractor's determinism and
labels, the Inception loader's sha256 check and architecture, the real-set cache, the evaluate
CLI on a tiny exported generator, the worker's evaluate job and the evaluate API route."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from training.metrics import (
    INCEPTION_LABEL,
    RANDCONV_LABEL,
    FeatureStats,
    InceptionWeightsError,
    LaplacianSWD,
    RandomConvFeatures,
    RealImages,
    frechet_distance,
    kernel_inception_distance,
    laplacian_bands,
    make_extractor,
    polynomial_mmd2,
    real_features,
)

ADMIN = ("evaluator", "a long enough password")


def _images(n: int, size: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- the distances -------------------------------------------------------------------------------

def test_frechet_distance_of_identical_statistics_is_zero():
    stats = FeatureStats.of(np.random.default_rng(0).standard_normal((300, 8)))
    assert abs(frechet_distance(stats, stats)) < 1e-8


def test_frechet_distance_hand_computed_2d():
    # |mu|^2 = 1 + 4; diagonal covariances: (1 + 4 - 2*2) + (4 + 9 - 2*3) -> 5 + 1 + 1.
    a = FeatureStats(np.zeros(2), np.diag([1.0, 4.0]))
    b = FeatureStats(np.array([1.0, 2.0]), np.diag([4.0, 9.0]))
    assert frechet_distance(a, b) == pytest.approx(7.0, abs=1e-9)
    # S_b = [[2, 1], [1, 2]] has eigenvalues 3 and 1: Tr sqrt(I S_b) = sqrt(3) + 1.
    c = FeatureStats(np.zeros(2), np.eye(2))
    d = FeatureStats(np.zeros(2), np.array([[2.0, 1.0], [1.0, 2.0]]))
    assert frechet_distance(c, d) == pytest.approx(2 + 4 - 2 * (math.sqrt(3) + 1), abs=1e-9)


def test_frechet_distance_survives_fewer_samples_than_dimensions():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 128)), rng.standard_normal((40, 128)) + 0.3
    assert np.isfinite(frechet_distance(FeatureStats.of(a), FeatureStats.of(b)))


def test_kid_hand_computed():
    # d = 1, k(a, b) = (ab + 1)^3. XX off-diagonal: 2 k(0,1) = 2; YY: 2 k(1,2) = 54;
    # XY: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37. (2 + 54) / 2 - 2 * 37 / 4 = 9.5.
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    assert polynomial_mmd2(x, y) == pytest.approx(9.5)
    mean, std, m = kernel_inception_distance(x, y, subset_size=1000, subsets=5)
    assert (mean, std, m) == (pytest.approx(9.5), pytest.approx(0.0), 2)
    # d = 2 (the kernel divides by d): x1.x2 = 4 -> (4/2 + 1)^3 = 27, twice; YY 2; XY 4 ones.
    assert polynomial_mmd2(np.array([[2.0, 2.0], [0.0, 2.0]]), np.zeros((2, 2))) == pytest.approx(56 / 2 - 2 * 4 / 4)


def test_kid_of_identical_sets_is_near_zero_and_of_shifted_sets_is_not():
    x = np.random.default_rng(0).standard_normal((400, 16))
    same, _, _ = kernel_inception_distance(x, x, subset_size=200, subsets=20)
    shifted, _, _ = kernel_inception_distance(x, x + 0.5, subset_size=200, subsets=20)
    assert shifted > 0.5
    assert abs(same) < 0.05 * shifted


# -- the substitute extractor -------------------------------------------------------------------

def test_laplacian_bands_hold_detail_only_at_their_scale():
    flat = np.full((2, 16, 16, 3), 90, np.uint8)
    fine, half = laplacian_bands(flat, 2)
    assert fine.shape == (2, 16, 16, 3) and half.shape == (2, 8, 8, 3)
    assert np.abs(fine).max() < 1e-6 and np.abs(half).max() < 1e-6   # no edges, no detail
    checker = np.where((np.indices((16, 16)).sum(0) % 2)[None, :, :, None] == 1, 255, 0).astype(np.uint8)
    fine, half = laplacian_bands(np.repeat(np.repeat(checker, 3, 3), 2, 0), 2)
    assert np.abs(fine).mean() > 0.5 and np.abs(half).mean() < 0.05 * np.abs(fine).mean()  # 1 px detail: finest band


def test_texture_distance_sees_grain_and_blur_that_pooled_pixels_miss(data_dir):
    """Real faces against other real faces are close; the same faces with a little grain or a
    little blur are far on the finest band, though their 8x8-pooled pixels hardly move."""
    from PIL import Image, ImageFilter

    from training.data import load_anime_faces

    faces = load_anime_faces(data_dir)[:600]
    ref, other = faces[:300], faces[300:]
    swd = LaplacianSWD(ref, patches=4096, directions=128)
    floor = swd.distances(other)
    assert len(floor) == 2 and all(d > 0 for d in floor)
    assert swd.distances(ref) == [0.0, 0.0]
    assert swd.distances(other) == floor   # patches are drawn with a fixed seed
    grain = np.clip(other + np.random.default_rng(0).normal(0, 10, other.shape), 0, 255).astype(np.uint8)
    blur = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(0.8))) for f in other])
    for changed in (grain, blur):
        fine, _ = swd.distances(changed)
        assert fine > 2.5 * floor[0]
        pooled = lambda x: x.reshape(len(x), 8, 8, 8, 8, 3).mean((2, 4)) / 255.0  # noqa: E731
        assert np.abs(pooled(changed) - pooled(other)).mean() < 0.01


def test_a_fresh_classifier_tells_blurred_faces_from_real_ones_but_not_real_from_real(data_dir):
    from PIL import Image, ImageFilter

    from training.data import load_anime_faces
    from training.detectability import auc as _auc, detectability

    assert _auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0 and _auc(np.ones(3), np.ones(2)) == 0.5
    faces = load_anime_faces(data_dir)[:600]
    real_train, real_test, others = faces[:200], faces[200:300], faces[300:]
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(1.0))) for f in others])
    kw = dict(steps=100, batch=32, seed=0)
    same = detectability(real_train, others[:200], real_test, others[200:], **kw)
    told = detectability(real_train, blurred[:200], real_test, blurred[200:], **kw)
    assert 0.35 < same < 0.65 and told > 0.9, (same, told)
    assert detectability(real_train, blurred[:200], real_test, blurred[200:], **kw) == told  # seeded


def test_random_conv_features_are_deterministic():
    images = _images(6)
    first = RandomConvFeatures().features(images, batch_size=4)
    assert first.shape == (6, 256) and first.dtype == np.float64
    np.testing.assert_array_equal(first, RandomConvFeatures().features(images, batch_size=4))  # a fresh instance
    np.testing.assert_array_equal(first, RandomConvFeatures().features(images, batch_size=6))  # other batching
    # The same numbers on every machine and run (float64 on the CPU; pinned when written).
    np.testing.assert_allclose(first[0, :4], [0.2574257, 0.00622661, 0.10189981, 0.16042823], atol=1e-6)
    assert not np.allclose(first, RandomConvFeatures(seed=1).features(images))


def test_substitute_metrics_are_labelled_and_never_named_fid(tmp_path):
    from training.evaluate import evaluate_generator

    real = _images(48, seed=2)
    rng = np.random.default_rng(3)
    metrics = evaluate_generator(lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), 40,
                                 real_images=real, extractor=make_extractor(None), batch_size=16, kid_subsets=5)
    assert metrics["feature_extractor"] == RANDCONV_LABEL and "NOT comparable" in RANDCONV_LABEL
    assert {"fid_randconv", "kid_randconv", "kid_randconv_std"} <= set(metrics)
    assert not {"fid", "kid", "kid_std"} & set(metrics)
    assert metrics["n_samples"] == 40 and metrics["n_real"] == 48 and metrics["real_stats_cache"] == "off"
    assert np.isfinite(metrics["fid_randconv"]) and metrics["fid_randconv"] > 0


# -- the FID Inception ----------------------------------------------------------------------------

def test_inception_loader_refuses_a_file_with_the_wrong_sha256(tmp_path):
    from training.metrics import INCEPTION_FILE_NAME, INCEPTION_SHA256

    # pytorch-fid's file name carries the first 8 hex digits of the pinned sha256.
    assert len(INCEPTION_SHA256) == 64 and INCEPTION_FILE_NAME.removesuffix(".pth").endswith(INCEPTION_SHA256[:8])
    fake = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    fake.write_bytes(b"not the inception weights")
    with pytest.raises(InceptionWeightsError, match="sha256"):
        make_extractor(fake)
    with pytest.raises(InceptionWeightsError, match="not found"):
        make_extractor(tmp_path / "missing.pth")


def test_fid_inception_layout_pools_and_loader(tmp_path):
    import torch
    import torch.nn.functional as F

    from training.metrics import InceptionFeatures, build_fid_inception

    net = build_fid_inception()
    state = net.state_dict()
    # pytorch-fid's file holds 566 tensors: 94 conv+BN units (6 each) and the 1008-way fc.
    assert len(state) == 566 and state["fc.weight"].shape == (1008, 2048)
    ones = torch.ones(1, 4, 5, 5)
    # The TF graph averages only real pixels at the borders; torchvision's default would not.
    for block in (net.Mixed_5b, net.Mixed_6b, net.Mixed_7b):
        assert torch.equal(block.pool(ones), ones)
    assert F.avg_pool2d(ones, 3, 1, 1)[0, 0, 0, 0] < 1
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert net.Mixed_7c.pool(x)[0, 0, 0, 0] == 6.0  # max over the 2x2 corner window
    # The loader: a file whose sha256 is the expected one loads strictly into the layout.
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    features = InceptionFeatures(path, expected_sha256=digest).features(_images(2, size=40), batch_size=2)
    assert features.shape == (2, 2048) and np.isfinite(features).all() and (features >= 0).all()
    with pytest.raises(InceptionWeightsError):
        InceptionFeatures(path)  # the published sha256 is not this file's


def test_real_inception_weights_load_when_given():
    weights = os.environ.get("D2A_INCEPTION_WEIGHTS", "")
    if not weights or not Path(weights).is_file():
        pytest.skip("D2A_INCEPTION_WEIGHTS does not name a file: pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                    "cannot be downloaded here; point the variable at a copy to run this test")
    extractor = make_extractor(Path(weights))
    assert extractor.label == INCEPTION_LABEL and extractor.metric_suffix == ""
    features = extractor.features(_images(4), batch_size=4)
    assert features.shape == (4, 2048) and np.isfinite(features).all() and (features >= 0).all()


# -- the real-set cache ---------------------------------------------------------------------------

class CountingFeatures(RandomConvFeatures):
    def __init__(self):
        super().__init__()
        self.images_seen = 0

    def _batch(self, images):
        self.images_seen += len(images)
        return super()._batch(images)


def test_real_set_cache_hit_miss_and_corruption(tmp_path):
    extractor = CountingFeatures()
    real = RealImages.from_array(_images(30))
    first = real_features(real, extractor, tmp_path, batch_size=16)
    assert first.cache == "miss" and extractor.images_seen == 30
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("rand-conv-v1-") and "-n30-s32" in files[0].name

    again = real_features(real, extractor, tmp_path, batch_size=16)
    assert again.cache == "hit" and extractor.images_seen == 30  # nothing extracted
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.stats.sigma, first.stats.sigma)

    files[0].write_bytes(b"half a file")  # corrupt: recomputed and rewritten
    redo = real_features(real, extractor, tmp_path, batch_size=16)
    assert redo.cache == "miss" and extractor.images_seen == 60
    assert real_features(real, extractor, tmp_path).cache == "hit"

    # Another image count, other content or another extractor is another key.
    assert real_features(RealImages.from_array(_images(20)), extractor, tmp_path).cache == "miss"
    assert real_features(RealImages.from_array(_images(30, seed=9)), extractor, tmp_path).cache == "miss"
    assert real_features(real, RandomConvFeatures(seed=1), tmp_path).cache == "miss"
    assert len(list(tmp_path.glob("*.npz"))) == 4


def test_real_set_from_a_zip_is_keyed_by_its_file_hash(data_dir):
    from core.manifest import sha256_file
    from training.data import ANIME_ZIP

    real = RealImages.from_zip(data_dir / ANIME_ZIP, limit=10)
    assert (real.count, real.image_size, real.sha256) == (10, 64, sha256_file(data_dir / ANIME_ZIP))
    assert real.load().shape == (10, 64, 64, 3)


# -- a tiny exported generator, the CLI and the worker job ----------------------------------------

@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory, data_dir) -> Path:
    """A random 16x16 generator z (B, 8) -> (B, 3, 16, 16), exported to ONNX with a manifest."""
    import torch
    from torch import nn

    from core.manifest import LatentInput, Member, ModelManifest, TensorSpec, sha256_file
    from training.data import ANIME_ZIP

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16))).eval()
    folder = tmp_path_factory.mktemp("tiny_gan") / "model"
    folder.mkdir()
    graph = folder / "generator.onnx"
    torch.onnx.export(net, (torch.zeros(1, 8),), str(graph), input_names=["z"], output_names=["image"],
                      dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}}, opset_version=17, dynamo=False)
    ModelManifest(
        name="tiny_gan", kind="dcgan-anime-faces", version="1", created="2026-01-01T00:00:00+00:00",
        input=LatentInput(name="z", dim=8), output=TensorSpec(name="image", image_size=16),
        members=[Member(file=graph.name, sha256=sha256_file(graph), bytes=graph.stat().st_size, label="generator")],
        data=[{"path": str(ANIME_ZIP), "sha256": sha256_file(data_dir / ANIME_ZIP)}],
    ).save(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_stylegan(tmp_path_factory, data_dir) -> Path:
    """A random StyleGAN-shaped export: mapping z (B, 8) -> w (B, 6); synthesis ws (B, 4, 6) -> 16x16."""
    import torch
    from torch import nn

    from core.manifest import LatentInput, Member, ModelManifest, StyleGANSpec, TensorSpec, sha256_file

    torch.manual_seed(1)
    mapping = nn.Linear(8, 6).eval()
    synthesis = nn.Sequential(nn.Flatten(), nn.Linear(24, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16))).eval()
    folder = tmp_path_factory.mktemp("tiny_stylegan") / "model"
    folder.mkdir()
    members = []
    for net, example, inp, out, label in ((mapping, torch.zeros(1, 8), "z", "w", "mapping"),
                                          (synthesis, torch.zeros(1, 4, 6), "ws", "image", "synthesis")):
        graph = folder / f"{label}.onnx"
        torch.onnx.export(net, (example,), str(graph), input_names=[inp], output_names=[out],
                          dynamic_axes={inp: {0: "batch"}, out: {0: "batch"}}, opset_version=17, dynamo=False)
        members.append(Member(file=graph.name, sha256=sha256_file(graph), bytes=graph.stat().st_size, label=label))
    ModelManifest(
        name="tiny_stylegan", kind="stylegan-anime-faces", version="1", created="2026-01-01T00:00:00+00:00",
        input=LatentInput(name="z", dim=8), output=TensorSpec(name="image", image_size=16), members=members,
        stylegan=StyleGANSpec(num_ws=4, w_dim=6, z_dim=8, image_size=16, w_avg=[0.0] * 6),
    ).save(folder)
    return folder


def test_a_stylegan_export_is_sampled_through_mapping_and_synthesis(tiny_stylegan, data_dir):
    from training.evaluate import evaluate_model_folder

    def run():
        return evaluate_model_folder(tiny_stylegan, 24, data_dir=data_dir, real_limit=64, extractor=RandomConvFeatures(),
                                     kid_subsets=5, providers=["CPUExecutionProvider"])

    metrics = run()
    assert metrics["n_samples"] == 24 and "StyleGAN" in metrics["sampler"] and np.isfinite(metrics["fid_randconv"])
    assert run()["fid_randconv"] == metrics["fid_randconv"]  # seeded latents


def _db_session():
    from backend.db.session import make_engine, make_sessionmaker, upgrade_database
    from backend.settings import get_settings

    url = get_settings().database_url  # the suite's scratch database (conftest)
    upgrade_database(url)
    return make_sessionmaker(make_engine(url))


def _new_version(folder: Path, version: str) -> int:
    from backend.db import crud

    with _db_session()() as s:
        v = crud.create_model_version(s, name="tiny_gan", version=version, kind="dcgan-anime-faces", manifest={},
                                      folder=str(folder), metrics={"train_loss": 1.5})
        return v.id


def test_evaluate_cli_on_a_tiny_exported_model(tiny_gan, tmp_path, data_dir, monkeypatch, capsys):
    import backend.cli as cli
    from backend.db.models import ModelVersion
    from backend.settings import get_settings

    # The substitute extractor even when the machine running the suite has the real weights set.
    monkeypatch.setattr(cli, "get_settings", lambda: get_settings().model_copy(update={"inception_weights": None}))
    version_id = _new_version(tiny_gan, "cli")
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--model", str(tiny_gan), "--samples", "64", "--real-limit", "200", "--kid-subsets", "10",
            "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(data_dir), "--out", str(out), "--threads", "1"]
    assert cli.main(args + ["--version-id", str(version_id)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n_samples"] == 64 and metrics["n_real"] == 200 and metrics["kid_subset_size"] == 64
    assert metrics["feature_extractor"] == RANDCONV_LABEL and metrics["real_stats_cache"] == "miss"
    assert np.isfinite(metrics["fid_randconv"]) and metrics["fid_randconv"] > 0
    assert np.isfinite(metrics["kid_randconv"]) and np.isfinite(metrics["kid_randconv_std"])
    table = capsys.readouterr().out
    assert "fid_randconv" in table and "rand-conv-v1" in table
    with _db_session()() as s:
        stored = s.get(ModelVersion, version_id).metrics
    assert stored["fid_randconv"] == pytest.approx(metrics["fid_randconv"]) and stored["train_loss"] == 1.5

    # Same seed, cached real features: the same numbers.
    assert cli.main(args) == 0
    again = json.loads(out.read_text())
    assert again["real_stats_cache"] == "hit" and again["fid_randconv"] == pytest.approx(metrics["fid_randconv"], rel=1e-9)


def test_evaluate_refuses_a_tampered_model(tiny_gan, tmp_path):
    import shutil

    from core.manifest import ModelIntegrityError
    from training.evaluate import evaluate_model_folder

    copy = tmp_path / "model"
    shutil.copytree(tiny_gan, copy)
    with open(copy / "generator.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        evaluate_model_folder(copy, 16, extractor=RandomConvFeatures())


def test_worker_evaluate_job_stores_metrics_then_an_error(tiny_gan, tmp_path):
    from backend.db.models import ModelVersion
    from backend.settings import get_settings
    from backend.jobs.runner import run_evaluation_job

    settings = get_settings().model_copy(update={"inception_weights": None, "metrics_cache_dir": tmp_path / "cache",
                                                 "metrics_threads": 1, "providers": ["CPUExecutionProvider"]})
    version_id = _new_version(tiny_gan, "job")
    assert run_evaluation_job(version_id, 32, settings=settings, real_limit=64) == "succeeded"
    with _db_session()() as s:
        m = s.get(ModelVersion, version_id).metrics
    assert m["n_samples"] == 32 and np.isfinite(m["fid_randconv"]) and "evaluated_at" in m and m["train_loss"] == 1.5
    assert list(m)[:2] == ["fid_randconv", "kid_randconv"]  # first: the dashboard lists the first 18

    with _db_session()() as s:  # the folder disappears: the job reports it on the version
        s.get(ModelVersion, version_id).folder = str(tmp_path / "gone")
        s.commit()
    assert run_evaluation_job(version_id, 32, settings=settings, real_limit=64) == "failed"
    with _db_session()() as s:
        m = s.get(ModelVersion, version_id).metrics
    assert "manifest.json" in m["evaluation_error"] and "fid_randconv" not in m and m["train_loss"] == 1.5
    assert run_evaluation_job(987654, 32, settings=settings) == "missing"


# -- the API route --------------------------------------------------------------------------------

def test_evaluate_route_needs_an_admin_and_a_known_version(tmp_path):
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from backend.db import crud
    from backend.settings import Settings

    (tmp_path / "models").mkdir()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", models_dir=tmp_path / "models",
                        datasets_dir=tmp_path / "datasets", admin_username=ADMIN[0], admin_password=ADMIN[1],
                        model_poll_s=0, login_attempts_per_minute=1000)
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/v1/admin/models/1/evaluate").status_code == 401
        assert client.post("/api/v1/admin/models/1/evaluate",
                           headers={"Authorization": "Bearer 1.9999999999.deadbeef"}).status_code == 401
        token = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        r = client.post("/api/v1/admin/models/424242/evaluate", headers=auth)
        assert r.status_code == 404 and "424242" in r.json()["detail"]
        with client.app.state.Session() as s:
            v = crud.create_model_version(s, name="tiny_gan", version="api", kind="dcgan", manifest={},
                                          folder=str(tmp_path / "models"))
        assert client.post(f"/api/v1/admin/models/{v.id}/evaluate", json={"n_samples": 1}, headers=auth).status_code == 422
        r = client.post(f"/api/v1/admin/models/{v.id}/evaluate", json={"n_samples": 64}, headers=auth)
        assert r.status_code == 202, r.text
        assert r.json()["version_id"] == v.id and r.json()["n_samples"] == 64 and r.json()["task_id"]
