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

When the strokes are at hand (a drawing from the page or the API) and the export has a stroke
reader, the hair strokes are read apart from the face: the identity and what the face looks
like (tilt, shape, eyes, mouth) are read off the drawing without its hair strokes, so hair
squiggles neither change who the face is nor roll or smear it; the hair sets the hair: how far
down the strokes fall beside the face sets its length (``STROKE_ATTRIBUTES``, walks that add to
the face's own hair, ``keep_identity``), how much of the drawing is hair around the face its
size in the frame, and a crayon its colour.

``follow`` in [0, 1] is the "follow my drawing <-> prettier" control: towards 0 the identity is
pulled towards the average face (psi 0.5) and the drawing's moves are halved; at 1 psi is 0.9.
The default gives the psi the model was exported with and whole moves, which is what training
painted; from there to 1 only psi grows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from core.colour import KID_HAIR, hex_lab
from core.drawing import LINE_DIAMETER, PADDING, Drawing, rasterize, rasterize_strokes
from core.face_check import FaceCheck
from core.manifest import ModelIntegrityError, ModelManifest, sha256_file
from core.preprocess import bitmap_to_input, output_to_images
from core.runtime import FaceModel, MemberInfo, open_session

log = logging.getLogger(__name__)

#: The models that ship with the project.
BUNDLED_MODELS = Path(__file__).resolve().parents[1] / "models"
PSI_RANGE = (0.5, 0.9)        # psi at follow 0 and at follow 1
STRENGTH_RANGE = (0.5, 1.0)   # walk strength at follow 0 and from the model's own follow up
#: The hair colours a kid would pick (``core.colour.KID_HAIR``), in Lab, for the variations.
KID_HAIR_LAB = np.stack([hex_lab(c) for c in KID_HAIR]).astype(np.float32)
#: Side of the pictures the stroke reader reads (the whole drawing and one stroke).
STROKE_SIZE = 28
#: Attributes read off the strokes (with the stroke reader), not off the bitmap:
#: hair_drop: how far the hair strokes reach down, from the face outline's middle, in its
#: half-heights (long hair falling beside the cheeks to the chin about 1, tufts on top of the head
#: about -0.6), measured upright (the drawing's tilt taken out). NaN where a drawing has no hair
#: strokes or no outline: the walks it sets do not move.
STROKE_ATTRIBUTES = ("hair_drop",)
#: The encoder's attributes still read off the whole drawing when its hair strokes are read apart:
#: the hair around the face is what they measure.
WITH_HAIR = ("hair", "face_fraction", "face_x", "face_y")
#: A hair stroke shorter than this share of the outline's size (a dot, a speck) does not say how
#: long the hair is.
HAIR_STROKE_MIN = 0.05
#: A hair stroke whose lowest point is this far inside the outline (as a share of its radii) is a
#: fringe over the forehead: it does not say how long the hair is (and the prior's faces have
#: bangs already: 48 of 48 looked at).
FRINGE_INSIDE = 0.9
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

    controls: tuple[str, ...] = ("seed", "follow")   # and "colors" when the export can read crayons

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
        # the encoder's attributes, then those read off the strokes
        names = [*spec.attributes, *STROKE_ATTRIBUTES]
        unknown = [w.attribute for w in spec.walks if w.attribute not in names]
        if unknown:
            raise ModelIntegrityError(f"{self.manifest.name}: walks set by unknown attributes {unknown}")
        self.attribute_index = [names.index(w.attribute) for w in spec.walks]
        self.tilt_index = spec.attributes.index("tilt") if "tilt" in spec.attributes else None
        self.providers = self.prior.providers
        self.members = [MemberInfo(0, "the drawing's own colours", None),
                        *[MemberInfo(i, f"palette {i}", None) for i in range(1, 3)]]
        # Crayons: which part each stroke draws, and how a hair colour is set. Both, or none.
        self.stroke_parts = open_session(files[spec.stroke_parts.member], providers, threads) if spec.stroke_parts else None
        self.hair: dict[str, np.ndarray] | None = None
        if spec.hair_colour is not None:
            with np.load(files[spec.hair_colour.member], allow_pickle=False) as arrays:
                self.hair = {"predict": arrays["predict"].astype(np.float32), "step": arrays["step"].astype(np.float32)}
            if self.hair["step"].shape != (p.w_dim, 3) or self.hair["predict"].shape != (p.w_dim + 1, 3):
                raise ModelIntegrityError(f"{self.manifest.name}: its hair colour fit does not fit a w of {p.w_dim}")
        self.controls = ("seed", "follow", "colors") if self.hair is not None and self.stroke_parts is not None \
            else ("seed", "follow")

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
        """(N, K) walk coefficients of attributes (N, A): the encoder's, then ``STROKE_ATTRIBUTES``
        (NaN where a drawing does not say: that walk does not move)."""
        out = np.empty((len(attributes), len(self.spec.walks)), np.float32)
        for k, (walk, a) in enumerate(zip(self.spec.walks, self.attribute_index)):
            out[:, k] = np.nan_to_num(np.clip(walk.scale * (attributes[:, a] - walk.centre), walk.low, walk.high)) \
                * strength
        return out

    def read(self, bitmaps: np.ndarray, drawings: list[Drawing] | None = None,
             parts: list[list[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(attributes (N, A + len(STROKE_ATTRIBUTES)), identity z (N, z_dim)) of the drawings.

        Without ``drawings`` (or a stroke reader) the encoder reads the bitmaps and the stroke
        attributes are NaN. With them, the hair strokes are read apart: the identity and every
        attribute but ``WITH_HAIR`` come from the drawing without its hair strokes, and the
        stroke attributes from the strokes. ``parts``: each drawing's ``parts``, when known."""
        attributes, z = self.encode(bitmaps)
        extra = np.full((len(attributes), len(STROKE_ATTRIBUTES)), np.nan, np.float32)
        if drawings is None or self.stroke_parts is None:
            return np.hstack([attributes, extra]), z
        parts = [self.parts(d) for d in drawings] if parts is None else parts
        hairy = [i for i, p in enumerate(parts) if "hair" in p and any(q != "hair" for q in p)]
        if hairy:
            bare = np.stack([self.bitmap(Drawing(tuple(s for s, q in zip(drawings[i].strokes, parts[i]) if q != "hair")))
                             for i in hairy])
            bare_attributes, bare_z = self.encode(bare)
            keep = [j for j, name in enumerate(self.spec.attributes) if name in WITH_HAIR]
            bare_attributes[:, keep] = attributes[hairy][:, keep]
            attributes[hairy], z[hairy] = bare_attributes, bare_z
        tilts = attributes[:, self.tilt_index] if self.tilt_index is not None else np.zeros(len(attributes))
        for i in hairy:
            extra[i, 0] = hair_drop(drawings[i].strokes, parts[i], float(tilts[i]))
        return np.hstack([attributes, extra]), z

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
                    follow: float | None = None, hair: np.ndarray | None = None,
                    vary_hair: bool = True, drawings: list[Drawing] | None = None,
                    parts: list[list[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The styles of ``styles`` in two parts, both relative to ``w_avg``: the face without the
        drawing's moves (identity and palette) and the moves, each (N, V, num_ws, w_dim). The
        guard shrinks the moves, and then the face towards the average, of a face that fails.
        ``drawings``: the strokes of the bitmaps (and ``parts``, their parts, when known), so that
        the hair strokes are read apart (``read``)."""
        if not 1 <= variations <= MAX_VARIATIONS:
            raise ValueError(f"variations must be 1..{MAX_VARIATIONS}, got {variations}")
        follow = follow_for_psi(self.spec.psi) if follow is None else float(np.clip(follow, 0.0, 1.0))
        psi = PSI_RANGE[0] + (PSI_RANGE[1] - PSI_RANGE[0]) * follow
        # The moves are whole from the model's own setting up (its default paints what training
        # painted); towards 0 they shrink to half. Above it only the identity's psi grows.
        own = follow_for_psi(self.spec.psi)
        strength = STRENGTH_RANGE[1] if follow >= own else (
            STRENGTH_RANGE[0] + (STRENGTH_RANGE[1] - STRENGTH_RANGE[0]) * follow / max(own, 1e-6))
        attributes, z = self.read(bitmaps, drawings, parts)
        spec = self.prior.spec
        identity = np.repeat(self._mapped(z, psi)[:, None, :], spec.num_ws, axis=1) - spec.w_avg   # (N, L, D)
        # The drawing's moves, decided on the identity's styles and then given to every
        # variation alike, so a palette changes the colours and nothing of the structure.
        coeff = self.coefficients(attributes, strength)                      # (N, K)
        moved = identity
        for k, walk in enumerate(self.spec.walks):
            if not walk.keep_identity:
                comp = np.einsum("nld,ld->n", moved, self.units[k])
                moved = moved - comp[:, None, None] * self.units[k]
            moved = moved + coeff[:, k, None, None] * self.directions[k]
        ws = np.repeat(identity[:, None], variations, axis=1)               # (N, V, L, D)
        first, last = self.spec.fine_layers
        palette_seeds = [(seed or 0) + v for v in range(variations) if not (seed is None and v == 0)]
        if palette_seeds:
            palettes = self._mapped(self.prior.z(palette_seeds), psi) - spec.w_avg   # (P, D)
            start = 1 if seed is None else 0
            ws[:, start:, first:last, :] = palettes[None, :, None, :]
        moves = np.broadcast_to((moved - identity)[:, None], ws.shape)
        if self.hair is not None:
            ws = self._hair_coloured(ws, moves, hair, seed, vary_hair)
        return ws, moves

    def _hair_coloured(self, ws: np.ndarray, moves: np.ndarray, hair: np.ndarray | None,
                       seed: int | None, vary_hair: bool = True) -> np.ndarray:
        """Styles (N, V, L, D) with the hair colour set: every variation of a drawing whose hair
        has a crayon's colour (``hair``, Lab (N, 3), NaN where none) gets it; without one, the
        palettes' variations get hair colours a kid would pick, far from the first face's and
        from each other (the palettes alone barely change the hair), chosen by ``seed``."""
        n, v = ws.shape[:2]
        first, last = self.spec.hair_colour.layers
        predict, step = self.hair["predict"], self.hair["step"]
        flat = (ws + moves).reshape(n * v, *ws.shape[2:])
        now = (np.hstack([flat[:, first:last].mean(axis=1), np.ones((n * v, 1), np.float32)]) @ predict).reshape(n, v, 3)
        targets = np.full((n, v, 3), np.nan, np.float32)
        crayon = np.zeros(n, bool) if hair is None else ~np.isnan(np.asarray(hair, np.float32)).any(axis=1)
        if crayon.any():
            targets[crayon] = np.asarray(hair, np.float32)[crayon][:, None]
        start = 1 if seed is None else 0
        if vary_hair and start < v and (~crayon).any():
            kid = KID_HAIR_LAB
            for i in np.flatnonzero(~crayon):
                if seed is not None:
                    # "New colours": the seed alone picks them, so a drawing changed a little keeps them
                    picks = (seed * 5 + 7 * np.arange(v)) % len(kid)
                else:
                    # far from the first face's own hair; which of them is set by the face itself,
                    # so different drawings get different ones and a drawing keeps its own
                    far = np.argsort(-np.linalg.norm(kid - now[i, 0], axis=1))[: len(kid) // 2]
                    picks = far[(int(abs(float(now[i, 0].sum())) * 7) + 2 * np.arange(v - start)) % len(far)]
                targets[i, start:] = kid[picks]
        todo = ~np.isnan(targets).any(axis=2)
        if not todo.any():
            return ws
        gain = self.spec.hair_colour.gain
        out = ws.copy()
        out[todo, first:last] += gain * ((targets[todo] - now[todo]) @ step.T)[:, None]
        return out

    def parts(self, drawing: Drawing) -> list[str]:
        """Which part of a face each stroke of ``drawing`` draws (``spec.stroke_parts.parts``)."""
        return self.bitmap_and_parts(drawing)[1]

    def bitmap_and_parts(self, drawing: Drawing) -> tuple[np.ndarray, list[str]]:
        """``bitmap`` and ``parts`` of a drawing, rasterized once where the encoder and the stroke
        reader see the same picture."""
        if self.stroke_parts is None:
            raise ValueError(f"{self.manifest.name} cannot tell the parts of a drawing")
        whole, each = rasterize_strokes(drawing, STROKE_SIZE)
        x = np.stack([np.broadcast_to(whole, each.shape), each], axis=1).astype(np.float32) / 255.0
        probs = self.stroke_parts.run(None, {self.stroke_parts.get_inputs()[0].name: x})[0]
        names = self.spec.stroke_parts.parts
        s = self.manifest.input
        same = (s.raster_size, s.line_diameter, s.padding) == (STROKE_SIZE, LINE_DIAMETER, PADDING)
        return (whole if same else self.bitmap(drawing)), [names[k] for k in probs.argmax(axis=1)]

    def crayon_hair(self, drawing: Drawing, colors: list[str | None] | None,
                    parts: list[str] | None = None) -> np.ndarray | None:
        """The hair colour a drawing's crayons ask for (Lab), or None: the colour that the most
        line of the hair's strokes is drawn in (the black pen, null, asks for nothing).
        ``parts``: the drawing's ``parts``, when known."""
        if not colors or all(c is None for c in colors):
            return None
        ink: dict[str, float] = {}
        for part, colour, stroke in zip(parts or self.parts(drawing), colors, drawing.strokes):
            if part == "hair" and colour is not None:
                length = float(np.linalg.norm(np.diff(stroke, axis=1), axis=0).sum()) if stroke.shape[1] > 1 else 0.0
                ink[colour.lower()] = ink.get(colour.lower(), 0.0) + length + 1.0
        if not ink:
            return None
        return hex_lab(max(ink, key=ink.get)).astype(np.float32)

    def _draw(self, ws: np.ndarray) -> np.ndarray:
        """uint8 faces (M, S, S, 3) of styles (M, num_ws, w_dim) relative to ``w_avg``."""
        s = self.prior.synthesis
        out = s.run(None, {s.get_inputs()[0].name: (ws + self.prior.spec.w_avg).astype(np.float32)})[0]
        return output_to_images(out)

    def paint(self, bitmaps: np.ndarray, *, variations: int = 1, seed: int | None = None,
              follow: float | None = None, guarded: list[int] | None = None,
              hair: np.ndarray | None = None, vary_hair: bool = True,
              drawings: list[Drawing] | None = None, parts: list[list[str]] | None = None) -> np.ndarray:
        """uint8 faces (N, V, S, S, 3): every variation of every drawing, drawn in one run.

        With a guard (the manifest's face check), every face is checked before it is returned;
        one that fails is drawn again with the drawing's moves shrunk, then also pulled towards
        the average face (``GUARD_STEPS``), until it passes or the last step is reached.
        ``guarded``, when given, is filled with how many faces each step drew again. ``hair``: a
        crayon's hair colour per drawing (Lab, NaN rows for none); ``vary_hair`` False keeps the
        palettes' own hair colours (the faces as they were before hair colours were set).
        ``drawings``, ``parts``: the strokes of the bitmaps and their parts (``read``)."""
        base, moves = self.style_parts(bitmaps, variations=variations, seed=seed, follow=follow, hair=hair,
                                       vary_hair=vary_hair, drawings=drawings, parts=parts)
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
                  follow: float | None = None, colors: list[str | None] | None = None) -> list[np.ndarray]:
        """The faces of one drawing, one per requested variation (as ``Ensemble.translate``);
        ``colors``: each stroke's crayon ("#rrggbb", or None for the black pen)."""
        bitmap, parts = self.bitmap_and_parts(drawing) if self.stroke_parts is not None else (self.bitmap(drawing), None)
        hair = self.crayon_hair(drawing, colors, parts) if colors is not None else None
        faces = self.paint(bitmap[None], variations=max(members) + 1, seed=seed, follow=follow,
                           hair=None if hair is None else hair[None], drawings=[drawing],
                           parts=None if parts is None else [parts])[0]
        return [faces[i] for i in members]


def hair_drop(strokes, parts: list[str], tilt: float) -> float:
    """How far the hair strokes reach down (``STROKE_ATTRIBUTES``): the lowest point of the hair
    below the outline's middle, in the outline's half-heights, with the drawing turned upright by
    ``tilt`` (radians, clockwise on screen) about the outline's centre. NaN without an outline or
    hair strokes; specks (under ``HAIR_STROKE_MIN`` of the outline's size) and a fringe (a stroke
    that ends inside the face, ``FRINGE_INSIDE``) do not count. Screen coordinates: y grows
    downwards."""
    outline = [s for s, p in zip(strokes, parts) if p == "outline"]
    if not outline:
        return float("nan")
    ring = np.concatenate(outline, axis=1).astype(np.float64)
    size = float((ring.max(axis=1) - ring.min(axis=1)).max())
    hair = [s for s, p in zip(strokes, parts)
            if p == "hair" and float((s.max(axis=1) - s.min(axis=1)).max()) >= HAIR_STROKE_MIN * size]
    if not hair:
        return float("nan")
    centre = (ring.min(axis=1) + ring.max(axis=1)) / 2
    c, s = np.cos(tilt), np.sin(tilt)
    upright = np.array([[c, s], [-s, c]])      # undoes a clockwise turn by ``tilt`` on screen
    ring = upright @ (ring - centre[:, None])
    half = float(ring[1].max() - ring[1].min()) / 2
    half_width = float(ring[0].max() - ring[0].min()) / 2
    if half <= 0 or half_width <= 0:
        return float("nan")
    middle = np.array([(ring[0].min() + ring[0].max()) / 2, (ring[1].min() + ring[1].max()) / 2])
    lows = []
    for stroke in hair:
        points = upright @ (stroke - centre[:, None]) - middle[:, None]
        x, y = points[:, int(np.argmax(points[1]))]
        if (x / half_width) ** 2 + (y / half) ** 2 >= FRINGE_INSIDE ** 2:   # not a fringe over the face
            lows.append(y)
    return max(lows) / half if lows else float("nan")
