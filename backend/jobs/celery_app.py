"""The Celery application, configured from ``Settings``.

Broker and result backend: Redis when ``REDIS_URL`` is set, else kombu's SQLAlchemy transport
on a SQLite file (no server needed). The choice is made by settings alone.

Long jobs, as Celery's documentation advises for them: late acknowledgement (a job is
acknowledged when it ends, not when it starts), a prefetch multiplier of 1 (a worker holds one
job at a time), a visibility timeout longer than any job, and explicit queues: ``training`` for
GPU workers, ``sampling`` for quick random-face work.

The API process sends tasks by name and never imports the task bodies (which import torch).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as sqlalchemy_transport

from backend.settings import Settings, get_settings

TRAIN_TASK = "doodle2anime.train_job"
SAMPLE_TASK = "doodle2anime.sample"
EVALUATE_TASK = "doodle2anime.evaluate_model"  # FID / KID of a model version (training queue)
QUEUES = ("training", "sampling")


class EmbeddedTransport(sqlalchemy_transport.Transport):
    """kombu's SQLAlchemy transport, polling for new messages every 0.1 s instead of every 1 s
    (its transport options go to ``create_engine``, so the interval cannot be set there): a
    random face asked for through the embedded broker starts 0.05 s after it was queued on
    average, not 0.5 s. An idle worker then runs ten small SQLite queries a second."""

    polling_interval = 0.1


EMBEDDED_ALIAS = "d2a-sqla"
TRANSPORT_ALIASES.setdefault(EMBEDDED_ALIAS, f"{__name__}:EmbeddedTransport")


def broker_urls(settings: Settings) -> tuple[str, str]:
    if settings.redis_url:
        return settings.redis_url, settings.redis_url
    settings.broker_db.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{settings.broker_db}"
    return f"{EMBEDDED_ALIAS}+{url}", f"db+{url}"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker, backend = broker_urls(settings)
    app = Celery("doodle2anime", broker=broker, backend=backend)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=tuple(Queue(q) for q in QUEUES),
        task_default_queue="training",
        task_routes={TRAIN_TASK: {"queue": "training"}, SAMPLE_TASK: {"queue": "sampling"},
                     EVALUATE_TASK: {"queue": "training"}},
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=7 * 24 * 3600,
    )
    if settings.redis_url:
        # Redis hands an unacknowledged job out again after this long: longer than any job.
        app.conf.broker_transport_options = {"visibility_timeout": settings.visibility_timeout_s}
        app.conf.result_backend_transport_options = {"visibility_timeout": settings.visibility_timeout_s}
    # (The SQLite broker passes transport options to SQLAlchemy's create_engine: none are set.)
    return app


celery_app = make_celery()
