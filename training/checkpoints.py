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


def save_small_run(path: Path, *, kind: str, format_version: int, config: dict, net: torch.nn.Module,
                   opt: torch.optim.Optimizer, step: int, elapsed: float, history: list) -> None:
    """The checkpoint of a small trainer (one network, one optimiser, a loss history): the face
    check's and the stroke reader's."""
    atomic_save({"kind": kind, "format_version": format_version, "config": config, "net": net.state_dict(),
                 "opt": opt.state_dict(), "step": step, "elapsed": elapsed, "history": history}, path)


def resume_small_run(path: Path, *, kind: str, format_version: int, config: dict, net: torch.nn.Module,
                     opt: torch.optim.Optimizer) -> tuple[int, float, list]:
    """(step, elapsed seconds, history) of a ``save_small_run`` checkpoint, its weights and
    optimiser state loaded into ``net`` and ``opt``; (0, 0.0, []) when there is none. A ValueError
    when it was made with another config: a resumed run must take the steps the first one would."""
    state = read_checkpoint(path, kind, format_version)
    if state is None:
        return 0, 0.0, []
    if state["config"] != config:
        raise ValueError(f"{path} was made with another config; use a new run folder")
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    return state["step"], state["elapsed"], state["history"]
