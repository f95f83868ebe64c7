"""The doodle encoder's configuration (no torch): what it is trained on, how long, and how what a
drawing holds becomes a move of the face along the prior's walks. Written as JSON beside every
checkpoint and export; the walk mapping travels into the manifest, where serving reads it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WalkName = Literal["tilt", "long", "zoom_out", "big_eyes", "open_mouth", "long_hair"]
AttributeName = Literal["tilt", "long", "eye_size", "eye_height", "mouth_open", "mouth_frown", "mouth_width",
                        "hair", "face_fraction", "face_x", "face_y", "outline"]


class WalkMapping(BaseModel):
    """coefficient = clip(scale * (attribute - centre), low, high): how far along the walk
    ``walk`` the face moves for a drawing whose ``attribute`` has a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    walk: WalkName = Field(description="the prior's walk that carries it")
    attribute: AttributeName = Field(description="what the drawing holds")
    scale: float = Field(description="coefficient per unit of the attribute (negative flips the direction)")
    centre: float = Field(0.0, description="the attribute value that moves the face not at all")
    low: float = Field(-1.2, ge=-3, le=0, description="the smallest coefficient (further breaks the face)")
    high: float = Field(1.2, ge=0, le=3, description="the largest coefficient")
    keep_identity: bool = Field(False, description="add the move to the face's own place along the walk instead "
                                                   "of putting it in its stead")


class StrokeWalkMapping(WalkMapping):
    """A walk set by what the strokes say (``core.doodle_model.STROKE_ATTRIBUTES``, read with the
    stroke reader), added to an export after training (``training.doodle.stroke_walks``)."""

    attribute: Literal["hair_drop"] = Field(description="what the strokes say")  # type: ignore[assignment]


#: The mapping the encoder ships with. Tilt: 0.35 rad (20 degrees) of drawn tilt is one unit of
#: the tilt walk (about 18 degrees of head roll), negated because the walk turns anticlockwise.
#: Long: log(height / width) 0.3 (a face 1.35 times as tall as wide) is one unit. Zoom out: a
#: face outline that fills 3/4 of the drawing (the rest is hair or ears) is one unit. Big eyes:
#: dots (log radius ratio about -2.7) are -1, circles of a fifth of the face's width +1. Open
#: mouth: a drawn open mouth is one unit (more paints a red blob).
DEFAULT_WALKS: tuple[WalkMapping, ...] = (
    WalkMapping(walk="tilt", attribute="tilt", scale=-1 / 0.35),
    WalkMapping(walk="long", attribute="long", scale=1 / 0.3),
    WalkMapping(walk="zoom_out", attribute="face_fraction", scale=-4.0, centre=1.0, low=0.0),
    WalkMapping(walk="big_eyes", attribute="eye_size", scale=1 / 0.6, centre=-2.1),
    WalkMapping(walk="open_mouth", attribute="mouth_open", scale=1.0, low=0.0, high=1.0),
)

#: The walks the strokes set. Long hair: hair strokes that reach down to the chin (hair_drop about
#: 1, long strands 1.4) lengthen the hair beside the cheeks by up to 1.2 units of the long-hair
#: walk; tufts, spikes and scribbles on top of the head (about -0.2 to -0.7) shorten it a little
#: (at most 0.6 units: further, the faces break). Added to the face's own hair, so a drawing with
#: no hair strokes keeps it.
STROKE_WALKS: tuple[StrokeWalkMapping, ...] = (
    StrokeWalkMapping(walk="long_hair", attribute="hair_drop", scale=1.2, centre=0.2, low=-0.6, high=1.2,
                      keep_identity=True),
)


class DoodleEncoderConfig(BaseModel):
    """A doodle encoder onto a frozen StyleGAN prior: first the prior's walks are learned (one
    direction per visible change), then the encoder learns to read a drawing's attributes from
    synthetic doodles whose content is known, and finally its identity head is fitted on the
    real training doodles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["doodle_encoder"] = Field("doodle_encoder", description="a doodle encoder on the StyleGAN prior",
                                            json_schema_extra={"enum": ["doodle_encoder"], "readOnly": True})
    prior: str = Field("anime_faces", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$",
                       description="the StyleGAN export (a folder of the models folder) the faces come from")
    raster_size: int = Field(28, ge=16, le=64, description="side of the doodle bitmap the encoder reads")
    width: int = Field(32, ge=4, le=256, description="channels of the encoder's first convolution (doubled twice)")
    features: int = Field(256, ge=16, le=1024, description="length of the encoder's feature vector")
    walk_steps: int = Field(300, ge=1, le=10000, description="optimisation steps per walk of the prior")
    walk_batch: int = Field(12, ge=2, le=256, description="random faces per walk step")
    synthetic_count: int = Field(30000, ge=64, le=1_000_000, description="synthetic doodles the encoder learns from")
    steps: int = Field(6000, ge=1, description="encoder training steps")
    batch_size: int = Field(64, ge=2, le=1024, description="doodles per encoder step")
    lr: float = Field(1e-3, gt=0, le=1, description="learning rate of the encoder (Adam)")
    identity_components: int = Field(64, ge=2, le=1024,
                                     description="principal components of the drawing features that make a face's identity")
    psi: float = Field(0.8, ge=0, le=1, description="truncation of the identity by default (the 'prettier' end is lower)")
    guard: str | None = Field("face_check", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$",
                              description="the face check (a folder of the models folder) every face must pass before "
                                          "it is returned; a face that fails is drawn again with the drawing's moves "
                                          "shrunk. None: no check")
    walks: tuple[WalkMapping, ...] = Field(DEFAULT_WALKS, description="how a drawing's attributes move the face")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the walks, the synthetic doodles, the weights and the identity rotation")
    log_every: int = Field(50, ge=1, description="steps between lines of loss_log.jsonl")
    sample_every: int = Field(1000, ge=1, description="encoder steps between sample grids of held-out doodles")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")

    @property
    def total_steps(self) -> int:
        return len(self.walks) * self.walk_steps + self.steps
