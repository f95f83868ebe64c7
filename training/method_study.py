"""The drawing methods of the sketch->anime paper compared under one protocol: CycleGAN, DiscoGAN
and UNIT; CycleGAN with and without Salimans et al.'s minibatch discrimination; one member
against an ensemble of three; and, on line drawings, the paired line-art model against a
CycleGAN trained on the same edge sketches unpaired (the paper's first experiment).

Every run reads one config file (``common`` fields, ``unpaired`` fields for the unpaired kinds,
then each run's own), the same data mix, batch, learning rate, seed and number of steps. Each is
exported (its last snapshot alone, and for the plain CycleGAN also its last three snapshots as an
ensemble) and measured with the project's drawing evaluation (``training.doodle.evaluate``) on
the same held-out real doodles and held-out anime faces, beside random real faces:

- drawings: realism (Fréchet distances as ratios to real), diversity and colour spread (ratios
  to real), matching each face back to its drawing, following the drawing, the controlled edits;
- line drawings: the held-out faces [14400, 14800)'s own edge sketches, framed as the rasterizer
  frames a thin-pen drawing; realism and diversity as above, and the L1 distance to the face the
  sketch was made from (a coloured sketch should come back close to it).

Writes ``method_study.json``, ``method_study.md`` and the grids into ``--out``.

Usage: python -m training.method_study --config training/configs/method_study_cpu.json --out runs/method_study
       --data-dir ../shared/data [--only cyclegan,unit] [--evaluate-only]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

ENSEMBLE = 3
LINE_FACES = (14400, 14800)


def run_configs(path: Path) -> dict[str, dict]:
    """Each run's full config (with its ``kind``) from a study config file."""
    raw = json.loads(Path(path).read_text())
    out = {}
    for name, own in raw["runs"].items():
        kind = own["kind"]
        fields = {**raw["common"], **(raw.get("unpaired", {}) if kind != "lineart" else {}), **own}
        if kind == "cyclegan":
            fields.pop("kind")
        out[name] = {"kind": kind, "config": fields}
    return out


def train(name: str, spec: dict, out: Path, data_dir: Path, threads: int) -> None:
    from core.kinds import get_kind
    from training.export import export_run

    kind = get_kind(spec["kind"])
    config = kind.config.model_validate(spec["config"])
    run = out / name
    t0 = time.perf_counter()
    kind.trainer.load()(config, run, data_dir, threads=threads).run()
    log.info("%s: trained in %.0f s", name, time.perf_counter() - t0)
    last = [config.steps] if not config.snapshot_every else [config.steps - i * config.snapshot_every for i in range(ENSEMBLE)][::-1]
    export_run(run, run / "model", name=name, data_dir=data_dir, snapshots=last[-1:] if config.snapshot_every else None)
    if spec["kind"] == "cyclegan" and name == "cyclegan" and config.snapshot_every:
        export_run(run, run / "ensemble", name=f"{name}_ensemble", data_dir=data_dir, snapshots=last)


def _ensemble_painter(folder: Path):
    """An ensemble as a user meets it: each drawing's face from one of the members in turn."""
    from core.runtime import Ensemble

    ens = Ensemble(folder, ["CPUExecutionProvider"])

    def paint(bitmaps: np.ndarray) -> np.ndarray:
        faces = ens.translate_bitmaps(bitmaps, list(range(len(ens.members))))
        return np.stack([faces[i % len(faces)][i] for i in range(len(bitmaps))])

    return paint


def evaluate(out: Path, data_dir: Path, names: list[str], doodles: int = 400) -> dict:
    from core.runtime import Ensemble
    from training.doodle.evaluate import (RealReference, controlled_edits, evaluate_faces, heldout_doodles,
                                          heldout_faces, realism_and_diversity, side_by_side)
    from training.doodle.measure import DoodleReader
    from training.doodle.report import table
    from training.data import load_anime_faces
    from core.configs.translation import LineArtConfig
    from training.train_lineart import framed_pairs

    ref, cmp_ = heldout_faces(data_dir)
    real = RealReference.of(ref, cmp_)
    held = heldout_doodles(data_dir, doodles)
    readings = DoodleReader(out / "reader_cache").read(held)
    rows: dict[str, dict] = {}
    shown: dict[str, np.ndarray] = {}
    painters = {}
    for name in names:
        model = out / name / "model"
        if not (model / "manifest.json").is_file():
            continue
        ens = Ensemble(model, ["CPUExecutionProvider"])
        painters[name] = lambda b, ens=ens: ens.translate_bitmaps(b, [0])[0]
        if (out / name / "ensemble" / "manifest.json").is_file():
            painters[f"{name}, ensemble of {ENSEMBLE}"] = _ensemble_painter(out / name / "ensemble")
    drawing_rows = [n for n in painters if not n.startswith(("lineart", "cyclegan_edges"))]
    for name in drawing_rows:
        log.info("drawings: %s", name)
        faces = painters[name](held)
        r = evaluate_faces(faces, held, real, readings)
        r["edits"] = controlled_edits(painters[name], grid_dir=out / "edits", label=name)
        rows[name] = r
        shown[name] = faces[:12]
    # The shipped models in the same run: the previous drawing model (the CycleGAN ensemble's first
    # member) and the one that serves the page (the doodle encoder), and random StyleGAN faces.
    from training.doodle.report import _painters, random_faces

    models = Path(__file__).resolve().parents[1] / "models"
    shipped = {**_painters(models / "sketch2anime", ["CPUExecutionProvider"]),
               **_painters(models / "doodle_encoder", ["CPUExecutionProvider"])}
    for name in ("sketch2anime v1 member 0", "doodle_encoder v1 (default)"):
        if name in shipped:
            rows[f"shipped: {name}"] = evaluate_faces(shipped[name][0](held), held, real, readings)
    rows["random StyleGAN faces, psi 0.7"] = evaluate_faces(random_faces(models / "anime_faces", len(held), 0.7),
                                                           held, real, readings)
    rng = np.random.default_rng(0)
    random_real = cmp_[rng.integers(len(cmp_), size=len(held))]
    rows["random real anime faces (no drawing read)"] = evaluate_faces(random_real, held, real, readings)
    side_by_side(held, shown, out / "side_by_side.png")

    line_rows: dict[str, dict] = {}
    line_shown: dict[str, np.ndarray] = {}
    faces_all = load_anime_faces(data_dir, 64)[LINE_FACES[0]:LINE_FACES[1]]
    sketches, targets = framed_pairs(faces_all, LineArtConfig())
    for name in [n for n in painters if n.startswith(("lineart", "cyclegan_edges"))]:
        faces = painters[name](sketches)
        if faces.shape[1:3] != targets.shape[1:3]:
            faces = np.stack([np.asarray(Image.fromarray(f).resize(targets.shape[1:3], Image.Resampling.LANCZOS)) for f in faces])
        r = realism_and_diversity(faces, real)
        r["l1_to_own_face"] = float(np.abs(faces.astype(np.float32) - targets).mean() / 255.0)
        line_rows[name] = r
        line_shown[name] = faces[:12]
    if line_rows:
        line_rows["the faces the sketches were made from"] = {
            **realism_and_diversity(targets, real), "l1_to_own_face": 0.0}
        shuffled = targets[np.roll(np.arange(len(targets)), 1)]
        line_rows["another real face (a sketch's neighbour)"] = {
            **realism_and_diversity(shuffled, real),
            "l1_to_own_face": float(np.abs(shuffled.astype(np.float32) - targets).mean() / 255.0)}
        line_shown["real"] = targets[:12]
        side_by_side(sketches, line_shown, out / "line_art_side_by_side.png")
    summary = {"doodles": len(held), "line_drawings": len(sketches), "rows": rows, "line_art_rows": line_rows}
    (out / "method_study.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "method_study.md").write_text(table(rows) + "\n" + line_table(line_rows))
    return summary


LINE_COLUMNS = (("fd_pixels4_ratio", "realism: pixels 4x4"), ("fd_randconv_ratio", "rand-conv"),
                ("diversity_ratio", "diversity"), ("colour_spread_ratio", "colour spread"),
                ("l1_to_own_face", "L1 to its own face"))


def line_table(rows: dict[str, dict]) -> str:
    from training.report import markdown_table

    return markdown_table(rows, LINE_COLUMNS, first="on held-out line drawings")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the study's config file (training/configs/method_study_*.json)")
    p.add_argument("--out", default="runs/method_study", help="folder for the runs and the results")
    p.add_argument("--data-dir", required=True, help="the shared data folder (D2A_DATA_DIR of the app)")
    p.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (one run at a time)")
    p.add_argument("--evaluate-only", action="store_true", help="measure what is trained, train nothing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    specs = run_configs(Path(args.config))
    names = args.only.split(",") if args.only else list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise SystemExit(f"unknown run {unknown}; valid: {', '.join(specs)}")
    out, data_dir = Path(args.out), Path(args.data_dir)
    if not args.evaluate_only:
        for name in names:
            if not (out / name / "model" / "manifest.json").is_file():
                train(name, specs[name], out, data_dir, args.threads)
    evaluate(out, data_dir, list(specs))
    print((out / "method_study.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
