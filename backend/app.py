"""The FastAPI application: REST API under /api/v1, health probes, and the pages.

The routes live in ``backend.routes``, one module per topic; what they need comes through the
typed dependencies of ``backend.deps``, from this app's state (its settings, database sessions,
model store and secret)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from backend import auth, security
from backend.datasets import register_builtin
from backend.db import crud
from backend.db.session import make_engine, make_sessionmaker, upgrade_database
from backend.jobs import service
from backend.ratelimit import RateLimiter
from backend.routes import faces, health, translate
from backend.routes.admin import api_keys, datasets, jobs, models, queue
from backend.routes.admin import auth as admin_auth
from backend.serving import ModelStore, ServingWatcher, load_bundled
from backend.settings import PROJECT_ROOT, Settings, get_settings

log = logging.getLogger(__name__)

FRONTEND_DIR = PROJECT_ROOT / "frontend"
MAX_BODY_BYTES = 4 * 1024 * 1024
ROUTERS = (admin_auth.router, jobs.router, models.router, queue.router, api_keys.router, datasets.router,
           faces.router, health.router, translate.router)


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
        else:  # no database: the bundled models serve, and the admin API answers 503
            await asyncio.to_thread(load_bundled, app.state.store, settings)
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
            "PNGs. The default model reads the drawing (its tilt, face shape, eyes, mouth, how much "
            "of it is face) and draws a face of the project's StyleGAN with those traits; `seed` gives "
            "new colours, `follow` trades following the drawing against prettiness. The CycleGAN "
            "ensemble (`model: sketch2anime`) is the other drawing model: each member a variation."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = ModelStore(default=settings.default_model)
    app.state.Session = None
    app.state.db_error = "starting"
    app.state.secret = auth.secret_key(settings)
    app.state.rate_limiter = RateLimiter(settings.redis_url)
    app.state.login_limiter = RateLimiter(settings.redis_url)
    app.state.trusted_proxies = security.parse_networks(settings.trusted_proxies)
    app.add_middleware(security.SecurityHeaders)
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say where and what, but never echo the input back: it may be huge or hold NaN,
        # which JSON cannot carry.
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(crud.StateError)
    async def state_error(request: Request, exc: crud.StateError) -> JSONResponse:
        # a job (or request) asked to make a move its state does not allow
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(service.QueueUnreachable)
    async def queue_unreachable(request: Request, exc: service.QueueUnreachable) -> JSONResponse:
        log.error("the job queue is not reachable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"the job queue is not reachable: {exc}"})

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        # Data-set uploads have their own, larger limit, checked while they stream in.
        limit = settings.upload_max_bytes + 1024 * 1024 if request.url.path == "/api/v1/admin/datasets" else MAX_BODY_BYTES
        if length is not None and length.isdigit() and int(length) > limit:
            return JSONResponse(status_code=413, content={"detail": f"request body over {limit} bytes"})
        return await call_next(request)

    if FRONTEND_DIR.is_dir():
        app.mount("/", StaticFiles(directory=FRONTEND_DIR, html=True), name="frontend")
    return app
