"""CycleGAN training: sketch domain (A) <-> anime faces (B).

Losses as in the papers: LSGAN adversarial loss, cycle L1 (lambda_cycle), identity L1
(lambda_identity * lambda_cycle), a 50-image history pool for the discriminators, Adam (lr 2e-4,
beta1 0.5), constant learning rate then linear decay to zero.

Reproducibility: every step draws its data and pool decisions from a generator seeded by
(seed, step), so a run resumed from a checkpoint takes exactly the step an uninterrupted run
would have taken. A checkpoint holds weights, optimizer state, pools, step, elapsed time, config
and a format version, and loads with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.preprocess import bitmap_to_input, output_to_images
from training.cyclegan import PatchDiscriminator, ResnetGenerator, init_weights
from core.configs.cyclegan import CycleGANConfig, MixConfig  # noqa: F401 - re-exported
from training.data import (
    SketchSource,
    edge_sketches,
    load_anime,
    load_quickdraw,
    render_doodle,
)
from core.progress import Progress, ProgressCallback, TrainingCancelled
from training.doodles import synthetic_doodle
from training.checkpoints import atomic_save, changed_fields, read_checkpoint
from training.runinfo import record_session

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


class ImagePool:
    """History of generated images (Shrivastava et al.): the discriminator sees old fakes too."""

    def __init__(self, size: int, images: torch.Tensor | None = None):
        self.size = size
        self.images: list[torch.Tensor] = list(images) if images is not None else []

    def query(self, batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch.detach()  # the discriminators' step must not reach back into the generators
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif rng.random() > 0.5:
                i = int(rng.integers(self.size))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state(self) -> torch.Tensor:
        return torch.stack(self.images) if self.images else torch.empty(0)


def _drop_log_after(path: Path, step: int) -> None:
    """Remove the lines of a JSON-lines log whose step is after ``step`` (work lost in a crash)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(keep) != len(lines):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(path)


def schedule_change_is_seamless(saved: CycleGANConfig, new: CycleGANConfig, step: int) -> bool:
    """A run may be lengthened or shortened on resume when only ``steps``/``decay_steps`` differ
    and every step taken so far had the same learning rate under both configs: every other
    input of a step (its data, its random draws) depends on the step number only, so the
    resumed run is exactly the run the new config would have made from the start."""
    a, b = saved.model_dump(), new.model_dump()
    if {k for k in a if a[k] != b[k]} - {"steps", "decay_steps"} or step > new.steps:
        return False
    return all(saved.lr_at(s) == new.lr_at(s) for s in range(step))


def make_optimizer(c: CycleGANConfig, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=c.momentum, weight_decay=c.weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=(c.beta1, c.beta2), weight_decay=c.weight_decay)


def random_sharpness(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """With probability ``p`` per image, blend with a 3x3-smoothed copy by a factor in [0.5, 2]:
    below 1 blurs, above 1 sharpens (as image-editing "sharpness" does). x: (N, C, H, W) in [-1, 1]."""
    on = rng.random(len(x)) < p
    factors = rng.uniform(0.5, 2.0, len(x))
    if not on.any():
        return x
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = x.shape[2:]
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
    smooth = sum(kernel[i, j] * pad[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))
    out = x.copy()
    for k in np.flatnonzero(on):
        out[k] = np.clip(smooth[k] + factors[k] * (x[k] - smooth[k]), -1.0, 1.0)
    return out


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fixed_sample_inputs(data_dir: Path, config: CycleGANConfig, n_real: int = 8, n_synth: int = 8) -> np.ndarray:
    """The fixed sketches every sample grid shows: held-out real doodles and seeded synthetic ones."""
    real = load_quickdraw(data_dir, "holdout")[:: max(1, 400 // n_real)][:n_real]
    rng = np.random.default_rng(12345)
    synth = np.stack([render_doodle(synthetic_doodle(rng), config.raster_size) for _ in range(n_synth)])
    if real.shape[1] != config.raster_size:
        real = np.stack([np.asarray(Image.fromarray(r).resize((config.raster_size,) * 2, Image.Resampling.BILINEAR)) for r in real])
    return np.concatenate([real, synth])


def sample_grid(sketches: np.ndarray, outputs: np.ndarray, columns: int = 8) -> Image.Image:
    """Pairs of rows: sketches (as dark ink on white) above the anime faces made from them."""
    size = outputs.shape[1]
    sk = [np.asarray(Image.fromarray(255 - s).resize((size, size), Image.Resampling.BILINEAR).convert("RGB")) for s in sketches]
    rows = []
    for start in range(0, len(outputs), columns):
        rows.append(np.concatenate(sk[start : start + columns], axis=1))
        rows.append(np.concatenate(list(outputs[start : start + columns]), axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


class CycleGANTrainer:
    """Owns the networks, optimisers, pools and the loop. ``run()`` trains to ``config.steps``."""

    def __init__(self, config: CycleGANConfig, run_dir: Path, data_dir: Path, *, threads: int = 0, device: str = "cpu",
                 anime_source: Path | None = None):
        """``anime_source``: a zip of images for the anime side (default: the data folder's
        anime faces); the sketch side always comes from the data folder."""
        self.config = config
        self.anime_source = Path(anime_source) if anime_source else None
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        if threads:
            torch.set_num_threads(threads)
        seed_everything(config.seed)
        c = config
        self.G_AB = ResnetGenerator(3, 3, c.ngf, c.n_blocks)  # sketch -> anime
        self.G_BA = ResnetGenerator(3, 3, c.ngf, c.n_blocks)  # anime -> sketch
        self.D_A = PatchDiscriminator(3, c.ndf, minibatch_std=c.minibatch_discrimination)
        self.D_B = PatchDiscriminator(3, c.ndf, minibatch_std=c.minibatch_discrimination)
        self.device = torch.device(device)
        for net in (self.G_AB, self.G_BA, self.D_A, self.D_B):
            init_weights(net)
            net.to(self.device)
        self.opt_G = make_optimizer(c, list(self.G_AB.parameters()) + list(self.G_BA.parameters()), c.lr)
        self.opt_D = make_optimizer(c, list(self.D_A.parameters()) + list(self.D_B.parameters()), c.lr_d or c.lr)
        self.pool_A = ImagePool(c.pool_size)
        self.pool_B = ImagePool(c.pool_size)
        self.step = 0
        self.elapsed = 0.0
        self._data_loaded = False

    # -- data -------------------------------------------------------------------------------

    def _load_data(self) -> None:
        if self._data_loaded:
            return
        c = self.config
        def anime(size: int) -> np.ndarray:
            return load_anime(self.data_dir, self.anime_source, size, c.anime_limit)

        faces = anime(c.image_size)
        self.anime = faces
        qd = load_quickdraw(self.data_dir, "train") if c.mix.quickdraw > 0 else None
        if qd is not None and c.raster_size != 28:
            qd = np.stack([np.asarray(Image.fromarray(q).resize((c.raster_size,) * 2, Image.Resampling.BILINEAR)) for q in qd])
        edges = None
        if c.mix.edges > 0:
            small = faces if c.image_size == 64 else anime(64)
            edges = edge_sketches(small, c.raster_size)
        self.sketches = SketchSource(c.mix, qd, edges, c.raster_size)
        self.holdout = load_quickdraw(self.data_dir, "holdout")
        self.fixed = fixed_sample_inputs(self.data_dir, c)
        self._data_loaded = True
        log.info("data: %d anime faces, sketch mix %s", len(faces), c.mix.model_dump())

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.random.Generator]:
        """The (sketch, anime) batch of a step, and the step's generator for later draws."""
        c = self.config
        rng = np.random.default_rng([c.seed, step])
        a = bitmap_to_input(self.sketches.sample(rng, c.batch_size), c.image_size)
        b = self.anime[rng.integers(len(self.anime), size=c.batch_size)].astype(np.float32) / 127.5 - 1.0
        b = b.transpose(0, 3, 1, 2)
        if c.flip:
            fa = rng.random(c.batch_size) < 0.5
            fb = rng.random(c.batch_size) < 0.5
            a[fa] = a[fa][..., ::-1]
            b[fb] = b[fb][..., ::-1]
        if c.sharpness > 0:  # drawn only when on, so runs without it keep their random stream
            a = random_sharpness(a, rng, c.sharpness)
            b = random_sharpness(b, rng, c.sharpness)
        return (torch.from_numpy(np.ascontiguousarray(a)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(b)).to(self.device), rng)

    # -- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def save_checkpoint(self) -> Path:
        state = {
            "format_version": CHECKPOINT_FORMAT,
            "kind": "cyclegan",
            "config": self.config.model_dump(mode="json"),
            "step": self.step,
            "elapsed": self.elapsed,
            "G_AB": self.G_AB.state_dict(),
            "G_BA": self.G_BA.state_dict(),
            "D_A": self.D_A.state_dict(),
            "D_B": self.D_B.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "pool_A": self.pool_A.state(),
            "pool_B": self.pool_B.state(),
        }
        atomic_save(state, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | None = None) -> bool:
        path = Path(path) if path else self.checkpoint_path
        state = read_checkpoint(path, "cyclegan", CHECKPOINT_FORMAT, title="CycleGAN")
        if state is None:
            return False
        saved = CycleGANConfig.model_validate(state["config"])
        if saved != self.config:
            if not schedule_change_is_seamless(saved, self.config, int(state["step"])):
                raise ValueError(f"checkpoint {path} was made with a different config "
                                 f"(differs in: {changed_fields(saved, self.config)})")
            log.warning("resuming with a new length (steps %d -> %d, decay_steps %d -> %d): the learning rate of "
                        "every step done so far is the same under both, so the run is the one the new config makes",
                        saved.steps, self.config.steps, saved.decay_steps, self.config.decay_steps)
        for name in ("G_AB", "G_BA", "D_A", "D_B", "opt_G", "opt_D"):
            getattr(self, name).load_state_dict(state[name])
        self.pool_A = ImagePool(self.config.pool_size, state["pool_A"].to(self.device) if len(state["pool_A"]) else None)
        self.pool_B = ImagePool(self.config.pool_size, state["pool_B"].to(self.device) if len(state["pool_B"]) else None)
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def save_snapshot(self) -> Path:
        path = self.run_dir / "snapshots" / f"step_{self.step:07d}.pt"
        atomic_save(
            {"format_version": CHECKPOINT_FORMAT, "kind": "cyclegan-G_AB", "step": self.step,
             "config": self.config.model_dump(mode="json"), "G_AB": self.G_AB.state_dict()},
            path,
        )
        return path

    # -- one step ---------------------------------------------------------------------------

    def train_step(self, step: int) -> dict[str, float]:
        c = self.config
        for g in self.opt_G.param_groups:
            g["lr"] = c.lr_at(step, c.lr)
        for g in self.opt_D.param_groups:
            g["lr"] = c.lr_at(step, c.lr_d or c.lr)
        real_t, fake_t = (0.9, 0.1) if c.fuzzy_labels else (1.0, 0.0)
        real_A, real_B, rng = self.batch(step)
        # Generators.
        for d in (self.D_A, self.D_B):
            d.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        fake_B = self.G_AB(real_A)
        rec_A = self.G_BA(fake_B)
        fake_A = self.G_BA(real_B)
        rec_B = self.G_AB(fake_A)
        pred_fB, pred_fA = self.D_B(fake_B), self.D_A(fake_A)
        loss_gan = F.mse_loss(pred_fB, torch.ones_like(pred_fB)) + F.mse_loss(pred_fA, torch.ones_like(pred_fA))
        loss_cycle = (F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B)) * c.lambda_cycle
        if c.lambda_identity > 0:
            loss_idt = (F.l1_loss(self.G_AB(real_B), real_B) + F.l1_loss(self.G_BA(real_A), real_A)) * c.lambda_cycle * c.lambda_identity
        else:
            loss_idt = torch.zeros(())
        loss_G = loss_gan + loss_cycle + loss_idt
        loss_G.backward()
        self.opt_G.step()
        # Discriminators, on pooled fakes.
        for d in (self.D_A, self.D_B):
            d.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        losses_D = []
        for D, real, fake, pool in ((self.D_A, real_A, fake_A, self.pool_A), (self.D_B, real_B, fake_B, self.pool_B)):
            old = pool.query(fake, rng)
            p_real, p_fake = D(real), D(old)
            loss = 0.5 * (F.mse_loss(p_real, torch.full_like(p_real, real_t)) + F.mse_loss(p_fake, torch.full_like(p_fake, fake_t)))
            loss.backward()
            losses_D.append(loss.item())
        self.opt_D.step()
        return {
            "G": loss_G.item(), "G_gan": loss_gan.item(), "cycle": loss_cycle.item(),
            "identity": loss_idt.item(), "D_A": losses_D[0], "D_B": losses_D[1],
        }

    # -- evaluation and samples -------------------------------------------------------------

    @torch.no_grad()
    def translate(self, bitmaps: np.ndarray, batch: int = 32) -> np.ndarray:
        self.G_AB.eval()
        out = []
        for i in range(0, len(bitmaps), batch):
            x = torch.from_numpy(bitmap_to_input(bitmaps[i : i + batch], self.config.image_size)).to(self.device)
            out.append(self.G_AB(x).cpu().numpy())
        self.G_AB.train()
        return np.concatenate(out)

    @torch.no_grad()
    def evaluate(self, count: int) -> dict[str, float]:
        """Held-out real doodles: how well the cycle returns them, and how much outputs differ.

        ``holdout_cycle_l1``: mean |G_BA(G_AB(x)) - x| in [-1, 1] units (lower keeps more of the
        drawing). ``output_diversity``: mean L1 between outputs for different doodles (near 0
        means mode collapse: every drawing gives the same face).
        """
        if count <= 0:
            return {}
        sketches = self.holdout[:count]
        x = torch.from_numpy(bitmap_to_input(sketches, self.config.image_size)).to(self.device)
        self.G_AB.eval(), self.G_BA.eval()
        fake = torch.cat([self.G_AB(x[i : i + 32]) for i in range(0, len(x), 32)])
        rec = torch.cat([self.G_BA(fake[i : i + 32]) for i in range(0, len(fake), 32)])
        self.G_AB.train(), self.G_BA.train()
        flat = fake.flatten(1)
        div = torch.cdist(flat, flat, p=1) / flat.shape[1]
        n = len(flat)
        return {
            "holdout_cycle_l1": F.l1_loss(rec, x).item(),
            "output_diversity": (div.sum() / max(n * (n - 1), 1)).item(),
        }

    def write_sample(self) -> Path:
        outputs = output_to_images(self.translate(self.fixed))
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        sample_grid(self.fixed, outputs).save(path)
        return path

    # -- the loop ---------------------------------------------------------------------------

    def run(self, callback: ProgressCallback | None = None, *, resume: bool = True, stop_at: int | None = None) -> dict[str, float]:
        """Train until ``config.steps`` (or ``stop_at``); returns the final held-out metrics."""
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(c.model_dump(mode="json"), indent=2))
        if resume:
            self.load_checkpoint()
        record_session(self.run_dir, self.step, self.device)
        self._load_data()
        end = min(c.steps, stop_at) if stop_at else c.steps
        log_path = self.run_dir / "loss_log.jsonl"
        for path in (log_path, self.run_dir / "metrics_log.jsonl"):
            _drop_log_after(path, self.step)  # steps after the checkpoint are about to be redone
        acc: dict[str, float] = {}
        n_acc = 0
        steps_per_epoch = max(1, len(self.anime) // c.batch_size)
        t_last = time.perf_counter()
        rate_steps, rate_time = 0, 0.0
        while self.step < end:
            losses = self.train_step(self.step)
            self.step += 1
            now = time.perf_counter()
            dt = now - t_last
            t_last = now
            self.elapsed += dt
            rate_steps, rate_time = rate_steps + 1, rate_time + dt
            for k, v in losses.items():
                acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            sample = ckpt = None
            metrics: dict[str, float] = {}
            averaged = {k: v / n_acc for k, v in acc.items()}
            if self.step % c.log_every == 0 or self.step == end:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": self.step, "elapsed": round(self.elapsed, 2), "lr": c.lr_at(self.step - 1), **averaged}) + "\n")
                acc, n_acc = {}, 0
            if self.step % c.sample_every == 0 or self.step == end:
                sample = self.write_sample()
                metrics = self.evaluate(c.eval_count)
                if metrics:
                    with open(self.run_dir / "metrics_log.jsonl", "a") as f:
                        f.write(json.dumps({"step": self.step, **metrics}) + "\n")
            if c.snapshot_every and self.step % c.snapshot_every == 0:
                self.save_snapshot()
            if self.step % c.checkpoint_every == 0 or self.step == end:
                ckpt = self.save_checkpoint()
            rate = rate_time / rate_steps
            progress = Progress(
                step=self.step, total_steps=c.steps, epoch=self.step / steps_per_epoch,
                elapsed_s=self.elapsed, eta_s=rate * (c.steps - self.step), losses=averaged,
                sample_path=sample, checkpoint_path=ckpt, metrics=metrics,
            )
            if callback is not None:
                try:
                    callback(progress)
                except TrainingCancelled:
                    self.save_checkpoint()
                    raise
        final = self.evaluate(len(self.holdout))
        (self.run_dir / "metrics.json").write_text(json.dumps({"step": self.step, **final}, indent=2))
        return final
