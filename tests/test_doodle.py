"""The drawing model on the StyleGAN prior: the prior read back into torch, the walks, the
synthetic doodles' attributes, the encoder's training (2 seeded steps, resume), its export
(torch <-> ONNX parity) and the served runtime, which must paint what training paints."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.configs.encoder import DoodleEncoderConfig
from core.manifest import ModelIntegrityError, ModelManifest
from core.progress import TrainingCancelled
from training.doodle.attributes import ATTRIBUTES, attributes_of, synthetic_pool
from training.doodles import DoodleParams, draw_doodle, edited

ROOT = Path(__file__).resolve().parents[1]
PRIOR = ROOT / "models" / "anime_faces"

TINY = dict(walk_steps=2, walk_batch=2, synthetic_count=64, steps=4, batch_size=8, sample_every=2,
            checkpoint_every=2, log_every=1, width=8, features=32, identity_components=8)


def test_the_prior_read_back_from_onnx_paints_what_onnx_runtime_paints():
    import onnxruntime as ort

    from training.prior.from_onnx import generator_from_export

    G = generator_from_export(PRIOR)
    z = np.random.RandomState(0).randn(4, G.z_dim).astype(np.float32)
    mapping = ort.InferenceSession(str(PRIOR / "mapping.onnx"), providers=["CPUExecutionProvider"])
    synthesis = ort.InferenceSession(str(PRIOR / "synthesis.onnx"), providers=["CPUExecutionProvider"])
    w = mapping.run(None, {mapping.get_inputs()[0].name: z})[0]
    ws = np.repeat(w[:, None], G.num_ws, axis=1)
    ws[0, 5:] = w[1]  # a mixed face too
    want = synthesis.run(None, {synthesis.get_inputs()[0].name: ws})[0]
    with torch.no_grad():
        got_w = G.mapping(torch.from_numpy(z)).numpy()
        got = G.synthesis(torch.from_numpy(ws), noise_mode="const").numpy()
    assert np.abs(got_w - w).max() < 1e-4
    assert np.abs(got - want).max() < 1e-4
    # the comparison can fail: one weight off is seen
    with torch.no_grad():
        G.synthesis.conv4.bias[0] += 0.5
        assert np.abs(G.synthesis(torch.from_numpy(ws), noise_mode="const").numpy() - want).max() > 1e-3


def test_the_shipped_prior_weights_are_the_exported_ones():
    """models/anime_faces/generator.safetensors (kept for fine-tuning) holds the weights its ONNX
    graphs run."""
    from safetensors.torch import load_file

    from training.prior.from_onnx import generator_from_export

    G = generator_from_export(PRIOR)
    saved = load_file(PRIOR / "generator.safetensors")
    want = G.state_dict()
    assert set(saved) == set(want)
    assert all(torch.equal(saved[k], want[k]) for k in want)


def test_a_walk_learns_to_do_its_edit():
    from training.prior.directions import WALKS, learn_walk
    from training.prior.from_onnx import generator_from_export

    G = generator_from_export(PRIOR)
    walk = WALKS["zoom_out"]
    d = learn_walk(G, walk, steps=10, batch=3, seed=0)
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        ws = G.broadcast(G.mapping(torch.randn(6, G.z_dim, generator=gen), psi=0.8))
        base = G.synthesis(ws, noise_mode="const")
        a = torch.full((6,), 0.8)
        target = walk.transform(base, a)
        moved = ws.clone()
        moved[:, list(walk.layers)] += 0.8 * d
        err_walk = (G.synthesis(moved, noise_mode="const") - target)[..., 6:-6, 6:-6].square().mean()
        err_still = (base - target)[..., 6:-6, 6:-6].square().mean()
    assert err_walk < 0.9 * err_still


def test_synthetic_doodle_attributes_are_what_was_drawn():
    rng = np.random.default_rng(0)
    p = DoodleParams(tilt=0.3, aspect=1.3, eye_kind="circle", eye_size=18.0, mouth_kind="open")
    a = dict(zip(ATTRIBUTES, attributes_of(p, draw_doodle(p, rng))))
    assert a["tilt"] == pytest.approx(0.3)
    assert a["long"] == pytest.approx(math.log(1.3))
    assert a["eye_size"] == pytest.approx(math.log(18.0 / 90.0))
    assert a["mouth_open"] == 1.0 and a["mouth_frown"] == 0.0 and a["hair"] == 0.0
    assert a["face_fraction"] == pytest.approx(1.0, abs=0.03)   # the outline is the whole drawing
    hairy = edited(p, hair=10, hair_length=40.0, tilt=0.0)
    h = dict(zip(ATTRIBUTES, attributes_of(hairy, draw_doodle(hairy, rng))))
    assert h["hair"] > 0 and h["face_fraction"] < 0.9 and h["face_y"] > 0.03   # hair on top: the face sits lower
    bitmaps, attrs = synthetic_pool(8, seed=3)
    again, attrs2 = synthetic_pool(8, seed=3)
    assert bitmaps.shape == (8, 28, 28) and np.array_equal(bitmaps, again) and np.array_equal(attrs, attrs2)


def _trainer(tmp: Path, data_dir: Path, **over):
    from training.doodle.train import DoodleEncoderTrainer

    return DoodleEncoderTrainer(DoodleEncoderConfig(**{**TINY, **over}), tmp, data_dir, models_dir=ROOT / "models")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    run = tmp_path_factory.mktemp("doodle") / "run"
    _trainer(run, data_dir).run()
    return run


def test_two_seeded_steps_train_and_repeat(tiny_run, tmp_path, data_dir):
    state = torch.load(tiny_run / "checkpoints" / "latest.pt", weights_only=True)
    c = DoodleEncoderConfig(**TINY)
    assert state["step"] == c.total_steps and state["identity"] is not None
    assert set(state["directions"]) == {"tilt", "long", "zoom_out", "big_eyes", "open_mouth"}
    again = _trainer(tmp_path / "again", data_dir)
    again.run()
    other = torch.load(tmp_path / "again" / "checkpoints" / "latest.pt", weights_only=True)
    for k, v in state["encoder"].items():
        assert torch.equal(v, other["encoder"][k]), k
    assert (tiny_run / "samples").is_dir() and any((tiny_run / "samples").iterdir())


def test_a_stopped_run_resumes_to_the_same_weights(tiny_run, tmp_path, data_dir):
    stop_at = DoodleEncoderConfig(**TINY).total_steps - 2   # inside the encoder stage

    def cancel(p):
        if p.step >= stop_at:
            raise TrainingCancelled("stop")

    first = _trainer(tmp_path / "run", data_dir)
    with pytest.raises(TrainingCancelled):
        first.run(cancel)
    resumed = _trainer(tmp_path / "run", data_dir)
    assert resumed.load_checkpoint() and resumed.step == stop_at
    resumed.run()
    want = torch.load(tiny_run / "checkpoints" / "latest.pt", weights_only=True)
    got = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    for k, v in want["encoder"].items():
        assert torch.allclose(v, got["encoder"][k], atol=1e-6), k
    assert torch.allclose(want["identity"]["projection"], got["identity"]["projection"], atol=1e-5)


@pytest.fixture(scope="module")
def tiny_export(tiny_run, tmp_path_factory, data_dir) -> Path:
    from training.doodle.export import export_encoder_run

    models = tmp_path_factory.mktemp("models")
    shutil.copytree(PRIOR, models / "anime_faces")
    shutil.copytree(ROOT / "models" / "face_check", models / "face_check")   # the guard, beside the prior
    export_encoder_run(tiny_run, models / "doodle_encoder", data_dir=data_dir, models_dir=ROOT / "models")
    return models / "doodle_encoder"


def test_export_matches_torch_and_the_runtime_paints_what_training_paints(tiny_run, tiny_export, data_dir):
    from core.doodle_model import DoodleFaceModel
    from training.data import load_quickdraw

    manifest = ModelManifest.load(tiny_export)
    assert manifest.members[0].parity_max_abs_diff < 1e-4
    model = DoodleFaceModel(tiny_export, ["CPUExecutionProvider"])
    assert model.guard is not None
    model.guard = None   # the guard may draw a face again; training paints every face once
    doodles = load_quickdraw(data_dir, "holdout")[:6]
    served = model.paint(doodles)[:, 0]
    trainer = _trainer(tiny_run, data_dir)
    trainer.load_checkpoint()
    trained = trainer.paint(doodles)
    assert served.shape == trained.shape == (6, 64, 64, 3)
    assert np.abs(served.astype(int) - trained).max() <= 2


def test_variations_keep_the_drawing_and_change_the_colours(tiny_export, data_dir):
    from core.doodle_model import DoodleFaceModel
    from training.data import load_quickdraw

    model = DoodleFaceModel(tiny_export, ["CPUExecutionProvider"])
    doodles = load_quickdraw(data_dir, "holdout")[:3]
    ws = model.styles(doodles, variations=3)
    first, last = model.spec.fine_layers
    assert np.allclose(ws[:, 0, :first], ws[:, 1, :first], atol=1e-5)   # the same structure
    assert not np.allclose(ws[:, 0, first:], ws[:, 1, first:], atol=1e-2)  # other colours
    faces = model.paint(doodles, variations=3)
    assert faces.shape == (3, 3, 64, 64, 3)
    assert np.array_equal(faces, model.paint(doodles, variations=3))       # deterministic
    assert not np.array_equal(model.paint(doodles, seed=7), model.paint(doodles, seed=8))
    assert not np.array_equal(model.paint(doodles, follow=0.0), model.paint(doodles, follow=1.0))


def test_an_encoder_made_for_another_prior_is_refused(tiny_export, tmp_path):
    from core.doodle_model import DoodleFaceModel

    models = tmp_path / "models"
    shutil.copytree(tiny_export.parent, models)
    prior_manifest = models / "anime_faces" / "manifest.json"
    prior_manifest.write_text(prior_manifest.read_text().replace('"version": "', '"version": "x', 1))
    with pytest.raises(ModelIntegrityError, match="another version"):
        DoodleFaceModel(models / "doodle_encoder", ["CPUExecutionProvider"])


#: The shipped model's face for FACE (variation 0, pixels [30:33, 30:33]), pinned again when the
#: vectorised rasterizer came (its bitmaps differ from the old one's by under 1/255 on average,
#: which moved these pixels by up to 4).
PINNED = [[[173, 156, 132], [180, 166, 144], [179, 165, 143]],
          [[176, 162, 140], [152, 137, 118], [189, 170, 147]],
          [[195, 183, 162], [148, 132, 112], [180, 165, 144]]]
FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]


def test_the_shipped_model_reads_a_drawing_and_paints_the_pinned_face():
    from core.doodle_model import DoodleFaceModel
    from core.drawing import parse_strokes

    model = DoodleFaceModel(ROOT / "models" / "doodle_encoder", ["CPUExecutionProvider"])
    drawing = parse_strokes(FACE)
    attributes, _ = model.encode(model.bitmap(drawing)[None])
    read = dict(zip(model.spec.attributes, attributes[0]))
    # a round, level face with an outline, dot eyes and a closed smile
    assert abs(read["tilt"]) < 0.15 and abs(read["long"]) < 0.15 and read["outline"] > 0.9
    assert read["eye_size"] < -2.0 and read["mouth_open"] < 0.1 and read["mouth_frown"] < 0.1
    faces = model.translate(drawing, [0, 1, 2])
    assert np.abs(faces[0][30:33, 30:33].astype(int) - np.array(PINNED)).max() <= 3
    assert all(not np.array_equal(faces[0], f) for f in faces[1:])


def test_priors_are_compared_on_held_out_faces_beside_real_ones(tmp_path, data_dir):
    from PIL import Image

    from training.prior.compare import main

    out = tmp_path / "cmp"
    assert main(["--model", f"shipped={PRIOR}", "--out", str(out), "--data-dir", str(data_dir), "--count", "60",
                 "--detect-seeds", "0"]) == 0  # the classifiers have their own test (test_metrics)
    rows = json.loads((out / "priors.json").read_text())["rows"]
    assert list(rows) == ["shipped, psi 1.0", "shipped, psi 0.7", "real anime faces (second held-out set)"]
    real = rows["real anime faces (second held-out set)"]
    assert real["fd_pixels4_ratio"] == pytest.approx(1.0) and real["diversity_ratio"] == pytest.approx(1.0)
    # random faces are further from real ones than real ones are; truncation narrows them
    assert all(rows[f"shipped, psi {p}"]["fd_randconv_ratio"] > 1.5 for p in (1.0, 0.7))
    assert rows["shipped, psi 0.7"]["diversity_ratio"] < rows["shipped, psi 1.0"]["diversity_ratio"]
    assert rows["shipped, psi 1.0"]["held_out_seen"] == "yes"  # the first prior trained on every face
    assert all(rows[f"shipped, psi {p}"]["swd_texture1_ratio"] > 1.5 for p in (1.0, 0.7))
    assert real["swd_texture1_ratio"] == pytest.approx(1.0) and real["told_apart_auc"] == "-"
    assert "| shipped, psi 0.7 |" in (out / "priors.md").read_text()
    assert Image.open(out / "priors_grid.png").size == (150 + 12 * 64, 2 * 64)
    with pytest.raises(SystemExit):
        main(["--model", "nameless", "--out", str(out), "--data-dir", str(data_dir)])


def test_the_drawing_evaluation_measures_every_row_on_the_same_held_out_doodles(tmp_path, data_dir, monkeypatch):
    """evaluate-drawing end to end on 50 held-out doodles (a briefly trained reader, quick
    classifiers): every row with every column, and the figures point the right way."""
    from PIL import Image

    import training.detectability as det
    import training.doodle.report as report

    quick = det.detectability
    monkeypatch.setattr(det, "detectability", lambda *a, **kw: quick(*a, **{**kw, "steps": 30, "batch": 32}))
    out = tmp_path / "eval"
    summary = report.evaluate_drawing_models([ROOT / "models" / "doodle_encoder"], PRIOR, data_dir, out, doodles=50,
                                             detect_seeds=1, reader_steps=300)
    rows = summary["rows"]
    model, follow1 = "doodle_encoder v1 (default)", "doodle_encoder v1 (follow 1)"
    randoms = ["random StyleGAN faces, psi 0.7", "random StyleGAN faces, psi 1.0"]
    assert list(rows) == [model, follow1, *randoms, "real anime faces (second held-out set)"]
    real = rows["real anime faces (second held-out set)"]
    assert real["told_apart_auc"] == "-"
    for name in (model, follow1, *randoms):
        r = rows[name]
        assert 0.0 <= r["told_apart_auc"] <= 1.0
        # 50 real faces are closer to the real reference than 50 generated ones, on every distance
        assert all(r[k] > real[k] for k in ("fd_pixels4_ratio", "fd_randconv_ratio", "swd_texture1_ratio")), name
    # the drawing reaches the face (tilt); random faces know nothing of the drawing
    assert rows[model]["follow_tilt"] > 0.3 and all(abs(rows[n]["follow_tilt"]) < 0.3 for n in randoms)
    edits = rows[model]["edits"]
    assert edits["tilt left -> right"]["agreement"] >= 0.9 and edits["eyes small -> big"]["agreement"] >= 0.9
    # the rows from strokes, the default row only: the crayons (a grid per crayon pair, none for
    # the control) and the hair (a grid each)
    from training.doodle.evaluate import EDITS
    from training.doodle.hair_edits import ROWS

    crayons = [k for k in edits if k.startswith("hair crayon")]
    assert len(crayons) == 3 and all(edits[k]["agreement"] >= 0.8 for k in crayons)
    assert edits["mouth crayon red (control)"]["change_ratio"] < 0.2
    assert set(ROWS) <= set(edits) and edits["a dot (control)"]["change_ratio"] < 0.3
    assert "edits" not in rows[randoms[0]]
    assert len(list((out / "edits").glob("*.png"))) == 2 * len(EDITS) + len(crayons) + len(ROWS)
    assert "| hair none -> long strokes |" in (out / "drawing_eval.md").read_text()
    md = (out / "drawing_eval.md").read_text()
    assert "told apart (AUC)" in md and "texture 1 px" in md and f"| {model} |" in md
    assert Image.open(out / "side_by_side.png").size == (12 * 64, 5 * 64)


def test_a_prior_comparison_says_which_priors_saw_the_held_out_faces(tmp_path):
    from training.prior.compare import _saw_heldout

    assert _saw_heldout(PRIOR) == "yes"  # the first prior trained on all 14,896 faces
    raw = json.loads((PRIOR / "manifest.json").read_text())
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    for start, want in ((str(PRIOR), "through its start"), (None, "no"), (str(tmp_path / "elsewhere"), "unknown")):
        raw["training"]["config"].update(anime_limit=13400, init_generator=start)
        (tuned / "manifest.json").write_text(json.dumps(raw))
        assert _saw_heldout(tuned) == want, start


def test_the_shipped_prior_has_a_discriminator_that_tells_its_faces_from_real_ones(data_dir):
    """models/anime_faces/discriminator.safetensors (trained for the shipped generator, on faces
    [0, 13400) only) loads into the discriminator of the prior's config and scores held-out real
    faces above the generator's own."""
    from safetensors.torch import load_file

    from core.configs.gans import load_gan_config
    from core.runtime import FaceModel
    from training.doodle.evaluate import heldout_faces
    from training.train_gan import build_networks

    config = load_gan_config(ModelManifest.load(PRIOR).training["config"])
    _, D = build_networks(config)
    D.load_state_dict(load_file(PRIOR / "discriminator.safetensors"))
    D.eval()
    real = heldout_faces(data_dir)[0][:64]
    model = FaceModel(PRIOR, ["CPUExecutionProvider"])
    fake = np.stack([np.asarray(im) for im in model.images(model.broadcast(model.w(list(range(64)), 1.0)))])
    to_x = lambda faces: torch.from_numpy(faces.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)  # noqa: E731
    with torch.no_grad():
        d_real, d_fake = D(to_x(real)).flatten(), D(to_x(fake)).flatten()
    assert d_real.mean() > d_fake.mean() + 0.5
    assert (d_real > d_fake.median()).float().mean() > 0.75  # most real faces score above the typical fake
