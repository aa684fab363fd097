"""A transition costs at most 8 statements and exactly one commit, on both databases.

Counted with SQLAlchemy's ``before_cursor_execute`` (transaction control not counted)
and ``commit`` events on the engine, for the steps that write the most: a step that
meets one clock and opens another and queues notices (choose mediation, decline,
issue the certificate). The statements: the case with its family, provider and live
clocks (1; on SQLite with the audit chain's end), the notices (1), the version-checked
UPDATE of the case (1; on PostgreSQL it returns the audit chain's end, read once it
holds the row), the audit row (1), the clocks met and opened (1: one upsert); a
certificate adds its document row (1) and, on SQLite, the read that rendered its PDF
with no transaction open (1). A provider's step through the portal checks its provider
has accepted the case from the same first read (no read of the allocation of its own),
so scheduling a meeting, which reads the invitation's earlier versions and stores the
next, stays within the bound too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from casework import cases
from casework.cases.unit import load_case_with_clocks
from casework.config import Settings
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case
from tests.web.conftest import Web, make_case, reload

# The web app's fixture (under its own name here): the portal door's step is counted too.
from tests.web.conftest import web as portal_web  # noqa: F401

MAX_STATEMENTS = 8
# A step that makes a document (the certificate) is held to the same bound: its PDF is
# rendered with no write lock held, and the actor's name and the year's last certificate
# number come with the case (on SQLite the case is read once more, in the transaction
# that writes, after a read that rendered the PDF with no transaction open).
DOCUMENT_STEPS: dict[str, int] = {}
TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    commits: int = 0


@contextmanager
def counting(engine: Engine) -> Iterator[Counted]:
    seen = Counted()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(TX_CONTROL):
            seen.statements.append(statement)

    def committed(conn: Any) -> None:
        seen.commits += 1

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "commit", committed)


def _step(
    engine: Engine, session: Session, settings: Settings, case: Any, name: str, **data: Any
) -> tuple[Any, Counted]:
    with counting(engine) as counted:
        moved = advance(session, settings, case, name, now=at("2026-11-12"), **data)
    assert counted.commits == 1, name
    bound = MAX_STATEMENTS + DOCUMENT_STEPS.get(name, 0)
    assert len(counted.statements) <= bound, (name, counted.statements)
    return moved, counted


def test_sealing_the_audit_row_costs_no_statement_of_its_own(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """advise in a fresh session: the case (with the chain's end on SQLite), the family's
    notices, the UPDATE (returning the chain's end on PostgreSQL), the audit row."""
    case = create_case(session, settings)
    session.commit()
    with counting(engine) as counted, Session(engine, expire_on_commit=False) as fresh:
        cases.advance(fresh, case.reference, "advise", now=at("2026-11-12"), actor=ADVISER,
                      settings=settings)  # fmt: skip
    heads = [" ".join(s.split()[:3]).upper() for s in counted.statements]
    assert counted.commits == 1
    assert [h.split()[0] for h in heads] == ["SELECT", "INSERT", "UPDATE", "INSERT"], heads
    assert not any(
        "case_events.hash" in s and s.startswith("SELECT") for s in counted.statements[1:]
    )


def test_each_transition_is_at_most_8_statements_and_one_commit(
    engine: Engine, session: Session, settings: Settings
) -> None:
    declined = create_case(session, settings)
    case, _ = _step(engine, session, settings, declined, "advise")
    case, counted = _step(engine, session, settings, case, "decline", declined_on="2026-11-12")
    # The clock met (the adviser's contact) and the clock opened (the certificate's) are
    # one upsert.
    [clocks] = [s for s in counted.statements if s.startswith("INSERT INTO deadlines")]
    assert "ON CONFLICT" in clocks and not any(
        s.startswith("UPDATE deadlines") for s in counted.statements
    )
    case, counted = _step(
        engine, session, settings, case, "issue_certificate", certificate_on="2026-11-12"
    )
    assert case.state == "certificate_issued" and case.version == 4
    assert any(s.startswith("INSERT INTO documents") for s in counted.statements)

    mediating = create_case(session, settings)
    advance(session, settings, mediating, "advise")
    allocate_to(
        session, mediating.reference, "collis", now=at("2026-11-10", "11:00"), settings=settings
    )
    case, counted = _step(
        engine, session, settings, mediating, "choose_mediation", chose_on="2026-11-12"
    )
    assert case.state == "mediating"
    assert any(s.startswith("INSERT INTO notices") for s in counted.statements)


def test_a_writer_that_lost_the_race_is_refused_and_writes_nothing(
    engine: Engine, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Core UPDATE is version-checked as the ORM's was: another writer between this
    one's read and its write makes it a Conflict (PostgreSQL: no row matched the version;
    SQLite: the stale snapshot is refused), and nothing of it is written."""
    case = create_case(session, settings)
    events_before = _events(engine, case.id)

    def load_then_lose_the_race(session: Session, reference: str, **options: Any) -> Any:
        loaded = load_case_with_clocks(session, reference, **options)
        with engine.begin() as other:  # someone else changes the case meanwhile
            other.execute(
                text("UPDATE cases SET version = version + 1 WHERE id = :id"), {"id": case.id}
            )
        return loaded

    # The module, not the function of the same name the package exports.
    advance_module = sys.modules["casework.cases.advance"]
    monkeypatch.setattr(advance_module, "load_case_with_clocks", load_then_lose_the_race)
    with pytest.raises(cases.Conflict):
        advance(session, settings, case, "advise")
    with engine.connect() as conn:
        state, version = conn.execute(
            text("SELECT state, version FROM cases WHERE id = :id"), {"id": case.id}
        ).one()
    assert (state, version) == ("requested", 2)
    assert _events(engine, case.id) == events_before


def _events(engine: Engine, case_id: int | None) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM case_events WHERE case_id = :id"), {"id": case_id}
            ).scalar_one()
        )


def test_a_step_builds_no_state_machine(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path looks transitions up in ``states.TRANSITIONS`` (proved equal to the
    machines by tests/unit/test_transition_table.py): recording steps, a certificate
    included, never binds a python-statemachine machine to the case."""
    from statemachine import StateMachine

    def no_machine(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a machine was built on the hot path")

    monkeypatch.setattr(StateMachine, "__init__", no_machine)
    case = create_case(session, settings)
    case = advance(session, settings, case, "advise", now=at("2026-11-10"))
    case = advance(
        session, settings, case, "decline", now=at("2026-11-11"), declined_on="2026-11-11"
    )
    case = advance(
        session, settings, case, "issue_certificate", now=at("2026-11-12"),
        certificate_on="2026-11-12",
    )  # fmt: skip
    assert case.state == "certificate_issued"


def test_the_acceptance_check_searches_the_cases_allocations_not_the_providers(
    engine: Engine,
) -> None:
    """The load's "has the provider accepted?" must use the case's index on SQLite:
    on provider_id's it reads every allocation the provider ever had (a transition
    slowing as the caseload grows). PostgreSQL plans from statistics; not checked."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner, without statistics, is the one that chose badly")
    from casework.cases.unit import _core_case_with_clocks

    stmt = _core_case_with_clocks(True, False).stmt.params(reference="X")
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    searches = [step for step in plan if "allocations" in step]
    # An index that leads with the case (its own, or case + provider + status).
    assert searches and all("INDEX ix_allocations_case_" in step for step in searches), plan
    assert all("(case_id=?" in step for step in searches), plan


def test_a_step_in_a_fresh_session_is_read_and_written_on_core(
    engine: Engine, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the CLI and the benches call it (a session holding nothing yet), a step is
    loaded outside the session and written by Core statements (no unit of work), within
    the same bound, and what it wrote is what the ORM path writes."""
    case = create_case(session, settings)
    events_before = _events(engine, case.id)
    advance_module = sys.modules["casework.cases.advance"]
    written: list[bool] = []
    real = advance_module.write_detached_step

    def spy(*args: Any, **kwargs: Any) -> bool:
        written.append(real(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(advance_module, "write_detached_step", spy)
    with Session(engine, expire_on_commit=False) as fresh, counting(engine) as counted:
        moved = cases.advance(
            fresh,
            case.reference,
            "advise",
            now=at("2026-11-12"),
            actor=ADVISER,
            settings=settings,
        )
        assert moved not in fresh
    assert written == [True]
    assert counted.commits == 1 and len(counted.statements) <= MAX_STATEMENTS
    with engine.connect() as conn:
        state, version = conn.execute(
            text("SELECT state, version FROM cases WHERE id = :id"), {"id": case.id}
        ).one()
    assert (state, version, moved.version) == ("advised", 2, 2)
    assert _events(engine, case.id) == events_before + 1


def test_the_portal_schedules_a_meeting_within_the_bound(
    engine: Engine,
    portal_web: Web,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider's schedule_meeting through the portal: the step reads the case with
    the provider's accepted allocation and stores the meeting invitation (a document
    the family's and the provider's emails carry), still within 8 statements and one
    commit."""
    case = make_case(portal_web, provider="solution-talk", accepted=True, mediating=True)
    counted: list[Counted] = []
    real_step = cases.record_step

    def step(*args: Any, **kwargs: Any) -> Any:
        with counting(engine) as seen:
            try:
                return real_step(*args, **kwargs)
            finally:
                counted.append(seen)

    monkeypatch.setattr(cases, "record_step", step)
    response = portal_web.browser("provider_a").post(
        f"/portal/cases/{case.reference}/events/schedule_meeting",
        {
            "version": str(case.version),
            "meeting_on-day": "12",
            "meeting_on-month": "11",
            "meeting_on-year": "2026",
            "meeting_time": "10:00",
        },
    )
    assert response.status_code == 303, response.text
    [seen] = counted
    assert seen.commits == 1
    assert len(seen.statements) <= MAX_STATEMENTS, [s[:90] for s in seen.statements]
    # (On PostgreSQL the INSERT is a CTE of the statement that supersedes the last version.)
    assert any("INSERT INTO documents" in s for s in seen.statements)
    after = reload(portal_web, case.reference)
    assert after.meeting_on is not None and after.version == case.version + 1


# Steps that call off or move a meeting, held to the same bound (they were over it:
# 9, 10, 12 and 11 statements). Each stores the invitation's next version and skips
# the old meeting's unsent notices (one statement on PostgreSQL, two on SQLite); a
# decline or a withdrawal also ends the provider's allocation (one UPDATE, no read).
MEETING_STEP_DATA: dict[str, dict[str, str]] = {
    "cancel_meeting": {"reason": "the mediator is ill"},
    "schedule_meeting": {"meeting_on": "2026-12-16", "meeting_time": "14:00"},
    "decline": {"declined_on": "2026-11-25"},
    "withdraw": {"reason": "the family moved away"},
}


def _skips(counted: Counted) -> list[str]:
    """The statements that skip notices: the one UPDATE of the step's own."""
    return [s for s in counted.statements if "UPDATE NOTICES SET" in s.upper()]


@pytest.mark.parametrize("path", ["session", "fresh session"])
@pytest.mark.parametrize("name", sorted(MEETING_STEP_DATA))
def test_calling_off_or_moving_a_meeting_skips_its_notices_in_one_update(
    engine: Engine, session: Session, settings: Settings, name: str, path: str
) -> None:
    """The old meeting's notices are skipped by ONE statement of the step's own
    transaction, on the ORM path and on the detached Core path alike; a step with no
    live meeting to call off or move runs none. Either way the step (a withdrawal or a
    decline ending the allocation too) is within 8 statements and one commit."""
    from tests.integration.test_meeting_invitations import mediating

    def step(case: Any, event: str, data: dict[str, str]) -> Counted:
        with counting(engine) as counted:
            if path == "session":
                advance(session, settings, case, event, now=at("2026-11-25"), **data)
            else:
                with Session(engine, expire_on_commit=False) as fresh:
                    cases.advance(
                        fresh, case.reference, event, now=at("2026-11-25"), actor=ADVISER,
                        settings=settings, data=data,
                    )  # fmt: skip
        assert counted.commits == 1
        return counted

    nothing_to_call_off = mediating(session, settings)
    first = {"meeting_on": "2026-12-09", "meeting_time": "10:00"}
    event = name if name != "cancel_meeting" else "schedule_meeting"
    data = MEETING_STEP_DATA[name] if name != "cancel_meeting" else first
    counted = step(nothing_to_call_off, event, data)
    assert _skips(counted) == [] and len(counted.statements) <= MAX_STATEMENTS

    case = mediating(session, settings)
    advance(session, settings, case, "schedule_meeting", now=at("2026-11-20"), **first)
    counted = step(case, name, MEETING_STEP_DATA[name])
    assert len(_skips(counted)) == 1
    assert len(counted.statements) <= MAX_STATEMENTS, [s[:90] for s in counted.statements]
