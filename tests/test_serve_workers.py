"""``doodle2anime serve`` on one machine starts two job workers; they must live and die with it.

A real serve process on the embedded broker: its workers are found among its children; a
worker killed with SIGKILL is started again; the server stopped with SIGTERM (as a service
manager stops it) or even with SIGKILL leaves no worker behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from procs import BIN, Proc, env_for, free_port, wait_for


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def workers_of(server: Proc) -> set[int]:
    """The worker processes the server started (children running `backend.cli worker`)."""
    out = set()
    for pid in children(server.p.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmdline:
            out.add(pid)
    return out


@pytest.fixture
def serve(tmp_path):
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc (Linux)")
    env = env_for(tmp_path, D2A_EMBEDDED_WORKER="1", D2A_PORT=str(free_port()), D2A_LOG_LEVEL="warning",
                  D2A_PROVIDERS='["CPUExecutionProvider"]', D2A_INTRA_OP_THREADS="1")
    env.pop("REDIS_URL", None)
    server = Proc([str(BIN / "doodle2anime"), "serve"], env, tmp_path / "serve.log")
    try:
        found = wait_for(lambda: len(w := workers_of(server)) == 2 and w, timeout=60,
                         what="the two embedded workers", on_timeout=server.tail)
        yield server, found
    finally:
        server.kill9()


def test_a_killed_worker_is_started_again_and_sigterm_stops_them_all(serve):
    server, workers = serve
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(w := workers_of(server)) == 2 and victim not in w, timeout=30,
             what="a new worker in place of the killed one", on_timeout=server.tail)
    now = workers_of(server)
    os.kill(server.p.pid, signal.SIGTERM)
    server.p.wait(timeout=60)
    wait_for(lambda: not any(alive(p) for p in now), timeout=30, what="the workers to stop with the server")


def test_workers_do_not_outlive_a_killed_server(serve):
    server, workers = serve
    os.kill(server.p.pid, signal.SIGKILL)  # no clean-up code runs in the server
    server.p.wait(timeout=10)
    wait_for(lambda: not any(alive(p) for p in workers), timeout=30, what="the orphaned workers to stop")
    time.sleep(0.5)
    assert not any(alive(p) for p in workers)
