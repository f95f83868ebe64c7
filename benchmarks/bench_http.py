"""The whole service over HTTP: requests per second and latency of POST /api/v1/translate.

Starts the real app (``uvicorn backend.app:create_app --factory``) as a subprocess on a free local
port, with its environment pointing at the model folder (``D2A_MODELS_DIR`` = the folder's parent,
``D2A_DEFAULT_MODEL`` = its name, ``D2A_INTRA_OP_THREADS`` = ``--threads``, and a throw-away SQLite
database, data-set folder and session key so the benchmark never reads or writes the project's
own). It waits for ``/readyz``, checks that the model serving is the one asked for, then sends
realistic face drawings (raw strokes, as the browser canvas sends them) at each concurrency
level, ``--requests`` each, after a few untimed warm-up requests. The server is always stopped,
also on errors and Ctrl-C.

Latency is measured by the client, from sending the request to having the whole PNG; the
server's own time for rasterize + generator + resize (its ``X-Elapsed-Ms`` header) is reported
beside it. The client runs on the same machine (one asyncio thread), so it takes some CPU from
the server; on a 2-core machine that is part of what is measured.

    python benchmarks/bench_http.py --quick
    python benchmarks/bench_http.py --concurrency 1,8 --requests 200
    python benchmarks/bench_http.py --model-dir models/doodle_encoder --page --name http_page_doodle_encoder
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from common import DEFAULT_MODEL_DIR, ROOT, face_drawings, fmt_ms, machine, rel, summarize, write_result  # noqa: E402

NAME = "http"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The app in a uvicorn subprocess; a context manager that always stops it."""

    def __init__(self, model_dir: Path, threads: int, ready_timeout: float = 180.0, env: dict[str, str] | None = None):
        self.model_dir = Path(model_dir).resolve()
        self.extra_env = dict(env or {})
        self.threads = threads
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="d2a-bench-http-")
        self.log_path = Path(self._tmp.name) / "server.log"
        self.ready: dict[str, Any] | None = None
        self.startup_s: float | None = None

    def __enter__(self) -> "Server":
        env = dict(os.environ)
        env.update({
            "D2A_MODELS_DIR": str(self.model_dir.parent),
            "D2A_DEFAULT_MODEL": self.model_dir.name,
            "D2A_INTRA_OP_THREADS": str(self.threads),
            "D2A_LOG_LEVEL": "warning",
            # A throw-away database and data-set folder: the benchmark neither reads the project's
            # (whose active model version could differ from --model-dir) nor writes into it.
            "D2A_DATABASE_URL": f"sqlite:///{Path(self._tmp.name) / 'bench.db'}",
            "D2A_DATASETS_DIR": str(Path(self._tmp.name) / "datasets"),
            "D2A_SECRET_KEY": secrets.token_hex(32),  # else the app writes a key file into the project
            "D2A_ANONYMOUS_REQUESTS_PER_MINUTE": "0",  # the benchmark is one address sending thousands a minute
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        })
        cmd = [sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        self._log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.perf_counter() - t0, 2)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with code {self.proc.returncode} before it was ready:\n"
                                       f"{self.log_tail()}")
                try:
                    r = client.get("/readyz")
                    if r.status_code == 200:
                        self.ready = r.json()
                        return
                    last = f"{r.status_code} {r.text[:300]}"
                    reason = r.json().get("reason") if r.status_code == 503 else None
                    if reason and reason != "loading":  # the model was refused: waiting will not help
                        raise RuntimeError(f"the server refused the model: {reason}")
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}"
                time.sleep(0.25)
        raise RuntimeError(f"the server was not ready after {self.ready_timeout:.0f} s (last /readyz: {last}):\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()
        self._tmp.cleanup()


def _answer_elapsed_ms(r: httpx.Response) -> float | None | bool:
    """The server's own time for a good answer (None when it does not say), False for a bad one:
    a PNG (its X-Elapsed-Ms header), or the page's JSON with base64 PNGs (its elapsed_ms)."""
    if r.status_code != 200:
        return False
    if r.content[:8] == PNG_MAGIC:
        return float(r.headers["x-elapsed-ms"]) if "x-elapsed-ms" in r.headers else None
    try:
        body = r.json()
    except ValueError:
        return False
    images = body.get("images") if isinstance(body, dict) else None
    if not images or any(not im.get("png_base64") for im in images):
        return False
    return float(body["elapsed_ms"]) if "elapsed_ms" in body else None


async def _load(base_url: str, bodies: list[bytes], n: int, concurrency: int, warmup: int) -> dict[str, Any]:
    """``n`` POSTs from ``concurrency`` workers sharing one connection pool; stats of the successes."""
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0, limits=limits) as client:
        for i in range(warmup):  # untimed: first requests pay for lazy set-up in the server
            await client.post("/api/v1/translate", content=bodies[i % len(bodies)], headers=headers)
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while issued < n:
                body = bodies[issued % len(bodies)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/v1/translate", content=body, headers=headers)
                    dt = time.perf_counter() - t0
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                elapsed_ms = _answer_elapsed_ms(r)
                if elapsed_ms is False:
                    errors[f"http {r.status_code}"] += 1
                    continue
                latencies.append(dt)
                if elapsed_ms is not None:
                    server_ms.append(elapsed_ms / 1000.0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": n,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "wall_s": round(wall, 3),
        "req_per_s": round(len(latencies) / wall, 3) if wall > 0 else None,
        "latency": summarize(latencies),
        "server_elapsed": summarize(server_ms),
    }


def request_body(strokes: list, *, size: int, page: bool) -> bytes:
    """One request: the drawing page's own (every variation, as JSON with base64 PNGs) or a plain
    API call for one PNG."""
    if page:
        return json.dumps({"strokes": strokes, "size": size, "member": "all", "response": "json"}).encode()
    return json.dumps({"strokes": strokes, "size": size, "member": 0, "response": "png"}).encode()


def run(*, model_dir: Path = DEFAULT_MODEL_DIR, quick: bool = False, threads: int | None = None,
        concurrency: tuple[int, ...] = (1, 8), requests: int | None = None, size: int | None = None,
        warmup: int | None = None, seed: int = 0, page: bool = False, upscaler: str | None = None) -> dict[str, Any]:
    from core.manifest import ModelManifest

    threads = threads or os.cpu_count() or 1
    n = requests or (8 if quick else 200)
    warmup = warmup if warmup is not None else (2 if quick else 10)
    manifest = ModelManifest.load(Path(model_dir))
    drawings = face_drawings(32 if not quick else 8, seed=seed)
    # The page asks for faces at the model's own size (the browser scales them up); an API call
    # for one PNG at 256 px unless told otherwise.
    size = size or (manifest.output.image_size if page else 256)
    bodies = [request_body(d, size=size, page=page) for d in drawings]
    result: dict[str, Any] = {
        "quick": quick,
        "model_dir": rel(Path(model_dir)),
        "params": {"request": "page: every variation, JSON" if page else "one PNG", "concurrency": list(concurrency),
                   "requests_per_level": n, "warmup_per_level": warmup,
                   "output_size": size, "distinct_drawings": len(bodies),
                   "body_bytes_mean": round(sum(map(len, bodies)) / len(bodies)), "server_intra_op_threads": threads,
                   "server": "uvicorn, 1 worker", "client": "httpx.AsyncClient, one thread"},
    }
    env = {"D2A_UPSCALER": upscaler} if upscaler else {}   # "" turns it off; None leaves the default
    result["params"]["upscaler"] = "default" if upscaler is None else (upscaler or "none (Lanczos)")
    with Server(Path(model_dir), threads, env=env) as server:
        result["server"] = {"readyz": server.ready, "startup_s": server.startup_s}
        if server.ready.get("model") != manifest.name or server.ready.get("version") != manifest.version:
            raise RuntimeError(f"the server serves {server.ready.get('model')} v{server.ready.get('version')}, "
                               f"not {manifest.name} v{manifest.version} from {model_dir}")
        levels = []
        for c in concurrency:
            levels.append(asyncio.run(_load(server.base_url, bodies, n, c, warmup)))
            if server.proc.poll() is not None:
                raise RuntimeError(f"the server died during the run:\n{server.log_tail()}")
        result["levels"] = levels
    return result


def print_summary(result: dict[str, Any]) -> None:
    providers = (result.get("server", {}).get("readyz") or {}).get("providers") or ["?"]
    p = result["params"]
    print(f"http POST /api/v1/translate ({'QUICK: noisy' if result['quick'] else 'full'}): "
          f"{providers[0].replace('ExecutionProvider', '')}, {p['server_intra_op_threads']} threads, "
          f"{p['output_size']} px PNG, {p['requests_per_level']} requests per level")
    print(f"  {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server p50':>11} {'errors':>7}")
    for lv in result["levels"]:
        print(f"  {lv['concurrency']:>4} {lv['req_per_s'] or 0:>8.2f} {fmt_ms(lv['latency'].get('p50_ms')):>8} "
              f"{fmt_ms(lv['latency'].get('p99_ms')):>8} {fmt_ms(lv['server_elapsed'].get('p50_ms')):>11} "
              f"{lv['errors']:>7}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="model folder with a manifest.json")
    parser.add_argument("--quick", action="store_true", help="8 requests per level, 2 warm-up (smoke test, noisy)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="the server's ONNX Runtime intra-op threads (default: os.cpu_count())")
    parser.add_argument("--concurrency", default="1,8", help="concurrency levels, comma separated (default 1,8)")
    parser.add_argument("--requests", type=int, help="timed requests per level (default 200, quick 8)")
    parser.add_argument("--warmup", type=int, help="untimed requests before each level (default 10, quick 2)")
    parser.add_argument("--size", type=int, default=None,
                        help="side of the returned PNG (default 256; with --page the model's own size)")
    parser.add_argument("--page", action="store_true",
                        help="send the drawing page's request (every variation, JSON) instead of one PNG")
    parser.add_argument("--name", default=NAME, help=f"results file name under benchmarks/results (default {NAME})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upscaler", default=None,
                        help="the server's D2A_UPSCALER (a models folder name; 'none' for Lanczos alone); default: the app's")
    args = parser.parse_args(argv)
    if args.upscaler == "none":
        args.upscaler = ""
    before = machine()
    try:
        result = run(model_dir=args.model_dir, quick=args.quick, threads=args.threads,
                     concurrency=tuple(int(c) for c in args.concurrency.split(",")), requests=args.requests,
                     size=args.size, warmup=args.warmup, seed=args.seed, page=args.page, upscaler=args.upscaler)
    except RuntimeError as exc:
        write_result(args.name, {"machine": before, "quick": args.quick, "error": str(exc)})
        print(f"http: {exc}", file=sys.stderr)
        return 1
    path = write_result(args.name, {"machine": before, **result})
    print_summary(result)
    print(f"  written: {rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
