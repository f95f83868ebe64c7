"""Which models serve the drawing endpoint, and picking up a promotion without a restart.

Several drawing models serve side by side (``settings.drawing_models``: the doodle encoder on the
StyleGAN prior and the CycleGAN ensemble), each under its name; a request picks one, or gets
``settings.default_model``. For each name the database says which version is active (and, for
an ensemble, which versions join it). Every API process polls that choice every few seconds;
when it changes, the new version is loaded and checked (sha256 of every file) beside the old one
and then swapped in atomically, so a request in flight finishes on the model it started with. A
version that fails its check is refused and the previous one keeps serving. With no active
version in the database, the bundled model in ``models/<name>`` serves.
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
from core.runtime import DrawingModel, open_drawing_model

log = logging.getLogger(__name__)


class ModelStore:
    """The drawing models that serve, by name, behind a lock so a new version replaces the old
    one atomically: a request in flight keeps the model it started with."""

    def __init__(self, default: str = "sketch2anime") -> None:
        self._lock = threading.Lock()
        self._current: dict[str, DrawingModel] = {}
        self.errors: dict[str, str] = {}
        self.default = default

    def get(self, name: str | None = None) -> DrawingModel | None:
        with self._lock:
            return self._current.get(name or self.default)

    def names(self) -> list[str]:
        """The names that serve, the default first."""
        with self._lock:
            return sorted(self._current, key=lambda n: (n != self.default, n))

    @property
    def error(self) -> str | None:
        """Why the default model is not serving (None when it is, or while it loads)."""
        return self.errors.get(self.default)

    @error.setter
    def error(self, message: str | None) -> None:
        self.set_error(self.default, message)

    def set_error(self, name: str, message: str | None) -> None:
        if message is None:
            self.errors.pop(name, None)
        else:
            self.errors[name] = message

    def load(self, folder: Path, providers: list[str], intra_op_threads: int = 0,
             extra_folders: list[Path] | None = None, *, name: str | None = None,
             models_dir: Path | None = None) -> DrawingModel:
        """Load and verify a model (the runtime of its manifest's kind); only when that succeeds
        does it replace the current one of its name (``name``, default: the default model's)."""
        model = open_drawing_model(folder, providers, intra_op_threads, extra_folders=extra_folders,
                                   models_dir=models_dir)
        key = name or self.default
        with self._lock:
            self._current[key] = model
            self.errors.pop(key, None)
        return model


@dataclass(frozen=True)
class ServingChoice:
    """What should serve under one name: the active version's folder (or the bundled one) and
    extra ensemble members."""

    name: str
    folder: Path
    version_id: int | None
    extra_folders: tuple[Path, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.name, str(self.folder), self.version_id, tuple(str(f) for f in self.extra_folders))


def current_choice(session: Session, settings: Settings, name: str | None = None) -> ServingChoice:
    name = name or settings.default_model
    active = crud.get_active_model_version(session, name=name)
    extras = [v for v in crud.list_ensemble_versions(session) if not v.active and v.name == name]
    folder = Path(active.folder) if active is not None else settings.models_dir / name
    return ServingChoice(name=name, folder=folder, version_id=active.id if active is not None else None,
                         extra_folders=tuple(Path(v.folder) for v in extras))


def load_bundled(store: ModelStore, settings: Settings) -> None:
    """Without a database: every drawing model's bundled folder, each on its own."""
    for name in settings.drawing_models:
        folder = settings.models_dir / name
        if name != settings.default_model and not folder.is_dir():
            continue
        try:
            store.load(folder, settings.providers, settings.intra_op_threads, name=name, models_dir=settings.models_dir)
        except (ModelIntegrityError, OSError, ValueError) as exc:
            store.set_error(name, str(exc))
            log.error("model %s is not serving: %s", name, exc)


class ServingWatcher:
    """Keeps the store on the database's choice; ``check`` is one round, ``run`` loops."""

    def __init__(self, store: ModelStore, Session: sessionmaker, settings: Settings):
        self.store = store
        self.Session = Session
        self.settings = settings
        self.loaded: dict[str, tuple] = {}    # name -> key of what serves under it
        self.refused: dict[str, tuple] = {}   # name -> key of the last choice refused

    def load(self, choice: ServingChoice) -> bool:
        """Load ``choice`` into the store; False (and the old model keeps serving) when refused."""
        try:
            self.store.load(choice.folder, self.settings.providers, self.settings.intra_op_threads,
                            extra_folders=list(choice.extra_folders), name=choice.name,
                            models_dir=self.settings.models_dir)
        except (ModelIntegrityError, OSError, ValueError) as exc:
            self.refused[choice.name] = choice.key
            if self.store.get(choice.name) is None:
                self.store.set_error(choice.name, str(exc))
            log.error("model %s refused, the previous one keeps serving: %s", choice.folder, exc)
            return False
        self.loaded[choice.name] = choice.key
        self.refused.pop(choice.name, None)
        log.info("serving %s as %s (version id %s, %d extra ensemble folders)",
                 choice.folder, choice.name, choice.version_id, len(choice.extra_folders))
        return True

    def check(self) -> list[str]:
        """One poll: load each drawing model's choice if it changed. Returns the names loaded
        anew (empty when nothing changed or every change was refused)."""
        with self.Session() as session:
            choices = [current_choice(session, self.settings, name) for name in self.settings.drawing_models]
        loaded = []
        for choice in choices:
            if choice.version_id is None and choice.name != self.settings.default_model and not choice.folder.is_dir():
                continue  # a drawing model with neither a promoted version nor a bundled folder
            if choice.key in (self.loaded.get(choice.name), self.refused.get(choice.name)):
                continue
            if self.load(choice):
                loaded.append(choice.name)
        return loaded

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop serving
                log.exception("could not check which model should serve")
