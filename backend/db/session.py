"""Engines, sessions and migrations for a database URL (SQLite or PostgreSQL).

SQLite runs in WAL mode with a busy timeout, so a worker process and the API can share the
file: readers do not block the writer, and a writer waits for another instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from backend.settings import PROJECT_ROOT

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Milliseconds a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | URL) -> URL:
    """The URL with the psycopg 3 driver for PostgreSQL, and SQLite paths from the project root.

    ``postgres://`` and ``postgresql://`` (as hosting services hand them out) would otherwise
    pick psycopg2, which is not installed; a relative SQLite path is taken from the project
    root, like every other path setting.
    """
    u = make_url(url)
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:") and not Path(u.database).is_absolute():
        u = u.set(database=str(PROJECT_ROOT / u.database))
    return u


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")  # as PostgreSQL does
    finally:
        cursor.close()


def make_engine(url: str | URL, **engine_kwargs: Any) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created first."""
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, **engine_kwargs.pop("connect_args", {})}
        engine = create_engine(u, connect_args=connect_args, **engine_kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    engine_kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, **engine_kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (routes return them after writing)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for the repository's migrations and ``url``, from any folder."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The configuration is an ini parser: a literal "%" (URL-escaped passwords) is written "%%".
    rendered = normalize_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade_database(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default)."""
    command.upgrade(alembic_config(url), revision)
