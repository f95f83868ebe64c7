"""Request and response bodies of the REST API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StringConstraints, model_validator

from core.drawing import MAX_STROKES, Drawing, DrawingError, parse_strokes


#: A name an admin gives something the database keeps (an API key, a data set): 1 to 200
#: characters, none of them NUL, which PostgreSQL cannot store in text (psycopg raises, and the
#: request would be a 500 instead of a 422).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


#: A crayon: "#rrggbb".
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]


def _drawing(strokes: list[list[list[StrictFloat]]]) -> Drawing:
    try:
        return parse_strokes(strokes)
    except DrawingError as exc:
        raise ValueError(str(exc)) from None


if TYPE_CHECKING:
    Strokes = Drawing
else:
    #: A drawing as JSON strokes (the schema and the type errors are pydantic's for a list of
    #: strokes), parsed once, on validation, into a ``Drawing``. Coordinates are JSON numbers
    #: only (strict): ``true`` or ``"12"`` is a 422, not a point at 1 or 12.
    Strokes = Annotated[list[list[list[StrictFloat]]], Field(max_length=MAX_STROKES), AfterValidator(_drawing)]


class TranslateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "strokes": [
                    [[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
                    [[50, 52], [50, 52]],
                    [[80, 82], [50, 52]],
                    [[45, 65, 85], [75, 85, 75]],
                ],
                "member": 0,
                "size": 256,
                "response": "png",
            }]
        },
    )

    strokes: Strokes = Field(
        ...,
        description=(
            "The drawing: a list of strokes. Each stroke is Quick, Draw! raw `[[x...], [y...], [t...]]` "
            "or simplified `[[x...], [y...]]`, in any coordinate units (the drawing is normalised)."
        ),
    )
    model: str | None = Field(
        None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
        description="Which drawing model draws the face (one of `GET /api/v1/models`); default: the "
                    "server's default model (`doodle_encoder`, faces of the StyleGAN prior).",
    )
    member: int | Literal["all"] = Field(
        0, description="Which variation to draw (a CycleGAN ensemble member, or a doodle encoder's colours: "
                       "0 the drawing's own, then palettes), or \"all\" for every one."
    )
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1,
        description="New colours for the same face: variation v takes the palette of seed + v. Only for models "
                    "whose `controls` list `seed`.",
    )
    follow: float | None = Field(
        None, ge=0.0, le=1.0,
        description="1: follow the drawing closely (bolder changes, more varied faces); 0: prettier, closer to the "
                    "average face. Default: the model's own setting. Only for models whose `controls` list `follow`.",
    )
    colors: list[Colour | None] | None = Field(
        None, max_length=MAX_STROKES,
        description="The crayon of each stroke, in the order of `strokes` and as many: a CSS hex colour "
                    "(\"#rrggbb\") or null for the black pen. The hair's strokes set the face's hair colour, and "
                    "every variation keeps it. Without it, every stroke is the black pen. Only for models whose "
                    "`controls` list `colors`.",
    )
    size: int = Field(256, ge=28, le=1024, description="Side of the returned picture, in pixels.")
    response: Literal["png", "json"] = Field(
        "png", description="png: the picture (a horizontal strip when member is \"all\"); json: base64 PNGs."
    )

    @model_validator(mode="after")
    def _a_colour_per_stroke(self) -> "TranslateRequest":
        if self.colors is not None and len(self.colors) != len(self.strokes.strokes):
            raise ValueError(f"colors has {len(self.colors)} entries but the drawing has {len(self.strokes.strokes)} "
                             "strokes: give one colour (or null) per stroke")
        return self


class TranslatedImage(BaseModel):
    member: int
    label: str
    png_base64: str


class TranslateResponse(BaseModel):
    model: str
    version: str
    size: int
    images: list[TranslatedImage]
    elapsed_ms: float
    upscaler: str | None = Field(None, description="The upscaler that enlarged the faces to `size` (name and "
                                                   "version); null where Lanczos alone did (a size at or below "
                                                   "the model's own, or no upscaler).")


class MemberOut(BaseModel):
    index: int
    label: str
    step: int | None


class ModelOut(BaseModel):
    name: str
    kind: str
    version: str
    serving: bool
    draws_from: Literal["drawing", "seed"] = Field(
        "drawing", description="drawing: a drawing model (POST /api/v1/translate); seed: the random-face model "
                               "(POST /api/v1/faces/...), which makes faces from seeds.")
    image_size: int
    raster_size: int | None = Field(None, description="Side of the doodle bitmap a drawing model reads.")
    pen: Literal["doodle", "line_art"] | None = Field(
        None, description="How a drawing model wants to be drawn for: doodle, a face drawn as a kid doodles (any "
                          "pen; the drawing is read as a 28 px Quick, Draw! doodle and the face is the model's "
                          "own); line_art, a detailed drawing with a thin pen, read at full size and coloured "
                          "as drawn.")
    members: list[MemberOut]
    providers: list[str]
    metrics: dict[str, float]
    created: str
    error: str | None = None
    default: bool = Field(False, description="Requests that name no model get this one.")
    controls: list[str] = Field(default_factory=list,
                                description="The request fields this model takes beyond the drawing: seed, follow.")
    upscaler: str | None = Field(None, description="The server's upscaler (name and version) that enlarges this "
                                                   "model's faces when a larger `size` is asked for; null: Lanczos.")
    on_page: bool = Field(True, description="The drawing page offers it to kids (a line-art model only where the "
                                            "server's page_line_art setting says so).")


class FaceBox(BaseModel):
    x: float = Field(description="Left edge of the face found, in pixels of the photo as processed (upright, "
                                 "at most 1,024 px on its longest side).")
    y: float
    w: float
    h: float


class PhotoResponse(BaseModel):
    model: str
    version: str
    face: FaceBox = Field(description="Where the face was found.")
    anime_png_base64: str = Field(description="The anime face alone, a PNG at `size` px.")
    composite_png_base64: str = Field(description="The photo with the anime face blended over the face and hair, "
                                                  "a PNG the size of the photo as processed.")
    elapsed_ms: float
