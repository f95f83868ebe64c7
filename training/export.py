"""Export the sketch->anime network of a drawing run (CycleGAN, DiscoGAN, UNIT, line art) to ONNX,
with a manifest.

Each member is exported with a dynamic batch axis and checked against torch on a batch of real
held-out doodles before the manifest is written; a member whose ONNX output differs from torch
by more than ``PARITY_TOLERANCE`` stops the export.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from core.kinds import KINDS, get_kind
from core.manifest import Member, ModelManifest, PhotoInput, SketchInput, TensorSpec, sha256_file
from core.preprocess import bitmap_to_input
from core.configs.translation import PHOTO_HOLDOUT_START, LineArtConfig, Selfie2AnimeConfig, TranslationConfig
from training.data import load_quickdraw
from training.runinfo import training_record
from training.translation import CHECKPOINT_FORMAT

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
OPSET = 17


class ExportError(RuntimeError):
    pass


def checkpoint_kind(state: dict) -> str:
    """The registry's kind of a checkpoint or snapshot (snapshots say ``<kind>-generator``; the
    first CycleGAN snapshots ``cyclegan-G_AB``)."""
    return str(state.get("kind", "cyclegan")).split("-")[0]


def load_generator(path: Path) -> tuple[torch.nn.Module, TranslationConfig, int]:
    """The sketch->anime network of a snapshot or a full checkpoint of any drawing kind."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format_version") != CHECKPOINT_FORMAT:
        raise ExportError(f"{path}: unknown checkpoint format {state.get('format_version')}")
    trainer = get_kind(checkpoint_kind(state)).trainer.load()
    g, config = trainer.generator_from_state(state)
    return g, config, int(state["step"])


@functools.lru_cache(maxsize=4)
def photo_framing(data_dir: Path | None, count: int = 200) -> tuple[float, float]:
    """(crop_scale, crop_shift): how the training photos frame a face, as ``core.photo.find_face``
    sees it: the median photo side over the face box's width, and the median distance of the
    photo's centre below the box's centre, in box widths. The photo page crops found faces alike."""
    from core.photo import find_face
    from training.train_selfie import load_photos

    if data_dir is None:
        return PhotoInput.model_fields["crop_scale"].default, PhotoInput.model_fields["crop_shift"].default
    photos = load_photos(Path(data_dir), 256)[:PHOTO_HOLDOUT_START][:count]
    scales, shifts = [], []
    for im in photos:
        face = find_face(im)
        if face is not None:
            scales.append(im.shape[1] / face.w)
            shifts.append((im.shape[0] / 2 - (face.y + face.h / 2)) / face.w)
    return round(float(np.median(scales)), 3), round(float(np.median(shifts)), 3)


def sketch_input(config: TranslationConfig, data_dir: Path | None = None) -> SketchInput | PhotoInput:
    """What the exported model reads: Quick, Draw! doodles, the line-art model's thin lines, or
    face photos cropped as the training photos are."""
    if isinstance(config, Selfie2AnimeConfig):
        scale, shift = photo_framing(data_dir)
        return PhotoInput(name="sketch", image_size=config.image_size, crop_scale=scale, crop_shift=shift,
                          description="the face of a photo, cropped square around the face found, RGB in [-1, 1]")
    if isinstance(config, LineArtConfig):
        return SketchInput(name="sketch", image_size=config.image_size, raster_size=config.raster_size,
                           line_diameter=config.line_diameter, padding=config.padding,
                           description="a line drawing with a thin pen, dark ink (-1) on white (+1), 3 equal channels")
    return SketchInput(name="sketch", image_size=config.image_size, raster_size=config.raster_size,
                       description="Quick, Draw! bitmap, resized, dark ink (-1) on white (+1), 3 equal channels")


def save_weights(network: torch.nn.Module, config: BaseModel | dict, path: Path, *, of: str, step: int) -> Member:
    """The exported network's torch weights as safetensors (its config in the metadata), as a
    manifest member labelled "torch weights"."""
    import os

    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
    settings = config if isinstance(config, dict) else config.model_dump(mode="json")
    save_file(state, str(path), metadata={"config": json.dumps(settings), "of": of})
    os.chmod(path, 0o644)  # safetensors writes through a private temporary file
    return Member(file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size, label="torch weights",
                  source={"of": of, "step": step})


def export_onnx(generator: torch.nn.Module, path: Path, image_size: int) -> None:
    dummy = torch.zeros(1, 3, image_size, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        generator, (dummy,), str(path), input_names=["sketch"], output_names=["anime"],
        dynamic_axes={"sketch": {0: "batch"}, "anime": {0: "batch"}}, opset_version=OPSET, dynamo=False,
    )


def export_checked(module: torch.nn.Module, path: Path, *, example: torch.Tensor, check: torch.Tensor,
                   input_name: str, output_name: str) -> float:
    """``module`` (put in eval mode) as ONNX with a dynamic batch; returns its largest difference
    from torch on ``check``, and stops the export (ExportError) over ``PARITY_TOLERANCE``."""
    import onnxruntime as ort

    module = module.eval()
    torch.onnx.export(module, (example,), str(path), input_names=[input_name], output_names=[output_name],
                      dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, opset_version=OPSET,
                      dynamo=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {input_name: check.numpy()})[0]
    with torch.no_grad():
        want = module(check).numpy()
    diff = float(np.abs(got - want).max())
    if diff > PARITY_TOLERANCE:
        raise ExportError(f"{path.name}: ONNX differs from torch by {diff:.2e} (> {PARITY_TOLERANCE:g})")
    return diff


def parity(generator: torch.nn.Module, path: Path, batch: np.ndarray) -> float:
    """Largest |ONNX - torch| over a batch, on the CPU execution provider."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["anime"], {"sketch": batch})[0]
    with torch.no_grad():
        want = generator(torch.from_numpy(batch)).numpy()
    return float(np.abs(got - want).max())


def _metrics_at(run_dir: Path, step: int) -> dict[str, float]:
    path = run_dir / "metrics_log.jsonl"
    if not path.is_file():
        return {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("step") == step:
            return {k: float(v) for k, v in row.items() if k != "step"}
    return {}


def copy_latest_samples(run_dir: Path, out_dir: Path) -> str | None:
    """The run's last sample grid, copied beside the export as ``samples.png`` (None: the run has none)."""
    grids = sorted((Path(run_dir) / "samples").glob("step_*.png"))
    if not grids:
        return None
    shutil.copy(grids[-1], Path(out_dir) / "samples.png")
    return "samples.png"


def run_metrics(run_dir: Path) -> dict[str, float]:
    """The run's final metrics (its ``metrics.json`` without the step), for the manifest."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return {}
    return {k: float(v) for k, v in json.loads(path.read_text()).items() if k != "step"}


def export_run(
    run_dir: Path, out_dir: Path, *, name: str | None = None, version: str = "1",
    snapshots: list[int] | None = None, data_dir: Path | None = None, weights: bool = True,
) -> ModelManifest:
    """Export members (snapshot steps, or the latest checkpoint) into ``out_dir`` with a manifest; returns it."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if snapshots:
        sources = [run_dir / "snapshots" / f"step_{s:07d}.pt" for s in snapshots]
    else:
        sources = [run_dir / "checkpoints" / "latest.pt"]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ExportError(f"not found: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    check = None
    members: list[Member] = []
    config = None
    kinds = set()
    for i, src in enumerate(sources):
        g, cfg, step = load_generator(src)
        kinds.add(type(cfg))
        if len(kinds) > 1 or config is not None and cfg.model_dump(exclude={"steps", "decay_steps"}) != config.model_dump(exclude={"steps", "decay_steps"}):
            raise ExportError("ensemble members must share one architecture and data contract")
        config = cfg
        if check is None:
            if data_dir is not None:
                check = bitmap_to_input(load_quickdraw(data_dir, "holdout")[:8], cfg.image_size)
            else:
                check = np.random.default_rng(0).uniform(-1, 1, (4, 3, cfg.image_size, cfg.image_size)).astype(np.float32)
        path = out_dir / f"member_{i}.onnx"
        export_onnx(g, path, cfg.image_size)
        diff = parity(g, path, check)
        if diff > PARITY_TOLERANCE:
            raise ExportError(f"{path.name}: ONNX differs from torch by {diff:.2e} (> {PARITY_TOLERANCE:g})")
        members.append(Member(
            file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size,
            label=f"variation {i + 1}", source={"checkpoint": src.name, "step": step},
            parity_max_abs_diff=diff, metrics=_metrics_at(run_dir, step),
        ))
        log.info("exported %s (step %d, parity %.2e)", path, step, diff)
        if weights:  # the torch weights beside the graph, so later work can fine-tune it
            members.append(save_weights(g, cfg, out_dir / f"member_{i}.safetensors", of=path.name, step=step))
    assert config is not None
    data = []
    kind = next(k for k in KINDS.values() if k.config is type(config))  # the checkpoint's kind, without reading it again
    if data_dir is not None:
        for rel in kind.trainer.load().DATA_FILES:
            p = Path(data_dir) / rel
            if p.is_file():
                data.append({"path": str(rel), "sha256": sha256_file(p)})
    samples = copy_latest_samples(run_dir, out_dir)
    final_metrics = run_metrics(run_dir)
    manifest = ModelManifest(
        name=name or kind.model_name, kind=kind.manifest_kind, version=version,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        input=sketch_input(config, data_dir),
        output=TensorSpec(name="anime", image_size=config.image_size, description="RGB anime face in [-1, 1]"),
        members=members,
        training=training_record(run_dir, config.model_dump(mode="json"), OPSET),
        data=data, metrics=final_metrics, samples=samples,
    )
    manifest.save(out_dir)
    return manifest
