"""Run every benchmark, each in a fresh Python process, and gather the results in results/all.json.

    python benchmarks/run_all.py                         # full run (minutes)
    python benchmarks/run_all.py --quick                 # smoke test: every path once, noisy numbers
    python benchmarks/run_all.py --model-dir models/sketch2anime --threads 2 --only translate,http

A fresh process per benchmark keeps one's thread pools, imports and caches out of the next one's
numbers. Each benchmark still writes its own results/<name>.json; all.json holds the machine block
once and every benchmark's result (or its error). The exit code is 1 when any benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_http  # noqa: E402
import bench_rasterize  # noqa: E402
import bench_translate  # noqa: E402
from common import DEFAULT_MODEL_DIR, RESULTS_DIR, ROOT, machine, rel, utc_now  # noqa: E402

BENCHMARKS = {
    bench_rasterize.NAME: bench_rasterize,
    bench_translate.NAME: bench_translate,
    bench_http.NAME: bench_http,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="model folder with a manifest.json")
    parser.add_argument("--quick", action="store_true", help="tiny repeat counts: checks every path, numbers are noisy")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra-op threads for torch and ONNX Runtime, and the server's (default: os.cpu_count())")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="translate: the torch weights to compare (a run's snapshot of a shipped member)")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    started = utc_now()
    before = machine()
    results: dict[str, dict] = {}
    failed = []
    for name in names:
        module = BENCHMARKS[name]
        cmd = [sys.executable, str(Path(module.__file__).resolve()), "--model-dir", str(args.model_dir.resolve()),
               "--threads", str(args.threads)]
        if args.quick:
            cmd.append("--quick")
        if args.checkpoint is not None and module is bench_translate:
            cmd += ["--checkpoint", str(args.checkpoint.resolve())]
        print(f"== {name} ==", flush=True)
        path = RESULTS_DIR / f"{name}.json"
        t0 = time.perf_counter()
        mtime = path.stat().st_mtime if path.exists() else None
        proc = subprocess.run(cmd, cwd=ROOT)
        took = round(time.perf_counter() - t0, 1)
        fresh = path.exists() and path.stat().st_mtime != mtime
        if fresh:
            data = json.loads(path.read_text())
        else:
            data = {"error": "the benchmark wrote no result"}
        if proc.returncode != 0 or "error" in data:
            failed.append(name)
            data.setdefault("error", f"exit code {proc.returncode}")
        data["returncode"] = proc.returncode
        data["wall_s"] = took
        # The machine block is kept once, at the top of all.json; each run's load stays with it.
        inner = data.pop("machine", None)
        if inner is not None:
            data["loadavg_at_start"] = inner.get("loadavg_1_5_15")
        results[name] = data

    out = {
        "benchmark": "all",
        "started_utc": started,
        "timestamp_utc": utc_now(),
        "quick": args.quick,
        "args": {"model_dir": rel(args.model_dir), "threads": args.threads, "only": names},
        "machine": before,
        "benchmarks": results,
        "failed": failed,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS_DIR / "all.json.tmp"
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(RESULTS_DIR / "all.json")

    m = before
    print()
    print(f"== summary ({'QUICK run: few repeats, numbers are noisy' if args.quick else 'full run'}) ==")
    print(f"machine: {m['cpu_model']}, {m['cpu_count_usable']} usable cores, {m['ram_gib']} GiB, "
          f"{m['os']}; onnxruntime active: {', '.join(m['onnxruntime_providers'].get('active') or ['?'])}; "
          f"GPU: {m['gpu'] or 'none'}; load average at start: {m['loadavg_1_5_15']}")
    for name, data in results.items():
        if name in failed:
            print(f"{name}: FAILED ({data['error'][:500]})")
            continue
        BENCHMARKS[name].print_summary(data)
    print(f"written: {rel(RESULTS_DIR / 'all.json')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
