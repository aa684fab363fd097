"""A use case is not refused because another writer committed while it was reading.

SQLite refuses the first write of a transaction whose reads another writer's commit
made stale, whatever that writer changed: the sweep, a sender, someone else's case.
Every use case that changes a case runs once more as SQLite's writer when that happens
(``casework.cases.unit.runs_again_as_writer``), so an adviser adding a note is not
told the case "was changed by someone else" when nobody had touched it. A real change
to a case the use case was changing is still a Conflict, on both databases.

Each test holds a writer open in one session (BEGIN IMMEDIATE on SQLite, a locked row
on PostgreSQL), runs the use case in a thread, commits the holder after the use case
has read, and judges what was written. Both databases run every test: PostgreSQL never
refuses a stale read, so there the tests prove the two behave alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, col

from casework import cases
from casework.cases.context import Actor
from casework.cases.errors import Conflict
from casework.cases.legal_hold import set_legal_hold
from casework.cases.users import add_user
from casework.config import Settings
from casework.models import Allocation, Case, CaseEvent, CaseNote, User
from tests.conftest import ADVISER, MANAGER, at, forget_cached_settings_and_engine
from tests.factories import create_case
from tests.integration.test_cli import cli_on

WAIT_SECONDS = 0.4  # how long the holder keeps its transaction open after the use case read
WHEN = at("2026-11-20", "10:05")


def _stored_case(session: Session, settings: Settings, name: str) -> Case:
    case = create_case(session, settings, name=name)
    session.commit()
    assert case.id is not None
    return case


def _hold_writer(engine: Engine, case_id: int) -> Session:
    """A transaction that has changed ``case_id`` (its version moves) and not committed."""
    holder = Session(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        holder.connection(execution_options={"claim": True})  # BEGIN IMMEDIATE
    holder.execute(
        update(Case).where(col(Case.id) == case_id).values(version=col(Case.version) + 1)
    )
    return holder


def _run_while_held(
    engine: Engine, holder: Session, use_case: Callable[[Session], Any]
) -> BaseException | None:
    """Run ``use_case`` in a thread in its own session, reading before the holder
    commits; the holder commits after WAIT_SECONDS. What the use case raised, or None."""
    outcome: list[BaseException | None] = []
    read = threading.Event()

    def run() -> None:
        try:
            with Session(engine, expire_on_commit=False) as other:
                # As a door does: it reads the case (a snapshot on SQLite) before the
                # use case writes.
                other.execute(select(func.count()).select_from(Case)).one()
                read.set()
                use_case(other)
            outcome.append(None)
        except BaseException as exc:  # judged by the caller
            outcome.append(exc)
        finally:
            read.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert read.wait(10)
    time.sleep(WAIT_SECONDS)
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return outcome[0]


def _note(reference: str) -> Callable[[Session], Any]:
    def write(s: Session) -> Any:
        return cases.add_note(s, reference, text="Rang the family back", now=WHEN, actor=ADVISER)

    return write


def _allocate(reference: str, settings: Settings) -> Callable[[Session], Any]:
    def write(s: Session) -> Any:
        return cases.allocate(
            s, reference, "collis", now=WHEN, actor=ADVISER, settings=settings,
            override_reason="the family asked for Collis",
        )  # fmt: skip

    return write


def _legal_hold(reference: str) -> Callable[[Session], Any]:
    def write(s: Session) -> Any:
        return set_legal_hold(s, reference, reason="A complaint", actor=MANAGER, now=WHEN)

    return write


def _count(engine: Engine, model: Any, case_id: int) -> int:
    with Session(engine) as s:
        return s.execute(
            select(func.count()).select_from(model).where(col(model.case_id) == case_id)
        ).scalar_one()


@pytest.mark.parametrize("which", ["note", "allocate", "legal_hold"])
def test_a_write_to_another_case_meanwhile_does_not_refuse_the_use_case(
    engine: Engine, session: Session, settings: Settings, which: str
) -> None:
    busy = _stored_case(session, settings, "Busy Family")
    quiet = _stored_case(session, settings, "Quiet Family")
    quiet_id = int(quiet.id or 0)
    events_before = _count(engine, CaseEvent, quiet_id)
    use_case = {
        "note": _note(quiet.reference),
        "allocate": _allocate(quiet.reference, settings),
        "legal_hold": _legal_hold(quiet.reference),
    }[which]
    raised = _run_while_held(engine, _hold_writer(engine, int(busy.id or 0)), use_case)
    assert raised is None, raised
    assert _count(engine, CaseEvent, quiet_id) == events_before + 1  # written once, not twice
    written = {"note": CaseNote, "allocate": Allocation, "legal_hold": CaseEvent}[which]
    assert _count(engine, written, quiet_id) >= 1


def test_a_note_is_added_to_a_case_someone_else_changed_meanwhile(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A note only adds a row: it goes onto the case as it now is, on both databases."""
    case = _stored_case(session, settings, "Noted Family")
    raised = _run_while_held(engine, _hold_writer(engine, int(case.id or 0)), _note(case.reference))
    assert raised is None, raised
    assert _count(engine, CaseNote, int(case.id or 0)) == 1


def test_a_change_to_a_case_someone_else_changed_meanwhile_is_still_a_conflict(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Allocating changes the case row, whose UPDATE checks the version the use case
    read: the other writer moved it, so the adviser is asked to reload, on both
    databases, and nothing of theirs is written."""
    case = _stored_case(session, settings, "Moved Family")
    case_id = int(case.id or 0)
    events_before = _count(engine, CaseEvent, case_id)
    raised = _run_while_held(
        engine, _hold_writer(engine, case_id), _allocate(case.reference, settings)
    )
    assert isinstance(raised, Conflict), raised
    assert "changed by someone else" in str(raised) and "reload it" in str(raised)
    assert _count(engine, Allocation, case_id) == 0
    assert _count(engine, CaseEvent, case_id) == events_before


def test_the_cli_allocates_while_another_case_is_written(
    engine: Engine, session: Session, settings: Settings, database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The CLI's door: `casework case allocate` reads the case, another writer commits,
    and the allocation is still made, once."""
    busy = _stored_case(session, settings, "Busy Family")
    quiet = _stored_case(session, settings, "Quiet Family")
    raised = _cli_while_held(
        engine, database_url, monkeypatch, int(busy.id or 0),
        "case", "allocate", quiet.reference, "collis",
        "--override-reason", "the family asked for Collis",
    )  # fmt: skip
    assert raised is None, raised
    assert _count(engine, Allocation, int(quiet.id or 0)) == 1


def _cli_while_held(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, busy_case_id: int,
    *args: str,
) -> BaseException | None:  # fmt: skip
    """`casework ARGS` run while another writer holds ``busy_case_id``: what it raised."""
    cli = cli_on(database_url, monkeypatch)
    try:
        return _run_while_held(engine, _hold_writer(engine, busy_case_id), lambda _s: cli(*args))
    finally:
        forget_cached_settings_and_engine()


ADMIN = Actor(id="user:ada.admin@ias.example.org", role="admin", channel="cli")


def test_a_staff_change_is_not_refused_by_a_write_to_a_case_meanwhile(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """People who sign in are changed by the staff use cases: their writes run again as
    the writer too. Before, SQLite's refusal escaped them as a database error."""
    busy = _stored_case(session, settings, "Busy Family")

    def add(s: Session) -> Any:
        return add_user(
            s, settings, email="new.adviser@ias.example.org", role="adviser",
            now=WHEN, actor=ADMIN,
        )  # fmt: skip

    raised = _run_while_held(engine, _hold_writer(engine, int(busy.id or 0)), add)
    assert raised is None, raised
    with Session(engine) as s:
        found = s.execute(select(User).where(col(User.email) == "new.adviser@ias.example.org"))
        assert found.scalar_one().role == "adviser"


def test_the_cli_adds_a_user_while_a_case_is_written(
    engine: Engine, session: Session, settings: Settings, database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    busy = _stored_case(session, settings, "Busy Family")
    raised = _cli_while_held(
        engine, database_url, monkeypatch, int(busy.id or 0),
        "user", "add", "cli.adviser@ias.example.org", "--role", "adviser", "--one-time-link",
    )  # fmt: skip
    assert raised is None, raised
    with Session(engine) as s:
        found = s.execute(select(User).where(col(User.email) == "cli.adviser@ias.example.org"))
        assert found.scalar_one().role == "adviser"
