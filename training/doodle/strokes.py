"""Which part of a face each stroke draws: the outline, an eye, an eyebrow, the nose, the mouth,
hair or an ear. A crayon's colour means something only once it is known what it coloured: hair
strokes set the face's hair colour.

Synthetic doodles know their parts (``training.doodles.draw_doodle_parts``), with hair drawn
in every style a kid uses (tufts, long strands, zigzags, scribbles, bangs, curls), so a reader
of strokes learns from them: for each stroke, two 28 px pictures side by side, the whole drawing
and the stroke alone where it is in it (``core.drawing.rasterize_strokes``), into a small CNN
with one output per part. Held-out synthetic doodles measure it; real doodles come as bitmaps
without their strokes, so nobody knows their parts.

``python -m training.doodle.strokes --model models/doodle_encoder`` trains it, checkpoints,
and adds it to a doodle encoder export (``strokes.onnx``, its torch weights and the manifest's
``doodle.stroke_parts``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.drawing import rasterize_strokes
from training.checkpoints import resume_small_run, save_small_run
from training.doodles import HAIR_STYLES, PARTS, draw_doodle_parts, sample_doodle_params

log = logging.getLogger(__name__)

KIND = "stroke-parts"
CHECKPOINT_FORMAT = 1
SIZE = 28


@dataclass(frozen=True)
class StrokePartsConfig:
    doodles: int = 12000         # synthetic doodles drawn (their strokes are the examples)
    validation: int = 1000       # of them, the last ones: never trained on
    hair_share: float = 0.6      # share of the doodles that have hair, in a random style
    steps: int = 2500            # optimiser steps
    batch: int = 128             # strokes per step
    lr: float = 1e-3
    width: int = 32              # channels of the first convolution (doubled once)
    seed: int = 0
    checkpoint_every: int = 500


class StrokePartsNet(nn.Module):
    """(N, 2, 28, 28): the whole drawing and one stroke, ink in [0, 1] -> a logit per part."""

    def __init__(self, width: int = 32, parts: int = len(PARTS)):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(2, w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),            # 14
            nn.Conv2d(w, 2 * w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),        # 7
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(2 * w * 7 * 7, 128), nn.ReLU(), nn.Linear(128, parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Probabilities(nn.Module):
    def __init__(self, net: StrokePartsNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def stroke_examples(count: int, seed: int, hair_share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` synthetic doodles as stroke examples: inputs (M, 2, 28, 28) uint8, the part of
    each (M,) and which doodle it came from (M,)."""
    rng = np.random.default_rng(seed)
    inputs, parts, owner = [], [], []
    for i in range(count):
        p = sample_doodle_params(rng, wide=True)
        if p.outline and rng.random() < hair_share:
            p = replace(p, hair=int(rng.integers(3, 10)), hair_style=str(rng.choice(HAIR_STYLES)),  # type: ignore[arg-type]
                        hair_length=float(rng.uniform(15, 50)))
        elif p.outline:
            p = replace(p, hair=0)
        drawn = draw_doodle_parts(p, rng)
        whole, each = rasterize_strokes([s.tolist() for _, s in drawn], SIZE)
        for (part, _), alone in zip(drawn, each):
            inputs.append(np.stack([whole, alone]))
            parts.append(PARTS.index(part))
            owner.append(i)
    return np.stack(inputs), np.array(parts), np.array(owner)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / 255.0)


class StrokePartsTrainer:
    def __init__(self, config: StrokePartsConfig, run_dir: Path, threads: int = 0):
        self.config, self.run_dir = config, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(config.seed)
        x, y, owner = stroke_examples(config.doodles, config.seed, config.hair_share)
        held = owner >= config.doodles - config.validation
        self.x, self.y = to_tensor(x[~held]), torch.from_numpy(y[~held])
        self.vx, self.vy = to_tensor(x[held]), torch.from_numpy(y[held])
        self.net = StrokePartsNet(config.width)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.checkpoint = self.run_dir / "checkpoint.pt"
        self.step, self.elapsed, self.history = resume_small_run(
            self.checkpoint, kind=KIND, format_version=CHECKPOINT_FORMAT, config=dataclasses.asdict(config),
            net=self.net, opt=self.opt)
        (self.run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")

    def save(self) -> None:
        save_small_run(self.checkpoint, kind=KIND, format_version=CHECKPOINT_FORMAT,
                       config=dataclasses.asdict(self.config), net=self.net, opt=self.opt, step=self.step,
                       elapsed=self.elapsed, history=self.history)

    def run(self) -> dict:
        c = self.config
        self.net.train()
        while self.step < c.steps:
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(c.seed * 1_000_003 + self.step)
            idx = torch.randint(0, len(self.x), (c.batch,), generator=gen)
            x = self.x[idx]
            flip = torch.rand(c.batch, generator=gen) < 0.5      # a mirrored drawing has the same parts
            x[flip] = x[flip].flip(-1)
            loss = F.cross_entropy(self.net(x), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            self.elapsed += time.perf_counter() - t0
            if self.step % 50 == 0:
                self.history.append({"step": self.step, "loss": round(loss.item(), 5)})
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save()
                log.info("stroke parts step %d/%d, loss %.4f", self.step, c.steps, loss.item())
        return self.validate()

    @torch.no_grad()
    def validate(self) -> dict:
        """Accuracy on the held-out doodles' strokes, and for hair: recall (hair strokes found)
        and precision (strokes called hair that are)."""
        self.net.eval()
        pred = self.net(self.vx).argmax(1)
        self.net.train()
        hair = PARTS.index("hair")
        is_hair, said_hair = self.vy == hair, pred == hair
        return {"accuracy": round(float((pred == self.vy).float().mean()), 4),
                "hair_recall": round(float((said_hair & is_hair).sum() / max(1, int(is_hair.sum()))), 4),
                "hair_precision": round(float((said_hair & is_hair).sum() / max(1, int(said_hair.sum()))), 4),
                "strokes": int(len(self.vy))}


def attach(trainer: StrokePartsTrainer, model_dir: Path, metrics: dict) -> Path:
    """Add the stroke reader to a doodle encoder export: its ONNX graph (probabilities), its
    torch weights, and ``doodle.stroke_parts`` in the manifest."""
    from core.manifest import Member, ModelManifest, StrokePartsSpec, sha256_file
    from training.export import export_checked, save_weights

    model_dir = Path(model_dir)
    manifest = ModelManifest.load(model_dir)
    if manifest.doodle is None:
        raise ValueError(f"{model_dir} is not a doodle encoder export")
    graph = model_dir / "strokes.onnx"
    parity = export_checked(Probabilities(trainer.net), graph, example=trainer.vx[:4], check=trainer.vx[:64],
                            input_name="strokes", output_name="parts")
    weights = save_weights(trainer.net, dataclasses.asdict(trainer.config), model_dir / "strokes.safetensors",
                           of="strokes", step=trainer.step)
    keep = [m for m in manifest.members if m.label not in ("strokes", "stroke weights")]
    c = trainer.config
    source = {"trained": "training.doodle.strokes", "config": dataclasses.asdict(c), "steps": trainer.step,
              "seconds": round(trainer.elapsed, 1)}
    members = keep + [
        Member(file=graph.name, sha256=sha256_file(graph), bytes=graph.stat().st_size, label="strokes",
               source=source, parity_max_abs_diff=parity, metrics={k: float(v) for k, v in metrics.items()}),
        weights.model_copy(update={"label": "stroke weights", "source": source}),
    ]
    doodle = manifest.doodle.model_copy(update={"stroke_parts": StrokePartsSpec(member="strokes", parts=list(PARTS))})
    manifest.model_copy(update={"members": members, "doodle": doodle}).save(model_dir)
    return model_dir


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the stroke reader (which part each stroke draws) and add it "
                                            "to a doodle encoder export.",
                                epilog="example: python -m training.doodle.strokes --model models/doodle_encoder")
    p.add_argument("--model", type=Path, required=True, help="the doodle encoder export to add it to")
    p.add_argument("--run", type=Path, default=Path("runs/stroke_parts"))
    p.add_argument("--steps", type=int, default=StrokePartsConfig.steps)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    trainer = StrokePartsTrainer(StrokePartsConfig(steps=args.steps), args.run, args.threads)
    metrics = trainer.run()
    log.info("held-out strokes: %s", metrics)
    attach(trainer, args.model, metrics)


if __name__ == "__main__":
    main()
