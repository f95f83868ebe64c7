"""All settings in one typed class, read from the environment (prefix ``D2A_``) or ``.env``.

Invalid values stop the process at start-up with pydantic's message naming the field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="D2A_", env_file=".env", extra="ignore")

    #: Folder holding the shared data sets (read only; never copied into the project).
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    #: Folder of shipped models: one sub-folder per model, each with a manifest.json.
    models_dir: Path = PROJECT_ROOT / "models"
    #: Which model in ``models_dir`` the drawing endpoint serves.
    default_model: str = "sketch2anime"
    #: ONNX Runtime execution providers, in order of preference. CUDA is used when it loads.
    providers: list[str] = Field(
        default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    #: Threads per inference session (0 lets ONNX Runtime decide).
    intra_op_threads: int = Field(default=0, ge=0, le=256)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Largest picture the API will return, in pixels per side.
    max_output_size: int = Field(default=512, ge=64, le=2048)

    # -- the job queue -----------------------------------------------------------------------
    #: Redis for the Celery broker and result backend. Empty: an embedded broker on a SQLite
    #: file (kombu's SQLAlchemy transport), which needs no server.
    redis_url: str = Field(default="", validation_alias=AliasChoices("D2A_REDIS_URL", "REDIS_URL"))
    #: ``serve`` starts a job worker beside the API when no Redis is configured and torch is
    #: installed (one machine, nothing else to start).
    embedded_worker: bool = True
    #: Where the embedded broker keeps its messages when no Redis is configured.
    broker_db: Path = PROJECT_ROOT / "var" / "broker.db"
    #: Seconds a delivered job may stay unacknowledged before the broker hands it out again;
    #: longer than the longest job (a dead worker's jobs are recovered by heartbeat instead).
    visibility_timeout_s: int = Field(default=24 * 3600, ge=60)
    #: A running job whose worker has not written a heartbeat for this long is taken over.
    job_stale_after_s: int = Field(default=60, ge=5)
    #: Training runs of jobs (checkpoints, samples, logs), one folder per job.
    runs_dir: Path = PROJECT_ROOT / "var" / "runs"
    #: Models exported by finished jobs, one folder per model version.
    job_models_dir: Path = PROJECT_ROOT / "var" / "models"

    # -- the database --------------------------------------------------------------------------
    #: SQLAlchemy URL of the database of jobs, model versions, data sets, admins and API keys:
    #: a SQLite file by default (its folder is created), or
    #: ``postgresql+psycopg://user:password@host:5432/name``.
    database_url: str = Field(
        default="sqlite:///" + str(PROJECT_ROOT / "var" / "doodle2anime.db"),
        validation_alias=AliasChoices("D2A_DATABASE_URL", "DATABASE_URL"),
    )

    # -- random faces --------------------------------------------------------------------------
    #: Folder name (under models_dir) of the StyleGAN that makes random faces.
    face_model: str = "anime_faces"
    #: Pictures made by the sampling queue, kept and reused for identical requests.
    samples_dir: Path = PROJECT_ROOT / "var" / "samples"
    #: Seconds a random-face request waits for the worker before answering 202 with a URL.
    sample_wait_s: float = Field(default=20.0, ge=0, le=120)

    # -- data sets ---------------------------------------------------------------------------
    #: Uploaded data sets (one folder each) and the previews of the built-in ones.
    datasets_dir: Path = PROJECT_ROOT / "var" / "datasets"
    #: Largest upload accepted, in bytes.
    upload_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    #: Largest total an uploaded zip may unpack to, in bytes (zip bombs are refused).
    upload_max_unpacked_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    #: Most files in an uploaded zip (or drawings in an ndjson file).
    upload_max_files: int = Field(default=100_000, ge=1)

    # -- admins and serving -----------------------------------------------------------------
    #: Key that signs admin sessions. Empty: one is generated on first use and kept in
    #: ``secret_key_file`` (mode 0600), so restarts keep sessions. Set it when several API
    #: processes run on different machines. Hidden from the settings' repr.
    secret_key: str = Field(default="", repr=False)
    #: Where the generated key is kept when ``secret_key`` is empty.
    secret_key_file: Path = PROJECT_ROOT / "var" / "secret_key"
    #: Seconds an admin login lasts.
    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    #: Failed or not, login attempts allowed per client address per minute.
    login_attempts_per_minute: int = Field(default=10, ge=1)
    #: The first admin, created at start-up when both are set and no admin of that name exists.
    #: Prefer ``doodle2anime admin create``; there is no default password.
    admin_username: str = ""
    admin_password: str = ""
    #: Seconds between checks of which model version the database says should serve (0: never).
    model_poll_s: float = Field(default=5.0, ge=0)

    # -- evaluation (FID / KID) ----------------------------------------------------------------
    #: pytorch-fid's Inception weights, ``pt_inception-2015-12-05-6726825d.pth`` (they cannot be
    #: downloaded here: fetch them once, point this at the file). Refused unless their sha256 is
    #: the published one. Unset: metrics use a substitute extractor, named ``fid_randconv`` /
    #: ``kid_randconv`` and NOT comparable to published FIDs.
    inception_weights: Path | None = None
    #: Features of the real image sets, cached by file sha256, image count, size and extractor.
    metrics_cache_dir: Path = PROJECT_ROOT / "var" / "metrics_cache"
    #: Images per feature-extraction batch.
    metrics_batch_size: int = Field(default=50, ge=1, le=4096)
    #: torch CPU threads for feature extraction (0: torch's default).
    metrics_threads: int = Field(default=0, ge=0, le=256)

    @field_validator("data_dir", "models_dir", "broker_db", "runs_dir", "job_models_dir", "datasets_dir",
                     "secret_key_file", "metrics_cache_dir", "samples_dir")
    @classmethod
    def _from_project_root(cls, v: Path) -> Path:
        return v if v.is_absolute() else (PROJECT_ROOT / v).resolve()

    @field_validator("inception_weights", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("inception_weights")
    @classmethod
    def _weights_file(cls, v: Path | None) -> Path | None:
        if v is None:
            return None
        v = v if v.is_absolute() else (PROJECT_ROOT / v).resolve()
        if not v.is_file():
            raise ValueError(f"no file at {v} (pytorch-fid's pt_inception-2015-12-05-6726825d.pth is expected)")
        return v

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one execution provider is needed")
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()
