"""The ``doodle2anime`` command: one sub-command per verb.

Training and export import torch lazily, so ``serve`` never loads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from backend.settings import env_example, get_settings
from core.kinds import EVALUATE, KINDS, ModelKind, UnknownKind, get_kind

log = logging.getLogger("doodle2anime")

EXAMPLES = {
    "serve": "  doodle2anime serve\n  doodle2anime serve --host 0.0.0.0 --port 8080",
    "train": (
        "  doodle2anime train --config training/configs/cpu_default.json --run-dir runs/cpu_default\n"
        "  doodle2anime train --config training/configs/doodle_encoder_cpu.json --run-dir runs/doodle_encoder --threads 2\n"
        "  doodle2anime train --config training/configs/tiny.json --run-dir runs/tiny --set steps=20 --threads 2\n"
        "  doodle2anime train --config training/configs/gpu.json --run-dir runs/gpu --device cuda\n"
        "  doodle2anime train --config training/configs/gan_stylegan_cpu.json --run-dir runs/stylegan_cpu --threads 2\n"
        "  doodle2anime train --kind dcgan --run-dir runs/dcgan --set steps=3000 --set image_size=32\n"
        "A run resumes from runs/NAME/checkpoints/latest.pt when it exists (--fresh starts over).\n"
        "--kind: a drawing model (cyclegan, the default; discogan, unit, lineart; doodle_encoder) or an\n"
        "unconditional face generator (dcgan, lsgan, wgan_div, stylegan); a config file that names its\n"
        "kind needs no --kind."
    ),
    "worker": (
        "  doodle2anime worker                      # both queues, one job at a time\n"
        "  REDIS_URL=redis://127.0.0.1:6379/0 doodle2anime worker --queues training\n"
        "Without REDIS_URL the worker and the API share an embedded broker (a SQLite file under var/)."
    ),
    "settings": (
        "  doodle2anime settings                                  # the settings in effect here\n"
        "  doodle2anime settings --env-example > .env.example     # every setting, described, with its default"
    ),
    "admin": (
        "  doodle2anime admin create --username alice          # asks for the password twice\n"
        "  printf 'secret\\n' | doodle2anime admin create --username alice --password-stdin\n"
        "  doodle2anime admin list"
    ),
    "report": (
        "  doodle2anime report --run-dir runs/cpu_default --model models/sketch2anime --out docs/img/cpu_default\n"
        "  doodle2anime report --run-dir runs/dcgan_cpu --model /tmp/dcgan --out docs/img/dcgan_cpu"
    ),
    "export": (
        "  doodle2anime export --run-dir runs/cpu_default --snapshots 6000,7000,8000 --out models/sketch2anime\n"
        "  doodle2anime export --run-dir runs/tiny --out /tmp/tiny_model --name tiny\n"
        "  doodle2anime export --run-dir runs/stylegan_cpu --out models/anime_faces   # mapping + synthesis\n"
        "  doodle2anime export --run-dir runs/dcgan --out /tmp/dcgan --name dcgan     # one generator graph\n"
        "GAN runs (the checkpoint says its kind) export their latest checkpoint."
    ),
    "evaluate-drawing": (
        "  doodle2anime evaluate-drawing --out docs/figures/drawing_eval\n"
        "  doodle2anime evaluate-drawing --models models/doodle_encoder var/models/doodle_encoder-job4 --out eval/"
    ),
    "evaluate": (
        "  doodle2anime evaluate --model models/sketch2anime --samples 400\n"
        "  doodle2anime evaluate --model var/models/anime_faces-job3 --samples 5000 \\\n"
        "      --inception-weights weights/pt_inception-2015-12-05-6726825d.pth --out metrics.json\n"
        "  doodle2anime evaluate --version-id 3 --samples 5000      # stores the metrics on version 3\n"
        "Without Inception weights (D2A_INCEPTION_WEIGHTS or --inception-weights) the metrics are\n"
        "fid_randconv / kid_randconv from a substitute extractor: NOT comparable to published FID."
    ),
}


def _parse_set(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def embedded_worker_wanted(settings, no_worker: bool = False) -> tuple[bool, str]:
    """Whether ``serve`` also starts a job worker, and why (for the log).

    On one machine with the embedded broker, the run command is all an admin needs: jobs
    launched from the dashboard run in a worker process it starts beside the API (the API itself
    never imports torch). With Redis, workers are started on their own (GPU machines)."""
    import importlib.util

    if no_worker or not settings.embedded_worker:
        return False, "turned off (D2A_EMBEDDED_WORKER=0 or --no-worker)"
    if settings.redis_url:
        return False, "REDIS_URL is set: start workers with `doodle2anime worker`"
    if importlib.util.find_spec("torch") is None:
        return False, "torch is not installed here (scripts/setup.sh dev installs it)"
    return True, "embedded broker and torch available"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.jobs.embedded import EmbeddedWorkers

    settings = get_settings()
    start, why = embedded_worker_wanted(settings, args.no_worker)
    workers = EmbeddedWorkers() if start else None
    if workers is not None:
        log.info("starting job workers beside the API (%s)", why)
        workers.start()
    else:
        log.info("no job worker started with the API: %s", why)
    try:
        uvicorn.run(
            "backend.app:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            log_level=settings.log_level,
            # The app decides whom to believe about client addresses (settings.trusted_proxies);
            # uvicorn's own X-Forwarded-For handling would trust any local peer.
            proxy_headers=False,
        )
    finally:
        if workers is not None:
            workers.stop()
    return 0


def _kind(name: str) -> ModelKind:
    try:
        return get_kind(name)
    except UnknownKind as exc:
        raise SystemExit(str(exc)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    raw = json.loads(Path(args.config).read_text()) if args.config else {}
    raw.update(_parse_set(args.set))
    kind = _kind(args.kind or raw.get("kind") or "cyclegan")
    if raw.get("kind", kind.name) != kind.name:
        raise SystemExit(f"--kind {kind.name}, but the config says kind {raw['kind']!r}")
    config = kind.config.model_validate(raw)
    run_dir = Path(args.run_dir)
    data_dir = Path(args.data_dir) if args.data_dir else get_settings().data_dir
    models = {"models_dir": get_settings().models_dir} if kind.builds_on_models else {}
    trainer = kind.trainer.load()(config, run_dir, data_dir, threads=args.threads, device=args.device, **models)
    bar = tqdm(total=getattr(config, "total_steps", config.steps), unit="step", dynamic_ncols=True, disable=args.quiet)

    def on_progress(p):
        bar.n = p.step
        if p.losses:
            bar.set_postfix({k: f"{v:.3f}" for k, v in p.losses.items() if k in kind.shown_losses}, refresh=False)
        bar.refresh()
        if p.sample_path:
            log.info("step %d: sample grid %s %s", p.step, p.sample_path, p.metrics)

    metrics = trainer.run(on_progress, resume=not args.fresh)
    bar.close()
    print(json.dumps({"run_dir": str(run_dir), "step": trainer.step, "elapsed_s": round(trainer.elapsed, 1), **metrics}, indent=2))
    return 0


def _run_kind(run_dir: Path, default: str | None = None) -> ModelKind:
    """The kind a training run says it is in its config.json (``default`` when it has none)."""
    config = run_dir / "config.json"
    if not config.is_file():
        if default is None:
            raise SystemExit(f"{run_dir} is not a training run (no config.json)")
        return _kind(default)
    return _kind(str(json.loads(config.read_text()).get("kind", "cyclegan")))


def cmd_export(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else get_settings().data_dir
    kind = _run_kind(Path(args.run_dir), default="cyclegan")
    snapshots = [int(s) for s in args.snapshots.split(",")] if args.snapshots else None
    try:
        models = {"models_dir": get_settings().models_dir} if kind.builds_on_models else {}
        manifest = kind.exporter.load()(Path(args.run_dir), Path(args.out), name=args.name or kind.model_name,
                                        version=args.version, snapshots=snapshots, data_dir=data_dir, **models)
    except ValueError as exc:  # an option this kind's export does not take
        raise SystemExit(str(exc)) from None
    print(json.dumps({"out": str(args.out), "members": [m.file for m in manifest.members]}, indent=2))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    kind = _run_kind(Path(args.run_dir))
    data_dir = Path(args.data_dir) if args.data_dir else get_settings().data_dir
    made = kind.report.load()(Path(args.run_dir), Path(args.model), Path(args.out), data_dir=data_dir,
                              columns=args.columns)
    print(json.dumps(made, indent=2))
    return 0


def format_table(metrics: dict) -> str:
    """Two aligned columns, metric and value, for the terminal."""
    rows = [(k, f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in metrics.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from backend.db import crud

    settings = get_settings()
    folder = Path(args.model) if args.model else None
    engine = Session = None
    if args.version_id is not None:
        from backend.db.session import make_engine, make_sessionmaker, upgrade_database

        upgrade_database(settings.database_url)
        engine = make_engine(settings.database_url)
        Session = make_sessionmaker(engine)
        with Session() as s:
            version = crud.get_model_version(s, version_id=args.version_id)
            if version is None:
                raise SystemExit(f"model version {args.version_id} does not exist")
            folder = folder or Path(version.folder)
    if folder is None:
        raise SystemExit("evaluate needs --model or --version-id")
    weights = Path(args.inception_weights).expanduser() if args.inception_weights else settings.inception_weights
    metrics = EVALUATE.load()(
        folder, args.samples, data_dir=Path(args.data_dir) if args.data_dir else settings.data_dir,
        real_path=Path(args.real) if args.real else None, real_limit=args.real_limit,
        inception_weights=weights, device=args.device,
        batch_size=args.batch_size or settings.metrics_batch_size,
        threads=args.threads if args.threads is not None else settings.metrics_threads,
        cache_dir=Path(args.cache_dir) if args.cache_dir else settings.metrics_cache_dir,
        providers=settings.providers, kid_subsets=args.kid_subsets, seed=args.seed)
    print(format_table(metrics))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(metrics, indent=2) + "\n")
        log.info("metrics written to %s", args.out)
    if Session is not None:
        with Session() as s:
            crud.store_evaluation(s, version_id=args.version_id, metrics=metrics)
        engine.dispose()
        log.info("metrics stored on model version %d", args.version_id)
    return 0


def cmd_evaluate_drawing(args: argparse.Namespace) -> int:
    from core.kinds import EVALUATE_DRAWING

    settings = get_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    folders = [Path(m) for m in args.models] if args.models else [
        settings.models_dir / name for name in settings.drawing_models if (settings.models_dir / name).is_dir()]
    prior = Path(args.prior) if args.prior else settings.models_dir / settings.face_model
    summary = EVALUATE_DRAWING.load()(folders, prior, data_dir, Path(args.out), doodles=args.doodles,
                                      cache_dir=settings.metrics_cache_dir, detect_seeds=args.detect_seeds)
    print((Path(args.out) / "drawing_eval.md").read_text())
    print(f"{len(summary['rows'])} rows in {summary['wall_s']} s; figures in {args.out}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from backend.jobs.celery_app import QUEUES
    from backend.jobs.tasks import celery_app

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s) {', '.join(unknown)}; valid: {', '.join(QUEUES)}")
    argv = ["worker", "--queues", ",".join(queues), "--concurrency", str(args.concurrency),
            "--loglevel", args.loglevel, "--without-gossip", "--without-mingle"]
    if args.concurrency == 1:
        argv += ["--pool", "solo"]  # one job at a time in this process: heartbeats and cancel stay simple
    if args.hostname:
        argv += ["--hostname", args.hostname]
    celery_app.worker_main(argv)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.env_example:
        sys.stdout.write(env_example())
        return 0
    settings = get_settings()
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        shown = "(hidden)" if field.repr is False and value else json.dumps(value) if isinstance(value, list) else value
        print(f"D2A_{name.upper()}={'' if shown is None else shown}")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    import getpass

    from backend.db import crud
    from backend.db.session import make_engine, make_sessionmaker, upgrade_database

    settings = get_settings()
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        if args.action == "list":
            for a in crud.list_admins(session):
                print(f"{a.id}\t{a.username}\t{'disabled' if a.disabled else 'enabled'}")
            return 0
        if not args.username:
            raise SystemExit("admin create needs --username")
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("password: ")
            if password != getpass.getpass("again: "):
                raise SystemExit("the two passwords differ")
        if len(password) < 8:
            raise SystemExit("choose a password of at least 8 characters")
        try:
            admin = crud.create_admin(session, username=args.username, password=password)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        print(f"admin {admin.username!r} created (id {admin.id})")
    engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doodle2anime", description="Draw a face, get an anime face.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog="examples:\n" + EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("serve", "Run the web app and REST API (ONNX Runtime; no torch).")
    p.add_argument("--host", type=str, default=None, help="interface to bind (default: settings.host)")
    p.add_argument("--port", type=int, default=None, help="port (default: settings.port)")
    p.add_argument("--no-worker", action="store_true", help="do not start a job worker beside the API")
    p.set_defaults(func=cmd_serve)

    p = add("worker", "Run a job worker (Celery) for training and sampling jobs.")
    p.add_argument("--queues", type=str, default="training,sampling", help="comma-separated queues to take jobs from")
    p.add_argument("--concurrency", type=int, default=1, help="jobs at once (1: in this process)")
    p.add_argument("--hostname", type=str, default=None, help="worker name, e.g. gpu1@%%h")
    p.add_argument("--loglevel", type=str, default="info")
    p.set_defaults(func=cmd_worker)

    p = add("settings", "Show the settings in effect, or write the .env.example of every setting.")
    p.add_argument("--env-example", action="store_true",
                   help="print every setting with its description and default, as .env.example holds them")
    p.set_defaults(func=cmd_settings)

    p = add("admin", "Create or list dashboard admins.")
    p.add_argument("action", choices=["create", "list"])
    p.add_argument("--username", type=str, default=None)
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=cmd_admin)

    p = add("train", "Train a sketch->anime CycleGAN, or an unconditional anime-face generator.")
    p.add_argument("--kind", type=str, default=None, choices=list(KINDS),
                   help="what to train (default: the config file's kind, else cyclegan)")
    p.add_argument("--config", type=str, default=None,
                   help="JSON config file (fields of CycleGANConfig, or of the kind's GAN config)")
    p.add_argument("--set", type=str, action="append", default=[], metavar="KEY=VALUE", help="override one config field")
    p.add_argument("--run-dir", type=str, required=True, help="where checkpoints, samples and logs go")
    p.add_argument("--data-dir", type=str, default=None, help="data folder (default: settings.data_dir)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", type=str, default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = add("export", "Export generator snapshots of a run to ONNX with a manifest.")
    p.add_argument("--run-dir", type=str, required=True, help="the training run to export from")
    p.add_argument("--out", type=str, required=True, help="model folder to write (manifest.json + member_*.onnx)")
    p.add_argument("--snapshots", type=str, default=None, help="comma-separated snapshot steps (default: the latest checkpoint)")
    p.add_argument("--name", type=str, default=None,
                   help="model name in the manifest (default: the kind's: "
                        + ", ".join(f"{k.model_name} for {k.name}" for k in KINDS.values()) + ")")
    p.add_argument("--version", type=str, default="1", help="model version in the manifest")
    p.add_argument("--data-dir", type=str, default=None, help="data folder, for the manifest's data hashes")
    p.set_defaults(func=cmd_export)

    p = add("report", "Figures for a write-up: loss curves, and a held-out doodle grid with held-out checks "
                      "(CycleGAN) or random faces from fixed seeds (face GANs; StyleGAN adds truncation, mixing, interpolation).")
    p.add_argument("--run-dir", type=str, required=True, help="the training run (for its loss log)")
    p.add_argument("--model", type=str, required=True, help="the exported model folder")
    p.add_argument("--out", type=str, required=True, help="folder for the figures and checks JSON")
    p.add_argument("--columns", type=int, default=16, help="held-out doodles per grid")
    p.add_argument("--data-dir", type=str, default=None, help="data folder (default: settings.data_dir)")
    p.set_defaults(func=cmd_report)

    p = add("evaluate", "FID and KID of an exported model against its real faces.")
    p.add_argument("--model", type=str, default=None, help="the exported model folder (default with --version-id: its folder)")
    p.add_argument("--samples", type=int, default=5000, help="generated images to compare (a sketch2anime model: at most 400 per member)")
    p.add_argument("--inception-weights", type=str, default=None,
                   help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (default: settings.inception_weights)")
    p.add_argument("--out", type=str, default=None, help="write the metrics to this JSON file")
    p.add_argument("--version-id", type=int, default=None, help="store the metrics on this model version in the database")
    p.add_argument("--real", type=str, default=None, help="image zip of real faces (default: the model's training faces)")
    p.add_argument("--real-limit", type=int, default=None, help="use only the first N real images (default: all)")
    p.add_argument("--batch-size", type=int, default=None, help="images per feature batch (default: settings.metrics_batch_size)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: settings.metrics_threads)")
    p.add_argument("--device", type=str, default="auto", help="torch device for the Inception: auto, cpu or cuda")
    p.add_argument("--cache-dir", type=str, default=None, help="real-set feature cache (default: settings.metrics_cache_dir)")
    p.add_argument("--kid-subsets", type=int, default=100, help="subsets of up to 1000 the KID is averaged over")
    p.add_argument("--seed", type=int, default=0, help="seeds the latents and the KID subsets")
    p.add_argument("--data-dir", type=str, default=None, help="data folder (default: settings.data_dir)")
    p.set_defaults(func=cmd_evaluate)

    p = add("evaluate-drawing", "Every drawing model beside random StyleGAN faces and real faces, on held-out "
                                "doodles and faces: realism, diversity, matching, following, controlled edits.")
    p.add_argument("--models", nargs="*", default=None,
                   help="exported drawing model folders (default: the bundled drawing models)")
    p.add_argument("--prior", type=str, default=None, help="the StyleGAN whose random faces are the baseline "
                                                            "(default: settings.face_model)")
    p.add_argument("--doodles", type=int, default=400, help="held-out real doodles (a multiple of 50)")
    p.add_argument("--detect-seeds", type=int, default=2,
                   help="fresh real-vs-generated classifiers per row for the told-apart column (0: none; "
                        "about 15 s each on two CPU cores)")
    p.add_argument("--out", type=str, required=True, help="folder for drawing_eval.json / .md and the grids")
    p.add_argument("--data-dir", type=str, default=None, help="data folder (default: settings.data_dir)")
    p.set_defaults(func=cmd_evaluate_drawing)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
