"""Schemathesis over the app's whole OpenAPI schema: no operation answers 5xx, whatever it is sent.

The app runs in-process (ASGI) on a scratch SQLite database and scratch folders, with the
project's bundled models, logged in as an admin and carrying an API key, so the admin routes and
the keyed drawing routes are reached past their authentication. Every operation gets a bounded
number of valid requests (schema-conforming) and invalid ones (negative mode: wrong types, values
out of range, missing fields), and each answer is checked:

- ``not_a_server_error``: no 5xx at all (the 503s the app sends on purpose, for a missing database,
  model or queue, cannot happen here: all of them are up, the queue stubbed);
- ``response_schema_conformance`` and ``status_code_conformance``: what the route sends, body and
  status code, is what the schema it publishes says.

Routes that start real work (a training job, an evaluation, a random-face picture) are fuzzed
too, for their validation, but nothing reaches a worker: sending to the queue is replaced by a
recorder, so a queued job or sample stays a row in the scratch database, and a face request
answers 202 at once (``sample_wait_s=0``) instead of waiting for a worker that is not there.

Besides ids made up by the fuzzer (mostly 404s), every route with an id in its path is fuzzed again
on a resource that exists: a data set uploaded through the API, a queued job, a model version (a
copy of the bundled CycleGAN), a face request and a spare API key, so promote, ensemble, preview,
cancel and retry reach their real work, not only their 404.

The run is bounded to fit CI (well under a minute on a 2-core CPU): ``EXAMPLES`` requests per
operation and mode, no shrinking, no example database, derandomized so a run is repeatable. The
number of requests made and operations covered is printed (``-s``) and asserted from below.
``FUZZ_EXAMPLES=200`` makes a longer run by hand.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e .[dev])")
from hypothesis import HealthCheck, Phase, given, settings as hsettings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.python import asgi  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance  # noqa: E402

from backend.app import create_app  # noqa: E402
from backend.db import crud  # noqa: E402
from backend.jobs import service  # noqa: E402
from backend.settings import PROJECT_ROOT, Settings  # noqa: E402

ADMIN = ("fuzz-admin", "a long enough fuzz password")
#: Requests per operation and generation mode (valid, then invalid).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 8))
#: Run last, in this order: revoking API keys (the fuzzer's own key, which it could revoke, serves
#: every other route), then logging out (which revokes the fuzzer's admin token).
LAST = ("DELETE /api/v1/admin/api-keys/{key_id}", "POST /api/v1/admin/logout")
CHECKS = (not_a_server_error, response_schema_conformance, status_code_conformance)


@dataclass
class FuzzRun:
    """What one run did: requests per operation, answers per status code, and every failure."""

    operations: list[str]
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def fuzz(schema, headers: dict[str, str], *, examples: int = EXAMPLES, last: tuple[str, ...] = (),
         ids: dict[str, int] | None = None, checks: tuple = CHECKS) -> FuzzRun:
    """Send ``examples`` valid and ``examples`` invalid requests to every operation of ``schema``
    (the labels in ``last`` at the end) and check each answer (by default: no 5xx, and the status
    code and body are the ones the schema publishes). An operation with a path parameter named in
    ``ids`` is fuzzed once more with that parameter bound to the id, so it reaches a resource that
    exists. A failing operation is recorded, not raised, so one run reports them all."""
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: last.index(op.label) + 1 if op.label in last else 0)
    run = FuzzRun(operations=[op.label for op in operations])
    for op in operations:
        bound = {name: (ids or {})[name] for name in re.findall(r"{(\w+)}", op.path) if name in (ids or {})}
        for path_parameters in ([None, bound] if bound else [None]):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                @hsettings(max_examples=examples, deadline=None, database=None, derandomize=True,
                           phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
                @given(case=op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
                def one(case) -> None:
                    response = case.call(headers=headers)
                    run.requests[op.label] += 1
                    run.statuses[response.status_code] += 1
                    case.validate_response(response, checks=list(checks))

                try:
                    one()
                except Unsatisfiable:  # nothing to make invalid: no parameters or body (or only a bound id)
                    pass
                except (Exception, FailureGroup) as exc:  # noqa: BLE001 - collect every failure, report them all
                    where = f", {path_parameters}" if path_parameters else ""
                    run.failures.append(f"{op.label} ({mode.value}{where}): {exc}")
    return run


def seed(client, app, base) -> tuple[dict[str, str], dict[str, int]]:
    """Log in as the settings' admin, make the fuzzer's API key, and one resource of every kind a
    path names; returns the headers to send and the resources' ids by path parameter name."""
    r = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    admin = {"Authorization": f"Bearer {r.json()['token']}"}
    keys = [client.post("/api/v1/admin/api-keys", json={"name": name, "rate_limit_per_minute": 100_000}, headers=admin)
            for name in ("fuzzer", "spare")]
    assert [k.status_code for k in keys] == [201, 201], [k.text for k in keys]
    headers = {**admin, "X-API-Key": keys[0].json()["key"]}

    npy = io.BytesIO()
    np.save(npy, np.random.default_rng(0).integers(0, 256, (8, 784), dtype=np.uint8))
    dataset = client.post("/api/v1/admin/datasets", files={"file": ("fuzz.npy", npy.getvalue())},
                          data={"name": "fuzz-set"}, headers=admin)
    job = client.post("/api/v1/admin/jobs", json={"kind": "cyclegan", "config": {}}, headers=admin)
    face = client.post("/api/v1/faces/random", json={"seeds": [1, 2]}, headers=headers)
    made = (dataset, job, face)
    assert [r.status_code for r in made] == [201, 201, 202], [r.text for r in made]

    folder = base / "versions" / "fuzz"
    shutil.copytree(PROJECT_ROOT / "models" / "sketch2anime", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    with app.state.Session() as session:
        version = crud.create_model_version(session, name="sketch2anime", version="fuzz", kind="cyclegan",
                                            manifest=manifest, folder=str(folder))
    return headers, {"dataset_id": dataset.json()["id"], "job_id": job.json()["id"], "version_id": version.id,
                     "request_id": face.json()["request_id"], "key_id": keys[1].json()["id"]}


@pytest.fixture
def fuzz_app(tmp_path, monkeypatch):
    """The app on scratch state, its queue replaced by a recorder of the tasks it would send."""
    sent: list[tuple[str, list]] = []

    def record(task: str, args: list, queue: str) -> str:
        sent.append((task, args))
        return str(uuid.uuid4())

    monkeypatch.setattr(service, "_send", record)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'fuzz.db'}", models_dir=PROJECT_ROOT / "models",
        data_dir=tmp_path / "no-data", datasets_dir=tmp_path / "datasets", runs_dir=tmp_path / "runs",
        job_models_dir=tmp_path / "job-models", samples_dir=tmp_path / "samples", broker_db=tmp_path / "broker.db",
        secret_key="fuzz-secret-not-for-production", redis_url="", model_poll_s=0, sample_wait_s=0,
        admin_username=ADMIN[0], admin_password=ADMIN[1], login_attempts_per_minute=100_000,
        upload_max_bytes=64 * 1024, upload_max_unpacked_bytes=1024 * 1024, upload_max_files=20)
    app = create_app(settings)
    try:
        yield app, sent
    finally:
        asgi.shutdown_lifespans()  # the in-process app schemathesis started: close its database


def test_fuzz_every_operation_answers_without_a_server_error(fuzz_app, tmp_path):
    app, sent = fuzz_app
    started = time.monotonic()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # also starts the app's lifespan, once
    with asgi.get_client(app) as client:
        headers, ids = seed(client, app, tmp_path)

    run = fuzz(schema, headers, last=LAST, ids=ids)
    print(f"\nschemathesis: {run.total} requests over {len(run.requests)} of {len(run.operations)} operations "
          f"in {time.monotonic() - started:.1f} s; statuses {dict(sorted(run.statuses.items()))}; "
          f"tasks the queue would have run: {len(sent)}")
    assert not run.failures, "\n\n".join(run.failures)
    assert sorted(run.requests) == sorted(run.operations) and len(run.operations) >= 30, run.requests
    assert run.total >= 10 * len(run.operations)
    # It got past validation and was refused by it, and past authentication (the admin's and the key's).
    assert {200, 201, 202, 404, 422} <= set(run.statuses)
    assert sent, "no route that queues work was reached"


class Thing(BaseModel):
    """The control app's published answer."""

    count: int


def test_the_fuzzer_catches_a_server_error_and_a_body_off_its_schema():
    """The control: a tiny app with one route that fails on some input and one that sends what it
    does not publish; the same fuzzing reports both, so the test above can fail."""
    control = FastAPI()

    @control.get("/boom")
    def boom(n: int = Query(ge=0, le=100)) -> Thing:
        return JSONResponse({"detail": "oops"}, status_code=500) if n > 3 else Thing(count=n)

    @control.get("/shape", response_model=Thing)
    def shape():
        return JSONResponse({"count": "not a number"})

    try:
        run = fuzz(schemathesis.openapi.from_asgi("/openapi.json", control), {}, examples=10)
    finally:
        asgi.shutdown_lifespans()
    failed = "\n".join(run.failures)
    assert "GET /boom (positive)" in failed and "Server error" in failed, failed
    assert "GET /shape (positive)" in failed and "schema" in failed.lower(), failed
