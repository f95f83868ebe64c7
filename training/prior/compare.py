"""Compare exported StyleGAN priors side by side on held-out real anime faces.

Every prior draws the same seeds at each truncation; each set of faces is measured as the
drawing models are (``training.doodle.evaluate``): Fréchet distances on 4x4 and 8x8 pooled
pixels and on random-convolution features, and the fine texture (Laplacian-patch SWD), as ratios
to the distance of a second held-out set of real faces (1 = as close as real faces are to each
other); diversity and colour spread as ratios to real faces; and how well fresh classifiers tell
each prior's faces from real ones (held-out AUC, ``training.detectability``), which sees grain
and broken eyes that the distances reward or miss.
The real reference is faces [13400, 14400) of the anime set, the second set
[14400, 14800): a prior that trained on them (the first shipped one did) is flattered, which
the table says. Writes ``priors.md``, ``priors.json`` and ``priors_grid.png`` (the same seeds,
one row per prior).

    python -m training.prior.compare --model shipped=models/anime_faces --model tuned=exports/x --out figs
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from core.manifest import ModelManifest
from training.doodle.evaluate import ANIME_HOLDOUT_START, RealReference, heldout_faces, realism_and_diversity
from training.detectability import told_apart
from training.doodle.report import random_faces
from training.report import labelled_grid, markdown_table, named_folders
from training.train_gan import weights_file

log = logging.getLogger(__name__)

COLUMNS = (("fd_pixels4_ratio", "realism: pixels 4x4"), ("fd_pixels8_ratio", "pixels 8x8"),
           ("fd_randconv_ratio", "rand-conv"), ("swd_texture1_ratio", "texture 1 px"),
           ("swd_texture2_ratio", "texture 2 px"), ("diversity_ratio", "diversity"),
           ("colour_spread_ratio", "colour spread"), ("told_apart_auc", "told apart (AUC)"),
           ("held_out_seen", "saw the held-out faces"))


def _saw_heldout(folder: Path) -> str:
    """Whether the prior's training (by its manifest) read the held-out faces: "yes", "no", or
    "through its start" for a fine-tune of a prior that did; "unknown" without a record."""
    config = (ModelManifest.load(folder).training or {}).get("config")
    if config is None:
        return "unknown"
    limit = config.get("anime_limit")
    if limit is None or limit > ANIME_HOLDOUT_START:
        return "yes"
    start = config.get("init_generator")
    if start:
        try:
            start_dir = weights_file(start).parent
        except FileNotFoundError:
            return "unknown"
        if not (start_dir / "manifest.json").is_file():
            return "unknown"
        if _saw_heldout(start_dir) != "no":
            return "through its start"
    return "no"


def _told_apart(folder: Path, psi: float, ref, cmp_, seeds: int) -> float | str:
    """``training.detectability.told_apart`` of the prior's faces (other seeds than the table's):
    trained against the reference faces, scored against the second set."""
    if seeds <= 0:
        return "-"
    fake = random_faces(folder, len(ref) + len(cmp_), psi, seed=6)
    return told_apart(ref, fake[:len(ref)], cmp_, fake[len(ref):], seeds)


def compare_priors(models: dict[str, Path], data_dir: Path, out: Path, *, count: int = 400,
                   psis: tuple[float, ...] = (1.0, 0.7), detect_seeds: int = 2) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ref, cmp_ = heldout_faces(data_dir)
    real = RealReference.of(ref, cmp_)
    rows: dict[str, dict] = {}
    shown = {}
    for name, folder in models.items():
        seen = _saw_heldout(Path(folder))
        for psi in psis:
            log.info("measuring %s at psi %s", name, psi)
            faces = random_faces(Path(folder), count, psi)
            rows[f"{name}, psi {psi}"] = {**realism_and_diversity(faces, real), "held_out_seen": seen,
                                          "told_apart_auc": _told_apart(Path(folder), psi, ref, cmp_, detect_seeds)}
            if psi == psis[-1]:
                shown[f"{name} psi {psi}"] = faces
    rows["real anime faces (second held-out set)"] = {**realism_and_diversity(cmp_, real), "held_out_seen": "-",
                                                      "told_apart_auc": "-"}
    shown["real faces (held out)"] = cmp_
    labelled_grid(shown, out / "priors_grid.png", count=12, size=64)
    summary = {"faces_per_row": count, "real_reference": len(ref), "real_second_set": len(cmp_),
               "floor": real.floor, "models": {k: str(v) for k, v in models.items()},
               "wall_s": round(time.perf_counter() - t0, 1), "rows": rows}
    (out / "priors.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "priors.md").write_text(markdown_table(rows, COLUMNS, first="prior"))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER",
                   help="an exported StyleGAN prior (repeat for each)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True, help="the shared data folder (D2A_DATA_DIR of the app)")
    p.add_argument("--count", type=int, default=400, help="faces per prior and truncation")
    p.add_argument("--detect-seeds", type=int, default=2,
                   help="fresh real-vs-generated classifiers per row, their held-out AUC averaged (0: none; "
                        "about 40 s each on two CPU cores)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        models = named_folders(args.model)
    except ValueError as err:
        p.error(f"--model: {err}")
    summary = compare_priors(models, args.data_dir, args.out, count=args.count, detect_seeds=args.detect_seeds)
    print((args.out / "priors.md").read_text())
    return 0 if summary["rows"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
