"""Job lifecycle on the database: submit, claim, heartbeat, progress, cancel, retry, recover.

queued -> running -> succeeded | failed | cancelled. No torch here: the API uses this module.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import lru_cache
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db import crud
from backend.db.models import TrainingJob, utcnow
from backend.db.session import make_engine, make_sessionmaker
from backend.jobs.celery_app import EVALUATE_TASK, TRAIN_TASK, celery_app
from backend.settings import get_settings

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")
LOG_TAIL_LINES = 40


now = utcnow  # the one clock of the tables


@lru_cache(maxsize=4)
def _sessionmaker_for(url: str) -> sessionmaker:
    return make_sessionmaker(make_engine(url))


def session_factory() -> sessionmaker:
    return _sessionmaker_for(get_settings().database_url)


def enqueue(job_id: int) -> str:
    """Send the job to the training queue by id; returns the Celery task id."""
    result = celery_app.send_task(TRAIN_TASK, args=[job_id], queue="training")
    return result.id


def enqueue_evaluation(version_id: int, n_samples: int) -> str:
    """Ask a worker for the FID / KID of a model version; returns the Celery task id."""
    result = celery_app.send_task(EVALUATE_TASK, args=[version_id, n_samples], queue="training")
    return result.id


def submit_job(session: Session, *, kind: str, config: dict[str, Any], total_steps: int,
               dataset_id: int | None = None, created_by: int | None = None) -> TrainingJob:
    job = TrainingJob(kind=kind, config=config, status="queued", progress=0.0, step=0, total_steps=total_steps,
                      epoch=0.0, metrics_history=[], latest_losses={}, log_tail="", attempts=0,
                      cancel_requested=False, dataset_id=dataset_id, created_by=created_by, created_at=now())
    session.add(job)
    session.commit()
    _enqueue_or_fail(session, job)
    return job


def _enqueue_or_fail(session: Session, job: TrainingJob) -> None:
    """Send the job; when the broker cannot take it, the job says so (and can be retried)."""
    try:
        job.celery_task_id = enqueue(job.id)
    except Exception as exc:
        job.status = "failed"
        job.error = f"The job queue could not be reached, so the job never started ({type(exc).__name__}: {exc}). Retry it when the queue is back."
        job.finished_at = now()
        append_log(job, "could not be queued")
        session.commit()
        raise
    session.commit()


def append_log(job: TrainingJob, line: str) -> None:
    stamp = now().strftime("%H:%M:%S")
    lines = (job.log_tail or "").splitlines() + [f"{stamp} {line}"]
    job.log_tail = "\n".join(lines[-LOG_TAIL_LINES:])


def claim_job(session: Session, *, job_id: int, worker: str, stale_after_s: float) -> bool:
    """Atomically take a queued job, or a running one whose worker stopped beating."""
    stale = now() - dt.timedelta(seconds=stale_after_s)
    res = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id)
        .where(or_(TrainingJob.status == "queued",
                   (TrainingJob.status == "running") & ((TrainingJob.heartbeat_at.is_(None)) | (TrainingJob.heartbeat_at < stale))))
        .values(status="running", worker=worker, heartbeat_at=now(), attempts=TrainingJob.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if res.rowcount != 1:
        return False
    job = session.get(TrainingJob, job_id)
    if job.started_at is None:
        job.started_at = now()
    append_log(job, f"started on {worker} (attempt {job.attempts})")
    session.commit()
    return True


def heartbeat(session: Session, *, job_id: int, worker: str) -> bool:
    """Refresh the job's heartbeat; False when the job is no longer this worker's."""
    res = session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.worker == worker, TrainingJob.status == "running")
        .values(heartbeat_at=now()).execution_options(synchronize_session=False)
    )
    session.commit()
    return res.rowcount == 1


def request_cancel(session: Session, *, job_id: int) -> TrainingJob | None:
    """Queued jobs are cancelled at once; running ones stop at their next progress report.
    The decision is ``crud.request_cancel``'s (race-safe against a worker claiming the job);
    this adds the line in the job's log."""
    job = crud.request_cancel(session, job_id=job_id)
    if job is None:
        return None
    if job.status == "cancelled":
        append_log(job, "cancelled before it started")
    elif job.cancel_requested:
        append_log(job, "cancel requested")
    session.commit()
    return job


def retry_job(session: Session, *, job_id: int) -> TrainingJob | None:
    """A failed or cancelled job goes back to the queue; it resumes from its last checkpoint."""
    job = session.get(TrainingJob, job_id)
    if job is None or job.status not in ("failed", "cancelled"):
        return job
    job.status = "queued"
    job.error = None
    job.cancel_requested = False
    job.finished_at = None
    append_log(job, "retry requested")
    session.commit()
    _enqueue_or_fail(session, job)
    return job


def requeue_stale_jobs(stale_after_s: float | None = None) -> list[int]:
    """Running jobs whose worker died (no heartbeat) go back to the queue, to resume."""
    settings = get_settings()
    stale_after_s = stale_after_s if stale_after_s is not None else settings.job_stale_after_s
    stale = now() - dt.timedelta(seconds=stale_after_s)
    requeued = []
    with session_factory()() as session:
        jobs = session.query(TrainingJob).filter(
            TrainingJob.status == "running",
            or_(TrainingJob.heartbeat_at.is_(None), TrainingJob.heartbeat_at < stale),
        ).all()
        for job in jobs:
            res = session.execute(
                update(TrainingJob).where(TrainingJob.id == job.id, TrainingJob.status == "running",
                                          TrainingJob.heartbeat_at == job.heartbeat_at)
                .values(status="queued", worker=None).execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:
                session.refresh(job)
                append_log(job, "its worker stopped answering; queued again to resume from the last checkpoint")
                session.commit()
                job.celery_task_id = enqueue(job.id)
                session.commit()
                requeued.append(job.id)
                log.warning("job %d: worker lost, requeued", job.id)
        session.commit()
    return requeued


# -- workers -----------------------------------------------------------------------------------

def beat_worker(session: Session, *, name: str, queues: str, pid: int, current_job_id: int | None = None) -> None:
    """Write this worker's row (created on its first beat)."""
    from backend.db.models import Worker

    row = session.query(Worker).filter(Worker.name == name).one_or_none()
    if row is None:
        row = Worker(name=name, queues=queues, pid=pid, started_at=now())
        session.add(row)
    row.last_seen = now()
    row.queues = queues
    row.pid = pid
    row.current_job_id = current_job_id
    session.commit()


def forget_worker(session: Session, *, name: str) -> None:
    from backend.db.models import Worker

    session.query(Worker).filter(Worker.name == name).delete()
    session.commit()


def workers_seen(session: Session, *, within_s: float | None = None) -> list[dict[str, Any]]:
    """Workers that wrote their row recently (alive), newest first."""
    from backend.db.models import Worker

    within_s = within_s if within_s is not None else get_settings().job_stale_after_s
    since = now() - dt.timedelta(seconds=within_s)
    rows = session.query(Worker).filter(Worker.last_seen >= since).order_by(Worker.last_seen.desc()).all()
    return [{"name": w.name, "queues": w.queues.split(",") if w.queues else [], "pid": w.pid,
             "started_at": w.started_at, "last_seen": w.last_seen, "current_job_id": w.current_job_id}
            for w in rows]
