"""Faces from drawings on the StyleGAN prior, with ONNX Runtime (no torch): the served runtime of
a doodle encoder export (``ModelManifest.doodle``).

For a batch of drawings (numpy_bitmaps) the encoder graph gives each drawing's attributes (tilt,
face shape, eye size, open mouth, how much of the drawing is face) and an identity z. Then, in
numpy, as ``training.doodle.faces`` does in torch:

1. the identity w = mapping(z), truncated towards w_avg by psi;
2. every walk's component is taken out of the identity's styles and the drawing's coefficient
   put in, coefficient = clip(scale * (attribute - centre), low, high) x strength;
3. a palette (a variation's colours) takes the fine style inputs from a seed's w, and gets the
   same moves as the identity, so it changes the colours and nothing of the structure;
4. the prior's synthesis graph draws every face of every variation in one run;
5. with a guard (a face check named in the manifest), every face is checked for two eyes and a
   mouth, and one that fails is drawn again with the drawing's moves shrunk until it passes: a
   walk pushed too far (a drawing tilted 30 degrees) makes a head with no eyes.

``follow`` in [0, 1] is the "follow my drawing <-> prettier" control: towards 0 the identity is
pulled towards the average face (psi 0.5) and the drawing's moves are halved; at 1 psi is 0.9.
The default gives the psi the model was exported with and whole moves, which is what training
painted; from there to 1 only psi grows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from core.drawing import Drawing, rasterize
from core.face_check import FaceCheck
from core.manifest import ModelIntegrityError, ModelManifest, sha256_file
from core.preprocess import bitmap_to_input, output_to_images
from core.runtime import FaceModel, MemberInfo, open_session

log = logging.getLogger(__name__)

#: The models that ship with the project.
BUNDLED_MODELS = Path(__file__).resolve().parents[1] / "models"
PSI_RANGE = (0.5, 0.9)        # psi at follow 0 and at follow 1
STRENGTH_RANGE = (0.5, 1.0)   # walk strength at follow 0 and from the model's own follow up
#: Variations a request may ask for at most (each is one more face to draw).
MAX_VARIATIONS = 8
#: The guard's tries for a face that fails its check: (share of the drawing's moves kept, share
#: of the face's distance from the average face kept). The first is the face as painted.
GUARD_STEPS = ((1.0, 1.0), (0.6, 1.0), (0.3, 1.0), (0.0, 0.8), (0.0, 0.5))


def follow_for_psi(psi: float) -> float:
    lo, hi = PSI_RANGE
    return float(np.clip((psi - lo) / (hi - lo), 0.0, 1.0))


class DoodleFaceModel:
    """A doodle encoder and its prior, both checked against their manifests, ready to paint."""

    controls: tuple[str, ...] = ("seed", "follow")

    def __init__(self, folder: Path, providers: list[str] | None = None, threads: int = 0,
                 models_dir: Path | None = None):
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        self.manifest.verify(self.folder)
        spec = self.manifest.doodle
        if spec is None:
            raise ValueError(f"{self.folder} is not a doodle encoder export (its manifest has no doodle block)")
        self.spec = spec
        # The prior is a shipped model: in ``models_dir``, else beside this export, else in the
        # project's models folder (a job's export lives elsewhere).
        places = [Path(models_dir)] if models_dir else [self.folder.parent, BUNDLED_MODELS]
        prior_dir = next((d / spec.prior for d in places if (d / spec.prior / "manifest.json").is_file()), None)
        if prior_dir is None:
            raise ModelIntegrityError(f"{self.manifest.name}: its prior {spec.prior!r} is not in "
                                      f"{' or '.join(str(d) for d in places)}")
        if sha256_file(prior_dir / "manifest.json") != spec.prior_manifest_sha256:
            raise ModelIntegrityError(f"{self.manifest.name} was made for another version of {spec.prior!r}; "
                                      "export the encoder again for the prior that is installed")
        self.prior = FaceModel(prior_dir, providers, threads)
        # The face check every face must pass, a shipped model beside the prior.
        self.guard: FaceCheck | None = None
        if spec.guard is not None:
            guard_dir = prior_dir.parent / spec.guard
            if not (guard_dir / "manifest.json").is_file():
                raise ModelIntegrityError(f"{self.manifest.name}: its face check {spec.guard!r} is not in {prior_dir.parent}")
            self.guard = FaceCheck(guard_dir, providers, threads)
        files = {m.label: self.folder / m.file for m in self.manifest.members}
        self.encoder = open_session(files[spec.encoder], providers, threads)
        self.directions = np.load(files[spec.directions], allow_pickle=False).astype(np.float32)
        p = self.prior.spec
        if self.directions.shape != (len(spec.walks), p.num_ws, p.w_dim):
            raise ModelIntegrityError(f"{self.manifest.name}: directions of shape {self.directions.shape} do not fit "
                                      f"{len(spec.walks)} walks of a prior with {p.num_ws} x {p.w_dim} styles")
        norms = np.linalg.norm(self.directions.reshape(len(self.directions), -1), axis=1)
        self.units = self.directions / norms[:, None, None]
        self.attribute_index = [spec.attributes.index(w.attribute) for w in spec.walks]
        self.providers = self.prior.providers
        self.members = [MemberInfo(0, "the drawing's own colours", None),
                        *[MemberInfo(i, f"palette {i}", None) for i in range(1, 3)]]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def image_size(self) -> int:
        return self.prior.spec.image_size

    def bitmap(self, drawing: Drawing) -> np.ndarray:
        s = self.manifest.input
        return rasterize(drawing, s.raster_size, line_diameter=s.line_diameter, padding=s.padding)

    # -- the steps -----------------------------------------------------------------------------

    def encode(self, bitmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """numpy_bitmaps (N, H, W) -> (attributes (N, A), identity z (N, z_dim))."""
        x = bitmap_to_input(bitmaps, self.manifest.input.image_size)
        attributes, z = self.encoder.run(None, {self.encoder.get_inputs()[0].name: x})
        return attributes, z

    def coefficients(self, attributes: np.ndarray, strength: float) -> np.ndarray:
        out = np.empty((len(attributes), len(self.spec.walks)), np.float32)
        for k, (walk, a) in enumerate(zip(self.spec.walks, self.attribute_index)):
            out[:, k] = np.clip(walk.scale * (attributes[:, a] - walk.centre), walk.low, walk.high) * strength
        return out

    def _mapped(self, z: np.ndarray, psi: float) -> np.ndarray:
        m = self.prior.mapping
        w = m.run(None, {m.get_inputs()[0].name: z.astype(np.float32)})[0]
        return self.prior.spec.w_avg + psi * (w - self.prior.spec.w_avg)

    def styles(self, bitmaps: np.ndarray, *, variations: int = 1, seed: int | None = None,
               follow: float | None = None) -> np.ndarray:
        """The styles (N, V, num_ws, w_dim) of every drawing's faces.

        Variation v's colours: the drawing's own for v = 0 when no ``seed`` is given, else the
        palette of seed ``seed + v`` (``seed`` 0 when none is given)."""
        base, moves = self.style_parts(bitmaps, variations=variations, seed=seed, follow=follow)
        return (base + moves + self.prior.spec.w_avg).astype(np.float32)

    def style_parts(self, bitmaps: np.ndarray, *, variations: int = 1, seed: int | None = None,
                    follow: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The styles of ``styles`` in two parts, both relative to ``w_avg``: the face without the
        drawing's moves (identity and palette) and the moves, each (N, V, num_ws, w_dim). The
        guard shrinks the moves, and then the face towards the average, of a face that fails."""
        if not 1 <= variations <= MAX_VARIATIONS:
            raise ValueError(f"variations must be 1..{MAX_VARIATIONS}, got {variations}")
        follow = follow_for_psi(self.spec.psi) if follow is None else float(np.clip(follow, 0.0, 1.0))
        psi = PSI_RANGE[0] + (PSI_RANGE[1] - PSI_RANGE[0]) * follow
        # The moves are whole from the model's own setting up (its default paints what training
        # painted); towards 0 they shrink to half. Above it only the identity's psi grows.
        own = follow_for_psi(self.spec.psi)
        strength = STRENGTH_RANGE[1] if follow >= own else (
            STRENGTH_RANGE[0] + (STRENGTH_RANGE[1] - STRENGTH_RANGE[0]) * follow / max(own, 1e-6))
        attributes, z = self.encode(bitmaps)
        spec = self.prior.spec
        identity = np.repeat(self._mapped(z, psi)[:, None, :], spec.num_ws, axis=1) - spec.w_avg   # (N, L, D)
        # The drawing's moves, decided on the identity's styles and then given to every
        # variation alike, so a palette changes the colours and nothing of the structure.
        coeff = self.coefficients(attributes, strength)                      # (N, K)
        moved = identity
        for k in range(len(self.units)):
            comp = np.einsum("nld,ld->n", moved, self.units[k])
            moved = moved - comp[:, None, None] * self.units[k] + coeff[:, k, None, None] * self.directions[k]
        ws = np.repeat(identity[:, None], variations, axis=1)               # (N, V, L, D)
        first, last = self.spec.fine_layers
        palette_seeds = [(seed or 0) + v for v in range(variations) if not (seed is None and v == 0)]
        if palette_seeds:
            palettes = self._mapped(self.prior.z(palette_seeds), psi) - spec.w_avg   # (P, D)
            start = 1 if seed is None else 0
            ws[:, start:, first:last, :] = palettes[None, :, None, :]
        return ws, np.broadcast_to((moved - identity)[:, None], ws.shape)

    def _draw(self, ws: np.ndarray) -> np.ndarray:
        """uint8 faces (M, S, S, 3) of styles (M, num_ws, w_dim) relative to ``w_avg``."""
        s = self.prior.synthesis
        out = s.run(None, {s.get_inputs()[0].name: (ws + self.prior.spec.w_avg).astype(np.float32)})[0]
        return output_to_images(out)

    def paint(self, bitmaps: np.ndarray, *, variations: int = 1, seed: int | None = None,
              follow: float | None = None, guarded: list[int] | None = None) -> np.ndarray:
        """uint8 faces (N, V, S, S, 3): every variation of every drawing, drawn in one run.

        With a guard (the manifest's face check), every face is checked before it is returned;
        one that fails is drawn again with the drawing's moves shrunk, then also pulled towards
        the average face (``GUARD_STEPS``), until it passes or the last step is reached.
        ``guarded``, when given, is filled with how many faces each step drew again."""
        base, moves = self.style_parts(bitmaps, variations=variations, seed=seed, follow=follow)
        n, v = base.shape[:2]
        base, moves = base.reshape(n * v, *base.shape[2:]), moves.reshape(n * v, *moves.shape[2:])
        faces = self._draw(base + moves)
        redrawn = [0] * len(GUARD_STEPS)
        if self.guard is not None:
            # Step by step: most faces that fail pass at the first shrink, and drawing every step
            # of them at once cost more than it saved.
            todo = np.flatnonzero(~self.guard.passes(faces))
            for step, (keep_moves, keep_face) in enumerate(GUARD_STEPS[1:], start=1):
                if not len(todo):
                    break
                redrawn[step] = len(todo)
                faces[todo] = self._draw(keep_face * base[todo] + keep_moves * moves[todo])
                if step < len(GUARD_STEPS) - 1:
                    todo = todo[~self.guard.passes(faces[todo])]
        if guarded is not None:
            guarded[:] = redrawn
        return faces.reshape(n, v, *faces.shape[1:])

    def translate(self, drawing: Drawing, members: list[int], *, seed: int | None = None,
                  follow: float | None = None) -> list[np.ndarray]:
        """The faces of one drawing, one per requested variation (as ``Ensemble.translate``)."""
        faces = self.paint(self.bitmap(drawing)[None], variations=max(members) + 1, seed=seed, follow=follow)[0]
        return [faces[i] for i in members]
