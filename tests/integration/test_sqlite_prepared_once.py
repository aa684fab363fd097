"""On SQLite, each statement the service repeats is prepared once, not on every run.

SQLite prepares a statement again on EVERY run when one of its parameters is compared
with a column that a partial index's WHERE names (a clock's status, a notice's status):
it checks whether the value lets it use that index. A step's load is four joins wide,
and preparing it again cost 90 µs of its 115. Our own constants are therefore written
into the statement (:func:`casework.driver.fixed`), on the ORM's path and the driver's.

SQLite counts a statement's runs and re-preparations in its ``sqlite_stmt`` table (a
compile option of Debian's and python.org's builds); on a build without it these tests
say so and skip. SQLite only: PostgreSQL's counterpart, plans kept across requests, is
``test_prepared_statements.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, select

from casework import cases, driver, reminders
from casework.cases import sync_providers
from casework.config import Settings
from casework.db import make_engine, session_scope, upgrade
from casework.models import Deadline, DeadlineStatus
from casework.notify.dispatch import dispatch
from tests.conftest import ADVISER, at
from tests.factories import allocate_to, create_case

RUNS = 4  # each statement of the day below runs at least this often


@pytest.fixture
def sqlite_engine(tmp_path: object) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/prepared-once.db")
    with engine.connect() as conn:
        try:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_stmt").all()
        except Exception:
            pytest.skip(
                f"this SQLite ({sqlite3.sqlite_version}) was built without the sqlite_stmt"
                " table (SQLITE_ENABLE_STMTVTAB): its re-preparations cannot be counted"
            )
    upgrade(engine)
    yield engine
    engine.dispose()


@dataclass
class Preparations:
    """Per statement text: (runs, re-preparations), the most one connection saw."""

    seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def read(self, dbapi_connection: Any) -> None:
        rows = dbapi_connection.execute("SELECT sql, run, reprep FROM sqlite_stmt WHERE run > 0")
        for sql, run, reprep in rows.fetchall():
            text = " ".join(sql.split())
            if text.upper().startswith(("PRAGMA", "SELECT SQL, RUN, REPREP")):
                continue
            before = self.seen.get(text, (0, 0))
            self.seen[text] = max(before, (run, reprep))

    def every_run(self, at_least: int) -> list[str]:
        """Statements run ``at_least`` times and prepared again on each of them."""
        return [
            f"{reprep} of {run} runs: {text[:200]}"
            for text, (run, reprep) in sorted(self.seen.items())
            if run >= at_least and reprep >= run
        ]


@contextmanager
def counting(engine: Engine) -> Iterator[Preparations]:
    """What SQLite says of each connection as it goes back to the pool (Python's sqlite3
    keeps a connection's prepared statements while the connection lives)."""
    seen = Preparations()

    def checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            seen.read(dbapi_connection)

    event.listen(engine.pool, "checkin", checkin)
    try:
        yield seen
    finally:
        event.remove(engine.pool, "checkin", checkin)


_BY_PARAMETER = select(Deadline.id).where(  # type: ignore[call-overload]
    Deadline.case_id == bindparam("case_id"), Deadline.status == bindparam("status")
)
_WRITTEN_IN = select(Deadline.id).where(  # type: ignore[call-overload]
    Deadline.case_id == bindparam("case_id"),
    Deadline.status == driver.fixed(DeadlineStatus.open),
)


def test_a_status_sent_as_a_parameter_is_prepared_again_on_every_run(
    sqlite_engine: Engine,
) -> None:
    """What the rule guards against, seen by the count the next test relies on: the
    same statement with the status written in is prepared once, on either path."""
    with counting(sqlite_engine) as seen, sqlite_engine.connect() as conn:
        for case_id in range(RUNS):
            conn.execute(_BY_PARAMETER, {"case_id": case_id, "status": "open"}).all()
            conn.execute(_WRITTEN_IN, {"case_id": case_id}).all()
            driver.rows(conn, _WRITTEN_IN, {"case_id": case_id})
    flagged = seen.every_run(RUNS)
    assert len(flagged) == 1, flagged
    assert "deadlines.status = ?" in flagged[0]
    written_in = [t for t in seen.seen if "deadlines.status = 'open'" in t]
    assert written_in, seen.seen
    assert all(seen.seen[t][1] == 0 for t in written_in), {t: seen.seen[t] for t in written_in}


def _a_day_of_work(engine: Engine, settings: Settings) -> None:
    """Steps on several cases through the use cases, the sweep, the notices sent and the
    adviser's digest: the statements a service runs over and over."""
    with session_scope(engine) as session:
        sync_providers(session, settings)
        refs = [create_case(session, settings).reference for _ in range(RUNS + 1)]

    def step(ref: str, name: str, day: str) -> None:
        with session_scope(engine) as session:
            cases.advance(session, ref, name, now=at(day), actor=ADVISER, settings=settings)

    for i, ref in enumerate(refs):
        step(ref, "advise", "2026-11-10")
        if i % 2 == 0:
            with session_scope(engine) as session:
                allocate_to(
                    session, ref, "collis", now=at("2026-11-10", "14:00"), settings=settings
                )
            step(ref, "choose_mediation", "2026-11-11")
        else:
            step(ref, "decline", "2026-11-11")
    for day in ("2026-11-12", "2026-11-20", "2026-12-01", "2026-12-15", "2027-01-05"):
        reminders.sweep(engine, at(day, "17:30"), settings)
        dispatch(engine, at(day, "17:31"), settings, concurrency=2)
        reminders.queue_digest(engine, at(day, "07:00"), settings)


def test_the_statements_of_a_day_of_work_are_each_prepared_once(
    sqlite_engine: Engine, settings: Settings
) -> None:
    with counting(sqlite_engine) as seen:
        _a_day_of_work(sqlite_engine, settings)
    assert len([t for t, (run, _) in seen.seen.items() if run >= RUNS]) >= 10, (
        "the day ran too few statements repeatedly to say anything"
    )
    assert seen.every_run(RUNS) == []
