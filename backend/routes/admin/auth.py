"""Logging in and out: a session cookie for the dashboard, the same token for Bearer use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from backend import auth
from backend.db import crud
from backend.deps import AdminDep, DbDep, SettingsDep
from backend.routes.admin import ADMIN_ONLY

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    username: str
    token: str
    expires_in: int


@router.post("/login", summary="Log in; sets the session cookie and returns the same token for Bearer use.",
             responses={401: {"description": "Wrong user name or password."},
                        429: {"description": "Too many login attempts from this address (see `Retry-After`)."}})
def login(body: LoginIn, request: Request, response: Response, db: DbDep, settings: SettingsDep) -> LoginOut:
    client = request.client.host if request.client else "unknown"
    allowed, reset = request.app.state.login_limiter.hit(f"login:{client}", settings.login_attempts_per_minute)
    if not allowed:
        raise HTTPException(status_code=429, detail="too many login attempts; wait a minute",
                            headers={"Retry-After": str(reset)})
    admin = crud.authenticate_admin(db, username=body.username, password=body.password)
    if admin is None:
        raise HTTPException(status_code=401, detail="wrong user name or password")
    token = auth.make_session_token(request.app.state.secret, admin.id, settings.session_ttl_s)
    response.set_cookie(auth.SESSION_COOKIE, token, max_age=settings.session_ttl_s, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return LoginOut(username=admin.username, token=token, expires_in=settings.session_ttl_s)


@router.post("/logout", summary="End the session (clears the cookie).")
def logout(response: Response) -> dict[str, str]:
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return {"status": "logged out"}


@router.get("/me", summary="Who is logged in.", responses=ADMIN_ONLY)
def me(admin: AdminDep) -> dict[str, Any]:
    return {"id": admin.id, "username": admin.username}
