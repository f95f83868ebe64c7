"""API keys for other apps: made (shown once), listed, revoked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from backend.db import crud
from backend.db.models import ApiKey
from backend.deps import AdminDep, DbDep, IdPath
from backend.routes.admin import ADMIN_ONLY
from backend.schemas import Name

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ONLY)


class ApiKeyIn(BaseModel):
    name: Name
    rate_limit_per_minute: int = Field(60, ge=1, le=100_000)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    rate_limit_per_minute: int
    created_at: Any
    revoked_at: Any
    last_used_at: Any


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. It is shown this once and not stored.")


def key_out(k: ApiKey) -> dict[str, Any]:
    return dict(id=k.id, name=k.name, prefix=k.prefix, rate_limit_per_minute=k.rate_limit_per_minute,
                created_at=k.created_at, revoked_at=k.revoked_at, last_used_at=k.last_used_at)


@router.get("/api-keys", summary="API keys (never the keys themselves).")
def list_keys(admin: AdminDep, db: DbDep, include_revoked: bool = False) -> list[ApiKeyOut]:
    return [ApiKeyOut(**key_out(k)) for k in crud.list_api_keys(db, include_revoked=include_revoked)]


@router.post("/api-keys", status_code=201, summary="Create a key; the response shows it once.")
def create_key(body: ApiKeyIn, admin: AdminDep, db: DbDep) -> ApiKeyCreated:
    key, plain = crud.create_api_key(db, name=body.name, rate_limit_per_minute=body.rate_limit_per_minute)
    return ApiKeyCreated(**key_out(key), key=plain)


@router.delete("/api-keys/{key_id}", summary="Revoke a key; calls with it are refused from now on.")
def revoke_key(key_id: IdPath, admin: AdminDep, db: DbDep) -> ApiKeyOut:
    key = crud.revoke_api_key(db, key_id=key_id)
    if key is None:
        raise HTTPException(status_code=404, detail=f"API key {key_id} does not exist")
    return ApiKeyOut(**key_out(key))
