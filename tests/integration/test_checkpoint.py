"""SQLite's WAL is copied back by the scheduler's checkpoint, not by a user's commit.

A commit that crossed SQLite's default limit (1,000 pages) used to copy the whole WAL
back into the database file and sync it before returning: the sweep's claim of 1,000
overdue clocks spent most of its commit there. Now a commit only writes its own pages
to the WAL, and the scheduler's PASSIVE checkpoint copies them back on its own thread
without making any reader or writer wait.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, text

from casework import db
from casework.config import Settings
from casework.scheduler import configure

PAGE = 4096
ROWS = 1_500  # one row of PAGE bytes each: well over SQLite's default limit of 1,000 pages


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "checkpoint.db"
    engine = db.make_engine(f"sqlite:///{path}")
    _make_filler(engine)
    # Start from an empty WAL: what was committed so far is in the database file.
    db.checkpoint(engine)
    yield engine, path
    engine.dispose()


def _rows_in_the_database_file(path: Path) -> tuple[int, ...]:
    """(count, sum of ids) of the rows the database file holds without its WAL: a copy
    of the file alone, as SQLite would read it if the WAL were lost."""
    alone = path.with_name("file-alone.db")
    shutil.copyfile(path, alone)
    try:
        with sqlite3.connect(alone) as plain:
            return tuple(
                plain.execute("SELECT count(*), coalesce(sum(id), 0) FROM filler").fetchone()
            )
    finally:
        alone.unlink()


def _make_filler(engine: Engine) -> None:
    """A table of its own for the pages these tests write, beside the service's."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)"))


def _write_many_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO filler (body) VALUES (:body)"),
            [{"body": os.urandom(PAGE)} for _ in range(ROWS)],
        )


def test_every_connection_leaves_checkpoints_to_the_scheduler(
    sqlite_db: tuple[Engine, Path],
) -> None:
    engine, _ = sqlite_db
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        limit = conn.exec_driver_sql("PRAGMA journal_size_limit").scalar()
    assert pages == db.WAL_AUTOCHECKPOINT_PAGES > 1_000
    assert limit == db.WAL_SIZE_LIMIT_BYTES


def test_a_large_commit_does_not_copy_the_wal_back_and_the_checkpoint_does(
    sqlite_db: tuple[Engine, Path],
) -> None:
    engine, path = sqlite_db
    before = path.stat().st_size
    _write_many_pages(engine)
    # The commit wrote its pages to the WAL only: the database file did not grow, as
    # it would have under SQLite's default limit (the commit checkpointing itself).
    assert path.stat().st_size == before

    done = db.checkpoint(engine)

    assert done is not None and not done.busy
    assert done.wal_pages >= ROWS and done.copied_pages == done.wal_pages
    assert path.stat().st_size >= before + ROWS * PAGE
    # The rows are in the database file itself now, not only in the WAL.
    assert _rows_in_the_database_file(path)[0] == ROWS


def test_the_checkpoint_waits_for_no_writer_and_leaves_a_readers_pages_for_later(
    sqlite_db: tuple[Engine, Path],
) -> None:
    engine, path = sqlite_db
    _write_many_pages(engine)
    reader = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        # A reader still on the snapshot before the next write, and a writer holding
        # SQLite's write lock: PASSIVE waits for neither (busy_timeout is 10 s).
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM filler").fetchone()
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO filler (body) VALUES (x'00')")
        started = time.monotonic()
        partial = db.checkpoint(engine)
        assert time.monotonic() - started < 5
        writer.execute("COMMIT")
        assert partial is not None
        assert partial.copied_pages == partial.wal_pages >= ROWS  # the reader's snapshot
        more = db.checkpoint(engine)
        assert more is not None
        # The row committed after the reader began stays in the WAL while it reads.
        assert more.copied_pages < more.wal_pages
        reader.execute("COMMIT")
    finally:
        reader.close()
        writer.close()
    rest = db.checkpoint(engine)
    assert rest is not None and rest.copied_pages == rest.wal_pages
    assert _rows_in_the_database_file(path)[0] == ROWS + 1


def test_postgresql_checkpoints_itself(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the SQLite leg is the tests above")
    assert db.checkpoint(engine) is None


def test_the_scheduler_checkpoints_sqlite_every_few_seconds_and_not_postgresql(
    engine: Engine, settings: Settings
) -> None:
    status: dict[str, Any] = {}
    scheduler = configure(BackgroundScheduler(timezone="UTC"), engine, settings, status)
    job = scheduler.get_job("checkpoint")
    if engine.dialect.name != "sqlite":
        assert job is None
        return
    assert job is not None
    assert job.trigger.interval.total_seconds() == db.CHECKPOINT_SECONDS
    _make_filler(engine)
    _write_many_pages(engine)
    job.func(*job.args)
    result = status["last_checkpoint_result"]
    assert result["busy"] is False and result["copied_pages"] == result["wal_pages"] > 0


def test_a_checkpoint_beside_a_busy_writer_loses_nothing(sqlite_db: tuple[Engine, Path]) -> None:
    """Checkpoints on one thread while another commits row after row; every 50 rows the
    writer waits for a checkpoint to have run since, so the two surely interleave."""
    engine, path = sqlite_db
    stop = threading.Event()
    ran = threading.Condition()
    runs: list[db.Checkpoint] = []
    failures: list[BaseException] = []

    def keep_checkpointing() -> None:
        try:
            while not stop.is_set():
                done = db.checkpoint(engine)
                assert done is not None
                with ran:
                    runs.append(done)
                    ran.notify_all()
                time.sleep(0.001)
        except BaseException as exc:  # seen by the test below, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=keep_checkpointing)
    thread.start()
    try:
        for i in range(300):
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO filler (id, body) VALUES (:i, :b)"), {"i": i, "b": b"x"}
                )
            if i % 50 == 49:
                with ran:
                    seen = len(runs)
                    assert ran.wait_for(lambda seen=seen: len(runs) > seen or failures, timeout=30)
    finally:
        stop.set()
        thread.join()
    assert not failures
    assert len(runs) >= 6
    last = db.checkpoint(engine)
    assert last is not None and last.copied_pages == last.wal_pages
    assert _rows_in_the_database_file(path) == (300, sum(range(300)))
