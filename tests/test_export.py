"""ONNX export: parity with torch, the manifest, and refusal of tampered files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.drawing import parse_strokes
from backend.serving import ModelStore
from core import runtime
from core.runtime import Ensemble, session_providers
from core.manifest import ModelIntegrityError, ModelManifest, sha256_file
from core.preprocess import bitmap_to_input
from training.data import load_quickdraw
from training.export import load_generator


def test_onnx_matches_torch_with_a_dynamic_batch(tiny_model, data_dir):
    m = ModelManifest.load(tiny_model)
    g, config, step = load_generator(tiny_model.parent.parent / "run" / "snapshots" / "step_0000002.pt")
    assert step == 2
    sess = ort.InferenceSession(str(tiny_model / m.graphs()[1].file), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = bitmap_to_input(load_quickdraw(data_dir, "holdout")[:n], config.image_size)
        got = sess.run(None, {"sketch": x})[0]
        with torch.no_grad():
            want = g(torch.from_numpy(x)).numpy()
        assert got.shape == (n, 3, 32, 32)
        assert np.abs(got - want).max() <= 1e-4


def test_manifest_describes_the_model(tiny_model):
    m = ModelManifest.load(tiny_model)
    assert m.kind == "cyclegan-sketch2anime" and m.name == "tiny"
    assert m.input.raster_size == 28 and m.input.image_size == 32 and m.output.channels == 3
    assert [mm.source["step"] for mm in m.graphs()] == [1, 2]
    for mm in m.members:
        assert mm.sha256 == sha256_file(tiny_model / mm.file)
    for mm in m.graphs():
        assert mm.parity_max_abs_diff is not None and mm.parity_max_abs_diff <= 1e-4
    # each graph's torch weights beside it
    assert [(mm.file, mm.source["of"]) for mm in m.members if mm.label == "torch weights"] == [
        ("member_0.safetensors", "member_0.onnx"), ("member_1.safetensors", "member_1.onnx")]
    assert {d["path"] for d in m.data} == {"anime_faces_64/anime_faces_64.zip", "quickdraw_smiley_face/smiley_face_28x28.npy"}
    assert m.training["config"]["ngf"] == 8
    m.verify(tiny_model)


def test_a_tampered_file_is_refused_and_the_old_model_keeps_serving(tiny_model, tmp_path):
    store = ModelStore()
    good = store.load(tiny_model, ["CPUExecutionProvider"])
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model, bad)
    data = bytearray((bad / "member_0.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bad / "member_0.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        store.load(bad, ["CPUExecutionProvider"])
    assert store.get() is good


def test_a_missing_file_or_escaping_path_is_refused(tiny_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model, bad)
    (bad / "member_1.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        Ensemble(bad, ["CPUExecutionProvider"])
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    manifest["members"][0]["file"] = "../escape.onnx"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="leaves"):
        Ensemble(bad, ["CPUExecutionProvider"])


def test_cuda_is_asked_for_only_where_its_driver_loads(monkeypatch):
    built = ort.get_available_providers()
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(runtime, "_cuda_driver", lambda: False)
    assert session_providers(both) == session_providers(None) == ["CPUExecutionProvider"]
    assert session_providers(["NoSuchExecutionProvider"]) == ["CPUExecutionProvider"]
    monkeypatch.setattr(runtime, "_cuda_driver", lambda: True)
    monkeypatch.setattr(runtime, "_preload_cuda", lambda: None)
    assert session_providers(both) == [p for p in both if p in built]
    assert session_providers(["CPUExecutionProvider", "CUDAExecutionProvider"])[0] == "CPUExecutionProvider"


def test_ensemble_members_differ_and_use_an_available_provider(tiny_model):
    ens = Ensemble(tiny_model, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert ens.providers[0] in ("CUDAExecutionProvider", "CPUExecutionProvider")
    faces = ens.translate(parse_strokes([[[0, 50, 100], [0, 80, 0]]]), [0, 1])
    assert faces[0].shape == (32, 32, 3) and faces[0].dtype == np.uint8
    assert not np.array_equal(faces[0], faces[1])
