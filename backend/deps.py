"""What a route needs, as typed dependencies: the settings, a database session, the model store,
the logged-in admin and the API client. Each comes from the app that serves the request (its
``app.state``), so an app made with its own ``Settings`` (as the tests make them) uses those.
Also the type of a row's id in a path or a body, bounded so that no id reaches the database
driver out of range."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backend import auth, security
from backend.db import crud
from backend.db.models import AdminUser
from backend.serving import ModelStore
from backend.settings import Settings

log = logging.getLogger(__name__)


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


def _token(request: Request) -> tuple[str | None, bool]:
    """The session token, and whether it came in the cookie (which browsers send on their own)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    return request.cookies.get(auth.SESSION_COOKIE), True


@dataclass(frozen=True)
class AdminSession:
    admin: AdminUser
    token: auth.SessionToken


def _session(request: Request, db: DbDep) -> AdminSession | None:
    """The admin's session, or None when the request has no token or its token is not valid
    (forged, expired, logged out, or its admin disabled). A request that would change something
    with the cookie must come from the app's own pages (403 otherwise), so that another site
    cannot act with a logged-in admin's cookie; bearer tokens are not sent by browsers on their
    own and are not checked."""
    token, from_cookie = _token(request)
    if not token:
        return None
    if from_cookie and request.method not in security.SAFE_METHODS and not security.from_this_site(request):
        raise HTTPException(status_code=403, detail="refused: this request's origin is not this site, and it "
                                                    "carries the session cookie")
    session = auth.read_session_token(request.app.state.secret, token)
    # A well-signed token for an id no row can have (over 32 bits) is not valid either: asked of
    # the database, its driver would fail on it.
    if session is None or not 1 <= session.user_id <= MAX_ID or crud.session_revoked(db, sid=session.sid):
        return None
    admin = crud.get_admin(db, admin_id=session.user_id)
    if admin is None or admin.disabled:
        return None
    return AdminSession(admin, session)


SessionDep = Annotated[AdminSession | None, Depends(_session)]


def _current_admin(request: Request, session: SessionDep) -> AdminUser:
    if session is None:
        detail = "your session is not valid; log in again" if _token(request)[0] else "log in first"
        raise HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})
    return session.admin


AdminDep = Annotated[AdminUser, Depends(_current_admin)]


def client_address(request: Request) -> str:
    """The address a request came from: the socket's peer, or behind a configured proxy the
    client it forwarded (see ``security.client_address``)."""
    return security.client_address(request, request.app.state.trusted_proxies)


def _too_many(limit: int, reset: int, who: str) -> HTTPException:
    return HTTPException(status_code=429, detail=f"rate limit of {limit} requests per minute reached for {who}; "
                                                 f"try again in {reset} s", headers={"Retry-After": str(reset)})


@dataclass(frozen=True)
class ApiClient:
    """Who makes a public API call: an app with a key (``key_id``), or an anonymous client known by
    its address. ``bucket`` names its per-minute budget (and its waiting random-face requests),
    ``limit`` is that budget (0: none)."""

    key_id: int | None
    bucket: str
    limit: int

    def charge(self, request: Request, calls: int) -> None:
        """Count ``calls`` more calls against the budget (a heavy request costs several); 429
        when that passes it."""
        if calls <= 0 or not self.limit:
            return
        allowed, reset = request.app.state.rate_limiter.hit(self.bucket, self.limit, cost=calls)
        if not allowed:
            who = "this key" if self.key_id is not None else "this address without an API key"
            raise _too_many(self.limit, reset, who)


def _api_client(request: Request) -> ApiClient:
    """Calls without a key are the drawing page's (open to kids, and they need no database), each
    client address within its per-minute budget (429); calls with ``X-API-Key`` are other apps':
    the key must exist and not be revoked (401), and keeps to its own per-minute limit (429).
    As a dependency this runs before the body is validated, so a refused call costs no drawing
    work."""
    plain = request.headers.get("x-api-key")
    if plain is None:
        client = ApiClient(None, f"anon:{client_address(request)}",
                           request.app.state.settings.anonymous_requests_per_minute)
        client.charge(request, 1)
        return client
    Session = request.app.state.Session
    if Session is None:
        raise HTTPException(status_code=503, detail="API keys cannot be checked: the database is not available")
    with Session() as db:
        key = crud.find_api_key(db, plain_key=plain.strip())
        if key is None:
            raise HTTPException(status_code=401, detail="unknown or revoked API key")
        client = ApiClient(key.id, f"key:{key.id}", key.rate_limit_per_minute)
        client.charge(request, 1)
        try:
            crud.record_api_key_use(db, api_key=key)
        except (SQLAlchemyError, OSError) as exc:
            # When the key was last used is bookkeeping: a full disk must not stop the call.
            db.rollback()
            log.warning("could not record the use of API key %d: %s", key.id, exc)
        return client


ApiClientDep = Annotated[ApiClient, Depends(_api_client)]
