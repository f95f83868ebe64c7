"""The FastAPI application: REST API under /api/v1, health probes, and the pages.

The routes live in ``backend.routes``, one module per topic; what they need comes through the
typed dependencies of ``backend.deps``, from this app's state (its settings, database sessions,
model store and secret)."""

from __future__ import annotations

import asyncio
import errno
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from backend import auth, security
from backend.body_limits import BodyLimits
from backend.budget import MemoryBudget
from backend.datasets import register_builtin
from backend.db import crud
from backend.db.session import make_engine, make_sessionmaker, upgrade_database
from backend.errors import document_errors
from backend.jobs import service
from backend.metrics import Metrics, RequestTimer
from backend.ratelimit import RateLimiter
from backend.routes import faces, health, photo, translate
from backend.routes.admin import api_keys, datasets, jobs, models, queue
from backend.routes.admin import auth as admin_auth
from backend.serving import ModelStore, PhotoModels, ServingWatcher, UpscalerSlot
from backend.settings import PROJECT_ROOT, Settings, get_settings
from core.photo import DETECTORS

log = logging.getLogger(__name__)

FRONTEND_DIR = PROJECT_ROOT / "frontend"
#: The largest request body of any route but the uploads; a drawing is far smaller.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: An upload's form fields and part headers, on top of the file itself.
MULTIPART_SLACK_BYTES = 1024 * 1024
UPLOAD_PATH = "/api/v1/admin/datasets"
PHOTO_PATH = "/api/v1/photo"
ROUTERS = (admin_auth.router, jobs.router, models.router, queue.router, api_keys.router, datasets.router,
           faces.router, health.router, photo.router, translate.router)


def _open_database(app: FastAPI, settings: Settings, *, quiet: bool = False) -> bool:
    """Migrate the database, make the session factory and the first admin; False when it fails
    (``quiet``: a retry, logged at debug level so a long outage does not flood the log). The
    routes see the database (``app.state.Session``) only once all of that is done."""
    try:
        upgrade_database(settings.database_url)
        engine = make_engine(settings.database_url)
        Session = make_sessionmaker(engine)
        if settings.admin_username and settings.admin_password:
            with Session() as session:
                try:
                    crud.create_admin(session, username=settings.admin_username, password=settings.admin_password)
                    log.info("created the admin %r from the settings", settings.admin_username)
                except ValueError:
                    pass  # exists already
    except Exception as exc:  # noqa: BLE001 - drawing must keep working without the database
        app.state.db_error = str(exc)
        log.log(logging.DEBUG if quiet else logging.ERROR,
                "the database at %s is not available; the admin API is off until it is: %s",
                make_url_safe(settings.database_url), exc)
        return False
    try:
        with Session() as session:
            added = register_builtin(session, settings.data_dir, settings.datasets_dir)
        if added:
            log.info("registered built-in data sets: %s", ", ".join(added))
    except Exception:  # noqa: BLE001 - a missing data folder must not stop the app
        log.exception("could not register the built-in data sets")
    app.state.engine, app.state.Session, app.state.db_error = engine, Session, None
    return True


def disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk (or SQLite's file) is full."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(exc) or "No space left on device" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def make_url_safe(url: str) -> str:
    """The database URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(unparseable URL)"


async def _keep_up(app: FastAPI, settings: Settings) -> None:
    """Every few seconds: reconnect the database if it is not there, then see which models
    should serve (a promotion, or a damaged file restored)."""
    watcher: ServingWatcher = app.state.watcher
    interval = settings.model_poll_s if settings.model_poll_s > 0 else settings.db_retry_s
    while True:
        await asyncio.sleep(min(interval, settings.db_retry_s) if app.state.Session is None else interval)
        try:
            if app.state.Session is None:
                if not await asyncio.to_thread(_open_database, app, settings, quiet=True):
                    continue
                watcher.Session = app.state.Session
                log.info("the database is back: the admin API is on")
            await asyncio.to_thread(watcher.check)
        except Exception:  # noqa: BLE001 - a hiccup must not stop serving
            log.exception("could not check which models should serve")


def _warm_photo() -> None:
    """Import OpenCV and make a face detector before the first photo arrives (photos arriving
    together on a cold server each imported it at once, and some saw a half-imported module)."""
    try:
        DETECTORS.warm()
    except Exception:  # noqa: BLE001 - drawing must serve even where the photo page cannot
        log.exception("the photo page's face detector could not be loaded")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        database = await asyncio.to_thread(_open_database, app, settings)
        # Without a database the bundled models serve, and the admin API answers 503 until the
        # database comes back (``_keep_up`` reconnects).
        watcher = ServingWatcher(app.state.store, app.state.Session if database else None, settings,
                                 upscaler=app.state.upscaler)
        app.state.watcher = watcher
        await asyncio.to_thread(watcher.check)
        await asyncio.to_thread(_warm_photo)
        poller = None
        if settings.model_poll_s > 0 or not database:
            poller = asyncio.create_task(_keep_up(app, settings))
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
    app.state.metrics = Metrics(lambda: app.state.Session)
    app.state.store = ModelStore(default=settings.default_model)
    app.state.Session = None
    app.state.db_error = "starting"
    app.state.secret = auth.secret_key(settings)
    app.state.upscaler = UpscalerSlot(settings)
    app.state.photo_models = PhotoModels(settings, app.state.upscaler)
    app.state.photo_budget = MemoryBudget(settings.photo_memory_mb * 1024 * 1024)
    app.state.rate_limiter = RateLimiter(settings.redis_url)
    app.state.login_limiter = RateLimiter(settings.redis_url)
    app.state.trusted_proxies = security.parse_networks(settings.trusted_proxies)
    app.add_middleware(security.SecurityHeaders)
    for router in ROUTERS:
        app.include_router(router)
    document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say where and what, but never echo the input back: it may be huge or hold NaN,
        # which JSON cannot carry.
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(OSError)
    @app.exception_handler(SQLAlchemyError)
    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        # A full disk is the operator's to fix: say so plainly (nothing was saved: the database
        # rolled the request's transaction back, and files are written to a temporary name first).
        if disk_full(exc):
            log.error("the disk is full: %s %s failed: %s", request.method, request.url.path, exc)
            return JSONResponse(status_code=507, content={"detail": "the server's disk is full, so nothing was "
                                                                    "saved; please try again later"})
        if isinstance(exc, (OperationalError, InterfaceError)):  # the database went away mid-request
            log.error("the database failed during %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse(status_code=503, content={"detail": "the database is not available; try again "
                                                                    "in a little while"})
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": "something went wrong on the server"})

    @app.exception_handler(crud.StateError)
    async def state_error(request: Request, exc: crud.StateError) -> JSONResponse:
        # a job (or request) asked to make a move its state does not allow
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(service.QueueUnreachable)
    async def queue_unreachable(request: Request, exc: service.QueueUnreachable) -> JSONResponse:
        log.error("the job queue is not reachable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"the job queue is not reachable: {exc}"})

    app.add_middleware(RequestTimer, metrics=app.state.metrics)
    # Uploads have their own, larger limit (from the settings); every other body has MAX_BODY_BYTES.
    app.add_middleware(BodyLimits, default=MAX_BODY_BYTES,
                       limits={UPLOAD_PATH: settings.upload_max_bytes + MULTIPART_SLACK_BYTES,
                               PHOTO_PATH: settings.photo_max_bytes + MULTIPART_SLACK_BYTES})

    if FRONTEND_DIR.is_dir():
        app.mount("/", StaticFiles(directory=FRONTEND_DIR, html=True), name="frontend")
    return app
