"""A notice about a meeting that a later step called off or moved is never sent.

The family once heard "your meeting is confirmed for Wednesday" after hearing it was
cancelled: the confirmation's text was held for the quiet hours (or simply not yet
dispatched) and went out in the same tick as the cancellation. Now the step that
cancels or rearranges the meeting (a decline while mediating, cancel_meeting, a
second schedule_meeting) marks the old meeting's unsent notices skipped, with why, in
its own transaction; the dispatcher then never hands them to SendGrid or Twilio (the
loopback fakes here), while notices already sent, the cancellation and the new
meeting's notices are untouched. Both databases.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import cases
from casework.cases.words import notice_reason_words
from casework.config import Settings, load_settings
from casework.db import session_scope
from casework.models import Notice
from casework.notify import dispatch as dispatch_module
from casework.notify.dispatch import dispatch
from casework.reminders import sweep
from tests.conftest import ADVISER, at
from tests.factories import advance
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake
from tests.integration.test_meeting_invitations import mediating

SENDER = "+447700900000"
FIRST = {"meeting_on": "2026-12-02", "meeting_time": "10:00"}  # sent before anything else
STALE = {"meeting_on": "2026-12-09", "meeting_time": "10:00"}  # queued, then made stale
NEW = {"meeting_on": "2026-12-16", "meeting_time": "14:00"}  # what rearranging moves it to
# In every text that confirms the stale meeting (a cancellation names only its day).
STALE_WORDS = "9 December 2026 at 10:00"
ARRANGED_LATE = at("2026-11-20", "21:30")  # in the SMS quiet hours (21:00-08:00)
STEP_AT = at("2026-11-20", "21:45")
MORNING = at("2026-11-21", "08:05")

STEPS: dict[str, tuple[str, dict[str, str]]] = {
    "decline": ("decline", {"declined_on": "2026-11-20"}),
    "cancel_meeting": ("cancel_meeting", {"reason": "the mediator is ill"}),
    "reschedule": ("schedule_meeting", NEW),
}
REASONS = {
    "decline": ("meeting_cancelled", "not sent: the meeting was cancelled before it went out"),
    "cancel_meeting": (
        "meeting_cancelled",
        "not sent: the meeting was cancelled before it went out",
    ),
    "reschedule": (
        "meeting_rearranged",
        "not sent: the meeting was rearranged before it went out (the new date was sent instead)",
    ),
}
# What each step itself must still send, to the family and the provider.
STEP_TEMPLATES = {
    "decline": {"meeting_cancelled_declined", "meeting_cancelled_declined_provider"},
    "cancel_meeting": {"meeting_cancelled", "meeting_cancelled_provider"},
    "reschedule": {"meeting_confirmed", "meeting_arranged_provider"},
}


@pytest.fixture
def keyed(sendgrid_fake: SendGridFake, twilio_fake: TwilioFake) -> Settings:
    return load_settings(
        environment="test",
        sendgrid_api_key=sendgrid_fake.api_key,
        sendgrid_host=sendgrid_fake.url,
        sendgrid_from="noreply@casework.example.org",
        twilio_account_sid=twilio_fake.account_sid,
        twilio_auth_token=twilio_fake.auth_token,
        twilio_from=SENDER,
        twilio_base_url=twilio_fake.url,
        provider_timeout_seconds=5,
    )


def rows(engine: Engine, case_id: int | None, **where: Any) -> list[Notice]:
    with session_scope(engine) as s:
        query = select(Notice).where(col(Notice.case_id) == case_id)
        for name, value in where.items():
            query = query.where(getattr(Notice, name) == value)
        found = list(s.execute(query.order_by(col(Notice.id))).scalars())
        for notice in found:
            s.expunge(notice)
        return found


def snapshot(notice: Notice) -> tuple[Any, ...]:
    return (
        notice.status,
        notice.sent_at,
        notice.last_error,
        notice.provider_message_id,
        notice.body,
        notice.attempts,
    )


def what_reached_the_fakes(
    sendgrid: SendGridFake, twilio: TwilioFake | None = None
) -> tuple[set[str], str]:
    """(notice public ids SendGrid was given, every text the fakes were given)."""
    emails = list(sendgrid.messages.values())
    texts = [m.get("Body", "") for m in twilio.messages.values()] if twilio else []
    ids = {str(m.get("custom_args", {}).get("notice_id")) for m in emails}
    words = [json.dumps(m) for m in emails] + texts
    return ids, "\n".join(words)


def take_step(session: Session, settings: Settings, case: Any, step: str, now: dt.datetime) -> Any:
    event, data = STEPS[step]
    return advance(session, settings, case, event, now=now, **data)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_meeting_notice_queued_or_held_before_the_step_is_skipped_and_never_sent(
    engine: Engine,
    session: Session,
    settings: Settings,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    step: str,
) -> None:
    case = mediating(session, settings)
    # The first meeting, its notices sent: they must stay exactly as they were.
    advance(session, settings, case, "schedule_meeting", now=at("2026-11-20", "10:00"), **FIRST)
    dispatch(engine, at("2026-11-20", "10:05"), keyed)
    already_sent = rows(engine, case.id, status="sent")
    assert {n.template for n in already_sent} >= {"meeting_confirmed", "meeting_arranged_provider"}
    # Rearranged late in the evening: its text waits for the morning, its emails are
    # queued and not yet dispatched when the step comes.
    advance(session, settings, case, "schedule_meeting", now=ARRANGED_LATE, **STALE)
    stale = rows(engine, case.id, created_at=ARRANGED_LATE)
    by_channel = {(n.recipient_role, n.channel): n for n in stale}
    assert set(by_channel) == {("family", "sms"), ("family", "email"), ("provider", "email")}
    assert by_channel["family", "sms"].not_before == at("2026-11-21", "08:00")  # held
    assert all(n.status == "queued" for n in stale)

    take_step(session, settings, case, step, STEP_AT)

    code, words = REASONS[step]
    for notice in rows(engine, case.id, created_at=ARRANGED_LATE):
        assert notice.status == "skipped", notice.template
        assert notice.last_error.startswith(f"{code}:")
        assert notice_reason_words(notice.status, notice.last_error) == words
    result = dispatch(engine, MORNING, keyed)
    assert result.sent >= 1

    ids, text = what_reached_the_fakes(sendgrid_fake, twilio_fake)
    assert not ids & {n.public_id for n in stale}
    assert STALE_WORDS not in text
    after = rows(engine, case.id, created_at=ARRANGED_LATE)
    assert [n.status for n in after] == ["skipped"] * 3
    assert all(n.sent_at is None and n.provider_message_id is None for n in after)
    # What the step itself queued went, to both, on every channel.
    own = rows(engine, case.id, created_at=STEP_AT)
    assert {n.template for n in own} == STEP_TEMPLATES[step]
    assert {n.status for n in own} == {"sent"}
    assert {(n.recipient_role, n.channel) for n in own} == set(by_channel)
    assert {n.public_id for n in own if n.channel == "email"} <= ids
    if step == "reschedule":
        assert "16 December 2026 at 14:00" in text
    else:
        assert "Wednesday 9 December 2026 is cancelled" in text
    # And what had gone before is unchanged.
    unchanged = {n.id: snapshot(n) for n in rows(engine, case.id) if n.id in _ids(already_sent)}
    assert unchanged == {n.id: snapshot(n) for n in already_sent}


def _ids(notices: list[Notice]) -> set[int | None]:
    return {n.id for n in notices}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_the_sweeps_meeting_reminders_are_skipped_with_the_meeting(
    engine: Engine,
    session: Session,
    settings: Settings,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    step: str,
) -> None:
    """The day-before reminder of the meeting's own clock, queued by the sweep, goes with
    the meeting it reminds of, in words (not as "the deadline stopped applying")."""
    case = mediating(session, settings)
    advance(
        session,
        settings,
        case,
        "schedule_meeting",
        now=at("2026-11-20", "10:00"),
        meeting_on="2026-11-27",
        meeting_time="10:00",
    )
    dispatch(engine, at("2026-11-20", "10:05"), keyed)
    moment = at("2026-11-26", "09:00")
    sweep(engine, moment, settings)
    reminders = rows(engine, case.id, template="family_meeting_reminder")
    assert {n.channel for n in reminders} == {"sms", "email"}
    assert {n.status for n in reminders} == {"queued"}

    take_step(session, settings, case, step, moment + dt.timedelta(seconds=30))

    code, words = REASONS[step]
    for notice in rows(engine, case.id, template="family_meeting_reminder"):
        assert notice.status == "skipped" and notice.last_error.startswith(f"{code}:")
        assert notice_reason_words(notice.status, notice.last_error) == words
    dispatch(engine, moment + dt.timedelta(minutes=1), keyed)
    ids, text = what_reached_the_fakes(sendgrid_fake, twilio_fake)
    assert not ids & {n.public_id for n in reminders}
    assert "Reminder: your meeting" not in text
    assert {n.status for n in rows(engine, case.id, template="family_meeting_reminder")} == {
        "skipped"
    }


def test_the_cancellations_own_notices_and_other_cases_are_untouched(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Only this case's notices about the old meeting: another case's confirmation and
    this case's earlier notices about other things still wait to go."""
    case = mediating(session, settings)
    other = mediating(session, settings)
    for each in (case, other):
        advance(session, settings, each, "schedule_meeting", now=ARRANGED_LATE, **STALE)
    before_other = [snapshot(n) for n in rows(engine, other.id)]
    choose = rows(engine, case.id, template="mediation_chosen")
    assert choose and {n.status for n in choose} == {"queued"}
    take_step(session, settings, case, "cancel_meeting", STEP_AT)
    assert [snapshot(n) for n in rows(engine, other.id)] == before_other
    assert {n.status for n in rows(engine, case.id, template="mediation_chosen")} == {"queued"}
    assert {n.status for n in rows(engine, case.id, created_at=STEP_AT)} == {"queued"}


def test_a_withdrawal_skips_the_meeting_notices_as_withdrawn(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    advance(session, settings, case, "schedule_meeting", now=ARRANGED_LATE, **STALE)
    advance(session, settings, case, "withdraw", now=STEP_AT, reason="moved away")
    stale = rows(engine, case.id, created_at=ARRANGED_LATE)
    assert {n.status for n in stale} == {"skipped"}
    assert {notice_reason_words(n.status, n.last_error) for n in stale} == {
        "not sent: the case was withdrawn before it went out"
    }


# --- The race: a dispatcher claimed the confirmation just before the step -------------


def _cancel_between(
    engine: Engine, settings: Settings, reference: str, monkeypatch: pytest.MonkeyPatch, at_: str
) -> list[str]:
    """Record cancel_meeting (in its own session, as another door would) the first time
    the dispatcher reaches ``at_`` with a meeting notice it has claimed."""
    done: list[str] = []
    real = getattr(dispatch_module, at_)

    def cancel_then(*args: Any, **kwargs: Any) -> Any:
        def step() -> None:
            if done:
                return
            with Session(engine, expire_on_commit=False) as other:
                cases.advance(
                    other,
                    reference,
                    "cancel_meeting",
                    now=STEP_AT,
                    actor=ADVISER,
                    settings=settings,
                    data={"reason": "the mediator is ill"},
                )
            done.append(reference)

        if at_ == "_attachments":  # the step commits after the claim, before the re-read
            step()
            return real(*args, **kwargs)
        answer = real(*args, **kwargs)  # the re-read saw it unsent; then the step commits
        step()
        return answer

    monkeypatch.setattr(dispatch_module, at_, cancel_then)
    return done


def test_a_confirmation_claimed_just_before_the_cancellation_is_not_sent(
    engine: Engine,
    session: Session,
    settings: Settings,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dispatcher claimed the email, then the meeting was cancelled: reading the row
    again just before the provider call, it finds it skipped and sends nothing."""
    case = mediating(session, settings)
    dispatch(engine, at("2026-11-20", "21:00"), keyed)  # what choosing mediation sent
    advance(session, settings, case, "schedule_meeting", now=ARRANGED_LATE, **STALE)
    done = _cancel_between(engine, settings, case.reference, monkeypatch, "_attachments")
    keyed_one = keyed.model_copy(update={"dispatch_concurrency": 1})
    dispatch(engine, ARRANGED_LATE + dt.timedelta(minutes=1), keyed_one)
    assert done == [case.reference]
    emails = [n for n in rows(engine, case.id, created_at=ARRANGED_LATE) if n.channel == "email"]
    assert {n.status for n in emails} == {"skipped"}
    assert {n.last_error.split(":")[0] for n in emails} == {"meeting_cancelled"}
    ids, text = what_reached_the_fakes(sendgrid_fake)
    assert not ids & {n.public_id for n in emails} and STALE_WORDS not in text


def test_a_confirmation_already_handed_over_when_the_cancellation_lands_is_recorded_sent(
    engine: Engine,
    session: Session,
    settings: Settings,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound: a step that commits after the dispatcher's last read cannot stop a
    message the provider is already taking (no transaction is held across the call).
    Then the notice is recorded as what happened: sent, never "not sent"."""
    case = mediating(session, settings)
    dispatch(engine, at("2026-11-20", "21:00"), keyed)
    advance(session, settings, case, "schedule_meeting", now=ARRANGED_LATE, **STALE)
    done = _cancel_between(engine, settings, case.reference, monkeypatch, "_still_ours")
    keyed_one = keyed.model_copy(update={"dispatch_concurrency": 1})
    dispatch(engine, ARRANGED_LATE + dt.timedelta(minutes=1), keyed_one)
    assert done == [case.reference]
    emails = [n for n in rows(engine, case.id, created_at=ARRANGED_LATE) if n.channel == "email"]
    first = min(emails, key=lambda n: n.id or 0)
    assert first.status == "sent" and first.provider_message_id
    ids, _text = what_reached_the_fakes(sendgrid_fake)
    assert first.public_id in ids
