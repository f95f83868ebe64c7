"""Two API replicas behind a real load balancer, on one Redis and one PostgreSQL, with two job
workers: docker-compose.yml's topology, as processes on this machine. The balancer is Debian's
haproxy running the project's own deploy/haproxy.cfg; the replicas share a secret key file, the
models folder and the runs folder, as the compose file's volume makes them share. Each test is
state the replicas must share, seen from both sides, so it fails where they do not:

- the anonymous per-minute budget (counted in Redis): N calls pass, spread over both replicas,
  and the next is 429 whichever replica answers; the replicas count the client behind the
  balancer (X-Forwarded-For from a trusted proxy), not the balancer;
- a logout through one replica ends the session on the other (revocations in PostgreSQL, tokens
  signed with the shared key);
- a model version promoted through one replica serves on both within a few of the watcher's polls;
- a training job started through one replica is read through the other, taken by one of the two
  workers (the broker on Redis), and cancelled through the other.

Skipped only when PostgreSQL, Redis or haproxy is missing here (.ci/run starts the servers;
scripts/setup.sh dev installs haproxy).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from procs import ROOT, Proc, env_for, free_port, start_api, start_worker, wait_for

REDIS = "redis://127.0.0.1:6379"
PG_ADMIN_URL = os.environ.get("D2A_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
ADMIN = ("admin", "correct horse battery")
REPLICAS = ("api", "api2")            # the names deploy/haproxy.cfg gives them (X-Replica)
LIMIT = 6                             # anonymous calls a client may make per minute
POLL_S = 0.5                          # the watcher's period
# The test's clients call from their own loopback addresses, so that what the replicas count
# is visibly the client's address and not the balancer's (127.0.0.1, the trusted proxy).
CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3"
FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]
# test_queue's smallest CycleGAN, long enough to be running when it is cancelled
LONG_TINY_JOB = {"image_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1, "batch_size": 1, "anime_limit": 32,
                 "mix": {"quickdraw": 0.5, "synthetic": 0.5, "edges": 0.0}, "eval_count": 4, "log_every": 1,
                 "steps": 5000, "decay_steps": 0, "checkpoint_every": 50, "sample_every": 1000}

#: What the tests measured, printed with -s (docs/replicas.md quotes them).
FIGURES: dict[str, object] = {}


# -- the shared services: a database of its own, a Redis database of its own -----------------

def haproxy_binary() -> str | None:
    """Debian puts haproxy in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("haproxy")
    if found is None and os.access("/usr/sbin/haproxy", os.X_OK):
        found = "/usr/sbin/haproxy"
    return found


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, uniquely named PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    import psycopg

    admin_url = sa.make_url(PG_ADMIN_URL)
    conninfo = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"d2a_test_replicas_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable at {admin_url.render_as_string()}: {exc}")
    try:
        yield admin_url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_database() -> Iterator[str]:
    """An empty Redis database, claimed with a lock key as test_queue claims its own (other
    tests use database 0, and test_queue takes the first free one from 15 down), flushed
    afterwards."""
    try:
        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS} is not reachable (.ci/run starts it): {exc}")
    for db in range(2, 16):
        client = redis.Redis.from_url(f"{REDIS}/{db}", socket_timeout=2)
        if client.dbsize() == 0 and client.set("d2a:test-lock", uuid.uuid4().hex, nx=True, ex=600):
            break
    else:
        pytest.skip("no empty Redis database to use (2 to 15 all hold keys)")
    try:
        yield f"{REDIS}/{db}"
    finally:
        client.flushdb()


# -- the deployment ------------------------------------------------------------------------

@dataclass
class Deployment:
    lb: str                       # the balancer's URL: what clients use
    direct: dict[str, str]        # replica name -> its own URL, past the balancer
    database_url: str
    state: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def logs(self) -> str:
        """The last lines of every process's log, for a failure's message."""
        return "\n".join(f"--- {name} ---\n{p.tail(25)}" for name, p in self.procs.items())


def replica_env(state: Path, models: Path, database_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    """One environment for both replicas and both workers, as compose's shared anchor gives them."""
    return env_for(
        state,
        D2A_DATABASE_URL=database_url, D2A_REDIS_URL=redis_url, REDIS_URL=redis_url,
        # no key in the environment: the first process to start writes one to the shared file
        # and every other reads it, as the compose file's replicas do on their shared volume
        D2A_SECRET_KEY="", D2A_SECRET_KEY_FILE=str(state / "secret_key"),
        D2A_MODELS_DIR=str(models), D2A_DEFAULT_MODEL="sketch2anime", D2A_DRAWING_MODELS='["sketch2anime"]',
        D2A_PROVIDERS=json.dumps(["CPUExecutionProvider"]), D2A_INTRA_OP_THREADS="1", D2A_DATA_DIR=str(data_dir),
        D2A_MODEL_POLL_S=str(POLL_S), D2A_ANONYMOUS_REQUESTS_PER_MINUTE=str(LIMIT), D2A_EMBEDDED_WORKER="0",
        D2A_TRUSTED_PROXIES=json.dumps(["127.0.0.1"]), D2A_LOG_LEVEL="warning",
        D2A_ADMIN_USERNAME=ADMIN[0], D2A_ADMIN_PASSWORD=ADMIN[1],
    )


def start_replicas(env: dict[str, str], state: Path, procs: dict[str, Proc]) -> dict[str, str]:
    """Both replicas at once (each takes seconds to load its models); their URLs by name. A
    replica that started is in ``procs`` even when the other did not, so it is stopped too."""
    with ThreadPoolExecutor(len(REPLICAS)) as pool:
        futures = {name: pool.submit(start_api, env, state / f"{name}.log") for name in REPLICAS}
    urls, errors = {}, []
    for name, future in futures.items():
        try:
            procs[name], urls[name] = future.result()
        except RuntimeError as exc:
            errors.append(f"{name}: {exc}")
    if errors:
        raise RuntimeError("\n".join(errors))
    return urls


def start_balancer(haproxy: str, urls: dict[str, str], state: Path) -> tuple[Proc, str]:
    """haproxy in the foreground with deploy/haproxy.cfg, on a free port, in front of ``urls``."""
    port = free_port()
    env = dict(os.environ, LB_BIND=f"127.0.0.1:{port}",
               LB_API_1=urls["api"].removeprefix("http://"), LB_API_2=urls["api2"].removeprefix("http://"))
    return Proc([haproxy, "-db", "-f", str(HAPROXY_CFG)], env, state / "lb.log"), f"http://127.0.0.1:{port}"


def replicas_behind(lb: str, balancer: Proc, tries: int = 4) -> set[str]:
    """The replicas that answered ``tries`` requests through the balancer."""
    if not balancer.alive():
        raise AssertionError(f"haproxy exited:\n{balancer.tail()}")
    seen = set()
    for _ in range(tries):
        try:
            seen.add(httpx.get(lb + "/readyz", timeout=5).headers.get("x-replica"))
        except httpx.HTTPError:
            pass
    return seen


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, tiny_model, data_dir) -> Iterator[Deployment]:
    haproxy = haproxy_binary()
    if haproxy is None:
        pytest.skip("haproxy is not installed (scripts/setup.sh dev installs Debian's)")
    state = tmp_path_factory.mktemp("replicas")
    models = state / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")   # the bundled drawing model of both replicas
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database())
        redis_url = stack.enter_context(redis_database())
        env = replica_env(state, models, database_url, redis_url, data_dir)
        d = Deployment(lb="", direct={}, database_url=database_url, state=state)
        stack.callback(lambda: [p.discard() for p in d.procs.values()])   # before the database goes
        # the workers load torch meanwhile; both take both queues, so either may get the job
        for name in ("w1", "w2"):
            d.procs[name] = start_worker(env, state / f"{name}.log", name, queues="training,sampling")
        t0 = time.monotonic()
        d.direct = start_replicas(env, state, d.procs)
        FIGURES["replicas ready after (s)"] = round(time.monotonic() - t0, 1)
        d.procs["lb"], d.lb = start_balancer(haproxy, d.direct, state)
        wait_for(lambda: replicas_behind(d.lb, d.procs["lb"]) == set(REPLICAS), timeout=20,
                 what="the balancer to pass requests to both replicas", on_timeout=d.logs)
        yield d
    print("\n[replicas] " + "; ".join(f"{k}: {v}" for k, v in FIGURES.items()))


# -- requests ------------------------------------------------------------------------------

def call(method: str, url: str, *, source: str = "127.0.0.1", token: str | None = None, **kwargs) -> httpx.Response:
    """One request on a new connection from the loopback address ``source`` (no cookies kept:
    a session is only what ``token`` carries)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60) as client:
        return client.request(method, url, headers=headers, **kwargs)


def login(base: str) -> str:
    r = call("POST", base + "/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def draw(base: str, source: str) -> httpx.Response:
    return call("POST", base + "/api/v1/translate", source=source, json={"strokes": FACE, "size": 64})


def answers(responses: list[httpx.Response]) -> list[tuple[int, str | None, str]]:
    """Status, replica and (for text) the start of the body of each response: a failure's message."""
    return [(r.status_code, r.headers.get("x-replica"),
             r.text[:160] if not r.headers.get("content-type", "").startswith("image/") else "(an image)")
            for r in responses]


def serving_version(base: str) -> str | None:
    return httpx.get(base + "/readyz", timeout=10).json().get("models", {}).get("sketch2anime")


def within_one_minute_window(needed_s: float = 10.0) -> None:
    """Budgets are counted in fixed one-minute windows: start a check that needs ``needed_s``
    after a window opens, not just before it closes (the count would start over mid-check)."""
    left = 60 - time.time() % 60
    if left < needed_s:
        time.sleep(left + 0.1)


# -- the tests -----------------------------------------------------------------------------

def test_the_anonymous_budget_is_shared_by_the_replicas(deployment):
    d = deployment
    within_one_minute_window()
    passed = [draw(d.lb, CLIENT) for _ in range(LIMIT)]
    assert [r.status_code for r in passed] == [200] * LIMIT, answers(passed)
    spread = Counter(r.headers["x-replica"] for r in passed)
    FIGURES["budget calls per replica"] = dict(spread)
    assert set(spread) == set(REPLICAS), spread   # both replicas counted some of the budget

    # one more is refused by whichever replica answers: twice through the balancer (round robin
    # gives it to each once), then on each replica directly, where the client is met without a proxy
    over = [draw(d.lb, CLIENT), draw(d.lb, CLIENT), *(draw(url, CLIENT) for url in d.direct.values())]
    assert [r.status_code for r in over] == [429] * 4, answers(over)
    assert {r.headers["x-replica"] for r in over[:2]} == set(REPLICAS)
    assert all(int(r.headers["retry-after"]) <= 60 for r in over)

    # another client behind the same balancer has its own budget: the replicas count the address
    # the balancer forwarded, not the balancer's own
    other = draw(d.lb, OTHER_CLIENT)
    assert other.status_code == 200, answers([other])


def test_a_logout_on_one_replica_is_honoured_by_the_other(deployment):
    d = deployment
    a, b = d.direct["api"], d.direct["api2"]
    token = login(a)
    me = call("GET", b + "/api/v1/admin/me", token=token)
    assert me.status_code == 200 and me.json()["username"] == ADMIN[0], me.text   # signed with the shared key
    assert call("POST", b + "/api/v1/admin/logout", token=token).status_code == 200

    assert call("GET", a + "/api/v1/admin/me", token=token).status_code == 401
    refused = [call("GET", d.lb + "/api/v1/admin/me", token=token) for _ in REPLICAS]
    assert [r.status_code for r in refused] == [401, 401], answers(refused)
    assert {r.headers["x-replica"] for r in refused} == set(REPLICAS)
    assert call("GET", a + "/api/v1/admin/me", token=login(b)).status_code == 200   # a new login still works


def register_version(d: Deployment, tiny_model: Path, version: str) -> int:
    """A copy of the tiny model whose manifest says ``version``, registered in the database as a
    job's export would be (its folder on the disk both replicas share)."""
    from backend.db import crud
    from backend.db.session import make_engine, make_sessionmaker
    from core.manifest import ModelManifest

    folder = d.state / "versions" / version
    shutil.copytree(tiny_model, folder)
    manifest = ModelManifest.load(folder).model_copy(update={"version": version})
    manifest.save(folder)
    engine = make_engine(d.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return crud.create_model_version(s, name="sketch2anime", version=version, kind=manifest.kind,
                                             manifest=manifest.model_dump(mode="json"), folder=str(folder)).id
    finally:
        engine.dispose()


def test_a_model_promoted_through_one_replica_serves_on_both(deployment, tiny_model):
    d = deployment
    a, b = d.direct["api"], d.direct["api2"]
    bundled = serving_version(b)
    version_id = register_version(d, tiny_model, "replica-v2")
    assert bundled != "replica-v2" and serving_version(a) == bundled

    t0 = time.monotonic()
    r = call("POST", f"{a}/api/v1/admin/models/{version_id}/promote", token=login(a))
    assert r.status_code == 200 and r.json()["loaded_here"], r.text
    promoted_in = time.monotonic() - t0
    # the other replica has only its watcher to learn of it: a few polls, and the load itself
    wait_for(lambda: serving_version(b) == "replica-v2", timeout=20 * POLL_S, interval=0.05,
             what="the promoted version to serve on the other replica", on_timeout=d.logs)
    FIGURES["promotion answered on A after (s)"] = round(promoted_in, 2)
    FIGURES["promotion serving on both after (s)"] = round(time.monotonic() - t0, 2)
    assert serving_version(a) == "replica-v2"
    through_lb = [httpx.get(d.lb + "/readyz", timeout=10) for _ in REPLICAS]
    assert {r.headers["x-replica"] for r in through_lb} == set(REPLICAS)
    assert {r.json()["models"]["sketch2anime"] for r in through_lb} == {"replica-v2"}
    # and it draws: the answer names the version on both replicas
    drawn = [draw(url, OTHER_CLIENT) for url in d.direct.values()]
    assert [r.headers.get("x-model-version") for r in drawn] == ["replica-v2"] * 2, answers(drawn)


def test_a_job_started_through_one_replica_is_seen_and_run_from_the_other(deployment):
    d = deployment
    a, b = d.direct["api"], d.direct["api2"]
    token_a, token_b = login(a), login(b)
    t0 = time.monotonic()
    r = call("POST", a + "/api/v1/admin/jobs", token=token_a, json={"kind": "cyclegan", "config": LONG_TINY_JOB})
    assert r.status_code == 201, r.text
    job = r.json()

    seen = call("GET", f"{b}/api/v1/admin/jobs/{job['id']}", token=token_b)
    assert seen.status_code == 200, seen.text
    assert seen.json()["kind"] == "cyclegan" and seen.json()["config"]["steps"] == 5000
    assert seen.json()["status"] in ("queued", "running")
    assert job["id"] in [j["id"] for j in call("GET", b + "/api/v1/admin/jobs", token=token_b).json()]

    def through_lb() -> dict:
        r = call("GET", f"{d.lb}/api/v1/admin/jobs/{job['id']}", token=token_b)
        assert r.status_code == 200, answers([r])
        return r.json()

    running = wait_for(lambda: (j := through_lb())["status"] == "running" and j, timeout=120,
                       what="a worker to take the job", on_timeout=d.logs)
    FIGURES["job running on a worker after (s)"] = round(time.monotonic() - t0, 1)
    worker_pids = {d.procs[w].p.pid for w in ("w1", "w2")}
    assert int(running["worker"].split(":")[1]) in worker_pids, running["worker"]   # host:pid:thread
    assert running["attempts"] == 1   # taken once, though two workers listen

    # both replicas see both workers, and the one that has the job
    for base, token in ((a, token_a), (b, token_b)):
        queue = call("GET", base + "/api/v1/admin/queue", token=token).json()
        assert {w["name"].split("@")[0] for w in queue["workers"]} >= {"w1", "w2"}, queue
        assert [j["id"] for j in queue["running"]] == [job["id"]], queue

    t0 = time.monotonic()
    cancel = call("POST", f"{b}/api/v1/admin/jobs/{job['id']}/cancel", token=token_b)
    assert cancel.status_code == 200 and cancel.json()["cancel_requested"], cancel.text
    wait_for(lambda: through_lb()["status"] == "cancelled", timeout=30,
             what="the worker to stop the job cancelled through the other replica", on_timeout=d.logs)
    FIGURES["job cancelled after (s)"] = round(time.monotonic() - t0, 1)
