"""Data sets: the built-in ones and uploads (a zip of images, a Quick, Draw! .ndjson or a
numpy_bitmap .npy), each checked before anything is kept."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from backend import datasets as ds
from backend.db import crud
from backend.db.models import Dataset
from backend.deps import AdminDep, DbDep, IdPath, SettingsDep
from backend.routes.admin import ADMIN_ONLY
from backend.schemas import Name

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ONLY)


class DatasetOut(BaseModel):
    id: int
    name: str
    kind: str
    item_count: int
    content_sha256: str
    builtin: bool
    has_preview: bool
    created_at: Any


def dataset_out(d: Dataset) -> DatasetOut:
    return DatasetOut(id=d.id, name=d.name, kind=d.kind, item_count=d.item_count, content_sha256=d.content_sha256,
                      builtin=d.builtin, has_preview=bool(d.preview and Path(d.preview).is_file()),
                      created_at=d.created_at)


@router.get("/datasets", summary="Data sets with their item counts.")
def list_datasets(admin: AdminDep, db: DbDep) -> list[DatasetOut]:
    return [dataset_out(d) for d in crud.list_datasets(db)]


@router.post("/datasets", status_code=201,
             summary="Upload a data set: a zip of images, a Quick, Draw! .ndjson or a numpy_bitmap .npy.",
             responses={409: {"description": "A data set of that name exists."},
                        413: {"description": "Too large (file, unpacked size, decoded pixels or item count)."},
                        415: {"description": "Not a kind of file that is accepted."},
                        422: {"description": "The content broke a rule; `detail` says which."}})
async def upload_dataset(admin: AdminDep, db: DbDep, settings: SettingsDep, file: UploadFile,
                         name: Annotated[Name, Form()]) -> DatasetOut:
    limits = ds.Limits(settings.upload_max_bytes, settings.upload_max_unpacked_bytes, settings.upload_max_files,
                       settings.upload_max_total_pixels)
    if crud.get_dataset_by_name(db, name=name) is not None:
        raise HTTPException(status_code=409, detail=f"a data set named {name!r} exists already")
    try:
        ds.kind_for(file.filename or "")
    except ds.UploadRejected as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message) from None
    scratch_dir = settings.datasets_dir / ".incoming"
    scratch_dir.mkdir(parents=True, exist_ok=True)
    scratch = scratch_dir / f"{uuid.uuid4().hex}.part"
    try:
        written = 0
        with open(scratch, "wb") as out:
            while chunk := await file.read(1 << 20):
                written += len(chunk)
                if written > limits.max_bytes:
                    raise ds.UploadRejected(413, f"the file is over the upload limit of {limits.max_bytes} bytes")
                out.write(chunk)
        checked, stored, preview = await asyncio.to_thread(
            ds.store_upload, scratch, file.filename or "", settings.datasets_dir, limits)
    except ds.UploadRejected as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message) from None
    finally:
        scratch.unlink(missing_ok=True)
    d = crud.register_dataset(db, name=name, kind=checked.kind, location=str(stored),
                              content_sha256=checked.sha256, item_count=checked.item_count,
                              preview=str(preview), builtin=False)
    return dataset_out(d)


@router.get("/datasets/{dataset_id}/preview", summary="A grid of the data set's first items (PNG).",
            response_class=FileResponse)
def dataset_preview(dataset_id: IdPath, admin: AdminDep, db: DbDep) -> FileResponse:
    d = crud.get_dataset(db, dataset_id=dataset_id)
    if d is None:
        raise HTTPException(status_code=404, detail=f"data set {dataset_id} does not exist")
    if not d.preview or not Path(d.preview).is_file():
        raise HTTPException(status_code=404, detail="this data set has no preview")
    return FileResponse(d.preview, media_type="image/png")
