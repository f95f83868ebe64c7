"""The FastAPI application: REST API under /api/v1, health probes, and the drawing page."""

from __future__ import annotations

import base64
import io
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from backend.inference import Ensemble, ModelStore
from backend.manifest import ModelIntegrityError, ModelManifest
from backend.schemas import MemberOut, ModelOut, TranslatedImage, TranslateRequest, TranslateResponse
from backend.settings import PROJECT_ROOT, Settings, get_settings

log = logging.getLogger(__name__)

FRONTEND_DIR = PROJECT_ROOT / "frontend"
MAX_BODY_BYTES = 4 * 1024 * 1024


def _store(request: Request) -> ModelStore:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


StoreDep = Annotated[ModelStore, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        folder = settings.models_dir / settings.default_model
        try:
            app.state.store.load(folder, settings.providers, settings.intra_op_threads)
        except (ModelIntegrityError, OSError, ValueError) as exc:
            app.state.store.error = str(exc)
            log.error("no model is serving: %s", exc)
        yield

    app = FastAPI(
        title="doodle2anime",
        version="0.1.0",
        summary="Draw a face, get an anime face back.",
        description=(
            "Send a drawing as strokes (Quick, Draw! raw or simplified format) to "
            "`POST /api/v1/translate` and get an anime face back as PNG, or as JSON with base64 "
            "PNGs. The model is an ensemble of CycleGAN generators: each member gives a variation."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = ModelStore()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say where and what, but never echo the input back: it may be huge or hold NaN,
        # which JSON cannot carry.
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse(status_code=413, content={"detail": f"request body over {MAX_BODY_BYTES} bytes"})
        return await call_next(request)

    @app.get("/healthz", tags=["health"], summary="The process is up.")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="A model is loaded and can serve.")
    def readyz(store: StoreDep) -> JSONResponse:
        ens = store.get()
        if ens is None:
            return JSONResponse(status_code=503, content={"status": "not ready", "reason": store.error or "loading"})
        return JSONResponse(content={"status": "ready", "model": ens.name, "version": ens.manifest.version,
                                     "providers": ens.providers})

    @app.get("/api/v1/models", tags=["models"], summary="Models in the model folder, and which one serves.")
    def list_models(store: StoreDep, cfg: SettingsDep) -> list[ModelOut]:
        serving = store.get()
        out = []
        for manifest_path in sorted(Path(cfg.models_dir).glob("*/manifest.json")):
            folder = manifest_path.parent
            error = None
            try:
                m = ModelManifest.load(folder)
            except (ValueError, ModelIntegrityError) as exc:
                log.warning("unreadable manifest %s: %s", manifest_path, exc)
                continue
            is_serving = serving is not None and serving.folder.resolve() == folder.resolve()
            if not is_serving and folder.name == cfg.default_model:
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

    @app.post(
        "/api/v1/translate",
        tags=["translate"],
        summary="Strokes in, anime face out.",
        responses={
            200: {"content": {"image/png": {}, "application/json": {}},
                  "description": "A PNG (default) or JSON with base64 PNGs (`response: json`)."},
            422: {"description": "The drawing is invalid; `detail` says what is wrong."},
            503: {"description": "No model is loaded."},
        },
    )
    def translate(body: TranslateRequest, store: StoreDep, cfg: SettingsDep):
        ens: Ensemble | None = store.get()  # this request keeps this ensemble even if it is swapped
        if ens is None:
            raise HTTPException(status_code=503, detail=f"no model is serving: {store.error or 'loading'}")
        if body.size > cfg.max_output_size:
            raise HTTPException(status_code=422, detail=f"size {body.size} is over the limit of {cfg.max_output_size}")
        n = len(ens.members)
        if body.member == "all":
            members = list(range(n))
        elif 0 <= body.member < n:
            members = [body.member]
        else:
            raise HTTPException(status_code=422, detail=f"member {body.member} does not exist; this model has members 0..{n - 1}")
        t0 = time.perf_counter()
        faces = ens.translate(body.drawing(), members)
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

    if FRONTEND_DIR.is_dir():
        app.mount("/", StaticFiles(directory=FRONTEND_DIR, html=True), name="frontend")
    return app
