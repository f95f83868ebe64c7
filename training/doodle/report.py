"""``doodle2anime evaluate-drawing``: every drawing model and the baselines measured in one run,
on the same held-out doodles and the same held-out anime faces, with the same number of faces.

Rows: each drawing model in the models folder (a CycleGAN ensemble member by member; a doodle
encoder at its default, at "follow" 1, and with one fixed palette seed, which is how the
controlled edits are read: the face's identity then cannot change with the drawing, so what
changes is what the drawing says), random StyleGAN faces at psi 0.7 and 1.0, and the second set
of real faces. Writes ``drawing_eval.json``, ``drawing_eval.md`` (the table) and the grids.
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
    evaluate_painter,
    heldout_doodles,
    heldout_faces,
    side_by_side,
)

log = logging.getLogger(__name__)

COLUMNS = (
    ("fd_pixels4_ratio", "realism: pixels 4x4"), ("fd_pixels8_ratio", "pixels 8x8"),
    ("fd_randconv_ratio", "rand-conv"), ("diversity_ratio", "diversity"),
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


def random_faces(prior: Path, n: int, psi: float, seed: int = 5) -> np.ndarray:
    model = FaceModel(prior, ["CPUExecutionProvider"])
    out = []
    for i in range(0, n, 100):
        seeds = list(range(seed * 100000 + i, seed * 100000 + min(n, i + 100)))
        out += [np.asarray(im) for im in model.images(model.broadcast(model.w(seeds, psi)))]
    return np.stack(out)


def evaluate_drawing_models(folders: list[Path], prior: Path, data_dir: Path, out: Path, *,
                            providers: list[str] | None = None, doodles: int = 400) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ref, cmp_ = heldout_faces(data_dir)
    real = RealReference.of(ref, cmp_)
    held = heldout_doodles(data_dir, doodles)
    results: dict[str, dict] = {}
    shown: dict[str, np.ndarray] = {}
    for folder in folders:
        for row, (paint, edit_paint) in _painters(Path(folder), providers).items():
            log.info("measuring %s", row)
            faces = paint(held)
            from training.doodle.evaluate import matching, realism_and_diversity

            r = {**realism_and_diversity(faces, real), **matching(held, faces)}
            r["edits"] = controlled_edits(edit_paint, grid_dir=out / "edits", label=row)
            results[row] = r
            shown[row] = faces[:12]
    for psi in (0.7, 1.0):
        faces = random_faces(prior, len(held), psi)
        results[f"random StyleGAN faces, psi {psi}"] = evaluate_faces(faces, held, real)
        shown[f"random psi {psi}"] = faces[:12]
    results["real anime faces (second held-out set)"] = evaluate_faces(cmp_, held, real)
    side_by_side(held, shown, out / "side_by_side.png")
    summary = {"doodles": len(held), "real_reference": len(ref), "real_second_set": len(cmp_),
               "floor": real.floor, "wall_s": round(time.perf_counter() - t0, 1), "rows": results}
    (out / "drawing_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "drawing_eval.md").write_text(table(results))
    return summary


def table(results: dict[str, dict]) -> str:
    head = "| model | " + " | ".join(label for _, label in COLUMNS) + " |\n"
    head += "|---|" + "---:|" * len(COLUMNS) + "\n"
    rows = "".join("| " + name + " | " + " | ".join(f"{r[k]:.2f}" if k in r else "–" for k, _ in COLUMNS) + " |\n"
                   for name, r in results.items())
    edit_names = list(EDITS)
    edits = "\n| model | " + " | ".join(edit_names) + " | tilt: roll change |\n|---|" + "---:|" * (len(edit_names) + 1) + "\n"
    for name, r in results.items():
        if "edits" not in r:
            continue
        e = r["edits"]
        edits += "| " + name + " | " + " | ".join(f"{e[n]['change_ratio']:.2f}" for n in edit_names)
        edits += f" | {e['tilt left -> right'].get('roll_deg', float('nan')):+.0f}° |\n"
    return head + rows + edits
