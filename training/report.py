"""Figures and numbers for a training write-up.

- ``loss_curves``: the loss log of a run as a chart.
- ``holdout_grid``: held-out real Quick, Draw! smileys (never used in training) and what every
  member of an exported ensemble makes of them.
- ``gan_loss_curves`` / ``face_figures``: the same for an unconditional face GAN (DCGAN, LSGAN,
  WGAN-div, StyleGAN): its losses, a grid of random faces from fixed seeds and, for a StyleGAN,
  truncation, style-mixing and interpolation figures, all made from the exported ONNX model.
- ``cyclegan_report`` / ``gan_report``: all of a kind's figures, as ``doodle2anime report`` makes them.
- ``markdown_table``: rows of measures as a markdown table (the studies' and reports' tables).
- ``holdout_checks``: two numbers that can fail. *Diversity*: outputs for different drawings
  differ (no mode collapse). *Following*: an output resembles its own drawing more than other
  drawings: the correlation between a doodle's blurred ink and the blurred edges of the face made
  from it, minus the same correlation with the faces made from other doodles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.runtime import Ensemble, FaceModel
from training.data import edge_sketches, load_quickdraw


def markdown_table(rows: dict[str, dict], columns, first: str = "model") -> str:
    """One line per row name; ``columns`` are (key, label) pairs; numbers with two decimals, text
    as it is, a measure a row lacks as a dash."""
    def cell(r: dict, k: str) -> str:
        if k not in r:
            return "–"
        return r[k] if isinstance(r[k], str) else f"{r[k]:.2f}"

    head = f"| {first} | " + " | ".join(label for _, label in columns) + " |\n|---|" + "---:|" * len(columns) + "\n"
    return head + "".join(f"| {name} | " + " | ".join(cell(r, k) for k, _ in columns) + " |\n" for name, r in rows.items())


def named_folders(items: list[str]) -> dict[str, Path]:
    """Command-line ``NAME=FOLDER`` items (the models a study measures beside its runs) -> {name: folder}."""
    out = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"expected NAME=FOLDER, got {item!r}")
        out[name] = Path(folder)
    return out


def _loss_rows(run_dir: Path) -> list[dict]:
    by_step = {}  # the last entry of a step wins: a resumed run redoes the steps after its checkpoint
    for line in (Path(run_dir) / "loss_log.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[row["step"]] = row
    if not by_step:
        raise ValueError(f"{run_dir}: the loss log is empty")
    return [by_step[k] for k in sorted(by_step)]


Line = tuple[str, list[dict], str]  # (label, a run's loss rows, the logged term drawn)


def _draw_panels(panels: list[tuple[str, list[Line]]], out: Path, window: Callable[[int], int], *,
                 panel_width: float, dpi: int, legend_size: int | None = None) -> Path:
    """Panels side by side, each a title and its lines; ``window(n)`` is the moving-average width
    for a line of n logged values (1: none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 3.8))
    for ax, (title, lines) in zip(np.atleast_1d(axes), panels):
        for label, rows, k in lines:
            logged = [r for r in rows if k in r]  # some terms are logged only on the steps that compute them
            if not logged:
                continue
            x, v = np.array([r["step"] for r in logged]), np.array([r[k] for r in logged])
            w = window(len(v))
            if w > 1:
                v, x = np.convolve(v, np.ones(w) / w, mode="valid"), x[w - 1 :]
            ax.plot(x, v, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=legend_size)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def _plot_panels(rows: list[dict], panels: list[tuple[str, tuple[str, ...]]], out: Path, smooth: int) -> Path:
    """One run's terms, a panel per group of terms."""
    return _draw_panels([(title, [(k, rows, k) for k in keys]) for title, keys in panels], out,
                        lambda n: smooth if n > smooth else 1, panel_width=5.5, dpi=110)


def compare_curves(run_dirs: dict[str, Path], keys: tuple[str, ...], out: Path, smooth: int = 10) -> Path:
    """Runs side by side: one panel per logged term, one line per run (smoothed over ``smooth``
    log lines, at most a twentieth of a run's lines); runs without a loss log are left out."""
    logs = {name: _loss_rows(d) for name, d in run_dirs.items() if (Path(d) / "loss_log.jsonl").is_file()}
    return _draw_panels([(k, [(name, rows, k) for name, rows in logs.items()]) for k in keys], out,
                        lambda n: min(smooth, max(1, n // 20)), panel_width=5.0, dpi=100, legend_size=7)


def loss_curves(run_dir: Path, out: Path, smooth: int = 10) -> Path:
    """A drawing run's generator and discriminator losses (CycleGAN, DiscoGAN, UNIT, line art:
    each logs the terms it has)."""
    return _plot_panels(_loss_rows(run_dir), [("generators", ("G", "cycle", "identity", "vae", "l1", "G_gan")),
                                              ("discriminators", ("D_A", "D_B", "D"))], out, smooth)


def gan_loss_curves(run_dir: Path, out: Path, smooth: int = 10) -> Path:
    """A face GAN run's losses: the generator's, then the discriminator's (or critic's) with its
    mean outputs on real and generated faces and, where logged, the R1 penalty."""
    rows = _loss_rows(run_dir)
    kind = json.loads((Path(run_dir) / "config.json").read_text()).get("kind", "GAN")
    critic = "critic" if kind == "wgan_div" else "discriminator"
    extra = [("R1 penalty", ("r1",))] if any("r1" in r for r in rows) else []
    if any("wdist" in r for r in rows):  # the critic's estimate of the distance, falling as G catches up
        extra.append(("Wasserstein estimate and penalty", ("wdist", "div")))
    # a short run keeps its early steps: the window is at most a twentieth of the logged rows
    return _plot_panels(rows, [(f"generator ({kind})", ("G",)), (critic, ("D", "D_real", "D_fake")), *extra],
                        out, min(smooth, max(1, len(rows) // 20)))


def face_figures(model_dir: Path, out: Path, *, seeds: int = 64, columns: int = 8,
                 threads: int = 1) -> dict[str, Path]:
    """Figures of an exported face GAN, all from fixed seeds so that two models can be compared:
    ``samples.png`` (faces of seeds 0..seeds-1, untruncated: what FID measures) and, for a StyleGAN,
    ``random_psi0.7.png``, ``truncation.png``, ``mix_{coarse,middle,fine}.png`` and ``interpolate.png``."""
    from core.manifest import ModelManifest
    from training.evaluate import model_sampler
    from training.train_gan import face_grid

    model_dir, out = Path(model_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = ModelManifest.load(model_dir)
    manifest.verify(model_dir)
    made = {"samples": out / "samples.png"}
    face_grid(model_sampler(model_dir, manifest, seed=0, threads=threads).sample(seeds), columns).save(made["samples"])
    if manifest.stylegan is None:
        return made
    model = FaceModel(model_dir, ["CPUExecutionProvider"], threads)
    size = manifest.output.image_size
    made["random_psi0.7"] = out / "random_psi0.7.png"
    face_grid(np.stack([np.asarray(im.convert("RGB")) for im in model.images(model.broadcast(
        model.w(list(range(48)), 0.7)))]), columns).save(made["random_psi0.7"])
    # Rows: seeds; columns: psi from 1 (wilder) to 0 (the average face).
    psis = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)
    rows = [np.concatenate([np.asarray(model.faces([seed], psi, size).convert("RGB")) for psi in psis], axis=1)
            for seed in range(6)]
    made["truncation"] = out / "truncation.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(made["truncation"])
    for layers in ("coarse", "middle", "fine"):
        made[f"mix_{layers}"] = out / f"mix_{layers}.png"
        model.mix([10, 11, 12, 13], [20, 21, 22, 23, 24], layers, 0.7, size).save(made[f"mix_{layers}"])
    made["interpolate"] = out / "interpolate.png"
    frames = model.interpolate(7, 8, 10, 0.7, size)
    Image.fromarray(np.concatenate([np.asarray(f.convert("RGB")) for f in frames], axis=1)).save(made["interpolate"])
    return made


def gan_report(run_dir: Path, model_dir: Path, out: Path, *, data_dir: Path | None = None,
               columns: int = 16) -> dict[str, str]:
    """A face GAN run's figures: its loss curves and ``face_figures`` of its export; returns
    what was made, by name (``data_dir`` and ``columns`` are the CycleGAN report's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = {"loss_curves": gan_loss_curves(Path(run_dir), out / "loss_curves.png"), **face_figures(Path(model_dir), out)}
    return {name: str(path) for name, path in made.items()}


def cyclegan_report(run_dir: Path, model_dir: Path, out: Path, *, data_dir: Path, columns: int = 16) -> dict[str, float]:
    """A CycleGAN run's figures: loss curves, two held-out grids of ``columns`` doodles, and the
    held-out checks (written as holdout_checks.json, and returned)."""
    out, model_dir = Path(out), Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    loss_curves(Path(run_dir), out / "loss_curves.png")
    holdout_grid(model_dir, data_dir, out / "holdout_grid.png", count=columns)
    holdout_grid(model_dir, data_dir, out / "holdout_grid_2.png", count=columns, start=columns)
    checks = holdout_checks(model_dir, data_dir)
    (out / "holdout_checks.json").write_text(json.dumps(checks, indent=2) + "\n")
    return checks


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


def labelled_grid(rows: dict[str, np.ndarray], path: Path, count: int = 10, size: int = 96, label_width: int = 150) -> None:
    """One row per name (its label on the left), the first ``count`` images of each at ``size`` px."""
    lines = []
    for name, images in rows.items():
        strip = Image.new("RGB", (label_width, size), "white")
        ImageDraw.Draw(strip).multiline_text((4, 4), name.replace(" ", "\n", 2), fill="black")
        tiles = [np.asarray(strip)] + [np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                                       for im in images[:count]]
        lines.append(np.concatenate(tiles, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(lines, axis=0)).save(path)
