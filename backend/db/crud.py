"""Reading and writing the tables. Every function takes the session first and the rest by
keyword; functions that write commit before they return."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.models import (
    JOB_STATUSES,
    JOB_TRANSITIONS,
    AdminUser,
    ApiKey,
    Dataset,
    ModelVersion,
    TrainingJob,
    utcnow,
)
from backend.db.security import hash_api_key, hash_password, new_api_key, verify_password

#: Entries of a job's ``metrics_history`` kept (the oldest are dropped).
HISTORY_LIMIT = 2000


@lru_cache(maxsize=1)
def _dummy_password_hash() -> str:
    """Checked for unknown user names, so a login takes as long whether the name exists or not."""
    return hash_password("not the password of anyone")


# -- training jobs -----------------------------------------------------------------------------

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


def update_job_progress(session: Session, *, job_id: int, step: int, total_steps: int | None = None,
                        epoch: float | None = None, eta_seconds: float | None = None,
                        losses: dict[str, float] | None = None, metrics: dict[str, float] | None = None,
                        sample: str | None = None) -> TrainingJob | None:
    """Record a progress report (and a heartbeat). Read ``cancel_requested`` on the result."""
    job = session.get(TrainingJob, job_id)
    if job is None:
        return None
    job.step = step
    if total_steps is not None:
        job.total_steps = total_steps
    job.progress = min(max(step / job.total_steps, 0.0), 1.0) if job.total_steps else 0.0
    if epoch is not None:
        job.epoch = epoch
    job.eta_seconds = eta_seconds
    if losses is not None:
        job.latest_losses = dict(losses)
    if losses or metrics:
        history = list(job.metrics_history or [])
        entry = {"step": step, **(losses or {}), **(metrics or {})}
        if history and history[-1].get("step") == step:
            entry = {**history.pop(), **entry}
        job.metrics_history = (history + [entry])[-HISTORY_LIMIT:]  # a new list: JSON is saved on assignment
    if sample is not None:
        job.latest_sample = sample
    job.heartbeat_at = utcnow()
    session.commit()
    return job


def request_cancel(session: Session, *, job_id: int) -> TrainingJob | None:
    """A queued job is cancelled at once; a running one is asked to stop at its next report.

    Decided by conditional UPDATEs, so a job claimed by a worker at the same moment is asked to
    stop rather than marked cancelled under the worker's feet.
    """
    if session.get(TrainingJob, job_id) is None:
        return None
    cancelled = session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.status == "queued")
        .values(status="cancelled", finished_at=utcnow()).execution_options(synchronize_session=False))
    if cancelled.rowcount == 0:
        session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.status == "running")
            .values(cancel_requested=True).execution_options(synchronize_session=False))
    session.commit()
    job = session.get(TrainingJob, job_id)
    session.refresh(job)
    return job


def mark_job(session: Session, *, job_id: int, status: str, error: str | None = None,
             worker: str | None = None) -> TrainingJob | None:
    """Move a job to ``status``, with its timestamps; ``error`` is the plain-words reason of a failure.

    Only the moves of ``JOB_TRANSITIONS`` are allowed (``ValueError`` otherwise): a finished job
    goes back to the queue only from failed or cancelled (a retry), and a succeeded one stays.
    The move is a compare-and-set on the status the job had when read, so a concurrent change
    (another process cancelling or finishing it) is seen and checked again, never overwritten.
    """
    _valid_status(status)
    for _ in range(5):
        job = session.get(TrainingJob, job_id, populate_existing=True)
        if job is None:
            return None
        current = job.status
        if status not in JOB_TRANSITIONS[current]:
            allowed = ", ".join(JOB_TRANSITIONS[current]) or "none: it is final"
            raise ValueError(f"job {job_id} cannot go from {current!r} to {status!r} (allowed: {allowed})")
        now = utcnow()
        values: dict[str, Any] = {"status": status, "error": error}
        if status == "queued":  # back in the queue (a retry): not finished, nothing asked of it
            values.update(finished_at=None, cancel_requested=False, worker=None)
        elif status == "running":
            values.update(started_at=job.started_at or now, heartbeat_at=now, finished_at=None)
            if worker is not None:
                values["worker"] = worker
        else:
            values.update(finished_at=now, cancel_requested=False, eta_seconds=None)
        moved = session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.status == current)
            .values(**values).execution_options(synchronize_session=False))
        session.commit()
        if moved.rowcount == 1:
            session.refresh(job)
            return job
    raise RuntimeError(f"job {job_id} kept changing while being moved to {status!r}")


def _valid_status(status: str) -> str:
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}; valid: {', '.join(JOB_STATUSES)}")
    return status


# -- model versions ----------------------------------------------------------------------------

def create_model_version(session: Session, *, name: str, version: str, kind: str, manifest: dict[str, Any],
                         folder: str, metrics: dict[str, Any] | None = None, job_id: int | None = None,
                         in_ensemble: bool = False) -> ModelVersion:
    model = ModelVersion(name=name, version=version, kind=kind, manifest=manifest, folder=folder,
                         metrics=metrics if metrics is not None else dict(manifest.get("metrics", {})),
                         job_id=job_id, in_ensemble=in_ensemble, active=False)
    session.add(model)
    session.commit()
    return model


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


def update_model_version_metrics(session: Session, *, version_id: int, metrics: dict[str, Any],
                                 drop: Callable[[str], bool] | None = None) -> ModelVersion | None:
    """Merge ``metrics`` into the version's metrics (the new ones first, as lists show them),
    removing the old keys ``drop`` picks (an earlier evaluation's, say). None when the version
    does not exist."""
    model = session.get(ModelVersion, version_id)
    if model is None:
        return None
    kept = {k: v for k, v in (model.metrics or {}).items() if k not in metrics and (drop is None or not drop(k))}
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


def authenticate_admin(session: Session, *, username: str, password: str) -> AdminUser | None:
    """The admin when the password is right and the account is enabled; else None."""
    admin = session.scalars(select(AdminUser).where(AdminUser.username == username)).first()
    ok = verify_password(password, admin.password_hash if admin is not None else _dummy_password_hash())
    return admin if ok and admin is not None and not admin.disabled else None


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
        dataset = session.scalars(select(Dataset).where(Dataset.name == name)).first()
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


def list_datasets(session: Session, *, kind: str | None = None) -> list[Dataset]:
    query = select(Dataset).order_by(Dataset.name)
    if kind is not None:
        query = query.where(Dataset.kind == kind)
    return list(session.scalars(query))
