"""The training framework every drawing -> anime-face model shares: data, batches, checkpoints,
resume, sample grids, held-out metrics and the loop. A kind (CycleGAN, DiscoGAN, UNIT, the paired
line-art model) is a ``TranslationTrainer`` subclass that names its networks, which of them the
generators' and the discriminators' optimisers own, which network turns a sketch into a face,
and what one step does.

Reproducibility: every step draws its data and pool decisions from a generator seeded by
(seed, step), so a run resumed from a checkpoint takes exactly the step an uninterrupted run
would have taken. A checkpoint holds every network, both optimisers' states, the pools, step,
elapsed time, config, the kind and a format version, and loads with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.configs.translation import TranslationConfig, UnpairedConfig
from core.preprocess import bitmap_to_input, output_to_images
from core.progress import Progress, ProgressCallback, TrainingCancelled
from training.checkpoints import atomic_save, changed_fields, read_checkpoint
from training.cyclegan import init_weights
from training.data import ANIME_ZIP, QUICKDRAW_NPY, SketchSource, edge_sketches, load_anime, load_quickdraw, render_doodle
from training.doodles import synthetic_doodle
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


def schedule_change_is_seamless(saved: TranslationConfig, new: TranslationConfig, step: int) -> bool:
    """A run may be lengthened or shortened on resume when only ``steps``/``decay_steps`` differ
    and every step taken so far had the same learning rate under both configs: every other
    input of a step (its data, its random draws) depends on the step number only, so the
    resumed run is exactly the run the new config would have made from the start."""
    a, b = saved.model_dump(), new.model_dump()
    if {k for k in a if a[k] != b[k]} - {"steps", "decay_steps"} or step > new.steps:
        return False
    return all(saved.lr_at(s) == new.lr_at(s) for s in range(step))


def make_optimizer(c: TranslationConfig, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
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


def fixed_sample_inputs(data_dir: Path, config: TranslationConfig, n_real: int = 8, n_synth: int = 8) -> np.ndarray:
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




def adversarial(pred: torch.Tensor, target: float, kind: str) -> torch.Tensor:
    """The GAN loss of discriminator outputs against a target label: least squares (LSGAN) or
    cross-entropy on logits (the original GAN loss, DiscoGAN's)."""
    want = torch.full_like(pred, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(pred, want)
    return F.mse_loss(pred, want)


class TranslationTrainer:
    """Owns the networks, optimisers, pools and the loop. ``run()`` trains to ``config.steps``.

    A subclass sets ``KIND`` (the registry's kind name, written into checkpoints), ``TITLE``,
    ``CONFIG``, ``GENERATORS``/``DISCRIMINATORS`` (attribute names of its networks, as the
    optimisers own them) and ``EXPORTED`` (the networks a snapshot keeps), and defines
    ``build_networks``, ``train_step`` and ``sketch_to_anime``."""

    KIND: ClassVar[str]
    TITLE: ClassVar[str]
    CONFIG: ClassVar[type[TranslationConfig]]
    GENERATORS: ClassVar[tuple[str, ...]]
    DISCRIMINATORS: ClassVar[tuple[str, ...]]
    EXPORTED: ClassVar[tuple[str, ...]]
    DATA_FILES: ClassVar[tuple[Path, ...]] = (ANIME_ZIP, QUICKDRAW_NPY)  # recorded with their sha256 in exports

    def __init__(self, config: TranslationConfig, run_dir: Path, data_dir: Path, *, threads: int = 0,
                 device: str = "cpu", anime_source: Path | None = None):
        """``anime_source``: a zip of images for the anime side (default: the data folder's
        anime faces); the sketch side always comes from the data folder."""
        if not isinstance(config, self.CONFIG):
            raise TypeError(f"a {self.TITLE} run takes a {self.CONFIG.__name__}, not a {type(config).__name__}")
        self.config = config
        self.anime_source = Path(anime_source) if anime_source else None
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        if threads:
            torch.set_num_threads(threads)
        seed_everything(config.seed)
        self.device = torch.device(device)
        for name, net in self.build_networks(config).items():
            init_weights(net)
            setattr(self, name, net.to(self.device))
        c = config
        self.opt_G = make_optimizer(c, self._params(self.GENERATORS), c.lr)
        self.opt_D = make_optimizer(c, self._params(self.DISCRIMINATORS), c.lr_d or c.lr)
        pool = getattr(c, "pool_size", 0)
        self.pool_A = ImagePool(pool)
        self.pool_B = ImagePool(pool)
        self.step = 0
        self.elapsed = 0.0
        self._data_loaded = False

    def _params(self, names: tuple[str, ...]) -> list[nn.Parameter]:
        seen: dict[int, nn.Parameter] = {}
        for name in names:  # shared layers (UNIT) belong to two networks: each parameter once
            for p in getattr(self, name).parameters():
                seen.setdefault(id(p), p)
        return list(seen.values())

    @property
    def networks(self) -> tuple[str, ...]:
        return self.GENERATORS + self.DISCRIMINATORS

    # -- what a kind defines ----------------------------------------------------------------

    @classmethod
    def build_networks(cls, config: TranslationConfig) -> dict[str, nn.Module]:
        raise NotImplementedError

    @classmethod
    def exported_network(cls, config: TranslationConfig, nets: dict[str, nn.Module]) -> nn.Module:
        """The sketch -> anime network made of the ``EXPORTED`` networks."""
        raise NotImplementedError

    def train_step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def reconstruct(self, fake: torch.Tensor) -> torch.Tensor | None:
        """A face taken back to the sketch domain (the held-out cycle L1), or None."""
        return None

    def sketch_to_anime(self) -> nn.Module:
        return self.exported_network(self.config, {n: getattr(self, n) for n in self.EXPORTED})

    @classmethod
    def generator_from_state(cls, state: dict) -> tuple[nn.Module, TranslationConfig]:
        """The exported sketch -> anime network of a checkpoint or snapshot, in eval mode."""
        config = cls.CONFIG.model_validate(state["config"])
        nets = cls.build_networks(config)
        for name in cls.EXPORTED:
            nets[name].load_state_dict(state[name])
        net = cls.exported_network(config, {n: nets[n] for n in cls.EXPORTED})
        return net.eval(), config

    # -- data -------------------------------------------------------------------------------

    def _load_data(self) -> None:
        if self._data_loaded:
            return
        c = self.config
        self.anime = load_anime(self.data_dir, self.anime_source, c.image_size, c.anime_limit)
        self.load_sketches()
        self.holdout = load_quickdraw(self.data_dir, "holdout")
        self.fixed = fixed_sample_inputs(self.data_dir, c)
        self._data_loaded = True

    def load_sketches(self) -> None:
        """The sketch domain of an unpaired run: its mix of real, synthetic and edge sketches."""
        c = self.config
        assert isinstance(c, UnpairedConfig)
        qd = load_quickdraw(self.data_dir, "train") if c.mix.quickdraw > 0 else None
        if qd is not None and c.raster_size != 28:
            qd = np.stack([np.asarray(Image.fromarray(q).resize((c.raster_size,) * 2, Image.Resampling.BILINEAR)) for q in qd])
        edges = None
        if c.mix.edges > 0:
            small = self.anime if c.image_size == 64 else load_anime(self.data_dir, self.anime_source, 64, c.anime_limit)
            edges = edge_sketches(small, c.raster_size)
        self.sketches = SketchSource(c.mix, qd, edges, c.raster_size)
        log.info("data: %d anime faces, sketch mix %s", len(self.anime), c.mix.model_dump())

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

    def set_learning_rates(self, step: int) -> None:
        c = self.config
        for g in self.opt_G.param_groups:
            g["lr"] = c.lr_at(step, c.lr)
        for g in self.opt_D.param_groups:
            g["lr"] = c.lr_at(step, c.lr_d or c.lr)

    def labels(self) -> tuple[float, float]:
        return (0.9, 0.1) if self.config.fuzzy_labels else (1.0, 0.0)

    def discriminator_step(self, pairs: list[tuple[nn.Module, torch.Tensor, torch.Tensor, "ImagePool"]],
                           rng: np.random.Generator) -> list[float]:
        """One update of the discriminators: each judges its real images against (pooled) fakes."""
        real_t, fake_t = self.labels()
        for name in self.DISCRIMINATORS:
            getattr(self, name).requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        losses = []
        for D, real, fake, pool in pairs:
            old = pool.query(fake, rng)
            loss = 0.5 * (adversarial(D(real), real_t, self.config.gan_loss) + adversarial(D(old), fake_t, self.config.gan_loss))
            loss.backward()
            losses.append(loss.item())
        self.opt_D.step()
        return losses

    def freeze_discriminators(self) -> None:
        for name in self.DISCRIMINATORS:
            getattr(self, name).requires_grad_(False)

    # -- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def save_checkpoint(self) -> Path:
        state = {
            "format_version": CHECKPOINT_FORMAT, "kind": self.KIND, "config": self.config.model_dump(mode="json"),
            "step": self.step, "elapsed": self.elapsed,
            **{name: getattr(self, name).state_dict() for name in self.networks},
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "pool_A": self.pool_A.state(), "pool_B": self.pool_B.state(),
        }
        atomic_save(state, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | None = None) -> bool:
        path = Path(path) if path else self.checkpoint_path
        state = read_checkpoint(path, self.KIND, CHECKPOINT_FORMAT, title=self.TITLE)
        if state is None:
            return False
        saved = self.CONFIG.model_validate(state["config"])
        if saved != self.config:
            if not schedule_change_is_seamless(saved, self.config, int(state["step"])):
                raise ValueError(f"checkpoint {path} was made with a different config "
                                 f"(differs in: {changed_fields(saved, self.config)})")
            log.warning("resuming with a new length (steps %d -> %d, decay_steps %d -> %d): the learning rate of "
                        "every step done so far is the same under both, so the run is the one the new config makes",
                        saved.steps, self.config.steps, saved.decay_steps, self.config.decay_steps)
        for name in (*self.networks, "opt_G", "opt_D"):
            getattr(self, name).load_state_dict(state[name])
        size = self.pool_A.size
        self.pool_A = ImagePool(size, state["pool_A"].to(self.device) if len(state["pool_A"]) else None)
        self.pool_B = ImagePool(size, state["pool_B"].to(self.device) if len(state["pool_B"]) else None)
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    @classmethod
    def snapshot_kind(cls) -> str:
        return f"{cls.KIND}-generator"

    def save_snapshot(self) -> Path:
        path = self.run_dir / "snapshots" / f"step_{self.step:07d}.pt"
        atomic_save(
            {"format_version": CHECKPOINT_FORMAT, "kind": self.snapshot_kind(), "step": self.step,
             "config": self.config.model_dump(mode="json"),
             **{name: getattr(self, name).state_dict() for name in self.EXPORTED}},
            path,
        )
        return path

    # -- evaluation and samples -------------------------------------------------------------

    @torch.no_grad()
    def translate(self, bitmaps: np.ndarray, batch: int = 32) -> np.ndarray:
        net = self.sketch_to_anime()
        net.eval()
        out = []
        for i in range(0, len(bitmaps), batch):
            x = torch.from_numpy(bitmap_to_input(bitmaps[i : i + batch], self.config.image_size)).to(self.device)
            out.append(net(x).cpu().numpy())
        net.train()
        return np.concatenate(out)

    @torch.no_grad()
    def evaluate(self, count: int) -> dict[str, float]:
        """Held-out real doodles: how much outputs differ, and how well the cycle returns them.

        ``output_diversity``: mean L1 between outputs for different doodles (near 0 means mode
        collapse: every drawing gives the same face). ``holdout_cycle_l1`` (unpaired kinds): mean
        |back(forward(x)) - x| in [-1, 1] units (lower keeps more of the drawing).
        """
        if count <= 0:
            return {}
        sketches = self.holdout[:count]
        fake = torch.from_numpy(self.translate(sketches)).to(self.device)
        flat = fake.flatten(1)
        div = torch.cdist(flat, flat, p=1) / flat.shape[1]
        n = len(flat)
        out = {"output_diversity": (div.sum() / max(n * (n - 1), 1)).item()}
        for name in self.networks:
            getattr(self, name).eval()
        rec = self.reconstruct(fake)
        for name in self.networks:
            getattr(self, name).train()
        if rec is not None:
            x = torch.from_numpy(bitmap_to_input(sketches, self.config.image_size)).to(self.device)
            out = {"holdout_cycle_l1": F.l1_loss(rec, x).item(), **out}
        return out

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
            self.set_learning_rates(self.step)
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
