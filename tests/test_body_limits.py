"""Body limits hold while the bytes arrive: a streamed (``Transfer-Encoding: chunked``) body has no
Content-Length to refuse it by, so every route counts what it reads and answers 413 as soon as its
limit is passed: 4 MB for JSON routes, the upload limit for data-set uploads. The real-server test
checks that the server stops reading early, and that its memory does not grow with the body."""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from backend.app import MAX_BODY_BYTES, create_app
from backend.settings import Settings
from procs import env_for, start_api


def _chunks(total: int, piece: bytes = b"1," * 32768):
    """``total`` bytes of a JSON-ish array, in 64 kB pieces, as a generator (httpx sends it chunked)."""
    yield b"["
    sent = 1
    while sent < total:
        yield piece
        sent += len(piece)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    settings = Settings(database_url=f"sqlite:///{base / 'app.db'}", datasets_dir=base / "datasets",
                        models_dir=base / "no-models", upload_max_bytes=1024 * 1024, model_poll_s=0)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("path", ["/api/v1/translate", "/api/v1/admin/login", "/api/v1/faces/random"])
def test_a_chunked_body_over_the_limit_is_a_413(client, path):
    r = client.post(path, content=_chunks(MAX_BODY_BYTES + 200_000), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413, r.text


def test_a_chunked_body_under_the_limit_is_read(client):
    # control: the same kind of body, under the limit, reaches the route (and fails as a bad drawing)
    r = client.post("/api/v1/translate", content=_chunks(100_000), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


def test_a_declared_length_over_the_limit_is_a_413(client):
    r = client.post("/api/v1/translate", content=b"[" + b"1," * 3_000_000 + b"1]",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_uploads_have_their_own_larger_limit_also_when_chunked(client):
    """1 MB uploads here: 2 MB of multipart is over it even without logging in (the body is
    refused before anything reads it), while 3 MB of JSON elsewhere is under the JSON limit but
    would be over the upload one: each route has its own limit."""
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.npy\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def multipart(size: int):
        yield head
        for _ in range(size // 65536):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/api/v1/admin/datasets", content=multipart(2 * 1024 * 1024),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, r.text
    r = client.post("/api/v1/admin/datasets", content=multipart(200_000),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 401, r.text  # under the limit: read, then refused for want of a login
    r = client.post("/api/v1/translate", content=_chunks(3 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def stream_chunked(base: str, path: str, total: int, on_chunk=lambda: None) -> tuple[int, bytes]:
    """POST ``total`` bytes to ``path`` chunked over a raw socket, stopping as soon as the server
    answers. Returns (bytes sent, the start of the answer)."""
    url = urlparse(base)
    piece = b"1," * 32768
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        sent = 0
        try:
            while sent < total:
                readable, writable, _ = select.select([s], [s], [], 30)
                if readable:
                    break  # the server has answered: stop sending
                if writable:
                    s.sendall(frame)
                    sent += len(piece)
                    on_chunk()
            else:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(60)
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
    return sent, answer


def test_a_real_server_stops_reading_a_flood_early_and_its_memory_stays_flat(tmp_path):
    proc, base = start_api(env_for(tmp_path, D2A_DEFAULT_MODEL="doodle_encoder",
                                   D2A_DRAWING_MODELS='["doodle_encoder"]'), tmp_path / "api.log")
    try:
        before = _rss_mb(proc.p.pid)
        peak = [before]
        last = [0.0]

        def sample():
            if time.monotonic() - last[0] > 0.05:
                last[0] = time.monotonic()
                peak[0] = max(peak[0], _rss_mb(proc.p.pid))

        total = 50 * 1024 * 1024
        sent, answer = stream_chunked(base, "/api/v1/translate", total, sample)
        peak[0] = max(peak[0], _rss_mb(proc.p.pid))
        assert answer.startswith(b"HTTP/1.1 413"), (answer[:200], proc.tail())
        # 4 MB are read; what else was sent sits in socket buffers, not in the server
        assert sent < total / 4, f"{sent / 2**20:.1f} MB sent of {total / 2**20:.0f} MB before the answer"
        assert peak[0] - before < 40, f"the server grew from {before:.0f} MB to {peak[0]:.0f} MB"
    finally:
        proc.stop()
