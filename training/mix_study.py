"""Which sketch-domain mix works best on real doodles? Train short runs that differ only in the
mix, export each, and measure them on the 400 held-out real Quick, Draw! smileys.

Measures (all on held-out real doodles):
- ``follow_score`` and ``diversity_l1``: see ``training.report.holdout_checks``.
- ``holdout_cycle_l1``: how much of the doodle survives the cycle sketch -> anime -> sketch.
- ``rf_fd``: Fréchet distance between the faces made from the doodles and 2,000 real anime faces,
  in the feature space of ``training.metrics.RandomConvFeatures`` (``rand-conv-v1``, a seeded,
  randomly initialised conv net; no pretrained weights can be downloaded here). It is NOT an FID
  and is not comparable to published numbers; it only ranks our own runs against each other:
  lower means closer to the anime faces' statistics. ``doodle2anime evaluate`` reports the same
  measure as ``fid_randconv``, or a real FID when the Inception weights are given.

Usage: python -m training.mix_study --data-dir ../shared/data --steps 2000 --ngf 16 --out runs/mix_study --parallel 2
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
from pathlib import Path

import numpy as np

MIXES = {
    "quickdraw_only": {"quickdraw": 1.0, "synthetic": 0.0, "edges": 0.0},
    "synthetic_only": {"quickdraw": 0.0, "synthetic": 1.0, "edges": 0.0},
    "quickdraw_synthetic": {"quickdraw": 0.5, "synthetic": 0.5, "edges": 0.0},
    "quickdraw_synthetic_edges": {"quickdraw": 0.5, "synthetic": 0.4, "edges": 0.1},
}


def _train_one(args: tuple[str, dict, int, int, str, str, int]) -> str:
    name, mix, steps, ngf, out, data_dir, threads = args
    from training.export import export_run
    from training.train_cyclegan import CycleGANConfig, CycleGANTrainer

    base = json.loads((Path(__file__).parent / "configs" / "cpu_default.json").read_text())
    base.update(steps=steps, decay_steps=steps // 2, mix=mix, ngf=ngf, snapshot_every=0,
                sample_every=max(steps // 3, 1), checkpoint_every=max(steps // 6, 1), eval_count=100)
    run = Path(out) / name
    CycleGANTrainer(CycleGANConfig.model_validate(base), run, Path(data_dir), threads=threads).run()
    export_run(run, run / "model", name=name, data_dir=Path(data_dir))
    return name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps per mix")
    p.add_argument("--out", type=str, default="runs/mix_study", help="folder for the runs and results.json")
    p.add_argument("--ngf", type=int, default=16, help="generator width (the shipped model uses 32)")
    p.add_argument("--parallel", type=int, default=2, help="runs trained at once (one thread each)")
    p.add_argument("--only", type=str, default=None, help="comma-separated mix names (default: all)")
    p.add_argument("--data-dir", type=str, required=True, help="the shared data folder (D2A_DATA_DIR of the app)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = Path(args.data_dir)
    names = args.only.split(",") if args.only else list(MIXES)
    unknown = [n for n in names if n not in MIXES]
    if unknown:
        raise SystemExit(f"unknown mix {unknown}; valid: {', '.join(MIXES)}")
    jobs = [(n, MIXES[n], args.steps, args.ngf, args.out, str(data_dir), 1 if args.parallel > 1 else 2) for n in names]
    todo = [j for j in jobs if not (Path(args.out) / j[0] / "model" / "manifest.json").is_file()]
    if todo:
        with mp.get_context("spawn").Pool(max(1, args.parallel)) as pool:
            for done in pool.imap_unordered(_train_one, todo):
                logging.info("trained %s", done)

    from training.data import load_anime_faces, load_quickdraw
    from training.report import holdout_checks, holdout_grid
    from core.runtime import Ensemble
    from training.metrics import FeatureStats, RandomConvFeatures, frechet_distance

    extractor = RandomConvFeatures()

    def rf_fd(images: np.ndarray, ref: FeatureStats) -> float:
        return frechet_distance(FeatureStats.of(extractor.features(images, batch_size=200)), ref)

    anime = load_anime_faces(data_dir, 64, None)[::7][:2000]
    ref = FeatureStats.of(extractor.features(anime, batch_size=200))
    doodles = load_quickdraw(data_dir, "holdout")
    # The floor: other real anime faces (400, like the doodles) against the same reference.
    results: dict[str, dict] = {"real_anime_floor": {"rf_fd": rf_fd(load_anime_faces(data_dir, 64, None)[3::7][:400], ref)}}
    for n in names:
        run = Path(args.out) / n
        model = run / "model"
        faces = Ensemble(model, ["CPUExecutionProvider"]).translate_bitmaps(doodles, [0])[0]
        row = {"mix": MIXES[n], "steps": args.steps, "ngf": args.ngf, "rf_fd": rf_fd(faces, ref)}
        row.update(json.loads((run / "metrics.json").read_text()))
        checks = holdout_checks(model, data_dir)
        row.update({k: checks[k] for k in ("follow_score", "diversity_l1")})
        holdout_grid(model, data_dir, Path(args.out) / f"{n}_grid.png", count=12)
        results[n] = row
        logging.info("%s: %s", n, row)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
