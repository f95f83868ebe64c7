"""The rate limiter: counted in Redis when it answers, in this process when it does not (never an
error for the request), and back in Redis once it answers again."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from backend.ratelimit import RateLimiter

REDIS = "redis://127.0.0.1:6379"
CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _free_db() -> int:
    try:
        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    for db in range(14, 1, -1):
        c = redis.Redis.from_url(f"{REDIS}/{db}", socket_timeout=2)
        if c.dbsize() == 0 and c.set("d2a:test-lock", uuid.uuid4().hex, nx=True, ex=600):
            return db
    pytest.skip("no free Redis database")


def test_without_redis_the_limits_hold_in_process_and_it_is_logged_once(caplog):
    limiter = RateLimiter(CLOSED)
    with caplog.at_level(logging.WARNING, logger="backend.ratelimit"):
        got = [limiter.hit("k", 3)[0] for _ in range(5)]
    assert got == [True, True, True, False, False]
    assert limiter.count("k") == 5 and limiter.count("other") == 0
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


def test_counting_goes_back_to_redis_when_it_returns(monkeypatch, caplog):
    db = _free_db()
    url = f"{REDIS}/{db}"
    try:
        limiter = RateLimiter(url, retry_s=0.0)
        real_pipeline = limiter._redis.pipeline

        def down(*args, **kwargs):
            raise redis.ConnectionError("Redis went away")

        monkeypatch.setattr(limiter._redis, "pipeline", down)
        with caplog.at_level(logging.INFO, logger="backend.ratelimit"):
            assert limiter.hit("back", 10)[0] and limiter.hit("back", 10)[0]  # counted here meanwhile
            monkeypatch.setattr(limiter._redis, "pipeline", real_pipeline)
            assert limiter.hit("back", 10)[0]
        assert limiter.count("back") == 1  # Redis's own count: it is used again
        assert [k.decode() for k in redis.Redis.from_url(url).keys("d2a:rate:back:*")]
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in messages) == 1 and sum("back" in m and "Redis" in m for m in messages) == 1
    finally:
        redis.Redis.from_url(url).flushdb()
