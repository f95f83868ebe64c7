"""Training jobs: the kinds and their hyper-parameters, queueing, watching, cancelling, retrying."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from backend.db import crud
from backend.db.models import TrainingJob
from backend.deps import AdminDep, DbDep, IdField, IdPath
from backend.jobs import service
from backend.routes.admin import ADMIN_ONLY
from core.kinds import KINDS, get_kind

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ONLY)


class JobIn(BaseModel):
    kind: str = Field("cyclegan", description="What to train: a model kind of the registry.",
                      json_schema_extra={"enum": list(KINDS)})
    config: dict[str, Any] = Field(default_factory=dict, description="Hyper-parameters; missing ones take the defaults.")
    dataset_id: IdField | None = None

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


def job_out(job: TrainingJob, db: Session, detail: bool = False) -> JobOut:
    fields = dict(
        id=job.id, kind=job.kind, status=job.status, progress=job.progress, step=job.step,
        total_steps=job.total_steps, epoch=job.epoch, eta_seconds=job.eta_seconds,
        latest_losses=job.latest_losses or {}, has_sample=bool(job.latest_sample),
        error=job.error, cancel_requested=job.cancel_requested, attempts=job.attempts, worker=job.worker,
        dataset_id=job.dataset_id, created_by=job.created_by, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, config=job.config or {},
        model_version_id=crud.version_id_of_job(db, job_id=job.id),
    )
    if detail:
        return JobDetailOut(**fields, metrics_history=job.metrics_history or [], log_tail=job.log_tail or "")
    return JobOut(**fields)


def validate_job_config(kind: str, config: dict[str, Any]) -> Any:
    """The parsed config, or a 422 that lists every bad field in plain words."""
    try:
        return get_kind(kind).config.model_validate(config)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "config", "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(status_code=422, detail=problems) from None


def _job(db: Session, job_id: int) -> TrainingJob:
    job = crud.get_job(db, job_id=job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id} does not exist")
    return job


@router.get("/job-kinds", summary="Job kinds: each one's title and the JSON schema of its hyper-parameters "
                                  "(descriptions, defaults and limits).")
def job_kinds(admin: AdminDep) -> dict[str, Any]:
    return {name: {**kind.config.model_json_schema(), "title": kind.title} for name, kind in KINDS.items()}


@router.get("/jobs", summary="Training jobs, newest first.")
def list_jobs(admin: AdminDep, db: DbDep, status: str | None = None, limit: int = 50) -> list[JobOut]:
    try:
        jobs = crud.list_jobs(db, status=status, limit=min(max(limit, 1), 500))
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return [job_out(j, db) for j in jobs]


@router.post("/jobs", status_code=201, summary="Queue a training job.",
             responses={422: {"description": "A bad kind, config (each bad field) or data set."},
                        503: {"description": "The job queue is not reachable; the job is kept, failed."}})
def create_job(body: JobIn, admin: AdminDep, db: DbDep) -> JobDetailOut:
    config = validate_job_config(body.kind, body.config)
    if body.dataset_id is not None:
        dataset = crud.get_dataset(db, dataset_id=body.dataset_id)
        if dataset is None:
            raise HTTPException(status_code=422, detail=f"data set {body.dataset_id} does not exist")
        if dataset.kind != "image_zip":
            raise HTTPException(status_code=422, detail=f"a {body.kind} job trains its anime side on a data set of "
                                                        f"images; {dataset.name!r} is {dataset.kind}")
    job = service.submit_job(db, kind=body.kind, config=config.model_dump(mode="json"), total_steps=config.steps,
                             dataset_id=body.dataset_id, created_by=admin.id)  # the queue down: 503, the job says so
    return job_out(job, db, detail=True)


@router.get("/jobs/{job_id}", summary="One job with its metrics history and log tail.")
def get_job(job_id: IdPath, admin: AdminDep, db: DbDep) -> JobDetailOut:
    return job_out(_job(db, job_id), db, detail=True)


@router.post("/jobs/{job_id}/cancel", summary="Cancel: at once when queued, at the next step when running.",
             responses={409: {"description": "The job has finished."}})
def cancel_job(job_id: IdPath, admin: AdminDep, db: DbDep) -> JobDetailOut:
    _job(db, job_id)
    return job_out(crud.request_cancel(db, job_id=job_id), db, detail=True)  # a finished job: 409


@router.post("/jobs/{job_id}/retry", summary="Queue a failed or cancelled job again; it resumes from its last checkpoint.",
             responses={409: {"description": "The job is neither failed nor cancelled."}})
def retry_job(job_id: IdPath, admin: AdminDep, db: DbDep) -> JobDetailOut:
    _job(db, job_id)
    return job_out(service.retry_job(db, job_id=job_id), db, detail=True)  # not failed or cancelled: 409


@router.get("/jobs/{job_id}/sample", summary="The job's newest sample grid (PNG).",
            response_class=FileResponse, responses={404: {"description": "No sample yet."}})
def job_sample(job_id: IdPath, admin: AdminDep, db: DbDep) -> FileResponse:
    job = _job(db, job_id)
    if not job.latest_sample or not Path(job.latest_sample).is_file():
        raise HTTPException(status_code=404, detail="this job has no sample grid yet")
    return FileResponse(job.latest_sample, media_type="image/png", headers={"Cache-Control": "no-store"})
