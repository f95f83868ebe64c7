"""Real processes for the tests: the API (uvicorn) and job workers (Celery), each started the way
an operator would start them, with their own environment, and stopped (or killed) by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process with its output in a log file (read back when a test fails)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._out = open(log, "ab")
        self.p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.p.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group: no clean-up code runs, as when a machine dies."""
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait(timeout=10)

    def discard(self) -> None:
        """End a process at a test's teardown, where how it stops is not what is tested: SIGKILL
        at once (a worker's warm shutdown takes about 4 s; test_serve_workers tests SIGTERM)."""
        if self.alive():
            self.kill9()
        self._out.close()

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill9()
        self._out.close()


def env_for(state: Path, **extra: str) -> dict[str, str]:
    """The environment of a test deployment whose state (database, broker, runs) is in ``state``."""
    env = dict(os.environ)
    env.update({
        "D2A_DATABASE_URL": f"sqlite:///{state / 'app.db'}",
        "D2A_BROKER_DB": str(state / "broker.db"),
        "D2A_RUNS_DIR": str(state / "runs"),
        "D2A_JOB_MODELS_DIR": str(state / "models"),
        "D2A_DATASETS_DIR": str(state / "datasets"),
        "D2A_SAMPLES_DIR": str(state / "samples"),
        "D2A_SECRET_KEY": "test-secret",
        "D2A_MODEL_POLL_S": "0.5",
        "D2A_JOB_STALE_AFTER_S": "5",
        "REDIS_URL": "",
        "D2A_REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def start_api(env: dict[str, str], log: Path, timeout: float = 60) -> tuple[Proc, str]:
    """The API on a free port, once /readyz answers 200. Without uvicorn's proxy headers, as
    ``doodle2anime serve`` runs it: behind a proxy on this machine the app's trusted_proxies
    decides who the client is, not uvicorn's trust of every 127.0.0.1 peer."""
    port = free_port()
    proc = Proc([str(BIN / "uvicorn"), "backend.app:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning", "--no-proxy-headers"], env, log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"the API exited early:\n{proc.tail()}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.stop()
    raise RuntimeError(f"the API did not become ready in {timeout} s:\n{proc.tail()}")


def api_client(base: str, timeout: float = 30) -> httpx.Client:
    """A client for a test API process. It drops idle connections after 1 s, well before
    uvicorn's 5 s keep-alive timeout: otherwise a request sent on a connection the server is
    closing at that moment fails with "Server disconnected without sending a response"."""
    return httpx.Client(base_url=base, timeout=timeout, limits=httpx.Limits(keepalive_expiry=1.0))


def start_worker(env: dict[str, str], log: Path, name: str, queues: str = "training") -> Proc:
    """A job worker taking jobs from ``queues`` (comma-separated: training, sampling)."""
    return Proc([str(BIN / "doodle2anime"), "worker", "--queues", queues, "--hostname", f"{name}@%h",
                 "--loglevel", "info"], env, log)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3, on_timeout=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}\n{on_timeout()}")
