"""The settings: every field described, and .env.example made from them, in step with the class."""

from __future__ import annotations

import os
import re

from backend.db.session import normalize_url
from backend.settings import Settings, env_example
from conftest import ROOT

EXAMPLE = ROOT / ".env.example"


def _names(text: str) -> list[str]:
    return re.findall(r"^D2A_([A-Z0-9_]+)=", text, flags=re.MULTILINE)


def test_every_setting_says_what_it_is():
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_env_example_lists_every_setting_as_the_class_has_it():
    text = EXAMPLE.read_text()
    fields = [name.upper() for name in Settings.model_fields]
    assert [n for n in fields if n not in _names(text)] == [], "missing from .env.example"
    assert [n for n in _names(text) if n not in fields] == [], "in .env.example but not a setting"
    assert text == env_example(), "stale: run doodle2anime settings --env-example > .env.example"
    # the comparison sees a changed default or description
    assert env_example().replace("D2A_PORT=8000", "D2A_PORT=8001") != env_example()


def test_the_example_as_a_dotenv_gives_the_defaults(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith("D2A_") or var in ("REDIS_URL", "DATABASE_URL"):
            monkeypatch.delenv(var)
    def values(settings: Settings) -> dict:  # the database URL as the engine reads it (relative SQLite paths resolved)
        return {**settings.model_dump(), "database_url": normalize_url(settings.database_url)}

    assert values(Settings(_env_file=EXAMPLE)) == values(Settings(_env_file=None))
    # the comparison sees a value the example gets wrong
    changed = tmp_path / ".env"
    changed.write_text(EXAMPLE.read_text().replace("D2A_SESSION_TTL_S=43200", "D2A_SESSION_TTL_S=60"))
    assert Settings(_env_file=changed).session_ttl_s == 60
