"""Helpers shared by the benchmarks: timing, statistics, drawings to feed, the machine block, JSON out.

Every benchmark is a plain script (``python benchmarks/bench_*.py``); importing this module puts the
project root (for ``backend`` and ``training``) and ``tests/`` (for the cairo reference renderer)
on ``sys.path``, so the scripts run from any working directory.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_MODEL_DIR = ROOT / "models" / "sketch2anime"

for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402

from core.hostinfo import cpu_model  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Timing


def time_calls(fn: Callable[[], Any], *, repeat: int, warmup: int = 1) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; seconds per call.

    The garbage collector is paused while timing, so a collection does not land in one call's
    time; it runs once before the timed calls.
    """
    for _ in range(warmup):
        fn()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return times


def time_each(fn: Callable[[Any], Any], items: list[Any], *, rounds: int, warmup: int = 1) -> list[float]:
    """Time ``fn(item)`` for every item, ``rounds`` passes over ``items``; seconds per call.

    ``warmup`` untimed calls go first (on the first items). Used where the inputs vary (drawings
    of different sizes), so the distribution covers the variety of inputs, not one of them.
    """
    for item in items[: max(warmup, 0)]:
        fn(item)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        for _ in range(rounds):
            for item in items:
                t0 = time.perf_counter()
                fn(item)
                times.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return times


def summarize(seconds: list[float]) -> dict[str, float | int]:
    """p50/p90/p99/mean/min/max in milliseconds, and n, of per-call times in seconds.

    Percentiles interpolate linearly between samples: with fewer than 100 samples p99 lies
    between the two slowest calls, so read it as "about the worst" on small runs.
    """
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "n": int(ms.size),
        "p50_ms": round(float(p50), 4),
        "p90_ms": round(float(p90), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "min_ms": round(float(ms.min()), 4),
        "max_ms": round(float(ms.max()), 4),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# ---------------------------------------------------------------------------------------------
# Drawings


def face_drawings(n: int, seed: int = 0, min_strokes: int = 5, max_strokes: int = 12) -> list[list]:
    """``n`` realistic face doodles in Quick, Draw! raw format ``[[x...], [y...], [t...]]``,
    as the browser canvas sends them, with ``min_strokes``..``max_strokes`` strokes each.

    They come from the training data's synthetic doodle generator (outline, eyes, mouth, and
    sometimes nose, eyebrows, hair, ears, with hand tremor), redrawn until the stroke count fits.
    """
    from training.data import doodle_to_raw
    from training.doodles import synthetic_doodle

    rng = np.random.default_rng(seed)
    out: list[list] = []
    while len(out) < n:
        strokes = synthetic_doodle(rng)
        if min_strokes <= len(strokes) <= max_strokes:
            out.append(doodle_to_raw(strokes, rng))
    return out


def random_drawings(n: int, seed: int = 0) -> list[list]:
    """``n`` random scribbles in simplified format ``[[x...], [y...]]``, arbitrary units: 1-5
    strokes, each a random walk of 1-39 points (the distribution the renderer's tests use)."""
    rng = np.random.default_rng(seed)
    out: list[list] = []
    for _ in range(n):
        drawing = []
        for _ in range(int(rng.integers(1, 6))):
            k = int(rng.integers(1, 40))
            start = rng.uniform(0, 500, (2, 1))
            drawing.append((start + np.cumsum(rng.normal(0, 25, (2, k)), axis=1)).tolist())
        out.append(drawing)
    return out


# ---------------------------------------------------------------------------------------------
# The machine


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1024 * 1024), 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - a missing optional package is just reported as absent
        return None
    return str(getattr(mod, "__version__", getattr(mod, "version", "unknown")))


def ort_active_providers(preferred: list[str] | None = None) -> dict[str, Any]:
    """Which ONNX Runtime execution providers a session really gets here.

    ``get_available_providers`` lists what the wheel was built with (onnxruntime-gpu lists CUDA
    even with no GPU); this makes a one-node session with the preferred providers and reads
    back the ones it kept.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return {"available": [], "active": [], "error": "onnxruntime is not installed"}
    available = ort.get_available_providers()
    wanted = [p for p in (preferred or ["CUDAExecutionProvider", "CPUExecutionProvider"]) if p in available]
    wanted = wanted or ["CPUExecutionProvider"]
    out: dict[str, Any] = {"available": available, "requested": wanted}
    try:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 8)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if "CUDAExecutionProvider" in wanted and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception:  # noqa: BLE001 - no CUDA libraries: the probe then says CPU
                pass
        # A CUDA provider that cannot load logs an error through the default logger; the
        # probe's answer says the same thing in "active", so keep the log quiet meanwhile.
        ort.set_default_logger_severity(4)
        try:
            sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=wanted)
        finally:
            ort.set_default_logger_severity(2)
        out["active"] = sess.get_providers()
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        out["active"] = None
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def gpu_name() -> str | None:
    """The CUDA device's name through torch, when torch is installed and sees one."""
    try:
        import torch
    except ImportError:
        return None
    try:
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        return None
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: hardware, software, and how busy the machine was."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpu_count_logical": os.cpu_count(),
        "cpu_count_usable": affinity,
        "ram_gib": _ram_gib(),
        "os": _os_name(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "versions": {
            "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"),
            "onnx": _version("onnx"),
            "numpy": _version("numpy"),
            "pycairo": _version("cairo"),
            "fastapi": _version("fastapi"),
            "uvicorn": _version("uvicorn"),
            "httpx": _version("httpx"),
        },
        "onnxruntime_providers": ort_active_providers(),
        "gpu": gpu_name(),
        # Load average when the block was taken: a busy machine (another job running) makes
        # every number here slower and noisier; compare runs only at similar loads.
        "loadavg_1_5_15": load,
    }


# ---------------------------------------------------------------------------------------------
# Results


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def write_result(name: str, payload: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``payload`` (with a UTC timestamp added) as ``results/<name>.json``; returns the path."""
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    body = {"benchmark": name, "timestamp_utc": utc_now(), **payload}
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (no machine paths in the results)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(path)


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"
