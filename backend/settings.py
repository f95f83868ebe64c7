"""All settings in one typed class, read from the environment (prefix ``D2A_``) or ``.env``.

Invalid values stop the process at start-up with pydantic's message naming the field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _from_project_root(cls, v: Path) -> Path:
        return v if v.is_absolute() else (PROJECT_ROOT / v).resolve()

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one execution provider is needed")
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()
