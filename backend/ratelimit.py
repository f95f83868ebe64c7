"""Requests per key per minute, in fixed one-minute windows.

Counted in Redis when it is configured, so every API process shares the count; in this process
otherwise. When Redis does not answer, the limiter counts in the process instead of failing the
request (a limiter that cannot count must not turn login or an API-key call into a 500): it logs
that once, tries Redis again every ``retry_s`` seconds, and says so when Redis is back. Counts
made meanwhile stay local; a window is a minute, so the two soon agree again.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class RateLimiter:
    """``hit`` counts one request and says whether it is allowed; ``count`` only reads."""

    def __init__(self, redis_url: str = "", *, retry_s: float = 5.0):
        self._redis = None
        self._url = redis_url
        self._redis_errors: tuple[type[BaseException], ...] = ()
        if redis_url:
            import redis

            # Short timeouts: a limiter waits on Redis inside every limited request.
            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._redis_errors = (redis.RedisError, OSError)
        self._retry_s = retry_s
        self._down_since: float | None = None  # when Redis stopped answering; None while it answers
        self._next_try = 0.0
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, key: str, limit: int, cost: int = 1) -> tuple[bool, int]:
        """Count a request for ``key`` (``cost``: as this many requests): (allowed, seconds until
        the window resets)."""
        count = self._count(key, add=cost)
        return count <= limit, 60 - int(time.time() % 60)

    def count(self, key: str) -> int:
        """Requests counted for ``key`` in this window, without counting one more."""
        return self._count(key, add=0)

    def _count(self, key: str, *, add: int) -> int:
        window = int(time.time() // 60)
        if self._redis is not None and time.monotonic() >= self._next_try:
            try:
                count = self._redis_count(f"d2a:rate:{key}:{window}", add)
            except self._redis_errors as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return count
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((key, window), 0) + int(add)
            if add:
                self._counts[(key, window)] = count
        return count

    def _redis_count(self, name: str, add: int) -> int:
        if not add:
            return int(self._redis.get(name) or 0)
        pipe = self._redis.pipeline()
        pipe.incrby(name, add)
        pipe.expire(name, 120)
        return int(pipe.execute()[0])

    def _went_down(self, exc: Exception) -> None:
        self._next_try = time.monotonic() + self._retry_s
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("Redis at %s is unreachable (%s); rate limits are counted in this process until it "
                        "answers again", _safe(self._url), exc)

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.info("Redis at %s is back after %.0f s; rate limits are counted there again",
                     _safe(self._url), time.monotonic() - self._down_since)
            self._down_since = None


def _safe(url: str) -> str:
    """A Redis URL without its password, for logs."""
    head, sep, tail = url.rpartition("@")
    return f"{url.split('://')[0]}://***@{tail}" if sep else url
