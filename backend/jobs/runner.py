"""The worker's side of a training or evaluation job: claim it, run the kind's training code (found
through ``core.kinds``, imported only here, when the job runs), turn its progress reports into
job state, stop when asked, export and register a model version when done.

A job that is delivered again after its worker died resumes from the last checkpoint of its
run folder (one folder per job), so at most one checkpoint interval is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import traceback
from pathlib import Path

from backend.db import crud
from backend.db.session import make_engine, make_sessionmaker
from backend.jobs.service import session_factory
from backend.settings import Settings, get_settings
from core.kinds import EVALUATE, get_kind
from core.progress import Progress, TrainingCancelled

log = logging.getLogger(__name__)


class JobReporter:
    """The training callback of a job: throttled progress writes, cancel checks, log lines."""

    def __init__(self, job_id: int, worker: str, every_s: float = 1.0):
        self.job_id = job_id
        self.worker = worker
        self.every_s = every_s
        self._last = 0.0
        self.Session = session_factory()

    def __call__(self, p: Progress) -> None:
        important = p.sample_path is not None or p.checkpoint_path is not None or p.step == p.total_steps
        t = time.monotonic()
        if not important and t - self._last < self.every_s:
            return
        self._last = t
        lines = []
        if p.sample_path is not None:
            lines.append(f"step {p.step}: sample grid written {_fmt(p.metrics)}")
        if p.checkpoint_path is not None:
            lines.append(f"step {p.step}: checkpoint saved")
        with self.Session() as s:
            try:
                cancel = crud.report_progress(
                    s, job_id=self.job_id, worker=self.worker, step=p.step, total_steps=p.total_steps, epoch=p.epoch,
                    eta_seconds=p.eta_s, losses={k: round(v, 5) for k, v in p.losses.items()},
                    metrics={k: round(v, 5) for k, v in p.metrics.items()},
                    sample=str(p.sample_path) if p.sample_path is not None else None, log=lines)
            except crud.StateError as exc:
                raise TrainingCancelled(f"the job was taken over or removed: {exc}") from None
        if cancel:
            raise TrainingCancelled("cancel requested")


def _fmt(d: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in d.items())


class Heartbeat(threading.Thread):
    """Beats while the job runs, also through data loading and export, when no step reports."""

    def __init__(self, job_id: int, worker: str, interval: float):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.worker, self.interval = job_id, worker, interval
        self.stop = threading.Event()

    def run(self) -> None:
        Session = session_factory()
        while not self.stop.wait(self.interval):
            try:
                with Session() as s:
                    crud.heartbeat_job(s, job_id=self.job_id, worker=self.worker)
            except Exception:  # noqa: BLE001 - a missed beat is retried on the next one
                log.exception("heartbeat failed")


def _finish(job_id: int, worker: str, status: str, *, log_line: str, error: str | None = None) -> bool:
    """Record the end of the job, only while it is still this worker's running job (one taken
    over by another worker, or removed, is left alone). True when recorded."""
    with session_factory()() as s:
        try:
            crud.finish_job(s, job_id=job_id, worker=worker, status=status, error=error, log=log_line)
        except crud.StateError as exc:
            log.warning("not marking job %d %s: %s", job_id, status, exc)
            return False
    return True


def plain_error(exc: BaseException) -> str:
    """One sentence for the job page; the traceback goes to the log tail and the worker log."""
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else "no details"
    if isinstance(exc, MemoryError):
        return "The worker ran out of memory. Try a smaller batch size or image size."
    if "out of memory" in msg.lower():
        return f"The GPU ran out of memory ({msg}). Try a smaller batch size or image size."
    if isinstance(exc, FileNotFoundError) or name == "DataError":
        return f"Training data could not be read: {msg}"
    return f"Training stopped with an error ({name}): {msg}"


def run_training_job(job_id: int, *, worker: str) -> str:
    settings = get_settings()
    Session = session_factory()
    run_dir = Path(settings.runs_dir) / f"job-{job_id}"
    with Session() as s:
        job = crud.claim_job(s, job_id=job_id, worker=worker, stale_after_s=settings.job_stale_after_s,
                             run_dir=str(run_dir))
        if job is None:
            log.info("job %d is not claimable (finished, cancelled or owned by a live worker)", job_id)
            return "skipped"
        kind_name, raw_config = job.kind, dict(job.config)
        anime_source, dataset_gone = None, False
        if job.dataset_id is not None:
            dataset = crud.get_dataset(s, dataset_id=job.dataset_id)
            dataset_gone = dataset is None
            if dataset is not None and dataset.kind == "image_zip":
                anime_source = Path(dataset.location)
    beat = Heartbeat(job_id, worker, max(1.0, settings.job_stale_after_s / 4))
    beat.start()
    trainer = None
    try:
        if dataset_gone:
            raise FileNotFoundError("the data set chosen for this job no longer exists")
        kind = get_kind(kind_name)
        config = kind.config.model_validate(raw_config)
        models = {"models_dir": settings.models_dir} if kind.builds_on_models else {}
        trainer = kind.trainer.load()(config, run_dir, settings.data_dir, anime_source=anime_source, **models)
        if trainer.load_checkpoint():
            with Session() as s:
                crud.append_job_log(s, job_id=job_id, worker=worker,
                                    line=f"resumed from the checkpoint at step {trainer.step}")
        trainer.run(JobReporter(job_id, worker), resume=False)
        # A job makes a new version of its kind's model, ready to promote.
        name = kind.model_name
        out = Path(settings.job_models_dir) / f"{name}-job{job_id}"
        manifest = kind.exporter.load()(run_dir, out, name=name, version=f"job{job_id}", data_dir=settings.data_dir,
                                        **models)
        with Session() as s:
            crud.create_model_version(s, name=manifest.name, version=manifest.version, kind=manifest.kind,
                                      manifest=manifest.model_dump(mode="json"), folder=str(out), job_id=job_id)
        _finish(job_id, worker, "succeeded", log_line=f"finished; model version {manifest.name} v{manifest.version} registered")
        return "succeeded"
    except TrainingCancelled:
        mine = _finish(job_id, worker, "cancelled", log_line=f"cancelled at step {trainer.step}; checkpoint kept for a retry")
        return "cancelled" if mine else "lost"
    except Exception as exc:  # noqa: BLE001 - every failure is reported on the job
        log.exception("job %d failed", job_id)
        tb = traceback.format_exc().strip().splitlines()[-3:]
        _finish(job_id, worker, "failed", error=plain_error(exc), log_line="failed: " + " | ".join(tb))
        return "failed"
    finally:
        beat.stop.set()


def run_evaluation_job(version_id: int, n_samples: int, *, settings: Settings | None = None,
                       real_limit: int | None = None) -> str:
    """Evaluate a model version and store the metrics on it (or the error, in plain words).

    Returns "succeeded", "failed" or "missing" (no such version). Running it again is harmless:
    the new results replace the old ones."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    Session = make_sessionmaker(engine)
    try:
        with Session() as s:
            version = crud.get_model_version(s, version_id=version_id)
            if version is None:
                log.warning("evaluate: model version %d does not exist", version_id)
                return "missing"
            folder = Path(version.folder)
        try:
            metrics = EVALUATE.load()(
                folder, n_samples, data_dir=settings.data_dir, real_limit=real_limit,
                inception_weights=settings.inception_weights, batch_size=settings.metrics_batch_size,
                threads=settings.metrics_threads, cache_dir=settings.metrics_cache_dir, providers=settings.providers)
            status = "succeeded"
        except Exception as exc:  # noqa: BLE001 - the failure is reported on the version
            log.exception("evaluation of model version %d failed", version_id)
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no details"
            metrics = {"evaluation_error": f"{type(exc).__name__}: {detail}"}
            status = "failed"
        metrics["evaluated_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with Session() as s:
            crud.store_evaluation(s, version_id=version_id, metrics=metrics)
        return status
    finally:
        engine.dispose()
