"""The database layer on SQLite and on PostgreSQL: migrations, the models' agreement with them,
the constraints the database enforces, every crud function, hashing, and SQLite's WAL mode.

PostgreSQL: a server at 127.0.0.1:5432 (user postgres, trust auth) unless D2A_TEST_PG_ADMIN_URL
names another maintenance database. Each test session creates its own uniquely named database
there and drops it at the end; the PostgreSQL tests are skipped only when no server answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError

from backend.db import crud, security
from backend.db.models import JOB_STATUSES, JOB_TRANSITIONS, ApiKey, Base, Dataset, ModelVersion, TrainingJob
from backend.db.session import alembic_config, make_engine, make_sessionmaker, normalize_url, upgrade_database

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("D2A_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = {"datasets", "admin_users", "training_jobs", "model_versions", "api_keys", "workers", "sample_requests",
          "revoked_sessions"}


# -- PostgreSQL: one throwaway database per test session -------------------------------------

class PostgresServer:
    """Creates and drops uniquely named databases through the maintenance database."""

    def __init__(self, admin_url: str):
        import psycopg

        self._psycopg = psycopg
        self.admin_url = admin_url
        self.created: list[str] = []
        self._conninfo = sa.make_url(admin_url).set(drivername="postgresql")\
            .render_as_string(hide_password=False)
        # Fails here (and the tests are skipped) when no server answers.
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")

    def create(self, label: str) -> str:
        """A new empty database; returns its SQLAlchemy URL (psycopg 3 driver)."""
        name = f"d2a_test_{label}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        with self._psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = sa.make_url(self.admin_url).set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._psycopg.connect(self._conninfo, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(PG_ADMIN_URL)
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency of the project
        pytest.skip(f"psycopg is not installed: {exc}")
    except Exception as exc:  # noqa: BLE001 - any connection failure means: no server here
        pytest.skip(f"PostgreSQL is unreachable at {sa.make_url(PG_ADMIN_URL).render_as_string()}: {exc}")
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_server: PostgresServer) -> str:
    """The session's database, migrated to head (tests that go down again go back up)."""
    url = pg_server.create("session")
    upgrade_database(url)
    return url


def _clear(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("TRUNCATE " + ", ".join(sorted(TABLES)) + " RESTART IDENTITY CASCADE")
            else:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database at head: a fresh SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'd2a.db'}"
        upgrade_database(url)
        return url
    url = request.getfixturevalue("pg_url")
    upgrade_database(url)  # a migration test may have gone down and up again: still head
    _clear(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path) -> str:
    """An empty database with no tables at all: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("pg_server").create("fresh")


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def Session(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def db(Session):
    with Session() as session:
        yield session


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _diff(url: str, metadata: sa.MetaData) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "compare_server_default": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


# -- migrations ----------------------------------------------------------------------------

def test_upgrade_downgrade_and_upgrade_again(fresh_url):
    assert _current_revision(fresh_url) is None
    upgrade_database(fresh_url)
    assert _current_revision(fresh_url) == _head()
    assert _tables(fresh_url) == TABLES | {"alembic_version"}

    command.downgrade(alembic_config(fresh_url), "base")
    assert _current_revision(fresh_url) is None
    assert _tables(fresh_url) <= {"alembic_version"}

    upgrade_database(fresh_url)
    assert _current_revision(fresh_url) == _head()
    assert _tables(fresh_url) == TABLES | {"alembic_version"}
    assert _diff(fresh_url, Base.metadata) == []
    upgrade_database(fresh_url)  # at head already: nothing to do, no error


def test_the_models_match_the_migrations_exactly(fresh_url):
    upgrade_database(fresh_url)
    assert _diff(fresh_url, Base.metadata) == []

    # The comparison does see a difference when there is one.
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    sa.Table("api_keys", changed, sa.Column("note", sa.Text()), extend_existing=True)
    changed.tables["datasets"].append_constraint(sa.UniqueConstraint("kind", "location"))
    diff = _diff(fresh_url, changed)
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff}
    assert {"add_column", "add_constraint"} <= kinds, diff


def test_every_revision_steps_up_and_down(fresh_url):
    config = alembic_config(fresh_url)
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    assert revisions[0].down_revision is None
    for rev in revisions:
        command.upgrade(config, rev.revision)
        assert _current_revision(fresh_url) == rev.revision
    for rev in reversed(revisions):
        command.downgrade(config, rev.down_revision or "base")
        assert _current_revision(fresh_url) == rev.down_revision


def test_processes_starting_at_once_all_migrate(fresh_url):
    """The API and the workers each migrate at start-up; at the same moment, none may fail."""
    code = ("import logging, sys; logging.disable(logging.CRITICAL)\n"
            "from backend.db.session import upgrade_database\n"
            "upgrade_database(sys.argv[1])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0, 0, 0], "\n".join(err[-2000:] for _, err in results)
    assert _current_revision(fresh_url) == _head()
    assert _diff(fresh_url, Base.metadata) == []


def test_alembic_command_line_uses_alembic_ini(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "D2A_DATABASE_URL": f"sqlite:///{tmp_path / 'not-this-one.db'}"}
    for args in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        r = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "-x", f"url={url}",
                            *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    assert _current_revision(url) == _head()
    assert not (tmp_path / "not-this-one.db").exists()
    # Offline mode writes the SQL instead.
    r = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "-x", f"url={url}",
                        "upgrade", "head", "--sql"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "CREATE TABLE training_jobs" in r.stdout


def test_a_sqlite_batch_migration_keeps_the_rows_that_point_at_a_rebuilt_table(tmp_path):
    """Batch mode rebuilds a SQLite table (copy, drop, rename); the drop must not fire the
    ON DELETE SET NULL of the rows that refer to it."""
    scripts = tmp_path / "migrations"
    shutil.copytree(ROOT / "backend" / "db" / "migrations", scripts,
                    ignore=shutil.ignore_patterns("__pycache__"))
    head = _head()
    (scripts / "versions" / "9999_test_rebuild.py").write_text(textwrap.dedent(f'''
        import sqlalchemy as sa
        from alembic import op

        revision = "9999"
        down_revision = {head!r}
        branch_labels = None
        depends_on = None


        def upgrade():
            with op.batch_alter_table("training_jobs", recreate="always") as batch:
                batch.add_column(sa.Column("note", sa.Text(), nullable=True))


        def downgrade():
            with op.batch_alter_table("training_jobs", recreate="always") as batch:
                batch.drop_column("note")
        '''))
    url = f"sqlite:///{tmp_path / 'batch.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        job = crud.create_job(s, kind="cyclegan", config={})
        crud.create_model_version(s, name="m", version="1", kind="cyclegan", manifest={}, folder="f", job_id=job.id)
    engine.dispose()

    config = alembic_config(url)
    config.set_main_option("script_location", str(scripts))
    command.upgrade(config, "9999")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT job_id FROM model_versions").scalar_one() == job.id
            assert "note" in {c["name"] for c in sa.inspect(conn).get_columns("training_jobs")}
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # on again for the app
    finally:
        engine.dispose()
    command.downgrade(config, head)
    assert _current_revision(url) == head


# -- what the database itself enforces -----------------------------------------------------

def test_the_database_refuses_an_unknown_job_status(db):
    job = crud.create_job(db, kind="cyclegan", config={})
    with pytest.raises(IntegrityError):
        db.execute(sa.update(TrainingJob).where(TrainingJob.id == job.id).values(status="exploded"))
        db.flush()
    db.rollback()


def test_the_database_keeps_one_active_version_per_name(db):
    a = crud.create_model_version(db, name="m", version="1", kind="cyclegan", manifest={}, folder="a")
    b = crud.create_model_version(db, name="m", version="2", kind="cyclegan", manifest={}, folder="b")
    other = crud.create_model_version(db, name="other", version="1", kind="cyclegan", manifest={}, folder="c")
    a.active = True
    other.active = True  # another name: allowed
    db.commit()
    b.active = True  # bypassing crud: the partial unique index refuses
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    db.add(ModelVersion(name="m", version="1", kind="cyclegan", manifest={}, folder="d"))
    with pytest.raises(IntegrityError):  # (name, version) is unique
        db.commit()
    db.rollback()
    # crud registers a (name, version) once: a second call returns the first row
    assert crud.create_model_version(db, name="m", version="1", kind="cyclegan", manifest={}, folder="d").id == a.id


def test_deleting_a_dataset_or_job_sets_the_references_to_null(db):
    d = crud.register_dataset(db, name="d", kind="image_zip", location="x", content_sha256="0" * 64, item_count=1)
    job = crud.create_job(db, kind="cyclegan", config={}, dataset_id=d.id)
    mv = crud.create_model_version(db, name="m", version="1", kind="cyclegan", manifest={}, folder="f", job_id=job.id)
    db.execute(sa.delete(Dataset).where(Dataset.id == d.id))
    db.execute(sa.delete(TrainingJob).where(TrainingJob.id == job.id))
    db.commit()
    db.expire_all()
    assert db.get(ModelVersion, mv.id).job_id is None
    with pytest.raises(IntegrityError):  # and a reference to nothing is refused
        crud.create_job(db, kind="cyclegan", config={}, dataset_id=12345)
    db.rollback()


def test_datetimes_are_aware_utc_both_ways(db):
    job = crud.create_job(db, kind="cyclegan", config={})
    plus_two = dt.timezone(dt.timedelta(hours=2))
    when = dt.datetime(2030, 1, 2, 15, 4, 5, 123456, tzinfo=plus_two)
    job.started_at = when
    db.commit()
    db.expire_all()
    got = db.get(TrainingJob, job.id)
    assert got.started_at == when and got.started_at.utcoffset() == dt.timedelta(0)
    assert got.created_at.tzinfo is not None
    assert abs(got.created_at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    # Comparisons in SQL see the same instants.
    assert db.scalars(sa.select(TrainingJob.id).where(
        TrainingJob.started_at > dt.datetime(2030, 1, 2, 13, 4, 5, tzinfo=dt.timezone.utc))).all() == [job.id]
    assert db.scalars(sa.select(TrainingJob.id).where(
        TrainingJob.started_at > dt.datetime(2030, 1, 2, 13, 4, 6, tzinfo=dt.timezone.utc))).all() == []
    job.finished_at = dt.datetime(2030, 1, 2)  # naive: refused
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        db.commit()
    db.rollback()


# -- data sets -----------------------------------------------------------------------------

def test_datasets_create_get_list_and_update(db):
    faces = crud.register_dataset(db, name="faces", kind="anime_faces", location="/data/faces",
                                  content_sha256="a" * 64, item_count=10, builtin=True)
    upload = crud.register_dataset(db, name="an upload", kind="image_zip", location="uploads/1",
                                   content_sha256="b" * 64, item_count=3, preview="uploads/1/preview.png")
    assert faces.id != upload.id
    assert crud.get_dataset(db, dataset_id=faces.id).name == "faces"
    assert crud.get_dataset(db, dataset_id=99999) is None
    assert [d.name for d in crud.list_datasets(db)] == ["an upload", "faces"]  # by name
    assert [d.name for d in crud.list_datasets(db, kind="image_zip")] == ["an upload"]
    assert faces.builtin and not upload.builtin and upload.preview == "uploads/1/preview.png"

    again = crud.register_dataset(db, name="faces", kind="anime_faces", location="/data/faces2",
                                  content_sha256="c" * 64, item_count=12, builtin=True)
    assert again.id == faces.id
    assert len(crud.list_datasets(db)) == 2
    db.expire_all()
    stored = crud.get_dataset(db, dataset_id=faces.id)
    assert (stored.location, stored.content_sha256, stored.item_count) == ("/data/faces2", "c" * 64, 12)
    assert stored.created_at.tzinfo is not None


def test_register_dataset_from_two_sessions_makes_one_row(Session):
    with Session() as s1, Session() as s2:
        first = crud.register_dataset(s1, name="same", kind="k", location="a", content_sha256="1" * 64,
                                      item_count=1)
        second = crud.register_dataset(s2, name="same", kind="k", location="b", content_sha256="2" * 64,
                                       item_count=2)
        assert first.id == second.id
    with Session() as s:
        (row,) = crud.list_datasets(s)
        assert row.location == "b"


# -- training jobs -------------------------------------------------------------------------

def test_jobs_create_get_list(db, Session):
    d = crud.register_dataset(db, name="d", kind="k", location="x", content_sha256="0" * 64, item_count=1)
    admin = crud.create_admin(db, username="alice", password="pw-alice-123")
    first = crud.create_job(db, kind="cyclegan", config={"steps": 10, "mix": {"a": 0.5}}, total_steps=10,
                            dataset_id=d.id, created_by=admin.id)
    second = crud.create_job(db, kind="cyclegan", config={"steps": 5}, total_steps=5)
    assert first.status == "queued" and first.progress == 0.0 and first.metrics_history == []
    assert first.attempts == 0 and not first.cancel_requested and first.log_tail == ""
    with Session() as other:  # read back by another session: what was stored, not the cached object
        got = crud.get_job(other, job_id=first.id)
        assert got.config == {"steps": 10, "mix": {"a": 0.5}}
        assert (got.dataset_id, got.created_by, got.total_steps) == (d.id, admin.id, 10)
    assert crud.get_job(db, job_id=424242) is None
    assert [j.id for j in crud.list_jobs(db)] == [second.id, first.id]  # newest first
    assert [j.id for j in crud.list_jobs(db, limit=1)] == [second.id]
    assert [j.id for j in crud.list_jobs(db, limit=1, offset=1)] == [first.id]
    assert [j.id for j in crud.list_jobs(db, status="queued")] == [second.id, first.id]
    assert crud.list_jobs(db, status="running") == []
    with pytest.raises(ValueError, match="unknown job status"):
        crud.list_jobs(db, status="paused")


def _claim(db, job, worker: str = "w1"):
    return crud.claim_job(db, job_id=job.id, worker=worker, stale_after_s=60, run_dir=f"runs/job-{job.id}")


def test_a_job_runs_reports_progress_and_succeeds(db, Session):
    job = crud.create_job(db, kind="cyclegan", config={}, total_steps=100)
    running = _claim(db, job)
    assert running.status == "running" and running.worker == "w1" and running.attempts == 1
    assert running.started_at is not None and running.heartbeat_at is not None and running.finished_at is None
    assert running.run_dir == f"runs/job-{job.id}" and running.log_tail.endswith("started on w1 (attempt 1)")
    started = running.started_at

    assert crud.report_progress(db, job_id=job.id, worker="w1", step=10, epoch=0.5, eta_seconds=90.0,
                                losses={"g": 1.5}) is False  # no cancel asked
    crud.report_progress(db, job_id=job.id, worker="w1", step=10, metrics={"fid": 80.0})  # same step: merged
    crud.report_progress(db, job_id=job.id, worker="w1", step=50, losses={"g": 1.0}, sample="runs/1/sample.png",
                         log=["step 50: sample grid written", "step 50: checkpoint saved"])
    with Session() as other:
        got = crud.get_job(other, job_id=job.id)
        assert got.step == 50 and got.progress == pytest.approx(0.5) and got.epoch == 0.5
        assert got.latest_losses == {"g": 1.0} and got.latest_sample == "runs/1/sample.png"
        assert got.metrics_history == [{"step": 10, "g": 1.5, "fid": 80.0}, {"step": 50, "g": 1.0}]
        assert [line.split(" ", 1)[1] for line in got.log_tail.splitlines()[-2:]] == [
            "step 50: sample grid written", "step 50: checkpoint saved"]
    crud.report_progress(db, job_id=job.id, worker="w1", step=150)  # past the end: capped
    assert crud.get_job(db, job_id=job.id).progress == 1.0
    with pytest.raises(crud.StateError, match="no longer w2's running job"):  # not its job: refused
        crud.report_progress(db, job_id=job.id, worker="w2", step=60)
    assert crud.heartbeat_job(db, job_id=job.id, worker="w1") and not crud.heartbeat_job(db, job_id=job.id, worker="w2")

    done = crud.finish_job(db, job_id=job.id, worker="w1", status="succeeded", log="finished")
    assert done.status == "succeeded" and done.finished_at is not None and done.started_at == started
    assert done.eta_seconds is None
    # final: no move takes it anywhere else
    with pytest.raises(crud.StateError, match="is succeeded; only failed or cancelled jobs can be retried"):
        crud.retry_job(db, job_id=job.id)
    with pytest.raises(crud.StateError, match="is succeeded; only queued or running jobs can be cancelled"):
        crud.request_cancel(db, job_id=job.id)
    for status in ("failed", "cancelled", "succeeded"):
        with pytest.raises(crud.StateError, match="it is succeeded"):
            crud.finish_job(db, job_id=job.id, worker="w1", status=status, log="again")
    with pytest.raises(crud.StateError, match="is succeeded, no longer queued"):
        crud.fail_unsent_job(db, job_id=job.id, reason="late")
    assert crud.claim_job(db, job_id=job.id, worker="w2", stale_after_s=0, run_dir="x") is None
    assert not crud.heartbeat_job(db, job_id=job.id, worker="w1")
    assert crud.get_job(db, job_id=job.id).status == "succeeded"
    with pytest.raises(ValueError, match="does not finish a job"):
        crud.finish_job(db, job_id=job.id, worker="w1", status="queued", log="x")
    with pytest.raises(crud.StateError, match="does not exist"):
        crud.report_progress(db, job_id=424242, worker="w1", step=1)
    assert crud.claim_job(db, job_id=424242, worker="w1", stale_after_s=60, run_dir="x") is None


def test_a_metrics_history_keeps_its_newest_entries(db, monkeypatch):
    monkeypatch.setattr(crud, "HISTORY_LIMIT", 3)
    job = crud.create_job(db, kind="cyclegan", config={}, total_steps=10)
    _claim(db, job)
    for step in range(1, 6):
        crud.report_progress(db, job_id=job.id, worker="w1", step=step, losses={"g": float(step)})
    db.expire_all()
    assert [e["step"] for e in crud.get_job(db, job_id=job.id).metrics_history] == [3, 4, 5]


def test_job_cancel_fail_and_retry(db):
    queued = crud.create_job(db, kind="cyclegan", config={})
    crud.request_cancel(db, job_id=queued.id)  # not started: cancelled at once
    assert queued.status == "cancelled" and queued.finished_at is not None and not queued.cancel_requested
    assert queued.log_tail.endswith("cancelled before it started")
    assert _claim(db, queued) is None  # a cancelled job is not taken by a worker

    job = crud.create_job(db, kind="cyclegan", config={})
    _claim(db, job)
    crud.request_cancel(db, job_id=job.id)  # running: asked to stop
    assert job.status == "running" and job.cancel_requested and job.log_tail.endswith("cancel requested")
    assert crud.report_progress(db, job_id=job.id, worker="w1", step=1) is True
    crud.finish_job(db, job_id=job.id, worker="w1", status="cancelled", log="cancelled at step 1")
    assert job.status == "cancelled" and not job.cancel_requested and job.finished_at is not None
    with pytest.raises(crud.StateError, match="only queued or running jobs can be cancelled"):
        crud.request_cancel(db, job_id=job.id)  # finished: refused, nothing changes
    assert job.status == "cancelled"

    retried = crud.retry_job(db, job_id=job.id)
    assert retried.status == "queued" and retried.finished_at is None and retried.worker is None
    assert retried.log_tail.endswith("retry requested")
    with pytest.raises(crud.StateError, match="is queued; only failed or cancelled jobs can be retried"):
        crud.retry_job(db, job_id=job.id)
    assert _claim(db, job, "w2").attempts == 2
    with pytest.raises(crud.StateError, match="is running; only failed or cancelled jobs can be retried"):
        crud.retry_job(db, job_id=job.id)
    failed = crud.finish_job(db, job_id=job.id, worker="w2", status="failed", error="The GPU ran out of memory.",
                             log="failed")
    assert failed.error == "The GPU ran out of memory." and failed.finished_at is not None
    again = crud.retry_job(db, job_id=job.id)
    assert again.error is None and again.status == "queued"
    unsent = crud.fail_unsent_job(db, job_id=job.id, reason="The job queue could not be reached.")
    assert (unsent.status, unsent.error) == ("failed", "The job queue could not be reached.")
    assert unsent.log_tail.endswith("could not be queued")
    assert crud.request_cancel(db, job_id=424242) is None and crud.retry_job(db, job_id=424242) is None


def test_the_transition_table_decides_what_a_move_may_do(db, monkeypatch):
    job = crud.create_job(db, kind="cyclegan", config={})
    _claim(db, job)
    crud.finish_job(db, job_id=job.id, worker="w1", status="failed", log="failed")
    monkeypatch.setitem(crud.JOB_TRANSITIONS, "failed", ())  # a table without the retry
    with pytest.raises(crud.StateError, match="cannot go from 'failed' to 'queued'"):
        crud.retry_job(db, job_id=job.id)
    assert crud.get_job(db, job_id=job.id).status == "failed"
    monkeypatch.undo()  # the real table has it
    assert crud.retry_job(db, job_id=job.id).status == "queued"


def test_a_job_whose_worker_stopped_beating_is_requeued_and_taken_over(db, Session):
    job = crud.create_job(db, kind="cyclegan", config={})
    _claim(db, job)
    assert crud.requeue_stale_jobs(db, stale_after_s=60) == []  # it beats: left alone
    assert crud.claim_job(db, job_id=job.id, worker="w2", stale_after_s=60, run_dir="x") is None
    job.heartbeat_at = crud.utcnow() - dt.timedelta(seconds=120)
    db.commit()
    with Session() as other:  # a worker that read the job before the recovery saw it
        late = crud.get_job(other, job_id=job.id)
        (requeued,) = crud.requeue_stale_jobs(db, stale_after_s=60)
        assert requeued.id == job.id and (requeued.status, requeued.worker) == ("queued", None)
        assert requeued.log_tail.endswith("queued again to resume from the last checkpoint")
        with pytest.raises(crud.StateError, match="no longer w1's"):
            crud.finish_job(other, job_id=late.id, worker="w1", status="succeeded", log="late")
    assert crud.requeue_stale_jobs(db, stale_after_s=60) == []
    taken = _claim(db, job, "w2")
    assert (taken.status, taken.worker, taken.attempts) == ("running", "w2", 2)
    # a running job whose worker is silent is taken over directly by a new delivery
    taken.heartbeat_at = crud.utcnow() - dt.timedelta(seconds=120)
    db.commit()
    assert crud.claim_job(db, job_id=job.id, worker="w3", stale_after_s=60, run_dir="x").worker == "w3"
    with pytest.raises(crud.StateError, match="no longer w2's"):
        crud.report_progress(db, job_id=job.id, worker="w2", step=3)


def test_job_moves_are_decided_on_the_stored_status_not_an_old_copy(Session):
    """The API holds a job it read as queued while a worker claims it: cancelling must ask the
    worker to stop, not mark a running job cancelled; a finished job is not overwritten."""
    with Session() as s:
        job_id = crud.create_job(s, kind="cyclegan", config={}).id
    with Session() as api, Session() as worker:
        held = crud.get_job(api, job_id=job_id)
        assert held.status == "queued"
        crud.claim_job(worker, job_id=job_id, worker="w1", stale_after_s=60, run_dir="x")
        assert crud.request_cancel(api, job_id=job_id) is held
        assert (held.status, held.cancel_requested) == ("running", True)

        copy = crud.get_job(worker, job_id=job_id)
        crud.finish_job(worker, job_id=job_id, worker="w1", status="succeeded", log="finished")
        with pytest.raises(crud.StateError, match="it is succeeded"):
            crud.finish_job(api, job_id=job_id, worker="w1", status="failed", error="late", log="late")
        with pytest.raises(crud.StateError, match="is succeeded"):
            crud.request_cancel(api, job_id=job_id)
        assert copy.status == "succeeded"
    with Session() as s:
        got = crud.get_job(s, job_id=job_id)
        assert (got.status, got.error, got.cancel_requested) == ("succeeded", None, False)


def test_two_workers_claiming_one_job_at_once_one_gets_it(Session, monkeypatch):
    """b reads the job as queued, a takes it before b writes: b's compare-and-set finds it
    running and b does not get it."""
    with Session() as s:
        job_id = crud.create_job(s, kind="cyclegan", config={}).id
    read = crud._read_job
    with Session() as a, Session() as b:
        def read_then_lose_the_race(session, job_id):
            job = read(session, job_id)
            if session is b and job.status == "queued":
                assert crud.claim_job(a, job_id=job_id, worker="a", stale_after_s=60, run_dir="x") is not None
            return job

        monkeypatch.setattr(crud, "_read_job", read_then_lose_the_race)
        assert crud.claim_job(b, job_id=job_id, worker="b", stale_after_s=60, run_dir="x") is None
    with Session() as s:
        got = crud.get_job(s, job_id=job_id)
        assert (got.status, got.worker, got.attempts) == ("running", "a", 1)


def test_sample_requests_move_queued_running_done_or_failed(db):
    since = crud.utcnow() - dt.timedelta(minutes=5)
    req = crud.create_sample_request(db, kind="faces", params={"seeds": [1]}, model_folder="m", cache_key="k")
    assert crud.find_pending_sample(db, cache_key="k", since=since).id == req.id
    assert crud.find_pending_sample(db, cache_key="k", since=crud.utcnow() + dt.timedelta(seconds=1)) is None
    assert crud.find_sample_result(db, cache_key="k") is None
    with pytest.raises(crud.StateError, match="cannot go from 'queued' to 'done'"):  # not started
        crud.finish_sample_request(db, request_id=req.id, result_path="x.png", media_type="image/png")
    assert crud.start_sample_request(db, request_id=req.id).status == "running"
    assert crud.start_sample_request(db, request_id=req.id).status == "running"  # delivered again
    done = crud.finish_sample_request(db, request_id=req.id, result_path="x.png", media_type="image/png")
    assert (done.status, done.result_path, done.media_type) == ("done", "x.png", "image/png") and done.finished_at
    assert crud.find_sample_result(db, cache_key="k").id == req.id
    assert crud.find_pending_sample(db, cache_key="k", since=since) is None
    assert crud.start_sample_request(db, request_id=req.id) is None  # done: nothing to do
    with pytest.raises(crud.StateError, match="cannot go from 'done' to 'failed'"):
        crud.fail_sample_request(db, request_id=req.id, error="late")

    other = crud.create_sample_request(db, kind="mix", params={}, model_folder="m", cache_key="k2")
    failed = crud.fail_sample_request(db, request_id=other.id, error="queue not reachable")
    assert (failed.status, failed.error) == ("failed", "queue not reachable")
    assert crud.start_sample_request(db, request_id=other.id) is None
    assert crud.start_sample_request(db, request_id=424242) is None


def test_workers_are_seen_while_they_beat(db):
    crud.beat_worker(db, name="w1@host", queues="training,sampling", pid=12)
    crud.beat_worker(db, name="w1@host", queues="training", pid=12, current_job_id=3)  # the same row again
    (w,) = crud.list_workers(db, seen_within_s=60)
    assert (w.name, w.queues, w.current_job_id) == ("w1@host", "training", 3)
    w.last_seen = crud.utcnow() - dt.timedelta(seconds=120)
    db.commit()
    assert crud.list_workers(db, seen_within_s=60) == []
    crud.forget_worker(db, name="w1@host")
    assert crud.list_workers(db, seen_within_s=10_000) == []


def test_the_transition_table_covers_every_status():
    assert set(JOB_TRANSITIONS) == set(JOB_STATUSES)
    for targets in JOB_TRANSITIONS.values():
        assert set(targets) <= set(JOB_STATUSES)


# -- model versions ------------------------------------------------------------------------

def _version(db, name: str, version: str, **kw) -> ModelVersion:
    return crud.create_model_version(db, name=name, version=version, kind="cyclegan",
                                     manifest={"name": name, "metrics": {"fid": 50.0}}, folder=f"models/{version}", **kw)


def test_model_versions_create_get_list(db):
    a = _version(db, "m", "1")
    b = _version(db, "m", "2", metrics={"fid": 40.0})
    c = _version(db, "other", "1")
    assert a.metrics == {"fid": 50.0} and b.metrics == {"fid": 40.0}  # from the manifest unless given
    assert not a.active and not a.in_ensemble and a.promoted_at is None
    assert crud.get_model_version(db, version_id=b.id).version == "2"
    assert crud.get_model_version(db, version_id=424242) is None
    assert [v.id for v in crud.list_model_versions(db)] == [c.id, b.id, a.id]
    assert [v.id for v in crud.list_model_versions(db, name="m")] == [b.id, a.id]
    assert [v.id for v in crud.list_model_versions(db, limit=1)] == [c.id]
    assert crud.get_active_model_version(db, name="m") is None


def test_promotion_keeps_one_active_version_per_name(db, Session):
    a, b, c = _version(db, "m", "1"), _version(db, "m", "2"), _version(db, "other", "1")
    crud.set_active_model_version(db, version_id=a.id)
    crud.set_active_model_version(db, version_id=c.id)
    assert crud.get_active_model_version(db, name="m").id == a.id
    first_promotion = a.promoted_at
    assert first_promotion is not None

    crud.set_active_model_version(db, version_id=b.id)
    with Session() as other:
        assert crud.get_active_model_version(other, name="m").id == b.id
        assert not crud.get_model_version(other, version_id=a.id).active
        assert crud.get_active_model_version(other, name="other").id == c.id  # untouched
    crud.set_active_model_version(db, version_id=b.id)  # already active: no new stamp
    assert crud.get_model_version(db, version_id=a.id).promoted_at == first_promotion
    assert crud.set_active_model_version(db, version_id=424242) is None


def test_promoting_from_a_session_with_an_old_copy_still_promotes(Session):
    """A session that read the versions earlier must not trust its copy of ``active``."""
    with Session() as s:
        a, b = _version(s, "m", "1"), _version(s, "m", "2")
        crud.set_active_model_version(s, version_id=b.id)
    with Session() as stale, Session() as other:
        held = crud.get_model_version(stale, version_id=b.id)  # held, as a route holds what it read
        assert held.active
        crud.set_active_model_version(other, version_id=a.id)  # meanwhile elsewhere: a
        assert crud.set_active_model_version(stale, version_id=b.id) is held  # back to b
        assert held.active
    with Session() as s:
        assert crud.get_active_model_version(s, name="m").id == b.id


def test_rollback_serves_the_previously_promoted_version(db):
    a, b, c = _version(db, "m", "1"), _version(db, "m", "2"), _version(db, "m", "3")
    with pytest.raises(ValueError, match="nothing to roll back"):
        crud.rollback_model_version(db, name="m")
    for v in (a, b, c):
        crud.set_active_model_version(db, version_id=v.id)
        time.sleep(0.002)  # distinct promotion times
    assert crud.previous_model_version(db, name="m").id == b.id
    back = crud.rollback_model_version(db, name="m")
    assert back.id == b.id and crud.get_active_model_version(db, name="m").id == b.id
    assert not crud.get_model_version(db, version_id=c.id).active
    # A second rollback undoes the first (the last switch was c -> b).
    assert crud.rollback_model_version(db, name="m").id == c.id


def test_rollback_of_the_only_promoted_version_returns_to_the_bundled_model(db):
    a = _version(db, "m", "1")
    _version(db, "m", "2")  # never promoted: not a rollback target
    crud.set_active_model_version(db, version_id=a.id)
    assert crud.previous_model_version(db, name="m") is None
    assert crud.rollback_model_version(db, name="m") is None
    assert crud.get_active_model_version(db, name="m") is None
    assert [v.active for v in crud.list_model_versions(db, name="m")] == [False, False]


def test_ensemble_membership(db, Session):
    a, b, c = _version(db, "m", "1"), _version(db, "m", "2"), _version(db, "m", "3", in_ensemble=True)
    assert [v.id for v in crud.list_ensemble_versions(db)] == [c.id]
    crud.set_model_in_ensemble(db, version_id=a.id, in_ensemble=True)
    with Session() as other:
        assert [v.id for v in crud.list_ensemble_versions(other)] == [a.id, c.id]
    crud.set_model_in_ensemble(db, version_id=c.id, in_ensemble=False)
    crud.set_active_model_version(db, version_id=b.id)  # promotion leaves membership alone
    with Session() as other:
        assert [v.id for v in crud.list_ensemble_versions(other)] == [a.id]
        assert crud.get_model_version(other, version_id=a.id).in_ensemble
        assert not crud.get_model_version(other, version_id=b.id).in_ensemble
    assert crud.set_model_in_ensemble(db, version_id=424242, in_ensemble=True) is None


def test_concurrent_promotions_leave_exactly_one_active(Session):
    with Session() as s:
        ids = [_version(s, "m", str(i)).id for i in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def promote(version_id: int) -> None:
        try:
            start.wait()
            for _ in range(15):
                with Session() as s:
                    crud.set_active_model_version(s, version_id=version_id)
                    with Session() as check:  # never none, never two, at any moment
                        assert len(check.scalars(sa.select(ModelVersion.id).where(
                            ModelVersion.name == "m", ModelVersion.active.is_(True))).all()) == 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with Session() as s:
        assert sum(v.active for v in crud.list_model_versions(s, name="m")) == 1


# -- admins --------------------------------------------------------------------------------

def test_admins_create_and_authenticate(db):
    admin = crud.create_admin(db, username="alice", password="correct horse battery")
    assert admin.password_hash != "correct horse battery" and "correct horse" not in admin.password_hash
    assert security.verify_password("correct horse battery", admin.password_hash)
    assert crud.authenticate_admin(db, username="alice", password="correct horse battery").id == admin.id
    assert crud.authenticate_admin(db, username="alice", password="correct horse batterY") is None
    assert crud.authenticate_admin(db, username="bob", password="correct horse battery") is None
    with pytest.raises(ValueError, match="exists already"):
        crud.create_admin(db, username="alice", password="another")
    with pytest.raises(ValueError):
        crud.create_admin(db, username="", password="x")
    with pytest.raises(ValueError):
        crud.create_admin(db, username="carol", password="")
    admin.disabled = True
    db.commit()
    assert crud.authenticate_admin(db, username="alice", password="correct horse battery") is None


def test_revoked_sessions_are_kept_until_they_would_have_expired(db):
    now = dt.datetime.now(dt.timezone.utc)
    crud.revoke_session(db, sid="old", admin_id=1, expires_at=now - dt.timedelta(seconds=1))
    crud.revoke_session(db, sid="live", admin_id=1, expires_at=now + dt.timedelta(hours=1))
    crud.revoke_session(db, sid="live", admin_id=1, expires_at=now + dt.timedelta(hours=1))  # twice: no error
    assert crud.session_revoked(db, sid="live") and not crud.session_revoked(db, sid="never")
    assert not crud.session_revoked(db, sid="old")  # expired: forgotten (its token is refused as expired anyway)


def test_an_admin_created_twice_at_once_is_a_value_error(Session, monkeypatch):
    """Two processes creating the same admin: the loser gets the same ValueError, not a crash."""
    with Session() as s1, Session() as s2:
        real_scalars = s2.scalars
        monkeypatch.setattr(s2, "scalars", lambda *a, **k: _NoRows())  # s2 misses s1's row, as in a race
        crud.create_admin(s1, username="alice", password="pw1")
        with pytest.raises(ValueError, match="exists already"):
            crud.create_admin(s2, username="alice", password="pw2")
        monkeypatch.setattr(s2, "scalars", real_scalars)


class _NoRows:
    def first(self):
        return None


# -- API keys ------------------------------------------------------------------------------

def test_api_keys_store_only_the_hash(db, engine):
    key, plain = crud.create_api_key(db, name="partner app", rate_limit_per_minute=30)
    assert plain.startswith(security.API_KEY_PREFIX) and len(plain) == len(security.API_KEY_PREFIX) + 32
    assert key.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert key.prefix == plain[:security.API_KEY_SHOWN_CHARS] and key.rate_limit_per_minute == 30
    assert not hasattr(key, "plain_key")
    with engine.connect() as conn:  # nothing stored contains the key
        (row,) = conn.execute(sa.select(ApiKey.__table__)).mappings().all()
        assert all(plain not in str(value) for value in row.values())
        assert row["key_hash"] == security.hash_api_key(plain)

    assert crud.find_api_key(db, plain_key=plain).id == key.id
    assert crud.find_api_key(db, plain_key=plain + "x") is None
    assert crud.find_api_key(db, plain_key=key.key_hash) is None  # the hash is not a key
    assert crud.find_api_key(db, plain_key="") is None

    key2, plain2 = crud.create_api_key(db, name="second")
    assert plain2 != plain and key2.key_hash != key.key_hash and key2.rate_limit_per_minute == 60
    assert [k.id for k in crud.list_api_keys(db)] == [key.id, key2.id]
    revoked = crud.revoke_api_key(db, key_id=key.id)
    assert revoked.revoked_at is not None
    assert crud.find_api_key(db, plain_key=plain) is None
    assert crud.find_api_key(db, plain_key=plain2).id == key2.id
    assert [k.id for k in crud.list_api_keys(db)] == [key2.id]
    assert [k.id for k in crud.list_api_keys(db, include_revoked=True)] == [key.id, key2.id]
    stamp = revoked.revoked_at
    assert crud.revoke_api_key(db, key_id=key.id).revoked_at == stamp  # revoking twice keeps the first time
    assert crud.revoke_api_key(db, key_id=424242) is None
    with pytest.raises(ValueError):
        crud.create_api_key(db, name="x", rate_limit_per_minute=0)


def test_api_key_use_is_recorded_at_most_once_a_minute(db):
    key, plain = crud.create_api_key(db, name="app")
    assert key.last_used_at is None
    crud.record_api_key_use(db, api_key=key)
    first = key.last_used_at
    assert first is not None
    crud.record_api_key_use(db, api_key=key)
    assert key.last_used_at == first
    crud.record_api_key_use(db, api_key=key, min_interval_s=0)
    assert key.last_used_at > first
    db.expire_all()
    assert crud.find_api_key(db, plain_key=plain).last_used_at > first


def test_a_clash_of_key_prefixes_gets_a_new_key(db, monkeypatch):
    real = security.new_api_key
    first_plain, first_prefix, first_hash = real()
    keys = iter([(first_plain, first_prefix, first_hash),
                 ("d2a_" + "z" * 32, first_prefix, security.hash_api_key("d2a_" + "z" * 32))])
    monkeypatch.setattr(crud, "new_api_key", lambda: next(keys, None) or real())
    _, plain1 = crud.create_api_key(db, name="one")
    _, plain2 = crud.create_api_key(db, name="two")  # same prefix as the first: retried
    assert plain1 == first_plain and plain2 not in (first_plain, "d2a_" + "z" * 32)
    assert crud.find_api_key(db, plain_key=plain2) is not None


# -- hashing -------------------------------------------------------------------------------

def test_password_hashes():
    h1 = security.hash_password("s3cret pässword")
    h2 = security.hash_password("s3cret pässword")
    assert h1 != h2  # a fresh salt each time
    assert h1.startswith("scrypt$") and "s3cret" not in h1
    assert security.verify_password("s3cret pässword", h1) and security.verify_password("s3cret pässword", h2)
    assert not security.verify_password("s3cret password", h1)
    assert not security.verify_password("", h1)
    scheme, n, r, p, salt, digest = h1.split("$")
    assert (int(n), int(r), int(p)) == (security.SCRYPT_N, security.SCRYPT_R, security.SCRYPT_P)
    # Malformed or tampered hashes are a wrong password, not an exception.
    for bad in ("", "plain", h1.replace("scrypt$", "md5$"), f"{scheme}${2**30}${r}${p}${salt}${digest}",
                f"{scheme}$1000${r}${p}${salt}${digest}", f"{scheme}${n}${r}${p}$!!${digest}",
                f"{scheme}${n}${r}${p}${salt}$", h1 + "$extra"):
        assert not security.verify_password("s3cret pässword", bad), bad
    # A hash made with other (valid) parameters still verifies: they are read from the hash.
    import base64
    salt_b = os.urandom(16)
    other = hashlib.scrypt(b"pw", salt=salt_b, n=2**10, r=8, p=1, dklen=32)
    encoded = f"scrypt${2**10}$8$1${base64.b64encode(salt_b).decode()}${base64.b64encode(other).decode()}"
    assert security.verify_password("pw", encoded) and not security.verify_password("pw2", encoded)


def test_api_key_hashes():
    plain, prefix, key_hash = security.new_api_key()
    assert key_hash == security.hash_api_key(plain) == hashlib.sha256(plain.encode()).hexdigest()
    assert len(key_hash) == 64 and int(key_hash, 16) >= 0
    assert security.hash_api_key(plain + "x") != key_hash
    assert prefix == plain[:12] and plain.startswith("d2a_")
    assert len({security.new_api_key()[0] for _ in range(200)}) == 200


# -- SQLite: WAL mode and two writers ------------------------------------------------------

def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        engine.dispose()


def test_a_relative_sqlite_path_is_taken_from_the_project_root():
    assert normalize_url("sqlite:///var/x.db").database == str(ROOT / "var" / "x.db")
    assert normalize_url("sqlite:////abs/x.db").database == "/abs/x.db"
    assert normalize_url("sqlite://").database in (None, "")
    assert normalize_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"


def test_sqlite_two_engines_write_while_a_reader_reads(tmp_path):
    """Two engines (as the API and a worker have): a writer waits for the other instead of failing,
    and a reader is not blocked by a writer."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    upgrade_database(url)
    api, worker = make_engine(url), make_engine(url)
    try:
        with make_sessionmaker(api)() as s:
            job = crud.create_job(s, kind="cyclegan", config={}, total_steps=10)
        holder = worker.connect()
        tx = holder.begin()
        holder.execute(sa.update(TrainingJob).values(step=5))  # the worker holds the write lock
        done = threading.Event()
        errors: list[BaseException] = []

        def api_writes() -> None:
            try:
                with make_sessionmaker(api)() as s:
                    crud.request_cancel(s, job_id=job.id)  # waits for the worker's commit
                done.set()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=api_writes)
        t.start()
        with api.connect() as reader:  # reads meanwhile, from the last commit
            assert reader.execute(sa.select(TrainingJob.step)).scalar_one() == 0
        time.sleep(0.3)
        assert not done.is_set(), "the second writer should wait for the first"
        tx.commit()
        holder.close()
        t.join(30)
        assert not errors, errors
        assert done.is_set()
        with make_sessionmaker(worker)() as s:
            got = crud.get_job(s, job_id=job.id)
            assert (got.step, got.status) == (5, "cancelled")
    finally:
        api.dispose()
        worker.dispose()


def test_sqlite_two_processes_write_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'procs.db'}"
    upgrade_database(url)
    code = textwrap.dedent("""
        import sys
        from backend.db import crud
        from backend.db.session import make_engine, make_sessionmaker
        Session = make_sessionmaker(make_engine(sys.argv[1]))
        for i in range(40):
            with Session() as s:
                job = crud.create_job(s, kind="cyclegan", config={"by": sys.argv[2]}, total_steps=40)
                crud.claim_job(s, job_id=job.id, worker=sys.argv[2], stale_after_s=60, run_dir="x")
                crud.report_progress(s, job_id=job.id, worker=sys.argv[2], step=i, losses={"g": float(i)})
        print("ok")
        """)
    procs = [subprocess.Popen([sys.executable, "-c", code, url, name], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("api", "worker")]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            jobs = crud.list_jobs(s, limit=1000)
            assert len(jobs) == 80
            assert sorted(j.config["by"] for j in jobs).count("worker") == 40
    finally:
        engine.dispose()


# -- the API process -----------------------------------------------------------------------

def test_the_database_layer_imports_neither_torch_nor_training(tmp_path):
    code = textwrap.dedent("""
        import sys
        from backend.db import crud, models, security, session
        from backend.db.session import make_engine, make_sessionmaker, upgrade_database
        import backend.jobs.service, backend.routes.admin.jobs, backend.app
        url = sys.argv[1]
        upgrade_database(url)
        with make_sessionmaker(make_engine(url))() as s:
            crud.create_job(s, kind="cyclegan", config={})
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "training"))
        assert not bad, bad
        print("clean")
        """)
    r = subprocess.run([sys.executable, "-c", code, f"sqlite:///{tmp_path / 'imp.db'}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr[-3000:]
