"""Export the anime upscaler: its ONNX graph (any batch and size), its torch weights, a manifest
with the held-out figures, and a sample grid of the prior's faces at 256 px (Lanczos beside the
upscaler).

    python -m training.upscale.export --data-dir ../shared/data --run runs/upscaler --out models/upscaler

The registry's exporter (``export_run``: a dashboard job's, ``doodle2anime export``'s) exports a
run folder's checkpoint; its sampler (``upscaled_sampler``) gives FID / KID the held-out faces
enlarged from their spoiled half-size copies; ``report`` makes the write-up's figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.configs.upscale import UpscalerConfig
from training.upscale.train import (SOURCE_FILE, UpscalerTrainer, evaluate, face_sets, held_out, to_tensor,
                                    upscale_torch)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


def export_graph(net: torch.nn.Module, path: Path, check: torch.Tensor) -> float:
    """The graph with a dynamic batch, height and width; the largest ONNX-torch difference on
    ``check`` and on it at twice the size."""
    import onnxruntime as ort

    net.eval()
    torch.onnx.export(net, (check[:1],), str(path), input_names=["face"], output_names=["large"], opset_version=17,
                      dynamic_axes={"face": {0: "batch", 2: "height", 3: "width"},
                                    "large": {0: "batch", 2: "height", 3: "width"}}, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in (check, torch.nn.functional.interpolate(check, scale_factor=2, mode="bilinear")):
        with torch.no_grad():
            want = net(x).numpy()
        got = session.run(None, {"face": x.numpy()})[0]
        worst = max(worst, float(np.abs(want - got).max()))
    return worst


def sample_grid(upscale, out: Path, models_dir: Path, count: int = 5, size: int = 256,
                fallback: np.ndarray | None = None) -> Path:
    """Two rows of the prior's faces at ``size``: Lanczos, then the upscaler (twice). Without the
    prior in ``models_dir``, the faces of ``fallback`` (64 px faces) instead."""
    prior_dir = Path(models_dir) / "anime_faces"
    if fallback is not None and not (prior_dir / "manifest.json").is_file():
        faces = fallback[-count:]
    else:
        from core.runtime import FaceModel

        prior = FaceModel(prior_dir, ["CPUExecutionProvider"])
        faces = prior.arrays(prior.broadcast(prior.w(list(range(100, 100 + count)), 0.7)))
    big = upscale(upscale(faces))
    rows = [np.concatenate([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                            for f in faces], axis=1),
            np.concatenate([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                            for f in big], axis=1)]
    path = Path(out) / "samples.jpg"   # enlarged faces hardly compress as PNG: a JPEG keeps the folder small
    Image.fromarray(np.concatenate(rows, axis=0)).save(path, quality=92)
    return path


def export(trainer: UpscalerTrainer, out: Path, metrics: dict, *, version: str = "1",
           models_dir: Path | None = None, data: list[dict] | None = None) -> Path:
    """The upscaler as ONNX, its torch weights, a manifest and a sample grid, into ``out``.
    ``data``: the manifest's data records (default: the data folder's face sets)."""
    from core.manifest import FaceInput, Member, ModelManifest, TensorSpec, UpscaleSpec, sha256_file
    from core.upscale import KIND as RUNTIME_KIND
    from training.export import save_weights
    from training.runinfo import hardware

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph = out / "upscaler.onnx"
    check = to_tensor(trainer.faces["small"][-16:])
    parity = export_graph(trainer.net, graph, check)
    weights = save_weights(trainer.net, trainer.config.model_dump(), out / "upscaler.safetensors", of="upscaler",
                           step=trainer.step)
    members = [Member(file=graph.name, sha256=sha256_file(graph), bytes=graph.stat().st_size, label="upscaler",
                      parity_max_abs_diff=parity), weights.model_copy(update={"label": "torch_weights"})]
    c = trainer.config
    samples = sample_grid(lambda f: upscale_torch(trainer.net, f), out, models_dir or ROOT / "models",
                          fallback=trainer.faces["small"])
    manifest = ModelManifest(
        name=out.name, kind=RUNTIME_KIND, version=version, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        input=FaceInput(name="face", image_size=64, description="faces of any size, RGB in [-1, 1]"),
        output=TensorSpec(name="large", image_size=128, description="the faces at twice the side, about [-1, 1]"),
        members=members, upscale=UpscaleSpec(scale=2),
        training={"config": c.model_dump(), "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
                  "hardware": hardware("cpu"), "loss": trainer.history},
        data=data if data is not None else [
            {"name": "selfie2anime anime faces 128 px", "faces": "[0, 3000) trained on, [3000, 3400) held out"},
            {"name": "anime_faces 64 px", "faces": "[0, 13400) trained on, [13400, 14896) held out"}],
        metrics={k: float(v) for k, v in metrics.items()}, samples=samples.name)
    manifest.save(out)
    return out


def _data_records(trainer: UpscalerTrainer) -> list[dict]:
    """What the run learnt from: each face set, its split and the sha256 of its file (the data
    folder's by their relative path; an uploaded zip by name only, no machine path)."""
    from core.manifest import sha256_file
    from training.data import ANIME_ZIP
    from training.upscale.train import SELFIE_ANIME_ZIP

    def record(name: str, rel: Path | None, file: Path, which: str) -> dict:
        n, start = len(trainer.faces[which]), trainer.starts[which]
        entry = {"name": name, **({"path": str(rel)} if rel else {}),
                 "faces": f"[0, {min(start, n)}) trained on, [{min(start, n)}, {n}) held out"}
        if file.is_file():
            entry["sha256"] = sha256_file(file)
        return entry

    large = (record("uploaded image zip, 128 px", None, trainer.anime_source, "large") if trainer.anime_source
             else record("selfie2anime anime faces 128 px", SELFIE_ANIME_ZIP, trainer.data_dir / SELFIE_ANIME_ZIP, "large"))
    return [large, record("anime_faces 64 px", ANIME_ZIP, trainer.data_dir / ANIME_ZIP, "small")]


def export_run(run_dir: Path, out: Path, *, name: str = "upscaler", version: str = "1", data_dir: Path | None = None,
               snapshots: list[int] | None = None, models_dir: Path | None = None, count: int | None = None,
               **_) -> "ModelManifest":
    """The registry's exporter: the finished run in ``run_dir`` (its config.json and checkpoint,
    the large faces it noted), measured on its held-out faces (the first ``count`` of each set;
    None: all) and exported into ``out``. Returns the manifest."""
    from core.manifest import ModelManifest
    from training.export import ExportError

    if snapshots:
        raise ExportError("an upscaler run exports its latest checkpoint; snapshots are for CycleGAN runs")
    if data_dir is None:
        raise ExportError("the export measures the upscaler on held-out faces of the data folder: give data_dir")
    run_dir, out = Path(run_dir), Path(out)
    config_path, source_path = run_dir / "config.json", run_dir / SOURCE_FILE
    if not (run_dir / "checkpoint.pt").is_file() or not config_path.is_file():
        raise ExportError(f"{run_dir} holds no upscaler checkpoint and config.json")
    config = UpscalerConfig.model_validate_json(config_path.read_text())
    source = json.loads(source_path.read_text()).get("large") if source_path.is_file() else None
    trainer = UpscalerTrainer(config, run_dir, Path(data_dir), anime_source=Path(source) if source else None)
    trainer.load_checkpoint()
    if trainer.step < config.steps:
        raise ExportError(f"{run_dir} has not finished training (step {trainer.step} of {config.steps})")
    trainer.net.eval()
    metrics = evaluate(lambda s: upscale_torch(trainer.net, s), trainer.faces, count=count, starts=trainer.starts)
    (run_dir / "metrics.json").write_text(json.dumps({"step": trainer.step, **metrics}, indent=2) + "\n")
    export(trainer, out, metrics, version=version, models_dir=models_dir, data=_data_records(trainer))
    manifest = ModelManifest.load(out)
    if manifest.name != name:   # the folder names the export; the registry's name wins
        manifest = manifest.model_copy(update={"name": name})
        manifest.save(out)
    return manifest


def upscaled_sampler(folder: Path, manifest, *, seed: int = 0, data_dir: Path | None = None,
                     providers: list[str] | None = None, threads: int = 0):
    """FID / KID samples: the held-out selfie2anime faces [3000, 3400) made half as large and
    spoiled as the training pairs are (seeded), then enlarged back to 128 px by the exported
    graph. An upscaler makes no faces of its own: this measures how real its enlargements look
    (400 at most)."""
    from core.upscale import Upscaler
    from training.evaluate import Sampler
    from training.data import load_image_zip
    from training.upscale.train import SELFIE_ANIME_ZIP, spoil

    if data_dir is None:
        raise ValueError("an upscaler is measured on the held-out faces of the data folder: pass data_dir")
    model = Upscaler(folder, providers or ["CPUExecutionProvider"], threads)
    big = held_out({"large": load_image_zip(Path(data_dir) / SELFIE_ANIME_ZIP, 128),
                    "small": np.zeros((0, 64, 64, 3), np.uint8)})["large"]
    rng = np.random.default_rng(seed)
    pos = 0

    def sample(n: int) -> np.ndarray:
        nonlocal pos
        chunk, pos = big[pos:pos + n], pos + n
        if not len(chunk):
            return np.zeros((0, 1, 1, 3), np.uint8)
        return model.enlarge(np.stack([spoil(f, rng, UpscalerConfig()) for f in chunk]))

    return Sampler(sample, len(big), f"{len(big)} held-out selfie2anime faces, spoiled half-size copies enlarged 2x")


def told_apart(upscale, faces: dict[str, np.ndarray], seeds: int = 2) -> dict[str, float]:
    """Per method (upscaler, Lanczos, bicubic): the held-out AUC of fresh small classifiers that
    tell real held-out 128 px faces from faces enlarged from their spoiled half-size copies
    (``training.detectability``; 0.5: cannot tell). Real and enlarged faces are different faces:
    real [0, 150) and [300, 350) of the held-out ones, enlarged [150, 300) and [350, 400)."""
    from training.detectability import told_apart as auc_of
    from training.upscale.train import resized, spoil

    big = held_out(faces)["large"]
    rng = np.random.default_rng(2)
    small = np.stack([spoil(f, rng, UpscalerConfig()) for f in big])
    side = big.shape[1]
    methods = {"upscaler": upscale, "lanczos": lambda s: resized(s, side, Image.Resampling.LANCZOS),
               "bicubic": lambda s: resized(s, side, Image.Resampling.BICUBIC)}
    out = {}
    for name, method in methods.items():
        made = method(small)
        out[f"told_apart_{name}"] = round(float(auc_of(big[:150], made[150:300], big[300:350], made[350:400], seeds)), 4)
    return out


def report(run_dir: Path, model_dir: Path, out: Path, *, data_dir: Path, columns: int = 8) -> dict:
    """The write-up's figures: the held-out measures and told-apart AUCs through the exported
    graph, the loss curves, the prior's faces at 256 px (Lanczos above, the upscaler below) and
    held-out faces (half-size copy by Lanczos, by the upscaler, the real face)."""
    from core.upscale import Upscaler
    from training.report import _loss_rows, _plot_panels
    from training.upscale.train import resized, spoil

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = Upscaler(model_dir, ["CPUExecutionProvider"])
    faces = face_sets(data_dir)
    figures = {**evaluate(model.enlarge, faces), **told_apart(model.enlarge, faces)}
    _plot_panels(_loss_rows(run_dir), [("loss", ("loss",)), ("terms", ("l1", "edges"))], out / "loss.png", smooth=10)
    sample_grid(model.enlarge, out, Path(model_dir).parent)
    big = held_out(faces, columns)["large"]
    small = np.stack([spoil(f, np.random.default_rng(i), UpscalerConfig()) for i, f in enumerate(big)])
    rows = [resized(small, 256, Image.Resampling.LANCZOS), resized(model.enlarge(small), 256, Image.Resampling.LANCZOS),
            resized(big, 256, Image.Resampling.LANCZOS)]
    Image.fromarray(np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)).save(out / "held_out.jpg",
                                                                                               quality=92)
    (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train (or resume) the anime upscaler, measure it on held-out faces "
                                            "and export it.",
                                epilog="example: python -m training.upscale.export --data-dir ../shared/data "
                                       "--run runs/upscaler --out models/upscaler")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--run", type=Path, default=Path("runs/upscaler"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None, help="a JSON file of UpscalerConfig fields")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = UpscalerConfig.model_validate_json(args.config.read_text()) if args.config else UpscalerConfig()
    trainer = UpscalerTrainer(config, args.run, args.data_dir, threads=args.threads, faces=face_sets(args.data_dir))
    trainer.run()
    metrics = evaluate(lambda s: upscale_torch(trainer.net, s), trainer.faces)
    print(json.dumps(metrics, indent=2))
    export(trainer, args.out, metrics)


if __name__ == "__main__":
    main()
