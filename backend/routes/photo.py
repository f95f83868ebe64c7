"""``POST /api/v1/photo``: a photo of a face in, its anime version out, composited back over the
photo. The photo is read from the request in memory (the multipart body is parsed from bytes,
never spooled to a temporary file), processed and forgotten: nothing is written, logged or cached.

What one request can cost is bounded: the body by the app's body limits, the form by
``backend.multipart``'s caps (parsed in a worker thread, never on the event loop), the photo by
``photo_max_bytes``, its pixels by ``photo_max_pixels`` read from the header, and the memory its
decoding holds by the process's ``MemoryBudget``, shared by every photo in flight."""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from PIL import Image

from sqlalchemy.exc import SQLAlchemyError

from backend.db import crud
from backend.deps import ApiClientDep, SettingsDep
from backend.multipart import FormError, parse_form
from backend.schemas import FaceBox, PhotoResponse
from backend.serving import ModelUnavailable, PhotoModels
from backend.settings import Settings
from core.photo import PhotoError, PhotoModel, PhotoResult, decode_opened, open_photo

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")

#: The fields the route reads; a form may have a few more parts (ignored), up to the parser's cap.
FIELDS = ("photo", "output", "response")


def _promoted_folder(request: Request, settings: Settings) -> Path | None:
    """The folder of the photo model's version promoted on the dashboard, if any (None without a
    database: the bundled model serves)."""
    Session = request.app.state.Session
    if Session is None:
        return None
    try:
        with Session() as session:
            active = crud.get_active_model_version(session, name=settings.photo_model)
    except SQLAlchemyError as exc:
        log.warning("the database did not answer which photo model is promoted: %s", exc)
        return None
    return Path(active.folder) if active is not None else None


def photo_model(request: Request, settings: Settings) -> PhotoModel:
    """The promoted photo model, else the bundled one (``backend.serving.PhotoModels``); 503 when
    neither can serve."""
    models: PhotoModels = request.app.state.photo_models
    try:
        return models.get(_promoted_folder(request, settings))
    except ModelUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc), headers={"Retry-After": "60"}) from None


def _read_form(body: bytes, content_type: str) -> dict[str, bytes]:
    try:
        parts = parse_form(body, content_type)
    except FormError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    return {name: parts[name].data for name in FIELDS if name in parts}


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@router.post(
    "/photo",
    tags=["photo"],
    summary="A photo of a face in, its anime version out, composited over the photo.",
    description=(
        "Send `multipart/form-data` with the photo (JPEG, PNG or WebP) in a field named `photo`; optional "
        "fields: `output` (`composite`, the default: the photo with the anime face blended over the face "
        "and hair; or `anime`: the anime face alone) and `response` (`png`, the default, or `json` with "
        "both pictures as base64 PNGs and where the face was found). The photo is processed in memory and "
        "never kept, logged or cached. The EXIF orientation is respected. Limits: `photo_max_bytes` "
        "(10 MiB, 10,485,760 bytes; over it: 413), JPEG, PNG or WebP only (else 415), at most `photo_max_pixels` "
        "pixels (40 megapixels, read from the header before decoding; else 422). A form of at most 16 parts, one "
        "level deep (else 422, saying what is wrong). No face found: 422 saying so. Photos are decoded within a "
        "memory budget shared by all requests; when it stays full for `photo_wait_s`: 503 with `Retry-After`. "
        "The same API-key rules as `/api/v1/translate`."
    ),
    responses={
        200: {"model": PhotoResponse, "content": {"image/png": {}},
              "description": "A PNG (default) or JSON (`response=json`)."},
        413: {"description": "The photo is over `photo_max_bytes`."},
        415: {"description": "Not multipart/form-data, or not a JPEG, PNG or WebP picture."},
        422: {"description": "A malformed form, no photo field, a picture with too many pixels, a damaged file, "
                             "or no face found."},
        401: {"description": "An `X-API-Key` was sent but is unknown or revoked."},
        429: {"description": "Over the per-minute limit (see `Retry-After`)."},
        503: {"description": "No photo model can serve (none installed, or damaged), or the server is busy "
                             "reading other photos (see `Retry-After`)."},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["photo"], "properties": {
            "photo": {"type": "string", "format": "binary", "description": "The photo: JPEG, PNG or WebP."},
            "output": {"type": "string", "enum": ["composite", "anime"], "default": "composite"},
            "response": {"type": "string", "enum": ["png", "json"], "default": "png"}}}}}}},
)
async def photo(request: Request, settings: SettingsDep, _client: ApiClientDep):
    t0 = time.perf_counter()
    body = await request.body()
    fields = await run_in_threadpool(_read_form, body, request.headers.get("content-type", ""))
    del body
    if not fields.get("photo"):
        raise HTTPException(status_code=422, detail="no photo: send it in a multipart field named photo")
    if len(fields["photo"]) > settings.photo_max_bytes:
        raise HTTPException(status_code=413, detail=f"the photo is {len(fields['photo']):,} bytes; at most "
                                                    f"{settings.photo_max_bytes:,} bytes are taken")
    options = {k: fields[k].decode("utf-8", "replace").strip() for k in ("output", "response") if k in fields}
    output: Literal["composite", "anime"] = options.get("output", "composite")  # type: ignore[assignment]
    response = options.get("response", "png")
    if output not in ("composite", "anime") or response not in ("png", "json"):
        raise HTTPException(status_code=422, detail="output is composite or anime; response is png or json")
    try:
        opened = await run_in_threadpool(open_photo, fields.pop("photo"), max_pixels=settings.photo_max_pixels)
    except PhotoError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    model = await run_in_threadpool(photo_model, request, settings)

    def work() -> PhotoResult | None:  # decoding, the face search and the model: off the event loop
        try:
            image = decode_opened(opened)
        except PhotoError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return model.transform(image)

    budget = request.app.state.photo_budget
    try:
        share = await budget.acquire(opened.cost, settings.photo_wait_s)
    except TimeoutError:
        opened.image.close()
        raise HTTPException(status_code=503, detail="the server is busy reading other photos; try again in a few "
                                                    "seconds", headers={"Retry-After": "5"}) from None
    try:
        # (the thread is not abandoned when the client goes away: the share is given back only
        # when the work has finished and its memory is free)
        result = await run_in_threadpool(work)
    finally:
        budget.release(share)
    if result is None:
        raise HTTPException(status_code=422, detail="no face found in the photo: try one where the face looks at the "
                                                    "camera, is well lit and fills a good part of the picture")
    if response == "json":
        return PhotoResponse(
            model=model.name, version=model.manifest.version,
            face=FaceBox(x=result.face.x, y=result.face.y, w=result.face.w, h=result.face.h),
            anime_png_base64=base64.b64encode(_png(result.anime)).decode(),
            composite_png_base64=base64.b64encode(_png(result.composite)).decode(),
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 1))
    picture = result.composite if output == "composite" else result.anime
    return Response(_png(picture), media_type="image/png", headers={"Cache-Control": "no-store"})
