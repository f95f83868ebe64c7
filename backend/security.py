"""What the app checks and sends for every request, whatever the route: the client's address
(trusting ``X-Forwarded-For`` only from configured proxies), whether a request comes from the
app's own pages (its ``Origin``, or ``Referer``), and the security headers of every response."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: list[str]) -> list[Network]:
    """Addresses or networks (``10.0.0.0/8``, ``::1``); a ValueError names one that is neither."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values]


def _is_in(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request, trusted_proxies: list[Network]) -> str:
    """The address a request came from, for per-address limits.

    The socket's peer, unless that peer is one of ``trusted_proxies``: then ``X-Forwarded-For``
    is read from the right (each proxy appends the address it saw), skipping trusted proxies, and
    the first other address is the client's. Anything left of it was written by the client and
    is ignored, so a client cannot pick its own address with a new header per try.
    """
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _is_in(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_in(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def from_this_site(request: Request) -> bool:
    """Whether a request's ``Origin`` (or, without one, its ``Referer``) is this site: its host
    and port are the request's ``Host``. Browsers send an Origin with every cross-site POST, so a
    page elsewhere cannot use the admin's cookie; a request with neither header came from no
    page (curl, scripts) and passes. ``Origin: null`` (sandboxed frames, some redirects) fails."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    host = request.headers.get("host", "")
    return bool(host) and urlsplit(source).netloc.lower() == host.lower()


# The pages are plain files: scripts and styles from the site itself (no inline script, style or
# handler anywhere, a test checks), pictures also from data: (the faces) and blob: (downloads,
# the morph GIF), which may also be read back (blob: names only data the page itself holds; the
# browser tests read the pictures that way); nothing may frame them.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; connect-src 'self' blob:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages start Swagger UI / ReDoc from an inline script and load them
# from jsdelivr: only these pages (which hold no data of their own) get that.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
               "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
               "https://cdn.redoc.ly; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class SecurityHeaders:
    """Adds the Content-Security-Policy (frame-ancestors 'none' included), nosniff, a same-origin
    Referrer-Policy and X-Frame-Options to every response, pages and API alike (an ASGI
    middleware, so streamed responses get them too)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope.get("path") in DOCS_PATHS else PAGE_POLICY
        extra = [(b"content-security-policy", policy.encode()), (b"x-content-type-options", b"nosniff"),
                 (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in extra if k not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
