"""Model manifests: what an exported model is, its input contract, where it came from, and the
sha256 of every file. The server refuses a model whose files do not match their manifest.

Two shapes of model share the format. A sketch->anime translator reads a ``SketchInput`` and
its ``members`` are the variations of one ensemble. An unconditional generator reads a
``LatentInput`` and its ``members`` are its graphs, named by label: one "generator" (z -> image),
or StyleGAN's "mapping" (z -> w) and "synthesis" (ws -> image), joined by the ``stylegan`` block."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its sha256 differs from the manifest."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    image_size: int
    channels: int = 3
    layout: Literal["NCHW"] = "NCHW"
    dtype: Literal["float32"] = "float32"
    value_range: tuple[float, float] = (-1.0, 1.0)
    description: str = ""


class SketchInput(TensorSpec):
    raster_size: int = 28          # strokes are rendered as a numpy_bitmap of this size first
    line_diameter: float = 16.0    # in the 256-unit Quick, Draw! space
    padding: float = 16.0
    resize: Literal["bilinear"] = "bilinear"
    polarity: Literal["dark-ink-on-white"] = "dark-ink-on-white"


class PhotoInput(TensorSpec):
    """A photo model's input: the face found in a photo, cropped square around the detected face
    box (its side ``crop_scale`` box sides, its centre ``crop_shift`` box sides below the box's),
    resized to ``image_size``, RGB in [-1, 1]."""

    source: Literal["photo"] = "photo"
    crop_scale: float = 1.6
    crop_shift: float = -0.1
    resize: Literal["bilinear"] = "bilinear"


class FaceInput(TensorSpec):
    """A face check's input: faces our generators made (or real ones), RGB in [-1, 1]."""

    source: Literal["face"] = "face"


class ScoresOutput(BaseModel):
    """A vector of probabilities per input, one per label (a face check's output)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    labels: list[str]
    dtype: Literal["float32"] = "float32"
    description: str = ""


class FaceCheckSpec(BaseModel):
    """How a face check reads: the probability that each part is there (``parts``, in the
    output's order); a face passes when every part is at least ``threshold``."""

    model_config = ConfigDict(extra="forbid")
    parts: list[str]
    threshold: float


class UpscaleSpec(BaseModel):
    """An upscaler: its graph takes faces (N, 3, H, W) in [-1, 1] of any size and gives them at
    ``scale`` times the side; ``core.upscale`` applies it as often as a size asks."""

    model_config = ConfigDict(extra="forbid")
    scale: int = 2


class LatentInput(BaseModel):
    """The input of an unconditional generator: a batch of latent vectors."""

    model_config = ConfigDict(extra="forbid")
    name: str = "z"
    dim: int                                   # length of each latent vector
    distribution: Literal["standard_normal"] = "standard_normal"
    dtype: Literal["float32"] = "float32"
    description: str = ""


class StyleGANSpec(BaseModel):
    """How StyleGAN's two graphs fit together: mapping z (B, z_dim) -> w (B, w_dim); synthesis
    ws (B, num_ws, w_dim) -> image. Truncation is w_avg + psi * (w - w_avg), done by the caller."""

    model_config = ConfigDict(extra="forbid")
    mapping: str = "mapping"       # label of the member that maps z -> w
    synthesis: str = "synthesis"   # label of the member that makes images from ws
    num_ws: int                    # w inputs of the synthesis graph (one per layer)
    w_dim: int
    z_dim: int
    image_size: int
    w_avg: list[float]             # running mean of w over training: the centre of truncation
    truncation_psi: float = 1.0    # the truncation the samples were made with (1: none)


class DoodleWalk(BaseModel):
    """One walk of a doodle encoder's prior: the style inputs it moves, and how far for a drawing:
    coefficient = clip(scale * (attribute - centre), low, high)."""

    model_config = ConfigDict(extra="forbid")
    name: str                      # tilt, long, zoom_out, big_eyes, open_mouth, long_hair
    layers: list[int]              # the style inputs its direction moves
    attribute: str                 # the drawing attribute that sets it: the encoder's, or one read off the
    #                                strokes (``core.doodle_model.STROKE_ATTRIBUTES``; a drawing without it: 0)
    scale: float
    centre: float = 0.0
    low: float
    high: float
    keep_identity: bool = False    # True: the move is added to the face's own place along the walk, not put
    #                                in its stead, so a drawing that says nothing leaves the face as it was


class StrokePartsSpec(BaseModel):
    """A doodle encoder's stroke reader: its member reads (strokes, 2, S, S), the whole drawing
    and one stroke where it is in it, ink in [0, 1], and gives a probability per part."""

    model_config = ConfigDict(extra="forbid")
    member: str = "strokes"
    parts: list[str]


class HairColourSpec(BaseModel):
    """How a face's hair colour is set: the member (.npz) holds ``predict`` (w_dim + 1, 3), a
    linear fit from the mean of a face's styles over ``layers`` (and 1) to its hair colour in
    CIE Lab, and ``step`` (w_dim, 3), the smallest change of those styles that moves the fit by
    one unit of each Lab channel; a face is moved by ``gain`` times the step its fit asks for."""

    model_config = ConfigDict(extra="forbid")
    member: str = "hair_colour"
    layers: tuple[int, int]        # [first, last) style inputs that are moved
    gain: float


class DoodleSpec(BaseModel):
    """How a doodle encoder makes faces: its graph reads a sketch and gives the drawing's
    attributes and an identity z; the prior (a StyleGAN export in the same models folder, the
    one it was made for) maps z to w and draws the face; the walks move the face's styles by
    what the drawing holds. Palettes (variations) take the ``fine_layers`` from a seed's w."""

    model_config = ConfigDict(extra="forbid")
    prior: str                     # folder name of the StyleGAN export beside this model
    prior_manifest_sha256: str     # the prior's manifest.json it was made for; another is refused
    encoder: str = "encoder"       # member label: sketch (B, 3, S, S) -> attributes (B, A), z (B, z_dim)
    directions: str = "directions"  # member label: .npy float32 (K, num_ws, w_dim), one per walk
    attributes: list[str]          # the encoder's attribute outputs, in order
    walks: list[DoodleWalk]        # in the order of the directions file
    psi: float                     # truncation of the identity by default
    fine_layers: tuple[int, int]   # [first, last) style inputs a palette replaces
    guard: str | None = None       # folder name of the face check (beside the prior) every face must pass
    stroke_parts: StrokePartsSpec | None = None  # which part each stroke draws (crayon colours need it)
    hair_colour: HairColourSpec | None = None    # setting the hair's colour (a crayon's, or the variations')


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    sha256: str
    bytes: int
    label: str = ""                              # shown to users ("variation 1", ...)
    source: dict[str, Any] = Field(default_factory=dict)  # which snapshot / seed it came from
    parity_max_abs_diff: float | None = None     # ONNX vs torch on the export check batch
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = MANIFEST_FORMAT
    name: str
    kind: str                       # e.g. "cyclegan-sketch2anime"
    version: str
    created: str                    # ISO 8601, UTC
    input: SketchInput | PhotoInput | FaceInput | LatentInput
    output: TensorSpec | ScoresOutput
    members: list[Member]
    stylegan: StyleGANSpec | None = None  # StyleGAN generators: how the "mapping" and "synthesis" members join
    doodle: DoodleSpec | None = None      # doodle encoders: how the encoder, its walks and its prior join
    face_check: FaceCheckSpec | None = None  # face checks: the parts they look for and the passing score
    upscale: UpscaleSpec | None = None      # upscalers: how much one run of the graph enlarges
    training: dict[str, Any] = Field(default_factory=dict)  # config, steps, hardware, wall time
    data: list[dict[str, Any]] = Field(default_factory=list)  # data sets with their sha256
    metrics: dict[str, float] = Field(default_factory=dict)
    samples: str | None = None      # a sample grid beside the manifest

    def graphs(self) -> list[Member]:
        """The members that are ONNX graphs (the rest are the torch weights kept beside them)."""
        return [m for m in self.members if m.file.endswith(".onnx")]

    @classmethod
    def load(cls, folder: Path) -> "ModelManifest":
        path = Path(folder) / MANIFEST_NAME
        if not path.is_file():
            raise ModelIntegrityError(f"no {MANIFEST_NAME} in {folder}")
        return cls.model_validate_json(path.read_text())

    def save(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return path

    def verify(self, folder: Path) -> None:
        """Check every member file against its sha256; raise ModelIntegrityError on any mismatch."""
        if self.format_version != MANIFEST_FORMAT:
            raise ModelIntegrityError(f"{self.name}: manifest format {self.format_version} is not {MANIFEST_FORMAT}")
        if not self.members:
            raise ModelIntegrityError(f"{self.name}: the manifest lists no model files")
        for m in self.members:
            path = Path(folder) / m.file
            if Path(m.file).is_absolute() or ".." in Path(m.file).parts:
                raise ModelIntegrityError(f"{self.name}: member path {m.file!r} leaves the model folder")
            if not path.is_file():
                raise ModelIntegrityError(f"{self.name}: {m.file} is missing")
            digest = sha256_file(path)
            if digest != m.sha256:
                raise ModelIntegrityError(
                    f"{self.name}: {m.file} has sha256 {digest[:12]}…, the manifest says {m.sha256[:12]}…; refusing it"
                )
