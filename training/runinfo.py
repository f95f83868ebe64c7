"""What a training run ran on, recorded in the run folder and carried into the model manifest.

Each time a trainer starts (fresh or resumed) it appends one line to ``sessions.jsonl`` in its run
folder: when, from which step, on which device, CPU model, core count and torch threads, and the
GPU's name when it trained on one. A run resumed on another machine therefore keeps both. Export
reads the sessions and the loss log's total training time into the manifest's ``training`` block,
so a shipped model says where and how long it was trained.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

import torch

from core.hostinfo import cpu_model

SESSIONS_FILE = "sessions.jsonl"


def hardware(device: torch.device | str) -> dict:
    """The hardware a trainer on ``device`` runs on, as of now (threads: torch's current setting)."""
    device = torch.device(device)
    info = {
        "device": device.type,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def record_session(run_dir: Path, start_step: int, device: torch.device | str) -> dict:
    """Append this session's line to the run's ``sessions.jsonl``; returns it."""
    entry = {"started": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
             "start_step": int(start_step), **hardware(device)}
    with open(Path(run_dir) / SESSIONS_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def read_sessions(run_dir: Path) -> list[dict]:
    """The sessions a run recorded (empty for runs made before sessions were recorded)."""
    path = Path(run_dir) / SESSIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wall_time(run_dir: Path) -> float | None:
    """Training time over all sessions: the ``elapsed`` of the loss log's last line."""
    path = Path(run_dir) / "loss_log.jsonl"
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    return json.loads(lines[-1]).get("elapsed") if lines else None


def training_record(run_dir: Path, config: dict, opset: int, **extra) -> dict:
    """The manifest's ``training`` block for an export of ``run_dir``."""
    run_dir = Path(run_dir)
    return {"config": config, "run": run_dir.name, **extra, "wall_time_s": wall_time(run_dir),
            "sessions": read_sessions(run_dir), "exported_with_torch": torch.__version__, "opset": opset}
