"""Figures and numbers for a training write-up.

- ``loss_curves``: the loss log of a run as a chart.
- ``holdout_grid``: held-out real Quick, Draw! smileys (never used in training) and what every
  member of an exported ensemble makes of them.
- ``holdout_checks``: two numbers that can fail. *Diversity*: outputs for different drawings
  differ (no mode collapse). *Following*: an output resembles its own drawing more than other
  drawings: the correlation between a doodle's blurred ink and the blurred edges of the face made
  from it, minus the same correlation with the faces made from other doodles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from backend.inference import Ensemble
from training.data import edge_sketches, load_quickdraw


def loss_curves(run_dir: Path, out: Path, smooth: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step = {}  # the last entry of a step wins: a resumed run redoes the steps after its checkpoint
    for line in (Path(run_dir) / "loss_log.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[row["step"]] = row
    rows = [by_step[k] for k in sorted(by_step)]
    steps = np.array([r["step"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, keys in zip(axes, (("G", "cycle", "identity", "G_gan"), ("D_A", "D_B"))):
        for k in keys:
            v = np.array([r[k] for r in rows])
            if len(v) > smooth:
                v = np.convolve(v, np.ones(smooth) / smooth, mode="valid")
                x = steps[smooth - 1 :]
            else:
                x = steps
            ax.plot(x, v, label=k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("generators")
    axes[1].set_title("discriminators (LSGAN)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def holdout_grid(model_dir: Path, data_dir: Path, out: Path, count: int = 16, start: int = 0) -> Path:
    """Columns: held-out doodles; rows: the doodle, then one row per ensemble member."""
    ens = Ensemble(model_dir, ["CPUExecutionProvider"])
    doodles = load_quickdraw(data_dir, "holdout")[start : start + count]
    faces = ens.translate_bitmaps(doodles, list(range(len(ens.members))))
    size = 96
    def up(img):
        return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))
    sketch_row = np.concatenate([up(np.stack([255 - d] * 3, -1)) for d in doodles], axis=1)
    rows = [sketch_row] + [np.concatenate([up(f) for f in member], axis=1) for member in faces]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out


def _blur(x: np.ndarray, k: int = 5) -> np.ndarray:
    pad = k // 2
    p = np.pad(x, [(0, 0), (pad, pad), (pad, pad)], mode="edge")
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += p[:, i : i + x.shape[1], j : j + x.shape[2]]
    return out / (k * k)


def holdout_checks(model_dir: Path, data_dir: Path, count: int = 400) -> dict[str, float]:
    ens = Ensemble(model_dir, ["CPUExecutionProvider"])
    doodles = load_quickdraw(data_dir, "holdout")[:count]
    n = len(doodles)
    result: dict[str, float] = {}
    follows, divs = [], []
    for m, faces in enumerate(ens.translate_bitmaps(doodles, list(range(len(ens.members))))):
        ink = _blur(doodles.astype(np.float64) / 255.0).reshape(n, -1)
        lines = _blur(edge_sketches(faces, 28).astype(np.float64) / 255.0).reshape(n, -1)
        a = (ink - ink.mean(1, keepdims=True)) / (ink.std(1, keepdims=True) + 1e-9)
        b = (lines - lines.mean(1, keepdims=True)) / (lines.std(1, keepdims=True) + 1e-9)
        corr = a @ b.T / a.shape[1]  # corr[i, j]: doodle i against the face made from doodle j
        own = float(np.mean(np.diag(corr)))
        other = float((corr.sum() - np.trace(corr)) / (n * (n - 1)))
        flat = faces.reshape(n, -1).astype(np.float64) / 255.0
        sub = flat[:: max(1, n // 100)]
        pair = np.abs(sub[:, None, :] - sub[None, :, :]).mean(-1)
        k = len(sub)
        div = float(pair.sum() / (k * (k - 1)))
        result[f"member{m}_own_corr"] = own
        result[f"member{m}_other_corr"] = other
        result[f"member{m}_diversity_l1"] = div
        follows.append(own - other)
        divs.append(div)
    # Between members, for the same drawing: how much variation the ensemble gives.
    if len(ens.members) > 1:
        faces = ens.translate_bitmaps(doodles[:100], list(range(len(ens.members))))
        f = np.stack(faces).astype(np.float64) / 255.0  # (M, N, S, S, 3)
        m = len(f)
        pair = [np.abs(f[i] - f[j]).mean() for i in range(m) for j in range(i + 1, m)]
        result["between_members_l1"] = float(np.mean(pair))
    result["follow_score"] = float(np.mean(follows))
    result["diversity_l1"] = float(np.mean(divs))
    result["count"] = n
    return result
