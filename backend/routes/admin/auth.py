"""Logging in and out: a session cookie for the dashboard, the same token for Bearer use."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from backend import auth
from backend.db import crud
from backend.deps import AdminDep, DbDep, SessionDep, SettingsDep, client_address
from backend.routes.admin import ADMIN_ONLY

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class LoginIn(BaseModel):
    # no NUL characters: PostgreSQL cannot hold them in text, so a lookup with one would fail
    username: str = Field(min_length=1, max_length=150, pattern=r"^[^\x00]*$")
    password: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00]*$")


class LoginOut(BaseModel):
    username: str
    token: str
    expires_in: int


@router.post("/login", summary="Log in; sets the session cookie and returns the same token for Bearer use.",
             responses={401: {"description": "Wrong user name or password."},
                        429: {"description": "Too many failed logins for this user name from this address in "
                                             "this minute (see `Retry-After`)."}})
def login(body: LoginIn, request: Request, response: Response, db: DbDep, settings: SettingsDep) -> LoginOut:
    """Failed logins are counted per user name and client address: a guesser is stopped after
    ``login_attempts_per_minute`` failures, but only for that name from that address, so the
    real admin elsewhere still gets in, and a correct password is never refused because of
    someone else's failures."""
    limiter = request.app.state.login_limiter
    failures = f"login:{client_address(request)}:{body.username}"
    if limiter.count(failures) >= settings.login_attempts_per_minute:
        reset = 60 - int(time.time() % 60)
        raise HTTPException(status_code=429, detail="too many failed logins; wait a minute",
                            headers={"Retry-After": str(reset)})
    admin = crud.authenticate_admin(db, username=body.username, password=body.password)
    if admin is None:
        limiter.hit(failures, settings.login_attempts_per_minute)
        raise HTTPException(status_code=401, detail="wrong user name or password")
    token = auth.make_session_token(request.app.state.secret, admin.id, settings.session_ttl_s)
    response.set_cookie(auth.SESSION_COOKIE, token, max_age=settings.session_ttl_s, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return LoginOut(username=admin.username, token=token, expires_in=settings.session_ttl_s)


@router.post("/logout", summary="End the session: its token (cookie or Bearer) is refused from now on.")
def logout(response: Response, session: SessionDep, db: DbDep) -> dict[str, str]:
    if session is not None:
        crud.revoke_session(db, sid=session.token.sid, admin_id=session.admin.id, expires_at=session.token.expires_at)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return {"status": "logged out"}


@router.get("/me", summary="Who is logged in.", responses=ADMIN_ONLY)
def me(admin: AdminDep) -> dict[str, Any]:
    return {"id": admin.id, "username": admin.username}
