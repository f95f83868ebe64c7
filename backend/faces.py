"""Random anime faces from the shipped StyleGAN: the public API under /api/v1/faces.

Each request (faces from seeds, a style-mixing grid, an interpolation) is sent to the worker's
``sampling`` queue by id and its picture is kept under a key made of the model's manifest hash
and the request's parameters: the same request is answered from that file the next time, with
no work. The route waits a little for a fresh result (``sample_wait_s``) and otherwise answers
202 with the address to fetch it from.

The API process imports no torch, and not ONNX Runtime for this either: the worker samples.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from backend.db import crud
from backend.db.models import SampleRequest, utcnow
from core.faces import FacesIn, InterpolateIn, MixIn
from core.manifest import ModelManifest
from backend.settings import Settings

log = logging.getLogger(__name__)

#: Seconds after which a request still pending is given up on and asked for again.
STALE_REQUEST_S = 300


def cache_key(manifest_sha: str, kind: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"model": manifest_sha, "kind": kind, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def face_model_folder(settings: Settings) -> Path:
    return settings.models_dir / settings.face_model


def build_router(settings: Settings, api_client) -> APIRouter:
    r = APIRouter(prefix="/api/v1/faces", tags=["random faces"])

    parsed: dict[int, tuple[str, ModelManifest]] = {}  # manifest mtime -> (sha256, manifest)

    def face_model() -> tuple[str, ModelManifest]:
        """The installed face model's manifest and its sha256 (part of every cache key), read
        and parsed once per change of the file, not on every request."""
        path = face_model_folder(settings) / "manifest.json"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise HTTPException(status_code=503, detail=f"no random-face model is installed ({settings.face_model})") from None
        if mtime not in parsed:
            parsed.clear()
            parsed[mtime] = _read_face_manifest(path)
        return parsed[mtime]

    def _read_face_manifest(path: Path) -> tuple[str, ModelManifest]:
        raw = path.read_bytes()
        try:
            manifest = ModelManifest.model_validate_json(raw)
        except ValueError:
            raise HTTPException(status_code=503, detail=f"the random-face model's manifest is unreadable "
                                                        f"({settings.face_model})") from None
        if manifest.stylegan is None:
            raise HTTPException(status_code=503, detail=f"{settings.face_model} is not a StyleGAN export")
        return hashlib.sha256(raw).hexdigest(), manifest

    def session(request: Request):
        Session = request.app.state.Session
        if Session is None:
            raise HTTPException(status_code=503, detail="random faces need the database, which is not available")
        return Session

    def result(req: SampleRequest) -> FileResponse:
        return FileResponse(req.result_path, media_type=req.media_type or "image/png",
                            headers={"X-Request-Id": str(req.id), "Cache-Control": "public, max-age=86400"})

    async def run(request: Request, kind: str, params: dict[str, Any]):
        from backend.jobs import service

        if params["size"] > settings.max_output_size:  # the operator's limit, as /translate keeps it
            raise HTTPException(status_code=422, detail=[{
                "loc": ["body", "size"], "type": "value_error",
                "msg": f"size {params['size']} is over this service's limit of {settings.max_output_size}"}])
        Session = session(request)
        sha, manifest = face_model()
        layers = params.get("layers")
        if kind == "mix" and isinstance(layers, list) and layers[1] >= manifest.stylegan.num_ws:
            # refused here, as a bad request, rather than failing later in the worker
            n = manifest.stylegan.num_ws
            raise HTTPException(status_code=422, detail=[{
                "loc": ["body", "layers"], "type": "value_error",
                "msg": f"layers [{layers[0]}, {layers[1]}] are outside this model's style inputs 0..{n - 1}"}])
        key = cache_key(sha, kind, params)
        with Session() as db:
            done = crud.find_sample_result(db, cache_key=key)
            if done is not None and done.result_path and Path(done.result_path).is_file():
                return result(done)
            # A request pending for long (its worker died, or the queue lost it) is not waited on.
            fresh_since = utcnow() - dt.timedelta(seconds=STALE_REQUEST_S)
            pending = crud.find_pending_sample(db, cache_key=key, since=fresh_since)
            if pending is None:
                pending = crud.create_sample_request(db, kind=kind, params=params, cache_key=key,
                                                     model_folder=str(face_model_folder(settings)))
                try:
                    service.enqueue_sample(pending.id)
                except Exception as exc:  # noqa: BLE001 - the broker is down: say so
                    crud.fail_sample_request(db, request_id=pending.id, error=f"queue not reachable: {exc}")
                    raise HTTPException(status_code=503, detail="the sampling queue is not reachable; try again soon") from None
            request_id = pending.id
        deadline = time.monotonic() + settings.sample_wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            with Session() as db:
                req = crud.get_sample_request(db, request_id=request_id)
                if req.status == "done":
                    return result(req)
                if req.status == "failed":
                    raise HTTPException(status_code=500, detail=f"the faces could not be made: {req.error}")
        return JSONResponse(status_code=202, content={"request_id": request_id, "status": "queued",
                                                      "url": f"/api/v1/faces/requests/{request_id}"})

    responses = {200: {"content": {"image/png": {}, "image/gif": {}}},
                 202: {"description": "Still being made: fetch `url` later."},
                 503: {"description": "No random-face model, or the queue is down."}}

    # (``api_client`` is this function's argument: it goes in the parameters' defaults. Inside an
    # annotation it would be a string under ``from __future__ import annotations`` that FastAPI
    # cannot resolve, and the parameter would turn into a required query parameter.)
    @r.post("/random", summary="Faces from seeds (a row of them), with truncation psi.", responses=responses)
    async def random_faces(body: FacesIn, request: Request, _client: int | None = Depends(api_client)):
        return await run(request, "faces", body.model_dump(mode="json"))

    @r.post("/mix", summary="A style-mixing grid: row faces' chosen layers over column faces.", responses=responses)
    async def mix(body: MixIn, request: Request, _client: int | None = Depends(api_client)):
        return await run(request, "mix", body.model_dump(mode="json"))

    @r.post("/interpolate", summary="Frames from one seed's face to another's (GIF or a strip).", responses=responses)
    async def interpolate(body: InterpolateIn, request: Request, _client: int | None = Depends(api_client)):
        return await run(request, "interpolate", body.model_dump(mode="json"))

    @r.get("/requests/{request_id}", summary="A request's picture when it is made, else its status.",
           responses=responses)
    def get_request(request_id: int, request: Request):
        with session(request)() as db:
            req = crud.get_sample_request(db, request_id=request_id)
            if req is None:
                raise HTTPException(status_code=404, detail=f"request {request_id} does not exist")
            if req.status == "done" and req.result_path and Path(req.result_path).is_file():
                return result(req)
            if req.status == "failed":
                raise HTTPException(status_code=500, detail=f"the faces could not be made: {req.error}")
            return JSONResponse(status_code=202, content={"request_id": req.id, "status": req.status,
                                                          "url": f"/api/v1/faces/requests/{req.id}"})

    return r
