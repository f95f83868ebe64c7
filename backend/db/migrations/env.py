"""Alembic environment: migrates the database named by ``sqlalchemy.url``, by ``-x url=...``,
or else by the settings (``D2A_DATABASE_URL`` / ``DATABASE_URL``)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool

from backend.db.models import Base
from backend.db.session import make_engine, normalize_url

config = context.config
if config.config_file_name is not None:  # the alembic command line; the app keeps its own logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from backend.settings import get_settings

        url = get_settings().database_url
    return normalize_url(url).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Write the SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    url = database_url()
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


#: Key of the PostgreSQL advisory lock that lets one process at a time migrate ("d2a" + 1).
PG_MIGRATION_LOCK = 0x64326101


def _lock_for_migration(connection: Connection) -> None:
    """Begin the transaction the migration runs in, holding the database's migration lock.

    The API and every worker migrate at start-up, possibly at the same moment: without a lock,
    two of them read "no tables yet" and the second fails creating them. The lock is taken
    before Alembic reads the current revision and released when the transaction ends.

    On SQLite, foreign keys are switched off for the migration first (a pragma that works only
    outside a transaction): batch mode rebuilds a table by copying it and dropping the old
    one, and with foreign keys on that drop would set the referencing rows' keys to NULL.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock; others wait (busy timeout)
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})


def _check_foreign_keys(connection: Connection) -> None:
    """On SQLite, refuse to commit a migration that left rows pointing at nothing."""
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


def run_migrations_online() -> None:
    engine = make_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _lock_for_migration(connection)  # the connection is now in its transaction
            # SQLite alters a table by copying it; batch mode lets later migrations do that.
            context.configure(connection=connection, target_metadata=Base.metadata,
                              render_as_batch=connection.dialect.name == "sqlite")
            # Alembic sees the transaction begun above as the caller's and leaves it open.
            with context.begin_transaction():
                context.run_migrations()
            _check_foreign_keys(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
