"""Held-out checks behind the training write-up."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper

from core.manifest import ModelManifest, sha256_file
from training.report import holdout_checks, holdout_grid


def test_checks_and_grid_on_a_tiny_model(tiny_model, data_dir, tmp_path):
    checks = holdout_checks(tiny_model, data_dir, count=40)
    assert checks["count"] == 40
    assert 0 <= checks["diversity_l1"] <= 1 and -2 <= checks["follow_score"] <= 2
    assert "between_members_l1" in checks
    grid = holdout_grid(tiny_model, data_dir, tmp_path / "g.png", count=4)
    from PIL import Image

    assert Image.open(grid).size == (4 * 96, 3 * 96)  # doodles + one row per member


def test_a_collapsed_model_scores_zero_diversity_and_no_following(tiny_model, data_dir, tmp_path):
    """A 'generator' that ignores its input: the checks must expose it."""
    folder = tmp_path / "collapsed"
    shutil.copytree(tiny_model, folder)
    const = helper.make_tensor("c", TensorProto.FLOAT, [1, 3, 32, 32], np.random.default_rng(0).uniform(-1, 1, 3 * 32 * 32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Mul", ["sketch", "zero"], ["z"]), helper.make_node("Add", ["z", "c"], ["anime"])],
        "collapsed",
        [helper.make_tensor_value_info("sketch", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("anime", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [const, helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    manifest = ModelManifest.load(folder)
    for m in manifest.graphs():
        onnx.save(model, folder / m.file)
        m.sha256 = sha256_file(folder / m.file)
        m.bytes = (folder / m.file).stat().st_size
    manifest.save(folder)
    checks = holdout_checks(folder, data_dir, count=40)
    assert checks["diversity_l1"] < 1e-6
    assert abs(checks["follow_score"]) < 1e-6
    assert json.loads(json.dumps(checks))
