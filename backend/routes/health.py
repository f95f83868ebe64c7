"""The probes: the process is up, and a model is loaded and can serve."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up.")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="A model is loaded and can serve.")
def readyz(store: StoreDep) -> JSONResponse:
    ens = store.get()
    if ens is None:
        return JSONResponse(status_code=503, content={"status": "not ready", "reason": store.error or "loading"})
    return JSONResponse(content={"status": "ready", "model": ens.name, "version": ens.manifest.version,
                                 "providers": ens.providers})
