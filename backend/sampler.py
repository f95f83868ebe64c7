"""The work of the ``sampling`` queue: random faces from the installed StyleGAN
(``core.runtime.FaceModel``, ONNX Runtime, no torch), stored under the request's cache key.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.faces import sample_request
from core.runtime import FaceModel

log = logging.getLogger(__name__)


_models: dict[str, FaceModel] = {}


def model_for(folder: str) -> FaceModel:
    """One loaded model per folder and process (the worker keeps it between requests); a folder
    whose manifest changed is loaded again. It runs on the settings' providers and threads."""
    from backend.settings import get_settings

    manifest = Path(folder) / "manifest.json"
    key = f"{folder}:{manifest.stat().st_mtime_ns}"
    if key not in _models:
        _models.clear()
        settings = get_settings()
        _models[key] = FaceModel(Path(folder), settings.providers, settings.intra_op_threads)
    return _models[key]


def run_sample_request(request_id: int) -> str:
    """The sampling task: make the request's picture, store it under its cache key."""
    from backend.db.models import SampleRequest, utcnow
    from backend.jobs.service import session_factory
    from backend.settings import get_settings

    settings = get_settings()
    with session_factory()() as db:
        req = db.get(SampleRequest, request_id)
        if req is None or req.status not in ("queued", "running"):
            return "skipped"
        req.status = "running"
        db.commit()
        try:
            data, media_type = model_for(req.model_folder).render(sample_request(req.kind, req.params))
            suffix = ".gif" if media_type == "image/gif" else ".png"
            out = Path(settings.samples_dir) / f"{req.cache_key}{suffix}"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(out)
            req.status, req.result_path, req.media_type = "done", str(out), media_type
        except Exception as exc:  # noqa: BLE001 - the request says what went wrong
            log.exception("sample request %d failed", request_id)
            req.status, req.error = "failed", f"{type(exc).__name__}: {exc}"
        req.finished_at = utcnow()
        db.commit()
        return req.status
