"""What a route needs, as typed dependencies: the settings, a database session, the model store,
the logged-in admin and the API client. Each comes from the app that serves the request (its
``app.state``), so an app made with its own ``Settings`` (as the tests make them) uses those.
Also the type of a row's id in a path or a body, bounded so that no id reaches the database
driver out of range."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from pydantic import Field
from sqlalchemy.orm import Session

from backend import auth
from backend.db import crud
from backend.db.models import AdminUser
from backend.serving import ModelStore
from backend.settings import Settings


#: The largest id a row can have: ids are INTEGER columns, 32 bits on PostgreSQL. A larger id
#: (past 64 bits, SQLite's driver raises OverflowError) is refused as a 422 before any query.
MAX_ID = 2**31 - 1

#: A row's id in a path (``/jobs/{job_id}``): 1 to MAX_ID, else 422.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The id of the row.")]
#: A row's id in a request body: 1 to MAX_ID, else 422.
IdField = Annotated[int, Field(ge=1, le=MAX_ID)]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> ModelStore:
    return request.app.state.store


def _db(request: Request) -> Iterator[Session]:
    """A session for the request; 503 when the database is not available."""
    Session = request.app.state.Session
    if Session is None:
        # what went wrong (host, port, driver) is in the log, not in a public answer
        raise HTTPException(status_code=503, detail="the database is not available; try again in a little while",
                            headers={"Retry-After": str(round(request.app.state.settings.db_retry_s))})
    with Session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[ModelStore, Depends(_store)]
DbDep = Annotated[Session, Depends(_db)]


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(auth.SESSION_COOKIE)


def _current_admin(request: Request, db: DbDep) -> AdminUser:
    token = _token(request)
    if not token:
        raise HTTPException(status_code=401, detail="log in first", headers={"WWW-Authenticate": "Bearer"})
    user_id = auth.read_session_token(request.app.state.secret, token)
    admin = crud.get_admin(db, admin_id=user_id) if user_id is not None else None
    if admin is None or admin.disabled:
        raise HTTPException(status_code=401, detail="your session is not valid; log in again",
                            headers={"WWW-Authenticate": "Bearer"})
    return admin


AdminDep = Annotated[AdminUser, Depends(_current_admin)]


def _api_client(request: Request) -> int | None:
    """Calls without a key are the drawing page's (open to kids, and they need no database);
    calls with ``X-API-Key`` are other apps': the key must exist and not be revoked (401), and
    keeps to its per-minute limit (429). The key's id, or None for anonymous calls."""
    plain = request.headers.get("x-api-key")
    if plain is None:
        return None
    Session = request.app.state.Session
    if Session is None:
        raise HTTPException(status_code=503, detail="API keys cannot be checked: the database is not available")
    with Session() as db:
        key = crud.find_api_key(db, plain_key=plain.strip())
        if key is None:
            raise HTTPException(status_code=401, detail="unknown or revoked API key")
        allowed, reset = request.app.state.rate_limiter.hit(f"key:{key.id}", key.rate_limit_per_minute)
        if not allowed:
            raise HTTPException(status_code=429, detail=f"rate limit of {key.rate_limit_per_minute} requests per minute "
                                f"reached for this key; try again in {reset} s", headers={"Retry-After": str(reset)})
        crud.record_api_key_use(db, api_key=key)
        return key.id


ApiClientDep = Annotated[int | None, Depends(_api_client)]
