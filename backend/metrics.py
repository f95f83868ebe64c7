"""Prometheus metrics of one app, served at ``GET /metrics`` (text exposition format).

- ``d2a_http_request_duration_seconds{method, route, status}``: a histogram of every request's
  time, labelled with the route's template (``/api/v1/admin/jobs/{job_id}``, never the raw path,
  so ids do not make new series); requests that match no route are labelled ``unmatched``;
- ``d2a_model_inference_seconds{model}``: the drawing models' time for a drawing (rasterize,
  model, every asked variation), without the PNG encoding;
- ``d2a_rate_limited_total{route}``: requests refused with 429;
- ``d2a_jobs{status}`` and ``d2a_queue_depth{queue}``: read from the database when scraped
  (jobs by state; jobs and random-face requests waiting for a worker). Without a database they
  are left out of the scrape rather than reported as zero.

Each app has its own registry, so apps made side by side (tests) do not share counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from backend.db import crud
from backend.db.models import SampleRequest

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, sessions: Callable[[], sessionmaker | None]):
        self.registry = CollectorRegistry()
        self.requests = Histogram("d2a_http_request_duration_seconds", "Time to answer a request, by route template.",
                                  ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("d2a_model_inference_seconds", "A drawing model's time for one drawing.",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rate_limited = Counter("d2a_rate_limited", "Requests refused with 429.", ["route"],
                                    registry=self.registry)
        self.registry.register(_QueueCollector(sessions))


class _QueueCollector:
    """Jobs by state and what waits for a worker, read from the database at each scrape."""

    def __init__(self, sessions: Callable[[], sessionmaker | None]):
        self.sessions = sessions

    def describe(self) -> list:
        return []  # collected lazily: the database may not be there when the registry is made

    def collect(self) -> Iterator[GaugeMetricFamily]:
        Session = self.sessions()
        if Session is None:
            return
        try:
            with Session() as s:
                jobs = crud.count_jobs_by_status(s)
                samples = s.scalar(select(func.count()).select_from(SampleRequest)
                                   .where(SampleRequest.status == "queued")) or 0
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database did
            log.warning("metrics: could not read the job counts: %s", exc)
            return
        by_state = GaugeMetricFamily("d2a_jobs", "Training jobs by state.", labels=["status"])
        for status, n in jobs.items():
            by_state.add_metric([status], n)
        yield by_state
        depth = GaugeMetricFamily("d2a_queue_depth", "Work waiting for a worker, by queue.", labels=["queue"])
        depth.add_metric(["training"], jobs.get("queued", 0))
        depth.add_metric(["sampling"], samples)
        yield depth


class RequestTimer:
    """ASGI middleware: times every HTTP request into ``metrics.requests`` under its route's
    template (set by the router in the scope), and counts 429s."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def sent(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).observe(time.perf_counter() - t0)
            if status == 429:
                self.metrics.rate_limited.labels(route).inc()
