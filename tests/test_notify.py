"""Waiting for a random-face request: on Redis pub/sub when there is Redis (the row is looked at
once after subscribing, so a picture made before is not missed), else by looking at the row with
a growing interval. The route's 202-after-the-wait is tested end to end in test_faces."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
import redis

from backend.db import crud
from backend.db.session import make_engine, make_sessionmaker, upgrade_database
from backend.jobs import notify

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def Session(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def redis_url(monkeypatch) -> str:
    try:
        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable (.ci/run starts it)")
    # channels of this test only (pub/sub is server-wide, and other suites may be running)
    token = uuid.uuid4().hex
    channel = notify.channel
    monkeypatch.setattr(notify, "channel", lambda request_id: f"{token}:{channel(request_id)}")
    return REDIS


@pytest.fixture
def looks(monkeypatch) -> list[int]:
    """Every look the waiting takes at the row."""
    seen: list[int] = []
    look = notify._look
    monkeypatch.setattr(notify, "_look", lambda db, request_id: seen.append(request_id) or look(db, request_id))
    return seen


def _request(Session) -> int:
    with Session() as s:
        return crud.create_sample_request(s, kind="faces", params={}, model_folder="m", cache_key=uuid.uuid4().hex).id


def _finish_later(Session, request_id: int, redis_url: str, after_s: float) -> threading.Thread:
    """What the sampling task does: mark the request done, then announce it."""
    def work():
        time.sleep(after_s)
        with Session() as s:
            crud.start_sample_request(s, request_id=request_id)
            crud.finish_sample_request(s, request_id=request_id, result_path="x.png", media_type="image/png")
        notify.publish_sample_finished(redis_url, request_id)

    t = threading.Thread(target=work)
    t.start()
    return t


def _wait(Session, request_id: int, timeout_s: float, redis_url: str):
    async def go():
        with Session() as db:
            t0 = time.monotonic()
            req = await notify.wait_for_sample(db, request_id=request_id, timeout_s=timeout_s, redis_url=redis_url)
            return req, time.monotonic() - t0

    return asyncio.run(go())


def test_on_redis_the_route_sleeps_until_the_message(Session, redis_url, looks):
    request_id = _request(Session)
    worker = _finish_later(Session, request_id, redis_url, after_s=0.8)
    req, waited = _wait(Session, request_id, 10, redis_url)
    worker.join()
    assert req.status == "done" and 0.7 < waited < 5
    assert len(looks) == 2  # once after subscribing, once on the message: no polling


def test_on_redis_a_picture_made_before_the_subscription_is_not_missed(Session, redis_url, looks):
    request_id = _request(Session)
    _finish_later(Session, request_id, redis_url, after_s=0).join()  # done and announced: nobody listened
    req, waited = _wait(Session, request_id, 10, redis_url)
    assert req.status == "done" and waited < 2 and len(looks) == 1


def test_on_redis_no_message_is_the_timeout(Session, redis_url, looks):
    request_id = _request(Session)
    req, waited = _wait(Session, request_id, 0.5, redis_url)
    assert req.status == "queued" and 0.45 < waited < 3 and len(looks) == 1


def test_without_redis_the_row_is_looked_at_with_a_growing_interval(Session, looks):
    request_id = _request(Session)
    worker = _finish_later(Session, request_id, "", after_s=1.5)
    req, waited = _wait(Session, request_id, 10, "")
    worker.join()
    assert req.status == "done" and 1.4 < waited < 4
    assert len(looks) <= 8  # 0.05, 0.1, 0.2, 0.4, 0.8, ... seconds apart, not every 100 ms
    req, waited = _wait(Session, _request(Session), 0.3, "")
    assert req.status == "queued" and waited < 2


def test_a_redis_that_does_not_answer_falls_back_to_looking(Session, looks):
    request_id = _request(Session)
    req, waited = _wait(Session, request_id, 0.3, "redis://127.0.0.1:1/0")
    assert req.status == "queued" and waited < 5 and len(looks) >= 1
