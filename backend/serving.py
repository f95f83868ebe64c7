"""Which model serves the drawing endpoint, and picking up a promotion without a restart.

The database says which model version of the default model name is active (and which versions
are in its ensemble). Every API process polls that choice every few seconds; when it changes,
the new version is loaded and checked (sha256 of every file) beside the old one and then swapped
in atomically, so a request in flight finishes on the ensemble it started with. A version that
fails its check is refused and the previous one keeps serving. With no active version in the
database, the bundled model in ``models/`` serves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from backend.db import crud
from backend.settings import Settings
from core.manifest import ModelIntegrityError
from core.runtime import Ensemble

log = logging.getLogger(__name__)


class ModelStore:
    """The ensemble that serves the drawing endpoint, behind a lock so a new one replaces it
    atomically: a request in flight keeps the ensemble it started with."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Ensemble | None = None
        self.error: str | None = None

    def get(self) -> Ensemble | None:
        with self._lock:
            return self._current

    def load(self, folder: Path, providers: list[str], intra_op_threads: int = 0,
             extra_folders: list[Path] | None = None) -> Ensemble:
        """Load and verify a model; only when that succeeds does it replace the current one."""
        ensemble = Ensemble(folder, providers, intra_op_threads, extra_folders)
        with self._lock:
            self._current = ensemble
            self.error = None
        return ensemble


@dataclass(frozen=True)
class ServingChoice:
    """What should serve: the active version's folder (or the bundled one) and extra members."""

    folder: Path
    version_id: int | None
    extra_folders: tuple[Path, ...] = ()

    @property
    def key(self) -> tuple:
        return (str(self.folder), self.version_id, tuple(str(f) for f in self.extra_folders))


def current_choice(session: Session, settings: Settings) -> ServingChoice:
    name = settings.default_model
    active = crud.get_active_model_version(session, name=name)
    extras = [v for v in crud.list_ensemble_versions(session) if not v.active]
    folder = Path(active.folder) if active is not None else settings.models_dir / name
    return ServingChoice(folder=folder, version_id=active.id if active is not None else None,
                         extra_folders=tuple(Path(v.folder) for v in extras))


class ServingWatcher:
    """Keeps the store on the database's choice; ``check`` is one round, ``run`` loops."""

    def __init__(self, store: ModelStore, Session: sessionmaker, settings: Settings):
        self.store = store
        self.Session = Session
        self.settings = settings
        self.loaded_key: tuple | None = None
        self.refused_key: tuple | None = None

    def load(self, choice: ServingChoice) -> bool:
        """Load ``choice`` into the store; False (and the old model keeps serving) when refused."""
        try:
            self.store.load(choice.folder, self.settings.providers, self.settings.intra_op_threads,
                            extra_folders=list(choice.extra_folders))
        except (ModelIntegrityError, OSError, ValueError) as exc:
            self.refused_key = choice.key
            if self.store.get() is None:
                self.store.error = str(exc)
            log.error("model %s refused, the previous one keeps serving: %s", choice.folder, exc)
            return False
        self.loaded_key = choice.key
        self.refused_key = None
        log.info("serving %s (version id %s, %d extra ensemble folders)",
                 choice.folder, choice.version_id, len(choice.extra_folders))
        return True

    def check(self) -> bool:
        """One poll: load the database's choice if it changed. True when a new model was loaded."""
        with self.Session() as session:
            choice = current_choice(session, self.settings)
        if choice.key in (self.loaded_key, self.refused_key):
            return False
        return self.load(choice)

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop serving
                log.exception("could not check which model should serve")
