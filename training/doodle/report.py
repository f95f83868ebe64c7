"""``doodle2anime evaluate-drawing``: every drawing model and the baselines measured in one run,
on the same held-out doodles and the same held-out anime faces, with the same number of faces.

Rows: each drawing model in the models folder (a CycleGAN ensemble member by member; a doodle
encoder at its default, at "follow" 1, and with one fixed palette seed, which is how the
controlled edits are read: the face's identity then cannot change with the drawing, so what
changes is what the drawing says), random StyleGAN faces at psi 0.7 and 1.0, and the second set
of real faces. Writes ``drawing_eval.json``, ``drawing_eval.md`` (the table) and the grids.

Besides the columns of ``training.doodle.evaluate``, each row of generated faces gets **told
apart**: the held-out AUC of fresh classifiers trained to tell its faces from real ones
(``training.detectability``; 0.5: they cannot), the realism measure that grain, blur or broken
eyes cannot fool. Its faces are split by drawing (three quarters to train on, the rest to score),
the real ones by the fixed held-out sets.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.manifest import ModelManifest
from core.runtime import Ensemble, FaceModel
from training.doodle.evaluate import (
    EDITS,
    RealReference,
    controlled_edits,
    evaluate_faces,
    heldout_doodles,
    heldout_faces,
    side_by_side,
)
from training.detectability import told_apart
from training.doodle.measure import READER_STEPS, DoodleReader

log = logging.getLogger(__name__)

COLUMNS = (
    ("fd_pixels4_ratio", "realism: pixels 4x4"), ("fd_pixels8_ratio", "pixels 8x8"),
    ("fd_randconv_ratio", "rand-conv"), ("swd_texture1_ratio", "texture 1 px"),
    ("swd_texture2_ratio", "texture 2 px"), ("told_apart_auc", "told apart (AUC)"), ("diversity_ratio", "diversity"),
    ("colour_spread_ratio", "colour spread"), ("match_top1_fine", "match top-1 fine"),
    ("match_top1_coarse", "coarse"),
)


def _painters(folder: Path, providers: list[str] | None) -> dict[str, tuple[Callable, Callable | None]]:
    """Row name -> (painter for the table, painter for the controlled edits or None)."""
    manifest = ModelManifest.load(folder)
    if manifest.doodle is not None:
        from core.doodle_model import DoodleFaceModel

        model = DoodleFaceModel(folder, providers)

        def at(**kw):
            return lambda b: model.paint(b, **kw)[:, 0]

        label = f"{manifest.name} v{manifest.version}"
        return {f"{label} (default)": (at(), at(seed=0)),
                f"{label} (follow 1)": (at(follow=1.0), at(seed=0, follow=1.0))}
    if manifest.stylegan is not None or manifest.input.__class__.__name__ != "SketchInput":
        return {}
    ens = Ensemble(folder, providers)
    return {f"{manifest.name} v{manifest.version} member {i}": ((lambda b, i=i: ens.translate_bitmaps(b, [i])[0]),) * 2
            for i in range(len(ens.members))}


def _stroke_rows(folder: Path, providers: list[str] | None, grid_dir: Path, label: str) -> dict:
    """The rows of the edit table painted from strokes, through the page's path: the hair rows
    for a model with a stroke reader, and the crayon rows for one that takes crayons (else none)."""
    from core.doodle_model import DoodleFaceModel
    from training.doodle.crayons import crayon_edits
    from training.doodle.hair_edits import hair_edits

    model = DoodleFaceModel(folder, providers)
    rows = hair_edits(model, grid_dir=grid_dir, label=label) if model.stroke_parts is not None else {}
    if "colors" in model.controls:
        rows.update(crayon_edits(model, grid_dir=grid_dir, label=label))
    return rows


def random_faces(prior: Path, n: int, psi: float, seed: int = 5) -> np.ndarray:
    model = FaceModel(prior, ["CPUExecutionProvider"])
    out = []
    for i in range(0, n, 100):
        seeds = list(range(seed * 100000 + i, seed * 100000 + min(n, i + 100)))
        out.append(model.arrays(model.broadcast(model.w(seeds, psi))))
    return np.concatenate(out)


def _told_apart(faces: np.ndarray, ref: np.ndarray, cmp_: np.ndarray, seeds: int) -> float | str:
    """``training.detectability.told_apart`` of faces made for the held-out drawings: trained on
    the first three quarters of the drawings' faces against the reference faces, scored on the
    last quarter's against the second real set."""
    split = len(faces) * 3 // 4
    return told_apart(ref, faces[:split], cmp_, faces[split:], seeds)


def evaluate_drawing_models(folders: list[Path], prior: Path, data_dir: Path, out: Path, *,
                            providers: list[str] | None = None, doodles: int = 400,
                            cache_dir: Path | None = None, detect_seeds: int = 2,
                            reader_steps: int = READER_STEPS) -> dict:
    """Every row measured on the same held-out doodles and faces: see the module's docstring.
    ``cache_dir`` keeps the evaluation's doodle reader between runs; ``detect_seeds`` classifiers
    per row give the told-apart column (0: none)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ref, cmp_ = heldout_faces(data_dir)
    real = RealReference.of(ref, cmp_)
    held = heldout_doodles(data_dir, doodles)
    readings = DoodleReader(cache_dir, steps=reader_steps).read(held)
    results: dict[str, dict] = {}
    shown: dict[str, np.ndarray] = {}
    for folder in folders:
        for row, (paint, edit_paint) in _painters(Path(folder), providers).items():
            log.info("measuring %s", row)
            faces = paint(held)
            r = evaluate_faces(faces, held, real, readings)
            r["told_apart_auc"] = _told_apart(faces, ref, cmp_, detect_seeds)
            r["edits"] = controlled_edits(edit_paint, grid_dir=out / "edits", label=row)
            if row.endswith("(default)"):
                r["edits"].update(_stroke_rows(Path(folder), providers, out / "edits", row))
            results[row] = r
            shown[row] = faces[:12]
    for psi in (0.7, 1.0):
        faces = random_faces(prior, len(held), psi)
        results[f"random StyleGAN faces, psi {psi}"] = {**evaluate_faces(faces, held, real, readings),
                                                        "told_apart_auc": _told_apart(faces, ref, cmp_, detect_seeds)}
        shown[f"random psi {psi}"] = faces[:12]
    # as many real faces as every other row has (all 400 at the default)
    results["real anime faces (second held-out set)"] = {**evaluate_faces(cmp_[:len(held)], held, real, readings),
                                                         "told_apart_auc": "-"}
    side_by_side(held, shown, out / "side_by_side.png")
    summary = {"doodles": len(held), "real_reference": len(ref), "real_second_set": len(cmp_),
               "floor": real.floor, "wall_s": round(time.perf_counter() - t0, 1),
               "rows_in_side_by_side": ["the drawings", *shown], "rows": results}
    (out / "drawing_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "drawing_eval.md").write_text(table(results))
    return summary


FOLLOW_COLUMNS = (("follow_tilt", "tilt"), ("follow_long", "long"), ("follow_face_fraction", "face size"),
                  ("follow_eye_size", "eyes"), ("follow_mouth_open", "mouth"), ("match_top1_attributes", "match top-1"))


def table(results: dict[str, dict]) -> str:
    """Three markdown tables: realism, diversity and edge matching; following the drawing (the
    evaluation reader's attributes against the face measurements); the controlled edits."""
    from training.report import markdown_table

    follow_columns = [(k, ("follow: " if i == 0 else "") + label) for i, (k, label) in enumerate(FOLLOW_COLUMNS)]
    head, follow = markdown_table(results, COLUMNS), "\n" + markdown_table(results, follow_columns)
    edit_names = list(EDITS)
    edits = ("\n| model | " + " | ".join(f"{n} (change ratio / agreement)" for n in edit_names)
             + " | tilt: roll change |\n|---|" + "---:|" * (len(edit_names) + 1) + "\n")
    for name, r in results.items():
        if "edits" not in r:
            continue
        e = r["edits"]
        edits += "| " + name + " | " + " | ".join(f"{e[n]['change_ratio']:.1f} / {e[n]['agreement']:.2f}" for n in edit_names)
        roll = e["tilt left -> right"]["measure_change"]
        edits += f" | {roll:+.0f}° |\n"
    return head + follow + edits + stroke_table(results)


def stroke_table(results: dict[str, dict]) -> str:
    """The edits painted from strokes (hair strokes, crayons), one line per edit and model that
    has them: change ratio, agreement, and for the hair rows the share of faces whose hair beside
    the cheeks moved at all."""
    lines = []
    for name, r in results.items():
        for edit, e in r.get("edits", {}).items():
            if edit in EDITS:
                continue
            agreement = "-" if e["agreement"] != e["agreement"] else f"{e['agreement']:.2f}"   # NaN: a control
            moved = f"{e['moved']:.2f}" if "moved" in e else "-"
            lines.append(f"| {name} | {edit} | {e['change_ratio']:.2f} | {agreement} | {moved} |")
    if not lines:
        return ""
    return ("\n| model | edit from strokes | change ratio | agreement | hair beside the cheeks moved |\n"
            "|---|---|---:|---:|---:|\n" + "\n".join(lines) + "\n")


# -- the registry's evaluator and report of the doodle_encoder kind ------------------------------

def encoder_sampler(folder: Path, manifest: ModelManifest, *, seed: int = 0, data_dir: Path | None = None,
                    providers: list[str] | None = None, threads: int = 0):
    """FID / KID samples: the faces of the held-out real doodles, variation after variation (the
    drawing's own colours, then the palettes), as the CycleGAN's are member after member."""
    from core.doodle_model import DoodleFaceModel
    from training.data import load_quickdraw
    from training.evaluate import Sampler

    if data_dir is None:
        raise ValueError("a drawing model is measured on the held-out doodles of the data folder: pass data_dir")
    model = DoodleFaceModel(folder, providers or ["CPUExecutionProvider"], threads)
    doodles = load_quickdraw(Path(data_dir), "holdout")
    variations = len(model.members)
    order = [(v, i) for v in range(variations) for i in range(len(doodles))]
    pos = 0

    def sample(n: int) -> np.ndarray:
        nonlocal pos
        chunk, pos = order[pos: pos + n], pos + n
        out = [model.paint(doodles[[i for v2, i in chunk if v2 == v]], variations=v + 1)[:, v]
               for v in sorted({v for v, _ in chunk})]
        return np.concatenate(out) if out else np.zeros((0, 1, 1, 3), np.uint8)

    return Sampler(sample, len(order), f"{len(doodles)} held-out Quick, Draw! doodles x {variations} colourings")


def encoder_report(run_dir: Path, model_dir: Path, out: Path, *, data_dir: Path, columns: int = 16) -> dict:
    """A doodle encoder run's figures: loss curves, a held-out grid (drawing, its face, the face
    at follow 1, two palettes), the controlled-edit grids, and the R2 of every attribute."""
    from core.doodle_model import DoodleFaceModel
    from training.report import _loss_rows, _plot_panels

    run_dir, model_dir, out = Path(run_dir), Path(model_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _loss_rows(run_dir)
    walks = tuple(sorted({k for r in rows for k in r if k.startswith("walk_")}))
    _plot_panels(rows, [("walks of the prior", walks), ("encoder", ("loss", "attributes", "yes_no"))],
                 out / "loss_curves.png", 1)  # every row is already a mean over log_every steps
    model = DoodleFaceModel(model_dir, ["CPUExecutionProvider"])
    held = heldout_doodles(data_dir, 2 * columns)
    for k, part in enumerate((held[:columns], held[columns:])):
        faces = model.paint(part, variations=3)
        side_by_side(part, {"own colours": faces[:, 0], "palette 1": faces[:, 1], "palette 2": faces[:, 2],
                            "follow 1": model.paint(part, follow=1.0)[:, 0]},
                     out / f"holdout_grid{'' if k == 0 else '_2'}.png", count=columns)
    edits = controlled_edits(lambda b: model.paint(b, seed=0)[:, 0], grid_dir=out / "edits", label=model.name)
    final = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    made = {**final, **{f"edit {n}: change ratio": e["change_ratio"] for n, e in edits.items()}}
    (out / "report.json").write_text(json.dumps(made, indent=2) + "\n")
    return made
