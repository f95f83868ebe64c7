"""The selfie2anime paper's experiments under one protocol: vanilla CycleGAN, with the identity
loss, a lower cycle-loss weight, SGD with momentum, a cyclic learning rate, a constant one (no
linear decay) and weight decay, each trained for the same steps on the same photos and anime faces
(``training/configs/photo_study_*.json``), exported, and measured on the 224 held-out photos:

- realism: Fréchet distances of the anime faces against held-out anime faces [3000, 3200), as
  ratios to the distance of the second held-out set [3200, 3400) (``training.doodle.evaluate``'s
  measures: pooled pixels and random-conv features), with diversity and colour spread as ratios;
- how much of the person survives: ``layout``, the mean correlation between each photo's and its
  anime face's 8x8 grey levels (where the light and dark parts are), against the same for
  mismatched pairs (``layout_mismatched``); ``hair_dark``, the correlation over photos between
  the darkness of the photo's top band (mostly hair) and the anime face's; ``colour_shift``, the
  mean distance between the photo's and the face's mean colours (0 to 1);
- ``holdout_cycle_l1``: photo -> anime -> photo, from the run's own measure.

Baselines in the same run: random held-out anime faces (no photo read), the photos themselves and
any exported model named by ``--compare`` (the shipped one). Writes ``photo_study.json``,
``photo_study.md``, ``photo_study_grid.png`` (held-out photos, then each run's anime faces) and
``photo_study_curves.png`` (each run's losses side by side) into ``--out``.

Usage: python -m training.photo_study --config training/configs/photo_study_cpu.json --out runs/photo_study
       --data-dir ../shared/data [--only vanilla,identity] [--evaluate-only] [--compare shipped=models/selfie2anime]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from core.configs.translation import PHOTO_HOLDOUT_START, SELFIE_ANIME_HOLDOUT_START

log = logging.getLogger(__name__)

COLUMNS = (("fd_pixels4_ratio", "realism: pixels 4x4"), ("fd_randconv_ratio", "rand-conv"),
           ("diversity_ratio", "diversity"), ("colour_spread_ratio", "colour spread"), ("layout", "layout"),
           ("layout_mismatched", "layout, mismatched"), ("hair_dark", "hair darkness kept"),
           ("colour_shift", "colour shift"), ("holdout_cycle_l1", "cycle L1"), ("train_s", "train s"))


def _grey8(images: np.ndarray) -> np.ndarray:
    g = images.astype(np.float64).mean(axis=3)
    n, s = g.shape[:2]
    g = g.reshape(n, 8, s // 8, 8, s // 8).mean(axis=(2, 4)).reshape(n, -1)
    g -= g.mean(axis=1, keepdims=True)
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-9)


def person_kept(photos: np.ndarray, faces: np.ndarray) -> dict[str, float]:
    a, b = _grey8(photos), _grey8(faces)
    band = max(1, photos.shape[1] // 4)
    dark_p = 255 - photos[:, :band].mean(axis=(1, 2, 3))
    dark_f = 255 - faces[:, :band].mean(axis=(1, 2, 3))
    mean_p = photos.reshape(len(photos), -1, 3).mean(axis=1) / 255.0
    mean_f = faces.reshape(len(faces), -1, 3).mean(axis=1) / 255.0
    return {"layout": float((a * b).sum(axis=1).mean()),
            "layout_mismatched": float((a * np.roll(b, 1, axis=0)).sum(axis=1).mean()),
            "hair_dark": float(np.corrcoef(dark_p, dark_f)[0, 1]),
            "colour_shift": float(np.abs(mean_p - mean_f).mean())}


def _resized(images: np.ndarray, size: int) -> np.ndarray:
    """Images at ``size`` px (a model trained at another size is measured at the study's size)."""
    from PIL import Image

    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR)) for im in images])


def _train_seconds(run_dir: Path) -> float:
    lines = (run_dir / "loss_log.jsonl").read_text().splitlines() if (run_dir / "loss_log.jsonl").is_file() else []
    return float(json.loads(lines[-1])["elapsed"]) if lines else float("nan")


def evaluate(out: Path, data_dir: Path, names: list[str], compare: dict[str, Path] | None = None, *,
             photo_count: int | None = None) -> dict:
    """Measure every trained run of ``names`` (and the exported models of ``compare``, named
    rows) on the held-out photos, beside the baselines; write the table, the JSON and a grid."""
    from core.photo import PhotoModel
    from training.doodle.evaluate import RealReference, realism_and_diversity
    from training.report import compare_curves, labelled_grid, markdown_table
    from training.train_selfie import load_photos, load_selfie_anime

    anime = load_selfie_anime(data_dir, 128)[SELFIE_ANIME_HOLDOUT_START:]
    real = RealReference.of(anime[:200], anime[200:400])
    photos = load_photos(data_dir, 128)[PHOTO_HOLDOUT_START:][:photo_count]  # all 224 unless a test asks for fewer
    models = {name: out / name / "model" for name in names}
    models.update(compare or {})
    rows: dict[str, dict] = {}
    shown: dict[str, np.ndarray] = {"held-out photos": photos}
    for name, folder in models.items():
        if not (folder / "manifest.json").is_file():
            continue
        model = PhotoModel(folder, ["CPUExecutionProvider"])
        faces = _resized(model.anime(_resized(photos, model.spec.image_size)), photos.shape[1])
        run_dir = out / name if name in names else None
        metrics = json.loads((run_dir / "metrics.json").read_text()) if run_dir else {}
        rows[name] = {**realism_and_diversity(faces, real), **person_kept(photos, faces),
                      "holdout_cycle_l1": metrics.get("holdout_cycle_l1", float("nan"))}
        if run_dir:
            rows[name]["train_s"] = _train_seconds(run_dir)
        rows[name] = {k: v for k, v in rows[name].items() if v == v}  # NaN -> a dash in the table
        shown[name] = faces
    # drawn from the second held-out set only, so that no face of the reference set is scored against itself
    rng = np.random.default_rng(0)
    second = anime[200:400]
    random_anime = second[rng.integers(len(second), size=len(photos))]
    rows["random held-out anime faces (no photo read)"] = {**realism_and_diversity(random_anime, real),
                                                           **person_kept(photos, random_anime)}
    rows["the photos themselves"] = {**realism_and_diversity(photos, real), **person_kept(photos, photos)}
    shown["random held-out anime faces"] = random_anime
    labelled_grid(shown, out / "photo_study_grid.png")
    compare_curves({n: out / n for n in names}, ("G_gan", "cycle", "identity", "D_B"), out / "photo_study_curves.png")
    summary = {"photos": len(photos), "anime_reference": 200, "anime_second_set": 200,
               "grid_rows": list(shown), "rows": rows}
    (out / "photo_study.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "photo_study.md").write_text(markdown_table(rows, COLUMNS, first="run"))
    return summary


def main(argv: list[str] | None = None) -> int:
    from core.kinds import get_kind
    from training.export import export_run
    from training.report import named_folders

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the study's config file (training/configs/photo_study_*.json)")
    p.add_argument("--out", default="runs/photo_study", help="folder for the runs and the results")
    p.add_argument("--data-dir", required=True, help="the shared data folder (D2A_DATA_DIR of the app)")
    p.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (one run at a time)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--evaluate-only", action="store_true", help="measure what is trained, train nothing")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=FOLDER",
                   help="an exported photo model measured beside the runs (repeatable), e.g. shipped=models/selfie2anime")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw = json.loads(Path(args.config).read_text())
    names = args.only.split(",") if args.only else list(raw["runs"])
    out, data_dir = Path(args.out), Path(args.data_dir)
    kind = get_kind("selfie2anime")
    if not args.evaluate_only:
        for name in names:
            if (out / name / "model" / "manifest.json").is_file():
                continue
            config = kind.config.model_validate({**raw["common"], **raw["runs"][name]})
            t0 = time.perf_counter()
            kind.trainer.load()(config, out / name, data_dir, threads=args.threads, device=args.device).run()
            log.info("%s: trained in %.0f s", name, time.perf_counter() - t0)
            export_run(out / name, out / name / "model", name=f"selfie2anime_{name}", data_dir=data_dir)
    try:
        compare = named_folders(args.compare)
    except ValueError as err:
        p.error(f"--compare: {err}")
    evaluate(out, data_dir, list(raw["runs"]), compare)
    print((out / "photo_study.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
