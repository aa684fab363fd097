"""Engines, sessions and migrations.

SQLite is the embedded default: WAL so readers never block the writer (and commits
are ~50x cheaper than with a rollback journal), foreign keys on because SQLite
leaves them off, and a busy timeout so two processes wait for each other instead
of failing at once. The WAL is copied back into the database by the scheduler's
checkpoint, not by whichever commit crosses SQLite's limit (``checkpoint``).
PostgreSQL is production; the same code runs on both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlmodel import Session

from casework import driver
from casework.config import PROJECT_ROOT, Settings, get_settings

MIGRATIONS_DIR = PROJECT_ROOT / "db"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 16 MiB of page cache per connection (SQLite's default is 2 MiB): at a million
    # clocks the sweep's claim and its UPDATE walk index pages that no longer fit in
    # 2 MiB and were read again from the OS on every batch.
    cursor.execute("PRAGMA cache_size=-16384")
    # Checkpoints off the commit path (see checkpoint()): a commit runs one only when
    # the WAL has grown past this many pages, which the scheduler's checkpoint every
    # CHECKPOINT_SECONDS keeps it from reaching. The limit stays as the safety net of a
    # process with no scheduler (`casework tick` from cron, a one-off CLI command).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    # After a checkpoint has copied everything back, the WAL file is cut back to this
    # size instead of keeping the largest size it ever reached on disk.
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()


# SQLite's default is 1,000 pages (4 MB): then the commit that crosses it copies the
# WAL back into the database and, under synchronous=NORMAL, syncs it to disk before
# returning. That is 10-25 ms taken from whichever commit it falls on: a family's step,
# a page view's audit row, the sweep's claim of overdue clocks (most of the sweep's
# commit at 1,000 clocks was the checkpoint). 10,000 pages is about 40 MB of WAL.
WAL_AUTOCHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# How often the scheduler checkpoints SQLite (casework.scheduler): often enough that the
# WAL stays far below WAL_AUTOCHECKPOINT_PAGES at any rate of work this service sees.
CHECKPOINT_SECONDS = 5


@dataclass(frozen=True)
class Checkpoint:
    """What one SQLite checkpoint did, in WAL pages (frames)."""

    busy: bool  # another checkpoint was running, or a reader held back part of the WAL
    wal_pages: int  # pages in the WAL when it ran
    copied_pages: int  # of those, copied back into the database file

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint(engine: Engine) -> Checkpoint | None:
    """Copy SQLite's WAL back into the database file, beside the work and not in its way.

    Why here and not at commit (SQLite's automatic checkpoint): a checkpoint writes
    back every page committed since the last one and syncs the file, and the commit
    that happens to cross the limit pays for all of it while its user waits. PASSIVE
    takes no lock that a reader or writer waits for: it copies what no reader still
    needs and stops, and the next run copies the rest. Run by the scheduler every
    CHECKPOINT_SECONDS on its own thread; safe in several processes at once (one
    checkpoints, the others report busy). None on PostgreSQL, which checkpoints itself.
    """
    if engine.dialect.name != "sqlite":
        return None
    raw = engine.raw_connection()
    try:
        # Outside any transaction (pysqlite's own transactions are off on our
        # connections): SQLite refuses to checkpoint inside one.
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            busy, wal_pages, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            cursor.close()
    finally:
        raw.close()
    # -1 when the database is not in WAL mode (a copy opened with another journal).
    return Checkpoint(bool(busy), max(wal_pages, 0), max(copied, 0))


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write, so the
    # reads of a use case would run outside its transaction. Emitting BEGIN ourselves
    # (SQLAlchemy's documented recipe) keeps reads and writes in one transaction; the
    # version column then decides between two writers. Work that claims rows (the
    # sweep, the dispatcher) asks for BEGIN IMMEDIATE with the ``claim`` execution
    # option, so two claimers queue for the write lock instead of both reading the
    # same rows.
    immediate = conn.get_execution_options().get("claim", False)
    # On the driver's cursor, as the hot path's statements are (casework.driver): the
    # engine's listeners and echo still see it, without a full SQLAlchemy execution
    # (a fifth of the cost of opening and closing a transaction).
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        driver.run_raw(conn, cursor, "BEGIN IMMEDIATE" if immediate else "BEGIN")
    finally:
        cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 10}
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=10)
    _ping_when_idle(engine)
    if engine.dialect.driver == "psycopg":
        _keep_prepared_statements(engine)
    return engine


def _keep_prepared_statements(engine: Engine) -> None:
    """Roll back a healthy transaction without psycopg forgetting its prepared statements.

    psycopg prepares a statement on a connection once it has run it five times, and
    PostgreSQL then reuses its plan. But psycopg's ``rollback()`` throws away every
    statement it prepared (``DEALLOCATE ALL``), and every read-only request ends in a
    rollback (the session closing): nothing ever got prepared, and each request planned
    each of its statements afresh. A case list's two statements took about 1 ms each to
    plan and 0.2 ms to run, so a dashboard cost PostgreSQL 2.5 ms of CPU instead of 0.7.

    PostgreSQL keeps prepared statements across a rollback (they belong to the session,
    not the transaction), so the ROLLBACK of a transaction that did not fail is sent
    as psycopg sends its own, minus the forgetting. A failed transaction (where a
    statement psycopg thinks it prepared may not have been) and anything unexpected
    take psycopg's own rollback.
    """
    from psycopg import pq

    dialect = engine.dialect
    plain_rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        exec_command = getattr(dbapi_connection, "_exec_command", None)
        if (
            exec_command is None
            or getattr(dbapi_connection, "_pipeline", True)
            or dbapi_connection.pgconn.transaction_status != pq.TransactionStatus.INTRANS
        ):
            plain_rollback(dbapi_connection)
            return
        with dbapi_connection.lock:
            dbapi_connection.wait(exec_command(b"ROLLBACK"))

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


# A pooled connection unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it has been idle a while.

    Why not ``pool_pre_ping``: it pings on every checkout, one more round trip per
    transition (a tenth of a transition's time on PostgreSQL). A connection in use
    moments ago is alive; one idle for a while may have been closed by the server, a
    proxy or a restart, and is then replaced (DisconnectionError makes the pool
    connect afresh) instead of failing the request that drew it.
    """

    @event.listens_for(engine, "connect")
    def _connected(_dbapi: Any, record: Any) -> None:
        record.info["last_used"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi: Any, record: Any) -> None:
        if record is not None:
            record.info["last_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("last_used")
        if last is not None and time.monotonic() - last <= IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection idle and dead: {error}") from error
        record.info["last_used"] = time.monotonic()


@lru_cache(maxsize=4)
def _cached_engine(url: str, echo: bool) -> Engine:
    return make_engine(url, echo=echo)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    return _cached_engine(settings.resolved_database_url, settings.sql_echo)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose objects stay readable after commit (callers render them)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (never ``create_all``)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the one this code needs; the message says what to run."""


def _script_revisions() -> tuple[set[str], set[str]]:
    """(heads, every known revision) of the migration scripts shipped with this code."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {script.revision for script in scripts.walk_revisions()}
    return set(scripts.get_heads()), known


def database_revisions(engine: Engine) -> set[str]:
    """The Alembic revision(s) the database is at; empty for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def schema_is_current(engine: Engine) -> bool:
    return database_revisions(engine) == _script_revisions()[0]


def ensure_schema(engine: Engine, settings: Settings) -> bool:
    """Make sure the schema is the one this code needs before a command or service starts.

    Only an embedded SQLite database outside production is migrated here, so a fresh
    clone works with its first command. Anywhere else (PostgreSQL, or any production
    database) a schema change is a deliberate step, `casework db upgrade`, run once per
    release: several web and worker processes starting together must never race to
    migrate, and a release must not change the schema behind an operator's back.
    Returns True when it migrated (the caller then loads the configured providers).
    """
    current = database_revisions(engine)
    heads, known = _script_revisions()
    if current == heads:
        return False
    if current - known:
        raise SchemaNotCurrent(
            "the database was migrated by a newer version of casework (revision"
            f" {', '.join(sorted(current - known))}); run the casework version that matches it"
        )
    if engine.dialect.name == "sqlite" and settings.environment != "production":
        upgrade(engine)
        return True
    needed = ", ".join(sorted(heads))
    if not current:
        raise SchemaNotCurrent(
            "the database has no casework tables yet: run `casework db upgrade` first"
        )
    raise SchemaNotCurrent(
        f"the database schema is out of date (revision {', '.join(sorted(current))};"
        f" this version of casework needs {needed}): run `casework db upgrade` first,"
        " then start again"
    )
