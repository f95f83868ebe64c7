"""Sending work to the queue, and what goes with it: a job that the queue cannot take says so.

The job records themselves are written by ``backend.db.crud`` only; this module sends tasks by
name and id (no torch, no task bodies: the API uses it).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backend.db import crud
from backend.db.models import TrainingJob
from backend.db.session import make_engine, make_sessionmaker
from backend.settings import get_settings

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _sessionmaker_for(url: str) -> sessionmaker:
    return make_sessionmaker(make_engine(url))


def session_factory() -> sessionmaker:
    """Sessions on the settings' database, one engine per process (the worker's tasks use it)."""
    return _sessionmaker_for(get_settings().database_url)


class QueueUnreachable(RuntimeError):
    """The broker did not take a task (the API answers 503); the message is the broker's error."""


def _send(task: str, args: list[Any], queue: str) -> str:
    from backend.jobs.celery_app import celery_app

    try:
        return celery_app.send_task(task, args=args, queue=queue).id
    except Exception as exc:  # noqa: BLE001 - whatever the broker's client raises
        raise QueueUnreachable(str(exc)) from exc


def enqueue_evaluation(version_id: int, n_samples: int) -> str:
    """Ask a worker for the FID / KID of a model version; returns the task id."""
    from backend.jobs.celery_app import EVALUATE_TASK

    return _send(EVALUATE_TASK, [version_id, n_samples], "training")


def enqueue_sample(request_id: int) -> str:
    """Ask a sampling worker for a random-face request's picture; returns the task id."""
    from backend.jobs.celery_app import SAMPLE_TASK

    return _send(SAMPLE_TASK, [request_id], "sampling")


def send_job(session: Session, job: TrainingJob) -> TrainingJob:
    """Send a queued job to the training queue by id. When the queue cannot take it the job is
    marked failed with the reason (it can be retried) and QueueUnreachable is raised."""
    from backend.jobs.celery_app import TRAIN_TASK

    try:
        task_id = _send(TRAIN_TASK, [job.id], "training")
    except QueueUnreachable as exc:
        cause = exc.__cause__
        crud.fail_unsent_job(session, job_id=job.id, reason=(
            f"The job queue could not be reached, so the job never started ({type(cause).__name__}: {cause}). "
            "Retry it when the queue is back."))
        raise
    crud.set_job_task(session, job_id=job.id, task_id=task_id)
    return job


def submit_job(session: Session, *, kind: str, config: dict[str, Any], total_steps: int,
               dataset_id: int | None = None, created_by: int | None = None) -> TrainingJob:
    """A new job, queued and sent."""
    job = crud.create_job(session, kind=kind, config=config, total_steps=total_steps, dataset_id=dataset_id,
                          created_by=created_by)
    return send_job(session, job)


def retry_job(session: Session, *, job_id: int) -> TrainingJob | None:
    """A failed or cancelled job queued and sent again (crud.StateError from another state)."""
    job = crud.retry_job(session, job_id=job_id)
    return send_job(session, job) if job is not None else None


def requeue_stale_jobs(stale_after_s: float | None = None) -> list[int]:
    """Running jobs whose worker died (no heartbeat) go back to the queue, to resume."""
    stale_after_s = stale_after_s if stale_after_s is not None else get_settings().job_stale_after_s
    requeued = []
    with session_factory()() as session:
        for job in crud.requeue_stale_jobs(session, stale_after_s=stale_after_s):
            log.warning("job %d: worker lost, requeued", job.id)
            try:
                send_job(session, job)
            except QueueUnreachable:  # the job says so; the others are still sent
                log.exception("job %d could not be sent again", job.id)
                continue
            requeued.append(job.id)
    return requeued
