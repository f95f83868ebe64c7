"""The job workers that ``doodle2anime serve`` starts beside the API on a one-machine setup.

They live and die with the server:

- each worker asks the kernel to send it SIGTERM when the process that started it ends
  (``PR_SET_PDEATHSIG``), so stopping the server stops them however it stops: Ctrl-C, a
  SIGTERM from a service manager (uvicorn re-raises it after its own shutdown, so a ``finally``
  in the server process does not run), or even SIGKILL;
- a worker that dies while the server runs is started again after a short pause (at most
  ``max_restarts`` times in ``restart_window_s``, so a worker that cannot start does not spin).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before it executes the worker: SIGTERM when the parent ends (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedWorkers:
    def __init__(self, queues: tuple[str, ...] = ("training", "sampling"), *, check_every_s: float = 1.0,
                 restart_delay_s: float = 2.0, max_restarts: int = 5, restart_window_s: float = 300.0):
        self.queues = queues
        self.check_every_s = check_every_s
        self.restart_delay_s = restart_delay_s
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.procs: dict[str, subprocess.Popen] = {}
        self._restarts: dict[str, list[float]] = {q: [] for q in queues}
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="embedded-workers", daemon=True)

    def _spawn(self, queue: str) -> subprocess.Popen:
        # One worker per queue: a training job (long) never holds up random faces (quick).
        return subprocess.Popen([sys.executable, "-m", "backend.cli", "worker", "--queues", queue,
                                 "--hostname", f"{queue}@%h"], preexec_fn=_die_with_parent)

    def start(self) -> None:
        for queue in self.queues:
            self.procs[queue] = self._spawn(queue)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.check_every_s):
            for queue, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                now = time.monotonic()
                recent = [t for t in self._restarts[queue] if now - t < self.restart_window_s]
                if len(recent) >= self.max_restarts:
                    if len(recent) == self.max_restarts:  # said once
                        log.error("the %s worker keeps exiting (last code %s): not starting it again; "
                                  "see its log, then restart the server", queue, code)
                        self._restarts[queue].append(now)
                    continue
                log.warning("the %s worker exited (code %s); starting it again", queue, code)
                if self._stopping.wait(self.restart_delay_s):
                    return
                self._restarts[queue] = [*recent, now]
                self.procs[queue] = self._spawn(queue)

    def stop(self, timeout_s: float = 20.0) -> None:
        self._stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
