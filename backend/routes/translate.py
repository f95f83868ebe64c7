"""The drawing endpoint: strokes in, anime face out; and the models it can serve."""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from PIL import Image

from backend.deps import ApiClientDep, SettingsDep, StoreDep
from backend.schemas import MemberOut, ModelOut, TranslatedImage, TranslateRequest, TranslateResponse
from core.manifest import ModelIntegrityError, ModelManifest, SketchInput

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


@router.get("/models", tags=["models"], summary="Models in the model folder, and which one serves.")
def list_models(store: StoreDep, settings: SettingsDep) -> list[ModelOut]:
    serving = store.get()
    out = []
    for manifest_path in sorted(Path(settings.models_dir).glob("*/manifest.json")):
        folder = manifest_path.parent
        error = None
        try:
            m = ModelManifest.load(folder)
        except (ValueError, ModelIntegrityError) as exc:
            log.warning("unreadable manifest %s: %s", manifest_path, exc)
            continue
        if not isinstance(m.input, SketchInput):
            continue  # an unconditional generator: it cannot serve drawings
        is_serving = serving is not None and serving.folder.resolve() == folder.resolve()
        if not is_serving and folder.name == settings.default_model:
            error = store.error
        out.append(ModelOut(
            name=m.name, kind=m.kind, version=m.version, serving=is_serving,
            image_size=m.input.image_size, raster_size=m.input.raster_size,
            members=[MemberOut(index=i, label=mm.label or f"variation {i + 1}", step=mm.source.get("step"))
                     for i, mm in enumerate(m.members)],
            providers=serving.providers if is_serving else [], metrics=m.metrics,
            created=m.created, error=error,
        ))
    return out


@router.post(
    "/translate",
    tags=["translate"],
    summary="Strokes in, anime face out.",
    responses={
        200: {"content": {"image/png": {}, "application/json": {}},
              "description": "A PNG (default) or JSON with base64 PNGs (`response: json`)."},
        422: {"description": "The drawing is invalid; `detail` says what is wrong."},
        401: {"description": "An `X-API-Key` was sent but is unknown or revoked."},
        429: {"description": "The API key's per-minute limit is reached (see `Retry-After`)."},
        503: {"description": "No model is loaded."},
    },
)
def translate(body: TranslateRequest, store: StoreDep, settings: SettingsDep, _client: ApiClientDep):
    ens = store.get()  # this request keeps this ensemble even if it is swapped
    if ens is None:
        raise HTTPException(status_code=503, detail=f"no model is serving: {store.error or 'loading'}")
    if body.size > settings.max_output_size:
        raise HTTPException(status_code=422, detail=f"size {body.size} is over the limit of {settings.max_output_size}")
    n = len(ens.members)
    if body.member == "all":
        members = list(range(n))
    elif 0 <= body.member < n:
        members = [body.member]
    else:
        raise HTTPException(status_code=422, detail=f"member {body.member} does not exist; this model has members 0..{n - 1}")
    t0 = time.perf_counter()
    faces = ens.translate(body.strokes, members)
    images = [Image.fromarray(f).resize((body.size, body.size), Image.Resampling.LANCZOS) for f in faces]
    elapsed = (time.perf_counter() - t0) * 1000
    headers = {"X-Model": ens.name, "X-Model-Version": ens.manifest.version, "X-Elapsed-Ms": f"{elapsed:.1f}"}
    if body.response == "json":
        return TranslateResponse(
            model=ens.name, version=ens.manifest.version, size=body.size, elapsed_ms=round(elapsed, 2),
            images=[TranslatedImage(member=i, label=ens.members[i].label, png_base64=base64.b64encode(_png(im)).decode())
                    for i, im in zip(members, images)],
        )
    if len(images) == 1:
        strip = images[0]
    else:
        strip = Image.new("RGB", (body.size * len(images), body.size))
        for k, im in enumerate(images):
            strip.paste(im, (k * body.size, 0))
    return Response(content=_png(strip), media_type="image/png", headers=headers)
