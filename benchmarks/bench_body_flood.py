"""The server's memory under a streamed-body flood: one anonymous ``POST /api/v1/translate`` with
``Transfer-Encoding: chunked`` (no Content-Length to refuse it by) and ``--mb`` megabytes of a JSON
array, sent over a raw socket that stops as soon as the server answers.

Starts the real app (``bench_http.Server``: uvicorn, the shipped model, a throw-away database),
samples the server's resident memory (``/proc/<pid>/status`` VmRSS) every 50 ms while sending,
and reports the answer, how many bytes were sent before it came, and the memory before and at
its peak. Linux only (``/proc``).

    python benchmarks/bench_body_flood.py             # 300 MB
    python benchmarks/bench_body_flood.py --mb 50 --name body_flood_50mb
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import Server  # noqa: E402
from common import DEFAULT_MODEL_DIR, machine, write_result  # noqa: E402

PIECE = b"1," * 32768  # 64 kB of the array per chunk


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc")


def flood(port: int, total: int) -> tuple[int, bytes, float]:
    """Send up to ``total`` bytes chunked; stop when the server answers. (bytes sent, answer, seconds)."""
    frame = f"{len(PIECE):x}\r\n".encode() + PIECE + b"\r\n"
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(b"POST /api/v1/translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + frame.replace(b"1,", b"[1", 1))
        sent = len(PIECE)
        try:
            while sent < total:
                readable, writable, _ = select.select([s], [s], [], 120)
                if readable:
                    break
                if writable:
                    s.sendall(frame)
                    sent += len(PIECE)
            else:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
    return sent, answer, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=int, default=300, help="megabytes to stream (default 300)")
    p.add_argument("--name", default="body_flood", help="result file name under benchmarks/results/")
    args = p.parse_args()
    with Server(DEFAULT_MODEL_DIR, threads=1) as server:
        pid = server.proc.pid
        time.sleep(1.0)
        before = rss_mb(pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sent, answer, seconds = flood(server.port, args.mb * 1024 * 1024)
        time.sleep(0.5)  # a server still parsing what it read keeps growing a little after answering
        done.set()
        sampler.join()
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    result = {"streamed_mb": args.mb, "answer": status, "sent_before_answer_mb": round(sent / 2**20, 1),
              "seconds": round(seconds, 2), "server_rss_before_mb": round(before), "server_rss_peak_mb": round(peak[0]),
              "machine": machine()}
    print(f"{status}: {result['sent_before_answer_mb']} of {args.mb} MB sent in {seconds:.1f} s; "
          f"server memory {before:.0f} MB -> peak {peak[0]:.0f} MB")
    write_result(args.name, result)


if __name__ == "__main__":
    main()
