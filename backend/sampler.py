"""The work of the ``sampling`` queue: random faces from the installed StyleGAN
(``core.runtime.FaceModel``, ONNX Runtime, no torch), stored under the request's cache key; the
waiting route is told when a request is finished (``backend.jobs.notify``).
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
        model = FaceModel(Path(folder), settings.providers, settings.intra_op_threads)
        from backend.serving import UpscalerSlot

        model.upscaler = UpscalerSlot(settings).get()   # None (Lanczos) where unset or it will not load
        _models[key] = model
    return _models[key]


def run_sample_request(request_id: int) -> str:
    """The sampling task: make the request's picture and store it under its cache key; the
    request's row says done (with the file) or failed (with the reason)."""
    from backend.db import crud
    from backend.jobs import notify
    from backend.jobs.service import session_factory
    from backend.settings import get_settings

    settings = get_settings()
    with session_factory()() as db:
        req = crud.start_sample_request(db, request_id=request_id)
        if req is None:
            return "skipped"
        try:
            data, media_type = model_for(req.model_folder).render(sample_request(req.kind, req.params))
            suffix = ".gif" if media_type == "image/gif" else ".png"
            out = Path(settings.samples_dir) / f"{req.cache_key}{suffix}"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(out)
            crud.finish_sample_request(db, request_id=request_id, result_path=str(out), media_type=media_type)
        except crud.StateError as exc:  # another delivery of the same request finished it first
            log.warning("sample request %d: %s", request_id, exc)
        except Exception as exc:  # noqa: BLE001 - the request says what went wrong
            log.exception("sample request %d failed", request_id)
            crud.fail_sample_request(db, request_id=request_id, error=f"{type(exc).__name__}: {exc}")
        notify.publish_sample_finished(settings.redis_url, request_id)
        return req.status
