"""The photo route under hostile uploads: the server's memory, and whether it keeps answering.

Two floods, each against a fresh server (``bench_http.Server``: uvicorn, the bundled models, a
throw-away database, no rate limit):

- **pixels**: N uploads at once (``--clients``, default 1, 4, 8, 16) of a lossless WebP of a few
  dozen bytes that declares 6,324 x 6,324 pixels (under the 40-megapixel limit, so it is decoded).
  The server's resident memory (VmRSS) is sampled every 20 ms; reported: before, peak, a second
  after the last answer, the answers, and the slowest ``/healthz`` answer meanwhile.
- **form**: 4 bodies at once of 5.3 MB with 60,000 form fields each (and a photo), with the same
  ``/healthz`` probe: a parser on the event loop stalls every other request.

Linux only (``/proc``). Run it in another checkout to measure that checkout's code (the server
runs the code of the tree the script is in).

    python benchmarks/bench_photo_hostile.py
    python benchmarks/bench_photo_hostile.py --clients 1,4 --name photo_hostile_quick
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import Server  # noqa: E402
from common import DEFAULT_MODEL_DIR, machine, write_result  # noqa: E402

SIDE = 6324


def hostile_webp(side: int = SIDE) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 120, 90)).save(buf, format="WEBP", lossless=True, quality=0, method=0)
    return buf.getvalue()


def form_flood(fields: int = 60_000) -> tuple[bytes, str]:
    photo = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 90, 90)).save(photo, format="JPEG")
    parts = [b'--fl00d\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n\r\n' + photo.getvalue()]
    parts += [f'--fl00d\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n'.encode() + b"x" * 20
              for i in range(fields)]
    return b"\r\n".join(parts) + b"\r\n--fl00d--\r\n", "multipart/form-data; boundary=fl00d"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc")


class Watch:
    """Samples the server's memory every 20 ms and times a ``/healthz`` call every 100 ms."""

    def __init__(self, server: Server):
        self.server, self.pid = server, server.proc.pid
        self.peak = rss_mb(self.pid)
        self.health_ms: list[float] = []
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._memory, daemon=True),
                         threading.Thread(target=self._health, daemon=True)]

    def _memory(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def _health(self) -> None:
        with httpx.Client(base_url=self.server.base_url, timeout=120) as c:
            while not self._done.is_set():
                t0 = time.perf_counter()
                c.get("/healthz")
                self.health_ms.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.1)

    def __enter__(self) -> "Watch":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        for t in self._threads:
            t.join()


def send_all(base: str, bodies: list[tuple[bytes, str]]) -> list[str]:
    def one(body: tuple[bytes, str]) -> str:
        with httpx.Client(base_url=base, timeout=300) as c:
            r = c.post("/api/v1/photo", content=body[0], headers={"content-type": body[1]})
        return f"{r.status_code} {r.json().get('detail', '')[:60] if r.headers.get('content-type') == 'application/json' else ''}".strip()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def multipart(photo: bytes) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files={"photo": ("a.webp", photo, "image/webp")})
    return request.read(), request.headers["content-type"]


def flood(bodies: list[tuple[bytes, str]], env: dict[str, str]) -> dict:
    with Server(DEFAULT_MODEL_DIR, threads=1, env=env) as server:
        time.sleep(1.0)
        before = rss_mb(server.proc.pid)
        t0 = time.perf_counter()
        with Watch(server) as watch:
            answers = send_all(server.base_url, bodies)
            seconds = time.perf_counter() - t0
            time.sleep(1.0)
        after = rss_mb(server.proc.pid)
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    return {"uploads": len(bodies), "answers": counts, "seconds": round(seconds, 2),
            "rss_before_mb": round(before), "rss_peak_mb": round(watch.peak), "rss_after_mb": round(after),
            "peak_growth_mb": round(watch.peak - before),
            "healthz_max_ms": round(max(watch.health_ms), 1) if watch.health_ms else None,
            "healthz_calls": len(watch.health_ms)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="1,4,8,16", help="uploads at once, comma-separated (default 1,4,8,16)")
    p.add_argument("--memory-mb", type=int, default=None, help="the server's photo_memory_mb (default: its own)")
    p.add_argument("--name", default="photo_hostile", help="result file name under benchmarks/results/")
    args = p.parse_args()
    env = {"D2A_PHOTO_WAIT_S": "120"}
    if args.memory_mb:
        env["D2A_PHOTO_MEMORY_MB"] = str(args.memory_mb)
    bomb = hostile_webp()
    result = {"hostile_photo": {"bytes": len(bomb), "declared": f"{SIDE} x {SIDE}", "format": "WebP lossless"},
              "pixels": [], "machine": machine()}
    for n in [int(x) for x in args.clients.split(",")]:
        row = flood([multipart(bomb)] * n, env)
        result["pixels"].append(row)
        print(f"pixels x{n}: {row['answers']} in {row['seconds']} s; memory {row['rss_before_mb']} -> peak "
              f"{row['rss_peak_mb']} -> {row['rss_after_mb']} MB; slowest /healthz {row['healthz_max_ms']} ms")
    body = form_flood()
    row = flood([body] * 4, env)
    result["form"] = {**row, "body_mb": round(len(body[0]) / 2**20, 1), "fields": 60_000}
    print(f"form x4 ({result['form']['body_mb']} MB, 60,000 fields): {row['answers']} in {row['seconds']} s; "
          f"slowest /healthz {row['healthz_max_ms']} ms")
    write_result(args.name, result)


if __name__ == "__main__":
    main()
