"""What one may ask of the random-face model: the typed sample requests.

The API validates a request with these models, keeps it as JSON on its row (``kind`` and
``params``) and sends the row's id to the worker, which reads it back into the same model and
hands it to ``core.runtime.FaceModel.render``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_SEED = 2**32 - 1
#: Style layers by name, as fractions of the w inputs: coarse (pose, face shape), middle
#: (features, hair style), fine (colours, texture).
LAYER_GROUPS = {"coarse": (0.0, 0.3), "middle": (0.3, 0.6), "fine": (0.6, 1.0)}

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class FacesIn(BaseModel):
    kind: ClassVar[str] = "faces"

    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=16,
                              description="One face per seed; the same seed gives the same face.")
    psi: float = Field(0.7, ge=0.0, le=1.0, description="Truncation: 0 is the average face, 1 the widest variety.")
    size: int = Field(256, ge=32, le=512, description="Side of each face in the picture, in pixels.")


class MixIn(BaseModel):
    kind: ClassVar[str] = "mix"

    row_seeds: list[Seed] = Field(min_length=1, max_length=8, description="Faces that give the styles of `layers`.")
    col_seeds: list[Seed] = Field(min_length=1, max_length=8, description="Faces that give everything else.")
    layers: Literal["coarse", "middle", "fine"] | tuple[int, int] = Field(
        "coarse", description="Which style layers come from the row faces: a name, or [first, last] w indices.")
    psi: float = Field(0.7, ge=0.0, le=1.0)
    size: int = Field(128, ge=32, le=256)

    @field_validator("layers")
    @classmethod
    def _layers_in_order(cls, v):
        # (the upper bound is the model's num_ws, checked by the route, which reads the manifest)
        if isinstance(v, tuple) and not 0 <= v[0] <= v[1]:
            raise ValueError("layers [first, last] need 0 <= first <= last")
        return v


class InterpolateIn(BaseModel):
    kind: ClassVar[str] = "interpolate"

    seed_a: Seed
    seed_b: Seed
    frames: int = Field(8, ge=2, le=48)
    psi: float = Field(0.7, ge=0.0, le=1.0)
    size: int = Field(128, ge=32, le=256)
    format: Literal["gif", "strip"] = "gif"

    @model_validator(mode="after")
    def _strip_fits(self) -> "InterpolateIn":
        if self.format == "strip" and self.frames * self.size > 8192:
            raise ValueError("a strip that wide is not made: lower frames or size")
        return self


SampleIn = FacesIn | MixIn | InterpolateIn

#: A stored request's ``kind`` -> its model.
SAMPLE_REQUESTS: dict[str, type[SampleIn]] = {cls.kind: cls for cls in (FacesIn, MixIn, InterpolateIn)}


def sample_request(kind: str, params: dict) -> SampleIn:
    """A stored request read back into its model (``ValueError`` for an unknown kind)."""
    if kind not in SAMPLE_REQUESTS:
        raise ValueError(f"unknown sample kind {kind!r}; valid: {', '.join(SAMPLE_REQUESTS)}")
    return SAMPLE_REQUESTS[kind].model_validate(params)
