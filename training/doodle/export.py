"""Export a doodle encoder run: the encoder graph (ONNX), the walks' directions (.npy), the
encoder's torch weights (safetensors, to fine-tune later) and a manifest that names the prior it
was made for. The graph is checked against torch on held-out real doodles before the manifest is
written."""

from __future__ import annotations

import datetime as dt
import json
import os
import logging
from pathlib import Path

import numpy as np
import torch

from core.configs.encoder import DoodleEncoderConfig
from core.manifest import (DoodleSpec, DoodleWalk, Member, ModelIntegrityError, ModelManifest, SketchInput,
                           TensorSpec, sha256_file)
from core.preprocess import bitmap_to_input
from training.data import QUICKDRAW_NPY, load_quickdraw
from training.doodle.attributes import ATTRIBUTES
from training.doodle.train import DoodleEncoderTrainer
from training.export import OPSET, PARITY_TOLERANCE, ExportError, copy_latest_samples, run_metrics
from training.prior.directions import WALKS
from training.runinfo import training_record

log = logging.getLogger(__name__)

#: Style inputs a palette (a variation's colours) replaces: the fine third, as on the faces page.
FINE_FROM = 0.6


def checked_guard(name: str | None, models_dir: Path) -> str | None:
    """``name`` when it is a face check that loads from ``models_dir`` (an ExportError otherwise)."""
    if name is None:
        return None
    from core.face_check import FaceCheck

    try:
        FaceCheck(Path(models_dir) / name, ["CPUExecutionProvider"])
    except (ModelIntegrityError, OSError, ValueError) as exc:
        raise ExportError(f"the face check {name!r} cannot guard the faces: {exc}") from None
    return name


def attach_guard(model_dir: Path, guard: str | None, models_dir: Path | None = None) -> ModelManifest:
    """Name ``guard`` (None: none) as the face check of an exported doodle encoder, in its manifest,
    without exporting it again: the guard is not part of what was trained."""
    model_dir = Path(model_dir)
    manifest = ModelManifest.load(model_dir)
    if manifest.doodle is None:
        raise ExportError(f"{model_dir} is not a doodle encoder export")
    name = checked_guard(guard, Path(models_dir) if models_dir else model_dir.parent)
    manifest = manifest.model_copy(update={"doodle": manifest.doodle.model_copy(update={"guard": name})})
    manifest.save(model_dir)
    return manifest


def export_encoder_run(run_dir: Path, out_dir: Path, *, name: str = "doodle_encoder", version: str = "1",
                       data_dir: Path | None = None, models_dir: Path | None = None,
                       snapshots: list[int] | None = None) -> ModelManifest:
    """Export the latest checkpoint of a doodle encoder run into ``out_dir``."""
    from safetensors.torch import save_file

    if snapshots:
        raise ExportError("a doodle encoder run exports its latest checkpoint; snapshots are for CycleGAN runs")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    src = run_dir / "checkpoints" / "latest.pt"
    if not src.is_file():
        raise ExportError(f"not found: {src}")
    state = torch.load(src, map_location="cpu", weights_only=True)
    config = DoodleEncoderConfig.model_validate(state["config"])
    if data_dir is None:
        raise ExportError("the export checks the encoder on held-out real doodles: give data_dir")
    trainer = DoodleEncoderTrainer(config, run_dir, Path(data_dir), models_dir=models_dir)
    trainer.load_checkpoint(src)
    if not trainer.identity_fitted or set(trainer.directions) != set(trainer.walk_names):
        raise ExportError(f"{run_dir} has not finished training (step {trainer.step} of {config.total_steps})")
    out_dir.mkdir(parents=True, exist_ok=True)

    graph = trainer.graph()
    doodles = load_quickdraw(Path(data_dir), "holdout")[:32]
    x = torch.from_numpy(bitmap_to_input(doodles, config.raster_size))
    path = out_dir / "encoder.onnx"
    torch.onnx.export(graph, (x[:1],), str(path), input_names=["sketch"], output_names=["attributes", "z"],
                      dynamic_axes={"sketch": {0: "batch"}, "attributes": {0: "batch"}, "z": {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"sketch": x.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in graph(x)]
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    if diff > PARITY_TOLERANCE:
        raise ExportError(f"encoder.onnx differs from torch by {diff:.2e} (> {PARITY_TOLERANCE:g})")

    directions = trainer.direction_tensor().numpy().astype(np.float32)
    np.save(out_dir / "directions.npy", directions, allow_pickle=False)
    save_file({f"encoder.{k}": v.contiguous() for k, v in graph.encoder.state_dict().items()}
              | {f"identity.{k}": v.contiguous() for k, v in graph.identity.state_dict().items()},
              str(out_dir / "encoder.safetensors"), metadata={"config": json.dumps(config.model_dump(mode="json"))})
    # safetensors writes through a private temporary file: give it the permissions of the other files
    os.chmod(out_dir / "encoder.safetensors", 0o644)

    metrics = run_metrics(run_dir)
    step = trainer.step
    members = [
        Member(file="encoder.onnx", sha256=sha256_file(path), bytes=path.stat().st_size, label="encoder",
               source={"checkpoint": "latest.pt", "step": step}, parity_max_abs_diff=diff, metrics=metrics),
        Member(file="directions.npy", sha256=sha256_file(out_dir / "directions.npy"),
               bytes=(out_dir / "directions.npy").stat().st_size, label="directions",
               source={"checkpoint": "latest.pt", "step": step}),
        Member(file="encoder.safetensors", sha256=sha256_file(out_dir / "encoder.safetensors"),
               bytes=(out_dir / "encoder.safetensors").stat().st_size, label="torch weights",
               source={"checkpoint": "latest.pt", "step": step}),
    ]
    G = trainer.G
    first_fine = int(round(FINE_FROM * G.num_ws))
    spec = DoodleSpec(
        prior=config.prior, prior_manifest_sha256=sha256_file(trainer.prior_dir / "manifest.json"),
        attributes=list(ATTRIBUTES),
        walks=[DoodleWalk(name=m.walk, layers=list(WALKS[m.walk].layers), attribute=m.attribute, scale=m.scale,
                          centre=m.centre, low=m.low, high=m.high) for m in config.walks],
        psi=config.psi, fine_layers=(first_fine, G.num_ws),
        guard=checked_guard(config.guard, trainer.prior_dir.parent),
    )
    samples = copy_latest_samples(run_dir, out_dir)
    manifest = ModelManifest(
        name=name, kind="doodle-encoder-stylegan", version=version,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        input=SketchInput(name="sketch", image_size=config.raster_size, raster_size=config.raster_size,
                          description="the doodle as a numpy_bitmap, dark ink on white, [-1, 1], 3 channels"),
        output=TensorSpec(name="image", image_size=G.image_size, description="RGB anime face from the prior, about [-1, 1]"),
        members=members, doodle=spec,
        training=training_record(run_dir, config.model_dump(mode="json"), OPSET, step=step),
        data=[{"path": str(QUICKDRAW_NPY), "sha256": sha256_file(Path(data_dir) / QUICKDRAW_NPY),
               "used": "identity head: the first 3,600 doodles (training split)"}],
        metrics=metrics, samples=samples,
    )
    manifest.save(out_dir)
    log.info("exported %s (encoder parity %.2e)", out_dir, diff)
    return manifest
