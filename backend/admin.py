"""The admin API under /api/v1/admin: login, training jobs, model versions, the queue, API keys
and data sets. Every route but login needs an admin session (cookie or Bearer token).

Nothing here imports torch: job configurations are validated with the torch-free config
classes of the kinds registry (``core.kinds``), and jobs are sent to the worker by task name.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from backend import auth
from backend.db import crud
from backend.db.models import AdminUser, ApiKey, ModelVersion, TrainingJob
from backend.settings import Settings
from core.kinds import KINDS, get_kind
from core.manifest import ModelIntegrityError, ModelManifest

log = logging.getLogger(__name__)


# -- dependencies ------------------------------------------------------------------------------

def get_db(request: Request):
    Session = getattr(request.app.state, "Session", None)
    if Session is None:
        raise HTTPException(status_code=503, detail=f"the database is not available: {request.app.state.db_error}")
    with Session() as session:
        yield session


DbDep = Annotated[Session, Depends(get_db)]


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(auth.SESSION_COOKIE)


def current_admin(request: Request, db: DbDep) -> AdminUser:
    token = _token(request)
    if not token:
        raise HTTPException(status_code=401, detail="log in first", headers={"WWW-Authenticate": "Bearer"})
    user_id = auth.read_session_token(request.app.state.secret, token)
    admin = crud.get_admin(db, admin_id=user_id) if user_id is not None else None
    if admin is None or admin.disabled:
        raise HTTPException(status_code=401, detail="your session is not valid; log in again",
                            headers={"WWW-Authenticate": "Bearer"})
    return admin


AdminDep = Annotated[AdminUser, Depends(current_admin)]


# -- schemas -----------------------------------------------------------------------------------

class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    username: str
    token: str
    expires_in: int


class JobIn(BaseModel):
    kind: str = Field("cyclegan", description="What to train: a model kind of the registry.",
                      json_schema_extra={"enum": list(KINDS)})
    config: dict[str, Any] = Field(default_factory=dict, description="Hyper-parameters; missing ones take the defaults.")
    dataset_id: int | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return get_kind(v).name  # an unknown kind is a 422 that lists the valid ones


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    step: int
    total_steps: int
    epoch: float
    eta_seconds: float | None
    latest_losses: dict[str, Any]
    has_sample: bool
    error: str | None
    cancel_requested: bool
    attempts: int
    worker: str | None
    dataset_id: int | None
    created_by: int | None
    created_at: Any
    started_at: Any
    finished_at: Any
    config: dict[str, Any]
    model_version_id: int | None = None


class JobDetailOut(JobOut):
    metrics_history: list[dict[str, Any]]
    log_tail: str


class ModelVersionOut(BaseModel):
    id: int
    name: str
    version: str
    kind: str
    metrics: dict[str, Any]
    job_id: int | None
    active: bool
    in_ensemble: bool
    members: int
    has_samples: bool
    created_at: Any
    promoted_at: Any


class EnsembleIn(BaseModel):
    in_ensemble: bool


class EvaluateIn(BaseModel):
    n_samples: int = Field(5000, ge=16, le=100_000, description="Generated images to compare with the real faces.")


class EvaluateOut(BaseModel):
    task_id: str
    version_id: int
    n_samples: int


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    rate_limit_per_minute: int = Field(60, ge=1, le=100_000)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    rate_limit_per_minute: int
    created_at: Any
    revoked_at: Any
    last_used_at: Any


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. It is shown this once and not stored.")


class DatasetOut(BaseModel):
    id: int
    name: str
    kind: str
    item_count: int
    content_sha256: str
    builtin: bool
    has_preview: bool
    created_at: Any


def job_out(job: TrainingJob, db: Session, detail: bool = False) -> JobOut:
    version_id = crud.version_id_of_job(db, job_id=job.id)
    fields = dict(
        id=job.id, kind=job.kind, status=job.status, progress=job.progress, step=job.step,
        total_steps=job.total_steps, epoch=job.epoch, eta_seconds=job.eta_seconds,
        latest_losses=job.latest_losses or {}, has_sample=bool(job.latest_sample),
        error=job.error, cancel_requested=job.cancel_requested, attempts=job.attempts, worker=job.worker,
        dataset_id=job.dataset_id, created_by=job.created_by, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, config=job.config or {},
        model_version_id=version_id,
    )
    if detail:
        return JobDetailOut(**fields, metrics_history=job.metrics_history or [], log_tail=job.log_tail or "")
    return JobOut(**fields)


def version_out(v: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        id=v.id, name=v.name, version=v.version, kind=v.kind, metrics=v.metrics or {}, job_id=v.job_id,
        active=v.active, in_ensemble=v.in_ensemble, members=len((v.manifest or {}).get("members", [])),
        has_samples=(Path(v.folder) / "samples.png").is_file(), created_at=v.created_at, promoted_at=v.promoted_at,
    )


def key_out(k: ApiKey) -> dict[str, Any]:
    return dict(id=k.id, name=k.name, prefix=k.prefix, rate_limit_per_minute=k.rate_limit_per_minute,
                created_at=k.created_at, revoked_at=k.revoked_at, last_used_at=k.last_used_at)


def validate_job_config(kind: str, config: dict[str, Any]) -> Any:
    """The parsed config, or a 422 that lists every bad field in plain words."""
    try:
        return get_kind(kind).config.model_validate(config)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "config", "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(status_code=422, detail=problems) from None


# -- the router --------------------------------------------------------------------------------

def build_router(settings: Settings) -> APIRouter:
    r = APIRouter(prefix="/api/v1/admin", tags=["admin"])
    login_limiter = auth.RateLimiter(settings.redis_url)

    @r.post("/login", summary="Log in; sets the session cookie and returns the same token for Bearer use.")
    def login(body: LoginIn, request: Request, response: Response, db: DbDep) -> LoginOut:
        client = request.client.host if request.client else "unknown"
        allowed, reset = login_limiter.hit(f"login:{client}", settings.login_attempts_per_minute)
        if not allowed:
            raise HTTPException(status_code=429, detail="too many login attempts; wait a minute",
                                headers={"Retry-After": str(reset)})
        admin = crud.authenticate_admin(db, username=body.username, password=body.password)
        if admin is None:
            raise HTTPException(status_code=401, detail="wrong user name or password")
        token = auth.make_session_token(request.app.state.secret, admin.id, settings.session_ttl_s)
        response.set_cookie(auth.SESSION_COOKIE, token, max_age=settings.session_ttl_s, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        return LoginOut(username=admin.username, token=token, expires_in=settings.session_ttl_s)

    @r.post("/logout", summary="End the session (clears the cookie).")
    def logout(response: Response) -> dict[str, str]:
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return {"status": "logged out"}

    @r.get("/me", summary="Who is logged in.")
    def me(admin: AdminDep) -> dict[str, Any]:
        return {"id": admin.id, "username": admin.username}

    # -- jobs --------------------------------------------------------------------------------

    @r.get("/job-kinds", summary="Job kinds: each one's title and the JSON schema of its hyper-parameters "
                                 "(descriptions, defaults and limits).")
    def job_kinds(admin: AdminDep) -> dict[str, Any]:
        return {name: {**kind.config.model_json_schema(), "title": kind.title} for name, kind in KINDS.items()}

    @r.get("/jobs", summary="Training jobs, newest first.")
    def list_jobs(admin: AdminDep, db: DbDep, status: str | None = None, limit: int = 50) -> list[JobOut]:
        try:
            jobs = crud.list_jobs(db, status=status, limit=min(max(limit, 1), 500))
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return [job_out(j, db) for j in jobs]

    @r.post("/jobs", status_code=201, summary="Queue a training job.")
    def create_job(body: JobIn, admin: AdminDep, db: DbDep) -> JobDetailOut:
        from backend.jobs import service

        config = validate_job_config(body.kind, body.config)
        if body.dataset_id is not None:
            dataset = crud.get_dataset(db, dataset_id=body.dataset_id)
            if dataset is None:
                raise HTTPException(status_code=422, detail=f"data set {body.dataset_id} does not exist")
            if dataset.kind != "image_zip":
                raise HTTPException(status_code=422, detail=f"a {body.kind} job trains its anime side on a data set of "
                                                            f"images; {dataset.name!r} is {dataset.kind}")
        try:
            job = service.submit_job(db, kind=body.kind, config=config.model_dump(mode="json"),
                                     total_steps=config.steps, dataset_id=body.dataset_id, created_by=admin.id)
        except Exception as exc:  # noqa: BLE001 - the broker is down: say so, keep the job visible
            log.exception("could not queue a job")
            raise HTTPException(status_code=503, detail=f"the job queue is not reachable: {exc}") from None
        return job_out(job, db, detail=True)

    def _job(db: Session, job_id: int) -> TrainingJob:
        job = crud.get_job(db, job_id=job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} does not exist")
        return job

    @r.get("/jobs/{job_id}", summary="One job with its metrics history and log tail.")
    def get_job(job_id: int, admin: AdminDep, db: DbDep) -> JobDetailOut:
        return job_out(_job(db, job_id), db, detail=True)

    @r.post("/jobs/{job_id}/cancel", summary="Cancel: at once when queued, at the next step when running.")
    def cancel_job(job_id: int, admin: AdminDep, db: DbDep) -> JobDetailOut:
        try:
            job = crud.request_cancel(db, job_id=job_id)
        except crud.StateError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        if job is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} does not exist")
        return job_out(job, db, detail=True)

    @r.post("/jobs/{job_id}/retry", summary="Queue a failed or cancelled job again; it resumes from its last checkpoint.")
    def retry_job(job_id: int, admin: AdminDep, db: DbDep) -> JobDetailOut:
        from backend.jobs import service

        try:
            job = service.retry_job(db, job_id=job_id)
        except crud.StateError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the broker is down: the job says so, and so does the answer
            log.exception("could not queue a job")
            raise HTTPException(status_code=503, detail=f"the job queue is not reachable: {exc}") from None
        if job is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} does not exist")
        return job_out(job, db, detail=True)

    @r.get("/jobs/{job_id}/sample", summary="The job's newest sample grid (PNG).",
           response_class=FileResponse, responses={404: {"description": "No sample yet."}})
    def job_sample(job_id: int, admin: AdminDep, db: DbDep) -> FileResponse:
        job = _job(db, job_id)
        if not job.latest_sample or not Path(job.latest_sample).is_file():
            raise HTTPException(status_code=404, detail="this job has no sample grid yet")
        return FileResponse(job.latest_sample, media_type="image/png", headers={"Cache-Control": "no-store"})

    # -- models ------------------------------------------------------------------------------

    @r.get("/models", summary="Model versions, newest first.")
    def list_models(admin: AdminDep, db: DbDep) -> list[ModelVersionOut]:
        return [version_out(v) for v in crud.list_model_versions(db, limit=200)]

    def _version(db: Session, version_id: int) -> ModelVersion:
        v = crud.get_model_version(db, version_id=version_id)
        if v is None:
            raise HTTPException(status_code=404, detail=f"model version {version_id} does not exist")
        return v

    def _check_files(v: ModelVersion) -> None:
        try:
            ModelManifest.load(Path(v.folder)).verify(Path(v.folder))
        except (ModelIntegrityError, OSError, ValueError) as exc:
            raise HTTPException(status_code=409, detail=f"model version {v.id} failed its file check and was refused: {exc}") from None

    def _apply(request: Request) -> dict[str, Any]:
        """Load the new choice in this process now (others pick it up on their next poll)."""
        watcher = getattr(request.app.state, "watcher", None)
        if watcher is None:
            return {"loaded_here": False}
        loaded = watcher.check()
        return {"loaded_here": loaded, "serving_error": None if loaded else request.app.state.store.error}

    @r.get("/models/{version_id}/samples", summary="The version's sample grid (PNG).", response_class=FileResponse)
    def model_samples(version_id: int, admin: AdminDep, db: DbDep) -> FileResponse:
        path = Path(_version(db, version_id).folder) / "samples.png"
        if not path.is_file():
            raise HTTPException(status_code=404, detail="this version has no sample grid")
        return FileResponse(path, media_type="image/png")

    @r.post("/models/{version_id}/promote", summary="Serve this version on the drawing endpoint.")
    def promote(version_id: int, request: Request, admin: AdminDep, db: DbDep) -> dict[str, Any]:
        v = _version(db, version_id)
        if v.name != settings.default_model:
            raise HTTPException(status_code=422, detail=f"{v.name} models cannot serve the drawing endpoint "
                                                        f"(it serves {settings.default_model} versions)")
        _check_files(v)
        crud.set_active_model_version(db, version_id=v.id)
        return {"promoted": version_out(v).model_dump(mode="json"), **_apply(request)}

    @r.post("/models/rollback", summary="Serve the previously promoted version again.")
    def rollback(request: Request, admin: AdminDep, db: DbDep) -> dict[str, Any]:
        previous = crud.previous_model_version(db, name=settings.default_model)
        if previous is not None:
            _check_files(previous)  # a damaged earlier version is refused; the current one keeps serving
        try:
            served = crud.rollback_model_version(db, name=settings.default_model)
        except ValueError as exc:
            raise HTTPException(status_code=409, detail=f"the bundled model is serving: {exc}") from None
        return {"promoted": version_out(served).model_dump(mode="json") if served else None, **_apply(request)}

    @r.post("/models/{version_id}/ensemble", summary="Add this version's members to the served ensemble, or take them out.")
    def ensemble(version_id: int, body: EnsembleIn, request: Request, admin: AdminDep, db: DbDep) -> dict[str, Any]:
        v = _version(db, version_id)
        if body.in_ensemble:
            _check_files(v)
        crud.set_model_in_ensemble(db, version_id=v.id, in_ensemble=body.in_ensemble)
        return {"version": version_out(v).model_dump(mode="json"), **_apply(request)}

    @r.post("/models/{version_id}/evaluate", status_code=202,
            summary="Measure FID / KID of this version on a worker (training queue); the metrics land on the version.")
    def evaluate(version_id: int, admin: AdminDep, db: DbDep, body: EvaluateIn | None = None) -> EvaluateOut:
        from backend.jobs import service

        v = _version(db, version_id)
        n_samples = (body or EvaluateIn()).n_samples
        try:
            task_id = service.enqueue_evaluation(v.id, n_samples)
        except Exception as exc:  # noqa: BLE001 - the broker is down: say so
            log.exception("could not queue an evaluation")
            raise HTTPException(status_code=503, detail=f"the job queue is not reachable: {exc}") from None
        return EvaluateOut(task_id=task_id, version_id=v.id, n_samples=n_samples)

    # -- queue -------------------------------------------------------------------------------

    @r.get("/queue", summary="Workers seen and jobs waiting and running.")
    def queue(admin: AdminDep, db: DbDep) -> dict[str, Any]:
        workers = crud.list_workers(db, seen_within_s=settings.job_stale_after_s)
        running = crud.list_jobs(db, status="running", limit=1000)
        return {
            "workers": [{"name": w.name, "queues": w.queues.split(",") if w.queues else [], "pid": w.pid,
                         "started_at": w.started_at, "last_seen": w.last_seen, "current_job_id": w.current_job_id}
                        for w in workers],
            "counts": crud.count_jobs_by_status(db),
            "running": [{"id": j.id, "worker": j.worker, "progress": j.progress, "heartbeat_at": j.heartbeat_at} for j in running],
        }

    # -- API keys ----------------------------------------------------------------------------

    @r.get("/api-keys", summary="API keys (never the keys themselves).")
    def list_keys(admin: AdminDep, db: DbDep, include_revoked: bool = False) -> list[ApiKeyOut]:
        return [ApiKeyOut(**key_out(k)) for k in crud.list_api_keys(db, include_revoked=include_revoked)]

    @r.post("/api-keys", status_code=201, summary="Create a key; the response shows it once.")
    def create_key(body: ApiKeyIn, admin: AdminDep, db: DbDep) -> ApiKeyCreated:
        key, plain = crud.create_api_key(db, name=body.name, rate_limit_per_minute=body.rate_limit_per_minute)
        return ApiKeyCreated(**key_out(key), key=plain)

    @r.delete("/api-keys/{key_id}", summary="Revoke a key; calls with it are refused from now on.")
    def revoke_key(key_id: int, admin: AdminDep, db: DbDep) -> ApiKeyOut:
        key = crud.revoke_api_key(db, key_id=key_id)
        if key is None:
            raise HTTPException(status_code=404, detail=f"API key {key_id} does not exist")
        return ApiKeyOut(**key_out(key))

    # -- data sets ---------------------------------------------------------------------------

    @r.get("/datasets", summary="Data sets with their item counts.")
    def list_datasets(admin: AdminDep, db: DbDep) -> list[DatasetOut]:
        return [DatasetOut(id=d.id, name=d.name, kind=d.kind, item_count=d.item_count, content_sha256=d.content_sha256,
                           builtin=d.builtin, has_preview=bool(d.preview and Path(d.preview).is_file()),
                           created_at=d.created_at) for d in crud.list_datasets(db)]

    @r.post("/datasets", status_code=201, summary="Upload a data set: a zip of images, a Quick, Draw! .ndjson or a numpy_bitmap .npy.",
            responses={413: {"description": "Too large (file, unpacked size or item count)."},
                       415: {"description": "Not a kind of file that is accepted."},
                       422: {"description": "The content broke a rule; `detail` says which."}})
    async def upload_dataset(request: Request, admin: AdminDep, db: DbDep,
                             file: UploadFile, name: Annotated[str, Form(min_length=1, max_length=200)]) -> DatasetOut:
        from backend import datasets as ds

        limits = ds.Limits(settings.upload_max_bytes, settings.upload_max_unpacked_bytes, settings.upload_max_files)
        if crud.get_dataset_by_name(db, name=name) is not None:
            raise HTTPException(status_code=409, detail=f"a data set named {name!r} exists already")
        try:
            ds.kind_for(file.filename or "")
        except ds.UploadRejected as exc:
            raise HTTPException(status_code=exc.status, detail=exc.message) from None
        scratch_dir = settings.datasets_dir / ".incoming"
        scratch_dir.mkdir(parents=True, exist_ok=True)
        scratch = scratch_dir / f"{uuid.uuid4().hex}.part"
        try:
            written = 0
            with open(scratch, "wb") as out:
                while chunk := await file.read(1 << 20):
                    written += len(chunk)
                    if written > limits.max_bytes:
                        raise ds.UploadRejected(413, f"the file is over the upload limit of {limits.max_bytes} bytes")
                    out.write(chunk)
            checked, stored, preview = await asyncio.to_thread(
                ds.store_upload, scratch, file.filename or "", settings.datasets_dir, limits)
        except ds.UploadRejected as exc:
            raise HTTPException(status_code=exc.status, detail=exc.message) from None
        finally:
            scratch.unlink(missing_ok=True)
        d = crud.register_dataset(db, name=name, kind=checked.kind, location=str(stored),
                                  content_sha256=checked.sha256, item_count=checked.item_count,
                                  preview=str(preview), builtin=False)
        return DatasetOut(id=d.id, name=d.name, kind=d.kind, item_count=d.item_count, content_sha256=d.content_sha256,
                          builtin=d.builtin, has_preview=True, created_at=d.created_at)

    @r.get("/datasets/{dataset_id}/preview", summary="A grid of the data set's first items (PNG).", response_class=FileResponse)
    def dataset_preview(dataset_id: int, admin: AdminDep, db: DbDep) -> FileResponse:
        d = crud.get_dataset(db, dataset_id=dataset_id)
        if d is None:
            raise HTTPException(status_code=404, detail=f"data set {dataset_id} does not exist")
        if not d.preview or not Path(d.preview).is_file():
            raise HTTPException(status_code=404, detail="this data set has no preview")
        return FileResponse(d.preview, media_type="image/png")

    return r

