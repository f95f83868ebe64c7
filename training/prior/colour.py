"""Setting a face's hair colour on the prior: a crayon's colour, or a variation's.

The fine style inputs (the palettes of the variations) hold only part of the hair's colour: over
8 faces and 64 palettes, a palette changed a face's hair colour less than the face itself did
(standard deviation 16 against 32 in sRGB). So the colour is set over more style inputs, by a
linear fit measured on the prior's own faces:

1. ``count`` random faces (psi 0.8) are drawn and their hair colour measured
   (``core.colour.hair_colour``, in CIE Lab);
2. a ridge regression from a face's w to that colour (``predict``), R2 measured on held-out
   faces; its minimum-norm inverse (``step``) is the change of w that moves the fit by one unit
   of L, a and b;
3. a face is moved over the style inputs ``layers`` (the first two, the head's pose, are left
   alone) by ``gain`` times the step from its predicted colour to the target. With gain 1 the
   faces fell short of saturated crayon colours (the fit is linear, the colours are far from the
   prior's usual ones); gain 2 came closest without breaking faces (``measure``).

No picture is drawn to set a colour at serving time: one matrix product per face.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.colour import hair_colour, hex_lab

#: Crayon colours the fit is measured on: red, blue, yellow, black, pink, green, brown, white.
CRAYONS = ("#dc2828", "#2850dc", "#f0dc3c", "#1e1e1e", "#fa8cbe", "#3caa46", "#784628", "#f0f0f0")


def _faces(prior, ws: np.ndarray) -> np.ndarray:
    """The faces of styles relative to w_avg."""
    return prior.arrays(ws + prior.spec.w_avg)


def fit(prior, *, count: int = 3000, held_out: int = 500, seed: int = 0, psi: float = 0.8,
        ridge: float = 10.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """(predict (w_dim + 1, 3), step (w_dim, 3), metrics) for a ``core.runtime.FaceModel``."""
    rng = np.random.default_rng(seed)
    seeds = [int(s) for s in rng.integers(0, 2**31, count)]
    w = prior.w(seeds, psi) - prior.spec.w_avg                                  # (N, D)
    lab = hair_colour(_faces(prior, np.repeat(w[:, None], prior.spec.num_ws, axis=1)))
    n = count - held_out
    x = np.hstack([w, np.ones((count, 1))])
    predict = np.linalg.solve(x[:n].T @ x[:n] + ridge * np.eye(x.shape[1]), x[:n].T @ lab[:n])
    err = x[n:] @ predict - lab[n:]
    r2 = 1 - (err ** 2).sum(0) / ((lab[n:] - lab[n:].mean(0)) ** 2).sum(0)
    a = predict[:-1]
    step = a @ np.linalg.inv(a.T @ a)
    return predict.astype(np.float32), step.astype(np.float32), {
        "faces": count, "held_out": held_out, "r2_L": float(r2[0]), "r2_a": float(r2[1]), "r2_b": float(r2[2])}


def move(ws: np.ndarray, targets: np.ndarray, predict: np.ndarray, step: np.ndarray, layers: tuple[int, int],
         gain: float) -> np.ndarray:
    """Styles (N, L, D) relative to w_avg, moved over ``layers`` towards hair colours (N, 3) Lab."""
    first, last = layers
    now = np.hstack([ws[:, first:last].mean(axis=1), np.ones((len(ws), 1))]) @ predict
    out = ws.copy()
    out[:, first:last] += gain * ((targets - now) @ step.T)[:, None]
    return out


def measure(prior, predict: np.ndarray, step: np.ndarray, layers: tuple[int, int], gain: float, *,
            faces: int = 16, seed: int = 1, check=None) -> dict:
    """How close faces the fit never saw come to each crayon colour (mean CIE76 distance), beside
    the same faces untouched; and, with a face ``check``, the share of moved faces it passes."""
    rng = np.random.default_rng(seed)
    w = prior.w([int(s) for s in rng.integers(0, 2**31, faces)], 0.8) - prior.spec.w_avg
    base = np.repeat(w[:, None], prior.spec.num_ws, axis=1)
    untouched = hair_colour(_faces(prior, base))
    out: dict = {"gain": gain, "measured_faces": faces}
    reached, before, passed = [], [], []
    for colour in CRAYONS:
        target = hex_lab(colour)
        moved = _faces(prior, move(base, np.repeat(target[None], faces, 0), predict, step, layers, gain))
        reached.append(float(np.linalg.norm(hair_colour(moved) - target, axis=1).mean()))
        before.append(float(np.linalg.norm(untouched - target, axis=1).mean()))
        if check is not None:
            passed.append(float(check.passes(moved).mean()))
        out[f"distance_{colour}"] = round(reached[-1], 1)
    out["distance_mean"] = round(float(np.mean(reached)), 1)
    out["distance_untouched_mean"] = round(float(np.mean(before)), 1)
    if passed:
        out["check_pass"] = round(float(np.mean(passed)), 3)
    return out


def attach(model_dir: Path, models_dir: Path | None = None, *, gain: float = 2.0, first_layer: int = 2,
           seed: int = 0) -> dict:
    """Fit the hair colour on a doodle encoder's prior and add it to the export
    (``hair_colour.npz`` and ``doodle.hair_colour``); returns the metrics."""
    from core.manifest import HairColourSpec, Member, ModelManifest, sha256_file
    from core.runtime import FaceModel

    model_dir = Path(model_dir)
    manifest = ModelManifest.load(model_dir)
    if manifest.doodle is None:
        raise ValueError(f"{model_dir} is not a doodle encoder export")
    prior_dir = Path(models_dir or model_dir.parent) / manifest.doodle.prior
    prior = FaceModel(prior_dir, ["CPUExecutionProvider"])
    predict, step, metrics = fit(prior, seed=seed)
    layers = (first_layer, prior.spec.num_ws)
    check = None
    if manifest.doodle.guard:
        from core.face_check import FaceCheck

        check = FaceCheck(prior_dir.parent / manifest.doodle.guard, ["CPUExecutionProvider"])
    metrics.update(measure(prior, predict, step, layers, gain, check=check))
    path = model_dir / "hair_colour.npz"
    np.savez(path, predict=predict, step=step)
    keep = [m for m in manifest.members if m.label != "hair_colour"]
    member = Member(file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size, label="hair_colour",
                    source={"fitted": "training.prior.colour", "seed": seed},
                    metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
    doodle = manifest.doodle.model_copy(update={"hair_colour": HairColourSpec(layers=layers, gain=gain)})
    manifest.model_copy(update={"members": keep + [member], "doodle": doodle}).save(model_dir)
    return metrics


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fit how a face's hair colour is set, and add it to a doodle encoder "
                                            "export.", epilog="example: python -m training.prior.colour "
                                                              "--model models/doodle_encoder")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--gain", type=float, default=2.0)
    args = p.parse_args(argv)
    print(json.dumps(attach(args.model, gain=args.gain), indent=2))


if __name__ == "__main__":
    main()
