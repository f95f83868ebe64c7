"""A face check: does a face have two eyes and a mouth where a face has them?

The drawing model moves a face's styles by what the drawing says (tilt, zoom, eye size...), and
a walk pushed too far turns a head into a smear with no eyes. The check that guards every face
cannot be the prior's own discriminator: it scores such an eyeless face (-1.4) above the
prior's random faces (median -6.2); it prefers smooth faces, not whole ones.

This is a small CNN with one output per part (``PARTS``), each the probability that the part is
there. It learns from real anime faces (the training split only) and the prior's own random
faces, both with and without parts taken out by picture edits: a part's region (where the
average face has it; the faces are aligned) replaced by a blur of the face, by the skin around
it, or by hair from the top of another face; both eyes gone under the face's own hair moved
down (``hair_curtain``: what a walk pushed too far makes of a head); or the whole face smeared
(every part gone). The edits come before the augmentation (rotation up to 40 degrees, zoom,
shift, flip with the eyes' labels swapped, colour), so a rolled or shifted head is still judged
by what it holds, not by where it is.

Tried and left out: the prior's faces with the tilt or zoom walk pushed past its range, labelled
broken (``broken_faces``). Most of them are broken, but they are all rolled heads: the check
learned that a rolled head is broken, and stopped 43-69 % of the whole faces a person labelled.

Its threshold is not chosen on real faces (the value 99 % of real validation faces pass is
0.17): the drawing model's faces score higher than real ones, broken or not, and at that value
the check stopped 19 % of the broken faces a person labelled. It is set on those labels instead
(``training.doodle.hostile.calibrate``, on the "tune" half; the "test" half measures it).

``python -m training.face_check --out models/face_check`` trains, checkpoints (resumable) and
exports it (ONNX with the sigmoid inside, its torch weights as safetensors, and a manifest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.checkpoints import resume_small_run, save_small_run
from training.data import load_anime_faces
from training.detectability import auc
from training.prior.directions import EYES, MOUTH

log = logging.getLogger(__name__)

KIND = "face-check"
CHECKPOINT_FORMAT = 1
PARTS = ("left_eye", "right_eye", "mouth")
#: Where each part is in the aligned 64 px anime faces (x right, y down, in [-1, 1]), and its
#: region's half-axes in the same units: an anime eye is about 12 px wide at 64 px.
CENTRES = {"left_eye": EYES[0], "right_eye": EYES[1], "mouth": MOUTH}
HALF_AXES = {"left_eye": (0.2, 0.18), "right_eye": (0.2, 0.18), "mouth": (0.17, 0.11)}
#: Real faces the checker trains on are [0, TRAIN_END); [VALID_START, TRAIN_END) choose the
#: threshold and are not trained on; the evaluation's held-out faces start at TRAIN_END.
TRAIN_END = 13400
VALID_START = 12800


@dataclass(frozen=True)
class FaceCheckConfig:
    steps: int = 3000            # optimiser steps
    batch: int = 64              # faces per step
    lr: float = 1e-3             # Adam learning rate
    width: int = 32              # channels of the first convolution (doubled twice)
    erase_share: float = 0.5     # share of the faces that get parts taken out
    smear_share: float = 0.06    # share of the faces smeared whole (every part gone)
    curtain_share: float = 0.1   # share of the faces whose eyes disappear under their own hair
    prior_faces: int = 2000      # random faces of the prior mixed in with the real ones (0: none)
    prior_share: float = 0.25    # share of each batch that is the prior's faces
    broken_faces: int = 0        # the prior's faces with a walk pushed far past its range (0: none; see above)
    broken_share: float = 0.15   # share of each batch that is those, labelled broken
    max_rotate: float = 40.0     # degrees of rotation in the augmentation
    pass_rate: float = 0.99      # share of real validation faces the threshold lets pass
    seed: int = 0
    checkpoint_every: int = 500
    train_faces: int = VALID_START  # real faces [0, train_faces) are trained on


class FaceCheckNet(nn.Module):
    """Four strided convolutions (64 -> 4 px), then one logit per part."""

    def __init__(self, width: int = 32, parts: int = len(PARTS)):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(4 * w * 16, parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Probabilities(nn.Module):
    """What is exported: the probabilities, so the runtime needs no sigmoid of its own."""

    def __init__(self, net: FaceCheckNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


# -- the picture edits --------------------------------------------------------------------------


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return xs, ys


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(2.5 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def region_mask(n: int, size: int, part: str, gen: torch.Generator) -> torch.Tensor:
    """Soft elliptic masks (n, 1, size, size) over ``part``, each a little moved and grown."""
    xs, ys = _grid(size)
    cx, cy = CENTRES[part]
    ax, ay = HALF_AXES[part]
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.12
    grow = 1.0 + 0.5 * torch.rand(n, 1, generator=gen)
    dx = (xs[None] - cx - shift[:, :1, None]) / (ax * grow[:, :, None])
    dy = (ys[None] - cy - shift[:, 1:, None]) / (ay * grow[:, :, None])
    r2 = dx ** 2 + dy ** 2
    return torch.clamp(1.5 - r2, 0.0, 1.0)[:, None] ** 0.5


def take_out(x: torch.Tensor, mask: torch.Tensor, how: torch.Tensor, blurred: torch.Tensor,
             hair: torch.Tensor) -> torch.Tensor:
    """Replace the masked region of faces x (n, 3, S, S) by, per face (``how``): 0 ``blurred``
    (a heavy blur of the face), 1 the face's skin (the mean colour of a ring round the region),
    2 ``hair`` (the top band of another face, moved down to the eyes)."""
    ring = (_blur(mask, 3.0) > 0.05).float() - (mask > 0.05).float()
    ring = ring.clamp(0, 1)
    weights = ring.sum(dim=(2, 3)).clamp(min=1.0)
    skin = (x * ring).sum(dim=(2, 3)) / weights                     # (n, 3): mean colour round it
    skin = skin[:, :, None, None] + 0.03 * torch.randn_like(x)
    fill = torch.where(how[:, None, None, None] == 0, blurred, torch.where(how[:, None, None, None] == 1, skin, hair))
    return mask * fill + (1 - mask) * x


def hair_curtain(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The eyes gone under the face's own hair: a band over both eyes (a little slanted) filled
    with the face moved down by a third of its height, so the hair above falls over them: what
    a walk pushed too far makes of a head."""
    n, _, size, _ = x.shape
    xs, ys = _grid(size)
    centre = CENTRES["left_eye"][1] + (torch.rand(n, 1, 1, generator=gen) - 0.5) * 0.2
    slant = (torch.rand(n, 1, 1, generator=gen) - 0.5) * 0.6
    half = 0.22 + 0.12 * torch.rand(n, 1, 1, generator=gen)
    d = (ys[None] - centre - slant * xs[None]).abs() / half
    mask = torch.clamp(1.5 - d, 0.0, 1.0)[:, None]
    fallen = torch.cat([x[..., :1, :].expand(-1, -1, size // 3, -1), x[..., : size - size // 3, :]], dim=2)
    return mask * fallen + (1 - mask) * x


def augment(x: torch.Tensor, gen: torch.Generator, max_rotate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotation, zoom, shift and colour; and a horizontal flip, which swaps the eyes
    (returned: whether each face was flipped)."""
    n = len(x)
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_rotate)
    scale = 1.0 + (torch.rand(n, generator=gen) * 2 - 1) * 0.15
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.1
    flip = torch.rand(n, generator=gen) < 0.5
    sx = torch.where(flip, -1.0, 1.0)
    c, s = torch.cos(ang) * scale, torch.sin(ang) * scale
    theta = torch.stack([torch.stack([c * sx, -s, shift[:, 0]], 1), torch.stack([s * sx, c, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1.0 + (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * 0.15
    bias = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.1
    return (x * gain + bias).clamp(-1, 1), flip


def make_batch(faces: torch.Tensor, gen: torch.Generator, config: FaceCheckConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Faces (n, 3, S, S) in [-1, 1] -> (edited and augmented faces, labels (n, len(PARTS)))."""
    n, size = len(faces), faces.shape[-1]
    x = faces.clone()
    labels = torch.ones(n, len(PARTS))
    edited = torch.rand(n, generator=gen) < config.erase_share
    blurred = _blur(faces, 4.0)
    hair = torch.roll(faces[torch.randperm(n, generator=gen)], shifts=int(0.3 * size), dims=2)
    for k, part in enumerate(PARTS):
        # each edited face loses each part with probability 1/2 (and at least one part)
        gone = edited & (torch.rand(n, generator=gen) < 0.5)
        if k == len(PARTS) - 1:
            gone |= edited & (labels.sum(1) == len(PARTS))
        if not gone.any():
            continue
        mask = region_mask(n, size, part, gen) * gone[:, None, None, None]
        how = torch.randint(0, 3, (n,), generator=gen)
        x = take_out(x, mask, how, blurred, hair)
        labels[gone, k] = 0.0
    rest = max(1e-6, 1 - config.erase_share)
    pick = torch.rand(n, generator=gen)
    smear = (~edited) & (pick < config.smear_share / rest)
    if smear.any():
        x[smear] = _blur(x[smear], 5.0)
        labels[smear] = 0.0
    curtain = (~edited) & (~smear) & (pick < (config.smear_share + config.curtain_share) / rest)
    if curtain.any():
        x[curtain] = hair_curtain(x[curtain], gen)
        labels[curtain, :2] = 0.0
    x, flip = augment(x, gen, config.max_rotate)
    labels[flip] = labels[flip][:, [1, 0, 2]]
    return x, labels


# -- training ----------------------------------------------------------------------------------


def prior_faces(models_dir: Path, prior: str, count: int, seed: int) -> np.ndarray:
    """``count`` random faces of the prior (uint8, N x S x S x 3), psi between 0.5 and 0.8, no
    drawing's moves: faces the guard must let through."""
    from core.runtime import FaceModel

    model = FaceModel(Path(models_dir) / prior, ["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, count, 100):
        seeds = [int(s) for s in rng.integers(0, 2**31, min(100, count - start))]
        psi = float(rng.uniform(0.5, 0.8))
        out.append(model.arrays(model.broadcast(model.w(seeds, psi))))
    return np.concatenate(out)


def broken_faces(models_dir: Path, doodle: str, count: int, seed: int) -> np.ndarray:
    """``count`` faces of the prior with the drawing model's tilt or zoom walk pushed far past
    the range it was learned on (1.4 to 2 units): nearly all are heads with an eye or both lost
    in the hair, or melted (the walks' pictures in the docs); a few still look whole, which the
    labels cannot tell, so they are a minority of each batch."""
    from core.manifest import ModelManifest
    from core.runtime import FaceModel

    folder = Path(models_dir) / doodle
    manifest = ModelManifest.load(folder)
    spec = manifest.doodle
    directions = np.load(folder / next(m.file for m in manifest.members if m.label == spec.directions))
    names = [w.name for w in spec.walks]
    pushed = [names.index(w) for w in ("tilt", "zoom_out") if w in names]
    prior = FaceModel(Path(models_dir) / spec.prior, ["CPUExecutionProvider"])
    w_avg = prior.spec.w_avg
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, count, 100):
        m = min(100, count - start)
        seeds = [int(s) for s in rng.integers(0, 2**31, m)]
        ws = np.repeat(prior.w(seeds, float(rng.uniform(0.5, 0.8)))[:, None], prior.spec.num_ws, axis=1) - w_avg
        for i in range(m):
            k = pushed[int(rng.integers(len(pushed)))]
            unit = directions[k] / np.linalg.norm(directions[k])
            ws[i] -= np.sum(ws[i] * unit) * unit
            ws[i] += rng.choice([-1.0, 1.0]) * rng.uniform(1.4, 2.0) * directions[k]
        out.append(prior.arrays(ws + w_avg))
    return np.concatenate(out)


def to_tensor(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(faces.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)


@torch.no_grad()
def validate(net: FaceCheckNet, faces: torch.Tensor, config: FaceCheckConfig, seed: int = 99) -> dict:
    """Scores of clean validation faces and of edited copies: each part's AUC (part there vs
    taken out) and the threshold that ``pass_rate`` of the clean faces pass."""
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    clean = torch.sigmoid(net(faces)).numpy()
    x, labels = make_batch(faces, gen, dataclasses.replace(config, erase_share=1.0, smear_share=0.0, max_rotate=0.0))
    edited = torch.sigmoid(net(x)).numpy()
    labels = labels.numpy()
    worst = clean.min(axis=1)
    threshold = float(np.quantile(worst, 1.0 - config.pass_rate))
    out = {"threshold": round(threshold, 4), "clean_pass": float((worst >= threshold).mean())}
    for k, part in enumerate(PARTS):
        gone = labels[:, k] == 0
        out[f"auc_{part}"] = round(auc(np.concatenate([clean[:, k], edited[~gone, k]]), edited[gone, k]), 4)
    broken = (labels == 0).any(axis=1)
    out["edited_caught"] = round(float((edited[broken].min(axis=1) < threshold).mean()), 4)
    net.train()
    return out


class FaceCheckTrainer:
    def __init__(self, config: FaceCheckConfig, run_dir: Path, data_dir: Path, models_dir: Path,
                 prior: str = "anime_faces", threads: int = 0, doodle: str = "doodle_encoder"):
        self.config, self.run_dir = config, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(config.seed)
        faces = load_anime_faces(Path(data_dir), 64, limit=TRAIN_END)
        self.train_real = to_tensor(faces[:config.train_faces])
        self.valid = to_tensor(faces[VALID_START:TRAIN_END])
        self.prior = (to_tensor(prior_faces(models_dir, prior, config.prior_faces, config.seed))
                      if config.prior_faces else None)
        self.broken = (to_tensor(broken_faces(models_dir, doodle, config.broken_faces, config.seed + 1))
                       if config.broken_faces else None)
        self.net = FaceCheckNet(config.width)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.checkpoint = self.run_dir / "checkpoint.pt"
        self.step, self.elapsed, self.history = resume_small_run(
            self.checkpoint, kind=KIND, format_version=CHECKPOINT_FORMAT, config=dataclasses.asdict(config),
            net=self.net, opt=self.opt)
        if self.step:
            log.info("resumed the face check at step %d", self.step)
        (self.run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")

    def _batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and prior faces, edited and augmented (``make_batch``), and the broken faces,
        augmented, with every part labelled gone."""
        c = self.config
        n_prior = int(round(c.batch * c.prior_share)) if self.prior is not None else 0
        n_broken = int(round(c.batch * c.broken_share)) if self.broken is not None else 0
        faces = self.train_real[torch.randint(0, len(self.train_real), (c.batch - n_prior - n_broken,), generator=gen)]
        if n_prior:
            faces = torch.cat([faces, self.prior[torch.randint(0, len(self.prior), (n_prior,), generator=gen)]])
        x, y = make_batch(faces, gen, c)
        if n_broken:
            broken, _ = augment(self.broken[torch.randint(0, len(self.broken), (n_broken,), generator=gen)], gen,
                                c.max_rotate)
            x, y = torch.cat([x, broken]), torch.cat([y, torch.zeros(n_broken, len(PARTS))])
        return x, y

    def save(self) -> None:
        save_small_run(self.checkpoint, kind=KIND, format_version=CHECKPOINT_FORMAT,
                       config=dataclasses.asdict(self.config), net=self.net, opt=self.opt, step=self.step,
                       elapsed=self.elapsed, history=self.history)

    def run(self) -> dict:
        c = self.config
        self.net.train()
        while self.step < c.steps:
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(c.seed * 1_000_003 + self.step)   # a resumed run takes the same steps
            x, y = self._batch(gen)
            loss = F.binary_cross_entropy_with_logits(self.net(x), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            self.elapsed += time.perf_counter() - t0
            if self.step % 50 == 0:
                self.history.append({"step": self.step, "loss": round(loss.item(), 5)})
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save()
                log.info("face check step %d/%d, loss %.4f", self.step, c.steps, loss.item())
        return validate(self.net, self.valid, c)


def export(trainer: FaceCheckTrainer, out: Path, metrics: dict, *, version: str = "1") -> Path:
    """The face check as ONNX (probabilities), its torch weights and a manifest, into ``out``."""
    from core.face_check import KIND as RUNTIME_KIND
    from core.manifest import FaceCheckSpec, FaceInput, Member, ModelManifest, ScoresOutput, sha256_file
    from training.export import export_checked, save_weights
    from training.runinfo import hardware

    assert RUNTIME_KIND == KIND
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph = out / "face_check.onnx"
    parity = export_checked(Probabilities(trainer.net), graph, example=trainer.valid[:4], check=trainer.valid[:32],
                            input_name="face", output_name="present")
    weights = save_weights(trainer.net, dataclasses.asdict(trainer.config), out / "face_check.safetensors",
                           of="face_check", step=trainer.step)
    members = [Member(file=graph.name, sha256=sha256_file(graph), bytes=graph.stat().st_size, label="face_check",
                      parity_max_abs_diff=parity), weights.model_copy(update={"label": "torch_weights"})]
    c = trainer.config
    manifest = ModelManifest(
        name=out.name, kind=KIND, version=version, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        input=FaceInput(name="face", image_size=64, description="a face, RGB in [-1, 1]"),
        output=ScoresOutput(name="present", labels=list(PARTS),
                            description="the probability that each part is there"),
        members=members, face_check=FaceCheckSpec(parts=list(PARTS), threshold=metrics["threshold"]),
        training={"config": dataclasses.asdict(c), "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
                  "hardware": hardware("cpu"), "loss": trainer.history},
        data=[{"name": "anime_faces 64 px", "faces": f"[0, {c.train_faces}) trained on, "
                                                    f"[{VALID_START}, {TRAIN_END}) chose the threshold"},
              {"name": "the prior's random faces", "count": c.prior_faces},
              {"name": "the prior's faces with a walk pushed past its range, labelled broken", "count": c.broken_faces}],
        metrics={k: float(v) for k, v in metrics.items()})
    manifest.save(out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Train the face check (two eyes and a mouth) and export it.",
        epilog="example: python -m training.face_check --data-dir ../shared/data --out models/face_check "
               "--run runs/face_check; then set its threshold on the faces a person labelled: "
               "python -m training.doodle.hostile --data-dir ../shared/data --calibrate models/face_check")
    p.add_argument("--out", type=Path, required=True, help="the export folder")
    p.add_argument("--run", type=Path, default=Path("runs/face_check"), help="checkpoints (a run resumes from here)")
    p.add_argument("--data-dir", type=Path, required=True, help="the shared data folder (D2A_DATA_DIR of the app)")
    p.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    p.add_argument("--prior", default="anime_faces")
    p.add_argument("--steps", type=int, default=FaceCheckConfig.steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = FaceCheckConfig(steps=args.steps, seed=args.seed)
    trainer = FaceCheckTrainer(config, args.run, args.data_dir, args.models_dir, args.prior, args.threads)
    metrics = trainer.run()
    log.info("validation: %s", metrics)
    export(trainer, args.out, metrics)


if __name__ == "__main__":
    main()
