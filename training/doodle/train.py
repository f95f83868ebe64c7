"""Training a doodle encoder onto a frozen StyleGAN prior.

Three stages, one step counter (``config.total_steps``), one progress callback:

1. **Walks** (``walk_steps`` each): the prior's directions for the things a drawing can say
   (``training.prior.directions``). A walk is checkpointed when it is done; a run stopped in
   the middle of one learns that walk again.
2. **Encoder** (``steps``): the CNN learns to read the attributes of synthetic doodles
   (``training.doodle.attributes``), whose content is known, from their rendered bitmaps; the
   pool is drawn once, seeded, and cached in the run folder. Each step's batch and
   augmentation come from (seed, step), so a resumed run takes the steps an uninterrupted one
   would have. The held-out tail of the pool gives the R2 of every attribute.
3. **Identity** (at the end): the identity head is fitted on the encoder's features of the
   real training doodles (never the held-out ones).

The prior is read from its export (``training.prior.from_onnx``); its torch weights are not
trained. A checkpoint holds the walks learned so far, the encoder, its optimiser, the identity
head once fitted, step, elapsed time, kind, config and a format version.
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

from core.configs.encoder import DoodleEncoderConfig
from core.preprocess import bitmap_to_input, output_to_images
from training.data import load_quickdraw
from training.doodle.attributes import ATTRIBUTES, BINARY, synthetic_pool
from training.doodle.encoder import DoodleEncoder, EncoderGraph, IdentityHead
from training.doodle.faces import faces_from_codes, walk_coefficients
from training.prior.directions import WALKS, learn_walk
from training.prior.from_onnx import generator_from_export
from core.progress import Progress, ProgressCallback, TrainingCancelled
from training.runinfo import record_session
from training.checkpoints import atomic_save, changed_fields, read_checkpoint
from training.translation import _drop_log_after, seed_everything

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
#: Synthetic doodles at the end of the pool that the encoder never trains on (its R2 is measured on them).
VALIDATION = 1000
#: Config fields that do not change the steps a run takes.
TRAJECTORY_NEUTRAL = {"log_every", "sample_every", "checkpoint_every", "psi", "walks", "guard"}
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


class DoodleEncoderTrainer:
    def __init__(self, config: DoodleEncoderConfig, run_dir: Path, data_dir: Path, *, threads: int = 0,
                 device: str = "cpu", anime_source: Path | None = None, models_dir: Path | None = None):
        """``anime_source`` is refused: the faces come from the prior, not from a data set."""
        if anime_source is not None:
            raise ValueError("a doodle encoder learns no faces from a data set: its faces come from the prior")
        self.config = c = config
        self.run_dir, self.data_dir = Path(run_dir), Path(data_dir)
        self.models_dir = Path(models_dir) if models_dir else DEFAULT_MODELS_DIR
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        seed_everything(c.seed)
        self.prior_dir = self.models_dir / c.prior
        self.G = generator_from_export(self.prior_dir).to(self.device)
        self.walk_names = tuple(dict.fromkeys(m.walk for m in c.walks))
        self.directions: dict[str, torch.Tensor] = {}   # walk -> (len(layers), w_dim)
        self.encoder = DoodleEncoder(c.width, c.features, c.raster_size).to(self.device)
        self.identity = IdentityHead(c.features, self.G.z_dim)
        self.identity_fitted = False
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=c.lr)
        self.step = 0
        self.elapsed = 0.0
        self._pool: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def walk_total(self) -> int:
        return len(self.walk_names) * self.config.walk_steps

    # -- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def save_checkpoint(self) -> Path:
        state = {
            "format_version": CHECKPOINT_FORMAT, "kind": self.config.kind,
            "config": self.config.model_dump(mode="json"), "step": self.step, "elapsed": self.elapsed,
            "directions": dict(self.directions), "encoder": self.encoder.state_dict(), "opt": self.opt.state_dict(),
            "identity": self.identity.state_dict() if self.identity_fitted else None,
        }
        atomic_save(state, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | None = None) -> bool:
        path = Path(path) if path else self.checkpoint_path
        state = read_checkpoint(path, self.config.kind, CHECKPOINT_FORMAT)
        if state is None:
            return False
        diff = changed_fields(DoodleEncoderConfig.model_validate(state["config"]), self.config)
        if set(diff) - TRAJECTORY_NEUTRAL:
            raise ValueError(f"checkpoint {path} was made with a different config (differs in: {diff})")
        self.directions = {k: v.to(self.device) for k, v in state["directions"].items()}
        self.encoder.load_state_dict(state["encoder"])
        self.opt.load_state_dict(state["opt"])
        if state.get("identity") is not None:
            self.identity.load_state_dict(state["identity"])
            self.identity_fitted = True
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    # -- stage 2: the encoder ---------------------------------------------------------------

    def pool(self) -> tuple[np.ndarray, np.ndarray]:
        """The synthetic doodles and their attributes, drawn once per (seed, count, size)."""
        if self._pool is None:
            c = self.config
            path = self.run_dir / f"synthetic_{c.seed}_{c.synthetic_count}_{c.raster_size}.npz"
            if path.is_file():
                with np.load(path) as f:
                    self._pool = (f["bitmaps"], f["attributes"])
            else:
                t = time.perf_counter()
                self._pool = synthetic_pool(c.synthetic_count, seed=c.seed, size=c.raster_size)
                tmp = path.with_suffix(".tmp.npz")
                np.savez_compressed(tmp, bitmaps=self._pool[0], attributes=self._pool[1])
                tmp.replace(path)
                log.info("drew %d synthetic doodles in %.0f s", c.synthetic_count, time.perf_counter() - t)
            train_attrs = self._pool[1][:self._train_count()]
            mean, std = train_attrs.mean(axis=0), train_attrs.std(axis=0) + 1e-6
            binary = np.array([a in BINARY for a in ATTRIBUTES])
            mean[binary], std[binary] = 0.0, 1.0
            self.encoder.attr_mean.copy_(torch.from_numpy(mean))
            self.encoder.attr_std.copy_(torch.from_numpy(std))
        return self._pool

    def _train_count(self) -> int:
        n = self.config.synthetic_count
        return n - min(VALIDATION, n // 5)

    def _inputs(self, bitmaps: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(bitmap_to_input(bitmaps, self.config.raster_size)).to(self.device)

    def _targets(self, attrs: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(attrs).to(self.device)
        return torch.where(self.encoder.binary, t, (t - self.encoder.attr_mean) / self.encoder.attr_std)

    def _loss(self, raw: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        b = self.encoder.binary
        reg = F.mse_loss(raw[:, ~b], target[:, ~b])
        bce = F.binary_cross_entropy_with_logits(raw[:, b], target[:, b])
        return reg + bce, {"attributes": reg.item(), "yes_no": bce.item()}

    def encoder_step(self, step: int) -> dict[str, float]:
        c = self.config
        bitmaps, attrs = self.pool()
        rng = np.random.default_rng([c.seed, step])
        idx = rng.integers(0, self._train_count(), c.batch_size)
        batch = bitmaps[idx]
        # A doodle a pixel off centre is the same doodle: small shifts, as real doodles show.
        dy, dx = rng.integers(-1, 2, 2)
        batch = np.roll(batch, (int(dy), int(dx)), axis=(1, 2))
        raw, _ = self.encoder(self._inputs(batch))
        loss, parts = self._loss(raw, self._targets(attrs[idx]))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), **parts}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """R2 of every attribute (accuracy of the yes/no ones) on the pool's held-out tail."""
        bitmaps, attrs = self.pool()
        start = self._train_count()
        self.encoder.eval()
        raw, _ = self.encoder(self._inputs(bitmaps[start:]))
        self.encoder.train()
        pred = self.encoder.attributes(raw).cpu().numpy()
        truth = attrs[start:]
        out = {}
        for i, name in enumerate(ATTRIBUTES):
            if name in BINARY:
                out[f"acc_{name}"] = float(((pred[:, i] > 0.5) == (truth[:, i] > 0.5)).mean())
            else:
                var = truth[:, i].var()
                out[f"r2_{name}"] = float(1 - ((pred[:, i] - truth[:, i]) ** 2).mean() / var) if var > 0 else 0.0
        return out

    # -- stage 3: identity ------------------------------------------------------------------

    @torch.no_grad()
    def fit_identity(self) -> None:
        real = load_quickdraw(self.data_dir, "train")
        self.encoder.eval()
        feats = torch.cat([self.encoder(self._inputs(real[i:i + 500]))[1] for i in range(0, len(real), 500)])
        self.encoder.train()
        self.identity.fit(feats.cpu().numpy(), self.config.identity_components, seed=self.config.seed)
        self.identity_fitted = True

    # -- faces ------------------------------------------------------------------------------

    def direction_tensor(self) -> torch.Tensor:
        """(K, num_ws, w_dim): each walk's direction in its layers, zero elsewhere, in walk-mapping order."""
        out = torch.zeros(len(self.config.walks), self.G.num_ws, self.G.w_dim)
        for k, m in enumerate(self.config.walks):
            out[k, list(WALKS[m.walk].layers)] = self.directions[m.walk].cpu()
        return out

    def graph(self) -> EncoderGraph:
        return EncoderGraph(self.encoder, self.identity).eval()

    @torch.no_grad()
    def paint(self, bitmaps: np.ndarray, psi: float | None = None) -> np.ndarray:
        """uint8 faces (N, S, S, 3) for numpy_bitmaps: what the export will serve by default."""
        graph = self.graph()
        attrs, z = graph(self._inputs(bitmaps))
        self.encoder.train()
        coeff = walk_coefficients(attrs.cpu().numpy(), self.config.walks, ATTRIBUTES)
        x = faces_from_codes(self.G, z, torch.from_numpy(coeff), self.direction_tensor(),
                             self.config.psi if psi is None else psi)
        return output_to_images(x.clamp(-1, 1).cpu().numpy())

    def write_sample(self) -> Path:
        """Held-out real doodles (top) and their faces (below)."""
        doodles = load_quickdraw(self.data_dir, "holdout")[:16]
        faces = self.paint(doodles) if self.identity_fitted else None
        size = self.G.image_size
        top = np.concatenate([np.repeat(np.asarray(Image.fromarray(255 - d).resize((size, size)))[..., None], 3, 2)
                              for d in doodles], axis=1)
        rows = [top] if faces is None else [top, np.concatenate(list(faces), axis=1)]
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(path)
        return path

    # -- the loop ---------------------------------------------------------------------------

    def run(self, callback: ProgressCallback | None = None, *, resume: bool = True) -> dict[str, float]:
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(c.model_dump(mode="json"), indent=2))
        if resume:
            self.load_checkpoint()
        record_session(self.run_dir, self.step, self.device)
        log_path = self.run_dir / "loss_log.jsonl"
        metrics_path = self.run_dir / "metrics_log.jsonl"
        for path in (log_path, metrics_path):
            _drop_log_after(path, self.step)
        total = c.total_steps
        t_start, steps_start = time.perf_counter(), self.step

        def report(losses: dict[str, float], sample=None, ckpt=None, metrics=None) -> None:
            done = self.step - steps_start
            spent = time.perf_counter() - t_start
            eta = spent / done * (total - self.step) if done else None
            if callback is None:
                return
            try:
                callback(Progress(step=self.step, total_steps=total, epoch=self.step / total, elapsed_s=self.elapsed,
                                  eta_s=eta, losses=losses, sample_path=sample, checkpoint_path=ckpt,
                                  metrics=metrics or {}))
            except TrainingCancelled:
                self.save_checkpoint()
                raise

        # Stage 1: the walks.
        for i, name in enumerate(self.walk_names):
            if name in self.directions:
                continue
            first = i * c.walk_steps
            self.step = first
            t0 = time.perf_counter()

            def on_step(k: int, loss: float, name=name, first=first) -> None:
                self.step = first + k + 1
                if self.step % c.log_every == 0:
                    with open(log_path, "a") as f:
                        f.write(json.dumps({"step": self.step, "elapsed": round(self.elapsed + time.perf_counter() - t0, 2),
                                            f"walk_{name}": loss}) + "\n")
                    report({f"walk_{name}": loss})

            try:
                self.directions[name] = learn_walk(self.G, WALKS[name], steps=c.walk_steps, batch=c.walk_batch,
                                                   seed=c.seed * 1000 + i, on_step=on_step).to(self.device)
            except TrainingCancelled:
                self.step = first  # this walk is learned again on resume
                raise
            self.elapsed += time.perf_counter() - t0
            self.step = first + c.walk_steps
            report({}, ckpt=self.save_checkpoint())
        self.step = max(self.step, self.walk_total)

        # Stage 2: the encoder.
        self.pool()
        sums: dict[str, float] = {}
        n = 0
        t_last = time.perf_counter()
        while self.step < total:
            losses = self.encoder_step(self.step - self.walk_total)
            self.step += 1
            now = time.perf_counter()
            self.elapsed += now - t_last
            t_last = now
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            averaged = {k: v / n for k, v in sums.items()}
            sample = ckpt = None
            metrics: dict[str, float] = {}
            if self.step % c.log_every == 0 or self.step == total:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": self.step, "elapsed": round(self.elapsed, 2), **averaged}) + "\n")
                sums, n = {}, 0
            encoder_step = self.step - self.walk_total
            if encoder_step % c.sample_every == 0 or self.step == total:
                metrics = self.validate()
                with open(metrics_path, "a") as f:
                    f.write(json.dumps({"step": self.step, **metrics}) + "\n")
                if self.step == total:
                    self.fit_identity()
                sample = self.write_sample()
            if self.step % c.checkpoint_every == 0 or self.step == total:
                ckpt = self.save_checkpoint()
            report(averaged, sample, ckpt, metrics)
        if not self.identity_fitted:
            self.fit_identity()
            self.save_checkpoint()
        final = self.validate()
        (self.run_dir / "metrics.json").write_text(json.dumps({"step": self.step, **final}, indent=2))
        return final
