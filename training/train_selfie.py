"""The selfie -> anime CycleGAN (the selfie2anime paper's model): face photos (A) <-> anime faces (B)
at 128 px, with the CycleGAN's networks and losses (``training.train_cyclegan``) and the shared
framework's loop, checkpoints and resume. Photos [0, 1700) and anime faces [0, 3000) train it;
the rest of each is held out (``core.configs.translation``) for the sample grids, the held-out
metrics and the experiments' measures.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.configs.translation import PHOTO_HOLDOUT_START, SELFIE_ANIME_HOLDOUT_START, Selfie2AnimeConfig
from core.preprocess import output_to_images
from training.data import load_image_zip
from training.train_cyclegan import CycleGANTrainer
from training.translation import random_sharpness

log = logging.getLogger(__name__)

PHOTO_ZIP = Path("face_photos") / "face_photos_selfie2anime_trainA.zip"
SELFIE_ANIME_ZIP = Path("anime_faces_selfie2anime") / "selfie2anime_trainB_128.zip"
SAMPLE_PHOTOS = 8


def load_photos(data_dir: Path, size: int) -> np.ndarray:
    return load_image_zip(Path(data_dir) / PHOTO_ZIP, size)


def load_selfie_anime(data_dir: Path, size: int) -> np.ndarray:
    return load_image_zip(Path(data_dir) / SELFIE_ANIME_ZIP, size)


def photos_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, S, S, 3) -> float32 (N, 3, S, S) in [-1, 1]."""
    return np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)


class Selfie2AnimeTrainer(CycleGANTrainer):
    KIND = "selfie2anime"
    TITLE = "selfie -> anime CycleGAN"
    CONFIG = Selfie2AnimeConfig
    DATA_FILES = (PHOTO_ZIP, SELFIE_ANIME_ZIP)

    @classmethod
    def snapshot_kind(cls) -> str:
        return "selfie2anime-generator"

    # -- data -------------------------------------------------------------------------------

    def _load_data(self) -> None:
        if self._data_loaded:
            return
        c = self.config
        photos = load_photos(self.data_dir, c.image_size)
        anime = (load_image_zip(self.anime_source, c.image_size) if self.anime_source
                 else load_selfie_anime(self.data_dir, c.image_size))
        self.photos, self.holdout_photos = photos[:PHOTO_HOLDOUT_START], photos[PHOTO_HOLDOUT_START:]
        self.anime = anime[:SELFIE_ANIME_HOLDOUT_START][: c.anime_limit]
        self.holdout = self.holdout_photos
        self.fixed = self.holdout_photos[:: max(1, len(self.holdout_photos) // SAMPLE_PHOTOS)][:SAMPLE_PHOTOS]
        self._data_loaded = True
        log.info("data: %d photos and %d anime faces (held out: %d photos)", len(self.photos), len(self.anime),
                 len(self.holdout_photos))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.random.Generator]:
        c = self.config
        rng = np.random.default_rng([c.seed, step])
        a = photos_to_input(self.photos[rng.integers(len(self.photos), size=c.batch_size)])
        b = photos_to_input(self.anime[rng.integers(len(self.anime), size=c.batch_size)])
        if c.flip:
            fa, fb = rng.random(c.batch_size) < 0.5, rng.random(c.batch_size) < 0.5
            a[fa], b[fb] = a[fa][..., ::-1], b[fb][..., ::-1]
        if c.sharpness > 0:
            a, b = random_sharpness(a, rng, c.sharpness), random_sharpness(b, rng, c.sharpness)
        return (torch.from_numpy(np.ascontiguousarray(a)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(b)).to(self.device), rng)

    # -- held-out photos --------------------------------------------------------------------

    @torch.no_grad()
    def translate(self, photos: np.ndarray, batch: int = 16) -> np.ndarray:
        self.G_AB.eval()
        out = [self.G_AB(torch.from_numpy(photos_to_input(photos[i:i + batch])).to(self.device)).cpu().numpy()
               for i in range(0, len(photos), batch)]
        self.G_AB.train()
        return np.concatenate(out)

    @torch.no_grad()
    def evaluate(self, count: int) -> dict[str, float]:
        """Held-out photos: ``holdout_cycle_l1`` (photo -> anime -> photo, in [-1, 1] units),
        ``output_diversity`` (mean L1 between the anime faces of different photos)."""
        if count <= 0:
            return {}
        photos = self.holdout_photos[:count]
        fake = torch.from_numpy(self.translate(photos)).to(self.device)
        self.G_BA.eval()
        rec = torch.cat([self.G_BA(fake[i:i + 16]) for i in range(0, len(fake), 16)])
        self.G_BA.train()
        flat = fake.flatten(1)
        n = len(flat)
        div = torch.cdist(flat, flat, p=1) / flat.shape[1]
        x = torch.from_numpy(photos_to_input(photos)).to(self.device)
        return {"holdout_cycle_l1": F.l1_loss(rec, x).item(), "output_diversity": (div.sum() / max(n * (n - 1), 1)).item()}

    def write_sample(self) -> Path:
        """Two rows: held-out photos, and their anime faces."""
        faces = output_to_images(self.translate(self.fixed))
        grid = np.concatenate([np.concatenate(list(self.fixed), axis=1), np.concatenate(list(faces), axis=1)], axis=0)
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)
        return path


# -- the registry's evaluator and report of the selfie2anime kind --------------------------------

def photo_sampler(folder: Path, manifest, *, seed: int = 0, data_dir: Path | None = None,
                  providers: list[str] | None = None, threads: int = 0):
    """FID / KID samples: the anime faces of the held-out photos (already face crops, as the
    training photos are), in order (``seed`` is not used)."""
    from core.photo import PhotoModel
    from training.evaluate import Sampler

    if data_dir is None:
        raise ValueError("a photo model is measured on the held-out photos of the data folder: pass data_dir")
    model = PhotoModel(folder, providers or ["CPUExecutionProvider"], threads)
    photos = load_photos(Path(data_dir), model.spec.image_size)[PHOTO_HOLDOUT_START:]
    pos = 0

    def sample(n: int) -> np.ndarray:
        nonlocal pos
        chunk, pos = photos[pos:pos + n], pos + n
        return model.anime(chunk) if len(chunk) else np.zeros((0, 1, 1, 3), np.uint8)

    return Sampler(sample, len(photos), f"{len(photos)} held-out face photos")


def selfie_report(run_dir: Path, model_dir: Path, out: Path, *, data_dir: Path, columns: int = 8) -> dict:
    """A selfie2anime run's figures: loss curves, and a grid of held-out photos, their anime
    faces and the composites made by the served path (face found, cropped, blended back)."""
    from core.photo import PhotoModel
    from training.report import loss_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loss_curves(Path(run_dir), out / "loss_curves.png")
    model = PhotoModel(Path(model_dir), ["CPUExecutionProvider"])
    photos = load_photos(Path(data_dir), 256)[PHOTO_HOLDOUT_START:]
    rows: list[list[np.ndarray]] = [[], [], []]
    found = 0
    for im in photos:
        result = model.transform(Image.fromarray(im))
        if result is None:
            continue
        found += 1
        if len(rows[0]) < columns:
            rows[0].append(im)
            rows[1].append(np.asarray(Image.fromarray(result.anime).resize((256, 256), Image.Resampling.LANCZOS)))
            rows[2].append(result.composite)
    if rows[0]:
        Image.fromarray(np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)).save(out / "holdout_grid.png")
    return {"held_out_photos": len(photos), "faces_found": found}
