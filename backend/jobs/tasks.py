"""Celery tasks. They take ids, not payloads: a task reads its job from the database and writes
its progress back there. The training code (and torch) is imported when a job runs, through
the kinds registry (see backend.jobs.runner)."""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutdown

from backend.jobs.celery_app import EVALUATE_TASK, SAMPLE_TASK, TRAIN_TASK, celery_app

log = logging.getLogger(__name__)

_recovery_stop = threading.Event()
_current_job: dict[str, int | None] = {"id": None}
_node = {"name": f"worker@{socket.gethostname()}:{os.getpid()}", "queues": ""}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_native_id()}"


@celery_app.task(name=TRAIN_TASK, bind=True, acks_late=True)
def train_job(self, job_id: int) -> str:
    from backend.jobs.runner import run_training_job

    _current_job["id"] = job_id
    try:
        return run_training_job(job_id, worker=worker_name())
    finally:
        _current_job["id"] = None


def _beat() -> None:
    from backend.db import crud
    from backend.jobs.service import session_factory

    with session_factory()() as s:
        crud.beat_worker(s, name=_node["name"], queues=_node["queues"], pid=os.getpid(),
                            current_job_id=_current_job["id"])


def _recovery_loop(interval: float) -> None:
    """Every ``interval``: say this worker is alive, and requeue jobs whose worker is not."""
    from backend.jobs.service import requeue_stale_jobs

    while not _recovery_stop.wait(interval):
        for what, fn in (("worker beat", _beat), ("stale-job recovery", requeue_stale_jobs)):
            try:
                fn()
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round tries again
                log.exception("%s failed", what)


@worker_ready.connect
def _start_recovery(sender=None, **_: object) -> None:
    """Every worker looks for jobs whose worker died, at start and then periodically."""
    from backend.jobs.service import requeue_stale_jobs
    from backend.settings import get_settings

    from backend.db.session import upgrade_database

    upgrade_database(get_settings().database_url)  # a worker may start before any API process
    if sender is not None:
        _node["name"] = getattr(sender, "hostname", _node["name"])
        try:
            _node["queues"] = ",".join(sorted(q.name for q in sender.app.amqp.queues.consume_from.values()))
        except Exception:  # noqa: BLE001 - the queue list is informative only
            _node["queues"] = ""
    for what, fn in (("worker beat", _beat), ("stale-job recovery", requeue_stale_jobs)):
        try:
            fn()
        except Exception:  # noqa: BLE001
            log.exception("%s failed", what)
    interval = max(1.0, get_settings().job_stale_after_s / 4)
    threading.Thread(target=_recovery_loop, args=(interval,), daemon=True, name="job-recovery").start()


@worker_shutdown.connect
def _stop_recovery(sender=None, **_: object) -> None:
    _recovery_stop.set()
    from backend.db import crud
    from backend.jobs.service import session_factory

    try:
        with session_factory()() as s:
            crud.forget_worker(s, name=_node["name"])
    except Exception:  # noqa: BLE001 - a stale row simply ages out of the list
        log.exception("could not remove this worker's row")


@celery_app.task(name=EVALUATE_TASK, acks_late=True)
def evaluate_model(model_version_id: int, n_samples: int) -> str:
    """FID / KID of a model version, stored on the version (see backend.jobs.runner)."""
    from backend.jobs.runner import run_evaluation_job

    return run_evaluation_job(model_version_id, n_samples)


@celery_app.task(name=SAMPLE_TASK, acks_late=True)
def sample(request_id: int) -> str:
    """Random faces (ONNX Runtime, no torch): see backend.sampler."""
    from backend.sampler import run_sample_request

    return run_sample_request(request_id)
