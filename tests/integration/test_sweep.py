"""The sweep on a real database (SQLite and PostgreSQL): exactly once, nothing lost.

The running example is a mediation case opened on Mon 9 Nov 2026 about an LA decision
sent on Mon 2 Nov, advised on 10 Nov, allocated to Link Mediation Ltd on Tue 10 Nov
11:00 (its answer is due Thu 12 Nov, 2 working days), accepted on Wed 11 Nov, and the
family chose mediation on Thu 12 Nov with the LA told that day. The meeting limit is
then Sat 12 Dec 2026 (30 calendar days), missed at 00:00 on 13 Dec, with provider
reminders on Wed 2 Dec and Mon 7 Dec at 09:00, the adviser told on Sun 13 Dec 09:00
and the manager on Wed 16 Dec 09:00 (3 working days after 12 Dec). All times London
(GMT in November and December, so London time equals UTC).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from casework import cases
from casework.config import Settings
from casework.db import session_scope
from casework.models import Case, CaseEvent, Deadline, DeliveryEvent, Notice
from casework.notify.dispatch import dispatch
from casework.reminders import SweepResult, sweep
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case

D = dt.date
ALLOCATED = at("2026-11-10", "11:00")
CHOSE = at("2026-11-12", "10:00")
TEN_DAYS = at("2026-12-02", "09:00")
FIVE_DAYS = at("2026-12-07", "09:00")
MISSED = at("2026-12-13", "00:00")
ADVISER_ESCALATION = at("2026-12-13", "09:00")
MANAGER_ESCALATION = at("2026-12-16", "09:00")


def provider_actor(session: Session, code: str = "link") -> cases.Actor:
    provider = cases.find_provider(session, code)
    return cases.Actor(
        id=f"user:staff@{code}.example.org",
        role="provider",
        channel="portal",
        provider_id=provider.id,
    )


def allocated_case(session: Session, settings: Settings) -> str:
    case = create_case(session, settings, now=at("2026-11-09"))
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(session, case.reference, "link", now=ALLOCATED, actor=ADVISER, settings=settings)
    return case.reference


def mediating_case(session: Session, settings: Settings) -> str:
    reference = allocated_case(session, settings)
    cases.respond_to_allocation(
        session,
        reference,
        accept=True,
        now=at("2026-11-11", "15:00"),
        actor=provider_actor(session),
        settings=settings,
    )
    cases.advance(
        session,
        reference,
        "choose_mediation",
        now=CHOSE,
        actor=ADVISER,
        settings=settings,
        data={"la_told_on": D(2026, 11, 12)},
    )
    return reference


def notices(engine: Engine, reference: str | None = None, **where: Any) -> list[Notice]:
    with session_scope(engine) as s:
        query = select(Notice).order_by(col(Notice.id))
        if reference is not None:
            case = cases.get_case(s, reference)
            query = query.where(col(Notice.case_id) == case.id)
        for name, value in where.items():
            query = query.where(getattr(Notice, name) == value)
        return list(s.execute(query).scalars())


def deadline_notices(engine: Engine, reference: str, kind: str) -> list[Notice]:
    with session_scope(engine) as s:
        case = cases.get_case(s, reference)
        return list(
            s.execute(
                select(Notice)
                .join(Deadline, col(Deadline.id) == Notice.deadline_id)
                .where(col(Deadline.kind) == kind, col(Notice.case_id) == case.id)
                .order_by(col(Notice.id))
            ).scalars()
        )


def deadline(engine: Engine, reference: str, kind: str) -> Deadline:
    with session_scope(engine) as s:
        case = cases.get_case(s, reference)
        rows = [d for d in cases.case_deadlines(s, case) if d.kind == kind]
        assert len(rows) == 1, rows
        return rows[0]


def summary(rows: list[Notice]) -> list[tuple[str, str, str, str]]:
    return sorted((n.template, n.recipient_role, n.channel, n.status) for n in rows)


# --- Idempotence ---------------------------------------------------------------------------


def test_a_second_sweep_at_the_same_instant_queues_nothing(
    engine: Engine, session: Session, settings: Settings
) -> None:
    reference = mediating_case(session, settings)
    first = sweep(engine, TEN_DAYS, settings)
    assert (first.queued, first.skipped, first.missed) == (1, 0, 0)
    assert first.by_template == Counter({"provider_meeting_limit_reminder": 1})
    before = len(notices(engine))

    second = sweep(engine, TEN_DAYS, settings)
    assert second.as_dict() == SweepResult(batches=1).as_dict()  # nothing even claimed
    assert len(notices(engine)) == before
    reminders = deadline_notices(engine, reference, "mediation_meeting")
    assert summary(reminders) == [
        ("provider_meeting_limit_reminder", "provider", "email", "queued")
    ]
    assert reminders[0].to_address == "referrals@link-mediation.example.org"
    assert reminders[0].not_before == TEN_DAYS


def test_replanning_a_clock_after_a_crash_cannot_queue_its_notices_twice(
    engine: Engine, session: Session, settings: Settings
) -> None:
    # As if a sweeper had written the notices but its next_action_at update were lost:
    # the same plan runs again and every key collides.
    reference = mediating_case(session, settings)
    sweep(engine, FIVE_DAYS, settings)
    before = summary(notices(engine, reference))
    with engine.begin() as conn:
        conn.execute(
            update(Deadline)
            .where(col(Deadline.kind) == "mediation_meeting")
            .values(next_action_at=CHOSE)
        )
    again = sweep(engine, FIVE_DAYS, settings)
    assert again.claimed >= 1
    assert (again.queued, again.skipped) == (0, 0)
    assert summary(notices(engine, reference)) == before


# --- Met and cancelled clocks ----------------------------------------------------------------


def test_a_clock_met_before_its_reminder_never_queues_it(
    engine: Engine, session: Session, settings: Settings
) -> None:
    reference = mediating_case(session, settings)  # accepted Wed 11 Nov, due Thu 12 Nov
    result = sweep(engine, at("2026-11-13", "10:00"), settings)
    assert result.queued == 0 and result.missed == 0
    assert deadline_notices(engine, reference, "allocation_acceptance") == []
    assert deadline(engine, reference, "allocation_acceptance").status == "met"


@pytest.mark.parametrize("how", ["met", "cancelled"])
def test_a_queued_reminder_is_skipped_when_its_clock_finishes_before_dispatch(
    engine: Engine, session: Session, settings: Settings, how: str
) -> None:
    reference = allocated_case(session, settings)  # answer due Thu 12 Nov
    dispatch(engine, ALLOCATED, settings)  # the event notices go out at once
    moment = at("2026-11-12", "09:00")
    assert sweep(engine, moment, settings).by_template == {"provider_acceptance_reminder": 1}
    (reminder,) = deadline_notices(engine, reference, "allocation_acceptance")
    assert reminder.status == "queued"

    finished = moment + dt.timedelta(seconds=30)
    if how == "met":
        cases.respond_to_allocation(
            session,
            reference,
            accept=True,
            now=finished,
            actor=provider_actor(session),
            settings=settings,
        )
    else:
        cases.advance(
            session,
            reference,
            "withdraw",
            now=finished,
            actor=ADVISER,
            settings=settings,
            data={"reason": "the family no longer wants help"},
        )
    result = dispatch(engine, finished + dt.timedelta(seconds=30), settings)
    assert result.skipped == 1

    (reminder,) = deadline_notices(engine, reference, "allocation_acceptance")
    assert reminder.status == "skipped"
    code = "deadline_met" if how == "met" else "deadline_cancelled"
    assert reminder.last_error == f"{code}: the deadline was {how} before sending"
    assert reminder.sent_at is None and reminder.provider is None
    with session_scope(engine) as s:
        attempts = s.execute(
            select(DeliveryEvent).where(col(DeliveryEvent.notice_id) == reminder.id)
        ).all()
    assert attempts == []  # never handed to a channel


def test_a_withdrawn_case_sweeps_nothing_more(
    engine: Engine, session: Session, settings: Settings
) -> None:
    reference = mediating_case(session, settings)
    sweep(engine, CHOSE, settings)
    cases.advance(
        session,
        reference,
        "withdraw",
        now=at("2026-11-20"),
        actor=ADVISER,
        settings=settings,
        data={"reason": "resolved with the school"},
    )
    for moment in (TEN_DAYS, FIVE_DAYS, MISSED, ADVISER_ESCALATION, MANAGER_ESCALATION):
        result = sweep(engine, moment, settings)
        assert (result.claimed, result.queued, result.missed) == (0, 0, 0), moment
    assert deadline_notices(engine, reference, "mediation_meeting") == []
    assert deadline(engine, reference, "mediation_meeting").status == "cancelled"


# --- Missed clocks and downtime -----------------------------------------------------------------


def test_marking_a_clock_missed_writes_a_case_event(
    engine: Engine, session: Session, settings: Settings
) -> None:
    reference = mediating_case(session, settings)
    sweep(engine, FIVE_DAYS, settings)
    assert sweep(engine, MISSED - dt.timedelta(seconds=1), settings).missed == 0
    result = sweep(engine, MISSED, settings)
    assert result.missed == 1 and result.queued == 0

    meeting = deadline(engine, reference, "mediation_meeting")
    assert meeting.status == "missed"
    assert meeting.closed_at == MISSED
    assert meeting.closed_reason == "not done by the due time"
    assert meeting.next_action_at == ADVISER_ESCALATION  # still escalating
    with session_scope(engine) as s:
        case = cases.get_case(s, reference)
        missed = [e for e in cases.case_events(s, case) if e.event == "deadline_missed"]
    assert len(missed) == 1
    event = missed[0]
    assert (event.at, event.actor, event.channel) == (MISSED, "system:scheduler", "scheduler")
    assert (event.from_state, event.to_state) == ("mediating", "mediating")
    assert event.data == {"deadline": "mediation_meeting", "due_date": "2026-12-12"}
    assert "30 calendar days" in event.note

    # Sweeping again at the same moment marks nothing twice.
    assert sweep(engine, MISSED, settings).missed == 0


def test_after_20_days_down_escalations_go_out_and_stale_reminders_are_recorded_skipped(
    engine: Engine, session: Session, settings: Settings
) -> None:
    reference = mediating_case(session, settings)
    last_run = at("2026-11-26", "10:00")
    sweep(engine, last_run, settings)
    dispatch(engine, last_run, settings)

    back = last_run + dt.timedelta(days=20)  # Wed 16 Dec 10:00: every moment has passed
    result = sweep(engine, back, settings)
    assert (result.missed, result.queued, result.skipped) == (1, 2, 2)
    assert result.by_template == Counter({"escalation_missed": 2})
    sent = dispatch(engine, back, settings)
    assert (sent.sent, sent.failed, sent.skipped) == (2, 0, 0)

    rows = deadline_notices(engine, reference, "mediation_meeting")
    assert summary(rows) == [
        ("escalation_missed", "adviser", "email", "sent"),
        ("escalation_missed", "manager", "email", "sent"),
        ("provider_meeting_limit_reminder", "provider", "email", "skipped"),
        ("provider_meeting_limit_reminder", "provider", "email", "skipped"),
    ]
    # Nothing lost: exactly one row per rule, each saying what happened to it.
    assert sorted(n.context["rule"] for n in rows) == [
        "meeting-limit-10d-provider",
        "meeting-limit-5d-provider",
        "meeting-limit-missed-adviser",
        "meeting-limit-missed-manager",
    ]
    for n in rows:
        if n.status == "skipped":
            assert n.last_error == "stale: its moment passed while the scheduler was down"
            assert n.sent_at is None
        else:
            assert n.sent_at == back and "Saturday 12 December 2026" in n.body
    addresses = {n.recipient_role: n.to_address for n in rows}
    assert addresses["adviser"] == settings.team.adviser_email
    assert addresses["manager"] == settings.team.manager_email

    meeting = deadline(engine, reference, "mediation_meeting")
    assert (meeting.status, meeting.next_action_at) == ("missed", None)
    assert sweep(engine, back + dt.timedelta(days=30), settings).claimed == 0


# --- Several sweepers at once -----------------------------------------------------------------


def test_sweepers_running_at_once_queue_each_notice_exactly_once(
    engine: Engine, session: Session, settings: Settings
) -> None:
    cases = 12
    references = [mediating_case(session, settings) for _ in range(cases)]
    moment = at("2026-12-16", "10:00")  # each case: 1 missed, 2 escalations, 2 stale
    with engine.connect() as conn:
        due = conn.execute(select(Deadline.id).where(col(Deadline.next_action_at) <= moment)).all()
    assert len(due) == cases  # only the meeting limits are live (the others were met)

    workers = 4
    start = threading.Barrier(workers)
    results: list[SweepResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append(sweep(engine, moment, settings, batch_size=3))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == workers

    assert sum(r.claimed for r in results) == cases
    assert sum(r.missed for r in results) == cases
    assert sum(r.queued for r in results) == 2 * cases
    assert sum(r.skipped for r in results) == 2 * cases

    rows = [n for n in notices(engine) if n.deadline_id is not None]
    assert len(rows) == 4 * cases
    keys = Counter((n.deadline_id, n.context["rule"], n.channel) for n in rows)
    assert set(keys.values()) == {1}
    assert len({n.idempotency_key for n in rows}) == len(rows)
    with session_scope(engine) as s:
        missed_events = s.execute(
            select(CaseEvent.case_id).where(col(CaseEvent.event) == "deadline_missed")
        ).all()
        case_ids = set(s.execute(select(Case.id)).scalars())
    assert sorted(r.case_id for r in missed_events) == sorted(case_ids)
    for reference in references:
        assert deadline(engine, reference, "mediation_meeting").status == "missed"

    # And a dispatcher afterwards sends each escalation once.
    dispatch(engine, moment, settings)
    assert len(notices(engine, status="sent", template="escalation_missed")) == 2 * cases


# --- The sweep's SQL writes what the event path's Python writes --------------------------------


def test_a_swept_letter_has_the_address_and_first_name_the_python_rules_give(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The sweep builds a family's postal address and first name in SQL (one INSERT ...
    SELECT per batch), the event path in Python (``notices.postal_lines``, the first word
    of the name). They must agree on untidy data: spaces, a blank second line, a postcode
    typed in lower case, two spaces in a name."""
    from casework.models import Person
    from casework.notices import postal_lines

    case = create_case(
        session,
        settings,
        email="",
        preferred_channels="post",
        address_line_1="12 Acacia Avenue",
        address_town="Manchester",
        address_postcode="M19 2AB",
    )
    untidy = {
        "name": "Jo  Family",
        "address_line_1": "  12 Acacia Avenue ",
        "address_line_2": "   ",
        "address_town": " Manchester",
        "address_postcode": " m19 2ab ",
    }
    with session_scope(engine) as s:
        changed = s.execute(
            update(Person)
            .where(col(Person.case_id) == case.id, col(Person.role) == "family")
            .values(**untidy)
        )
        assert changed.rowcount == 1
        s.commit()
    window = deadline(engine, case.reference, "contact_adviser")
    sweep(engine, at((window.due_date - dt.timedelta(days=14)).isoformat()), settings)
    swept = [
        n
        for n in deadline_notices(engine, case.reference, "contact_adviser")
        if n.recipient_role == "family"
    ]
    assert swept, "the family's 14-day reminder was swept"
    expected = postal_lines(
        untidy["name"],
        untidy["address_line_1"],
        untidy["address_line_2"],
        untidy["address_town"],
        untidy["address_postcode"],
    )
    assert expected == ("Jo  Family", "12 Acacia Avenue", "Manchester", "M19 2AB")
    for notice in swept:
        assert (notice.channel, notice.status) == ("post", "queued"), notice.last_error
        assert tuple(notice.to_address.splitlines()) == expected
        assert notice.context["family_name"] == untidy["name"].split()[0] == "Jo"
