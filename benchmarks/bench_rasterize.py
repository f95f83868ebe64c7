"""Strokes to a 28 px numpy_bitmap: our numpy renderer (core.drawing) against the cairo reference.

Both sides do the same work on the same drawings: validate (``parse_strokes``), simplify
(Quick, Draw!'s normalise + resample + RDP) and render at ``--size`` px. "ours" is
``core.drawing.rasterize``, what the API calls; "cairo" is the same parse + simplify followed by
``tests/cairo_reference.cairo_render``. Render-only times (drawings simplified beforehand) are
reported too, to separate the renderers from the shared simplification.

Before timing, every drawing is rendered by both and the mean absolute pixel difference (0..255)
is reported, so the comparison is known to be of equal work (the same picture).

    python benchmarks/bench_rasterize.py            # full run
    python benchmarks/bench_rasterize.py --quick    # a few drawings, one pass: a smoke test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import face_drawings, fmt_ms, machine, random_drawings, ratio, rel, summarize, time_each, write_result  # noqa: E402

NAME = "rasterize"


def _load_cairo():
    """The cairo reference renderer, or None (with the reason) where pycairo is missing."""
    try:
        import cairo  # noqa: F401
        from cairo_reference import cairo_render
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return cairo_render, None


def _drawing_stats(raw_set: list, simplified: list) -> dict[str, float]:
    strokes = [len(d) for d in raw_set]
    points = [sum(len(s[0]) for s in d) for d in raw_set]
    kept = [d.n_points for d in simplified]
    return {
        "drawings": len(raw_set),
        "strokes_mean": round(float(np.mean(strokes)), 2),
        "strokes_min": int(np.min(strokes)),
        "strokes_max": int(np.max(strokes)),
        "points_in_mean": round(float(np.mean(points)), 1),
        "points_after_simplify_mean": round(float(np.mean(kept)), 1),
    }


def bench_set(label: str, raw_set: list, size: int, rounds: int, cairo_render) -> dict[str, Any]:
    from core.drawing import parse_strokes, rasterize, render, simplify

    simplified = [simplify(parse_strokes(raw)) for raw in raw_set]
    out: dict[str, Any] = {"set": label, **_drawing_stats(raw_set, simplified)}

    def ours_full(raw):
        return rasterize(raw, size)

    def ours_render(d):
        return render(d, size)

    # Equal work: same validation and simplification, then each renderer.
    if cairo_render is not None:
        def cairo_full(raw):
            return cairo_render(list(simplify(parse_strokes(raw)).strokes), size)

        def cairo_only(d):
            return cairo_render(list(d.strokes), size)

        diffs, worst_pixel = [], 0
        for raw in raw_set:
            a = ours_full(raw).astype(np.int16)
            b = cairo_full(raw).astype(np.int16)
            diffs.append(float(np.abs(a - b).mean()))
            worst_pixel = max(worst_pixel, int(np.abs(a - b).max()))
        out["pixel_diff"] = {
            "mean_abs_mean": round(float(np.mean(diffs)), 4),  # mean over drawings of the per-drawing mean |ours - cairo|
            "mean_abs_worst": round(float(np.max(diffs)), 4),  # the worst drawing's mean |ours - cairo|
            "max_abs_pixel": worst_pixel,                      # the largest single-pixel difference seen
            "scale": "0..255",
        }

    # Interleave the two sides pass by pass, so a change in background load hits both alike.
    t_ours, t_cairo, r_ours, r_cairo = [], [], [], []
    warm = 1
    for _ in range(rounds):
        t_ours += time_each(ours_full, raw_set, rounds=1, warmup=warm)
        r_ours += time_each(ours_render, simplified, rounds=1, warmup=warm)
        if cairo_render is not None:
            t_cairo += time_each(cairo_full, raw_set, rounds=1, warmup=warm)
            r_cairo += time_each(cairo_only, simplified, rounds=1, warmup=warm)
        warm = 0
    out["ours"] = summarize(t_ours)
    out["ours_render_only"] = summarize(r_ours)
    if cairo_render is not None:
        out["cairo"] = summarize(t_cairo)
        out["cairo_render_only"] = summarize(r_cairo)
        # > 1: ours is slower than cairo by that factor; < 1: ours is faster.
        out["ratio_ours_over_cairo"] = {
            "p50": ratio(out["ours"]["p50_ms"], out["cairo"]["p50_ms"]),
            "p99": ratio(out["ours"]["p99_ms"], out["cairo"]["p99_ms"]),
            "render_only_p50": ratio(out["ours_render_only"]["p50_ms"], out["cairo_render_only"]["p50_ms"]),
        }
    return out


def run(*, quick: bool = False, size: int = 28, drawings: int | None = None, rounds: int | None = None,
        seed: int = 0) -> dict[str, Any]:
    n = drawings or (10 if quick else 200)
    rounds = rounds or (1 if quick else 5)
    cairo_render, cairo_error = _load_cairo()
    sets = {
        "faces": face_drawings(n, seed=seed),          # raw format, 5-12 strokes, as the canvas sends
        "random": random_drawings(n, seed=seed + 1),   # simplified format scribbles, 1-5 strokes
    }
    results = [bench_set(label, raw_set, size, rounds, cairo_render) for label, raw_set in sets.items()]
    return {
        "quick": quick,
        "params": {"size": size, "drawings_per_set": n, "rounds": rounds, "seed": seed},
        "cairo_available": cairo_render is not None,
        "cairo_error": cairo_error,
        "sets": results,
    }


def print_summary(result: dict[str, Any]) -> None:
    size = result["params"]["size"]
    print(f"rasterize {size} px ({'QUICK: noisy' if result['quick'] else 'full'}), per call, ms")
    print(f"  {'set':<7} {'ours p50':>9} {'ours p99':>9} {'cairo p50':>10} {'cairo p99':>10} {'ratio p50':>10} {'|diff|':>7}")
    for s in result["sets"]:
        cairo = s.get("cairo", {})
        diff = s.get("pixel_diff", {}).get("mean_abs_mean")
        print(f"  {s['set']:<7} {fmt_ms(s['ours']['p50_ms']):>9} {fmt_ms(s['ours']['p99_ms']):>9} "
              f"{fmt_ms(cairo.get('p50_ms')):>10} {fmt_ms(cairo.get('p99_ms')):>10} "
              f"{s.get('ratio_ours_over_cairo', {}).get('p50', '-')!s:>10} {diff if diff is not None else '-'!s:>7}")
    if not result["cairo_available"]:
        print(f"  cairo reference unavailable: {result['cairo_error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 drawings per set, one pass (smoke test, noisy)")
    parser.add_argument("--size", type=int, default=28, help="bitmap side in pixels (default 28)")
    parser.add_argument("--drawings", type=int, help="drawings per set (default 200, quick 10)")
    parser.add_argument("--rounds", type=int, help="timed passes over each set (default 5, quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)  # accepted for run_all's uniform CLI; unused
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # likewise: the renderers are single-threaded
    args = parser.parse_args(argv)
    before = machine()  # taken first: its load average is the background load, not ours
    result = run(quick=args.quick, size=args.size, drawings=args.drawings, rounds=args.rounds, seed=args.seed)
    path = write_result(NAME, {"machine": before, **result})
    print_summary(result)
    print(f"  written: {rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
