"""Requests to correct or erase personal data, on SQLite and PostgreSQL.

A correction goes through the contact use case; an erasure leaves no trace of the
person's name, phone or email in any text column of any table (every table and column
is scanned), while the case's dates, clocks and sealed audit trail stay. Each request
has a one-month clock, extendable once by two months, escalated to the manager.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner, Result

from casework import audit, cases
from casework.cases import data_requests as requests
from casework.cli import app
from casework.config import Settings
from casework.models import Deadline, Notice, Person, WebhookBatch
from casework.reminders import sweep
from tests.conftest import ADVISER, MANAGER, at, forget_cached_settings_and_engine
from tests.factories import advance, create_case

NAME = "Zebedee Quillfeather"
PHONE = "+447911123456"
NEW_PHONE = "+447911123457"
EMAIL = "zebedee.q@example.org"


def _request(session: Session, reference: str, kind: str, **changes: str) -> int:
    request = requests.record_request(
        session,
        reference,
        kind=kind,
        requested_by="The child's father, on the phone",
        received_on=dt.date(2026, 11, 16),
        what="Please correct my number" if kind == "rectification" else "Delete everything",
        changes=changes,
        actor=ADVISER,
        now=at("2026-11-16", "11:00"),
    )
    return int(request.id or 0)


def test_a_correction_is_approved_and_made_through_the_contact_use_case(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, name=NAME, phone="07911 123456", email=EMAIL)
    request_id = _request(session, case.reference, "rectification", phone="07911 123457")
    row = requests.get_request(session, request_id, actor=MANAGER)
    assert row.deadline is not None and row.deadline.due_date == dt.date(2026, 12, 16)
    assert row.deadline.kind == "data_request" and row.deadline.status == "open"
    with pytest.raises(cases.NotPermitted):
        requests.decide_request(
            session, request_id, approve=True, actor=ADVISER, now=at("2026-11-17")
        )
    requests.decide_request(session, request_id, approve=True, actor=MANAGER, now=at("2026-11-17"))
    done = requests.carry_out_request(session, request_id, actor=MANAGER, now=at("2026-11-18"))
    assert done.status == "done" and "Corrected: phone" in done.closing_record
    family = session.execute(select(Person).where(Person.case_id == case.id)).scalar_one()
    assert family.phone == NEW_PHONE and family.name == NAME
    trail = [e.event for e in cases.case_events(session, case)]
    assert trail[-4:] == [
        "data_request",
        "data_request_approved",
        "update_contact",
        "data_request_done",
    ]
    clock = session.get(Deadline, done.deadline_id)
    assert clock is not None and (clock.status, clock.done_on) == ("met", dt.date(2026, 11, 18))
    with pytest.raises(cases.TransitionRefused):
        requests.carry_out_request(session, request_id, actor=MANAGER, now=at("2026-11-18"))


def test_a_refusal_needs_the_lawful_basis_and_answers_the_clock(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, name=NAME)
    request_id = _request(session, case.reference, "erasure")
    with pytest.raises(cases.ValidationFailed) as missing:
        requests.decide_request(
            session, request_id, approve=False, basis=" ", actor=MANAGER, now=at("2026-11-17")
        )
    assert missing.value.field == "basis"
    basis = "Art. 17(3)(e): the record is needed to defend a claim the family has brought"
    refused = requests.decide_request(
        session, request_id, approve=False, basis=basis, actor=MANAGER, now=at("2026-11-17")
    )
    assert refused.status == "refused" and basis in refused.closing_record
    clock = session.get(Deadline, refused.deadline_id)
    assert clock is not None and clock.status == "met"
    assert cases.case_events(session, case)[-1].note == basis


def test_the_clock_extends_once_by_two_months_with_a_reason(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, name=NAME)
    request_id = _request(session, case.reference, "erasure")
    first = requests.get_request(session, request_id, actor=MANAGER).deadline
    with pytest.raises(cases.ValidationFailed):
        requests.extend_request(session, request_id, reason="", actor=MANAGER, now=at("2026-11-20"))
    requests.extend_request(
        session,
        request_id,
        reason="The family's records span four cases and two providers",
        actor=MANAGER,
        now=at("2026-11-20"),
    )
    row = requests.get_request(session, request_id, actor=MANAGER)
    assert row.deadline is not None and row.deadline.due_date == dt.date(2027, 2, 16)
    assert first is not None and session.get(Deadline, first.id).status == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(cases.TransitionRefused):
        requests.extend_request(
            session, request_id, reason="again", actor=MANAGER, now=at("2026-11-21")
        )


def test_a_missed_request_is_escalated_to_the_manager(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, name=NAME)
    request_id = _request(session, case.reference, "erasure")
    deadline_id = requests.get_request(session, request_id, actor=MANAGER).request.deadline_id
    sweep(engine, at("2026-12-09", "09:30"), settings)
    sweep(engine, at("2026-12-17", "09:30"), settings)
    with Session(engine) as fresh:
        sent = fresh.execute(
            select(Notice.template, Notice.recipient_role).where(Notice.deadline_id == deadline_id)
        ).all()
        clock = fresh.get(Deadline, deadline_id)
    assert sorted(sent) == [("escalation_missed", "manager"), ("escalation_near", "manager")]
    assert clock is not None and clock.status == "missed"


def _every_text(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, value) for every text or JSON value in every table."""
    found = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(table.select()).mappings():
                for column, value in row.items():
                    if isinstance(value, str):
                        found.append((table.name, column, value.lower()))
                    elif isinstance(value, dict | list):
                        found.append((table.name, column, json.dumps(value).lower()))
    return found


def _traces(engine: Engine, needles: list[str]) -> list[tuple[str, str, str]]:
    return [
        (table, column, needle)
        for table, column, value in _every_text(engine)
        for needle in needles
        if needle.lower() in value
    ]


def test_erasure_leaves_no_trace_of_the_person_in_any_table(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(
        session,
        settings,
        name=NAME,
        phone="07911 123456",
        email=EMAIL,
        child_name="Quentin Quillfeather",
        summary=f"{NAME} rang about the refusal to assess",
    )
    second = create_case(session, settings, name=NAME, phone="07911 123459", email=EMAIL)
    other = create_case(session, settings, name="Olive Otherfamily", email="olive@example.org")
    cases.add_note(
        session, case.reference, text=f"{NAME} is worried", now=at("2026-11-10"), actor=ADVISER
    )
    cases.log_call(
        session,
        case.reference,
        call_on="2026-11-10",
        direction="in",
        who=NAME,
        summary=f"Rang from {PHONE}",
        now=at("2026-11-10", "11:00"),
        actor=ADVISER,
    )
    cases.update_contact(
        session,
        case.reference,
        reason="New phone",
        phone="07911 123457",
        now=at("2026-11-11"),
        actor=ADVISER,
    )
    advance(session, settings, case, "advise", now=at("2026-11-12"))
    cases.record_view(session, case, MANAGER, at("2026-11-12", "12:00"))
    session.add(
        WebhookBatch(
            source="twilio",
            received_at=at("2026-11-12"),
            body="To=%2B447911123456&MessageStatus=delivered",
            applied_at=at("2026-11-12"),
        )
    )
    session.commit()
    needles = [NAME, "Quillfeather", PHONE, NEW_PHONE, "+447911123459", EMAIL]
    assert _traces(engine, needles)  # the scan sees them before

    request_id = _request(session, case.reference, "erasure")
    requests.decide_request(session, request_id, approve=True, actor=MANAGER, now=at("2026-11-17"))
    done = requests.carry_out_request(session, request_id, actor=MANAGER, now=at("2026-11-18"))

    assert _traces(engine, needles) == []
    assert _traces(engine, ["Olive Otherfamily", "olive@example.org"])  # another family: kept
    # What the law requires is kept, and the closing record says what and why.
    assert "Kept, because the law requires it" in done.closing_record
    assert "SEN2" in done.closing_record and "time limits" in done.closing_record
    session.expire_all()
    kept = cases.get_case(session, case.reference)
    assert (kept.state, kept.decision_date) == ("advised", dt.date(2026, 11, 2))
    assert kept.advised_on is not None
    assert cases.case_deadlines(session, kept)
    assert cases.get_case(session, second.reference).anonymised_at is not None
    assert cases.get_case(session, other.reference).anonymised_at is None
    events = [e.event for e in cases.case_events(session, kept)]
    assert events[-3:] == ["anonymised", "redacted", "data_request_done"]
    with engine.connect() as conn:
        assert audit.find_breaks(conn).breaks == []


# --- The CLI door ---------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    yield CliRunner()
    forget_cached_settings_and_engine()


def _run(runner: CliRunner, *args: str, expect: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
    return result


def test_the_cli_records_decides_and_carries_out_in_words(
    cli: CliRunner, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, name=NAME, email=EMAIL)
    at_ = ("--at", "2026-11-20T10:00")
    out = _run(
        cli,
        "data-request",
        "record",
        case.reference,
        "--kind",
        "rectification",
        "--requested-by",
        "The child's father",
        "--received-on",
        "2026-11-16",
        "--what",
        "My email is wrong",
        "--email",
        "zeb.q@example.org",
        *at_,
    ).stdout
    assert f"recorded number 1: {case.reference}: Correct personal data" in out
    assert "Waiting for a manager's decision" in out and "Wednesday 16 December 2026" in out
    refused = _run(cli, "data-request", "decide", "1", "--refuse", *at_, expect=2)
    assert "lawful basis" in refused.stdout + refused.stderr
    _run(cli, "data-request", "decide", "1", "--approve", *at_)
    out = _run(cli, "data-request", "carry-out", "1", *at_).stdout
    assert "Carried out" in out and "Corrected: email" in out
    listed = _run(cli, "data-request", "list").stdout
    assert "number 1:" in listed and "(met)" in listed
    for code in ("rectification", "data_request", "2026-11-16"):
        assert code not in listed
    data: list[dict[str, Any]] = json.loads(_run(cli, "data-request", "list", "--json").stdout)
    assert data[0]["status"] == "done"


def test_a_case_under_a_legal_hold_is_not_erased(session: Session, settings: Settings) -> None:
    from casework.cases.legal_hold import set_legal_hold

    case = create_case(session, settings, name=NAME)
    request_id = _request(session, case.reference, "erasure")
    requests.decide_request(session, request_id, approve=True, actor=MANAGER, now=at("2026-11-17"))
    set_legal_hold(
        session, case.reference, reason="Claim notified", actor=MANAGER, now=at("2026-11-17")
    )
    with pytest.raises(cases.TransitionRefused) as refused:
        requests.carry_out_request(session, request_id, actor=MANAGER, now=at("2026-11-18"))
    assert "legal hold" in str(refused.value)
    session.expire_all()
    assert cases.get_case(session, case.reference).anonymised_at is None
