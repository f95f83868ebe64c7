"""Training of the unconditional anime-face generators: DCGAN, LSGAN, WGAN-div and StyleGAN.

One loop for every kind. The kind picks the networks (``build_networks``) and the loss
(``build_loss``); the loop owns the phases of a step and the EMA generator:

- DCGAN, LSGAN: one discriminator update on a real batch and G(z), then one generator update
  on the same G(z) (the order of Radford et al.).
- WGAN-div: ``n_critic`` critic updates, each on its own real batch and z, then one generator
  update on the last critic iteration's G(z) (the generator has not changed in between).
- StyleGAN: as DCGAN, with style mixing in G(z), R1 added to the discriminator loss of every
  ``r1_every``-th step (lazy regularisation: scaled by ``r1_every``; it is folded into that
  step's update, so no extra optimiser step and no Adam correction), then the EMA generator
  moves towards G. Samples and exports use the EMA generator.

Two options for any kind: ``diffaugment`` puts the discriminator behind differentiable
augmentation (``training.gans.augment``: every real and generated image it sees, in its update,
in R1 and in the generator's update, is augmented the same random way per image), and
``init_generator`` starts the generator (and its EMA) from exported torch weights, to fine-tune a
shipped generator with a new discriminator (``d_warmup_steps`` first trains that discriminator
alone, so its first verdicts on the generator are informed ones).

A "step" is one generator update. Reproducibility: a step seeds torch's global generator and
draws its real batch from a numpy generator, both from (seed, step), so a run resumed from a
checkpoint takes exactly the step an uninterrupted run would have taken (on the CPU). A
checkpoint holds both networks (and the EMA generator), both optimisers, step, elapsed time,
kind, config and a format version, and loads with ``weights_only=True``.

Metrics in the loop are cheap signals, not FID (for FID / KID, evaluate the export with
``doodle2anime evaluate``): ``fd_pixels8``, the Fréchet distance between Gaussians fitted to
8x8 average-pooled generated and real faces (in [-1, 1] units; lower is better, comparable only
between runs with the same image size and ``eval_count``), and ``sample_diversity``, the mean
L1 between generated faces (the first 256), which falls towards 0 when the generator
collapses to a few faces.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.preprocess import output_to_images
from training.data import load_anime
from core.configs.gans import (  # noqa: F401 - re-exported for callers of the trainer
    GAN_CONFIGS,
    DCGANConfig,
    GANConfig,
    LSGANConfig,
    StyleGANConfig,
    WGANDivConfig,
    load_gan_config,
)
from training.gans.augment import AugmentedCritic, parse_policy
from training.gans.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from training.gans.losses import CrossEntropyLoss, LeastSquaresLoss, WassersteinDivLoss, r1_penalty
from training.gans.stylegan import StyleDiscriminator, StyleGenerator
from core.progress import Progress, ProgressCallback, TrainingCancelled
from training.runinfo import record_session
from training.checkpoints import atomic_save, changed_fields, read_checkpoint
from training.translation import _drop_log_after, random_sharpness, seed_everything

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1

#: Config fields that do not change which steps a run takes: a run may resume with new values.
TRAJECTORY_NEUTRAL = {"steps", "log_every", "sample_every", "checkpoint_every", "sample_count", "eval_count"}


def build_networks(c: GANConfig) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of a config's kind, initialised (seed torch first)."""
    if isinstance(c, StyleGANConfig):
        G = StyleGenerator(c.z_dim, c.w_dim, c.image_size, c.ngf, c.max_channels, c.mapping_layers, c.mapping_lr_mult)
        D = StyleDiscriminator(c.image_size, c.ndf, c.max_channels, c.mbstd_group)
        return G, D
    norm = c.critic_norm if isinstance(c, WGANDivConfig) else "batch"
    G = DCGANGenerator(c.z_dim, c.ngf, c.image_size)
    D = DCGANDiscriminator(c.ndf, c.image_size, norm=norm)
    if c.init == "normal_0.02":
        init_dcgan_weights(G)
        init_dcgan_weights(D)
    return G, D


def weights_file(path: str | Path, network: str = "generator") -> Path:
    """An ``init_generator`` / ``init_discriminator`` setting -> the safetensors file: a model
    folder's ``<network>.safetensors``, or the file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{network}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"init_{network}: no {network} weights at {path} "
                                f"(give an exported model folder with {network}.safetensors, or the file)")
    return path


def load_network_weights(net: nn.Module, path: str | Path, network: str = "generator") -> Path:
    """Load a generator's or discriminator's torch weights (safetensors) into ``net``; the shapes
    must be this config's."""
    from safetensors.torch import load_file

    path = weights_file(path, network)
    state = load_file(str(path))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[:4]
        raise ValueError(f"init_{network} {path} does not fit a {network} of this config "
                         f"(compare its ngf, ndf, max_channels, z_dim, w_dim, image_size): {' '.join(first)}") from None
    log.info("%s starts from %s", network, path)
    return path


def freeze_generator(G: StyleGenerator, through: int, noise: bool = False) -> list[str]:
    """Keep the mapping network and every synthesis layer up to ``through`` px (0: none), and with
    ``noise`` every noise strength, as they are (``requires_grad`` off); returns the names of the
    parameters that still train."""
    fixed = set(G.parameter_names_through(through)) if through else set()
    for name, p in G.named_parameters():
        p.requires_grad_(name not in fixed and not (noise and name.endswith("noise_strength")))
    trained = [name for name, p in G.named_parameters() if p.requires_grad]
    if not trained:
        raise ValueError(f"freeze_g_through {through} keeps the whole {G.image_size} px generator fixed: "
                         f"give a side below {G.image_size}")
    return trained


def build_loss(c: GANConfig) -> CrossEntropyLoss | LeastSquaresLoss | WassersteinDivLoss:
    if isinstance(c, DCGANConfig):
        return CrossEntropyLoss(c.fuzzy_labels)
    if isinstance(c, LSGANConfig):
        return LeastSquaresLoss(c.fuzzy_labels)
    if isinstance(c, WGANDivConfig):
        return WassersteinDivLoss(c.div_k, c.div_p)
    if isinstance(c, StyleGANConfig):
        return CrossEntropyLoss(False)  # StyleGAN2's logistic loss: softplus(-D(x)) + softplus(D(G(z)))
    raise ValueError(f"no loss for {type(c).__name__}; valid kinds: {', '.join(GAN_CONFIGS)}")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with tr((S_a S_b)^(1/2)) computed as the
    sum of square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric, so eigh)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    vals, vecs = np.linalg.eigh(s_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def face_grid(images: np.ndarray, columns: int = 8) -> Image.Image:
    """uint8 faces (N, S, S, 3) in rows of ``columns`` (the last row padded with black)."""
    n, s = len(images), images.shape[1]
    rows = -(-n // columns)
    canvas = np.zeros((rows * s, columns * s, 3), np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * s : (r + 1) * s, col * s : (col + 1) * s] = img
    return Image.fromarray(canvas)


class GANTrainer:
    """Owns the networks, optimisers, EMA generator and the loop. ``run()`` trains to ``config.steps``."""

    def __init__(self, config: GANConfig, run_dir: Path, data_dir: Path, *, threads: int = 0, device: str = "cpu",
                 anime_source: Path | None = None):
        """``anime_source``: a zip of images to learn from (default: the data folder's anime faces)."""
        if type(config) not in GAN_CONFIGS.values():
            raise TypeError(f"GANTrainer needs one of {', '.join(c.__name__ for c in GAN_CONFIGS.values())}, "
                            f"got {type(config).__name__}")
        self.config = c = config
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        self.anime_source = Path(anime_source) if anime_source else None
        if threads:
            torch.set_num_threads(threads)
        seed_everything(c.seed)
        self.device = torch.device(device)
        self.G, self.D = build_networks(c)
        if c.init_generator:
            load_network_weights(self.G, c.init_generator, "generator")
        if c.init_discriminator:
            load_network_weights(self.D, c.init_discriminator, "discriminator")
        if isinstance(c, StyleGANConfig) and (c.freeze_g_through or c.freeze_noise):
            assert isinstance(self.G, StyleGenerator)
            trained = freeze_generator(self.G, c.freeze_g_through, c.freeze_noise)
            log.info("generator: the layers up to %d px (and the mapping if any)%s stay fixed; %d of %d tensors train",
                     c.freeze_g_through, " and the noise strengths" if c.freeze_noise else "", len(trained),
                     len(list(self.G.parameters())))
        self.G.to(self.device)
        self.D.to(self.device)
        self.G_ema: nn.Module | None = None
        if isinstance(c, StyleGANConfig):
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.loss = build_loss(c)
        # what the losses and R1 call: D itself, or D behind the differentiable augmentation
        policy = parse_policy(c.diffaugment)
        self.critic: nn.Module = AugmentedCritic(self.D, policy) if policy else self.D
        self.opt_G = torch.optim.Adam([p for p in self.G.parameters() if p.requires_grad], lr=c.lr_g, betas=(c.beta1, c.beta2))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=(c.beta1, c.beta2))
        self.n_critic = c.n_critic if isinstance(c, WGANDivConfig) else 1
        # Latents of the sample grids and of the metric: fixed for the whole run.
        self.fixed_z = torch.from_numpy(
            np.random.default_rng([c.seed, 1 << 30]).standard_normal((c.sample_count, c.z_dim)).astype(np.float32))
        self.eval_z = torch.from_numpy(
            np.random.default_rng([c.seed, 1 << 31]).standard_normal((c.eval_count, c.z_dim)).astype(np.float32))
        self.step = 0
        self.elapsed = 0.0
        self._data_loaded = False

    # -- data -------------------------------------------------------------------------------

    def _load_data(self) -> None:
        if self._data_loaded:
            return
        c = self.config
        self.anime = load_anime(self.data_dir, self.anime_source, c.image_size, c.anime_limit)
        n_real = min(c.eval_count, len(self.anime))
        pick = np.random.default_rng([c.seed, 1 << 32]).choice(len(self.anime), n_real, replace=False)
        self.eval_real = self._pool8(torch.from_numpy(self._to_float(self.anime[np.sort(pick)])))
        self._data_loaded = True
        log.info("data: %d anime faces at %d px", len(self.anime), c.image_size)

    @staticmethod
    def _to_float(faces: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, 3, S, S) in [-1, 1]."""
        return (faces.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)

    @staticmethod
    def _pool8(x: torch.Tensor) -> np.ndarray:
        return F.adaptive_avg_pool2d(x.float(), 8).flatten(1).cpu().numpy()

    def step_rng(self, step: int) -> np.random.Generator:
        """Seed torch for ``step`` and return the step's numpy generator (for the real batches)."""
        rng = np.random.default_rng([self.config.seed, step])
        torch.manual_seed(int(rng.integers(2**63 - 1)))
        return rng

    def real_batch(self, rng: np.random.Generator) -> torch.Tensor:
        c = self.config
        x = self._to_float(self.anime[rng.integers(len(self.anime), size=c.batch_size)])
        if c.flip:
            flip = rng.random(c.batch_size) < 0.5
            x[flip] = x[flip][..., ::-1]
        if c.sharpness > 0:  # drawn only when on, so runs without it keep their random stream
            x = random_sharpness(x, rng, c.sharpness)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def latents(self) -> torch.Tensor:
        return torch.randn(self.config.batch_size, self.config.z_dim, device=self.device)

    # -- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def _modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        out = {"G": self.G, "D": self.D, "opt_G": self.opt_G, "opt_D": self.opt_D}
        if self.G_ema is not None:
            out["G_ema"] = self.G_ema
        return out

    def save_checkpoint(self) -> Path:
        state = {
            "format_version": CHECKPOINT_FORMAT,
            "kind": self.config.kind,
            "config": self.config.model_dump(mode="json"),
            "step": self.step,
            "elapsed": self.elapsed,
            **{name: m.state_dict() for name, m in self._modules().items()},
        }
        atomic_save(state, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | None = None) -> bool:
        path = Path(path) if path else self.checkpoint_path
        state = read_checkpoint(path, self.config.kind, CHECKPOINT_FORMAT)
        if state is None:
            return False
        saved = load_gan_config(state["config"])
        if saved != self.config:
            diff = changed_fields(saved, self.config)
            if set(diff) - TRAJECTORY_NEUTRAL:
                raise ValueError(f"checkpoint {path} was made with a different config (differs in: {diff})")
            log.warning("resuming with new %s: they do not change the steps taken", ", ".join(diff))
        for name, m in self._modules().items():
            m.load_state_dict(state[name])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    # -- one step ---------------------------------------------------------------------------

    def train_step(self, step: int) -> dict[str, float]:
        """One generator update (and the discriminator updates before it). Returns the losses."""
        c = self.config
        rng = self.step_rng(step)
        stylegan = isinstance(c, StyleGANConfig)
        parts: dict[str, list[float]] = {}
        self.D.requires_grad_(True)
        for i in range(self.n_critic):
            real = self.real_batch(rng)
            last = i == self.n_critic - 1
            with torch.set_grad_enabled(last and step >= c.d_warmup_steps):  # only the last G(z) feeds G's update
                if stylegan:
                    fake = self.G.synthesis(self.G.training_ws(self.latents(), self.latents(), c.style_mixing_prob,
                                                                track_w_avg=not c.freeze_g_through))
                else:
                    fake = self.G(self.latents())
            self.opt_D.zero_grad(set_to_none=True)
            loss_D, logged = self.loss.discriminator(self.critic, real, fake.detach())
            logged["D"] = loss_D.item()
            if stylegan and c.r1_gamma > 0 and step % c.r1_every == 0:
                r1 = r1_penalty(self.critic, real)
                loss_D = loss_D + r1 * (c.r1_gamma / 2 * c.r1_every)
                logged["r1"] = r1.item()
            loss_D.backward()
            self.opt_D.step()
            for k, v in logged.items():
                parts.setdefault(k, []).append(v)
        averaged = {k: float(np.mean(v)) for k, v in parts.items()}
        if step < c.d_warmup_steps:  # the discriminator catches up first; G and its EMA wait
            return averaged
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        loss_G = self.loss.generator(self.critic, fake)
        loss_G.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self.update_ema(images_seen=(step + 1 - c.d_warmup_steps) * c.batch_size)
        return {"G": loss_G.item(), **averaged}

    @torch.no_grad()
    def update_ema(self, images_seen: int) -> float:
        """Move the EMA generator towards G: beta = 0.5 ** (batch / half-life), the half-life
        capped early on at ``ema_rampup`` times the images seen. Buffers (w_avg, noise maps)
        are copied. Returns beta."""
        c = self.config
        assert isinstance(c, StyleGANConfig) and self.G_ema is not None
        half_life = float(c.ema_half_life_images)
        if c.ema_rampup is not None:
            half_life = min(half_life, images_seen * c.ema_rampup)
        beta = 0.5 ** (c.batch_size / max(half_life, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
        return beta

    # -- samples and metrics ----------------------------------------------------------------

    @torch.no_grad()
    def generate(self, z: torch.Tensor, psi: float | None = None, batch: int = 64) -> np.ndarray:
        """Faces (N, 3, S, S), about [-1, 1], from latents: the EMA generator with constant noise
        and truncation ``psi`` (default: the config's sample truncation) for StyleGAN, the
        generator in eval mode (batch-norm running statistics, as exported) otherwise."""
        c = self.config
        out = []
        if self.G_ema is not None:
            psi = c.sample_truncation if psi is None else psi
            for i in range(0, len(z), batch):
                out.append(self.G_ema(z[i : i + batch].to(self.device), psi=psi, noise_mode="const").cpu())
        else:
            self.G.eval()
            for i in range(0, len(z), batch):
                out.append(self.G(z[i : i + batch].to(self.device)).cpu())
            self.G.train()
        return torch.cat(out).numpy() if out else np.zeros((0, 3, c.image_size, c.image_size), np.float32)

    def write_sample(self) -> Path:
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        face_grid(output_to_images(self.generate(self.fixed_z))).save(path)
        return path

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """``fd_pixels8`` and ``sample_diversity`` on the fixed evaluation latents (untruncated)."""
        if self.config.eval_count < 2:
            return {}
        fake = torch.from_numpy(self.generate(self.eval_z, psi=1.0)).clamp(-1, 1)
        flat = fake[:256].flatten(1)  # pairwise distances grow with n^2: 256 faces are plenty
        n = len(flat)
        diversity = (torch.cdist(flat, flat, p=1) / flat.shape[1]).sum() / (n * (n - 1))
        return {"fd_pixels8": frechet_distance(self._pool8(fake), self.eval_real), "sample_diversity": diversity.item()}

    # -- the loop ---------------------------------------------------------------------------

    def run(self, callback: ProgressCallback | None = None, *, resume: bool = True,
            stop_at: int | None = None) -> dict[str, float]:
        """Train until ``config.steps`` (or ``stop_at``); returns the final metrics."""
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(c.model_dump(mode="json"), indent=2))
        if resume:
            self.load_checkpoint()
        record_session(self.run_dir, self.step, self.device)
        self._load_data()
        end = min(c.steps, stop_at) if stop_at else c.steps
        log_path = self.run_dir / "loss_log.jsonl"
        metrics_path = self.run_dir / "metrics_log.jsonl"
        for path in (log_path, metrics_path):
            _drop_log_after(path, self.step)  # steps after the checkpoint are about to be redone
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        images_per_step = c.batch_size * self.n_critic
        t_last = time.perf_counter()
        rate_steps, rate_time = 0, 0.0
        while self.step < end:
            losses = self.train_step(self.step)
            self.step += 1
            now = time.perf_counter()
            dt, t_last = now - t_last, now
            self.elapsed += dt
            rate_steps, rate_time = rate_steps + 1, rate_time + dt
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
            averaged = {k: sums[k] / counts[k] for k in sums}
            sample = ckpt = None
            metrics: dict[str, float] = {}
            if self.step % c.log_every == 0 or self.step == end:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": self.step, "elapsed": round(self.elapsed, 2), **averaged}) + "\n")
                sums, counts = {}, {}
            if self.step % c.sample_every == 0 or self.step == end:
                sample = self.write_sample()
                metrics = self.evaluate()
                if metrics:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps({"step": self.step, **metrics}) + "\n")
            if self.step % c.checkpoint_every == 0 or self.step == end:
                ckpt = self.save_checkpoint()
            progress = Progress(
                step=self.step, total_steps=c.steps, epoch=self.step * images_per_step / len(self.anime),
                elapsed_s=self.elapsed, eta_s=rate_time / rate_steps * (c.steps - self.step), losses=averaged,
                sample_path=sample, checkpoint_path=ckpt, metrics=metrics,
            )
            if callback is not None:
                try:
                    callback(progress)
                except TrainingCancelled:
                    self.save_checkpoint()
                    raise
        final = self.evaluate()
        (self.run_dir / "metrics.json").write_text(json.dumps({"step": self.step, **final}, indent=2))
        return final
