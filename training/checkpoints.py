"""What every trainer's checkpoint shares: it is written atomically (a crash mid-write leaves the
previous one), read back only when it is of the trainer's kind and format, and compared with the
trainer's config field by field (a trainer decides which changed fields it can resume with)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from pydantic import BaseModel


def atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path, kind: str, format_version: int, *, title: str | None = None) -> dict | None:
    """The checkpoint at ``path`` (None when there is none); a ValueError when it is of another
    kind or format. ``title`` names the kind in that message (default: ``kind``)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format_version") != format_version or state.get("kind") != kind:
        raise ValueError(f"{path} is not a {title or kind} checkpoint of format {format_version} "
                         f"(it says kind {state.get('kind')!r}, format {state.get('format_version')!r})")
    return state


def changed_fields(saved: BaseModel, current: BaseModel) -> list[str]:
    """The config fields whose values differ, sorted."""
    a, b = saved.model_dump(), current.model_dump()
    return sorted(k for k in a if a[k] != b.get(k))
