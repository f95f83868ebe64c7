"""The paired line-art model (the sketch->anime paper's first experiment, trained pix2pix-style):
each anime face and its own edge sketch are a pair, so the generator is told exactly which face a
drawing should become.

The edge sketch is the fixed Canny-style map of ``training.data.edge_sketches``, framed the way
the rasterizer frames a drawing (its ink's bounding box centred, its longest side scaled to the
frame less the padding), and the face gets the same framing, so a thin-pen drawing on the page
and a training sketch sit alike in the picture. A U-Net generator colours the sketch; a
conditional PatchGAN sees sketch and face side by side; L1 to the real face (``lambda_l1``)
keeps the colours and layout. Faces from ``anime_limit`` on are never trained on: the sample
grids and held-out metrics use them.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.configs.translation import LineArtConfig
from core.drawing import SPACE
from core.preprocess import bitmap_to_input, output_to_images
from training.cyclegan import PatchDiscriminator, UNetGenerator
from training.data import edge_sketches, load_anime, load_anime_faces
from training.translation import TranslationTrainer, adversarial

log = logging.getLogger(__name__)

HELDOUT_START = 13400   # the drawing evaluation's held-out anime faces start here
SAMPLE_FACES = 16


def framed_pairs(faces: np.ndarray, config: LineArtConfig, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(sketches (N, S, S) uint8 ink on 0, faces (N, S, S, 3)) with each pair framed as the
    rasterizer frames a drawing of the sketch's lines."""
    size = config.image_size
    sketches = np.concatenate([edge_sketches(faces[i:i + chunk], size, config.edge_keep) for i in range(0, len(faces), chunk)])
    out_s = np.empty_like(sketches)
    out_f = np.empty_like(faces)
    drawn = size * 255.0 / (SPACE + 2 * config.padding + config.line_diameter)  # the longest side, in pixels
    pad = size // 2
    for i, (sk, face) in enumerate(zip(sketches, faces)):
        ys, xs = np.nonzero(sk > 127)
        if len(xs) < 2:
            out_s[i], out_f[i] = sk, face
            continue
        extent = max(xs.max() - xs.min(), ys.max() - ys.min(), 1)
        s = drawn / extent
        cx, cy = (xs.max() + xs.min()) / 2 + 0.5 + pad, (ys.max() + ys.min()) / 2 + 0.5 + pad
        # Output pixel (u, v) reads input (cx + (u - size/2) / s, cy + (v - size/2) / s).
        affine = (1 / s, 0, cx - size / 2 / s, 0, 1 / s, cy - size / 2 / s)
        f = Image.fromarray(np.pad(face, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
        k = Image.fromarray(np.pad(sk, pad))
        out_f[i] = np.asarray(f.transform((size, size), Image.Transform.AFFINE, affine, Image.Resampling.BILINEAR))
        out_s[i] = np.asarray(k.transform((size, size), Image.Transform.AFFINE, affine, Image.Resampling.BILINEAR))
    return out_s, out_f


def thicker(sketch: np.ndarray) -> np.ndarray:
    """Lines one pixel thicker (a 2x2 maximum)."""
    p = np.pad(sketch, ((0, 1), (0, 1)))
    return np.maximum.reduce([p[:-1, :-1], p[1:, :-1], p[:-1, 1:], p[1:, 1:]])


class LineArtTrainer(TranslationTrainer):
    KIND = "lineart"
    TITLE = "line art"
    CONFIG = LineArtConfig
    GENERATORS = ("G",)
    DISCRIMINATORS = ("D",)
    EXPORTED = ("G",)

    @classmethod
    def build_networks(cls, c: LineArtConfig) -> dict[str, nn.Module]:
        return {"G": UNetGenerator(3, 3, c.ngf, c.unet_depth),
                "D": PatchDiscriminator(6, c.ndf, minibatch_std=c.minibatch_discrimination, minibatch_kind=c.minibatch_kind)}

    @classmethod
    def exported_network(cls, config: LineArtConfig, nets: dict[str, nn.Module]) -> nn.Module:
        return nets["G"]

    # -- data: pairs ------------------------------------------------------------------------

    def load_sketches(self) -> None:
        c = self.config
        self.pair_sketches, self.anime = framed_pairs(self.anime, c)
        held = load_anime_faces(self.data_dir, c.image_size)[HELDOUT_START:HELDOUT_START + max(SAMPLE_FACES, c.eval_count)] \
            if self.anime_source is None else load_anime(self.data_dir, self.anime_source, c.image_size)[-SAMPLE_FACES:]
        self.held_sketches, self.held_faces = framed_pairs(held, c)
        self.fixed = self.held_sketches[:SAMPLE_FACES]
        log.info("data: %d face / line-art pairs, %d held out", len(self.anime), len(held))

    def _load_data(self) -> None:
        if self._data_loaded:
            return
        c = self.config
        self.anime = load_anime(self.data_dir, self.anime_source, c.image_size, c.anime_limit)
        self.load_sketches()
        self.holdout = self.held_sketches
        self._data_loaded = True

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.random.Generator]:
        c = self.config
        rng = np.random.default_rng([c.seed, step])
        idx = rng.integers(len(self.anime), size=c.batch_size)
        sk = self.pair_sketches[idx].copy()
        for k in np.flatnonzero(rng.random(c.batch_size) < c.thicken):
            sk[k] = thicker(sk[k])
        a = bitmap_to_input(sk, c.image_size)
        b = self.anime[idx].astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
        if c.flip:
            f = rng.random(c.batch_size) < 0.5
            a[f], b[f] = a[f][..., ::-1], b[f][..., ::-1]
        return (torch.from_numpy(np.ascontiguousarray(a)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(b)).to(self.device), rng)

    # -- one step ---------------------------------------------------------------------------

    def train_step(self, step: int) -> dict[str, float]:
        c = self.config
        sketch, real, rng = self.batch(step)
        self.freeze_discriminators()
        self.opt_G.zero_grad(set_to_none=True)
        fake = self.G(sketch)
        loss_gan = adversarial(self.D(torch.cat([sketch, fake], 1)), 1.0, c.gan_loss)
        loss_l1 = F.l1_loss(fake, real) * c.lambda_l1
        loss_G = loss_gan + loss_l1
        loss_G.backward()
        self.opt_G.step()
        (d,) = self.discriminator_step([(self.D, torch.cat([sketch, real], 1), torch.cat([sketch, fake], 1), self.pool_A)], rng)
        return {"G": loss_G.item(), "G_gan": loss_gan.item(), "l1": loss_l1.item(), "D": d}

    # -- held-out faces ---------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, count: int) -> dict[str, float]:
        """Held-out faces' own line art: ``holdout_l1`` (mean |face - real face| in [-1, 1] units)
        and ``output_diversity`` (mean L1 between the faces of different drawings)."""
        if count <= 0:
            return {}
        fake = torch.from_numpy(self.translate(self.held_sketches[:count]))
        real = torch.from_numpy(self.held_faces[:count].astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)
        flat = fake.flatten(1)
        n = len(flat)
        div = torch.cdist(flat, flat, p=1) / flat.shape[1]
        return {"holdout_l1": F.l1_loss(fake, real).item(), "output_diversity": (div.sum() / max(n * (n - 1), 1)).item()}

    def write_sample(self):
        """Rows of three: the held-out faces' line art, the model's faces, the real faces."""
        from training.translation import sample_grid

        outputs = output_to_images(self.translate(self.fixed))
        grid = np.asarray(sample_grid(self.fixed, outputs))
        real = self.held_faces[:SAMPLE_FACES]
        size = outputs.shape[1]
        rows = [grid[i * size:(i + 1) * size] for i in range(grid.shape[0] // size)]
        cols = grid.shape[1] // size
        out = []
        for r in range(0, len(rows), 2):
            part = real[(r // 2) * cols:(r // 2 + 1) * cols]
            out += [rows[r], rows[r + 1], np.concatenate(list(part), axis=1)]
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(out, axis=0)).save(path)
        return path
