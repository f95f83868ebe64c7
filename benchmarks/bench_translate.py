"""Generator latency: ONNX Runtime against torch eager, on the same weights.

The sketch-to-anime generator of a model folder is built in torch, exported to a temporary ONNX
file whose batch, height and width axes are all dynamic (one graph serves every size), checked
against torch (largest absolute output difference, must be within the export's tolerance), and
then both are timed on the same inputs: batch 1 latency and batch ``--batch`` throughput at each of
``--sizes``. Inputs are real model inputs: synthetic face doodles rasterized at the model's raster
size and resized as the API does. Both engines are timed from a numpy array in to a numpy array
out (host memory), so on a GPU both include the copies to and from the device.

Weights: ``--checkpoint`` if given; else a checkpoint (``*.pt``) inside the model folder; else a
generator built with a fixed seed from the manifest's architecture (ngf, n_blocks) and the
training initialisation. The JSON says which (``weights``). Weight values do not change the work
done, so seeded weights time the same network.

    python benchmarks/bench_translate.py --quick
    python benchmarks/bench_translate.py --model-dir models/sketch2anime --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import (  # noqa: E402
    DEFAULT_MODEL_DIR,
    face_drawings,
    fmt_ms,
    machine,
    ratio,
    rel,
    summarize,
    time_calls,
    write_result,
)

NAME = "translate"
CPU_TOLERANCE = 1e-4   # training/export.py's PARITY_TOLERANCE: the same bar a shipped export must pass
GPU_TOLERANCE = 1e-2   # GPU kernels (TF32 convolutions in either engine) round differently


class ParityError(RuntimeError):
    pass


def _architecture(manifest) -> dict[str, Any]:
    from core.configs.cyclegan import CycleGANConfig

    cfg = (manifest.training or {}).get("config") or {}
    defaults = CycleGANConfig.model_fields
    found = "ngf" in cfg and "n_blocks" in cfg
    return {
        "ngf": int(cfg.get("ngf", defaults["ngf"].default)),
        "n_blocks": int(cfg.get("n_blocks", defaults["n_blocks"].default)),
        "source": "manifest core.configs.cyclegan" if found else "CycleGANConfig defaults (manifest has none)",
    }


def _find_checkpoint(model_dir: Path, manifest) -> Path | None:
    """A checkpoint inside the model folder: one a member names as its source, else any *.pt."""
    for m in manifest.members:
        name = (m.source or {}).get("checkpoint")
        if name and (model_dir / name).is_file():
            return model_dir / name
    found = sorted(model_dir.glob("*.pt"))
    return found[0] if found else None


def build_generator(model_dir: Path, checkpoint: Path | None, seed: int):
    """The generator in eval mode and a description of where its weights came from."""
    import torch

    from core.manifest import ModelManifest
    from training.cyclegan import ResnetGenerator, init_weights

    manifest = ModelManifest.load(model_dir)
    arch = _architecture(manifest)
    path = checkpoint or _find_checkpoint(model_dir, manifest)
    if path is not None:
        from training.export import load_generator

        g, cfg, step = load_generator(path)
        weights = {"kind": "checkpoint", "path": rel(path), "step": step,
                   "ngf": cfg.ngf, "n_blocks": cfg.n_blocks,
                   "matches_manifest_architecture": (cfg.ngf, cfg.n_blocks) == (arch["ngf"], arch["n_blocks"])}
    else:
        torch.manual_seed(seed)
        g = ResnetGenerator(3, 3, arch["ngf"], arch["n_blocks"])
        init_weights(g)  # N(0, 0.02) convolutions, as training starts
        g.eval()
        weights = {"kind": "seeded", "seed": seed, "init": "training.cyclegan.init_weights",
                   "ngf": arch["ngf"], "n_blocks": arch["n_blocks"],
                   "why": "no checkpoint in the model folder and none given (--checkpoint)"}
    n_params = sum(p.numel() for p in g.parameters())
    return g, manifest, {"architecture": arch, "weights": weights, "parameters": n_params}


def export_dynamic(g, path: Path, image_size: int, opset: int = 17) -> None:
    """ONNX with batch, height and width all dynamic (the project's exporter: dynamo=False)."""
    import torch

    dummy = torch.zeros(1, 3, image_size, image_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    # The legacy exporter warns that it is legacy, and that instance norm exports with input
    # statistics (which is what eval-mode InstanceNorm2d without running stats computes anyway).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(g, (dummy,), str(path), input_names=["sketch"], output_names=["anime"],
                          dynamic_axes={"sketch": axes, "anime": axes}, opset_version=opset, dynamo=False)


def make_session(path: Path, threads: int, provider: str):
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "cpu":
        wanted = ["CPUExecutionProvider"]
    elif provider == "cuda":
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        wanted = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if "CUDAExecutionProvider" in wanted and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - no CUDA libraries: the session falls back to the CPU
            pass
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    ort.set_default_logger_severity(4)  # a CUDA provider that cannot load is reported below instead
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
    finally:
        ort.set_default_logger_severity(2)
    return sess, {"requested": wanted, "active": sess.get_providers(), "intra_op_threads": threads,
                  "inter_op_threads": 1}


def model_inputs(manifest, sizes: list[int], batch: int, seed: int) -> dict[int, np.ndarray]:
    """(batch, 3, S, S) float32 inputs per size, from face doodles rendered as the API renders them."""
    from core.drawing import rasterize
    from core.preprocess import bitmap_to_input

    spec = manifest.input
    bitmaps = np.stack([
        rasterize(raw, spec.raster_size, line_diameter=spec.line_diameter, padding=spec.padding)
        for raw in face_drawings(batch, seed=seed)
    ])
    return {s: bitmap_to_input(bitmaps, s) for s in sizes}


def run(*, model_dir: Path = DEFAULT_MODEL_DIR, quick: bool = False, threads: int | None = None,
        sizes: tuple[int, ...] = (64, 128), batch: int = 8, checkpoint: Path | None = None,
        provider: str = "auto", seed: int = 0, iters: int | None = None, batch_iters: int | None = None,
        rounds: int | None = None, warmup: int | None = None) -> dict[str, Any]:
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    iters = iters or (3 if quick else 40)
    batch_iters = batch_iters or (2 if quick else 10)
    rounds = rounds or (1 if quick else 3)
    warmup = warmup if warmup is not None else (1 if quick else 5)

    g, manifest, origin = build_generator(Path(model_dir), checkpoint, seed)
    inputs = model_inputs(manifest, list(sizes), batch, seed)
    result: dict[str, Any] = {
        "quick": quick,
        "model_dir": rel(Path(model_dir)),
        "model": {"name": manifest.name, "version": manifest.version, "trained_image_size": manifest.input.image_size},
        **origin,
        "threads": {"torch_intra_op": threads, "onnxruntime_intra_op": threads},
        "params": {"sizes": list(sizes), "batch": batch, "iters_batch1": iters, "iters_batch": batch_iters,
                   "rounds": rounds, "warmup": warmup, "seed": seed},
    }
    with tempfile.TemporaryDirectory(prefix="d2a-bench-") as tmp:
        onnx_path = Path(tmp) / "generator_dynamic.onnx"
        export_dynamic(g, onnx_path, manifest.input.image_size)
        result["onnx"] = {"opset": 17, "dynamic_axes": ["batch", "height", "width"], "bytes": onnx_path.stat().st_size}
        sess, ort_info = make_session(onnx_path, threads, provider)
    result["onnxruntime"] = ort_info
    on_gpu = ort_info["active"][0] == "CUDAExecutionProvider"
    device = torch.device("cuda" if on_gpu and torch.cuda.is_available() else "cpu")
    g = g.to(device)
    result["torch"] = {"device": str(device), "num_threads": torch.get_num_threads(),
                       "note": None if (device.type == "cuda") == on_gpu else
                       "ONNX Runtime runs on CUDA but this torch has no CUDA: the engines are on different devices"}
    in_name = sess.get_inputs()[0].name

    def ort_run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {in_name: x})[0]

    def torch_run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return g(torch.from_numpy(x).to(device)).cpu().numpy()

    # Parity before any timing: the same weights must give the same pictures.
    tolerance = GPU_TOLERANCE if (on_gpu or device.type == "cuda") else CPU_TOLERANCE
    parity = {}
    for s in sizes:
        x = inputs[s]
        a, b = ort_run(x), torch_run(x)
        if a.shape != b.shape or a.shape != (batch, 3, s, s):
            raise ParityError(f"{s} px: output shapes differ: onnxruntime {a.shape}, torch {b.shape}")
        parity[str(s)] = float(np.abs(a - b).max())
    result["parity"] = {"max_abs_diff": parity, "tolerance": tolerance,
                        "ok": all(v <= tolerance for v in parity.values())}
    if not result["parity"]["ok"]:
        raise ParityError(f"ONNX Runtime and torch disagree: max |diff| {parity} > {tolerance:g}")

    rows = []
    for s in sizes:
        for bsz, n in ((1, iters), (batch, batch_iters)):
            x = np.ascontiguousarray(inputs[s][:bsz])
            t_ort, t_torch = [], []
            for r in range(rounds):  # alternate the engines so background load hits both alike
                w = warmup if r == 0 else 0
                t_ort += time_calls(lambda: ort_run(x), repeat=n, warmup=w)
                t_torch += time_calls(lambda: torch_run(x), repeat=n, warmup=w)
            row = {"size": s, "batch": bsz, "onnxruntime": summarize(t_ort), "torch": summarize(t_torch)}
            row["onnxruntime"]["images_per_s"] = round(bsz * len(t_ort) / sum(t_ort), 3)
            row["torch"]["images_per_s"] = round(bsz * len(t_torch) / sum(t_torch), 3)
            # > 1: ONNX Runtime is faster than torch by that factor.
            row["speedup_ort_over_torch_p50"] = ratio(row["torch"]["p50_ms"], row["onnxruntime"]["p50_ms"])
            rows.append(row)
    result["results"] = rows
    return result


def print_summary(result: dict[str, Any]) -> None:
    prov = result["onnxruntime"]["active"][0].replace("ExecutionProvider", "")
    w = result["weights"]
    print(f"translate ({'QUICK: noisy' if result['quick'] else 'full'}): onnxruntime {prov} vs torch "
          f"{result['torch']['device']}, {result['threads']['torch_intra_op']} threads, weights: {w['kind']}"
          f" (ngf {w['ngf']}, {w['n_blocks']} blocks)")
    print(f"  parity max |ort - torch|: " + ", ".join(f"{k} px {v:.2e}" for k, v in result["parity"]["max_abs_diff"].items()))
    print(f"  {'size':>4} {'batch':>5} {'ort p50':>9} {'ort p99':>9} {'torch p50':>10} {'torch p99':>10} "
          f"{'ort img/s':>10} {'torch img/s':>12} {'speed-up':>9}")
    for r in result["results"]:
        o, t = r["onnxruntime"], r["torch"]
        print(f"  {r['size']:>4} {r['batch']:>5} {fmt_ms(o['p50_ms']):>9} {fmt_ms(o['p99_ms']):>9} "
              f"{fmt_ms(t['p50_ms']):>10} {fmt_ms(t['p99_ms']):>10} {o['images_per_s']:>10.1f} "
              f"{t['images_per_s']:>12.1f} {r['speedup_ort_over_torch_p50']!s:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="model folder with a manifest.json")
    parser.add_argument("--quick", action="store_true", help="3 calls batch 1, 2 calls batch N, one round (smoke test, noisy)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads for BOTH torch and "
                        "ONNX Runtime (default: os.cpu_count())")
    parser.add_argument("--sizes", default="64,128", help="image sides, comma separated (default 64,128)")
    parser.add_argument("--batch", type=int, default=8, help="batch size of the throughput rows (default 8)")
    parser.add_argument("--checkpoint", type=Path, help="a training checkpoint or snapshot (.pt) to take weights from")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto",
                        help="ONNX Runtime provider: auto takes CUDA when it loads, else the CPU")
    parser.add_argument("--iters", type=int, help="timed calls per round at batch 1 (default 40, quick 3)")
    parser.add_argument("--batch-iters", type=int, help="timed calls per round at batch N (default 10, quick 2)")
    parser.add_argument("--rounds", type=int, help="alternating ORT/torch rounds (default 3, quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    before = machine()
    try:
        result = run(model_dir=args.model_dir, quick=args.quick, threads=args.threads,
                     sizes=tuple(int(s) for s in args.sizes.split(",")), batch=args.batch,
                     checkpoint=args.checkpoint, provider=args.provider, seed=args.seed, iters=args.iters,
                     batch_iters=args.batch_iters, rounds=args.rounds)
    except ParityError as exc:
        write_result(NAME, {"machine": before, "quick": args.quick, "error": str(exc)})
        print(f"translate: {exc}", file=sys.stderr)
        return 1
    path = write_result(NAME, {"machine": before, **result})
    print_summary(result)
    print(f"  written: {rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
