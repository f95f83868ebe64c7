"""Jobs on the real queue: the API and Celery workers run as real processes, over this machine's
Redis (and over the embedded SQLite broker that `make run` uses when no Redis is configured).

- a tiny training job submitted through the API reaches `succeeded` and registers a model version;
- a worker killed with SIGKILL mid-job: a new worker takes the job over and it resumes from its
  last checkpoint, then succeeds;
- cancelling a running job stops it within a few seconds.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from procs import api_client, env_for, start_api, start_worker, wait_for

REDIS = "redis://127.0.0.1:6379"
ADMIN = ("admin", "correct horse battery")

TINY = {"image_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1, "batch_size": 1, "anime_limit": 32,
        "mix": {"quickdraw": 0.5, "synthetic": 0.5, "edges": 0.0}, "eval_count": 4, "log_every": 1}


def _redis_db() -> int | None:
    """A free Redis database number for this test session (None: Redis is not reachable)."""
    try:
        client = redis.Redis.from_url(REDIS, socket_timeout=2)
        client.ping()
    except redis.RedisError:
        return None
    for db in range(15, 1, -1):
        c = redis.Redis.from_url(f"{REDIS}/{db}", socket_timeout=2)
        if c.dbsize() == 0 and c.set("d2a:test-lock", uuid.uuid4().hex, nx=True, ex=600):
            return db
    return None


@pytest.fixture(scope="module", params=["redis", "embedded"])
def api(request, tmp_path_factory):
    """One API process per broker kind, with its own state folder: (env, client, state folder)."""
    state = tmp_path_factory.mktemp(f"queue-{request.param}")
    extra = {"D2A_ADMIN_USERNAME": ADMIN[0], "D2A_ADMIN_PASSWORD": ADMIN[1]}
    db = None
    if request.param == "redis":
        db = _redis_db()
        if db is None:
            pytest.skip("Redis at 127.0.0.1:6379 is not reachable (.ci/run starts it)")
        extra["REDIS_URL"] = f"{REDIS}/{db}"
    env = env_for(state, **extra)
    proc, base = start_api(env, state / "api.log")
    client = api_client(base)
    try:
        token = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield env, client, state
    finally:
        client.close()
        proc.stop()
        if db is not None:
            redis.Redis.from_url(f"{REDIS}/{db}").flushdb()


@pytest.fixture
def deployment(api):
    """The API, and a function that starts workers (all stopped when the test ends)."""
    env, client, state = api
    workers = []

    def worker(name: str):
        w = start_worker(env, state / f"{name}-{uuid.uuid4().hex[:6]}.log", name)
        workers.append(w)
        return w

    try:
        yield env, client, worker, None
    finally:
        for w in workers:
            w.discard()


def _job(client: httpx.Client, job_id: int) -> dict:
    r = client.get(f"/api/v1/admin/jobs/{job_id}")
    r.raise_for_status()
    return r.json()


def _submit(client: httpx.Client, **overrides) -> dict:
    r = client.post("/api/v1/admin/jobs", json={"kind": "cyclegan", "config": {**TINY, **overrides}})
    assert r.status_code == 201, r.text
    return r.json()


def test_job_runs_to_a_model_version(deployment):
    env, client, worker, api = deployment
    job = _submit(client, steps=4, decay_steps=2, checkpoint_every=2, sample_every=2)
    assert job["status"] == "queued"
    w = worker("w1")
    done = wait_for(lambda: (j := _job(client, job["id"]))["status"] in ("succeeded", "failed") and j,
                    timeout=180, what="the job to finish", on_timeout=w.tail)
    assert done["status"] == "succeeded", done["error"] or done["log_tail"]
    assert done["progress"] == pytest.approx(1.0) and done["step"] == 4
    assert done["metrics_history"] and {"G", "D_A", "cycle"} <= set(done["metrics_history"][-1])
    assert done["has_sample"]
    sample = client.get(f"/api/v1/admin/jobs/{job['id']}/sample")
    assert sample.status_code == 200 and sample.content[:8] == b"\x89PNG\r\n\x1a\n"
    versions = client.get("/api/v1/admin/models").json()
    mine = [v for v in versions if v["job_id"] == job["id"]]
    assert len(mine) == 1 and mine[0]["name"] == "sketch2anime" and mine[0]["members"] == 1
    # the queue page saw the worker
    queue = client.get("/api/v1/admin/queue").json()
    assert any(q["name"].startswith("w1@") for q in queue["workers"]), queue
    assert queue["counts"]["succeeded"] >= 1

    # promote it: the API serves it without a restart
    r = client.post(f"/api/v1/admin/models/{mine[0]['id']}/promote")
    assert r.status_code == 200, r.text
    ready = wait_for(lambda: (b := httpx.get(str(client.base_url) + "/readyz").json())["models"].get("sketch2anime")
                     == f"job{job['id']}" and b, timeout=10, what="the promoted version to serve")
    assert ready["model"] == "doodle_encoder"  # the default drawing model is left as it was


def test_a_line_art_job_runs_to_a_model_that_serves_its_mode(deployment):
    """A kind other than CycleGAN goes the same way: the worker trains it through the registry,
    its export registers under the kind's model name, and promoting it serves it by that name."""
    env, client, worker, api = deployment
    config = {"image_size": 32, "raster_size": 32, "ngf": 8, "ndf": 8, "unet_depth": 3, "batch_size": 1,
              "anime_limit": 32, "eval_count": 4, "log_every": 1, "steps": 3, "decay_steps": 1,
              "checkpoint_every": 1, "sample_every": 3}
    r = client.post("/api/v1/admin/jobs", json={"kind": "lineart", "config": config})
    assert r.status_code == 201, r.text
    job = r.json()
    w = worker("w-lineart")
    done = wait_for(lambda: (j := _job(client, job["id"]))["status"] in ("succeeded", "failed") and j,
                    timeout=180, what="the line-art job to finish", on_timeout=w.tail)
    assert done["status"] == "succeeded", done["error"] or done["log_tail"]
    assert {"G", "l1", "D"} <= set(done["metrics_history"][-1])
    (mine,) = [v for v in client.get("/api/v1/admin/models").json() if v["job_id"] == job["id"]]
    assert mine["name"] == "lineart" and mine["kind"] == "lineart-sketch2anime" and mine["members"] == 1
    assert client.post(f"/api/v1/admin/models/{mine['id']}/promote").status_code == 200
    wait_for(lambda: httpx.get(str(client.base_url) + "/readyz").json()["models"].get("lineart") == f"job{job['id']}",
             timeout=10, what="the promoted line-art version to serve")
    listed = {m["name"]: m for m in httpx.get(str(client.base_url) + "/api/v1/models").json()}
    assert listed["lineart"]["pen"] == "line_art" and listed["lineart"]["raster_size"] == 32


def test_killed_worker_job_resumes_from_checkpoint(deployment):
    env, client, worker, api = deployment
    job = _submit(client, steps=40, decay_steps=10, checkpoint_every=5, sample_every=20)
    w1 = worker("w1")
    wait_for(lambda: _job(client, job["id"])["step"] >= 12, timeout=180, what="the job to pass step 12",
             interval=0.2, on_timeout=w1.tail)
    w1.kill9()
    killed_at = _job(client, job["id"])["step"]
    assert killed_at < 40, "the job finished before the worker could be killed; make it longer"
    w2 = worker("w2")
    done = wait_for(lambda: (j := _job(client, job["id"]))["status"] in ("succeeded", "failed") and j,
                    timeout=240, what="the job to finish on the second worker", on_timeout=w2.tail)
    assert done["status"] == "succeeded", done["error"] or done["log_tail"]
    assert done["attempts"] == 2
    resumed = [line for line in done["log_tail"].splitlines() if "resumed from the checkpoint at step" in line]
    assert resumed, done["log_tail"]
    step = int(resumed[-1].rsplit(" ", 1)[-1])
    # at most one checkpoint interval lost
    assert killed_at - 5 <= step <= killed_at and step % 5 == 0, (killed_at, step)


def test_cancel_stops_a_running_job_quickly(deployment):
    import time

    env, client, worker, api = deployment
    job = _submit(client, steps=5000, decay_steps=0, checkpoint_every=50, sample_every=1000)
    w = worker("w1")
    wait_for(lambda: _job(client, job["id"])["step"] >= 3, timeout=180, what="the job to start", on_timeout=w.tail)
    t0 = time.monotonic()
    r = client.post(f"/api/v1/admin/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    done = wait_for(lambda: (j := _job(client, job["id"]))["status"] != "running" and j, timeout=30,
                    what="the job to stop", interval=0.1, on_timeout=w.tail)
    assert done["status"] == "cancelled"
    assert time.monotonic() - t0 < 10, "cancel took too long"
    # one click retries it: queued again, then running from its checkpoint
    r = client.post(f"/api/v1/admin/jobs/{job['id']}/retry")
    assert r.status_code == 200 and r.json()["status"] == "queued"
    wait_for(lambda: _job(client, job["id"])["status"] == "running", timeout=60, what="the retried job to run")
    client.post(f"/api/v1/admin/jobs/{job['id']}/cancel")
    wait_for(lambda: _job(client, job["id"])["status"] == "cancelled", timeout=30, what="the second cancel")


def test_failed_job_says_why_in_plain_words(deployment):
    import io
    import zipfile
    from pathlib import Path

    from PIL import Image

    env, client, worker, api = deployment
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            img = io.BytesIO()
            Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(img, "PNG")
            zf.writestr(f"{i}.png", img.getvalue())
    r = client.post("/api/v1/admin/datasets", files={"file": ("faces.zip", buf.getvalue())},
                    data={"name": f"tiny faces {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    # the data set's file disappears before the job runs (a disk was cleaned, say)
    folders = sorted(Path(env["D2A_DATASETS_DIR"]).glob("upload-*/data.zip"), key=lambda p: p.stat().st_mtime)
    folders[-1].unlink()
    r = client.post("/api/v1/admin/jobs", json={"kind": "cyclegan", "dataset_id": dataset_id,
                                                "config": {**TINY, "steps": 2, "decay_steps": 1}})
    assert r.status_code == 201, r.text
    job = r.json()
    w = worker("w1")
    done = wait_for(lambda: (j := _job(client, job["id"]))["status"] in ("succeeded", "failed") and j,
                    timeout=120, what="the job to end", on_timeout=w.tail)
    assert done["status"] == "failed"
    assert done["error"].startswith("Training data could not be read"), done["error"]
    assert "Traceback" not in done["error"]


def test_the_embedded_broker_hands_out_a_task_within_a_tenth_of_a_second(tmp_path):
    """kombu's SQLite transport polls once a second by default: most of a random face's wait
    through the embedded broker. Ours polls every 0.1 s."""
    from backend.jobs.celery_app import make_celery
    from backend.settings import Settings

    app = make_celery(Settings(redis_url="", broker_db=tmp_path / "broker.db"))
    with app.connection_for_write() as conn:
        assert conn.transport.polling_interval <= 0.1
        assert "sqlalchemy" in type(conn.transport).__mro__[1].__module__
