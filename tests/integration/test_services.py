"""The use cases on a real database (SQLite and PostgreSQL): clocks, refusals, races, schema.

Each event's deadline rule is checked with exact due dates worked out by hand from
``domain.md`` and the 2026/27 England calendar (the reasoning is in the comments),
because a clock that is a day out is a family told the wrong date. What is checked
is what was committed: results are read back through a fresh session, not from the
objects the use case returned.

The default case (``tests.factories.create_case``) is a mediation request about an
LA decision sent on Monday 2 November 2026, opened on Monday 9 November 2026.
Bank holidays used: Fri 25 Dec 2026, Mon 28 Dec 2026 (Boxing Day observed), Fri
1 Jan 2027.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

import casework.models  # noqa: F401  (registers every table on SQLModel.metadata)
from casework import cases
from casework import deadlines as dl
from casework.config import Settings
from casework.db import alembic_config, downgrade, make_engine, session_scope, upgrade
from casework.models import Case, Deadline, Notice
from tests.conftest import (
    ADVISER,
    MANAGER,
    POSTGRES_URL,
    at,
    postgres_schema_url,
    postgres_unavailable,
)
from tests.factories import advance, allocate_to, create_case

D = dt.date


# --- Helpers -----------------------------------------------------------------------------


def committed(engine: Engine, reference: str) -> dict[str, Any]:
    """What the database holds for a case, read through a brand-new session."""
    with session_scope(engine) as fresh:
        case = cases.get_case(fresh, reference)
        return {
            "state": case.state,
            "version": case.version,
            "provider_id": case.provider_id,
            "events": [(e.event, e.from_state, e.to_state) for e in cases.case_events(fresh, case)],
            "deadlines": [
                (d.kind, d.status, d.due_date, d.closed_reason)
                for d in cases.case_deadlines(fresh, case)
            ],
            "notices": sorted(
                (n.template, n.recipient_role, n.channel)
                for n in fresh.execute(select(Notice).where(col(Notice.case_id) == case.id))
                .scalars()
                .all()
            ),
        }


def clocks(engine: Engine, reference: str) -> dict[str, list[Deadline]]:
    """The case's deadline rows by kind, from a fresh session."""
    with session_scope(engine) as fresh:
        case = cases.get_case(fresh, reference)
        out: dict[str, list[Deadline]] = {}
        for d in cases.case_deadlines(fresh, case):
            out.setdefault(d.kind, []).append(d)
        return out


def one(engine: Engine, reference: str, kind: str) -> Deadline:
    """The single deadline of ``kind``; two would be a clock opened twice."""
    rows = clocks(engine, reference).get(kind, [])
    assert len(rows) == 1, f"expected one {kind} deadline, found {len(rows)}"
    return rows[0]


def end_of_london_day(day: D) -> dt.datetime:
    """A whole-day deadline runs to midnight at the end of that London day."""
    return at((day + dt.timedelta(days=1)).isoformat(), "00:00")


def provider_actor(session: Session, code: str) -> cases.Actor:
    provider = cases.find_provider(session, code)
    return cases.Actor(
        id=f"provider:{code}:sam", role="provider", channel="web", provider_id=provider.id
    )


def mediating_case(
    session: Session, settings: Settings, *, health_care: bool = False, **choose: Any
) -> Case:
    """Advised on 10 Nov, allocated to Solution Talk, mediation chosen on Thu 12 Nov 2026."""
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session,
        case.reference,
        "solution-talk",
        now=at("2026-11-10", "11:00"),
        actor=ADVISER,
        settings=settings,
    )
    data: dict[str, Any] = {"health_care": "yes" if health_care else "no", **choose}
    return advance(session, settings, case, "choose_mediation", now=at("2026-11-12"), **data)


# --- Mediation: decline and certificate --------------------------------------------------


def test_decline_opens_the_certificate_clock_of_three_working_days(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """reg 34: told on Wed 23 Dec 2026 -> Thu 24 (1), [Fri 25, Sat, Sun, Mon 28 holidays],
    Tue 29 (2), Wed 30 Dec (3)."""
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-12-21"))
    advance(session, settings, case, "decline", now=at("2026-12-23", "11:00"))

    clock = one(engine, case.reference, "certificate_after_decline")
    assert clock.status == "open"
    assert clock.due_date == D(2026, 12, 30)
    assert clock.due_at == end_of_london_day(D(2026, 12, 30))
    assert clock.citation == "SEND Regulations 2014, reg 34"
    assert "23 December 2026 + 3 working days = Wednesday 30 December 2026" in clock.explanation
    # the family's 2-month window to contact the adviser has been answered
    contact = one(engine, case.reference, "contact_adviser")
    assert (contact.status, contact.due_date) == ("met", D(2027, 1, 2))
    assert committed(engine, case.reference)["state"] == "declined"


def test_issue_certificate_meets_the_clock_and_opens_the_appeal_deadline(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Certificate Thu 24 Dec 2026: decision 2 Nov + 2 months = 2 Jan 2027; certificate
    + 1 month = Sun 24 Jan 2027, the later; a Sunday, so Monday 25 January 2027, 5pm."""
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-12-21"))
    advance(session, settings, case, "decline", now=at("2026-12-23"))
    case = advance(session, settings, case, "issue_certificate", now=at("2026-12-24"))

    assert one(engine, case.reference, "certificate_after_decline").status == "met"
    appeal = one(engine, case.reference, "appeal")
    assert appeal.status == "open"
    assert appeal.due_date == D(2027, 1, 25)
    assert appeal.due_at == at("2027-01-25", "17:00")
    assert "later date: 24 January 2027" in appeal.explanation
    assert "Monday 25 January 2027, 5pm" in appeal.explanation
    with session_scope(engine) as fresh:
        row = cases.get_case(fresh, case.reference)
        assert (row.state, row.appeal_due) == ("certificate_issued", D(2027, 1, 25))
        assert (row.certificate_on, row.certificate_type) == (D(2026, 12, 24), "declined")


@pytest.mark.parametrize(
    ("issued", "status"),
    [
        ("2026-11-16", "met"),  # Wed 11 Nov + 3 working days = Mon 16 Nov: on the day
        ("2026-11-17", "missed"),  # one day late
    ],
)
def test_a_late_certificate_marks_its_clock_missed(
    engine: Engine, session: Session, settings: Settings, issued: str, status: str
) -> None:
    """Met on the due day, missed the day after; a missed clock says when it was done."""
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    advance(session, settings, case, "decline", now=at("2026-11-11"))
    advance(session, settings, case, "issue_certificate", now=at(issued))

    clock = one(engine, case.reference, "certificate_after_decline")
    assert clock.due_date == D(2026, 11, 16)
    assert clock.status == status
    if status == "missed":
        assert f"late: done {dl.fmt(D.fromisoformat(issued))}" in clock.closed_reason


# --- Mediation: choosing mediation and what follows ----------------------------------------


@pytest.mark.parametrize("health_care", [False, True])
def test_choose_mediation_opens_the_meeting_clock_and_the_icb_clock(
    engine: Engine, session: Session, settings: Settings, health_care: bool
) -> None:
    """LA told Thu 12 Nov 2026: meeting within 30 calendar days = Sat 12 Dec 2026.
    Health care in issue: the ICB is told within 3 working days = Fri 13, Mon 16, Tue 17 Nov."""
    case = mediating_case(session, settings, health_care=health_care)

    meeting = one(engine, case.reference, "mediation_meeting")
    assert (meeting.status, meeting.due_date) == ("open", D(2026, 12, 12))
    assert "LA told on 12 November 2026 + 30 calendar days" in meeting.explanation
    assert one(engine, case.reference, "contact_adviser").status == "met"
    icb = clocks(engine, case.reference).get("icb_notified", [])
    if health_care:
        assert [(d.status, d.due_date) for d in icb] == [("open", D(2026, 11, 17))]
    else:
        assert icb == []
    assert committed(engine, case.reference)["state"] == "mediating"


def test_choose_mediation_is_refused_without_a_provider(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """No mediating without an allocated provider; the refusal says what to do first."""
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    before = committed(engine, case.reference)
    with pytest.raises(cases.TransitionRefused) as refused:
        advance(session, settings, case, "choose_mediation", now=at("2026-11-12"))
    assert "allocate a provider first" in str(refused.value)
    assert "choose_mediation" not in refused.value.allowed
    assert committed(engine, case.reference) == before


def test_health_only_mediation_runs_from_the_icb_and_it_tells_the_la_of_agreement(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Health-only: the ICB arranges the meeting (30 days from the ICB being told) and,
    on agreement, tells the LA within 1 week (reg 42): held Fri 4 Dec -> Fri 11 Dec 2026."""
    case = mediating_case(session, settings, health_only="yes", icb_told_on="2026-11-12")
    meeting = one(engine, case.reference, "mediation_meeting")
    assert meeting.due_date == D(2026, 12, 12)
    assert "ICB told on 12 November 2026" in meeting.explanation
    # The LA's duty to tell the ICB is opened and closed by the real dates, so lateness shows.
    told = one(engine, case.reference, "icb_notified")
    assert (told.status, told.due_date) == ("met", D(2026, 11, 17))
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-04", "16:00"),
        outcome="agreement",
        agreement="the ICB funds speech and language therapy",
    )
    tells = one(engine, case.reference, "icb_tells_la_of_agreement")
    assert (tells.status, tells.due_date) == ("open", D(2026, 12, 11))


def test_report_not_arranged_cancels_the_meeting_clock_and_opens_a_certificate_clock(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """LA reports on Thu 10 Dec 2026 -> certificate by Fri 11, Mon 14, Tue 15 Dec; a repeat
    report is refused; the certificate then issued is a "not arranged" one."""
    case = mediating_case(session, settings)
    advance(session, settings, case, "report_not_arranged", now=at("2026-12-10"))

    meeting = one(engine, case.reference, "mediation_meeting")
    assert meeting.status == "cancelled"
    assert "cannot arrange" in meeting.closed_reason
    cert = one(engine, case.reference, "certificate_not_arranged")
    assert (cert.status, cert.due_date) == ("open", D(2026, 12, 15))
    assert committed(engine, case.reference)["state"] == "mediating"

    before = committed(engine, case.reference)
    with pytest.raises(cases.TransitionRefused, match="already recorded"):
        advance(session, settings, case, "report_not_arranged", now=at("2026-12-11"))
    assert committed(engine, case.reference) == before

    # certificate Mon 14 Dec: decision + 2 months = 2 Jan 2027; + 1 month = Thu 14 Jan 2027
    case = advance(session, settings, case, "issue_certificate", now=at("2026-12-14"))
    assert one(engine, case.reference, "certificate_not_arranged").status == "met"
    assert one(engine, case.reference, "appeal").due_date == D(2027, 1, 14)
    assert case.certificate_type == "not_arranged"


@pytest.mark.parametrize(
    ("outcome", "agreement", "implemented_due"),
    [
        ("agreement", "LA to amend section F by 18 December", D(2026, 12, 18)),  # + 2 weeks
        ("partial", "LA to fund a laptop", D(2026, 12, 18)),
        ("none", "", None),
    ],
)
def test_record_meeting_opens_the_certificate_clock_and_any_agreement_clock(
    engine: Engine,
    session: Session,
    settings: Settings,
    outcome: str,
    agreement: str,
    implemented_due: D | None,
) -> None:
    """Meeting ended Fri 4 Dec 2026: certificate by Mon 7, Tue 8, Wed 9 Dec (reg 39);
    an agreement must be carried out within 2 weeks (reg 42)."""
    case = mediating_case(session, settings)
    data: dict[str, Any] = {"outcome": outcome}
    if agreement:
        data["agreement"] = agreement
    advance(session, settings, case, "record_meeting", now=at("2026-12-04", "16:00"), **data)

    assert one(engine, case.reference, "mediation_meeting").status == "met"
    cert = one(engine, case.reference, "certificate_after_meeting")
    assert (cert.status, cert.due_date) == ("open", D(2026, 12, 9))
    implemented = clocks(engine, case.reference).get("agreement_implemented", [])
    if implemented_due is None:
        assert implemented == []
    else:
        assert [(d.status, d.due_date) for d in implemented] == [("open", implemented_due)]
    with session_scope(engine) as fresh:
        row = cases.get_case(fresh, case.reference)
        assert (row.state, row.meeting_held_on, row.meeting_outcome) == (
            "mediating",
            D(2026, 12, 4),
            outcome,
        )


def test_an_agreement_outcome_needs_the_agreement_in_writing(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """reg 42: an agreement is recorded in writing; without it nothing is recorded."""
    case = mediating_case(session, settings)
    before = committed(engine, case.reference)
    with pytest.raises(cases.ValidationFailed) as failed:
        advance(session, settings, case, "record_meeting", now=at("2026-12-04"), outcome="partial")
    assert failed.value.field == "agreement"
    assert committed(engine, case.reference) == before


def test_withdraw_cancels_every_open_deadline(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A withdrawn case leaves no clock running; a clock already met stays met."""
    case = mediating_case(session, settings, health_care=True)
    open_before = {
        k for k, rows in clocks(engine, case.reference).items() for d in rows if d.status == "open"
    }
    assert open_before == {"mediation_meeting", "icb_notified", "allocation_acceptance"}
    advance(session, settings, case, "withdraw", now=at("2026-11-13"), reason="family moved away")

    by_kind = clocks(engine, case.reference)
    assert by_kind["contact_adviser"][0].status == "met"
    for kind in ("mediation_meeting", "icb_notified", "allocation_acceptance"):
        (row,) = by_kind[kind]
        assert (row.status, row.closed_reason) == ("cancelled", "case withdrawn"), kind
    assert all(d.status != "open" for rows in by_kind.values() for d in rows)
    with session_scope(engine) as fresh:
        withdrawn = cases.get_case(fresh, case.reference)
        assert (withdrawn.state, withdrawn.withdrawn_reason) == ("withdrawn", "family moved away")


@pytest.mark.parametrize("from_state", ["requested", "advised"])
def test_mark_exempt_opens_the_appeal_deadline_from_the_decision_only(
    engine: Engine, session: Session, settings: Settings, from_state: str
) -> None:
    """Placement-only appeal: no certificate, so decision 2 Nov 2026 + 2 months = Sat
    2 Jan 2027, not a working day, so Monday 4 January 2027, 5pm."""
    case = create_case(session, settings)
    if from_state == "advised":
        advance(session, settings, case, "advise", now=at("2026-11-10"))
    case = advance(session, settings, case, "mark_exempt", now=at("2026-11-12"))

    appeal = one(engine, case.reference, "appeal")
    assert (appeal.status, appeal.due_date) == ("open", D(2027, 1, 4))
    assert appeal.due_at == at("2027-01-04", "17:00")
    assert "certificate" not in appeal.explanation
    assert "2 January 2027 is not a working day (Saturday)" in appeal.explanation
    # A placement-only appeal needs no mediation advice: the reg 33 window does not apply.
    assert one(engine, case.reference, "contact_adviser").status == "cancelled"
    with session_scope(engine) as fresh:
        row = cases.get_case(fresh, case.reference)
        assert (row.state, row.placement_only, row.appeal_due) == (
            "appeal_ready",
            True,
            D(2027, 1, 4),
        )


def test_mark_exempt_without_a_decision_date_is_refused_and_says_how_to_fix_it(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The appeal deadline cannot be worked out without the LA's decision date."""
    case = create_case(session, settings, decision_date=None, decision_type=None)
    before = committed(engine, case.reference)
    with pytest.raises(cases.ValidationFailed) as failed:
        advance(session, settings, case, "mark_exempt", now=at("2026-11-12"))
    assert failed.value.field == "decision_date"
    assert "case details" in str(failed.value)
    assert committed(engine, case.reference) == before


# --- Disagreement resolution ---------------------------------------------------------------


def test_disagreement_resolution_runs_on_service_targets(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """advise -> allocate -> record_meeting -> close, each step meeting its service target.

    Targets (config/defaults.toml): advice 5, allocation 5, meeting 20 working days,
    provider answers an allocation in 2. Opened Mon 9 Nov 2026 -> advice by Mon 16 Nov;
    advised Wed 11 Nov -> allocation by Wed 18 Nov; allocated Fri 13 Nov -> meeting by
    Fri 11 Dec (4 full weeks), answer by Tue 17 Nov.
    """
    targets = settings.disagreement_targets
    assert (targets.advice_working_days, targets.allocation_working_days) == (5, 5)
    assert (targets.meeting_working_days, settings.allocation_acceptance_working_days) == (20, 2)

    case = create_case(
        session, settings, kind="disagreement", decision_date=None, decision_type=None
    )
    assert case.reference.startswith("DR-2026-")
    assert one(engine, case.reference, "dr_advice").due_date == D(2026, 11, 16)

    advance(session, settings, case, "advise", now=at("2026-11-11"))
    assert one(engine, case.reference, "dr_advice").status == "met"
    assert one(engine, case.reference, "dr_allocation").due_date == D(2026, 11, 18)

    allocate_to(
        session,
        case.reference,
        "solution-talk",
        now=at("2026-11-13"),
        actor=ADVISER,
        settings=settings,
    )
    assert committed(engine, case.reference)["state"] == "allocated"
    assert one(engine, case.reference, "dr_allocation").status == "met"
    meeting = one(engine, case.reference, "dr_meeting")
    assert (meeting.status, meeting.due_date) == ("open", D(2026, 12, 11))
    assert meeting.citation == "service target (config)"
    acceptance = one(engine, case.reference, "allocation_acceptance")
    assert (acceptance.status, acceptance.due_date) == ("open", D(2026, 11, 17))

    staff = provider_actor(session, "solution-talk")
    cases.respond_to_allocation(
        session, case.reference, accept=True, now=at("2026-11-16"), actor=staff, settings=settings
    )
    assert one(engine, case.reference, "allocation_acceptance").status == "met"
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-10", "15:00"),
        actor=staff,
        outcome="partial",
        agreement="school to review the timetable",
    )
    assert one(engine, case.reference, "dr_meeting").status == "met"
    advance(session, settings, case, "close", now=at("2026-12-11"), outcome="resolved")

    final = committed(engine, case.reference)
    assert final["state"] == "closed"
    assert final["events"] == [
        ("open", None, "requested"),
        ("advise", "requested", "advised"),
        ("allocate_provider", "advised", "allocated"),
        ("accept_allocation", "allocated", "allocated"),
        ("record_meeting", "allocated", "meeting_held"),
        ("close", "meeting_held", "closed"),
    ]
    assert all(status != "open" for _k, status, _due, _r in final["deadlines"])


def test_disagreement_close_needs_a_disagreement_outcome(
    session: Session, settings: Settings
) -> None:
    """A mediation outcome ("appeal_lodged") is not how a disagreement ends."""
    case = create_case(
        session, settings, kind="disagreement", decision_date=None, decision_type=None
    )
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "kids", now=at("2026-11-10"), actor=ADVISER, settings=settings
    )
    advance(session, settings, case, "record_meeting", now=at("2026-11-20"), outcome="none")
    with pytest.raises(cases.ValidationFailed) as failed:
        advance(session, settings, case, "close", now=at("2026-11-21"), outcome="appeal_lodged")
    assert failed.value.field == "outcome"
    assert "resolved" in str(failed.value)


# --- Intake ------------------------------------------------------------------------------


def test_an_email_request_without_a_phone_number_is_refused(
    session: Session, settings: Settings
) -> None:
    """domain.md: an email request must carry a contact telephone number."""
    with pytest.raises(cases.ValidationFailed) as failed:
        create_case(session, settings, channel="email", phone="")
    assert failed.value.field == "phone"
    assert "ring back" in str(failed.value)
    assert cases.count_cases(session) == 0


@pytest.mark.parametrize("phone", ["0161 12", "not a number", "07911 12345678901"])
def test_a_malformed_phone_number_is_refused(
    session: Session, settings: Settings, phone: str
) -> None:
    """A number SMS cannot reach is caught at intake, not weeks later on a reminder."""
    with pytest.raises(cases.ValidationFailed) as failed:
        create_case(session, settings, phone=phone)
    assert failed.value.field == "phone"
    assert cases.count_cases(session) == 0


def test_a_good_phone_number_is_stored_in_e164(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Stored as E.164 so the SMS provider gets one canonical form, however it was typed."""
    case = create_case(session, settings, phone="07911 123456", channel="email")
    with session_scope(engine) as fresh:
        family = cases.family_of(fresh, cases.get_case(fresh, case.reference))
        assert family is not None
        assert family.phone == "+447911123456"


# --- Refusals, versions, who may act ---------------------------------------------------------


def test_a_refusal_names_the_events_allowed_now(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The edges print this one line (CLI exit 2, HTTP 409)."""
    case = create_case(session, settings)
    before = committed(engine, case.reference)
    with pytest.raises(cases.TransitionRefused) as refused:
        advance(session, settings, case, "close", now=at("2026-11-10"), outcome="no_appeal")
    assert str(refused.value) == (
        "Cannot record “Close case”: the case is Requested. Possible now: Record advice"
        " given; Mark exempt (placement only); Withdraw."
    )
    assert refused.value.allowed == ["advise", "mark_exempt", "withdraw"]
    from casework.cli.common import exit_code

    assert exit_code(refused.value) == 2  # the CLI's mapping of a refusal
    assert committed(engine, case.reference) == before

    with pytest.raises(cases.TransitionRefused, match="not a step of a mediation case"):
        advance(session, settings, case, "frobnicate", now=at("2026-11-10"))
    assert committed(engine, case.reference) == before


def test_a_refusal_on_a_withdrawn_case_says_withdrawn_not_closed(
    session: Session, settings: Settings
) -> None:
    """A family that withdrew is not told its case was closed: the words name the state."""
    case = create_case(session, settings)
    advance(session, settings, case, "withdraw", now=at("2026-11-10"), reason="family moved away")
    with pytest.raises(cases.TransitionRefused) as refused:
        advance(session, settings, case, "advise", now=at("2026-11-11"))
    assert str(refused.value) == (
        f"Cannot record \u201cRecord advice given\u201d: {case.reference} is withdrawn."
        " Only an IAS manager can reopen it."
    )
    assert refused.value.allowed == [] and refused.value.reopenable
    with pytest.raises(cases.TransitionRefused, match="You can reopen it, as a manager"):
        advance(session, settings, case, "advise", now=at("2026-11-11"), actor=MANAGER)


def test_expected_version_mismatch_is_a_conflict(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A form submitted against an old version must not overwrite a newer change."""
    case = create_case(session, settings)
    assert case.version == 1
    cases.advance(
        session,
        case.reference,
        "advise",
        now=at("2026-11-10"),
        actor=ADVISER,
        settings=settings,
        expected_version=1,
    )
    before = committed(engine, case.reference)
    assert before["version"] == 2
    with pytest.raises(cases.Conflict):
        cases.advance(
            session,
            case.reference,
            "decline",
            now=at("2026-11-11"),
            actor=ADVISER,
            settings=settings,
            expected_version=1,
        )
    assert committed(engine, case.reference) == before


def test_a_provider_cannot_see_or_move_another_providers_case(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Provider staff act only on cases allocated to them; others get "not found"."""
    case = mediating_case(session, settings)  # allocated to Solution Talk
    outsider = provider_actor(session, "collis")
    before = committed(engine, case.reference)
    with pytest.raises(cases.NotFound):
        advance(
            session,
            settings,
            case,
            "schedule_meeting",
            now=at("2026-11-20"),
            actor=outsider,
            meeting_on="2026-12-01",
        )
    with pytest.raises(cases.NotFound):
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=True,
            now=at("2026-11-20"),
            actor=outsider,
            settings=settings,
        )
    with pytest.raises(cases.NotFound):
        allocate_to(
            session,
            case.reference,
            "collis",
            now=at("2026-11-20"),
            actor=outsider,
            settings=settings,
        )
    assert committed(engine, case.reference) == before

    staff = provider_actor(session, "solution-talk")
    # Its own provider records steps once it has accepted the case.
    with pytest.raises(cases.TransitionRefused, match="Accept the allocation"):
        advance(
            session,
            settings,
            case,
            "schedule_meeting",
            now=at("2026-11-20"),
            actor=staff,
            meeting_on="2026-12-01",
        )
    cases.respond_to_allocation(
        session,
        case.reference,
        accept=True,
        now=at("2026-11-20"),
        actor=staff,
        settings=settings,
    )
    advance(
        session,
        settings,
        case,
        "schedule_meeting",
        now=at("2026-11-20"),
        actor=staff,
        meeting_on="2026-12-01",
        meeting_time="10:00",
    )
    scheduled = one(engine, case.reference, "scheduled_meeting")
    assert (scheduled.status, scheduled.due_date) == ("open", D(2026, 12, 1))


def test_allocation_accept_and_decline(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Decline (with a reason) hands the case back with no provider; a late accept is
    recorded as a missed acceptance clock. Allocated Tue 10 Nov -> answer by Thu 12 Nov;
    re-allocated Wed 11 Nov -> answer by Fri 13 Nov, accepted Mon 16 Nov (late)."""
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    offered = allocate_to(
        session,
        case.reference,
        "solution-talk",
        now=at("2026-11-10"),
        actor=ADVISER,
        settings=settings,
    )
    assert offered.status == "offered"
    assert one(engine, case.reference, "allocation_acceptance").due_date == D(2026, 11, 12)
    staff = provider_actor(session, "solution-talk")

    with pytest.raises(cases.ValidationFailed) as failed:
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=False,
            now=at("2026-11-11"),
            actor=staff,
            settings=settings,
        )
    assert failed.value.field == "note"

    declined = cases.respond_to_allocation(
        session,
        case.reference,
        accept=False,
        now=at("2026-11-11"),
        actor=staff,
        settings=settings,
        note="conflict of interest: we mediated for this school last term",
    )
    assert declined.status == "declined"
    after_decline = committed(engine, case.reference)
    assert after_decline["provider_id"] is None
    assert after_decline["state"] == "advised"
    assert after_decline["events"][-1] == ("decline_allocation", "advised", "advised")
    first = one(engine, case.reference, "allocation_acceptance")
    assert (first.status, first.closed_reason) == ("cancelled", "allocation declined")
    # the provider that declined no longer sees the case
    with pytest.raises(cases.NotFound):
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=True,
            now=at("2026-11-11"),
            actor=staff,
            settings=settings,
        )

    allocate_to(
        session, case.reference, "collis", now=at("2026-11-11"), actor=ADVISER, settings=settings
    )
    collis = provider_actor(session, "collis")
    accepted = cases.respond_to_allocation(
        session, case.reference, accept=True, now=at("2026-11-16"), actor=collis, settings=settings
    )
    assert accepted.status == "accepted"
    second = [
        d for d in clocks(engine, case.reference)["allocation_acceptance"] if d.id != first.id
    ]
    assert [(d.due_date, d.status) for d in second] == [(D(2026, 11, 13), "missed")]
    with pytest.raises(cases.TransitionRefused, match="no allocation waiting"):
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=True,
            now=at("2026-11-17"),
            actor=collis,
            settings=settings,
        )


# --- Concurrency: two writers, one case -----------------------------------------------------


def _advised_case(session: Session, settings: Settings) -> str:
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    session.close()
    return case.reference


RACE: dict[str, dict[str, Any]] = {
    "decline": {},
    "withdraw": {"reason": "family no longer wants to appeal"},
}


def assert_only_the_winner_wrote(
    engine: Engine, reference: str, before: dict[str, Any], winner: str
) -> None:
    """The case moved once, by the winner; no event, clock or cancellation of the loser's."""
    after = committed(engine, reference)
    assert after["version"] == before["version"] + 1
    assert after["events"][:-1] == before["events"]
    assert after["events"][-1][0] == winner
    kinds = {(k, status, reason) for k, status, _due, reason in after["deadlines"]}
    templates = {template for template, _role, _channel in after["notices"]}
    if winner == "decline":
        assert after["state"] == "declined"
        assert ("certificate_after_decline", "open", "") in kinds
        assert not any(reason == "case withdrawn" for _k, _s, reason in kinds)
        assert "withdrawal_confirmed" not in templates  # the loser's notice was not queued
    else:
        assert after["state"] == "withdrawn"
        assert not any(k == "certificate_after_decline" for k, _s, _r in kinds)
        assert "withdrawal_confirmed" in templates
    assert len(after["deadlines"]) == len(before["deadlines"]) + (winner == "decline")


@pytest.mark.parametrize("first", ["decline", "withdraw"])
def test_two_sessions_on_one_case_exactly_one_wins(
    engine: Engine, session: Session, settings: Settings, first: str
) -> None:
    """Both load version 2; the first commit wins, the second is told to reload (Conflict)."""
    reference = _advised_case(session, settings)
    before = committed(engine, reference)
    second = "withdraw" if first == "decline" else "decline"
    with Session(engine) as a, Session(engine) as b:
        # Keep both loaded rows referenced: a session's identity map holds rows weakly,
        # and a row nobody holds would simply be read afresh by the second use case.
        loaded_a, loaded_b = cases.get_case(a, reference), cases.get_case(b, reference)
        assert loaded_a.version == loaded_b.version == 2
        cases.advance(
            a,
            reference,
            first,
            now=at("2026-11-11"),
            actor=ADVISER,
            settings=settings,
            data=RACE[first],
        )
        with pytest.raises(cases.Conflict):
            cases.advance(
                b,
                reference,
                second,
                now=at("2026-11-11"),
                actor=ADVISER,
                settings=settings,
                data=RACE[second],
            )
    assert_only_the_winner_wrote(engine, reference, before, first)


@pytest.fixture
def barrier_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[threading.Barrier], None]:
    """Make racing threads meet inside the use case, just before it commits.

    Queueing the notices runs after the transition and the audit event are built in
    memory and before ``commit``, which is exactly the window two writers race in.
    """
    from casework import notices

    def install(barrier: threading.Barrier) -> None:
        original = notices.queue_event_notices

        def meet_then_run(session: Session, ctx: cases.TransitionContext) -> list[Any]:
            barrier.wait()
            return original(session, ctx)

        monkeypatch.setattr(notices, "queue_event_notices", meet_then_run)

    return install


@pytest.mark.parametrize("meet", ["after_loading", "inside_the_use_case"])
def test_two_threads_racing_on_one_case_exactly_one_wins(
    engine: Engine,
    session: Session,
    settings: Settings,
    barrier_hook: Callable[[threading.Barrier], None],
    meet: str,
) -> None:
    """Real threads, each with its own session, both read before either writes.

    ``after_loading``: each thread loads the case, then they meet, then both advance.
    ``inside_the_use_case``: they meet in a transition hook, after each has read the
    case and moved it in memory but before either commits. On SQLite the writes
    serialise; on PostgreSQL the second UPDATE waits for the first's row lock. Either
    way the version column must let exactly one through and the other gets Conflict.
    """
    reference = _advised_case(session, settings)
    before = committed(engine, reference)
    barrier = threading.Barrier(2, timeout=30)
    if meet == "inside_the_use_case":
        barrier_hook(barrier)
    outcomes: dict[str, BaseException | None] = {}

    def run(event: str) -> None:
        try:
            with Session(engine) as own:
                if meet == "after_loading":
                    loaded = cases.get_case(own, reference)  # held: see the test above
                    assert loaded.version == 2
                    barrier.wait()
                cases.advance(
                    own,
                    reference,
                    event,
                    now=at("2026-11-11"),
                    actor=ADVISER,
                    settings=settings,
                    data=RACE[event],
                )
            outcomes[event] = None
        except BaseException as exc:  # collected and judged by the test thread
            outcomes[event] = exc

    threads = [threading.Thread(target=run, args=(event,)) for event in RACE]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    winners = [event for event, exc in outcomes.items() if exc is None]
    losers = {event: exc for event, exc in outcomes.items() if exc is not None}
    assert len(winners) == 1, outcomes
    (loser_exc,) = losers.values()
    if not isinstance(loser_exc, cases.Conflict):
        raise loser_exc  # shows the real error (e.g. SQLite's "database is locked")
    assert_only_the_winner_wrote(engine, reference, before, winners[0])


# --- Migrations -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    """A database with no tables at all, on each backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
        yield engine
        engine.dispose()
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL leg skipped: no server at {POSTGRES_URL} ({reason})")
    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(postgres_schema_url(schema))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def schema_differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would still want to change: types and defaults too."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, SQLModel.metadata))


def check_constraints(engine: Engine) -> dict[str, set[str | None]]:
    """Named CHECK constraints per table; autogenerate does not compare these, so we do."""
    inspector = inspect(engine)
    return {
        table: {c["name"] for c in inspector.get_check_constraints(table)}
        for table in SQLModel.metadata.tables
    }


def test_migrations_upgrade_downgrade_upgrade_and_match_the_models(
    empty_engine: Engine,
) -> None:
    """The schema comes from migrations only, round-trips, and is exactly what models say."""
    model_tables = set(SQLModel.metadata.tables)
    assert inspect(empty_engine).get_table_names() == []

    upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) == model_tables | {"alembic_version"}
    heads = ScriptDirectory.from_config(alembic_config(str(empty_engine.url))).get_heads()
    with empty_engine.connect() as conn:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert len(heads) == 1, f"migration history has branched: {heads}"
    assert current == heads
    assert schema_differences(empty_engine) == []
    expected_checks: dict[str, set[str | None]] = {
        name: {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        for name, table in SQLModel.metadata.tables.items()
    }
    assert check_constraints(empty_engine) == expected_checks

    downgrade(empty_engine, "base")
    assert inspect(empty_engine).get_table_names() == ["alembic_version"]

    upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) == model_tables | {"alembic_version"}
    assert schema_differences(empty_engine) == []


def test_the_state_check_constraint_refuses_an_unknown_state(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A stored state outside CaseState would restore a machine into nonsense (notes 3)."""
    case = create_case(session, settings)
    session.close()
    with pytest.raises(IntegrityError, match="ck_cases_state"), engine.begin() as conn:
        conn.execute(
            text("UPDATE cases SET state = 'bogus' WHERE reference = :ref"),
            {"ref": case.reference},
        )
    assert committed(engine, case.reference)["state"] == "requested"


# --- Bugs found by review, fixed, and kept as regressions ------------------------------------


def test_correcting_the_decision_date_bumps_the_version_once(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """One change, one version: a form loaded before it must conflict by exactly one."""
    case = create_case(session, settings, decision_date=None, decision_type=None)
    cases.update_case_facts(
        session,
        case.reference,
        now=at("2026-11-10"),
        actor=ADVISER,
        settings=settings,
        decision_date=D(2026, 11, 2),
    )
    after = committed(engine, case.reference)
    assert one(engine, case.reference, "contact_adviser").due_date == D(2027, 1, 2)
    assert after["version"] == 2 == len(after["events"])


def test_recording_the_meeting_again_replaces_its_clocks(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A corrected (or second) meeting record leaves one certificate clock, from the latest."""
    case = mediating_case(session, settings)
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-01"),
        outcome="agreement",
        agreement="first draft",
    )
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-03"),
        outcome="agreement",
        agreement="final wording",
        meeting_held_on="2026-12-02",
    )
    by_kind = clocks(engine, case.reference)
    for kind in ("certificate_after_meeting", "agreement_implemented"):
        still_open = [d.due_date for d in by_kind[kind] if d.status == "open"]
        assert len(still_open) == 1, (kind, still_open)
    # Wed 2 Dec + 3 working days = Mon 7 Dec 2026
    assert [d.due_date for d in by_kind["certificate_after_meeting"] if d.status == "open"] == [
        D(2026, 12, 7)
    ]


def test_a_provider_cannot_accept_a_withdrawn_case(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "kids", now=at("2026-11-10"), actor=ADVISER, settings=settings
    )
    advance(session, settings, case, "withdraw", now=at("2026-11-11"), reason="moved away")
    before = committed(engine, case.reference)
    with pytest.raises(cases.TransitionRefused):
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=True,
            now=at("2026-11-12"),
            actor=provider_actor(session, "kids"),
            settings=settings,
        )
    assert committed(engine, case.reference) == before


def test_a_disagreement_provider_can_decline_an_allocation(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A provider with a conflict of interest must be able to hand a DR case back."""
    case = create_case(
        session, settings, kind="disagreement", decision_date=None, decision_type=None
    )
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "kids", now=at("2026-11-10"), actor=ADVISER, settings=settings
    )
    cases.respond_to_allocation(
        session,
        case.reference,
        accept=False,
        now=at("2026-11-11"),
        actor=provider_actor(session, "kids"),
        settings=settings,
        note="we mediated for this school last term",
    )
    after = committed(engine, case.reference)
    assert after["provider_id"] is None
    assert after["state"] == "advised"
    # one change, one version (this path once flushed the case twice)
    assert after["version"] == len(after["events"])
    assert after["events"][-1] == ("decline_allocation", "allocated", "advised")
    by_kind = clocks(engine, case.reference)
    assert by_kind["allocation_acceptance"][0].status == "cancelled"
    assert by_kind["dr_meeting"][0].status == "cancelled"
    # the allocation target runs again from the day the case came back: Wed 11 Nov
    # + 5 working days = Wed 18 Nov 2026
    reopened = [d for d in by_kind["dr_allocation"] if d.status == "open"]
    assert [d.due_date for d in reopened] == [D(2026, 11, 18)]


def test_choose_mediation_refuses_an_icb_told_date_in_the_future(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "kids", now=at("2026-11-10"), actor=ADVISER, settings=settings
    )
    with pytest.raises(cases.ValidationFailed) as failed:
        advance(
            session,
            settings,
            case,
            "choose_mediation",
            now=at("2026-11-12"),
            health_only="yes",
            icb_told_on="2027-06-01",
        )
    assert failed.value.field == "icb_told_on"


def test_returning_a_case_to_the_adviser_stops_the_acceptance_clock(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """No clock may outlive the allocation it measures: one acceptance clock per live offer."""
    case = create_case(
        session, settings, kind="disagreement", decision_date=None, decision_type=None
    )
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "kids", now=at("2026-11-10"), actor=ADVISER, settings=settings
    )
    advance(session, settings, case, "return_to_adviser", now=at("2026-11-11"))
    after_return = committed(engine, case.reference)
    assert (after_return["state"], after_return["provider_id"]) == ("advised", None)
    assert one(engine, case.reference, "allocation_acceptance").status == "cancelled"

    allocate_to(
        session, case.reference, "collis", now=at("2026-11-12"), actor=ADVISER, settings=settings
    )
    acceptance = clocks(engine, case.reference)["allocation_acceptance"]
    assert [d.status for d in acceptance].count("open") == 1
