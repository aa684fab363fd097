"""What every bench shares: the import path, the databases it runs on, and how it prints.

Importing this module drops the bench folder from ``sys.path`` (``bench/calendar.py``
would otherwise shadow the standard library's ``calendar`` for everything imported
later) and puts the project root first (the benches use the loopback fakes under
``tests/``). So each bench imports it before anything else.

Each bench gets a database of its own: SQLite in a temporary folder, or a private
PostgreSQL schema created for the run and dropped after it, so benches and test runs
on the same server never see each other's rows.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT_ROOT = os.path.dirname(HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)

import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import Engine, text  # noqa: E402

from casework.db import CHECKPOINT_SECONDS, checkpoint, make_engine, upgrade  # noqa: E402

POSTGRES_URL = os.environ.get(
    "CASEWORK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- Databases ---------------------------------------------------------------------------


def sqlite_label(engine: Engine) -> str:
    """The SQLite version and the durability settings the figures were measured under."""
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
    sync_name = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, str(sync))
    return f"SQLite {sqlite3.sqlite_version} (file, {mode}, synchronous={sync_name})"


@contextmanager
def sqlite_engine(prefix: str = "casework-bench-") -> Iterator[tuple[Engine, str]]:
    """A migrated SQLite file in a temporary folder, and its label."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        try:
            upgrade(engine)
            yield engine, sqlite_label(engine)
        finally:
            engine.dispose()


def postgres_unavailable(server: str = POSTGRES_URL) -> str | None:
    """Why no PostgreSQL server answers at ``server``, or None when one does."""
    try:
        import psycopg

        url = server.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect means: skip, with the reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first}"
    return None


@contextmanager
def postgres_schema(prefix: str = "bench", server: str = POSTGRES_URL) -> Iterator[str]:
    """The URL of a private schema on ``server``, dropped with everything in it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def postgres_engine(prefix: str = "bench") -> Iterator[tuple[Engine, str]]:
    """A migrated private schema, and its label (server version, synchronous_commit)."""
    with postgres_schema(prefix) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SHOW server_version").scalar()
                sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            schema = url.rsplit("%3D", 1)[1]
            yield engine, f"PostgreSQL {version} (schema {schema}, synchronous_commit={sync})"
        finally:
            engine.dispose()


class Checkpoints:
    """The SQLite checkpoints run beside a bench, as the service's scheduler runs them."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.pages = 0

    def text(self) -> str:
        if not self.seconds:
            return "none ran"
        return (
            f"{len(self.seconds)} ran, {sum(self.seconds) * 1000:,.0f} ms in all,"
            f" longest {max(self.seconds) * 1000:,.1f} ms, {self.pages:,} WAL pages copied back"
        )


@contextmanager
def scheduler_checkpoints(
    engine: Engine, every: float = CHECKPOINT_SECONDS
) -> Iterator[Checkpoints]:
    """SQLite's WAL copied back every ``every`` seconds on a thread of its own, while the
    bench runs: what `casework serve` and `casework worker` do (casework.scheduler), so no
    commit being timed pays for a checkpoint, as none does in the service. Nothing on
    PostgreSQL. The caller prints what the checkpoints cost (``Checkpoints.text``).
    """
    done = Checkpoints()
    if engine.dialect.name != "sqlite":
        yield done
        return
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            started = time.perf_counter()
            result = checkpoint(engine)
            done.seconds.append(time.perf_counter() - started)
            done.pages += result.copied_pages if result is not None else 0

    thread = threading.Thread(target=run, name="bench-checkpoint", daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join()


def timed_checkpoint(engine: Engine) -> float:
    """Seconds of one checkpoint, run between timed runs as the scheduler would run it
    between sweeps (every few seconds; a sweep runs every minute). 0 on PostgreSQL."""
    started = time.perf_counter()
    result = checkpoint(engine)
    return time.perf_counter() - started if result is not None else 0.0


def skipped_postgres(reason: str) -> None:
    print(
        f"\n== PostgreSQL: SKIPPED - no server at {POSTGRES_URL} ({reason});"
        " set CASEWORK_TEST_POSTGRES_URL to run it"
    )


def backends(
    choice: str, sqlite_prefix: str = "casework-bench-"
) -> list[tuple[str, Callable[[], Any]]]:
    """(name, engine context) for ``--backend sqlite|postgresql|both``; says why one is skipped."""
    runners: list[tuple[str, Callable[[], Any]]] = []
    if choice in ("sqlite", "both"):
        runners.append(("sqlite", lambda: sqlite_engine(sqlite_prefix)))
    if choice in ("postgresql", "both"):
        reason = postgres_unavailable()
        if reason is None:
            runners.append(("postgresql", postgres_engine))
        else:
            skipped_postgres(reason)
    return runners


# --- Printing ----------------------------------------------------------------------------


def print_load(started: float, load_before: float) -> None:
    """The run's length and the load around it: other work on the machine skews every figure."""
    load = os.getloadavg()[0]
    print(
        f"\n(total run {time.perf_counter() - started:.0f}s; load average {load_before:.1f} at the"
        f" start, {load:.1f} at the end on {os.cpu_count()} CPUs: anything else running skews"
        " these figures)"
    )


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "", left: int = 1
) -> None:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return indent + "  ".join(parts).rstrip()

    print(line(headers))
    print(indent + "  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
