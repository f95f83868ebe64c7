"""Telling the API that a random-face request is made, and waiting for it.

The sampling task, once crud has marked a request done or failed, publishes the request's id on
Redis (``settings.redis_url``). The route that waits for it subscribes first and then looks at
the row once, so a picture made before the subscription is not missed, and otherwise sleeps
until the message comes or ``sample_wait_s`` runs out. With the embedded SQLite broker there is
no Redis: the route looks at the row with a growing interval instead (a quick picture is seen
quickly, a slow one costs few reads).
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis
import redis.asyncio
from sqlalchemy.orm import Session

from backend.db import crud
from backend.db.models import SampleRequest

log = logging.getLogger(__name__)

FINISHED = ("done", "failed")
#: First and longest pause between two looks at the row when there is no Redis, in seconds.
FIRST_LOOK_S, LONGEST_LOOK_S = 0.05, 1.0


def channel(request_id: int) -> str:
    """(Pub/sub is server-wide: a message for another deployment's request of the same id only
    makes the waiting route look at its row once more.)"""
    return f"d2a:sample-finished:{request_id}"


def publish_sample_finished(redis_url: str, request_id: int) -> None:
    """Tell the waiting route, if any, that the request is done or failed (nothing without Redis)."""
    if not redis_url:
        return
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        try:
            client.publish(channel(request_id), "finished")
        finally:
            client.close()
    except redis.RedisError as exc:  # the waiting route gives up after sample_wait_s and answers 202
        log.warning("could not announce sample request %d: %s", request_id, exc)


def _look(db: Session, request_id: int) -> SampleRequest:
    req = crud.get_sample_request(db, request_id=request_id)
    db.close()  # the connection goes back to the pool while the route waits; the row stays readable
    return req


async def _poll(db: Session, request_id: int, deadline: float) -> SampleRequest:
    pause = FIRST_LOOK_S
    while (req := _look(db, request_id)).status not in FINISHED and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_LOOK_S)
    return req


async def _listen(db: Session, request_id: int, deadline: float, redis_url: str) -> SampleRequest:
    client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel(request_id))
        req = _look(db, request_id)
        while req.status not in FINISHED and (left := deadline - time.monotonic()) > 0:
            # (None on a timeout, and also for the subscription's own confirmation: look again then)
            if await pubsub.get_message(ignore_subscribe_messages=True, timeout=left) is not None:
                req = _look(db, request_id)
        return req
    finally:
        await pubsub.aclose()
        await client.aclose()


async def wait_for_sample(db: Session, *, request_id: int, timeout_s: float, redis_url: str = "") -> SampleRequest:
    """The request's row once it is done or failed, or as it is after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    if redis_url:
        try:
            return await _listen(db, request_id, deadline, redis_url)
        except redis.RedisError as exc:
            log.warning("Redis is not answering (%s); looking at sample request %d instead", exc, request_id)
    return await _poll(db, request_id, deadline)
