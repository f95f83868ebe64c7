"""The model kinds: one registry from a kind's name to its configuration, the name its exports
register under, and the code that trains, exports, measures, draws and runs it.

A kind's training code is named by a ``Ref`` ("module:attribute") and imported only when it is
called, so this package, and the API process that reads the registry (job validation, the
dashboard's form), import no torch and no training code. Adding a kind is one entry here plus
its own files (config, trainer, exporter).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core.configs.cyclegan import CycleGANConfig
from core.configs.encoder import DoodleEncoderConfig
from core.configs.translation import DiscoGANConfig, LineArtConfig, Selfie2AnimeConfig, UNITConfig
from core.configs.gans import DCGANConfig, LSGANConfig, StyleGANConfig, WGANDivConfig
from core.configs.upscale import UpscalerConfig


@dataclass(frozen=True)
class Ref:
    """A module attribute named ``"package.module:attribute"``, imported by ``load``."""

    target: str

    def __post_init__(self) -> None:
        module, sep, attr = self.target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"a Ref is 'package.module:attribute', got {self.target!r}")

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ModelKind:
    name: str
    title: str                    # shown on the dashboard's new-job form
    config: type[BaseModel]       # validates a job's hyper-parameters (torch-free)
    model_name: str               # the name its exports register under (CLI export default, worker jobs)
    manifest_kind: str            # the ``kind`` its exports write into their manifest
    trainer: Ref                  # class: (config, run_dir, data_dir, *, threads, device, anime_source) -> .run(progress)
    exporter: Ref                 # (run_dir, out_dir, *, name, version, data_dir, snapshots) -> ModelManifest
    evaluator: Ref                # the sampler FID / KID measure: (folder, manifest, *, seed, data_dir, providers, threads)
    report: Ref                   # write-up figures: (run_dir, model_dir, out, *, data_dir, columns) -> dict to print
    runtime: Ref | None           # the ONNX Runtime class that runs its exports (None: no serving runtime of its own)
    shown_losses: tuple[str, ...]  # losses the CLI's progress bar shows
    serves_drawings: bool = False  # its exports are drawing models (served by name; see settings.drawing_models)
    builds_on_models: bool = False  # trainer and exporter take ``models_dir=`` (it builds on a shipped model)


def _face_gan(name: str, title: str, config: type[BaseModel], *, model_name: str | None = None,
              evaluator: str = "training.evaluate:generator_sampler", runtime: Ref | None = None) -> ModelKind:
    """An unconditional anime-face generator: one trainer, exporter and report for all of them."""
    return ModelKind(
        name=name, title=title, config=config, model_name=model_name or name, manifest_kind=f"{name}-anime-faces",
        trainer=Ref("training.train_gan:GANTrainer"), exporter=Ref("training.export_gan:export_gan_run"),
        evaluator=Ref(evaluator), report=Ref("training.report:gan_report"), runtime=runtime,
        shown_losses=("G", "D", "div", "r1"))


def _translation(name: str, title: str, config: type[BaseModel], trainer: str, *, model_name: str,
                 manifest_kind: str, shown_losses: tuple[str, ...] = ("G", "cycle", "D_A", "D_B")) -> ModelKind:
    """A drawing -> anime-face network of the shared translation framework: exported and served
    alike (ONNX members of an ensemble), measured on the held-out doodles."""
    return ModelKind(
        name=name, title=title, config=config, model_name=model_name, manifest_kind=manifest_kind,
        trainer=Ref(trainer), exporter=Ref("training.export:export_run"),
        evaluator=Ref("training.evaluate:cyclegan_sampler"), report=Ref("training.report:cyclegan_report"),
        runtime=Ref("core.runtime:Ensemble"), shown_losses=shown_losses, serves_drawings=True)


KINDS: dict[str, ModelKind] = {
    "cyclegan": _translation("cyclegan", "CycleGAN: drawings to anime faces", CycleGANConfig,
                             "training.train_cyclegan:CycleGANTrainer", model_name="sketch2anime",
                             manifest_kind="cyclegan-sketch2anime"),
    "discogan": _translation("discogan", "DiscoGAN: drawings to anime faces, U-Net generators", DiscoGANConfig,
                             "training.train_discogan:DiscoGANTrainer", model_name="discogan",
                             manifest_kind="discogan-sketch2anime"),
    "unit": _translation("unit", "UNIT: drawings to anime faces through a shared latent space", UNITConfig,
                         "training.train_unit:UNITTrainer", model_name="unit", manifest_kind="unit-sketch2anime",
                         shown_losses=("G", "vae", "cycle", "D_A", "D_B")),
    "lineart": _translation("lineart", "Line art: detailed line drawings coloured (paired, U-Net + L1)", LineArtConfig,
                            "training.train_lineart:LineArtTrainer", model_name="lineart",
                            manifest_kind="lineart-sketch2anime", shown_losses=("G", "l1", "D")),
    "selfie2anime": ModelKind(
        name="selfie2anime", title="Selfie to anime: face photos to anime faces (CycleGAN, 128 px)",
        config=Selfie2AnimeConfig, model_name="selfie2anime", manifest_kind="cyclegan-selfie2anime",
        trainer=Ref("training.train_selfie:Selfie2AnimeTrainer"), exporter=Ref("training.export:export_run"),
        evaluator=Ref("training.train_selfie:photo_sampler"), report=Ref("training.train_selfie:selfie_report"),
        runtime=Ref("core.photo:PhotoModel"), shown_losses=("G", "cycle", "D_A", "D_B")),
    "doodle_encoder": ModelKind(
        name="doodle_encoder", title="Doodle encoder: drawings to faces of the StyleGAN prior",
        config=DoodleEncoderConfig, model_name="doodle_encoder", manifest_kind="doodle-encoder-stylegan",
        trainer=Ref("training.doodle.train:DoodleEncoderTrainer"), exporter=Ref("training.doodle.export:export_encoder_run"),
        evaluator=Ref("training.doodle.report:encoder_sampler"), report=Ref("training.doodle.report:encoder_report"),
        runtime=Ref("core.doodle_model:DoodleFaceModel"), shown_losses=("loss", "attributes", "yes_no"), serves_drawings=True,
        builds_on_models=True),
    "dcgan": _face_gan("dcgan", "DCGAN: random anime faces", DCGANConfig),
    "lsgan": _face_gan("lsgan", "LSGAN: random anime faces, least-squares loss", LSGANConfig),
    "wgan_div": _face_gan("wgan_div", "WGAN-div: random anime faces, Wasserstein divergence", WGANDivConfig),
    "stylegan": _face_gan("stylegan", "StyleGAN: random anime faces with style mixing", StyleGANConfig,
                          model_name="anime_faces", evaluator="training.evaluate:stylegan_sampler",
                          runtime=Ref("core.runtime:FaceModel")),
    # Not a face maker: its FID / KID samples are held-out faces it enlarged from spoiled half-size copies.
    "upscaler": ModelKind(
        name="upscaler", title="Anime upscaler: sharper faces at the size people see them (2x CNN)",
        config=UpscalerConfig, model_name="upscaler", manifest_kind="anime-upscaler",
        trainer=Ref("training.upscale.train:UpscalerTrainer"), exporter=Ref("training.upscale.export:export_run"),
        evaluator=Ref("training.upscale.export:upscaled_sampler"), report=Ref("training.upscale.export:report"),
        runtime=Ref("core.upscale:Upscaler"), shown_losses=("loss", "l1", "edges")),
}


#: FID / KID of an exported model: the same steps for every kind (its ``evaluator`` makes the samples).
EVALUATE = Ref("training.evaluate:evaluate_model_folder")
#: Every drawing model and the baselines on held-out doodles and faces: realism, diversity, matching,
#: following and the controlled edits (``doodle2anime evaluate-drawing``).
EVALUATE_DRAWING = Ref("training.doodle.report:evaluate_drawing_models")


class UnknownKind(ValueError):
    """A kind name, or a manifest kind, that the registry does not hold; the message lists the valid ones."""


def get_kind(name: str) -> ModelKind:
    if name not in KINDS:
        raise UnknownKind(f"unknown model kind {name!r}; valid: {', '.join(KINDS)}")
    return KINDS[name]


def kind_of_manifest(manifest_kind: str) -> ModelKind:
    """The kind whose exports write ``manifest_kind`` into their manifest."""
    for kind in KINDS.values():
        if kind.manifest_kind == manifest_kind:
            return kind
    valid = ", ".join(k.manifest_kind for k in KINDS.values())
    raise UnknownKind(f"no model kind exports {manifest_kind!r} models; valid: {valid}")
