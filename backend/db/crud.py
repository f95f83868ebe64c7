"""Reading and writing the tables: the one place that writes them. Every function takes the
session first and the rest by keyword; functions that write commit before they return."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.models import (
    FINISHED_STATUSES,
    JOB_STATUSES,
    JOB_TRANSITIONS,
    SAMPLE_TRANSITIONS,
    AdminUser,
    ApiKey,
    Dataset,
    ModelVersion,
    RevokedSession,
    SampleRequest,
    TrainingJob,
    Worker,
    utcnow,
)
from backend.db.security import hash_api_key, hash_password, new_api_key, verify_password
from core.evaluation import is_evaluation_key

#: Entries of a job's ``metrics_history`` kept (the oldest are dropped).
HISTORY_LIMIT = 2000
#: Lines of a job's log tail kept.
LOG_TAIL_LINES = 40


@lru_cache(maxsize=1)
def _dummy_password_hash() -> str:
    """Checked for unknown user names, so a login takes as long whether the name exists or not."""
    return hash_password("not the password of anyone")


# -- training jobs -----------------------------------------------------------------------------
#
# Every change of a job's status is a compare-and-set UPDATE: it names the status it expects
# (and, for a worker's moves, that worker), so a concurrent change (a cancel, another worker
# taking the job over) is seen and never overwritten. JOB_TRANSITIONS is checked first.


class StateError(ValueError):
    """A move of a job or a sample request that its state machine, or its owner, does not
    allow; the message says why."""


def create_job(session: Session, *, kind: str, config: dict[str, Any], total_steps: int = 0,
               dataset_id: int | None = None, created_by: int | None = None) -> TrainingJob:
    job = TrainingJob(kind=kind, config=config, total_steps=total_steps, dataset_id=dataset_id,
                      created_by=created_by, status="queued")
    session.add(job)
    session.commit()
    return job


def get_job(session: Session, *, job_id: int) -> TrainingJob | None:
    return session.get(TrainingJob, job_id)


def list_jobs(session: Session, *, status: str | None = None, limit: int = 50, offset: int = 0) -> list[TrainingJob]:
    """Newest first."""
    query = select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(TrainingJob.status == _valid_status(status))
    return list(session.scalars(query))


def count_jobs_by_status(session: Session) -> dict[str, int]:
    """Every status with its number of jobs."""
    counts = dict(session.execute(select(TrainingJob.status, func.count()).group_by(TrainingJob.status)).all())
    return {status: counts.get(status, 0) for status in JOB_STATUSES}


def _valid_status(status: str) -> str:
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}; valid: {', '.join(JOB_STATUSES)}")
    return status


def _with_lines(log_tail: str | None, new: str | Sequence[str]) -> str:
    stamp = utcnow().strftime("%H:%M:%S")
    lines = (log_tail or "").splitlines() + [f"{stamp} {line}" for line in ([new] if isinstance(new, str) else new)]
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _read_job(session: Session, job_id: int) -> TrainingJob | None:
    """The job as stored now, not as this session last saw it."""
    return session.get(TrainingJob, job_id, populate_existing=True)


def _set_job(session: Session, job: TrainingJob, *where: Any, log: str | Sequence[str] = (), **values: Any) -> bool:
    """Write ``values`` (and ``log``, new lines of the log tail) if the job still has the
    status it was read with and the conditions ``where`` hold; True when it did. A change of
    status must be one that JOB_TRANSITIONS allows (StateError otherwise)."""
    current = job.status
    to = values.get("status", current)
    if to != current and to not in JOB_TRANSITIONS[current]:
        allowed = ", ".join(JOB_TRANSITIONS[current]) or "none: it is final"
        raise StateError(f"job {job.id} cannot go from {current!r} to {to!r} (allowed: {allowed})")
    if log:
        values["log_tail"] = _with_lines(job.log_tail, log)
    query = update(TrainingJob).where(TrainingJob.id == job.id, TrainingJob.status == current, *where)
    done = session.execute(query.values(**values).execution_options(synchronize_session=False)).rowcount == 1
    session.commit()
    session.refresh(job)
    return done


def _beat_unchanged(job: TrainingJob) -> Any:
    """The condition that the job's heartbeat is still the one read (its worker did not beat since)."""
    return TrainingJob.heartbeat_at.is_(None) if job.heartbeat_at is None else TrainingJob.heartbeat_at == job.heartbeat_at


def _workers_job(session: Session, job_id: int, worker: str) -> TrainingJob:
    """The job, when it is running on ``worker``; else StateError (taken over, cancelled, removed)."""
    job = _read_job(session, job_id)
    if job is None:
        raise StateError(f"job {job_id} does not exist")
    if job.status != "running" or job.worker != worker:
        raise StateError(f"job {job_id} is no longer {worker}'s running job (it is {job.status} "
                         f"on {job.worker or 'no worker'})")
    return job


def claim_job(session: Session, *, job_id: int, worker: str, stale_after_s: float, run_dir: str) -> TrainingJob | None:
    """Take a queued job, or a running one whose worker stopped beating, for ``worker``; None
    when it cannot be taken (finished, cancelled, running on a live worker, or just taken by
    another worker)."""
    job = _read_job(session, job_id)
    now = utcnow()
    if job is None:
        return None
    if job.status == "queued":
        unchanged = ()
    elif job.status == "running" and (job.heartbeat_at is None
                                      or job.heartbeat_at < now - dt.timedelta(seconds=stale_after_s)):
        unchanged = (_beat_unchanged(job),)
    else:
        return None
    attempt = job.attempts + 1
    taken = _set_job(session, job, *unchanged, log=f"started on {worker} (attempt {attempt})", status="running",
                     worker=worker, heartbeat_at=now, attempts=attempt, started_at=job.started_at or now,
                     run_dir=run_dir)
    return job if taken else None


def heartbeat_job(session: Session, *, job_id: int, worker: str) -> bool:
    """Refresh the job's heartbeat; False when the job is no longer this worker's."""
    res = session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.worker == worker, TrainingJob.status == "running")
        .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def report_progress(session: Session, *, job_id: int, worker: str, step: int, total_steps: int | None = None,
                    epoch: float | None = None, eta_seconds: float | None = None,
                    losses: dict[str, float] | None = None, metrics: dict[str, float] | None = None,
                    sample: str | None = None, log: Sequence[str] = ()) -> bool:
    """Record a progress report of ``worker``'s running job (and a heartbeat); returns whether a
    cancel was asked. StateError when the job is no longer this worker's."""
    job = _workers_job(session, job_id, worker)
    total = total_steps if total_steps is not None else job.total_steps
    values: dict[str, Any] = {"step": step, "total_steps": total, "eta_seconds": eta_seconds, "heartbeat_at": utcnow(),
                              "progress": min(max(step / total, 0.0), 1.0) if total else 0.0}
    if epoch is not None:
        values["epoch"] = epoch
    if losses is not None:
        values["latest_losses"] = dict(losses)
    if losses or metrics:
        history = list(job.metrics_history or [])
        entry = {"step": step, **(losses or {}), **(metrics or {})}
        if history and history[-1].get("step") == step:
            entry = {**history.pop(), **entry}
        values["metrics_history"] = (history + [entry])[-HISTORY_LIMIT:]
    if sample is not None:
        values["latest_sample"] = sample
    if not _set_job(session, job, TrainingJob.worker == worker, log=log, **values):
        raise StateError(f"job {job_id} changed while {worker} reported on it")
    return job.cancel_requested


def append_job_log(session: Session, *, job_id: int, worker: str, line: str) -> None:
    """A line in the log tail of ``worker``'s running job."""
    _set_job(session, _workers_job(session, job_id, worker), TrainingJob.worker == worker, log=line)


def finish_job(session: Session, *, job_id: int, worker: str, status: str, log: str,
               error: str | None = None) -> TrainingJob:
    """End ``worker``'s running job as succeeded, failed or cancelled (``error``: the reason of a
    failure, in plain words). StateError when the job is no longer this worker's."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"{status!r} does not finish a job; one of {', '.join(FINISHED_STATUSES)} does")
    job = _workers_job(session, job_id, worker)
    if not _set_job(session, job, TrainingJob.worker == worker, log=log, status=status, error=error, finished_at=utcnow(),
                    cancel_requested=False, eta_seconds=None):
        raise StateError(f"job {job_id} changed while {worker} finished it")
    return job


def request_cancel(session: Session, *, job_id: int) -> TrainingJob | None:
    """A queued job is cancelled at once; a running one is asked to stop at its next report.
    StateError for a finished job. Decided on the stored status, so a job a worker claims
    at the same moment is asked to stop rather than marked cancelled under the worker's feet."""
    for _ in range(5):
        job = _read_job(session, job_id)
        if job is None:
            return None
        if job.status == "queued":
            moved = _set_job(session, job, log="cancelled before it started", status="cancelled",
                             finished_at=utcnow())
        elif job.status == "running":
            moved = _set_job(session, job, log="cancel requested", cancel_requested=True)
        else:
            raise StateError(f"job {job_id} is {job.status}; only queued or running jobs can be cancelled")
        if moved:
            return job
    raise RuntimeError(f"job {job_id} kept changing while being cancelled")


def retry_job(session: Session, *, job_id: int) -> TrainingJob | None:
    """A failed or cancelled job goes back to the queue (send it again); it resumes from its
    last checkpoint. StateError for a job in another state."""
    job = _read_job(session, job_id)
    if job is None:
        return None
    if job.status not in ("failed", "cancelled") or not _set_job(
            session, job, log="retry requested", status="queued", error=None, cancel_requested=False,
            finished_at=None, worker=None):
        raise StateError(f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried")
    return job


def fail_unsent_job(session: Session, *, job_id: int, reason: str) -> TrainingJob | None:
    """A queued job that the queue could not take: failed, with the reason (it can be retried)."""
    job = _read_job(session, job_id)
    if job is not None and (job.status != "queued" or not _set_job(
            session, job, log="could not be queued", status="failed", error=reason, finished_at=utcnow())):
        raise StateError(f"job {job_id} is {job.status}, no longer queued")
    return job


def set_job_task(session: Session, *, job_id: int, task_id: str) -> None:
    """The queue's id of the task that carries the job."""
    session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(celery_task_id=task_id))
    session.commit()


def requeue_stale_jobs(session: Session, *, stale_after_s: float) -> list[TrainingJob]:
    """Running jobs whose worker stopped beating go back to the queue (send them again); each is
    moved only if its heartbeat is still the stale one read here."""
    stale = utcnow() - dt.timedelta(seconds=stale_after_s)
    jobs = session.scalars(select(TrainingJob).where(
        TrainingJob.status == "running",
        or_(TrainingJob.heartbeat_at.is_(None), TrainingJob.heartbeat_at < stale))).all()
    return [job for job in jobs if _set_job(
        session, job, _beat_unchanged(job), log="its worker stopped answering; queued again to resume from the last checkpoint",
        status="queued", worker=None)]


def version_id_of_job(session: Session, *, job_id: int) -> int | None:
    """The model version a job registered, if any."""
    return session.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id))


# -- workers -----------------------------------------------------------------------------------

def beat_worker(session: Session, *, name: str, queues: str, pid: int, current_job_id: int | None = None) -> None:
    """Write this worker's row (created on its first beat)."""
    row = session.scalars(select(Worker).where(Worker.name == name)).one_or_none()
    if row is None:
        row = Worker(name=name, queues=queues, pid=pid, started_at=utcnow())
        session.add(row)
    row.last_seen = utcnow()
    row.queues = queues
    row.pid = pid
    row.current_job_id = current_job_id
    session.commit()


def forget_worker(session: Session, *, name: str) -> None:
    session.execute(delete(Worker).where(Worker.name == name))
    session.commit()


def list_workers(session: Session, *, seen_within_s: float) -> list[Worker]:
    """Workers that wrote their row in the last ``seen_within_s`` (alive), newest first."""
    since = utcnow() - dt.timedelta(seconds=seen_within_s)
    return list(session.scalars(select(Worker).where(Worker.last_seen >= since).order_by(Worker.last_seen.desc())))


# -- random-face requests ----------------------------------------------------------------------

def create_sample_request(session: Session, *, kind: str, params: dict[str, Any], model_folder: str,
                          cache_key: str, client: str | None = None) -> SampleRequest:
    req = SampleRequest(kind=kind, params=params, model_folder=model_folder, cache_key=cache_key, client=client,
                        status="queued")
    session.add(req)
    session.commit()
    return req


def get_sample_request(session: Session, *, request_id: int) -> SampleRequest | None:
    return session.get(SampleRequest, request_id, populate_existing=True)


def find_sample_result(session: Session, *, cache_key: str) -> SampleRequest | None:
    """The newest request with this key that is done."""
    return session.scalars(select(SampleRequest).where(SampleRequest.cache_key == cache_key,
                                                       SampleRequest.status == "done")
                           .order_by(SampleRequest.id.desc())).first()


def find_pending_sample(session: Session, *, cache_key: str, since: dt.datetime) -> SampleRequest | None:
    """A request with this key, queued or running, made after ``since``."""
    return session.scalars(select(SampleRequest).where(SampleRequest.cache_key == cache_key,
                                                       SampleRequest.status.in_(("queued", "running")),
                                                       SampleRequest.created_at >= since)).first()


def count_pending_samples(session: Session, *, client: str, since: dt.datetime) -> int:
    """Requests of ``client`` queued or running, made after ``since``."""
    return session.scalar(select(func.count()).select_from(SampleRequest).where(
        SampleRequest.client == client, SampleRequest.status.in_(("queued", "running")),
        SampleRequest.created_at >= since)) or 0


def _set_sample(session: Session, req: SampleRequest, **values: Any) -> bool:
    """Write ``values`` if the request still has the status it was read with; the change of
    status must be one SAMPLE_TRANSITIONS allows."""
    current, to = req.status, values.get("status", req.status)
    if to not in SAMPLE_TRANSITIONS[current]:
        raise StateError(f"sample request {req.id} cannot go from {current!r} to {to!r}")
    done = session.execute(update(SampleRequest).where(SampleRequest.id == req.id, SampleRequest.status == current)
                           .values(**values).execution_options(synchronize_session=False)).rowcount == 1
    session.commit()
    session.refresh(req)
    return done


def start_sample_request(session: Session, *, request_id: int) -> SampleRequest | None:
    """Mark the request running (again, when a worker died on it); None when there is nothing
    to do: it is done, failed or gone."""
    req = get_sample_request(session, request_id=request_id)
    if req is None or req.status not in ("queued", "running") or not _set_sample(session, req, status="running"):
        return None
    return req


def finish_sample_request(session: Session, *, request_id: int, result_path: str, media_type: str) -> SampleRequest:
    req = get_sample_request(session, request_id=request_id)
    if req is None or not _set_sample(session, req, status="done", result_path=result_path, media_type=media_type,
                                      finished_at=utcnow()):
        raise StateError(f"sample request {request_id} is no longer running")
    return req


def fail_sample_request(session: Session, *, request_id: int, error: str) -> SampleRequest:
    """The request failed (or the queue could not take it): ``error`` says why, in plain words."""
    req = get_sample_request(session, request_id=request_id)
    if req is None or not _set_sample(session, req, status="failed", error=error, finished_at=utcnow()):
        raise StateError(f"sample request {request_id} is no longer queued or running")
    return req


# -- model versions ----------------------------------------------------------------------------

def create_model_version(session: Session, *, name: str, version: str, kind: str, manifest: dict[str, Any],
                         folder: str, metrics: dict[str, Any] | None = None, job_id: int | None = None,
                         in_ensemble: bool = False) -> ModelVersion:
    """Register an exported model; a version of that name and version registered already is
    returned as it is (a job that ran again after dying between export and here registers once)."""
    for _ in range(2):  # a second round when another process registered it meanwhile
        existing = find_model_version(session, name=name, version=version)
        if existing is not None:
            return existing
        model = ModelVersion(name=name, version=version, kind=kind, manifest=manifest, folder=folder,
                             metrics=metrics if metrics is not None else dict(manifest.get("metrics", {})),
                             job_id=job_id, in_ensemble=in_ensemble, active=False)
        session.add(model)
        try:
            session.commit()
            return model
        except IntegrityError:
            session.rollback()
    raise RuntimeError(f"could not register model version {name} v{version}")


def find_model_version(session: Session, *, name: str, version: str) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)).first()


def get_model_version(session: Session, *, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def list_model_versions(session: Session, *, name: str | None = None, limit: int = 100) -> list[ModelVersion]:
    """Newest first."""
    query = select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit)
    if name is not None:
        query = query.where(ModelVersion.name == name)
    return list(session.scalars(query))


def get_active_model_version(session: Session, *, name: str) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.active.is_(True))).first()


def set_active_model_version(session: Session, *, version_id: int) -> ModelVersion | None:
    """Make this version the one that serves its name; the others of that name stop, in one transaction.

    Promotions of one name run one after the other: on PostgreSQL the name's versions are locked
    first (in id order), on SQLite the first UPDATE takes the database's write lock. Everything is
    then decided by UPDATEs under that lock, never by what this session read before it (an old
    copy of ``active`` would otherwise leave no version active). A unique partial index keeps at
    most one active version per name regardless.
    """
    target = session.get(ModelVersion, version_id)
    if target is None:
        return None
    name = target.name
    session.execute(select(ModelVersion.id).where(ModelVersion.name == name)
                    .order_by(ModelVersion.id).with_for_update())
    # The others off first (a statement of its own), so the index never sees two active.
    session.execute(update(ModelVersion)
                    .where(ModelVersion.name == name, ModelVersion.id != target.id,
                           ModelVersion.active.is_(True))
                    .values(active=False))
    # Stamped only when it was not serving already.
    session.execute(update(ModelVersion)
                    .where(ModelVersion.id == target.id, ModelVersion.active.is_(False))
                    .values(active=True, promoted_at=utcnow())
                    .execution_options(synchronize_session=False))
    session.refresh(target)
    session.commit()
    return target


def previous_model_version(session: Session, *, name: str) -> ModelVersion | None:
    """The version of ``name`` promoted most recently before the active one (what a rollback serves)."""
    active = get_active_model_version(session, name=name)
    query = (select(ModelVersion)
             .where(ModelVersion.name == name, ModelVersion.promoted_at.is_not(None))
             .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc()))
    if active is not None:
        query = query.where(ModelVersion.id != active.id)
    return session.scalars(query.limit(1)).first()


def rollback_model_version(session: Session, *, name: str) -> ModelVersion | None:
    """Serve the previously promoted version of ``name`` again; returns it.

    The rolled-back-to version is stamped as promoted now, so a second rollback returns to the
    version the first one left (an undo of the last switch). With no earlier version, the active
    one is switched off and None is returned: the bundled model serves. ``ValueError`` when no
    version of ``name`` is active (the bundled model serves already; nothing to undo).
    """
    active = get_active_model_version(session, name=name)
    if active is None:
        raise ValueError(f"no version of {name!r} is active; there is nothing to roll back")
    previous = previous_model_version(session, name=name)
    if previous is not None:
        return set_active_model_version(session, version_id=previous.id)
    active.active = False
    session.commit()
    return None


def set_model_in_ensemble(session: Session, *, version_id: int, in_ensemble: bool) -> ModelVersion | None:
    """Add a version's members to the served ensemble, or take them out."""
    model = session.get(ModelVersion, version_id)
    if model is not None:
        model.in_ensemble = bool(in_ensemble)
        session.commit()
    return model


def store_evaluation(session: Session, *, version_id: int, metrics: dict[str, Any]) -> ModelVersion | None:
    """Put an evaluation's metrics on a model version (the new ones first, as lists show them),
    replacing an earlier evaluation's and keeping the training metrics. None when the version
    does not exist."""
    model = session.get(ModelVersion, version_id)
    if model is None:
        return None
    kept = {k: v for k, v in (model.metrics or {}).items() if k not in metrics and not is_evaluation_key(k)}
    model.metrics = {**metrics, **kept}  # a new dict: the JSON column sees the change
    session.commit()
    return model


def list_ensemble_versions(session: Session) -> list[ModelVersion]:
    """The versions whose members join the ensemble, oldest first."""
    return list(session.scalars(select(ModelVersion).where(ModelVersion.in_ensemble.is_(True))
                                .order_by(ModelVersion.id)))


# -- admin users -------------------------------------------------------------------------------

def create_admin(session: Session, *, username: str, password: str) -> AdminUser:
    if not username or not password:
        raise ValueError("an admin needs a user name and a password")
    if session.scalars(select(AdminUser).where(AdminUser.username == username)).first() is not None:
        raise ValueError(f"an admin named {username!r} exists already")
    admin = AdminUser(username=username, password_hash=hash_password(password), disabled=False)
    session.add(admin)
    try:
        session.commit()
    except IntegrityError:  # another process created the same name meanwhile
        session.rollback()
        raise ValueError(f"an admin named {username!r} exists already") from None
    return admin


def get_admin(session: Session, *, admin_id: int) -> AdminUser | None:
    return session.get(AdminUser, admin_id)


def list_admins(session: Session) -> list[AdminUser]:
    return list(session.scalars(select(AdminUser).order_by(AdminUser.id)))


def authenticate_admin(session: Session, *, username: str, password: str) -> AdminUser | None:
    """The admin when the password is right and the account is enabled; else None."""
    admin = session.scalars(select(AdminUser).where(AdminUser.username == username)).first()
    ok = verify_password(password, admin.password_hash if admin is not None else _dummy_password_hash())
    return admin if ok and admin is not None and not admin.disabled else None


def revoke_session(session: Session, *, sid: str, admin_id: int, expires_at: dt.datetime) -> None:
    """Refuse the session ``sid`` from now on (logout); forget sessions that have expired anyway."""
    session.execute(delete(RevokedSession).where(RevokedSession.expires_at < utcnow()))
    if session.get(RevokedSession, sid) is None:
        session.add(RevokedSession(sid=sid, admin_id=admin_id, expires_at=expires_at))
    try:
        session.commit()
    except IntegrityError:  # the same session logged out twice at once
        session.rollback()


def session_revoked(session: Session, *, sid: str) -> bool:
    return session.get(RevokedSession, sid) is not None


# -- API keys ----------------------------------------------------------------------------------

def create_api_key(session: Session, *, name: str, rate_limit_per_minute: int = 60) -> tuple[ApiKey, str]:
    """The stored key and its plain text, which is not kept: show it once."""
    if rate_limit_per_minute < 1:
        raise ValueError("rate_limit_per_minute must be at least 1")
    for _ in range(3):  # the shown prefix is unique too; a clash (48 random bits) gets a new key
        plain_key, prefix, key_hash = new_api_key()
        key = ApiKey(name=name, prefix=prefix, key_hash=key_hash, rate_limit_per_minute=rate_limit_per_minute)
        session.add(key)
        try:
            session.commit()
            return key, plain_key
        except IntegrityError:
            session.rollback()
    raise RuntimeError("could not make a unique API key")


def find_api_key(session: Session, *, plain_key: str) -> ApiKey | None:
    """The key that ``plain_key`` is, unless it was revoked."""
    return session.scalars(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(plain_key), ApiKey.revoked_at.is_(None))
    ).first()


def record_api_key_use(session: Session, *, api_key: ApiKey, min_interval_s: float = 60.0) -> None:
    """Update ``last_used_at``, at most once per ``min_interval_s`` so requests do not all write."""
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at >= dt.timedelta(seconds=min_interval_s):
        api_key.last_used_at = now
        session.commit()


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_api_key(session: Session, *, key_id: int) -> ApiKey | None:
    key = session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    return key


# -- data sets ---------------------------------------------------------------------------------

def register_dataset(session: Session, *, name: str, kind: str, location: str, content_sha256: str,
                     item_count: int, preview: str | None = None, builtin: bool = False) -> Dataset:
    """Add the data set, or bring the one of that name up to date: calling it twice is harmless."""
    fields = dict(kind=kind, location=location, content_sha256=content_sha256, item_count=item_count,
                  preview=preview, builtin=builtin)
    for _ in range(2):  # a second round when another process registered the same name meanwhile
        dataset = get_dataset_by_name(session, name=name)
        if dataset is None:
            dataset = Dataset(name=name, **fields)
            session.add(dataset)
        else:
            for key, value in fields.items():
                setattr(dataset, key, value)
        try:
            session.commit()
            return dataset
        except IntegrityError:
            session.rollback()
    raise RuntimeError(f"could not register data set {name!r}")


def get_dataset(session: Session, *, dataset_id: int) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def get_dataset_by_name(session: Session, *, name: str) -> Dataset | None:
    return session.scalars(select(Dataset).where(Dataset.name == name)).first()


def list_datasets(session: Session, *, kind: str | None = None) -> list[Dataset]:
    query = select(Dataset).order_by(Dataset.name)
    if kind is not None:
        query = query.where(Dataset.kind == kind)
    return list(session.scalars(query))
