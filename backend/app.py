"""The FastAPI application: REST API under /api/v1, health probes, and the drawing page."""

from __future__ import annotations

import asyncio
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

from backend import admin, auth, faces
from backend.db import crud
from backend.db.session import make_engine, make_sessionmaker, upgrade_database
from core.manifest import ModelIntegrityError, ModelManifest, SketchInput
from backend.serving import ModelStore, ServingWatcher
from core.runtime import Ensemble
from backend.schemas import MemberOut, ModelOut, TranslatedImage, TranslateRequest, TranslateResponse
from backend.settings import PROJECT_ROOT, Settings, get_settings

log = logging.getLogger(__name__)

FRONTEND_DIR = PROJECT_ROOT / "frontend"
MAX_BODY_BYTES = 4 * 1024 * 1024


def _store(request: Request) -> ModelStore:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def api_client(request: Request) -> int | None:
    """Calls without a key are the drawing page's (open to kids); calls with ``X-API-Key`` are
    other apps': the key must exist and not be revoked (401), and keeps to its per-minute limit
    (429). Returns the key's id, or None for anonymous calls."""
    plain = request.headers.get("x-api-key")
    if plain is None:
        return None
    Session = request.app.state.Session
    if Session is None:
        raise HTTPException(status_code=503, detail="API keys cannot be checked: the database is not available")
    with Session() as db:
        key = crud.find_api_key(db, plain_key=plain.strip())
        if key is None:
            raise HTTPException(status_code=401, detail="unknown or revoked API key")
        allowed, reset = request.app.state.rate_limiter.hit(f"key:{key.id}", key.rate_limit_per_minute)
        if not allowed:
            raise HTTPException(status_code=429, detail=f"rate limit of {key.rate_limit_per_minute} requests per minute "
                                f"reached for this key; try again in {reset} s", headers={"Retry-After": str(reset)})
        crud.record_api_key_use(db, api_key=key)
        return key.id


StoreDep = Annotated[ModelStore, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _open_database(app: FastAPI, settings: Settings) -> bool:
    """Migrate the database, make the session factory and the first admin; False when it fails."""
    try:
        upgrade_database(settings.database_url)
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        app.state.Session = make_sessionmaker(engine)
        app.state.db_error = None
    except Exception as exc:  # noqa: BLE001 - drawing must keep working without the database
        app.state.db_error = str(exc)
        log.error("the database at %s is not available; the admin API is off: %s",
                  make_url_safe(settings.database_url), exc)
        return False
    try:
        from backend.datasets import register_builtin

        with app.state.Session() as session:
            added = register_builtin(session, settings.data_dir, settings.datasets_dir)
        if added:
            log.info("registered built-in data sets: %s", ", ".join(added))
    except Exception:  # noqa: BLE001 - a missing data folder must not stop the app
        log.exception("could not register the built-in data sets")
    if settings.admin_username and settings.admin_password:
        with app.state.Session() as session:
            try:
                crud.create_admin(session, username=settings.admin_username, password=settings.admin_password)
                log.info("created the admin %r from the settings", settings.admin_username)
            except ValueError:
                pass  # exists already
    return True


def make_url_safe(url: str) -> str:
    """The database URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(unparseable URL)"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        poller = None
        if _open_database(app, settings):
            watcher = ServingWatcher(app.state.store, app.state.Session, settings)
            app.state.watcher = watcher
            await asyncio.to_thread(watcher.check)
            if settings.model_poll_s > 0:
                poller = asyncio.create_task(watcher.run(settings.model_poll_s))
        else:  # no database: the bundled model serves, and the admin API answers 503
            folder = settings.models_dir / settings.default_model
            try:
                app.state.store.load(folder, settings.providers, settings.intra_op_threads)
            except (ModelIntegrityError, OSError, ValueError) as exc:
                app.state.store.error = str(exc)
                log.error("no model is serving: %s", exc)
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
            if getattr(app.state, "engine", None) is not None:
                app.state.engine.dispose()

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
    app.state.Session = None
    app.state.db_error = "starting"
    app.state.secret = auth.secret_key(settings)
    app.state.rate_limiter = auth.RateLimiter(settings.redis_url)
    app.include_router(admin.build_router(settings))
    app.include_router(faces.build_router(settings, api_client))

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
        # Data-set uploads have their own, larger limit, checked while they stream in.
        limit = settings.upload_max_bytes + 1024 * 1024 if request.url.path == "/api/v1/admin/datasets" else MAX_BODY_BYTES
        if length is not None and length.isdigit() and int(length) > limit:
            return JSONResponse(status_code=413, content={"detail": f"request body over {limit} bytes"})
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
            if not isinstance(m.input, SketchInput):
                continue  # an unconditional generator: it cannot serve drawings
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
            401: {"description": "An `X-API-Key` was sent but is unknown or revoked."},
            429: {"description": "The API key's per-minute limit is reached (see `Retry-After`)."},
            503: {"description": "No model is loaded."},
        },
    )
    def translate(body: TranslateRequest, store: StoreDep, cfg: SettingsDep,
                  _client: Annotated[int | None, Depends(api_client)]):
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
