"""The drawing endpoint: strokes in, anime face out; and the models it can serve."""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from PIL import Image

from backend.deps import ApiClientDep, SettingsDep, StoreDep
from backend.routes.faces import face_model
from backend.schemas import MemberOut, ModelOut, TranslatedImage, TranslateRequest, TranslateResponse
from core.drawing import LINE_DIAMETER, MAX_INK_LENGTH, MAX_POINTS_PER_STROKE, MAX_POINTS_TOTAL, MAX_STROKES
from core.manifest import ModelIntegrityError, ModelManifest, SketchInput
from core.runtime import DrawingModel, MemberInfo

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")


def _png(image: Image.Image) -> bytes:
    # zlib's fastest level: an upscaled 256 px face takes 19 ms at the default level 6 and 5 ms here,
    # for a file about a quarter larger
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _model_out(m: ModelManifest, *, serving: DrawingModel | None, default: bool, error: str | None,
               line_art_on_page: bool = False) -> ModelOut:
    line_art = m.input.line_diameter < LINE_DIAMETER
    members = (serving.members if serving is not None else
               [MemberInfo(i, mm.label or f"variation {i + 1}", mm.source.get("step")) for i, mm in enumerate(m.graphs())])
    return ModelOut(
        name=m.name, kind=m.kind, version=m.version, serving=serving is not None, default=default,
        image_size=serving.image_size if serving is not None else m.input.image_size, raster_size=m.input.raster_size,
        members=[MemberOut(index=mi.index, label=mi.label, step=mi.step) for mi in members],
        providers=serving.providers if serving is not None else [], metrics=m.metrics, created=m.created,
        error=error, controls=list(serving.controls) if serving is not None else [],
        pen="line_art" if line_art else "doodle", on_page=default or not line_art or line_art_on_page,
    )


@router.get("/models", tags=["models"], summary="The drawing models (which serve, which is the default) and the random-face model.")
def list_models(request: Request, store: StoreDep, settings: SettingsDep) -> list[ModelOut]:
    """Every drawing model the server is set to serve (the default first): the version that
    serves it, or, when none does, its bundled folder and why it is not serving; then the
    random-face model (``draws_from: seed``), whose faces come from ``/api/v1/faces``."""
    out = []
    for name in dict.fromkeys([settings.default_model, *settings.drawing_models]):
        serving = store.get(name)
        if serving is not None:
            manifest = serving.manifest
        else:
            try:
                manifest = ModelManifest.load(Path(settings.models_dir) / name)
            except (ValueError, OSError, ModelIntegrityError) as exc:
                if name == settings.default_model or name in store.errors:
                    log.warning("drawing model %s has no readable manifest: %s", name, exc)
                continue
        if not isinstance(manifest.input, SketchInput):
            continue
        # the error is shown when a model serves too: it says what was refused and what serves instead
        model_out = _model_out(manifest, serving=serving, default=name == settings.default_model,
                               error=store.errors.get(name), line_art_on_page=settings.page_line_art)
        upscaler = request.app.state.upscaler.get() if serving is not None else None
        if upscaler is not None:
            model_out.upscaler = f"{upscaler.name} v{upscaler.manifest.version}"
        out.append(model_out)
    try:
        _, faces = face_model(settings)
    except HTTPException as exc:
        log.info("no random-face model to list: %s", exc.detail)
    else:
        out.append(ModelOut(name=faces.name, kind=faces.kind, version=faces.version, serving=True, draws_from="seed",
                            image_size=faces.output.image_size, members=[], providers=[], metrics=faces.metrics,
                            created=faces.created))
    return out


@router.post(
    "/translate",
    tags=["translate"],
    summary="Strokes in, anime face out.",
    description=(
        "Limits, which bound the work one drawing may cost (the worst drawing within them takes about "
        f"0.2 s of CPU): at most {MAX_STROKES} strokes, {MAX_POINTS_PER_STROKE:,} points per stroke, "
        f"{MAX_POINTS_TOTAL:,} points in all, and {MAX_INK_LENGTH:,.0f} units of line in all, measured with the "
        "drawing scaled to 256 units on its longest side (a face is about 1,000-2,000); over them: 422. "
        "Without an `X-API-Key` each client address may make `anonymous_requests_per_minute` calls a minute "
        "(120 by default, enough for a live preview after every stroke); with one, the key's own limit holds. "
        "Over either: 429 with `Retry-After`."
    ),
    responses={
        200: {"content": {"image/png": {}, "application/json": {}},
              "description": "A PNG (default) or JSON with base64 PNGs (`response: json`)."},
        422: {"description": "The drawing is invalid; `detail` says what is wrong."},
        401: {"description": "An `X-API-Key` was sent but is unknown or revoked."},
        429: {"description": "The API key's per-minute limit, or without a key this address's, is reached "
                             "(see `Retry-After`)."},
        503: {"description": "The model asked for (or the default) is not loaded."},
    },
)
def translate(body: TranslateRequest, request: Request, store: StoreDep, settings: SettingsDep, _client: ApiClientDep):
    name = body.model or settings.default_model
    if name not in settings.drawing_models:
        raise HTTPException(status_code=422, detail=f"unknown model {name!r}; the drawing models are "
                                                    f"{', '.join(settings.drawing_models)}")
    ens = store.get(name)  # this request keeps this model even if it is swapped
    if ens is None:
        raise HTTPException(status_code=503, detail=f"model {name} is not serving: {store.errors.get(name) or 'loading'}")
    controls = {k: v for k, v in (("seed", body.seed), ("follow", body.follow), ("colors", body.colors))
                if v is not None}
    if unknown := sorted(set(controls) - set(ens.controls)):
        raise HTTPException(status_code=422, detail=f"model {name} takes no {' or '.join(unknown)}"
                                                    + (f" (it takes {', '.join(ens.controls)})" if ens.controls else ""))
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
    faces = ens.translate(body.strokes, members, **controls)
    request.app.state.metrics.inference.labels(name).observe(time.perf_counter() - t0)
    images, upscaled_by = request.app.state.upscaler.resize(np.stack(faces), body.size)
    elapsed = (time.perf_counter() - t0) * 1000
    headers = {"X-Model": ens.name, "X-Model-Version": ens.manifest.version, "X-Elapsed-Ms": f"{elapsed:.1f}"}
    if upscaled_by:
        headers["X-Upscaler"] = upscaled_by
    if body.response == "json":
        return TranslateResponse(
            model=ens.name, version=ens.manifest.version, size=body.size, elapsed_ms=round(elapsed, 2), upscaler=upscaled_by,
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
