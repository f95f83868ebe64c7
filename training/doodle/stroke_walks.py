"""Walks of the prior that the strokes set, added to a doodle encoder export after training.

The encoder reads a bitmap; some things a kid draws are clearer in the strokes, once the stroke
reader (``training.doodle.strokes``) has said which of them are hair: how far down the hair
falls (``core.doodle_model.STROKE_ATTRIBUTES``). For each walk of
``core.configs.encoder.STROKE_WALKS`` this learns the prior's direction (a steerable walk taught
by a picture edit, ``training.prior.directions``), measures it on faces no step saw, and adds
it to the export: the direction appended to ``directions.npy``, the walk to the manifest. The
encoder and every other walk are left as they were, and a drawing that does not say the
attribute paints the face it painted before.

The measure of the long-hair walk is plain: the share of the bands beside the cheeks that has
the hair's colour (``training.doodle.measure.hair_beside_cheeks``), for the same faces moved
and not moved.

    python -m training.doodle.stroke_walks --model models/doodle_encoder
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from training.prior.directions import WALKS, learn_walk

log = logging.getLogger(__name__)

#: Faces the walk is measured on (seeded apart from the walk's own training faces).
MEASURE_FACES = 200
MEASURE_SEED = 123
#: A face's hair beside the cheeks "moved" when its share changed by more than this.
MOVED = 0.05


def _faces(G, ws: torch.Tensor, batch: int = 50) -> np.ndarray:
    with torch.no_grad():
        x = torch.cat([G.synthesis(ws[i:i + batch], noise_mode="const") for i in range(0, len(ws), batch)])
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def measure_long_hair(G, direction: torch.Tensor, layers: list[int], coefficients: tuple[float, ...],
                      *, count: int = MEASURE_FACES, seed: int = MEASURE_SEED, psi: float = 0.8) -> dict[str, float]:
    """Per coefficient: the mean hair share beside the cheeks, and the share of faces whose hair
    there grew (or shrank) by more than ``MOVED`` against the same faces not moved."""
    from training.doodle.measure import hair_beside_cheeks

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ws = G.broadcast(G.mapping(torch.randn(count, G.z_dim, generator=gen), psi=psi))
    base = hair_beside_cheeks(_faces(G, ws))
    out = {"hair_sides_0": float(base.mean())}
    for a in coefficients:
        moved = ws.clone()
        moved[:, layers] += a * direction
        got = hair_beside_cheeks(_faces(G, moved))
        out[f"hair_sides_{a:+g}"] = float(got.mean())
        out[f"longer_{a:+g}"] = float((got > base + MOVED).mean())
        out[f"shorter_{a:+g}"] = float((got < base - MOVED).mean())
    return out


def attach(model_dir: Path, models_dir: Path | None = None, *, steps: int = 400, seed: int = 0,
           measure_faces: int = MEASURE_FACES) -> dict:
    """Learn every stroke walk on the export's prior and add it to the export (a walk of the
    same name is replaced); returns the metrics per walk."""
    from core.configs.encoder import STROKE_WALKS
    from core.manifest import DoodleWalk, ModelManifest, sha256_file
    from training.prior.from_onnx import generator_from_export

    model_dir = Path(model_dir)
    manifest = ModelManifest.load(model_dir)
    spec = manifest.doodle
    if spec is None:
        raise ValueError(f"{model_dir} is not a doodle encoder export")
    if spec.stroke_parts is None:
        raise ValueError(f"{model_dir} has no stroke reader: attach one first (python -m training.doodle.strokes)")
    G = generator_from_export(Path(models_dir or model_dir.parent) / spec.prior).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    member = next(m for m in manifest.members if m.label == spec.directions)
    directions = np.load(model_dir / member.file, allow_pickle=False)
    walks = list(spec.walks)
    metrics: dict[str, dict] = {}
    for mapping in STROKE_WALKS:
        walk = WALKS[mapping.walk]
        t0 = time.perf_counter()
        d = learn_walk(G, walk, steps=steps, seed=seed)
        seconds = time.perf_counter() - t0
        full = np.zeros((G.num_ws, G.w_dim), np.float32)
        full[list(walk.layers)] = d.numpy()
        entry = DoodleWalk(name=mapping.walk, layers=list(walk.layers), attribute=mapping.attribute,
                           scale=mapping.scale, centre=mapping.centre, low=mapping.low, high=mapping.high,
                           keep_identity=mapping.keep_identity)
        names = [w.name for w in walks]
        if entry.name in names:
            k = names.index(entry.name)
            walks[k], directions[k] = entry, full
        else:
            walks.append(entry)
            directions = np.concatenate([directions, full[None]])
        m = measure_long_hair(G, d, list(walk.layers), (mapping.low, mapping.high), count=measure_faces) \
            if mapping.walk == "long_hair" else {}
        metrics[mapping.walk] = {"steps": steps, "seed": seed, "seconds": round(seconds, 1), **m}
        log.info("walk %s: %s", mapping.walk, metrics[mapping.walk])
    path = model_dir / member.file
    np.save(path, directions.astype(np.float32))
    source = {**member.source, "stroke_walks": {"learned": "training.doodle.stroke_walks", **metrics}}
    members = [m.model_copy(update={"sha256": sha256_file(path), "bytes": path.stat().st_size, "source": source})
               if m is member else m for m in manifest.members]
    doodle = spec.model_copy(update={"walks": walks})
    manifest.model_copy(update={"members": members, "doodle": doodle}).save(model_dir)
    return metrics


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Learn the prior's walks that the strokes set (long hair) and add "
                                            "them to a doodle encoder export.",
                                epilog="example: python -m training.doodle.stroke_walks --model models/doodle_encoder")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    print(json.dumps(attach(args.model, steps=args.steps, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
