"""The drawing kinds of the shared translation framework (CycleGAN, DiscoGAN, UNIT, the paired
line-art model): for each, a 2-step seeded smoke test, resume equivalence and torch <-> ONNX
parity of its export; and the networks they are made of."""

from __future__ import annotations

import pytest
import torch

from core.kinds import get_kind
from core.manifest import ModelManifest
from training.cyclegan import MinibatchDiscrimination, PatchDiscriminator, UNetGenerator

BASE = dict(image_size=32, ngf=8, ndf=8, batch_size=2, steps=2, decay_steps=1, anime_limit=32, log_every=1,
            sample_every=2, checkpoint_every=1, snapshot_every=1, eval_count=8, seed=7)
UNPAIRED = dict(mix={"quickdraw": 0.4, "synthetic": 0.4, "edges": 0.2}, pool_size=3)
TINY = {
    "discogan": {**BASE, **UNPAIRED, "unet_depth": 3},
    "unit": {**BASE, **UNPAIRED, "n_res": 1},
    "lineart": {**BASE, "raster_size": 32, "unet_depth": 3},
    "cyclegan-salimans": {**BASE, **UNPAIRED, "n_blocks": 1, "minibatch_discrimination": True, "minibatch_kind": "salimans"},
}
LOSSES = {"discogan": {"G", "G_gan", "cycle", "D_A", "D_B"}, "unit": {"G", "G_gan", "vae", "cycle", "D_A", "D_B"},
          "lineart": {"G", "G_gan", "l1", "D"}, "cyclegan-salimans": {"G", "G_gan", "cycle", "identity", "D_A", "D_B"}}


def make(case: str, run_dir, data_dir, **changes):
    kind = get_kind(case.split("-")[0])
    config = kind.config(**{**TINY[case], **changes})
    return kind.trainer.load()(config, run_dir, data_dir, threads=1)


def params(trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n in trainer.networks for k, v in getattr(trainer, n).state_dict().items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """Each case trained for its 2 seeded steps once, with its parameters before and after and
    the progress it reported; the tests below read it."""
    runs = {}

    def get(case: str):
        if case not in runs:
            trainer = make(case, tmp_path_factory.mktemp(case) / "run", data_dir)
            before = params(trainer)
            events = []
            metrics = trainer.run(events.append)
            runs[case] = (trainer, before, events, metrics)
        return runs[case]

    return get


@pytest.mark.parametrize("case", list(TINY))
def test_two_seeded_steps_train_every_network_and_write_everything(trained, tmp_path, data_dir, case):
    trainer, before, events, metrics = trained(case)
    after = params(trainer)
    assert [e.step for e in events] == [1, 2]
    assert set(events[-1].losses) == LOSSES[case]
    assert all(torch.isfinite(torch.tensor(list(e.losses.values()))).all() for e in events)
    for net in trainer.networks:  # every network, generators and discriminators, was updated
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net + ".")
                   and before[k].is_floating_point()), net
    assert events[-1].sample_path.is_file() and events[-1].checkpoint_path.is_file()
    assert len(list((trainer.run_dir / "snapshots").iterdir())) == 2
    assert "output_diversity" in metrics and all(v == v for v in metrics.values())
    # The same seed gives the same run; another seed another one (so the comparison can fail).
    again = make(case, tmp_path / "again", data_dir)
    again.run()
    for k, v in params(again).items():
        torch.testing.assert_close(v, after[k], rtol=0, atol=1e-6, msg=k)
    other = make(case, tmp_path / "other", data_dir, seed=8)
    other.run()
    assert any(not torch.allclose(after[k], v, atol=1e-6) for k, v in params(other).items() if v.is_floating_point())


@pytest.mark.parametrize("case", ["discogan", "unit", "lineart"])
def test_a_resumed_run_takes_the_steps_an_uninterrupted_one_takes(tmp_path, data_dir, case):
    straight = make(case, tmp_path / "a", data_dir, steps=3, decay_steps=2)
    straight.run()
    make(case, tmp_path / "b", data_dir, steps=3, decay_steps=2).run(stop_at=2)
    resumed = make(case, tmp_path / "b", data_dir, steps=3, decay_steps=2)
    assert resumed.load_checkpoint() and resumed.step == 2
    resumed.run()
    a, b = params(straight), params(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    with pytest.raises(ValueError, match="different config"):
        make(case, tmp_path / "b", data_dir, ngf=16).load_checkpoint()


@pytest.mark.parametrize("case", ["discogan", "unit", "lineart"])
def test_the_export_runs_in_onnx_runtime_as_in_torch(trained, tmp_path, case):
    import numpy as np

    from core.drawing import parse_strokes
    from core.preprocess import bitmap_to_input, output_to_images
    from core.runtime import Ensemble, open_drawing_model
    from training.export import PARITY_TOLERANCE, export_run, load_generator

    trainer = trained(case)[0]
    manifest = export_run(trainer.run_dir, tmp_path / "model", snapshots=[1, 2], data_dir=trainer.data_dir)
    kind = get_kind(case)
    assert manifest.kind == kind.manifest_kind and manifest.name == kind.model_name
    assert ModelManifest.load(tmp_path / "model") == manifest
    assert all(m.parity_max_abs_diff <= PARITY_TOLERANCE for m in manifest.graphs())
    weights = [m for m in manifest.members if m.label == "torch weights"]
    assert [m.file for m in weights] == ["member_0.safetensors", "member_1.safetensors"]
    # The served runtime paints what the trained network paints for a drawing.
    model = open_drawing_model(tmp_path / "model", ["CPUExecutionProvider"])
    assert isinstance(model, Ensemble) and len(model.members) == 2
    drawing = parse_strokes([[[10, 60, 120, 60], [20, 90, 20, 60]], [[40, 80], [50, 52]]])
    bitmap = model.bitmap(drawing)
    assert bitmap.shape == (manifest.input.raster_size,) * 2 and bitmap.max() > 0
    g, config, step = load_generator(trainer.run_dir / "snapshots" / "step_0000002.pt")
    with torch.no_grad():
        want = output_to_images(g(torch.from_numpy(bitmap_to_input(bitmap, config.image_size))).numpy())[0]
    got = model.translate(drawing, [1])[0]
    assert np.abs(got.astype(int) - want).max() <= 1
    # The torch weights kept beside the graph load back into the network and paint the same.
    from safetensors.torch import load_file

    cls = kind.trainer.load()
    again = cls.exported_network(config, cls.build_networks(config))
    again.load_state_dict(load_file(tmp_path / "model" / "member_1.safetensors"))
    with torch.no_grad():
        same = output_to_images(again.eval()(torch.from_numpy(bitmap_to_input(bitmap, config.image_size))).numpy())[0]
    assert np.array_equal(same, want)
    if case == "lineart":  # the thin pen: lines a pixel or two wide at full size, not 28 px doodles
        assert manifest.input.raster_size == 32 and manifest.input.line_diameter < 16


def test_line_art_pairs_are_framed_as_the_rasterizer_frames_a_drawing(data_dir):
    import numpy as np

    from core.configs.translation import LineArtConfig
    from core.drawing import rasterize
    from training.data import load_anime_faces
    from training.train_lineart import framed_pairs

    config = LineArtConfig()
    sketches, faces = framed_pairs(load_anime_faces(data_dir, 64, limit=8), config)
    assert sketches.shape == (8, 64, 64) and faces.shape == (8, 64, 64, 3)
    # A square of thin strokes, rasterized, spans the frame as the sketches' ink does.
    square = rasterize([[[0, 100, 100, 0, 0], [0, 0, 100, 100, 0]]], 64, line_diameter=config.line_diameter,
                       padding=config.padding)

    def span(img):
        ys, xs = np.nonzero(img > 127)
        return max(xs.max() - xs.min(), ys.max() - ys.min()), ((xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2)

    want, centre = span(square)
    for sk in sketches:
        got, c = span(sk)
        assert abs(got - want) <= 2 and abs(c[0] - centre[0]) <= 1.5 and abs(c[1] - centre[1]) <= 1.5


def test_salimans_minibatch_features_see_a_collapsed_batch():
    torch.manual_seed(0)
    md = MinibatchDiscrimination(16, kernels=4, kernel_dim=3)
    diverse = torch.randn(4, 16, 2, 2) * 3
    collapsed = diverse[:1].repeat(4, 1, 1, 1)
    near = md(collapsed)[:, :, 0, 0]
    far = md(diverse)[:, :, 0, 0]
    # Each image's closeness to the 3 others: exp(0) = 1 each when all are the same.
    torch.testing.assert_close(near, torch.full_like(near, 3.0))
    assert (far < near).all()
    assert md(diverse[:1]).abs().sum() == 0  # no other images: nothing to compare
    d = PatchDiscriminator(3, 8, minibatch_std=True, minibatch_kind="salimans")
    assert d(torch.randn(3, 3, 32, 32)).shape[1] == 1 and d.batch_features is not None
    d(torch.randn(3, 3, 32, 32)).sum().backward()
    assert d.batch_features.T.grad is not None and d.batch_features.T.grad.abs().sum() > 0


def test_the_unet_reads_its_skip_connections():
    g = UNetGenerator(3, 3, ngf=8, depth=4).eval()
    x = torch.randn(1, 3, 32, 32)
    assert g(x).shape == (1, 3, 32, 32)
    # A change in one corner moves the output near that corner more than far from it: the skips
    # carry the layout through (a plain bottleneck would spread it everywhere).
    y = x.clone()
    y[..., :4, :4] += 2.0
    diff = (g(y) - g(x)).abs().mean(dim=1)[0]
    assert diff[:8, :8].mean() > 5 * diff[24:, 24:].mean()


def test_unit_encoders_and_generators_share_their_layers():
    from core.configs.translation import UNITConfig
    from training.train_unit import UNITTrainer

    nets = UNITTrainer.build_networks(UNITConfig(ngf=8, n_res=1, n_shared=1))
    assert nets["E_A"].shared is nets["E_B"].shared and nets["G_A"].shared is nets["G_B"].shared
    assert nets["E_A"].own is not nets["E_B"].own
