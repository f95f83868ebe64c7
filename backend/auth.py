"""Admin sessions: the server's secret key, and the signed session tokens.

Sessions: after a login, the admin holds a token ``<user_id>.<session id>.<expiry>.<hmac>`` signed
with the server's secret key (HMAC-SHA256), in an HttpOnly cookie (the dashboard) or a Bearer
header. Logout revokes the session id in the database, so a copied token dies with the session.
The secret comes from settings, or is generated once and kept in ``var/secret_key`` (0600).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from backend.settings import Settings

SESSION_COOKIE = "d2a_session"


def secret_key(settings: Settings) -> bytes:
    """The settings' key, or the one kept in ``settings.secret_key_file`` (made on first use).

    The file is written under a unique temporary name with mode 0600 from its creation, then
    linked into place, which fails if another process got there first: every process that
    starts at once ends up reading the same key, and no reader ever sees a half-written file.
    """
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.secret_key_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"the secret key file {path} is empty; delete it to have a new key made")
    return key.encode()


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SessionToken:
    """What a valid token says: whose session, which one (logout revokes it by this id), until when."""

    user_id: int
    sid: str
    expires_at: dt.datetime


def make_session_token(key: bytes, user_id: int, ttl_s: int) -> str:
    payload = f"{user_id}.{secrets.token_hex(16)}.{int(time.time()) + ttl_s}"
    return f"{payload}.{_sign(key, payload)}"


def read_session_token(key: bytes, token: str) -> SessionToken | None:
    """What a well-signed, unexpired token says; None otherwise. Whether its session was revoked
    is the database's to say (``crud.session_revoked``)."""
    try:
        user, sid, expiry, sig = token.split(".")
        if not hmac.compare_digest(sig, _sign(key, f"{user}.{sid}.{expiry}")):
            return None
        if int(expiry) < time.time():
            return None
        return SessionToken(int(user), sid, dt.datetime.fromtimestamp(int(expiry), dt.timezone.utc))
    except (ValueError, AttributeError, OverflowError):
        return None
