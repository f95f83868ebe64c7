"""Random anime faces from the shipped StyleGAN: the public API under /api/v1/faces.

Each request (faces from seeds, a style-mixing grid, an interpolation) is sent to the worker's
``sampling`` queue by id and its picture is kept under a key made of the model's manifest hash
and the request's parameters: the same request is answered from that file the next time, with
no work. The route waits a little for a fresh result (``sample_wait_s``) and otherwise answers
202 with the address to fetch it from.

One client cannot hold the worker: it may have ``sample_pending_per_client`` requests waiting at
once (one more is 429 with Retry-After), and a request costs its client's per-minute budget one
call per ``FACES_PER_CALL`` faces it draws (a 48-frame morph costs six), not one call whatever
its size. A damaged face model (a file whose sha256 is not the manifest's) is 503 with a
sentence, checked once per change of its files, and serves again when they are restored.

The API process imports no torch, and not ONNX Runtime for this either: the worker samples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session

from backend.db import crud
from backend.db.models import SampleRequest, utcnow
from backend.deps import ApiClient, ApiClientDep, DbDep, IdPath, SettingsDep
from backend.jobs import notify, service
from backend.serving import files_signature
from backend.settings import Settings
from core.faces import FacesIn, InterpolateIn, MixIn, SampleIn
from core.manifest import ModelIntegrityError, ModelManifest

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/faces", tags=["random faces"])

#: Seconds after which a request still pending is given up on and asked for again.
STALE_REQUEST_S = 300
#: Faces the worker draws for one call of the per-minute budget.
FACES_PER_CALL = 8

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/gif": {}}},
    202: {"description": "Still being made: fetch `url` later."},
    429: {"description": "Over the per-minute budget (a request costs one call per 8 faces it draws), or this "
                          "client already has `sample_pending_per_client` requests being made; see `Retry-After`."},
    503: {"description": "No random-face model, a damaged one, or the queue is down."},
}


def cache_key(manifest_sha: str, kind: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"model": manifest_sha, "kind": kind, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def face_model_folder(settings: Settings) -> Path:
    return settings.models_dir / settings.face_model


#: folder -> (files signature, (manifest sha256, manifest) or why the model cannot serve)
_checked: dict[Path, tuple[tuple, tuple[str, ModelManifest] | str]] = {}


def _check(folder: Path, name: str) -> tuple[str, ModelManifest] | str:
    path = folder / "manifest.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return f"no random-face model is installed ({name})"
    try:
        manifest = ModelManifest.model_validate_json(raw)
    except ValueError:
        return f"the random-face model's manifest is unreadable ({name})"
    if manifest.stylegan is None:
        return f"{name} is not a StyleGAN export"
    try:
        manifest.verify(folder)
    except ModelIntegrityError as exc:
        log.error("the random-face model is refused: %s", exc)
        return f"the random-face model is damaged and makes no faces until it is restored ({exc})"
    return hashlib.sha256(raw).hexdigest(), manifest


def face_model(settings: Settings) -> tuple[str, ModelManifest]:
    """The installed face model's manifest and its sha256 (part of every cache key); 503 when it
    cannot serve. Its files are read and checked once per change of them (their sizes and
    times), not on every request."""
    folder = face_model_folder(settings)
    signature = files_signature(folder)
    cached = _checked.get(folder)
    if cached is None or cached[0] != signature:
        cached = _checked[folder] = (signature, _check(folder, settings.face_model))
    if isinstance(cached[1], str):
        raise HTTPException(status_code=503, detail=cached[1], headers={"Retry-After": "60"})
    return cached[1]


def faces_drawn(body: SampleIn) -> int:
    """How many faces the worker draws for a request."""
    if isinstance(body, FacesIn):
        return len(body.seeds)
    if isinstance(body, MixIn):
        rows, cols = len(body.row_seeds), len(body.col_seeds)
        return rows * cols + rows + cols
    return body.frames


def _picture(req: SampleRequest) -> FileResponse:
    return FileResponse(req.result_path, media_type=req.media_type or "image/png",
                        headers={"X-Request-Id": str(req.id), "Cache-Control": "public, max-age=86400"})


def _answer(req: SampleRequest) -> FileResponse | JSONResponse:
    """The picture when it is made, 500 when it failed, else 202 with where to fetch it."""
    if req.status == "done" and req.result_path and Path(req.result_path).is_file():
        return _picture(req)
    if req.status == "failed":
        raise HTTPException(status_code=500, detail=f"the faces could not be made: {req.error}")
    return JSONResponse(status_code=202, content={"request_id": req.id, "status": req.status,
                                                  "url": f"/api/v1/faces/requests/{req.id}"})


async def _make(body: SampleIn, db: Session, settings: Settings, request: Request,
                client: ApiClient) -> FileResponse | JSONResponse:
    if body.size > settings.max_output_size:  # the operator's limit, as /translate keeps it
        raise HTTPException(status_code=422, detail=[{
            "loc": ["body", "size"], "type": "value_error",
            "msg": f"size {body.size} is over this service's limit of {settings.max_output_size}"}])
    sha, manifest = face_model(settings)
    if isinstance(body, MixIn) and isinstance(body.layers, tuple) and body.layers[1] >= manifest.stylegan.num_ws:
        # refused here, as a bad request, rather than failing later in the worker
        n = manifest.stylegan.num_ws
        raise HTTPException(status_code=422, detail=[{
            "loc": ["body", "layers"], "type": "value_error",
            "msg": f"layers [{body.layers[0]}, {body.layers[1]}] are outside this model's style inputs 0..{n - 1}"}])
    params = body.model_dump(mode="json")
    key = cache_key(sha, body.kind, params)
    done = crud.find_sample_result(db, cache_key=key)
    if done is not None and done.result_path and Path(done.result_path).is_file():
        return _picture(done)
    # A request pending for long (its worker died, or the queue lost it) is not waited on.
    pending = crud.find_pending_sample(db, cache_key=key, since=utcnow() - dt.timedelta(seconds=STALE_REQUEST_S))
    if pending is None:
        waiting = crud.count_pending_samples(db, client=client.bucket,
                                             since=utcnow() - dt.timedelta(seconds=STALE_REQUEST_S))
        if waiting >= settings.sample_pending_per_client:
            raise HTTPException(status_code=429, headers={"Retry-After": "5"}, detail=(
                f"{waiting} of your pictures are still being made; ask for more when they are ready"))
        client.charge(request, math.ceil(faces_drawn(body) / FACES_PER_CALL) - 1)  # one call is paid already
        pending = crud.create_sample_request(db, kind=body.kind, params=params, cache_key=key,
                                             model_folder=str(face_model_folder(settings)), client=client.bucket)
        try:
            service.enqueue_sample(pending.id)
        except service.QueueUnreachable as exc:
            crud.fail_sample_request(db, request_id=pending.id, error=f"queue not reachable: {exc}")
            raise HTTPException(status_code=503, detail="the sampling queue is not reachable; try again soon") from None
    req = await notify.wait_for_sample(db, request_id=pending.id, timeout_s=settings.sample_wait_s,
                                       redis_url=settings.redis_url)
    return _answer(req)


@router.post("/random", summary="Faces from seeds (a row of them), with truncation psi.", responses=RESPONSES)
async def random_faces(body: FacesIn, db: DbDep, settings: SettingsDep, request: Request, client: ApiClientDep):
    return await _make(body, db, settings, request, client)


@router.post("/mix", summary="A style-mixing grid: row faces' chosen layers over column faces.", responses=RESPONSES)
async def mix(body: MixIn, db: DbDep, settings: SettingsDep, request: Request, client: ApiClientDep):
    return await _make(body, db, settings, request, client)


@router.post("/interpolate", summary="Frames from one seed's face to another's (GIF or a strip).", responses=RESPONSES)
async def interpolate(body: InterpolateIn, db: DbDep, settings: SettingsDep, request: Request, client: ApiClientDep):
    return await _make(body, db, settings, request, client)


@router.get("/requests/{request_id}", summary="A request's picture when it is made, else its status.",
            responses=RESPONSES)
def get_request(request_id: IdPath, db: DbDep):
    req = crud.get_sample_request(db, request_id=request_id)
    if req is None:
        raise HTTPException(status_code=404, detail=f"request {request_id} does not exist")
    return _answer(req)
