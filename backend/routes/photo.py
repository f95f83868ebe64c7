"""``POST /api/v1/photo``: a photo of a face in, its anime version out, composited back over the
photo. The photo is read from the request in memory (the multipart body is parsed from bytes,
never spooled to a temporary file), processed and forgotten: nothing is written, logged or cached."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import logging
import threading
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
from backend.schemas import FaceBox, PhotoResponse
from backend.settings import Settings
from core.photo import PhotoError, PhotoModel, PhotoResult, decode_photo

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")

_models: dict[Path, tuple[int, PhotoModel]] = {}
_lock = threading.Lock()


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


def photo_model(settings: Settings, folder: Path | None = None) -> PhotoModel:
    """The photo model (the promoted version's folder, else the bundled one), loaded and its files
    checked once per change of its manifest."""
    folder = folder or settings.models_dir / settings.photo_model
    try:
        mtime = (folder / "manifest.json").stat().st_mtime_ns
    except FileNotFoundError:
        raise HTTPException(status_code=503, detail=f"no photo model is installed ({settings.photo_model})") from None
    with _lock:
        cached = _models.get(folder)
        if cached is None or cached[0] != mtime:
            try:
                model = PhotoModel(folder, settings.providers, settings.intra_op_threads)
            except (ValueError, OSError) as exc:
                log.error("the photo model %s cannot serve: %s", folder.name, exc)
                raise HTTPException(status_code=503, detail=f"the photo model cannot serve: {exc}") from None
            _models[folder] = cached = (mtime, model)
        return cached[1]


def _form(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None]]:
    """The fields of a multipart/form-data body: name -> (bytes, file name or None), in memory."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise HTTPException(status_code=415, detail="send the photo as multipart/form-data, in a field named photo")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise HTTPException(status_code=422, detail="the multipart body could not be read")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_payload(decode=True) or b"", part.get_filename())
    return fields


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
        "(10 MB; over it: 413), JPEG, PNG or WebP only (else 415), at most `photo_max_pixels` pixels "
        "(40 megapixels, read from the header before decoding; else 422). No face found: 422 saying so. "
        "The same API-key rules as `/api/v1/translate`."
    ),
    responses={
        200: {"content": {"image/png": {}, "application/json": {"schema": PhotoResponse.model_json_schema()}},
              "description": "A PNG (default) or JSON (`response=json`)."},
        413: {"description": "The photo is over `photo_max_bytes`."},
        415: {"description": "Not multipart/form-data, or not a JPEG, PNG or WebP picture."},
        422: {"description": "No photo field, a picture with too many pixels, a damaged file, or no face found."},
        401: {"description": "An `X-API-Key` was sent but is unknown or revoked."},
        429: {"description": "Over the per-minute limit (see `Retry-After`)."},
        503: {"description": "No photo model is installed."},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["photo"], "properties": {
            "photo": {"type": "string", "format": "binary", "description": "The photo: JPEG, PNG or WebP."},
            "output": {"type": "string", "enum": ["composite", "anime"], "default": "composite"},
            "response": {"type": "string", "enum": ["png", "json"], "default": "png"}}}}}}},
)
async def photo(request: Request, settings: SettingsDep, _client: ApiClientDep):
    t0 = time.perf_counter()
    fields = _form(await request.body(), request.headers.get("content-type", ""))
    if "photo" not in fields or not fields["photo"][0]:
        raise HTTPException(status_code=422, detail="no photo: send it in a multipart field named photo")
    options = {k: fields[k][0].decode("utf-8", "replace").strip() for k in ("output", "response") if k in fields}
    output: Literal["composite", "anime"] = options.get("output", "composite")  # type: ignore[assignment]
    response = options.get("response", "png")
    if output not in ("composite", "anime") or response not in ("png", "json"):
        raise HTTPException(status_code=422, detail="output is composite or anime; response is png or json")
    promoted = _promoted_folder(request, settings)
    try:
        model = photo_model(settings, promoted)
    except HTTPException:
        if promoted is None:
            raise
        model = photo_model(settings)  # a damaged promoted version: the bundled model serves

    def work() -> PhotoResult | None:  # decoding, the face search and the model: off the event loop
        try:
            image = decode_photo(fields["photo"][0], max_pixels=settings.photo_max_pixels)
        except PhotoError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return model.transform(image)

    result = await run_in_threadpool(work)
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

