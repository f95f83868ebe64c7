"""All settings in one typed class, read from the environment (prefix ``D2A_``) or ``.env``.

Invalid values stop the process at start-up with pydantic's message naming the field. Every
field says what it is in its ``description``; ``.env.example`` is made from them
(``doodle2anime settings --env-example``), and a test keeps it up to date.
"""

from __future__ import annotations

import json
import os
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="D2A_", env_file=".env", extra="ignore")

    data_dir: Path = Field(PROJECT_ROOT.parent / "shared" / "data",
                           description="Folder holding the shared data sets (read only; never copied into the project).")
    models_dir: Path = Field(PROJECT_ROOT / "models",
                             description="Folder of shipped models: one sub-folder per model, each with a manifest.json.")
    default_model: str = Field("doodle_encoder", min_length=1,
                               description="The drawing model the page and the API use when a request names none.")
    upscaler: str | None = Field(
        "upscaler", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$",
        description="The anime upscaler that enlarges every face asked for larger than its model makes it: its "
                    "version promoted on the dashboard, else the models_dir folder of this name; Lanczos does the "
                    "last step to a size that is not a doubling. Empty or 'none', missing or damaged: Lanczos.")
    drawing_models: list[str] = Field(
        default_factory=lambda: ["doodle_encoder", "sketch2anime", "lineart"],
        description="The drawing models the API serves (a JSON list of names of models_dir folders or of their "
                    "promoted versions); a request picks one with `model`. default_model is always among them.")
    providers: list[str] = Field(
        default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime execution providers, in order of preference (a JSON list). CUDA is used where "
                    "its driver loads.")
    intra_op_threads: int = Field(
        1, ge=0, le=256,
        description="Threads per inference session (0 lets ONNX Runtime decide). One is fastest for the drawing "
                    "page's small models on a few cores: requests run side by side instead of threads contending.")
    host: str = Field("127.0.0.1", description="Interface the web app listens on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=1, le=65535, description="Port the web app listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level of the web app.")
    max_output_size: int = Field(512, ge=64, le=2048, description="Largest picture the API will return, in pixels per side.")

    # -- the job queue -----------------------------------------------------------------------
    redis_url: str = Field(
        "", validation_alias=AliasChoices("D2A_REDIS_URL", "REDIS_URL"),
        description="Redis for the Celery broker and result backend (REDIS_URL is read too), e.g. "
                    "redis://127.0.0.1:6379/0. Empty: an embedded broker on a SQLite file (kombu's SQLAlchemy "
                    "transport), which needs no server.")
    embedded_worker: bool = Field(
        True, description="doodle2anime serve starts a job worker beside the API when no Redis is configured and torch is "
                          "installed (one machine, nothing else to start).")
    broker_db: Path = Field(PROJECT_ROOT / "var" / "broker.db",
                            description="Where the embedded broker keeps its messages when no Redis is configured.")
    visibility_timeout_s: int = Field(
        24 * 3600, ge=60, description="Seconds a delivered job may stay unacknowledged before the broker hands it out "
                                      "again; longer than the longest job (a dead worker's jobs are recovered by "
                                      "heartbeat instead).")
    job_stale_after_s: int = Field(
        60, ge=5, description="A running job whose worker has not written a heartbeat for this long is taken over.")
    runs_dir: Path = Field(PROJECT_ROOT / "var" / "runs",
                           description="Training runs of jobs (checkpoints, samples, logs), one folder per job.")
    job_models_dir: Path = Field(PROJECT_ROOT / "var" / "models",
                                 description="Models exported by finished jobs, one folder per model version.")

    # -- the database --------------------------------------------------------------------------
    database_url: str = Field(
        "sqlite:///" + str(PROJECT_ROOT / "var" / "doodle2anime.db"),
        validation_alias=AliasChoices("D2A_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL of the database of jobs, model versions, data sets, admins and API keys "
                    "(DATABASE_URL is read too): a SQLite file by default (a relative path is taken from the "
                    "project root; its folder is created), or postgresql+psycopg://user:password@host:5432/name.")

    # -- random faces --------------------------------------------------------------------------
    face_model: str = Field("anime_faces", description="Folder name (under models_dir) of the StyleGAN that makes random faces.")
    photo_model: str = Field("selfie2anime", description="Folder name (under models_dir) of the photo -> anime model "
                                                         "of the photo page and POST /api/v1/photo.")
    photo_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest photo accepted, in bytes (over it: 413).")
    photo_max_pixels: int = Field(40_000_000, ge=1024,
                                  description="Most pixels a photo may have, read from its header before it is "
                                              "decoded (over it: 422; a small file can hold a huge picture).")
    photo_memory_mb: int = Field(
        768, ge=64,
        description="Memory, in MiB, that photo decoding may hold at once across all requests of one API process; a "
                    "photo waits for its share (a phone's JPEG needs a few MiB, a 40-megapixel WebP about 650), so "
                    "many hostile uploads at once cost at most this.")
    photo_wait_s: float = Field(
        15.0, ge=0, le=120,
        description="Seconds a photo waits for its share of photo_memory_mb before the answer is 503 with Retry-After.")
    samples_dir: Path = Field(PROJECT_ROOT / "var" / "samples",
                              description="Pictures made by the sampling queue, kept and reused for identical requests.")
    sample_wait_s: float = Field(
        20.0, ge=0, le=120, description="Seconds a random-face request waits for the worker before answering 202 with a URL.")
    page_line_art: bool = Field(
        False, description="Offer the drawing page's 'Detailed line drawing' mode (a serving line-art model) to kids. "
                           "Off: its faces are blurry and beige beside the doodle mode's; the API serves the model "
                           "either way.")
    sample_pending_per_client: int = Field(
        4, ge=1,
        description="Random-face requests one client (an address without a key, or a key) may have waiting for the "
                    "sampling worker at once; one more is 429 with Retry-After, so one client cannot hold the worker. "
                    "The faces page has at most three at once (a face, a mix, a morph).")

    # -- data sets ---------------------------------------------------------------------------
    datasets_dir: Path = Field(PROJECT_ROOT / "var" / "datasets",
                               description="Uploaded data sets (one folder each) and the previews of the built-in ones.")
    upload_max_bytes: int = Field(200 * 1024 * 1024, ge=1024, description="Largest upload accepted, in bytes.")
    upload_max_unpacked_bytes: int = Field(
        1024 * 1024 * 1024, ge=1024,
        description="Largest total an uploaded zip may unpack to, in bytes (zip bombs are refused).")
    upload_max_files: int = Field(100_000, ge=1, description="Most files in an uploaded zip (or drawings in an ndjson file).")
    upload_max_total_pixels: int = Field(
        2**30, ge=1,
        description="Most pixels the images of an uploaded zip may decode to, all together (counted from their headers "
                    "before decoding; a few kB of zip can hold huge blank images). 2^30: 16,000 images of 256 px.")

    # -- admins and serving -----------------------------------------------------------------
    secret_key: str = Field(
        "", repr=False,
        description="Key that signs admin sessions. Empty: one is generated on first use and kept in "
                    "secret_key_file (mode 0600), so restarts keep sessions. Set the same long random value on "
                    "every API process when several serve behind one address: "
                    "python -c \"import secrets; print(secrets.token_urlsafe(48))\"")
    secret_key_file: Path = Field(PROJECT_ROOT / "var" / "secret_key",
                                  description="Where the generated key is kept when secret_key is empty.")
    anonymous_requests_per_minute: int = Field(
        120, ge=0,
        description="Requests per minute each client address may make without an API key (the drawing page sends "
                    "one after every stroke and undo; a kid drawing fast sends about 60); over it: 429 with "
                    "Retry-After. 0: no limit. Keys have their own limits.")
    session_ttl_s: int = Field(12 * 3600, ge=60, description="Seconds an admin login lasts (logout ends it sooner).")
    login_attempts_per_minute: int = Field(
        10, ge=1, description="Failed logins allowed per user name and client address per minute; then that user name "
                              "is refused from that address (429) until the minute is over. Other addresses, and "
                              "successful logins, are not counted against it.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (a JSON list, e.g. [\"127.0.0.1\", \"10.0.0.0/8\"]) of the reverse proxies in "
                    "front of the app: only from them is X-Forwarded-For believed for the client's address (rate "
                    "limits, login limits). Empty: the socket's peer address is the client's.")
    admin_username: str = Field(
        "", description="The first admin, created at start-up when both admin_username and admin_password are set "
                        "and no admin of that name exists. Prefer doodle2anime admin create; there is no default password.")
    admin_password: str = Field("", repr=False, description="The first admin's password (see admin_username).")
    db_retry_s: float = Field(5.0, ge=0.5, le=3600,
                              description="Seconds between tries to reach the database while it is not there "
                                          "(the drawing API keeps working meanwhile).")
    model_poll_s: float = Field(
        5.0, ge=0, description="Seconds between checks of which model version the database says should serve (0: never).")

    # -- evaluation (FID / KID) ----------------------------------------------------------------
    inception_weights: Path | None = Field(
        None, description="pytorch-fid's Inception weights, pt_inception-2015-12-05-6726825d.pth (about 96 MB; they "
                          "cannot be downloaded here: fetch them once, point this at the file). Refused unless their "
                          "sha256 is the published 6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2. "
                          "Empty: metrics use a substitute extractor, named fid_randconv / kid_randconv and NOT "
                          "comparable to published FIDs.")
    metrics_cache_dir: Path = Field(
        PROJECT_ROOT / "var" / "metrics_cache",
        description="Features of the real image sets, cached by file sha256, image count, size and extractor.")
    metrics_batch_size: int = Field(50, ge=1, le=4096, description="Images per feature-extraction batch.")
    metrics_threads: int = Field(0, ge=0, le=256, description="torch CPU threads for feature extraction (0: torch's default).")

    @field_validator("data_dir", "models_dir", "broker_db", "runs_dir", "job_models_dir", "datasets_dir",
                     "secret_key_file", "metrics_cache_dir", "samples_dir")
    @classmethod
    def _from_project_root(cls, v: Path) -> Path:
        return v if v.is_absolute() else (PROJECT_ROOT / v).resolve()

    @model_validator(mode="after")
    def _default_is_served(self) -> "Settings":
        if self.default_model not in self.drawing_models:
            self.drawing_models = [self.default_model, *self.drawing_models]
        return self

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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        from backend.security import parse_networks

        parse_networks(v)  # a ValueError names the entry that is no address or network
        return v

    @field_validator("upscaler", mode="before")
    @classmethod
    def _no_upscaler(cls, v):
        # D2A_UPSCALER= (empty) or none: Lanczos alone
        return None if isinstance(v, str) and v.strip().lower() in ("", "none") else v

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one execution provider is needed")
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()


def _example_value(value: object) -> str:
    """A default as it is written in an env file: paths from the project root, lists as JSON."""
    if value is None:
        return ""
    if isinstance(value, Path):
        return os.path.relpath(value, PROJECT_ROOT) if value.is_absolute() else str(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    text = str(value)
    return text.replace(f"sqlite:///{PROJECT_ROOT}/", "sqlite:///")  # the database file, from the project root


def env_example() -> str:
    """The text of .env.example: every setting with its description and its default."""
    lines = ["# Every setting of doodle2anime, with its default. Copy to .env to change one.",
             "# (Made from backend/settings.py by: doodle2anime settings --env-example > .env.example)"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default
        lines += ["", *textwrap.wrap(field.description or "", 98, initial_indent="# ", subsequent_indent="# "),
                  f"D2A_{name.upper()}={_example_value(default)}"]
    return "\n".join(lines) + "\n"
