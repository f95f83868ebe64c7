"""The probes (the process is up; a model is loaded and can serve) and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up.")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The default drawing model is loaded and can serve; `models`: the version of every drawing model that serves.")
def readyz(store: StoreDep) -> JSONResponse:
    ens = store.get()
    if ens is None:
        return JSONResponse(status_code=503, content={"status": "not ready", "reason": store.error or "loading"})
    models = {name: store.get(name).manifest.version for name in store.names() if store.get(name) is not None}
    return JSONResponse(content={"status": "ready", "model": ens.name, "version": ens.manifest.version,
                                 "providers": ens.providers, "models": models,
                                 "refused": {name: why for name, why in store.errors.items()}})


@router.get("/metrics", summary="Prometheus metrics: request latency by route, model inference time, jobs by "
                                "state, queue depth, rate-limit refusals.", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    registry = request.app.state.metrics.registry
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
