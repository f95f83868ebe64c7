"""Training the anime upscaler (``training.upscale.net.Upscaler2x``).

**Pairs.** A large picture is a ``patch``-sized crop of a real anime face: half of them from the
selfie2anime faces at 128 px (a quarter of a face at full detail: eyes, lines, hair strands), half
from the 64 px faces whole (a face at the size our generators make it). Its small copy is made the
way our generators' faces are spoiled: blurred (a Gaussian of 0.3-1.2 px, ``blur`` of them), made
half as large by one of box, bilinear or bicubic filtering, with pixel noise (``noise``), grain like
the StyleGAN prior's (blotches 2-3 pixels across, ``grain``: without it the network sharpened the
prior's grain into streaks) and JPEG artefacts (quality 60-95, ``jpeg``). Pairs are drawn once, seeded, then flipped at random.

**Loss.** L1 on the pixels plus ``edge_weight`` times L1 on their horizontal and vertical
differences: the gradients make lines sharp; nothing rewards texture the small picture does not
hold (no adversarial term), so flat colours stay flat.

**Held out** (``evaluate``): the selfie2anime faces [3000, 3400) and the 64 px faces [13400, end),
never trained on: PSNR and SSIM of the network against bicubic and Lanczos on their small copies.
A job's uploaded image zip (``anime_source``) replaces the selfie2anime faces as the large ones;
its last eighth (at most 400) is held out.

**A registry kind** (``core.kinds``): made with the registry's keywords, resumed by
``load_checkpoint`` (or ``run(resume=True)``), reporting ``core.progress.Progress`` to the CLI's
bar or a job's reporter, which may stop it with ``TrainingCancelled`` (the checkpoint is written
first).
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from core.configs.translation import SELFIE_ANIME_HOLDOUT_START
from core.configs.upscale import FACES64_HOLDOUT_START, UpscalerConfig
from core.progress import Progress, ProgressCallback, TrainingCancelled
from training.checkpoints import resume_small_run, save_small_run
from training.data import ANIME_ZIP, DataError, load_anime_faces, load_image_zip
from training.runinfo import record_session
from training.translation import _drop_log_after
from training.upscale.net import Upscaler2x

log = logging.getLogger(__name__)

KIND = "upscaler"
CHECKPOINT_FORMAT = 1
_FILTERS = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
#: The data folder's files a default run learns from (recorded with their sha256 in exports).
SELFIE_ANIME_ZIP = Path("anime_faces_selfie2anime") / "selfie2anime_trainB_128.zip"
#: Where a run notes the large faces it learns from, for its export to measure the same held-out ones.
SOURCE_FILE = "faces_source.json"
#: Held-out large faces of an uploaded zip: its last eighth, at most as many as the default's.
UPLOADED_HOLDOUT_MAX = 400


def face_sets(data_dir: Path, large_source: Path | None = None) -> dict[str, np.ndarray]:
    """The real faces: 'large' (selfie2anime, or the zip ``large_source``, at 128 px) and 'small'
    (64 px), all of them."""
    large = load_image_zip(Path(large_source) if large_source else Path(data_dir) / SELFIE_ANIME_ZIP, 128)
    return {"large": large, "small": load_anime_faces(Path(data_dir), 64)}


def holdout_starts(faces: dict[str, np.ndarray], uploaded: bool = False) -> dict[str, int]:
    """Where each face set's held-out faces begin: the fixed splits of the data folder, or the
    last eighth of an uploaded zip's faces."""
    starts = {"large": SELFIE_ANIME_HOLDOUT_START, "small": FACES64_HOLDOUT_START}
    if uploaded:
        n = len(faces["large"])
        if n < 2:
            raise DataError(f"the uploaded image zip holds {n} picture(s); the upscaler needs at least 2")
        starts["large"] = n - min(UPLOADED_HOLDOUT_MAX, max(1, n // 8))
    return starts


def spoil(big: np.ndarray, rng: np.random.Generator, config: UpscalerConfig) -> np.ndarray:
    """The half-size copy of a uint8 picture (S, S, 3), spoiled as a generator's face is."""
    im = Image.fromarray(big)
    if rng.random() < config.blur:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    side = big.shape[0] // 2
    im = im.resize((side, side), _FILTERS[int(rng.integers(len(_FILTERS)))])
    small = np.asarray(im).astype(np.float32)
    if rng.random() < config.noise:
        small = small + rng.normal(0, rng.uniform(1.0, 4.0), small.shape)
    if rng.random() < config.grain:
        from scipy import ndimage

        blotches = ndimage.gaussian_filter(rng.normal(0, 1, small.shape), (rng.uniform(0.5, 1.0),) * 2 + (0,))
        small = small + blotches / max(float(blotches.std()), 1e-6) * rng.uniform(2.0, 8.0)
    small = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg:
        buf = io.BytesIO()
        Image.fromarray(small).save(buf, format="JPEG", quality=int(rng.integers(60, 96)))
        small = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return small


def make_pairs(faces: dict[str, np.ndarray], config: UpscalerConfig, count: int, seed: int,
               ends: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (small, large) pairs, uint8, half from each face set (its first ``ends[set]``
    faces only, the training ones)."""
    rng = np.random.default_rng(seed)
    p = config.patch
    small = np.zeros((count, p // 2, p // 2, 3), np.uint8)
    large = np.zeros((count, p, p, 3), np.uint8)
    for i in range(count):
        name = "large" if i % 2 == 0 else "small"
        pool = faces[name][: (ends or {}).get(name)]
        face = pool[int(rng.integers(len(pool)))]
        if face.shape[0] != p:
            if face.shape[0] < p:
                face = np.asarray(Image.fromarray(face).resize((p, p), Image.Resampling.LANCZOS))
            else:
                y, x = rng.integers(0, face.shape[0] - p + 1, 2)
                face = face[y:y + p, x:x + p]
        large[i] = face
        small[i] = spoil(face, rng, config)
    return small, large


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 127.5 - 1.0


def loss_of(out: torch.Tensor, target: torch.Tensor, edge_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    pixels = F.l1_loss(out, target)
    edges = (F.l1_loss(out[..., 1:, :] - out[..., :-1, :], target[..., 1:, :] - target[..., :-1, :])
             + F.l1_loss(out[..., :, 1:] - out[..., :, :-1], target[..., :, 1:] - target[..., :, :-1]))
    return pixels + edge_weight * edges, {"l1": pixels.item(), "edges": edges.item()}


class UpscalerTrainer:
    """A run of the upscaler in ``run_dir``: resumes from its checkpoint, takes the same steps a
    run that never stopped would (each step's batch is seeded by the step)."""

    DATA_FILES = (SELFIE_ANIME_ZIP, ANIME_ZIP)

    def __init__(self, config: UpscalerConfig, run_dir: Path, data_dir: Path, *, threads: int = 0,
                 device: str = "cpu", anime_source: Path | None = None, faces: dict[str, np.ndarray] | None = None):
        """``anime_source``: an image zip whose faces replace the selfie2anime ones as the large
        faces (the 64 px faces stay). ``faces``: the face sets themselves (tests)."""
        self.config, self.run_dir, self.data_dir = config, Path(run_dir), Path(data_dir)
        self.anime_source = Path(anime_source) if anime_source else None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        torch.manual_seed(config.seed)
        self.faces = faces if faces is not None else face_sets(self.data_dir, self.anime_source)
        self.starts = holdout_starts(self.faces, uploaded=self.anime_source is not None)
        self._pairs: tuple[torch.Tensor, torch.Tensor] | None = None   # drawn when training needs them
        self.net = Upscaler2x(config.channels, config.blocks).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.checkpoint = self.run_dir / "checkpoint.pt"
        self.step, self.elapsed, self.history = 0, 0.0, []
        (self.run_dir / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
        # The export reads the same large faces back (a job's export is not told the data set).
        source = {"large": str(self.anime_source.resolve()) if self.anime_source else None}
        (self.run_dir / SOURCE_FILE).write_text(json.dumps(source) + "\n")

    def load_checkpoint(self) -> bool:
        """Resume from the run's checkpoint; False when there is none. A ValueError when it was
        made with another config."""
        self.step, self.elapsed, self.history = resume_small_run(
            self.checkpoint, kind=KIND, format_version=CHECKPOINT_FORMAT, config=self.config.model_dump(),
            net=self.net, opt=self.opt)
        if self.step:
            log.info("resumed the upscaler at step %d", self.step)
        return self.step > 0

    def save(self) -> Path:
        save_small_run(self.checkpoint, kind=KIND, format_version=CHECKPOINT_FORMAT, config=self.config.model_dump(),
                       net=self.net, opt=self.opt, step=self.step, elapsed=self.elapsed, history=self.history)
        return self.checkpoint

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (small, large) training pairs, from the training faces only."""
        if self._pairs is None:
            small, large = make_pairs(self.faces, self.config, self.config.pairs, self.config.seed, ends=self.starts)
            self._pairs = to_tensor(small), to_tensor(large)
        return self._pairs

    def _lr(self) -> float:
        c = self.config
        return c.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, self.step / c.steps))))

    def run(self, progress: ProgressCallback | None = None, *, resume: bool = True) -> dict:
        """Train to ``config.steps``, calling ``progress`` after every step (after the checkpoint
        of that step, so a run stopped there resumes from it)."""
        c = self.config
        if resume:
            self.load_checkpoint()
        small_all, large_all = self.pairs()
        record_session(self.run_dir, self.step, self.device)
        log_path = self.run_dir / "loss_log.jsonl"
        _drop_log_after(log_path, self.step)   # lines a crash left past the checkpoint are logged again
        t_start, steps_start = time.perf_counter(), self.step
        sums: dict[str, float] = {}
        n = 0
        self.net.train()
        with log_path.open("a") as log_file:
            while self.step < c.steps:
                t0 = time.perf_counter()
                gen = torch.Generator().manual_seed(c.seed * 1_000_003 + self.step)
                idx = torch.randint(0, len(small_all), (c.batch_size,), generator=gen)
                x, y = small_all[idx], large_all[idx]
                if bool(torch.randint(0, 2, (1,), generator=gen)):
                    x, y = x.flip(-1), y.flip(-1)
                for group in self.opt.param_groups:
                    group["lr"] = self._lr()
                loss, parts = loss_of(self.net(x.to(self.device)), y.to(self.device), c.edge_weight)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                for k, v in {"loss": loss.item(), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                averaged = {k: v / n for k, v in sums.items()}   # since the last log line
                if self.step % c.log_every == 0:
                    entry = {"step": self.step, "loss": round(loss.item(), 5), **{k: round(v, 5) for k, v in parts.items()}}
                    self.history.append(entry)
                    log_file.write(json.dumps(entry) + "\n")
                    log_file.flush()
                    sums, n = {}, 0
                ckpt = None
                if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                    ckpt = self.save()
                    log.info("upscaler step %d/%d, loss %.4f", self.step, c.steps, loss.item())
                if progress is not None:
                    done, spent = self.step - steps_start, time.perf_counter() - t_start
                    try:
                        progress(Progress(step=self.step, total_steps=c.steps,
                                          epoch=self.step * c.batch_size / len(small_all), elapsed_s=self.elapsed,
                                          eta_s=spent / done * (c.steps - self.step), losses=averaged,
                                          checkpoint_path=ckpt))
                    except TrainingCancelled:
                        if ckpt is None:
                            self.save()
                        raise
        self.net.eval()
        return {"steps": self.step, "seconds": round(self.elapsed, 1)}


# -- held-out measures ---------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB) over pictures of uint8 (N, S, S, 3)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM over pictures of uint8 (N, S, S, 3), on luma with a Gaussian window."""
    from scipy import ndimage

    def luma(x):
        return x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for x, y in zip(luma(a), luma(b)):
        mx, my = ndimage.gaussian_filter(x, sigma), ndimage.gaussian_filter(y, sigma)
        vx = ndimage.gaussian_filter(x * x, sigma) - mx * mx
        vy = ndimage.gaussian_filter(y * y, sigma) - my * my
        cxy = ndimage.gaussian_filter(x * y, sigma) - mx * my
        out.append((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean())
    return float(np.mean(out))


def upscale_torch(net: Upscaler2x, small: np.ndarray, batch: int = 50) -> np.ndarray:
    """uint8 (N, S, S, 3) -> uint8 (N, 2S, 2S, 3) with the torch network."""
    out = []
    device = next(net.parameters()).device
    with torch.no_grad():
        for i in range(0, len(small), batch):
            y = net(to_tensor(small[i:i + batch]).to(device))
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def resized(pictures: np.ndarray, side: int, method) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(p).resize((side, side), method)) for p in pictures])


def held_out(faces: dict[str, np.ndarray], count: int | None = None,
             starts: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """The held-out faces: 'large' (selfie2anime [3000, 3400), 128 px), 'small' (64 px, [13400, end)),
    or from ``starts`` on (``holdout_starts``)."""
    starts = starts or holdout_starts(faces)
    return {name: faces[name][starts[name]:][:count] for name in ("large", "small")}


def evaluate(upscale: Callable[[np.ndarray], np.ndarray], faces: dict[str, np.ndarray],
             count: int | None = None, seed: int = 1, starts: dict[str, int] | None = None) -> dict[str, float]:
    """PSNR and SSIM on the held-out faces of the network (``upscale``: uint8 (N, S, S, 3) ->
    (N, 2S, 2S, 3)), bicubic and Lanczos, from two kinds of small copies: clean (box filtered) and
    spoiled as the training pairs are (seeded, the same for every method)."""
    out: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    spoil_config = UpscalerConfig()
    for name, big in held_out(faces, count, starts).items():
        if not len(big):   # no held-out faces in this set (tiny test sets)
            continue
        side = big.shape[1]
        copies = {"clean": resized(big, side // 2, Image.Resampling.BOX),
                  "spoiled": np.stack([spoil(f, rng, spoil_config) for f in big])}
        for kind, small in copies.items():
            methods = {"upscaler": upscale(small), "bicubic": resized(small, side, Image.Resampling.BICUBIC),
                       "lanczos": resized(small, side, Image.Resampling.LANCZOS)}
            for method, got in methods.items():
                out[f"psnr_{name}_{kind}_{method}"] = round(psnr(got, big), 3)
                out[f"ssim_{name}_{kind}_{method}"] = round(ssim(got, big), 4)
        out[f"faces_{name}"] = float(len(big))
    return out
