"""The queue: workers seen, and jobs waiting and running."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.db import crud
from backend.deps import AdminDep, DbDep, SettingsDep
from backend.routes.admin import ADMIN_ONLY

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ONLY)


@router.get("/queue", summary="Workers seen and jobs waiting and running.")
def queue(admin: AdminDep, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    workers = crud.list_workers(db, seen_within_s=settings.job_stale_after_s)
    running = crud.list_jobs(db, status="running", limit=1000)
    return {
        "workers": [{"name": w.name, "queues": w.queues.split(",") if w.queues else [], "pid": w.pid,
                     "started_at": w.started_at, "last_seen": w.last_seen, "current_job_id": w.current_job_id}
                    for w in workers],
        "counts": crud.count_jobs_by_status(db),
        "running": [{"id": j.id, "worker": j.worker, "progress": j.progress, "heartbeat_at": j.heartbeat_at}
                    for j in running],
    }
