"""Two writers appending to one case's audit chain at the same moment keep ONE chain.

Each new ``case_events`` row is sealed with the hash of the row before it. On
PostgreSQL the writer locks the case row, then reads the chain's end. If the lock and
the read are one statement, a writer that had to WAIT for the lock reads the end as it
was when its statement began (READ COMMITTED takes one snapshot per statement), not
the row the other writer just committed: both rows then name the same predecessor,
and ``audit verify`` reports a break that no one made. Found on 2026-12-01 by hand
(two connections, one holding the lock); these tests hold the lock in one session,
start the second writer in a thread, let it wait, then commit the first.

Every door that appends is covered: a recorded page view (one statement reads the case
and the chain's end), a row written by the unit of work (an audit row added to a
session), and rows sealed for several cases at once (the sweep's path). On SQLite a
writer waits for the other's whole transaction, so the chain holds there too: the
same tests run on both databases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import audit, cases
from casework.cases.unit import audit_event
from casework.config import Settings
from casework.models import Case, CaseEvent
from tests.conftest import ADVISER, MANAGER, at
from tests.factories import create_case

WAIT_SECONDS = 0.4  # how long the first writer holds the lock while the second waits


def _append_in_session(engine: Engine, case_id: int, note: str) -> Session:
    """A writer that has locked ``case_id``'s chain and appended a row, not yet committed."""
    holder = Session(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        holder.connection(execution_options={"claim": True})  # BEGIN IMMEDIATE
    case = holder.get(Case, case_id)
    assert case is not None
    holder.add(
        audit_event(
            case, actor=ADVISER, event="note_added", at=at("2026-11-20"), from_state=None, note=note
        )
    )
    holder.flush()
    return holder


def _second_writer_waits_then_appends(
    engine: Engine, case_ids: list[int], second: Callable[[], None]
) -> None:
    holder = _append_in_session(engine, case_ids[0], "first writer")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            second()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(WAIT_SECONDS)
    still_waiting = thread.is_alive()
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    assert not errors, errors
    assert still_waiting, "the second writer did not wait for the first one's lock"


def _breaks(engine: Engine) -> list[audit.ChainBreak]:
    with engine.connect() as connection:
        return audit.find_breaks(connection).breaks


def _rows(engine: Engine, case_id: int) -> list[CaseEvent]:
    with Session(engine) as s:
        return list(
            s.execute(
                select(CaseEvent)
                .where(col(CaseEvent.case_id) == case_id)
                .order_by(col(CaseEvent.id))
            ).scalars()
        )


def _stored_case(session: Session, settings: Settings, name: str = "Race Family") -> Case:
    """A case opened and committed, so other sessions and threads can see it."""
    case = create_case(session, settings, name=name)
    session.commit()
    assert case.id is not None
    return case


def test_a_page_view_waiting_on_another_writer_seals_after_its_row(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = _stored_case(session, settings)
    reference, case_id = case.reference, int(case.id or 0)

    def view() -> None:
        with Session(engine, expire_on_commit=False) as other:
            # As the pages do: a request that records its reads begins as a writer.
            other.connection(execution_options={"claim": True})
            cases.case_detail(
                other, reference, actor=MANAGER, now=at("2026-11-20", "10:01"), record=True
            )

    _second_writer_waits_then_appends(engine, [case_id], view)
    assert [r.event for r in _rows(engine, case_id)][-2:] == ["note_added", "viewed"]
    assert _breaks(engine) == []


def test_a_row_the_unit_of_work_writes_after_waiting_seals_after_the_other(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case_id = int(_stored_case(session, settings).id or 0)

    def append() -> None:
        with _append_in_session(engine, case_id, "second") as other:
            other.commit()

    _second_writer_waits_then_appends(engine, [case_id], append)
    assert [r.note for r in _rows(engine, case_id)][-2:] == ["first writer", "second"]
    assert _breaks(engine) == []


def test_rows_sealed_for_several_cases_at_once_wait_and_seal_after_the_other(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The sweep's path: one statement reads the chain ends of a batch of cases."""
    case_ids = [
        int(_stored_case(session, settings, name).id or 0)
        for name in ("Race Family One", "Race Family Two")
    ]

    def seal_batch() -> None:
        # As the sweep does: a claim begins as a writer (BEGIN IMMEDIATE on SQLite).
        with engine.connect().execution_options(claim=True) as conn, conn.begin():
            rows = [
                {
                    "case_id": case_id,
                    "at": at("2026-11-20", "10:02"),
                    "actor": "system:sweep",
                    "event": "reminder_sent",
                    "from_state": None,
                    "to_state": None,
                    "data": {},
                    "channel": "system",
                    "note": "batch",
                }
                for case_id in case_ids
            ]
            audit.seal_rows(conn, rows)
            conn.execute(CaseEvent.__table__.insert(), rows)  # type: ignore[attr-defined]

    _second_writer_waits_then_appends(engine, case_ids, seal_batch)
    assert [r.note for r in _rows(engine, case_ids[0])][-2:] == ["first writer", "batch"]
    assert _breaks(engine) == []


def test_a_step_recorded_while_another_row_is_written_keeps_one_chain(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The step's version-checked UPDATE waits for the other writer's lock (a row that
    changes nothing on the case, so the version still matches), then seals after it."""
    case = _stored_case(session, settings)
    reference, case_id = case.reference, int(case.id or 0)

    def step() -> None:
        with Session(engine, expire_on_commit=False) as other:
            cases.advance(
                other, reference, "advise", now=at("2026-11-20", "10:03"), actor=ADVISER,
                settings=settings,
            )  # fmt: skip

    _second_writer_waits_then_appends(engine, [case_id], step)
    assert [r.event for r in _rows(engine, case_id)][-2:] == ["note_added", "advise"]
    assert _breaks(engine) == []


def test_a_step_waits_for_a_write_to_another_case_instead_of_being_refused(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """SQLite refuses a write from a read that another writer's commit made stale, even
    when that writer touched another case (the sweep, a sender). The step then runs
    again as a writer, held to the version it read: the adviser is not told their case
    "was changed by someone else" when nobody changed it."""
    busy = _stored_case(session, settings, "Busy Family")
    quiet = _stored_case(session, settings, "Quiet Family")
    holder = _append_in_session(engine, int(busy.id or 0), "someone else's write")
    outcome: list[BaseException | None] = []

    def step() -> None:
        try:
            with Session(engine, expire_on_commit=False) as other:
                cases.advance(
                    other, quiet.reference, "advise", now=at("2026-11-20", "10:04"),
                    actor=ADVISER, settings=settings,
                )  # fmt: skip
            outcome.append(None)
        except BaseException as exc:  # judged below
            outcome.append(exc)

    thread = threading.Thread(target=step)
    thread.start()
    time.sleep(WAIT_SECONDS)
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    assert outcome == [None], outcome
    assert [r.event for r in _rows(engine, int(quiet.id or 0))][-1] == "advise"
    assert _breaks(engine) == []
