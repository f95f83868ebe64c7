"""Export an unconditional generator run to ONNX, with a manifest.

- DCGAN, LSGAN, WGAN-div: one graph, ``generator.onnx``: z (B, z_dim) -> image (B, 3, S, S) in
  [-1, 1]; batch norm uses its running statistics (eval mode), as the sample grids do.
- Beside the graphs, the shipped generator's torch weights (``generator.safetensors``, the EMA
  generator for StyleGAN) and the discriminator's (``discriminator.safetensors``), labelled
  "torch weights", so later work fine-tunes (``init_generator``) instead of training again.
- StyleGAN: two graphs from the EMA generator. ``mapping.onnx``: z (B, z_dim) -> w (B, w_dim),
  untruncated. ``synthesis.onnx``: ws (B, num_ws, w_dim) -> image (B, 3, S, S), with the
  constant noise maps. The manifest's ``stylegan`` block carries ``w_avg``, so a client can
  truncate (w_avg + psi * (w - w_avg)), repeat w over the num_ws layers, or mix two styles by
  layer, all in numpy, without another graph (``core.runtime.FaceModel`` does).

The graphs are the manifest's ``members``, labelled "generator", or "mapping" and "synthesis".

Every graph has a dynamic batch axis and is checked against torch on a seeded batch before the
manifest is written; a difference above ``PARITY_TOLERANCE`` stops the export.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.kinds import get_kind
from core.manifest import LatentInput, Member, ModelManifest, StyleGANSpec, TensorSpec, sha256_file
from training.data import ANIME_ZIP
from training.export import OPSET, PARITY_TOLERANCE, ExportError, copy_latest_samples, run_metrics, save_weights
from core.configs.gans import GANConfig, StyleGANConfig, load_gan_config
from training.gans.stylegan import StyleGenerator
from training.runinfo import training_record
from training.train_gan import CHECKPOINT_FORMAT, build_networks

log = logging.getLogger(__name__)


def load_gan_networks(path: Path) -> tuple[nn.Module, nn.Module, GANConfig, int]:
    """The generator to ship from a GAN checkpoint (the EMA one for StyleGAN) and the
    discriminator, both in eval mode; the config and step."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format_version") != CHECKPOINT_FORMAT:
        raise ExportError(f"{path}: unknown checkpoint format {state.get('format_version')}")
    config = load_gan_config(state["config"])
    G, D = build_networks(config)
    G.load_state_dict(state["G_ema" if isinstance(config, StyleGANConfig) else "G"])
    D.load_state_dict(state["D"])
    return G.eval(), D.eval(), config, int(state["step"])


class _Mapping(nn.Module):
    def __init__(self, G: StyleGenerator):
        super().__init__()
        self.mapping = G.mapping

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping(z)


class _Synthesis(nn.Module):
    def __init__(self, G: StyleGenerator):
        super().__init__()
        self.synthesis = G.synthesis

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws, noise_mode="const")


def _export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str) -> float:
    """Export with a dynamic batch axis; returns the largest |ONNX - torch| on ``example``."""
    import onnxruntime as ort

    torch.onnx.export(
        module, (example[:1],), str(path), input_names=[input_name], output_names=[output_name],
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, opset_version=OPSET, dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([output_name], {input_name: example.numpy()})[0]
    with torch.no_grad():
        want = module(example).numpy()
    diff = float(np.abs(got - want).max())
    if diff > PARITY_TOLERANCE:
        raise ExportError(f"{path.name}: ONNX differs from torch by {diff:.2e} (> {PARITY_TOLERANCE:g})")
    log.info("exported %s (parity %.2e)", path, diff)
    return diff


def _member(path: Path, label: str, step: int, diff: float, metrics: dict[str, float]) -> Member:
    return Member(file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size, label=label,
                  source={"checkpoint": "latest.pt", "step": step}, parity_max_abs_diff=diff, metrics=metrics)


def export_gan_run(run_dir: Path, out_dir: Path, *, name: str = "anime-faces", version: str = "1",
                   data_dir: Path | None = None, snapshots: list[int] | None = None) -> ModelManifest:
    """Export the latest checkpoint of a GAN run into ``out_dir`` with a manifest; returns it.
    (``snapshots`` are refused: a GAN run exports its latest checkpoint, EMA included.)"""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    src = run_dir / "checkpoints" / "latest.pt"
    if not src.is_file():
        raise ExportError(f"not found: {src}")
    G, D, config, step = load_gan_networks(src)
    if snapshots:
        raise ValueError(f"a {config.kind} run exports its latest checkpoint; snapshots are for CycleGAN runs")
    out_dir.mkdir(parents=True, exist_ok=True)
    final_metrics = run_metrics(run_dir)
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((4, config.z_dim)).astype(np.float32))
    members: list[Member] = []
    stylegan = None
    if isinstance(G, StyleGenerator):
        mapping, synthesis = _Mapping(G), _Synthesis(G)
        diff = _export(mapping, z, out_dir / "mapping.onnx", "z", "w")
        members.append(_member(out_dir / "mapping.onnx", "mapping", step, diff, {}))
        with torch.no_grad():
            w = G.mapping(z)
        # the check batch: untruncated, truncated and style-mixed ws, as a client would make them
        ws = G.broadcast(torch.cat([w, G.mapping.w_avg.lerp(w, 0.5)])).clone()
        ws[0, G.num_ws // 2 :] = w[1]
        diff = _export(synthesis, ws, out_dir / "synthesis.onnx", "ws", "image")
        members.append(_member(out_dir / "synthesis.onnx", "synthesis", step, diff, final_metrics))
        stylegan = StyleGANSpec(num_ws=G.num_ws, w_dim=G.w_dim, z_dim=G.z_dim, image_size=config.image_size,
                                w_avg=[float(v) for v in G.mapping.w_avg], truncation_psi=config.sample_truncation)
    else:
        diff = _export(G, z, out_dir / "generator.onnx", "z", "image")
        members.append(_member(out_dir / "generator.onnx", "generator", step, diff, final_metrics))
    graph = members[-1].file
    members.append(save_weights(G, config, out_dir / "generator.safetensors", of=graph, step=step))
    members.append(save_weights(D, config, out_dir / "discriminator.safetensors", of="discriminator", step=step))
    data = []
    if data_dir is not None and (Path(data_dir) / ANIME_ZIP).is_file():
        data.append({"path": str(ANIME_ZIP), "sha256": sha256_file(Path(data_dir) / ANIME_ZIP)})
    samples = copy_latest_samples(run_dir, out_dir)
    manifest = ModelManifest(
        name=name, kind=get_kind(config.kind).manifest_kind, version=version,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        input=LatentInput(name="z", dim=config.z_dim, description="z ~ N(0, I), float32 (B, z_dim)"),
        output=TensorSpec(name="image", image_size=config.image_size,
                          description="RGB anime face, about [-1, 1]; clip before converting to pixels"),
        members=members, stylegan=stylegan,
        training=training_record(run_dir, config.model_dump(mode="json"), OPSET, step=step),
        data=data, metrics=final_metrics, samples=samples,
    )
    manifest.save(out_dir)
    return manifest
