"""FID / KID of a generator, or of an exported model folder sampled with ONNX Runtime.

``evaluate_generator`` takes any sampler (n -> uint8 images) and a real set; the images are
turned into features batch by batch, so a large evaluation never holds all of them at once.
``evaluate_model_folder`` builds the sampler of the model's kind (its registry entry's
``evaluator``, found by the manifest's kind):

- a CycleGAN sketch2anime model: the faces it makes from the 400 held-out real Quick, Draw!
  doodles, member after member (so at most 400 x members samples);
- a StyleGAN export (a ``stylegan`` block in the manifest: mapping + synthesis graphs): faces
  from seeds ``seed, seed + 1, ...`` without truncation (psi = 1), through ``core.runtime.FaceModel``;
- any other unconditional generator (DCGAN, LSGAN, WGAN-div): the member labelled "generator",
  z (B, z_dim) -> NCHW image in [-1, 1], with z ~ N(0, I) drawn from ``seed``.

The files are checked against the manifest's sha256 before anything runs.

The real set is the first image zip the manifest lists among its data (the anime faces the
model learned from), unless one is given. Metric names and the ``feature_extractor`` label
come from the extractor (see ``training.metrics``).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.kinds import kind_of_manifest
from core.manifest import ModelManifest
from core.preprocess import output_to_images
from core.runtime import Ensemble, FaceModel, open_session
from training.data import ANIME_ZIP, load_quickdraw
from training.metrics import FeatureExtractor, RealImages, compare, make_extractor, real_features

log = logging.getLogger(__name__)

@dataclass
class Sampler:
    """``sample(n)`` returns up to n uint8 images (N, S, S, 3); fewer, or none, once
    ``available`` (when not None) is used up."""

    sample: Callable[[int], np.ndarray]
    available: int | None
    description: str


def _short_source(source: str) -> str:
    """A real set's file as its folder and name only: metrics travel (to the database, to docs)
    and must not carry one machine's paths; the sha256 beside it says exactly which file."""
    path = Path(source)
    return "/".join(path.parts[-2:]) if path.is_absolute() else source


def _real_set(real_images: np.ndarray | None, real_path: Path | None, data_dir: Path | None,
              real_limit: int | None, real_size: int | None) -> RealImages:
    if real_images is not None:
        images = real_images[:real_limit] if real_limit is not None else real_images
        return RealImages.from_array(images)
    if real_path is None:
        if data_dir is None:
            raise ValueError("no real set: pass real_images, real_path or data_dir")
        real_path = Path(data_dir) / ANIME_ZIP
    return RealImages.from_zip(Path(real_path), size=real_size, limit=real_limit)


def evaluate_generator(sample_fn: Callable[[int], np.ndarray], n_samples: int, *,
                       real_images: np.ndarray | None = None, real_path: Path | None = None,
                       data_dir: Path | None = None, real_limit: int | None = None, real_size: int | None = None,
                       extractor: FeatureExtractor | None = None, batch_size: int = 50, threads: int = 0,
                       cache_dir: Path | None = None, kid_subset_size: int = 1000, kid_subsets: int = 100,
                       seed: int = 0) -> dict[str, Any]:
    """FID and KID of ``n_samples`` images from ``sample_fn`` against a real set.

    The real set: ``real_images`` (uint8 (N, S, S, 3)), else the image zip ``real_path``, else
    the anime faces in ``data_dir``; its first ``real_limit`` images, at ``real_size`` (None: as
    stored). Real features are cached in ``cache_dir`` (None: not cached). ``seed`` draws the
    KID subsets. Returns the metrics, with the sample count, the extractor label, the real set's
    identity and the wall time.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2, got {n_samples}")
    t0 = time.perf_counter()
    extractor = extractor if extractor is not None else make_extractor(None)
    real = _real_set(real_images, real_path, data_dir, real_limit, real_size)
    chunks, done = [], 0
    while done < n_samples:
        images = np.asarray(sample_fn(min(max(1, batch_size), n_samples - done)))
        if len(images) == 0:
            break
        chunks.append(extractor.features(images, batch_size=batch_size, threads=threads))
        done += len(images)
    if done < 2:
        raise ValueError("the sampler gave fewer than 2 images")
    fake = np.concatenate(chunks)
    ref = real_features(real, extractor, cache_dir, batch_size=batch_size, threads=threads)
    scores = compare(ref, fake, extractor, kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, seed=seed)
    metrics: dict[str, Any] = {
        **scores, "n_samples": int(done), "n_real": real.count,
        "real_set": _short_source(real.source), "real_sha256": real.sha256, "real_stats_cache": ref.cache,
        "eval_seed": seed, "eval_wall_s": round(time.perf_counter() - t0, 2),
    }
    if done < n_samples:
        metrics["n_samples_requested"] = n_samples
    log.info("evaluation: %s", {k: metrics[k] for k in metrics if k.startswith(("fid", "kid"))})
    return metrics


# ---------------------------------------------------------------------------------------------
# Model folders.


def cyclegan_sampler(folder: Path, manifest: ModelManifest, *, seed: int = 0, data_dir: Path | None = None,
                     providers: list[str] | None = None, threads: int = 0) -> Sampler:
    """Faces from the held-out real doodles, each member in turn (``seed`` is not used: the
    doodles are the same every time)."""
    if data_dir is None:
        raise ValueError("a sketch->anime model is measured on the held-out doodles of the data folder: pass data_dir")
    ensemble = Ensemble(folder, providers or ["CPUExecutionProvider"], threads)
    doodles = load_quickdraw(Path(data_dir), "holdout")
    order = [(m, i) for m in range(len(ensemble.members)) for i in range(len(doodles))]
    pos = 0

    def sample(n: int) -> np.ndarray:
        nonlocal pos
        chunk, pos = order[pos : pos + n], pos + n
        out = [ensemble.translate_bitmaps(doodles[[i for _, i in group]], [m])[0]
               for m, group in itertools.groupby(chunk, key=lambda t: t[0])]
        return np.concatenate(out) if out else np.zeros((0, 1, 1, 3), np.uint8)

    return Sampler(sample, len(order), f"{len(doodles)} held-out Quick, Draw! doodles x {len(ensemble.members)} members")


def stylegan_sampler(folder: Path, manifest: ModelManifest, *, seed: int = 0, data_dir: Path | None = None,
                     providers: list[str] | None = None, threads: int = 0) -> Sampler:
    """Faces of seeds seed, seed + 1, ... from a StyleGAN export, untruncated (psi = 1).

    The mapping / synthesis contract (z -> w, one w per style input -> image) is
    ``core.runtime.FaceModel``'s, which also checks the files against the manifest."""
    model = FaceModel(folder, providers, threads)
    next_seed = seed

    def sample(n: int) -> np.ndarray:
        nonlocal next_seed
        seeds = list(range(next_seed, next_seed + n))
        next_seed += n
        return np.stack([np.asarray(im.convert("RGB")) for im in model.images(model.broadcast(model.w(seeds, 1.0)))])

    return Sampler(sample, None, f"StyleGAN mapping + synthesis, seeds from {seed}, psi 1")


def generator_sampler(folder: Path, manifest: ModelManifest, *, seed: int = 0, data_dir: Path | None = None,
                      providers: list[str] | None = None, threads: int = 0) -> Sampler:
    """z ~ N(0, I) from ``seed`` through the graph labelled "generator": z (B, z_dim) -> image (B, 3, S, S)."""
    members = [m for m in manifest.members if m.label == "generator"] or manifest.members
    if len(members) != 1:
        raise ValueError(f"{folder}: expected one generator graph, the manifest lists {[m.file for m in members]}")
    path, z_dim = Path(folder) / members[0].file, manifest.input.dim
    sess = open_session(path, providers or ["CPUExecutionProvider"], threads)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"{path.name}: expected one input (z), found {[i.name for i in inputs]}")
    name, shape = inputs[0].name, list(inputs[0].shape)
    fixed = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    if len(shape) != 2 or (fixed is not None and fixed != z_dim):
        raise ValueError(f"{path.name}: input {name} has shape {shape}; the manifest says (B, {z_dim})")
    rng = np.random.default_rng(seed)

    def sample(n: int) -> np.ndarray:
        z = rng.standard_normal((n, z_dim)).astype(np.float32)
        return output_to_images(sess.run(None, {name: z})[0])

    return Sampler(sample, None, f"{path.name}: z ~ N(0, I) of {z_dim} dims, seed {seed}")


def model_sampler(folder: Path, manifest: ModelManifest, *, seed: int = 0, data_dir: Path | None = None,
                  providers: list[str] | None = None, threads: int = 0) -> Sampler:
    """The sampler of the model's kind (its registry entry's ``evaluator``)."""
    sampler = kind_of_manifest(manifest.kind).evaluator.load()
    return sampler(Path(folder), manifest, seed=seed, data_dir=data_dir, providers=providers, threads=threads)


def manifest_real_set(manifest: ModelManifest, data_dir: Path) -> Path:
    """The first image zip among the manifest's data sets that is present, else the anime faces."""
    for entry in manifest.data:
        rel = str(entry.get("path", ""))
        if rel.lower().endswith(".zip"):
            path = Path(rel) if Path(rel).is_absolute() else Path(data_dir) / rel
            if path.is_file():
                return path
    return Path(data_dir) / ANIME_ZIP


def evaluate_model_folder(folder: Path, n_samples: int, *, data_dir: Path | None = None,
                          real_path: Path | None = None, real_limit: int | None = None,
                          extractor: FeatureExtractor | None = None, inception_weights: Path | None = None,
                          device: str = "auto", batch_size: int = 50, threads: int = 0,
                          cache_dir: Path | None = None, providers: list[str] | None = None,
                          kid_subsets: int = 100, seed: int = 0) -> dict[str, Any]:
    """FID / KID of an exported model against its real set (see the module docstring).

    ``data_dir``: the data folder (the real set and held-out doodles are found there unless
    ``real_path`` is given). ``extractor``: the feature extractor; None makes one from
    ``inception_weights`` (None: the substitute) on ``device`` ("auto": CUDA when torch sees it)."""
    folder = Path(folder)
    manifest = ModelManifest.load(folder)
    manifest.verify(folder)  # refuses tampered or missing files
    if real_path is None and data_dir is None:
        raise ValueError("the real images are found in the data folder: pass data_dir (or real_path)")
    sampler = model_sampler(folder, manifest, seed=seed, data_dir=data_dir, providers=providers, threads=threads)
    n = n_samples
    if sampler.available is not None and n > sampler.available:
        log.warning("%s can make %d distinct samples (%s); evaluating those instead of %d",
                    folder, sampler.available, sampler.description, n_samples)
        n = sampler.available
    if extractor is None:
        extractor = make_extractor(inception_weights, device=torch_device() if device == "auto" else device)
    metrics = evaluate_generator(sampler.sample, n, real_path=real_path or manifest_real_set(manifest, data_dir),
                                 real_limit=real_limit, extractor=extractor, batch_size=batch_size, threads=threads,
                                 cache_dir=cache_dir, kid_subsets=kid_subsets, seed=seed)
    if n != n_samples:
        metrics["n_samples_requested"] = n_samples
    metrics["sampler"] = sampler.description
    metrics["model"] = f"{manifest.name} v{manifest.version} ({manifest.kind})"
    return metrics


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
