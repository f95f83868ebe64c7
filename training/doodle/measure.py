"""Reading what a drawing says and what a face shows, independently of any drawing model, so
that "the face follows the drawing" can be measured on real doodles nobody labelled.

- The drawing side: ``DoodleReader``, a CNN of its own (other seed, other width, its own pool of
  synthetic doodles) that reads a doodle's attributes. It is not the encoder of any model: a
  model driven by a reader that misread doodles consistently would follow its reader, not the
  drawing, and a shared reader could not see that.
- The face side, by plain image measurements that no model trains on: the head's roll (the
  rotation that makes the face most nearly mirror-symmetric), the skin region (pixels of the
  colour at the middle of the lower face, connected to it): its height/width and its area, the
  darkness of the eye band and of the mouth, each against the skin.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from core.preprocess import bitmap_to_input

log = logging.getLogger(__name__)

#: Drawing attribute -> (face measurement, sign): the pairs a following face must agree on.
#: Tilt is clockwise on screen; the roll is anticlockwise, hence the minus.
FOLLOW_PAIRS = (
    ("tilt", "roll", -1.0),
    ("long", "skin_aspect", 1.0),
    ("face_fraction", "skin_area", 1.0),
    ("eye_size", "eye_dark", 1.0),
    ("mouth_open", "mouth_dark", 1.0),
)
READER_SEED = 7001
READER_STEPS = 4000
READER_POOL = 12000


def roll_degrees(faces: np.ndarray, search: float = 30.0, step: float = 2.5) -> np.ndarray:
    """The roll of each face in degrees (anticlockwise positive): minus the rotation that makes
    it most nearly mirror-symmetric."""
    gray = faces.astype(np.float32).mean(axis=-1)
    angles = np.arange(-search, search + 1e-6, step)
    out = np.zeros(len(faces))
    m = max(1, faces.shape[1] // 8)
    for i, g in enumerate(gray):
        im = Image.fromarray(g.astype(np.uint8))
        scores = []
        for a in angles:
            c = np.asarray(im.rotate(a, resample=Image.Resampling.BILINEAR, fillcolor=255), np.float32)[m:-m, m:-m]
            scores.append(-np.abs(c - c[:, ::-1]).mean())
        out[i] = -angles[int(np.argmax(scores))]
    return out


def skin_mask(face: np.ndarray, tolerance: float = 0.16) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the skin region, skin colour): pixels within ``tolerance`` (RGB in [0, 1]) of the
    median colour of the middle of the lower face, connected to it."""
    from scipy import ndimage

    x = face.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    skin = np.median(x[int(0.62 * h):int(0.72 * h), int(0.42 * w):int(0.58 * w)].reshape(-1, 3), axis=0)
    near = np.sqrt(((x - skin) ** 2).sum(axis=-1)) < tolerance
    labels, _ = ndimage.label(near)
    centre = labels[int(0.67 * h), int(0.5 * w)]
    return (labels == centre) if centre > 0 else near, skin


#: Beside the cheeks, where long hair falls and short hair does not: rows, then the two column
#: bands, as fractions of the side.
HAIR_SIDES = ((0.55, 0.97), ((0.0, 0.2), (0.8, 1.0)))


def hair_beside_cheeks(faces: np.ndarray, near: float = 22.0) -> np.ndarray:
    """Per face, the share of the bands beside the cheeks that is hair: pixels within ``near``
    (CIE Lab, about what eyes see) of the hair's colour (``core.colour.hair_colour``, the top of
    the head) and nearer to it than to the skin's. Colour only, within one face: a face whose
    background is its hair's colour reads as long-haired, so compare a face with itself (the
    same identity with and without long hair strokes), not faces with each other."""
    from core.colour import hair_colour, srgb_to_lab

    faces = np.asarray(faces)
    h, w = faces.shape[1:3]
    (r0, r1), bands = HAIR_SIDES
    hair = hair_colour(faces)
    out = np.zeros(len(faces))
    for i, f in enumerate(faces):
        skin = srgb_to_lab(skin_mask(f)[1] * 255.0)
        region = np.concatenate([f[int(r0 * h):int(r1 * h), int(c0 * w):int(c1 * w)].reshape(-1, 3)
                                 for c0, c1 in bands])
        lab = srgb_to_lab(region.astype(np.float64))
        to_hair = np.linalg.norm(lab - hair[i], axis=1)
        to_skin = np.linalg.norm(lab - skin, axis=1)
        out[i] = float(((to_hair < near) & (to_hair < to_skin)).mean())
    return out


def face_measures(faces: np.ndarray) -> dict[str, np.ndarray]:
    """Per face: roll (degrees), skin_aspect (height / width of the skin region), skin_area (its
    share of the picture), eye_dark (share of the eye band darker than the skin by 0.25),
    mouth_dark (how much darker than the skin the mouth box is)."""
    out: dict[str, list[float]] = {k: [] for k in ("skin_aspect", "skin_area", "eye_dark", "mouth_dark")}
    for f in faces:
        mask, skin = skin_mask(f)
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        out["skin_area"].append(float(mask.mean()))
        out["skin_aspect"].append(float(np.sqrt(ys.var() / max(xs.var(), 1e-6))) if len(ys) > 10 else 1.0)
        lum = f.astype(np.float32).mean(axis=-1) / 255.0
        skin_l = float(skin.mean())
        eyes = lum[int(0.45 * h):int(0.68 * h), int(0.15 * w):int(0.85 * w)]
        out["eye_dark"].append(float((eyes < skin_l - 0.25).mean()))
        mouth = lum[int(0.74 * h):int(0.86 * h), int(0.4 * w):int(0.6 * w)]
        out["mouth_dark"].append(float(np.clip(skin_l - mouth, 0, None).mean()))
    res = {k: np.asarray(v) for k, v in out.items()}
    res["roll"] = roll_degrees(faces)
    return res


class DoodleReader:
    """The evaluation's own reader of drawing attributes (see the module's docstring). Trained
    once, seeded, and cached as a torch state dict."""

    def __init__(self, cache_dir: Path | None = None, seed: int = READER_SEED, steps: int = READER_STEPS):
        import torch

        from training.doodle.attributes import ATTRIBUTES
        from training.doodle.encoder import DoodleEncoder

        self.names = ATTRIBUTES
        self.net = DoodleEncoder(width=16, features=128)
        path = Path(cache_dir) / f"doodle_reader_{seed}_{steps}.pt" if cache_dir else None
        if path is not None and path.is_file():
            self.net.load_state_dict(torch.load(path, weights_only=True))
        else:
            self._train(seed, steps)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(self.net.state_dict(), path)
        self.net.eval()

    def _train(self, seed: int, steps: int) -> None:
        import torch
        import torch.nn.functional as F

        from training.doodle.attributes import BINARY, synthetic_pool

        log.info("training the evaluation's doodle reader (seed %d, %d steps)", seed, steps)
        torch.manual_seed(seed)
        # 12,000 drawings for the full reader; one trained briefly sees fewer, and drawing them
        # is most of its cost (about 10 examples per step, each seen about 5 times)
        bitmaps, attrs = synthetic_pool(min(READER_POOL, 10 * steps), seed=seed)
        binary = np.array([a in BINARY for a in self.names])
        mean, std = attrs.mean(0), attrs.std(0) + 1e-6
        mean[binary], std[binary] = 0.0, 1.0
        self.net.attr_mean.copy_(torch.from_numpy(mean))
        self.net.attr_std.copy_(torch.from_numpy(std))
        target = torch.from_numpy((attrs - mean) / std)
        target[:, binary] = torch.from_numpy(attrs[:, binary])
        x_all = torch.from_numpy(bitmap_to_input(bitmaps, 28))
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        rng = np.random.default_rng(seed)
        b = torch.from_numpy(binary)
        for _ in range(steps):
            idx = torch.from_numpy(rng.integers(0, len(x_all), 64))
            raw, _ = self.net(x_all[idx])
            t = target[idx]
            loss = F.mse_loss(raw[:, ~b], t[:, ~b]) + F.binary_cross_entropy_with_logits(raw[:, b], t[:, b])
            opt.zero_grad()
            loss.backward()
            opt.step()

    def read(self, bitmaps: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            raw, _ = self.net(torch.from_numpy(bitmap_to_input(bitmaps, 28)))
            attrs = self.net.attributes(raw).numpy()
        return {name: attrs[:, i] for i, name in enumerate(self.names)}


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def follow_scores(readings: dict[str, np.ndarray], faces: np.ndarray, group: int = 50) -> dict[str, float]:
    """Correlation of every drawing attribute with its face measurement over the drawings, and
    top-1 matching of faces to drawings in the space of those pairs (z-scores)."""
    m = face_measures(faces)
    out = {}
    for a, f, sign in FOLLOW_PAIRS:
        out[f"follow_{a}"] = float(sign * np.corrcoef(readings[a], m[f])[0, 1])
    d = np.stack([_z(readings[a]) for a, _, _ in FOLLOW_PAIRS], axis=1)
    f = np.stack([sign * _z(m[name]) for _, name, sign in FOLLOW_PAIRS], axis=1)
    n = (len(faces) // group) * group
    hits = []
    for g in range(0, n, group):
        dist = ((f[g:g + group, None] - d[None, g:g + group]) ** 2).sum(axis=-1)
        hits.append(dist.argmin(axis=1) == np.arange(group))
    out["match_top1_attributes"] = float(np.concatenate(hits).mean())
    return out
