"""Unconditional generators (DCGAN, LSGAN, WGAN-div, StyleGAN): 2-step CPU smoke tests, the
StyleGAN mechanics (style mixing, truncation, EMA, num_ws), resume equivalence, the losses by
hand, and torch<->ONNX parity of the exports."""

from __future__ import annotations

import json
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from core.manifest import LatentInput, ModelManifest, SketchInput
from conftest import ROOT
from training.export_gan import export_gan_run
from core.configs.gans import GAN_CONFIGS, load_gan_config
from training.gans.losses import CrossEntropyLoss, LeastSquaresLoss, WassersteinDivLoss, wgan_div_penalty
from training.gans.stylegan import ModulatedConv2d, StyleGenerator, style_mix
from training.runinfo import read_sessions
from training.train_gan import GANTrainer, build_networks

TINY = dict(image_size=16, z_dim=8, ngf=4, ndf=4, batch_size=4, steps=2, anime_limit=32, log_every=1,
            sample_every=2, checkpoint_every=1, sample_count=4, eval_count=8, seed=3)
TINY_STYLE = dict(w_dim=8, mapping_layers=2, max_channels=8, ema_rampup=None, r1_every=2)
KINDS = ["dcgan", "lsgan", "wgan_div", "stylegan"]


def tiny(kind: str, **overrides):
    extra = TINY_STYLE if kind == "stylegan" else {"n_critic": 2} if kind == "wgan_div" else {}
    return load_gan_config({**TINY, **extra, **overrides, "kind": kind})


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a small shared machine more threads only spin against each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """kind -> (trainer after 2 steps, progress events, G/D/G_ema parameters before training)."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            torch.set_num_threads(1)
            trainer = GANTrainer(tiny(kind), tmp_path_factory.mktemp(kind) / "run", data_dir)
            before = {"G": _params(trainer.G), "D": _params(trainer.D)}
            events = []
            trainer.run(events.append)
            cache[kind] = (trainer, events, before)
        return cache[kind]

    return get


# -- every kind: two steps ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_two_steps_train_and_write_everything(kind, runs):
    trainer, events, before = runs(kind)
    assert trainer.step == 2 and [e.step for e in events] == [1, 2]
    losses = events[-1].losses
    assert {"G", "D"} <= set(losses)
    logged = set().union(*(e.losses for e in events))
    assert {"wgan_div": "div", "stylegan": "r1"}.get(kind, "D_real") in logged  # R1 is lazy: step 0 only
    assert all(math.isfinite(v) for e in events for v in e.losses.values())
    for name in ("G", "D"):
        after = _params(getattr(trainer, name))
        moved = [k for k in after if not torch.equal(after[k], before[name][k])]
        assert len(moved) >= len(after) // 2, f"{name}: only {moved} moved"
    faces = trainer.generate(torch.randn(3, trainer.config.z_dim))
    assert faces.shape == (3, 3, 16, 16) and np.isfinite(faces).all()
    run = trainer.run_dir
    assert events[-1].sample_path.is_file() and events[-1].checkpoint_path.is_file()
    assert len((run / "loss_log.jsonl").read_text().splitlines()) == 2
    assert json.loads((run / "config.json").read_text())["kind"] == kind
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 2 and metrics["fd_pixels8"] > 0 and metrics["sample_diversity"] > 0
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["format_version"] == 1 and ckpt["kind"] == kind and ckpt["step"] == 2
    assert {"G", "D", "opt_G", "opt_D"} <= set(ckpt) and ("G_ema" in ckpt) == (kind == "stylegan")


def test_the_ema_generator_trails_the_generator(runs):
    trainer, _, before = runs("stylegan")
    g, ema, init = _params(trainer.G), _params(trainer.G_ema), before["G"]
    weights = [k for k in g if "noise_const" not in k and k != "mapping.w_avg"]
    assert all(not torch.equal(ema[k], g[k]) for k in weights if not torch.equal(g[k], init[k]))
    # half-life 10k images, 8 seen: the EMA has barely left the initial weights, G has
    dist = lambda a, b: sum((a[k] - b[k]).abs().sum().item() for k in weights)  # noqa: E731
    assert 0 < dist(ema, init) < 0.01 * dist(g, init)
    assert torch.equal(ema["mapping.w_avg"], g["mapping.w_avg"]) and g["mapping.w_avg"].abs().sum() > 0


def test_ema_beta_follows_the_half_life_and_ramp_up(tmp_path, data_dir):
    t = GANTrainer(tiny("stylegan", batch_size=10, ema_half_life_images=1000, ema_rampup=0.5), tmp_path, data_dir)
    assert t.update_ema(images_seen=1_000_000) == pytest.approx(0.5 ** (10 / 1000))
    assert t.update_ema(images_seen=40) == pytest.approx(0.5 ** (10 / 20))  # ramp-up: half-life 0.5 * 40


# -- StyleGAN mechanics ------------------------------------------------------------------------

def _tiny_G(image_size: int = 16) -> StyleGenerator:
    torch.manual_seed(0)
    G = StyleGenerator(z_dim=8, w_dim=8, image_size=image_size, width=2, max_channels=4, mapping_layers=2)
    with torch.no_grad():  # noise and biases start at 0; give them a value so every path counts
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.normal_(0, 0.5)
    return G.eval()


@pytest.mark.parametrize("image_size, num_ws", [(16, 6), (32, 8), (64, 10)])
def test_num_ws_is_the_number_of_style_inputs_read(image_size, num_ws):
    G = _tiny_G(image_size)
    assert G.num_ws == num_ws
    ws = torch.randn(1, num_ws, 8)
    with torch.no_grad():
        base = G.synthesis(ws, "const")
        assert base.shape == (1, 3, image_size, image_size)
        for i in range(num_ws):  # every style input changes the image
            nudged = ws.clone()
            nudged[:, i] += 1.0
            assert not torch.allclose(G.synthesis(nudged, "const"), base), f"ws[:, {i}] is not read"


@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_equals_per_sample_modulated_and_demodulated_weights(up):
    """The layer scales activations; StyleGAN2 writes it as a per-sample weight
    W'_b = s_b * W, W''_b = W'_b / |W'_b[out]|. Both must give the same output."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(3, 5, 3, w_dim=4, up=up)
    x, w = torch.randn(2, 3, 6, 6), torch.randn(2, 4)
    with torch.no_grad():
        got = conv(x, w)
        styles = conv.affine(w)
        want = []
        for b in range(2):
            weight = conv.weight * conv.weight_gain * styles[b][None, :, None, None]
            weight = weight / weight.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
            xb = F.interpolate(x[b : b + 1], scale_factor=2, mode="bilinear", align_corners=False) if up else x[b : b + 1]
            want.append(F.conv2d(xb, weight, padding=1))
    torch.testing.assert_close(got, torch.cat(want), rtol=0, atol=1e-5)
    assert got.shape == (2, 5, 12 if up else 6, 12 if up else 6)


def test_style_mixing_changes_the_output():
    G = _tiny_G()
    za, zb = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        wa, wb = G.broadcast(G.mapping(za)), G.broadcast(G.mapping(zb))
        mixed = style_mix(wa, wb, cutoff=3)
        assert torch.equal(mixed[:, :3], wa[:, :3]) and torch.equal(mixed[:, 3:], wb[:, 3:])
        img_a, img_b, img_mix = (G.synthesis(w, "const") for w in (wa, wb, mixed))
        assert (img_mix - img_a).abs().mean() > 1e-3 and (img_mix - img_b).abs().mean() > 1e-3
        # the training path: mixing with probability 1 versus never, same random draws
        torch.manual_seed(5)
        never = G.training_ws(za, zb, mixing_prob=0.0)
        torch.manual_seed(5)
        always = G.training_ws(za, zb, mixing_prob=1.0)
    assert torch.equal(never, wa)
    cut = int((always != wa).any(dim=(0, 2)).nonzero()[0])
    assert 1 <= cut < G.num_ws and torch.equal(always[:, cut:], wb[:, cut:])


def test_truncation_psi_zero_gives_the_average_face_for_any_z():
    G = _tiny_G()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(8))
        a = G(torch.randn(3, 8), psi=0.0, noise_mode="const")
        b = G(torch.randn(3, 8) * 3, psi=0.0, noise_mode="const")
        avg = G.synthesis(G.broadcast(G.mapping.w_avg[None]), "const")
        free = G(torch.randn(3, 8), psi=1.0, noise_mode="const")
    torch.testing.assert_close(a, avg.expand_as(a), rtol=0, atol=1e-5)  # batch 3 vs 1: float rounding only
    torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert (free - a).abs().max() > 1e-2


# -- resume ------------------------------------------------------------------------------------

def test_resume_takes_the_same_steps(tmp_path, data_dir):
    config = tiny("stylegan", steps=3)  # R1 on steps 0 and 2, mixing, noise, EMA, w_avg: all must resume
    straight = GANTrainer(config, tmp_path / "a", data_dir)
    straight.run()
    GANTrainer(config, tmp_path / "b", data_dir).run(stop_at=2)
    resumed = GANTrainer(config, tmp_path / "b", data_dir)
    assert resumed.load_checkpoint() and resumed.step == 2
    resumed.run()
    for name in ("G", "D", "G_ema"):
        a, b = _params(getattr(straight, name)), _params(getattr(resumed, name))
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=f"{name}.{k}")
    assert [json.loads(line)["step"] for line in (tmp_path / "b" / "loss_log.jsonl").read_text().splitlines()] == [1, 2, 3]
    # each start is recorded with what it ran on, so an export can say where the model was trained
    sessions = read_sessions(tmp_path / "b")
    assert [s["start_step"] for s in sessions] == [0, 2] and {s["device"] for s in sessions} == {"cpu"}
    assert all(s["cpu"] and s["torch_threads"] >= 1 and "gpu" not in s for s in sessions)
    # a different seed goes elsewhere: the comparison above can fail
    other = GANTrainer(tiny("stylegan", steps=3, seed=4), tmp_path / "c", data_dir)
    other.run()
    assert not torch.equal(_params(other.G)["synthesis.const"], _params(straight.G)["synthesis.const"])
    with pytest.raises(ValueError, match="ngf"):
        GANTrainer(tiny("stylegan", steps=3, ngf=8), tmp_path / "b", data_dir).load_checkpoint()
    with pytest.raises(ValueError, match="stylegan"):
        GANTrainer(tiny("dcgan"), tmp_path / "b", data_dir).load_checkpoint()


# -- losses by hand ----------------------------------------------------------------------------

def test_wgan_div_penalty_matches_a_hand_computation():
    """Critic D(x) = sum(a x^2 + b x): grad D(x) = 2 a x + b, so the penalty has a closed form."""
    gen = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.rand(1, 2, 3, generator=gen, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(1, 2, 3, generator=gen, dtype=torch.float64))
    critic = lambda x: (a * x**2 + b * x).flatten(1).sum(1)  # noqa: E731
    real = torch.randn(3, 1, 2, 3, generator=gen, dtype=torch.float64)
    fake = torch.randn(3, 1, 2, 3, generator=gen, dtype=torch.float64)
    eps = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    k, p = 2.0, 6.0

    A, B, R, Fk, E = (t.detach().numpy() for t in (a, b, real, fake, eps))
    x_hat = E[:, None, None, None] * R + (1 - E[:, None, None, None]) * Fk
    norms = np.sqrt(((2 * A * x_hat + B) ** 2).reshape(3, -1).sum(1))
    want = k * np.mean(norms**p)

    got = wgan_div_penalty(critic, real, fake, k, p, eps=eps)
    assert got.item() == pytest.approx(want, rel=1e-12)
    got.backward()  # the penalty trains the critic
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0

    # the whole critic loss: D(fake) - D(real) + penalty, with eps drawn from torch's generator
    torch.manual_seed(11)
    loss, parts = WassersteinDivLoss(k, p).discriminator(critic, real, fake)
    torch.manual_seed(11)
    eps2 = torch.rand(3, dtype=torch.float64)
    x_hat2 = eps2.numpy()[:, None, None, None] * R + (1 - eps2.numpy()[:, None, None, None]) * Fk
    div = k * np.mean(np.sqrt(((2 * A * x_hat2 + B) ** 2).reshape(3, -1).sum(1)) ** p)
    d = lambda x: (A * x**2 + B * x).reshape(3, -1).sum(1)  # noqa: E731
    assert loss.item() == pytest.approx(d(Fk).mean() - d(R).mean() + div, rel=1e-12)
    assert parts["div"] == pytest.approx(div, rel=1e-12)


@pytest.mark.parametrize("fuzzy", [False, True])
def test_cross_entropy_and_least_squares_losses_by_hand(fuzzy):
    critic = lambda x: x.flatten(1).mean(1)  # noqa: E731
    real, fake = torch.full((2, 3, 4, 4), 2.0), torch.full((2, 3, 4, 4), -1.0)
    tr, tf = (0.9, 0.1) if fuzzy else (1.0, 0.0)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731 - softplus: BCE(logit l, target t) = sp(l) - t l
    ce = CrossEntropyLoss(fuzzy)
    assert ce.discriminator(critic, real, fake)[0].item() == pytest.approx(sp(2) - 2 * tr + sp(-1) + tf, rel=1e-6)
    assert ce.generator(critic, fake).item() == pytest.approx(sp(-1) + 1, rel=1e-6)  # non-saturating
    ls = LeastSquaresLoss(fuzzy)
    assert ls.discriminator(critic, real, fake)[0].item() == pytest.approx(0.5 * (2 - tr) ** 2 + 0.5 * (-1 - tf) ** 2)
    assert ls.generator(critic, fake).item() == pytest.approx(0.5 * 4)


# -- networks and configs ----------------------------------------------------------------------

def test_dcgan_init_switch_and_a_critic_without_batch_norm():
    torch.manual_seed(0)
    G, D = build_networks(tiny("dcgan", ngf=16, ndf=16))
    assert 0.017 < G.net[0].weight.std().item() < 0.023
    torch.manual_seed(0)
    G2, _ = build_networks(tiny("dcgan", ngf=16, ndf=16, init="default"))
    assert not 0.017 < G2.net[0].weight.std().item() < 0.023
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    _, critic = build_networks(tiny("wgan_div"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in critic.modules())
    # Bias-free conv, LeakyReLU, bias-free conv, then a per-sample layer norm: D(2x) = D(x), the
    # critic cannot see how strong an image is. The first conv's bias is what breaks that.
    x = 10 * torch.randn(4, 3, 16, 16)  # strong enough for the norm's epsilon not to matter
    with torch.no_grad():
        critic.net[0].bias.zero_()
        assert torch.allclose(critic(x), critic(2 * x), atol=1e-4)
        critic.net[0].bias.fill_(0.5)
        assert (critic(x) - critic(2 * x)).abs().max().item() > 1e-3
        _, plain = build_networks(tiny("wgan_div", critic_norm="none"))
        assert not any(isinstance(m, torch.nn.GroupNorm) for m in plain.modules())
        assert (plain(x) - plain(2 * x)).abs().max().item() > 1e-3
    assert critic(torch.randn(5, 3, 16, 16)).shape == (5,)


def test_configs_registries_and_job_kinds():
    for kind, cls in GAN_CONFIGS.items():
        for target in ("cpu", "gpu"):
            raw = json.loads((ROOT / "training" / "configs" / f"gan_{kind}_{target}.json").read_text())
            config = load_gan_config(raw)
            assert type(config) is cls and config.kind == kind and config.image_size == 64
    with pytest.raises(ValueError, match="dcgan, lsgan, wgan_div, stylegan"):
        load_gan_config({"kind": "biggan"})
    with pytest.raises(ValueError, match="n_critic"):
        load_gan_config({"kind": "dcgan", "n_critic": 5})  # a field of another kind is refused
    from fastapi import HTTPException

    from backend.routes.admin.jobs import JobIn, validate_job_config
    from core.kinds import KINDS

    assert set(KINDS) == {"cyclegan", "discogan", "unit", "lineart", "selfie2anime", "doodle_encoder", "upscaler", *GAN_CONFIGS}
    assert all(KINDS[k].config is GAN_CONFIGS[k] and KINDS[k].trainer.load() is GANTrainer
               and KINDS[k].exporter.load() is export_gan_run for k in GAN_CONFIGS)
    assert JobIn(kind="stylegan").kind == "stylegan"
    assert validate_job_config("stylegan", {"steps": 10}).z_dim == 256
    with pytest.raises(HTTPException) as err:
        validate_job_config("stylegan", {"kind": "dcgan"})
    assert err.value.status_code == 422 and err.value.detail[0]["field"] == "kind"


# -- export ------------------------------------------------------------------------------------

def test_stylegan_export_is_two_graphs_that_match_torch(runs, tmp_path):
    trainer, _, _ = runs("stylegan")
    out = tmp_path / "faces"
    manifest = ModelManifest.model_validate(export_gan_run(trainer.run_dir, out, name="anime_faces", version="t"))
    manifest.verify(out)
    assert ModelManifest.load(out) == manifest
    training = manifest.training
    assert training["step"] == trainer.step == 2 and training["wall_time_s"] > 0
    assert training["sessions"] == read_sessions(trainer.run_dir) and training["sessions"][0]["start_step"] == 0
    G = trainer.G_ema
    spec = manifest.stylegan
    assert [m.label for m in manifest.graphs()] == ["mapping", "synthesis"]
    # the torch weights kept beside the graphs: the EMA generator's and the discriminator's
    from safetensors.torch import load_file

    weights = [m for m in manifest.members if m.label == "torch weights"]
    assert [m.file for m in weights] == ["generator.safetensors", "discriminator.safetensors"]
    for file, net in (("generator.safetensors", trainer.G_ema), ("discriminator.safetensors", trainer.D)):
        saved, want = load_file(out / file), net.state_dict()
        assert set(saved) == set(want) and all(torch.equal(saved[k], want[k]) for k in want), file
    assert (spec.num_ws, spec.w_dim, spec.z_dim, spec.image_size) == (G.num_ws, 8, 8, 16) == (6, 8, 8, 16)
    assert isinstance(manifest.input, LatentInput) and manifest.input.dim == 8
    np.testing.assert_allclose(spec.w_avg, G.mapping.w_avg.numpy(), rtol=0, atol=1e-7)
    mapping = ort.InferenceSession(str(out / "mapping.onnx"), providers=["CPUExecutionProvider"])
    synthesis = ort.InferenceSession(str(out / "synthesis.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for n in (1, 5):  # a dynamic batch axis on both graphs
        z = rng.standard_normal((n, 8)).astype(np.float32)
        w = mapping.run(None, {"z": z})[0]
        with torch.no_grad():
            want_w = G.mapping(torch.from_numpy(z)).numpy()
        assert w.shape == (n, 8) and np.abs(w - want_w).max() <= 1e-4
        w_avg = np.asarray(spec.w_avg, np.float32)
        ws = np.repeat((w_avg + 0.7 * (w - w_avg))[:, None], spec.num_ws, axis=1)  # truncated, as a client does
        ws[:, 4:] = w[::-1][:, None]                                                 # and mixed
        img = synthesis.run(None, {"ws": ws})[0]
        with torch.no_grad():
            want = G.synthesis(torch.from_numpy(ws), noise_mode="const").numpy()
        assert img.shape == (n, 3, 16, 16) and np.abs(img - want).max() <= 1e-4
    from core.runtime import FaceModel  # the random-faces sampler reads this export

    face_model = FaceModel(out, ["CPUExecutionProvider"])
    faces = face_model.images(face_model.broadcast(face_model.w([0, 1], 0.7)))
    assert face_model.spec.num_ws == 6 and len(faces) == 2 and faces[0].size == (16, 16)


def test_dcgan_export_is_one_graph_that_matches_torch(runs, tmp_path):
    trainer, _, _ = runs("dcgan")
    out = tmp_path / "dcgan"
    manifest = ModelManifest.model_validate(export_gan_run(trainer.run_dir, out, name="dcgan", version="t"))
    manifest.verify(out)
    assert manifest.kind == "dcgan-anime-faces" and manifest.stylegan is None
    assert [m.file for m in manifest.members] == ["generator.onnx", "generator.safetensors", "discriminator.safetensors"]
    assert [m.file for m in manifest.graphs()] == ["generator.onnx"] and manifest.members[0].parity_max_abs_diff <= 1e-4
    sess = ort.InferenceSession(str(out / "generator.onnx"), providers=["CPUExecutionProvider"])
    G = trainer.G.eval()
    for n in (1, 6):
        z = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
        got = sess.run(None, {"z": z})[0]
        with torch.no_grad():
            want = G(torch.from_numpy(z)).numpy()
        assert got.shape == (n, 3, 16, 16) and np.abs(got - want).max() <= 1e-4
    G.train()


def test_sketch_manifests_still_read_as_before():
    raw = {"name": "s", "kind": "cyclegan-sketch2anime", "version": "1", "created": "2026-01-01T00:00:00+00:00",
           "input": {"name": "sketch", "image_size": 64, "raster_size": 28},
           "output": {"name": "anime", "image_size": 64},
           "members": [{"file": "member_0.onnx", "sha256": "0" * 64, "bytes": 1}]}
    m = ModelManifest.model_validate(raw)
    assert isinstance(m.input, SketchInput) and m.input.raster_size == 28 and m.stylegan is None


def test_cli_trains_and_exports_a_gan_by_kind(tmp_path, data_dir, capsys):
    from backend.cli import main

    run = tmp_path / "run"
    sets = [a for k, v in {**TINY, "steps": 1}.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main(["train", "--kind", "lsgan", "--run-dir", str(run), "--data-dir", str(data_dir), *sets, "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 1
    assert main(["export", "--run-dir", str(run), "--out", str(tmp_path / "m"), "--data-dir", str(data_dir)]) == 0
    m = ModelManifest.load(tmp_path / "m")
    assert m.name == "lsgan" and m.kind == "lsgan-anime-faces" and m.data  # the anime zip's hash
    with pytest.raises(SystemExit, match="snapshots"):
        main(["export", "--run-dir", str(run), "--out", str(tmp_path / "m2"), "--snapshots", "1"])
    with pytest.raises(SystemExit, match="config says kind"):
        main(["train", "--kind", "dcgan", "--run-dir", str(run), "--set", "kind=\"lsgan\"", "--quiet"])


@pytest.mark.parametrize("kind", ["dcgan", "stylegan"])
def test_report_draws_a_gan_run_from_its_export(kind, runs, tmp_path, capsys):
    from PIL import Image

    from backend.cli import main

    trainer, _, _ = runs(kind)
    model = tmp_path / "model"
    export_gan_run(trainer.run_dir, model, name=kind, version="t")
    out = tmp_path / "figs"
    assert main(["report", "--run-dir", str(trainer.run_dir), "--model", str(model), "--out", str(out)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert Image.open(out / "loss_curves.png").size[0] >= 1000  # two or three panels side by side
    samples = np.asarray(Image.open(out / "samples.png"))
    assert samples.shape == (8 * 16, 8 * 16, 3)  # 64 seeds, 8 per row, 16 px faces
    tiles = samples.reshape(8, 16, 8, 16, 3).transpose(0, 2, 1, 3, 4).reshape(64, -1).astype(int)
    assert np.abs(tiles[0] - tiles[1:]).max() > 0  # different seeds, different faces
    if kind == "dcgan":
        assert set(made) == {"loss_curves", "samples"}
        return
    assert set(made) == {"loss_curves", "samples", "random_psi0.7", "truncation", "mix_coarse", "mix_middle",
                         "mix_fine", "interpolate"}
    trunc = np.asarray(Image.open(out / "truncation.png")).astype(int)
    assert trunc.shape == (6 * 16, 6 * 16, 3)
    psi0 = trunc[:, 5 * 16 :].reshape(6, 16, 16, 3)  # the psi = 0 column: the average face in every row
    psi1 = trunc[:, :16].reshape(6, 16, 16, 3)
    assert np.abs(psi0 - psi0[0]).max() <= 1 and np.abs(psi1 - psi1[0]).max() > 0
    assert Image.open(out / "mix_coarse.png").size == (6 * 16, 5 * 16)  # 5 column faces + 1, 4 row faces + 1
    assert Image.open(out / "interpolate.png").size == (10 * 16, 16)


# -- DiffAugment and fine-tuning -----------------------------------------------------------------

def test_diffaugment_policies_transform_differentiably():
    from training.gans.augment import cutout, diff_augment, parse_policy, translation

    assert parse_policy("none") == () and parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="valid: color, translation, cutout"):
        parse_policy("color,rotate")
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    assert torch.equal(diff_augment(x, "none"), x)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        src = x.clone().requires_grad_(True)
        torch.manual_seed(0)
        out = diff_augment(src, policy)
        torch.manual_seed(0)
        assert torch.equal(diff_augment(src, policy), out), policy  # seeded: a resumed run augments alike
        assert out.shape == x.shape and not torch.equal(out, x), policy
        (grad,) = torch.autograd.grad(out.square().sum(), src)
        assert grad.abs().sum() > 0, policy  # the generator's gradient passes through
    # translation moves a dot by at most 1/8 of the side (2 px) or shifts it out; every image its own shift
    dot = torch.zeros(64, 1, 16, 16)
    dot[:, :, 8, 8] = 1
    torch.manual_seed(1)
    moved = translation(dot)
    where = [tuple(torch.nonzero(m[0]).flatten().tolist()) for m in moved]
    assert all(abs(y - 8) <= 2 and abs(x_ - 8) <= 2 for y, x_ in where) and len(set(where)) > 10
    assert moved.sum() == 64  # whole pixels: nothing blurred
    # cutout zeroes one square of half the side (clipped at the edges), a different place per image
    torch.manual_seed(2)
    holes = cutout(torch.ones(64, 3, 16, 16)) == 0
    assert torch.equal(holes[:, 0], holes[:, 2])
    for hole in holes[:, 0]:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8 and hole.sum() == len(rows) * len(cols)
    assert len({tuple(h.flatten().tolist()) for h in holes[:, 0]}) > 10


def test_a_diffaugment_fine_tune_starts_from_exported_weights(runs, tmp_path, data_dir):
    """init_generator starts G and its EMA from an export's generator.safetensors, the
    discriminator new; DiffAugment puts every image D sees through the augmentation."""
    trainer, _, _ = runs("stylegan")
    model = tmp_path / "model"
    export_gan_run(trainer.run_dir, model, name="anime_faces", version="t")
    config = tiny("stylegan", diffaugment="color,translation,cutout", init_generator=str(model), seed=5)
    tuned = GANTrainer(config, tmp_path / "tune", data_dir)
    start = _params(trainer.G_ema)
    for net in (tuned.G, tuned.G_ema):
        got = _params(net)
        assert all(torch.equal(got[k], start[k]) for k in start)
    new_D, trained_D = _params(tuned.D), _params(trainer.D)
    assert not any(torch.equal(new_D[k], trained_D[k]) for k in new_D if trained_D[k].numel() > 1)
    seen = []
    tuned.D.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    tuned.run()
    assert tuned.step == 2 and all(math.isfinite(v) for v in json.loads((tuned.run_dir / "metrics.json").read_text()).values())
    assert not all(torch.equal(_params(tuned.G)[k], start[k]) for k in start)  # it trained
    # D saw augmented images: cut-out squares of exact zeros in every batch (real and generated)
    assert all(((b == 0).all(1).flatten(1).sum(1) >= 4).all() for b in seen)
    plain = GANTrainer(tiny("stylegan", seed=5), tmp_path / "plain", data_dir)
    plain.D.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    seen.clear()
    plain.run(stop_at=1)
    assert not any(((b == 0).all(1).flatten(1).sum(1) >= 4).any() for b in seen)
    # a discriminator warm-up: the generator and its EMA wait while D trains
    warm = GANTrainer(tiny("stylegan", init_generator=str(model), d_warmup_steps=2), tmp_path / "warm", data_dir)
    d_before = _params(warm.D)
    warm.run()
    for net in (warm.G, warm.G_ema):
        got = _params(net)  # (w_avg keeps tracking the mean w of the unchanged mapping)
        assert [k for k in start if not torch.equal(got[k], start[k])] in ([], ["mapping.w_avg"])
    assert not all(torch.equal(_params(warm.D)[k], d_before[k]) for k in d_before)
    assert [set(json.loads(line)) >= {"G"} for line in (tmp_path / "warm" / "loss_log.jsonl").read_text().splitlines()] \
        == [False, False]
    with pytest.raises(ValueError, match="does not fit a generator of this config"):
        GANTrainer(tiny("stylegan", ngf=8, init_generator=str(model)), tmp_path / "bad", data_dir)
    with pytest.raises(FileNotFoundError, match="no generator weights"):
        GANTrainer(tiny("stylegan", init_generator=str(tmp_path / "nowhere")), tmp_path / "bad2", data_dir)


def test_a_fine_tune_keeps_the_coarse_layers_and_starts_from_the_exported_discriminator(runs, tmp_path, data_dir):
    """freeze_g_through keeps the mapping (and w_avg) and the layers up to that side exactly as
    they were while the finer ones train; init_discriminator starts D from the export's weights."""
    trainer, _, _ = runs("stylegan")
    model = tmp_path / "model"
    export_gan_run(trainer.run_dir, model, name="anime_faces", version="t")
    config = tiny("stylegan", init_generator=str(model), init_discriminator=str(model), freeze_g_through=8, seed=5)
    tuned = GANTrainer(config, tmp_path / "tune", data_dir)
    start_D = _params(trainer.D)
    assert all(torch.equal(_params(tuned.D)[k], start_D[k]) for k in start_D)
    start = _params(trainer.G_ema)
    tuned.run()
    assert tuned.step == 2
    fixed = set(tuned.G.parameter_names_through(8)) | {"mapping.w_avg"}
    assert any(k.startswith("mapping.") for k in fixed) and "synthesis.blocks.0.conv0.conv.weight" in fixed
    assert "synthesis.blocks.1.conv0.conv.weight" not in fixed  # the 16 px block trains
    for net in (tuned.G, tuned.G_ema):
        got = _params(net)
        changed = {k for k in start if not torch.equal(got[k], start[k])}
        assert changed and not changed & fixed, sorted(changed & fixed)
        assert all(k.startswith("synthesis.blocks.1.") for k in changed), sorted(changed)
        assert any(k.endswith("noise_strength") for k in changed)  # noise strengths train unless frozen
    assert not all(torch.equal(_params(tuned.D)[k], start_D[k]) for k in start_D)  # D trains on
    # freeze_noise keeps every noise strength (and only those) where it started
    quiet = GANTrainer(tiny("stylegan", init_generator=str(model), freeze_noise=True, seed=5), tmp_path / "quiet", data_dir)
    quiet.run()
    got = _params(quiet.G)
    noise = {k for k in start if k.endswith("noise_strength")}
    assert noise and all(torch.equal(got[k], start[k]) for k in noise)
    assert any(not torch.equal(got[k], start[k]) for k in start if k.startswith("mapping.layers"))
    # everything trains without them; a side that fixes the whole generator is refused
    assert tiny("stylegan").freeze_g_through == 0 and not tiny("stylegan").freeze_noise
    with pytest.raises(ValueError, match="keeps the whole 16 px generator fixed"):
        GANTrainer(tiny("stylegan", freeze_g_through=16), tmp_path / "all", data_dir)
    with pytest.raises(FileNotFoundError, match="no discriminator weights"):
        GANTrainer(tiny("stylegan", init_discriminator=str(tmp_path / "nowhere")), tmp_path / "bad", data_dir)
    with pytest.raises(ValueError, match="does not fit a discriminator of this config"):
        GANTrainer(tiny("stylegan", ndf=8, init_discriminator=str(model)), tmp_path / "bad2", data_dir)
