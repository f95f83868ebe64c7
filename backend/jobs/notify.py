"""Waiting for a random-face request to be made, in one place.

The route holds its request for up to ``sample_wait_s``; this looks at the request's row with a
growing interval (a quick picture is seen quickly, a slow one costs few reads) and hands the
database connection back between looks.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.orm import Session

from backend.db import crud
from backend.db.models import SampleRequest

FINISHED = ("done", "failed")
#: First and longest pause between two looks at the row, in seconds.
FIRST_LOOK_S, LONGEST_LOOK_S = 0.05, 1.0


def _look(db: Session, request_id: int) -> SampleRequest:
    req = crud.get_sample_request(db, request_id=request_id)
    db.close()  # the connection goes back to the pool while the route waits; the row stays readable
    return req


async def wait_for_sample(db: Session, *, request_id: int, timeout_s: float, redis_url: str = "") -> SampleRequest:
    """The request's row once it is done or failed, or as it is after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = FIRST_LOOK_S
    while (req := _look(db, request_id)).status not in FINISHED and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_LOOK_S)
    return req
