"""Model versions: promote one to serve the drawing endpoint, roll back, add members to the
served ensemble, measure FID / KID on a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from backend.db import crud
from backend.db.models import ModelVersion
from backend.deps import AdminDep, DbDep, IdPath, SettingsDep
from backend.jobs import service
from backend.routes.admin import ADMIN_ONLY
from core.kinds import Ref, kind_of_manifest
from core.manifest import ModelIntegrityError, ModelManifest

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ONLY)


class ModelVersionOut(BaseModel):
    id: int
    name: str
    version: str
    kind: str
    metrics: dict[str, Any]
    job_id: int | None
    active: bool
    in_ensemble: bool
    members: int
    has_samples: bool
    created_at: Any
    promoted_at: Any


class EnsembleIn(BaseModel):
    in_ensemble: bool


class EvaluateIn(BaseModel):
    n_samples: int = Field(5000, ge=16, le=100_000, description="Generated images to compare with the real faces.")


class EvaluateOut(BaseModel):
    task_id: str
    version_id: int
    n_samples: int


def version_out(v: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        id=v.id, name=v.name, version=v.version, kind=v.kind, metrics=v.metrics or {}, job_id=v.job_id,
        active=v.active, in_ensemble=v.in_ensemble,
        members=sum(str(m.get("file", "")).endswith(".onnx") for m in (v.manifest or {}).get("members", [])),
        has_samples=(Path(v.folder) / "samples.png").is_file(), created_at=v.created_at, promoted_at=v.promoted_at,
    )


def _version(db: Session, version_id: int) -> ModelVersion:
    v = crud.get_model_version(db, version_id=version_id)
    if v is None:
        raise HTTPException(status_code=404, detail=f"model version {version_id} does not exist")
    return v


def _check_files(v: ModelVersion) -> None:
    try:
        ModelManifest.load(Path(v.folder)).verify(Path(v.folder))
    except (ModelIntegrityError, OSError, ValueError) as exc:
        raise HTTPException(status_code=409, detail=f"model version {v.id} failed its file check and was refused: {exc}") from None


def _apply(request: Request, name: str) -> dict[str, Any]:
    """Load the new choice in this process now (others pick it up on their next poll)."""
    watcher = getattr(request.app.state, "watcher", None)
    if watcher is None:
        return {"loaded_here": False}
    loaded = name in watcher.check()
    return {"loaded_here": loaded, "serving_error": None if loaded else request.app.state.store.errors.get(name)}


def _drawing_model(v: ModelVersion, settings) -> None:
    if v.name not in settings.drawing_models:
        raise HTTPException(status_code=422, detail=f"{v.name} models cannot serve the drawing endpoint "
                                                    f"(it serves {', '.join(settings.drawing_models)})")


@router.get("/models", summary="Model versions, newest first.")
def list_models(admin: AdminDep, db: DbDep) -> list[ModelVersionOut]:
    return [version_out(v) for v in crud.list_model_versions(db, limit=200)]


@router.get("/models/{version_id}/samples", summary="The version's sample grid (PNG).", response_class=FileResponse)
def model_samples(version_id: IdPath, admin: AdminDep, db: DbDep) -> FileResponse:
    path = Path(_version(db, version_id).folder) / "samples.png"
    if not path.is_file():
        raise HTTPException(status_code=404, detail="this version has no sample grid")
    return FileResponse(path, media_type="image/png")


@router.post("/models/{version_id}/promote", summary="Serve this version of its drawing model.",
             responses={409: {"description": "The version's files failed their sha256 check."},
                        422: {"description": "The version is not of a drawing model."}})
def promote(version_id: IdPath, request: Request, admin: AdminDep, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    v = _version(db, version_id)
    _drawing_model(v, settings)
    _check_files(v)
    crud.set_active_model_version(db, version_id=v.id)
    return {"promoted": version_out(v).model_dump(mode="json"), **_apply(request, v.name)}


@router.post("/models/rollback", summary="Serve the previously promoted version of a drawing model again.",
             responses={409: {"description": "The bundled model is serving, or the earlier version failed its check."},
                        422: {"description": "Not a drawing model."}})
def rollback(request: Request, admin: AdminDep, db: DbDep, settings: SettingsDep,
             name: str | None = None) -> dict[str, Any]:
    """``name``: the drawing model to roll back (default: the default model)."""
    name = name or settings.default_model
    if name not in settings.drawing_models:
        raise HTTPException(status_code=422, detail=f"unknown drawing model {name!r}; "
                                                    f"the drawing models are {', '.join(settings.drawing_models)}")
    previous = crud.previous_model_version(db, name=name)
    if previous is not None:
        _check_files(previous)  # a damaged earlier version is refused; the current one keeps serving
    try:
        served = crud.rollback_model_version(db, name=name)
    except ValueError as exc:
        raise HTTPException(status_code=409, detail=f"the bundled model is serving: {exc}") from None
    return {"promoted": version_out(served).model_dump(mode="json") if served else None, **_apply(request, name)}


@router.post("/models/{version_id}/ensemble", summary="Add this version's members to the served ensemble, or take them out.",
             responses={409: {"description": "The version's files failed their sha256 check."},
                        422: {"description": "The version cannot join the ensemble."}})
def ensemble(version_id: IdPath, body: EnsembleIn, request: Request, admin: AdminDep, db: DbDep,
             settings: SettingsDep) -> dict[str, Any]:
    v = _version(db, version_id)
    if body.in_ensemble:
        _drawing_model(v, settings)
        _check_files(v)
        if kind_of_manifest(ModelManifest.load(Path(v.folder)).kind).runtime != Ref("core.runtime:Ensemble"):
            raise HTTPException(status_code=422, detail=f"{v.name} is not an ensemble: only CycleGAN versions join one")
    crud.set_model_in_ensemble(db, version_id=v.id, in_ensemble=body.in_ensemble)
    return {"version": version_out(v).model_dump(mode="json"), **_apply(request, v.name)}


@router.post("/models/{version_id}/evaluate", status_code=202,
             summary="Measure FID / KID of this version on a worker (training queue); the metrics land on the version.")
def evaluate(version_id: IdPath, admin: AdminDep, db: DbDep, body: EvaluateIn | None = None) -> EvaluateOut:
    v = _version(db, version_id)
    n_samples = (body or EvaluateIn()).n_samples
    return EvaluateOut(task_id=service.enqueue_evaluation(v.id, n_samples), version_id=v.id, n_samples=n_samples)
