"""Running a training job inside a worker: claim it, train with progress written to the job
record, stop when asked, export and register a model version when done.

A job that is delivered again after its worker died resumes from the last checkpoint of its
run folder (one folder per job), so at most one checkpoint interval is lost.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from pathlib import Path

from backend.db.models import Dataset, ModelVersion, TrainingJob
from backend.jobs import service
from backend.settings import get_settings
from core.kinds import get_kind
from core.progress import Progress, TrainingCancelled

log = logging.getLogger(__name__)


class JobReporter:
    """The training callback of a job: throttled progress writes, cancel checks, a log tail."""

    def __init__(self, job_id: int, worker: str, every_s: float = 1.0):
        self.job_id = job_id
        self.worker = worker
        self.every_s = every_s
        self._last = 0.0
        self.Session = service.session_factory()

    def __call__(self, p: Progress) -> None:
        important = p.sample_path is not None or p.checkpoint_path is not None or p.step == p.total_steps
        t = time.monotonic()
        if not important and t - self._last < self.every_s:
            return
        self._last = t
        with self.Session() as s:
            job = s.get(TrainingJob, self.job_id)
            if job is None or job.worker != self.worker or job.status != "running":
                raise TrainingCancelled("the job was taken over or removed")
            job.step = p.step
            job.total_steps = p.total_steps
            job.progress = p.fraction
            job.epoch = p.epoch
            job.eta_seconds = p.eta_s
            job.latest_losses = {k: round(v, 5) for k, v in p.losses.items()}
            history = list(job.metrics_history or [])
            if not history or history[-1].get("step") != p.step:
                history.append({"step": p.step, **job.latest_losses, **{k: round(v, 5) for k, v in p.metrics.items()}})
            job.metrics_history = history[-2000:]
            job.heartbeat_at = service.now()
            if p.sample_path is not None:
                job.latest_sample = str(p.sample_path)
                service.append_log(job, f"step {p.step}: sample grid written {_fmt(p.metrics)}")
            if p.checkpoint_path is not None:
                service.append_log(job, f"step {p.step}: checkpoint saved")
            cancel = job.cancel_requested
            s.commit()
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
        Session = service.session_factory()
        while not self.stop.wait(self.interval):
            try:
                with Session() as s:
                    service.heartbeat(s, job_id=self.job_id, worker=self.worker)
            except Exception:  # noqa: BLE001 - a missed beat is retried on the next one
                log.exception("heartbeat failed")


def _finish(job_id: int, worker: str, status: str, *, error: str | None = None, line: str) -> bool:
    """Record the end of the job, only while it is still this worker's running job (one taken
    over by another worker, or removed, is left alone). True when recorded."""
    with service.session_factory()() as s:
        job = s.get(TrainingJob, job_id)
        if job is None or job.worker != worker or job.status != "running":
            log.warning("job %d is no longer this worker's; not marking it %s", job_id, status)
            return False
        job.status = status
        job.error = error
        job.finished_at = service.now()
        job.cancel_requested = False
        service.append_log(job, line)
        s.commit()
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
    Session = service.session_factory()
    with Session() as s:
        if not service.claim_job(s, job_id=job_id, worker=worker, stale_after_s=settings.job_stale_after_s):
            log.info("job %d is not claimable (finished, cancelled or owned by a live worker)", job_id)
            return "skipped"
        job = s.get(TrainingJob, job_id)
        kind, raw_config = job.kind, dict(job.config)
        anime_source, dataset_gone = None, False
        if job.dataset_id is not None:
            dataset = s.get(Dataset, job.dataset_id)
            dataset_gone = dataset is None
            if dataset is not None and dataset.kind == "image_zip":
                anime_source = Path(dataset.location)
        job.run_dir = str(Path(settings.runs_dir) / f"job-{job_id}")
        run_dir = Path(job.run_dir)
        s.commit()
    beat = Heartbeat(job_id, worker, max(1.0, settings.job_stale_after_s / 4))
    beat.start()
    try:
        if dataset_gone:
            raise FileNotFoundError("the data set chosen for this job no longer exists")
        model_kind = get_kind(kind)
        config = model_kind.config.model_validate(raw_config)
        trainer = model_kind.trainer.load()(config, run_dir, settings.data_dir, anime_source=anime_source)
        if trainer.load_checkpoint():
            with Session() as s:
                service.append_log(s.get(TrainingJob, job_id), f"resumed from the checkpoint at step {trainer.step}")
                s.commit()
        trainer.run(JobReporter(job_id, worker), resume=False)
        # A drawing-model job makes a new version of the served model, ready to promote.
        name = settings.default_model if model_kind.serves_drawings else model_kind.model_name
        out = Path(settings.job_models_dir) / f"{name}-job{job_id}"
        manifest = model_kind.exporter.load()(run_dir, out, name=name, version=f"job{job_id}", data_dir=settings.data_dir)
        with Session() as s:
            # Registered once, even when the job ran again after dying between export and here.
            exists = s.query(ModelVersion).filter(ModelVersion.name == manifest.name,
                                                  ModelVersion.version == manifest.version).first()
            if exists is None:
                s.add(ModelVersion(name=manifest.name, version=manifest.version, kind=manifest.kind,
                                   manifest=manifest.model_dump(mode="json"), metrics=manifest.metrics, folder=str(out),
                                   job_id=job_id, active=False, in_ensemble=False, created_at=service.now()))
                s.commit()
        _finish(job_id, worker, "succeeded", line=f"finished; model version {manifest.name} v{manifest.version} registered")
        return "succeeded"
    except TrainingCancelled as exc:
        mine = _finish(job_id, worker, "cancelled", line=f"cancelled at step {trainer.step}; checkpoint kept for a retry")
        return "cancelled" if mine else "lost"
    except Exception as exc:  # noqa: BLE001 - every failure is reported on the job
        log.exception("job %d failed", job_id)
        tb = traceback.format_exc().strip().splitlines()[-3:]
        _finish(job_id, worker, "failed", error=plain_error(exc), line="failed: " + " | ".join(tb))
        return "failed"
    finally:
        beat.stop.set()
