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
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from backend.db import crud
from backend.settings import Settings
from core.manifest import ModelIntegrityError, ModelManifest
from core.photo import PhotoModel
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
    label: str = ""   # how logs and errors name it: "sketch2anime v3", "the bundled sketch2anime"

    @property
    def key(self) -> tuple:
        return (self.name, str(self.folder), self.version_id, tuple(str(f) for f in self.extra_folders))

    def files_signature(self, models_dir: Path | None = None) -> tuple:
        """The size and modification time of every file of the choice and of the models it is
        built on (a doodle encoder's prior, found in ``models_dir``): a refused choice is tried
        again only when this changes (an operator restored a file), not on every poll."""
        folders = [self.folder, *self.extra_folders]
        if models_dir is not None:
            folders += dependencies(self.folder, models_dir)
        return files_signature(*folders)


def files_signature(*folders: Path) -> tuple:
    """The path, size and modification time of every file in ``folders``: it changes when a file
    is replaced, damaged or restored."""
    out = []
    for folder in folders:
        try:
            out += [(str(p), st.st_size, st.st_mtime_ns) for p in sorted(Path(folder).iterdir())
                    if p.is_file() and (st := p.stat())]
        except OSError:
            out.append((str(folder), None, None))
    return tuple(out)


def dependencies(folder: Path, models_dir: Path) -> list[Path]:
    """The folders of the models that the model in ``folder`` is built on: a doodle encoder's
    prior and face check (its manifest names them). A manifest that cannot be read has none."""
    try:
        manifest = ModelManifest.load(folder)
    except (ModelIntegrityError, OSError, ValueError):
        return []
    if manifest.doodle is not None:
        names = [manifest.doodle.prior] + ([manifest.doodle.guard] if manifest.doodle.guard else [])
        return [Path(models_dir) / name for name in names]
    return []


def bundled_choice(settings: Settings, name: str) -> ServingChoice:
    return ServingChoice(name=name, folder=settings.models_dir / name, version_id=None,
                         label=f"the bundled {name}")


def current_choice(session: Session | None, settings: Settings, name: str | None = None) -> ServingChoice:
    """The database's choice for ``name`` (default: the default model); the bundled folder when
    no version is active, or when there is no database (``session`` None)."""
    name = name or settings.default_model
    if session is None:
        return bundled_choice(settings, name)
    active = crud.get_active_model_version(session, name=name)
    if active is None:
        extras = [v for v in crud.list_ensemble_versions(session) if v.name == name]
        return replace(bundled_choice(settings, name), extra_folders=tuple(Path(v.folder) for v in extras))
    extras = [v for v in crud.list_ensemble_versions(session) if not v.active and v.name == name]
    return ServingChoice(name=name, folder=Path(active.folder), version_id=active.id,
                         extra_folders=tuple(Path(v.folder) for v in extras), label=f"{name} {active.version}")


class ServingWatcher:
    """Keeps the store on the database's choice (or on the bundled models while there is no
    database: ``Session`` None); ``check`` is one round, ``run`` loops.

    A choice that fails its check is refused: what served before keeps serving, or, when nothing
    served under that name, the bundled model does (the last good model). The store's error for
    the name says what was refused and what serves instead. A refused choice is tried again when
    its files change on disk, so restoring a damaged file needs no restart."""

    def __init__(self, store: ModelStore, Session: sessionmaker | None, settings: Settings,
                 upscaler: "UpscalerSlot | None" = None):
        self.store = store
        self.Session = Session
        self.settings = settings
        self.upscaler = upscaler   # follows the upscaler's promoted version too
        self.loaded: dict[str, ServingChoice] = {}          # name -> what serves under it
        self.refused: dict[str, tuple[tuple, tuple]] = {}   # name -> (key, files signature) refused

    def _try(self, choice: ServingChoice) -> str | None:
        """Load ``choice``; None when it serves, else why it was refused."""
        try:
            self.store.load(choice.folder, self.settings.providers, self.settings.intra_op_threads,
                            extra_folders=list(choice.extra_folders), name=choice.name,
                            models_dir=self.settings.models_dir)
        except (ModelIntegrityError, OSError, ValueError) as exc:
            return str(exc)
        self.loaded[choice.name] = choice
        log.info("serving %s from %s (%d extra ensemble folders)", choice.label or choice.name, choice.folder,
                 len(choice.extra_folders))
        return None

    def load(self, choice: ServingChoice) -> bool:
        """Load ``choice`` into the store; False when it is refused (see the class docstring)."""
        why = self._try(choice)
        if why is None:
            self.refused.pop(choice.name, None)
            self.store.set_error(choice.name, None)
            return True
        self.refused[choice.name] = (choice.key, choice.files_signature(self.settings.models_dir))
        what = choice.label or str(choice.folder)
        current = self.loaded.get(choice.name) if self.store.get(choice.name) is not None else None
        if current is None and choice.version_id is not None:
            fallback = bundled_choice(self.settings, choice.name)
            if self._try(fallback) is None:
                current = fallback
        if current is not None:
            message = f"{what} was refused ({why}); {current.label or current.folder} keeps serving"
        else:
            message = f"{what} was refused and nothing serves {choice.name}: {why}"
        self.store.set_error(choice.name, message)
        log.error("%s", message)
        return False

    def choices(self) -> list[ServingChoice]:
        if self.Session is None:
            return [current_choice(None, self.settings, name) for name in self.settings.drawing_models]
        with self.Session() as session:
            return [current_choice(session, self.settings, name) for name in self.settings.drawing_models]

    def check(self) -> list[str]:
        """One poll: load each drawing model's choice if it changed (or, refused before, if its
        files changed). Returns the names whose choice was loaded anew."""
        loaded = []
        for choice in self.choices():
            if choice.version_id is None and choice.name != self.settings.default_model and not choice.folder.is_dir():
                continue  # a drawing model with neither a promoted version nor a bundled folder
            current = self.loaded.get(choice.name)
            if current is not None and current.key == choice.key and self.store.get(choice.name) is not None:
                continue
            refused = self.refused.get(choice.name)
            if refused is not None and refused == (choice.key, choice.files_signature(self.settings.models_dir)):
                continue
            if self.load(choice):
                loaded.append(choice.name)
        if self.upscaler is not None and self.settings.upscaler:
            if self.Session is None:
                folder = bundled_choice(self.settings, self.settings.upscaler).folder
            else:
                with self.Session() as session:
                    folder = current_choice(session, self.settings, self.settings.upscaler).folder
            if self.upscaler.use(folder):
                loaded.append(self.settings.upscaler)
        return loaded

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop serving
                log.exception("could not check which model should serve")


class ModelUnavailable(RuntimeError):
    """No version of a model can serve; the message says why, in words for an API client."""


class UpscalerSlot:
    """The upscaler that enlarges faces (``settings.upscaler``), loaded and checked once on first
    use; one that is missing or damaged is refused once (logged), and faces are then enlarged with
    Lanczos: a larger picture is never worth a failed request."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded = False
        self.model = None
        self.folder: Path | None = None
        self.error: str | None = None
        self._refused: tuple | None = None   # (folder, its files' signature) that would not load

    def get(self):
        if self._loaded:
            return self.model
        with self._lock:
            if not self._loaded:
                if self.settings.upscaler:
                    self._open(Path(self.settings.models_dir) / self.settings.upscaler)
                self._loaded = True
        return self.model

    def _open(self, folder: Path) -> bool:
        """Serve the upscaler in ``folder``; one that will not load is refused (logged) and what
        served before keeps serving."""
        from core.upscale import Upscaler

        try:
            model = Upscaler(folder, self.settings.providers, self.settings.intra_op_threads)
        except (ModelIntegrityError, OSError, ValueError) as exc:
            self.error = f"{folder.name}: {exc}"
            self._refused = (folder, files_signature(folder))
            log.error("the upscaler in %s is not used (%s): %s", folder,
                      "the one before keeps serving" if self.model is not None else "faces are enlarged with Lanczos",
                      exc)
            return False
        self.model, self.folder, self.error = model, folder, None
        return True

    def use(self, folder: Path) -> bool:
        """Follow the serving choice (the promoted version's folder, else the bundled one): load
        it when it is not the folder that serves; True when it was loaded anew. A folder that was
        refused is tried again once its files change (restored)."""
        folder = Path(folder)
        with self._lock:
            self._loaded = True
            if self.folder is not None and folder == self.folder:
                return False
            if self._refused == (folder, files_signature(folder)):
                return False
            return self._open(folder)

    def resize(self, faces, size: int) -> tuple[list, str | None]:
        """(the faces as pictures of ``size``, the upscaler's name and version, or None where
        Lanczos alone made them)."""
        from core.upscale import lanczos

        model = self.get()
        if model is None or model.passes(faces.shape[1], size) == 0:
            return lanczos(faces, size), None
        return model.resize(faces, size), f"{model.name} v{model.manifest.version}"


class PhotoModels:
    """The photo model that serves: the version promoted on the dashboard when it loads, else the
    bundled one, as the drawing models fall back. Each folder is loaded and checked (sha256 of
    every file) once per change of its files: a damaged folder is refused once and not read
    again on every request, and is tried again when its files change (restored), with no
    restart. A model that loaded keeps serving from memory if its files are damaged later."""

    def __init__(self, settings: Settings, upscaler: "UpscalerSlot | None" = None):
        self.settings = settings
        self.upscaler = upscaler   # enlarges the anime face onto the photo (None: Lanczos)
        self._lock = threading.Lock()
        self._entries: dict[Path, tuple[tuple, PhotoModel | str]] = {}   # folder -> (files signature, model or why refused)

    def _load(self, folder: Path) -> PhotoModel | str:
        signature = files_signature(folder)
        with self._lock:
            entry = self._entries.get(folder)
            if entry is not None and entry[0] == signature:
                return entry[1]
            try:
                loaded = PhotoModel(folder, self.settings.providers, self.settings.intra_op_threads)
                loaded.upscaler = self.upscaler.get() if self.upscaler is not None else None
            except (ModelIntegrityError, ValueError, OSError) as exc:
                previous = entry[1] if entry is not None and not isinstance(entry[1], str) else None
                if previous is not None:
                    log.error("the photo model in %s changed on disk and was refused (%s); the version loaded "
                              "before keeps serving", folder, exc)
                else:
                    log.error("the photo model in %s is refused: %s", folder, exc)
                loaded = previous if previous is not None else str(exc)
            self._entries[folder] = (signature, loaded)
            return loaded

    def get(self, promoted: Path | None = None) -> PhotoModel:
        """The photo model to use (``promoted``: the active version's folder);
        ``ModelUnavailable`` when neither it nor the bundled model can serve."""
        if promoted is not None:
            model = self._load(Path(promoted))
            if not isinstance(model, str):
                return model
        bundled = self.settings.models_dir / self.settings.photo_model
        if not (bundled / "manifest.json").is_file():
            raise ModelUnavailable(f"no photo model is installed ({self.settings.photo_model})")
        model = self._load(bundled)
        if isinstance(model, str):
            raise ModelUnavailable(f"the photo model cannot serve: {model}")
        return model
