"""The dispatcher on a real database, through the real SDKs to loopback fakes.

With no keys, notices go to the outbox (stored, logged, shown in the UI). With keys
pointing at ``tests/fakes``, the same notices go over HTTP through the SendGrid and
Twilio SDKs, and what the fakes received is asserted: credentials, recipients, the
text (never the child's name), the correlation ids that delivery receipts come back
with. Then the failure paths: transient errors retried with backoff, Retry-After
honoured, permanent errors failed and escalated, the retry budget, quiet hours, a
worker that died mid-send, and no database lock held while a provider is slow.

The notices come from a real use case: a family's request opened on Mon 9 Nov 2026
queues ``request_acknowledged`` to the family by SMS and email.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text, update
from sqlmodel import Session, col

from casework import cases
from casework.config import Settings, load_settings
from casework.db import session_scope
from casework.models import DeliveryEvent, Notice
from casework.notify.base import OutgoingMessage, SendResult
from casework.notify.dispatch import MAX_ATTEMPTS, dispatch, lease_of
from casework.notify.outbox import OutboxChannel
from casework.notify.render import render
from casework.scheduler import DISPATCH_SECONDS
from tests.conftest import ADVISER, at
from tests.factories import create_case
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake, decode_basic_auth

PUBLIC_URL = "https://casework.example.org"
SENDER = "+447700900000"
OPEN = at("2026-11-09", "10:00")
CHILD = "Kai Whitfield"
FAMILY_MOBILE = "+447911234567"
SLOW_PROVIDER = 3.0  # seconds a fake holds its answer back
WRITE_BUDGET = 1.5  # a write that waited this long was waiting for the provider call


@pytest.fixture
def keyed(sendgrid_fake: SendGridFake, twilio_fake: TwilioFake) -> Settings:
    """Settings with both channels' keys set, pointing at the fakes."""
    return load_settings(
        environment="test",
        public_url=PUBLIC_URL,
        sendgrid_api_key=sendgrid_fake.api_key,
        sendgrid_host=sendgrid_fake.url,
        sendgrid_from="noreply@casework.example.org",
        twilio_account_sid=twilio_fake.account_sid,
        twilio_auth_token=twilio_fake.auth_token,
        twilio_from=SENDER,
        twilio_base_url=twilio_fake.url,
        provider_timeout_seconds=5,
    )


def open_request(session: Session, settings: Settings, now: dt.datetime = OPEN) -> str:
    case = create_case(
        session,
        settings,
        now=now,
        phone="07911 234567",
        child_name=CHILD,
        summary="Kai's EHC needs assessment was refused by the LA",
    )
    return case.reference


def notice(engine: Engine, channel: str, template: str = "request_acknowledged") -> Notice:
    with session_scope(engine) as s:
        rows = list(
            s.execute(
                select(Notice).where(
                    col(Notice.channel) == channel, col(Notice.template) == template
                )
            ).scalars()
        )
    assert len(rows) == 1, rows
    return rows[0]


def attempts_of(engine: Engine, notice_id: int) -> list[tuple[str, str, str]]:
    with session_scope(engine) as s:
        return [
            (e.source, e.status, e.detail)
            for e in s.execute(
                select(DeliveryEvent)
                .where(col(DeliveryEvent.notice_id) == notice_id)
                .order_by(col(DeliveryEvent.id))
            ).scalars()
        ]


def escalations(engine: Engine) -> list[Notice]:
    with session_scope(engine) as s:
        return list(
            s.execute(
                select(Notice).where(col(Notice.template) == "escalation_delivery_failed")
            ).scalars()
        )


def assert_rendered(n: Notice) -> None:
    """The stored text is the template on the stored context (and, for a family, the
    link to its page, which the dispatcher writes in and nothing stores)."""
    context = dict(n.context)
    link = re.search(r"\S+/family/[A-Za-z0-9_-]{32}", n.body)
    if n.recipient_role == "family" and link is not None:
        context["family_link"] = link.group(0)
    subject, body = render(n.template, n.channel, context)
    assert (n.subject, n.body) == (subject, body)


# --- Outbox and real HTTP ----------------------------------------------------------------------


def test_without_keys_notices_are_kept_in_the_outbox(
    engine: Engine, session: Session, settings: Settings
) -> None:
    open_request(session, settings)
    result = dispatch(engine, OPEN, settings)
    assert (result.claimed, result.sent, result.failed) == (2, 2, 0)
    assert dict(result.by_channel) == {"sms:outbox": 1, "email:outbox": 1}

    for channel, to in (("sms", FAMILY_MOBILE), ("email", "jo.family@example.org")):
        n = notice(engine, channel)
        assert (n.status, n.provider, n.attempts, n.sent_at) == ("sent", "outbox", 1, OPEN)
        assert n.provider_message_id == f"outbox-{n.public_id}"
        assert n.to_address == to
        assert_rendered(n)
        assert "MED-2026-0001" in n.body and "0161 209 8356" in n.body
        assert CHILD not in n.body and "Kai" not in n.subject
        assert attempts_of(engine, n.id) == [("attempt", "sent", f"outbox outbox-{n.public_id}")]
    assert notice(engine, "email").subject == "We have your request (MED-2026-0001)"
    assert dispatch(engine, OPEN, settings).claimed == 0  # sent once


def test_with_keys_the_same_notices_go_over_http_through_the_sdks(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
) -> None:
    open_request(session, keyed)
    result = dispatch(engine, OPEN, keyed)
    assert dict(result.by_channel) == {"sms:twilio": 1, "email:sendgrid": 1}

    sms = notice(engine, "sms")
    assert (sms.status, sms.provider) == ("sent", "twilio")
    assert sms.provider_message_id in twilio_fake.messages
    assert_rendered(sms)
    (request,) = twilio_fake.requests
    assert request.path == f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages.json"
    assert decode_basic_auth(request.header("Authorization")) == (
        twilio_fake.account_sid,
        twilio_fake.auth_token,
    )
    assert request.body == {
        "To": FAMILY_MOBILE,
        "From": SENDER,
        "Body": sms.body,
        "StatusCallback": f"{PUBLIC_URL}/webhooks/twilio/status?notice={sms.public_id}",
    }
    assert "Kai" not in sms.body and "Jo" not in sms.body.split()

    email = notice(engine, "email")
    assert (email.status, email.provider) == ("sent", "sendgrid")
    assert email.provider_message_id in sendgrid_fake.messages
    assert_rendered(email)
    (request,) = sendgrid_fake.requests
    assert request.header("Authorization") == f"Bearer {sendgrid_fake.api_key}"
    assert request.body == {
        "from": {"email": "noreply@casework.example.org"},
        "subject": email.subject,
        "personalizations": [{"to": [{"email": "jo.family@example.org"}]}],
        "content": [{"type": "text/plain", "value": email.body}],
        "custom_args": {"notice_id": email.public_id},
    }
    assert CHILD not in email.body
    assert attempts_of(engine, email.id) == [
        ("attempt", "sent", f"sendgrid {email.provider_message_id}")
    ]


# --- Transient failures -------------------------------------------------------------------------


def fake_for(channel: str, sendgrid: SendGridFake, twilio: TwilioFake) -> Any:
    return twilio if channel == "sms" else sendgrid


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_a_server_error_is_retried_later_with_backoff(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    channel: str,
) -> None:
    open_request(session, keyed)
    fake = fake_for(channel, sendgrid_fake, twilio_fake)
    fake.fail_next(500)
    result = dispatch(engine, OPEN, keyed)
    assert (result.sent, result.retried, result.failed) == (1, 1, 0)

    n = notice(engine, channel)
    assert (n.status, n.attempts, n.claimed_by, n.sent_at) == ("queued", 1, None, None)
    # First retry: 30 s ceiling with jitter, so 15-30 s from now.
    assert OPEN + dt.timedelta(seconds=15) <= n.not_before <= OPEN + dt.timedelta(seconds=30)
    assert "temporary problem (500" in n.last_error
    ((source, status, detail),) = attempts_of(engine, n.id)
    assert (source, status) == ("attempt", "error") and "500" in detail

    assert dispatch(engine, n.not_before - dt.timedelta(seconds=1), keyed).claimed == 0
    again = dispatch(engine, n.not_before, keyed)
    assert again.sent == 1
    n = notice(engine, channel)
    assert (n.status, n.attempts, n.last_error) == ("sent", 2, "")
    assert [s for _, s, _ in attempts_of(engine, n.id)] == ["error", "sent"]
    assert fake.accepted == 1


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_429_with_retry_after_is_not_retried_sooner(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    channel: str,
) -> None:
    open_request(session, keyed)
    fake_for(channel, sendgrid_fake, twilio_fake).fail_next(429, headers={"Retry-After": "120"})
    assert dispatch(engine, OPEN, keyed).retried == 1

    n = notice(engine, channel)
    assert (n.status, n.attempts) == ("queued", 1)
    assert n.not_before >= OPEN + dt.timedelta(seconds=120)
    assert n.not_before <= OPEN + dt.timedelta(seconds=121)
    assert "in 120 s" in n.last_error
    assert dispatch(engine, OPEN + dt.timedelta(seconds=119), keyed).claimed == 0
    assert dispatch(engine, OPEN + dt.timedelta(seconds=121), keyed).sent == 1


def test_after_the_retry_budget_the_notice_fails_and_the_adviser_is_told(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
) -> None:
    open_request(session, keyed)
    twilio_fake.fail_next(503, count=MAX_ATTEMPTS)
    now = OPEN
    delays = []
    for attempt in range(1, MAX_ATTEMPTS):
        dispatch(engine, now, keyed)
        n = notice(engine, "sms")
        assert (n.status, n.attempts) == ("queued", attempt)
        delays.append(n.not_before - now)
        now = n.not_before
    assert delays == sorted(delays), "backoff must not shrink"
    assert delays[-1] >= dt.timedelta(minutes=16)  # 7th retry: 32 min ceiling, at least half
    assert all(d <= dt.timedelta(hours=1) for d in delays)

    last = dispatch(engine, now, keyed)
    # The escalation is due at once, so the same run delivers it.
    assert (last.failed, last.escalated, last.retried, last.sent) == (1, 1, 0, 1)
    n = notice(engine, "sms")
    assert (n.status, n.attempts, n.escalated) == ("failed", MAX_ATTEMPTS, True)
    assert n.last_error.startswith(f"gave_up: gave up after {MAX_ATTEMPTS} attempts: ")
    assert [s for _, s, _ in attempts_of(engine, n.id)] == ["error"] * MAX_ATTEMPTS
    assert len(twilio_fake.requests) == MAX_ATTEMPTS

    (escalation,) = escalations(engine)
    assert (escalation.recipient_role, escalation.channel, escalation.status) == (
        "adviser",
        "email",
        "sent",
    )
    assert escalation.context["failed_channel"] == "sms"
    later = dispatch(engine, now + dt.timedelta(hours=2), keyed)
    assert later.claimed == 0 and len(twilio_fake.requests) == MAX_ATTEMPTS  # no more retries
    assert (
        f"gave up after {MAX_ATTEMPTS} attempts" in sendgrid_fake.last.body["content"][0]["value"]
    )


# --- Permanent failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "status", "code", "reason", "why"),
    [
        ("sms", 400, 21211, "Twilio says the phone number is not valid (21211)", "number_invalid"),
        ("email", 400, None, "SendGrid refused the email (400): Bad Request", "rejected"),
    ],
)
def test_a_permanent_failure_is_not_retried_and_escalates_to_the_adviser(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    channel: str,
    status: int,
    code: int | None,
    reason: str,
    why: str,
) -> None:
    reference = open_request(session, keyed)
    if code is not None:
        twilio_fake.fail_next(status, code=code)
    else:
        sendgrid_fake.fail_next(status)
    result = dispatch(engine, OPEN, keyed)
    assert (result.failed, result.escalated, result.retried) == (1, 1, 0)

    n = notice(engine, channel)
    assert (n.status, n.attempts, n.escalated, n.sent_at) == ("failed", 1, True, None)
    assert n.last_error == f"{why}: {reason}"  # the code the pages put in words, then the detail
    ((source, state, _),) = attempts_of(engine, n.id)
    assert (source, state) == ("attempt", "error")

    (escalation,) = escalations(engine)
    assert escalation.recipient_role == "adviser"
    assert (escalation.channel, escalation.to_address) == ("email", keyed.team.adviser_email)
    assert escalation.status == "sent" and escalation.not_before == OPEN
    assert escalation.case_id == n.case_id
    assert {k: escalation.context[k] for k in ("failed_channel", "failed_recipient")} == {
        "failed_channel": channel,
        "failed_recipient": "family",
    }
    assert escalation.context["reason"] == reason

    # The escalation went out in the same run, and nothing is retried later.
    requests_before = len(twilio_fake.requests) + len(sendgrid_fake.requests)
    later = dispatch(engine, OPEN + dt.timedelta(hours=1), keyed)
    assert later.claimed == 0
    assert len(twilio_fake.requests) + len(sendgrid_fake.requests) == requests_before
    to_adviser = [{"to": [{"email": keyed.team.adviser_email}]}]
    (sent,) = [r.body for r in sendgrid_fake.requests if r.body["personalizations"] == to_adviser]
    assert sent["subject"] == f"Could not deliver a notice for {reference}"
    assert reason in sent["content"][0]["value"]
    assert notice(engine, channel).status == "failed"


# --- Quiet hours ------------------------------------------------------------------------------


def test_an_sms_due_in_quiet_hours_waits_until_8am_without_using_an_attempt(
    engine: Engine, session: Session, keyed: Settings, twilio_fake: TwilioFake
) -> None:
    evening = at("2026-11-09", "20:55")  # queued before 21:00, dispatcher runs after
    open_request(session, keyed, now=evening)
    late = at("2026-11-09", "21:05")
    result = dispatch(engine, late, keyed)
    assert (result.sent, result.deferred, result.retried) == (1, 1, 0)
    assert notice(engine, "email").status == "sent"

    sms = notice(engine, "sms")
    assert (sms.status, sms.attempts, sms.claimed_by) == ("queued", 0, None)
    assert sms.not_before == at("2026-11-10", "08:00")
    assert attempts_of(engine, sms.id) == []
    assert twilio_fake.requests == []

    assert dispatch(engine, at("2026-11-10", "07:59"), keyed).claimed == 0
    morning = dispatch(engine, at("2026-11-10", "08:00"), keyed)
    assert morning.sent == 1
    sms = notice(engine, "sms")
    assert (sms.status, sms.attempts, sms.sent_at) == ("sent", 1, at("2026-11-10", "08:00"))
    assert len(twilio_fake.requests) == 1


def test_an_event_sms_in_quiet_hours_is_queued_for_8am(
    engine: Engine, session: Session, settings: Settings
) -> None:
    open_request(session, settings, now=at("2026-11-09", "22:30"))
    sms, email = notice(engine, "sms"), notice(engine, "email")
    assert sms.not_before == at("2026-11-10", "08:00")
    assert email.not_before == at("2026-11-09", "22:30")


# --- Workers that die or stall -------------------------------------------------------------------


class WorkerDied(BaseException):
    """Stands for SIGKILL: nothing after the claim commit runs."""


class Dies:
    name = "dies"

    def send(self, message: OutgoingMessage) -> SendResult:
        raise WorkerDied()


def test_a_notice_left_sending_by_a_dead_worker_is_reclaimed_and_sent(
    engine: Engine, session: Session, settings: Settings
) -> None:
    open_request(session, settings)
    lease = lease_of(settings)
    with pytest.raises(WorkerDied):
        dispatch(
            engine,
            OPEN,
            settings,
            channels={"sms": Dies(), "email": Dies()},
            me="a:1",
            concurrency=1,
        )
    # The dead worker held only what it was sending: one notice, not the batch.
    stranded = [notice(engine, c) for c in ("sms", "email")]
    held = [n for n in stranded if n.status == "sending"]
    assert len(held) == 1 and held[0].claimed_by == "a:1"
    assert OPEN <= held[0].claimed_at < OPEN + dt.timedelta(seconds=5)
    assert held[0].attempts == 0  # a claim is not an attempt

    still_fresh = OPEN + lease - dt.timedelta(seconds=1)
    taken = dispatch(engine, still_fresh, settings, me="b:2")
    assert taken.claimed == 1  # the queued one only: a live lease is respected
    # The scheduler dispatches every DISPATCH_SECONDS: the first run after the lease
    # runs out takes the notice over, within 30 s of the worker's death.
    assert lease + dt.timedelta(seconds=DISPATCH_SECONDS) <= dt.timedelta(seconds=30)
    reclaim_at = OPEN + lease + dt.timedelta(seconds=1)
    result = dispatch(engine, reclaim_at, settings, me="b:2")
    assert (result.claimed, result.sent, result.resent_after_reclaim) == (1, 1, 0)
    for channel in ("sms", "email"):
        n = notice(engine, channel)
        assert (n.status, n.claimed_by, n.attempts) == ("sent", "b:2", 1)
        assert [s for _, s, _ in attempts_of(engine, n.id)] == ["sent"]
    assert notice(engine, held[0].channel).sent_at == reclaim_at


class Recording:
    """An outbox channel that counts sends per notice and can run code mid-send."""

    name = "outbox"

    def __init__(self, during_first_send: Any = None) -> None:
        self.sends: list[str] = []
        self.during_first_send = during_first_send
        self._outbox = OutboxChannel("any")

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sends.append(message.notice_id)
        if self.during_first_send is not None:
            hook, self.during_first_send = self.during_first_send, None
            hook()
        return self._outbox.send(message)


def test_a_stalled_worker_does_not_send_what_another_worker_took_over(
    engine: Engine, session: Session, settings: Settings
) -> None:
    # Worker A claims a notice, then stalls on its send (a provider hanging, a paused
    # VM) past its lease. Worker B reclaims it and sends both notices. When A wakes,
    # its send has already happened (the one unavoidable duplicate, which A counts),
    # and A holds no other claim: it never sends the second notice at all.
    open_request(session, settings)
    b_channel = Recording()

    def worker_b_takes_over() -> None:
        late = OPEN + lease_of(settings) + dt.timedelta(seconds=10)
        taken = dispatch(engine, late, settings, channels={"sms": b_channel, "email": b_channel})
        assert taken.sent == 2

    a_channel = Recording(during_first_send=worker_b_takes_over)
    a = dispatch(
        engine,
        OPEN,
        settings,
        channels={"sms": a_channel, "email": a_channel},
        me="a:1",
        concurrency=1,
    )

    assert a.resent_after_reclaim == 1  # the in-flight send is counted as a duplicate
    assert a.claimed == 1 and len(a_channel.sends) == 1
    sends = a_channel.sends + b_channel.sends
    duplicates = {nid: sends.count(nid) for nid in set(sends) if sends.count(nid) > 1}
    assert len(duplicates) <= 1, (
        f"worker A sent {len(a_channel.sends)} notices after B took them over: {duplicates}"
    )


def test_no_database_lock_is_held_while_a_provider_is_slow(
    engine: Engine,
    session: Session,
    keyed: Settings,
    twilio_fake: TwilioFake,
) -> None:
    open_request(session, keyed)
    sms = notice(engine, "sms")
    twilio_fake.delay_next(SLOW_PROVIDER)
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["result"] = dispatch(engine, OPEN, keyed)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not twilio_fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert twilio_fake.requests, "the SMS never reached the fake"

    # The dispatcher is inside the Twilio call now. Another connection writes the very
    # row being sent (and so the database): it must not wait for the provider.
    started = time.monotonic()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))
        conn.execute(update(Notice).where(col(Notice.id) == sms.id).values(acknowledged_by="probe"))
        svc_write = conn.execute(select(Notice.status).where(col(Notice.id) == sms.id)).scalar()
    waited = time.monotonic() - started
    assert worker.is_alive(), "the send finished before the probe: nothing was tested"
    assert svc_write == "sending"
    assert waited < WRITE_BUDGET, f"a write waited {waited:.2f}s for the provider call"

    worker.join(timeout=10)
    assert outcome["result"].sent == 2
    assert notice(engine, "sms").status == "sent"


def test_a_case_opened_while_the_dispatcher_sends_is_not_blocked(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
) -> None:
    # The same guarantee seen from a use case: an adviser recording a new request is
    # not held up by a slow SendGrid.
    open_request(session, keyed)
    sendgrid_fake.delay_next(SLOW_PROVIDER)
    worker = threading.Thread(target=lambda: dispatch(engine, OPEN, keyed))
    worker.start()
    deadline = time.monotonic() + 5
    while not sendgrid_fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with session_scope(engine) as other:
        cases.open_case(
            other,
            cases.Intake(
                kind="mediation", name="Sam Other", phone="07911 765432", channel="helpline"
            ),
            now=OPEN,
            actor=ADVISER,
            settings=keyed,
        )
    waited = time.monotonic() - started
    alive = worker.is_alive()
    worker.join(timeout=10)
    assert alive and waited < WRITE_BUDGET, (
        f"open_case waited {waited:.2f}s (dispatcher alive: {alive})"
    )


# --- A rejected credential is an operator alarm, not a family's failure --------------------------


def alarms_to_manager(engine: Engine) -> list[Notice]:
    with session_scope(engine) as s:
        return list(
            s.execute(
                select(Notice)
                .where(col(Notice.template) == "escalation_credentials_rejected")
                .order_by(col(Notice.id))
            ).scalars()
        )


def family_notices(engine: Engine, channel: str) -> list[Notice]:
    with session_scope(engine) as s:
        return list(
            s.execute(
                select(Notice).where(
                    col(Notice.channel) == channel, col(Notice.recipient_role) == "family"
                )
            ).scalars()
        )


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_a_rejected_key_holds_the_notices_alarms_the_manager_once_and_they_go_when_fixed(
    engine: Engine,
    session: Session,
    keyed: Settings,
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    channel: str,
) -> None:
    fake = fake_for(channel, sendgrid_fake, twilio_fake)
    for k in range(3):
        open_request(session, keyed, now=OPEN + dt.timedelta(minutes=k))
    fake.revoke_credentials()  # someone rotated the key and did not update casework

    # Many rounds while the key is wrong: more than the retry budget of a failing notice.
    now = OPEN + dt.timedelta(minutes=5)
    for _ in range(MAX_ATTEMPTS + 2):
        dispatch(engine, now, keyed)
        now += dt.timedelta(minutes=20)
    held = family_notices(engine, channel)
    assert len(held) == 3
    for n in held:
        assert (n.status, n.attempts, n.escalated) == ("queued", 0, False), n.last_error
        assert "settings are fixed" in n.last_error
    assert escalations(engine) == []  # no per-notice "could not deliver" to the adviser
    (alarm,) = alarms_to_manager(engine)  # one alarm for the whole episode
    assert (alarm.recipient_role, alarm.channel, alarm.to_address) == (
        "manager",
        "email",
        keyed.team.manager_email,
    )
    assert alarm.case_id is None
    label = "Twilio" if channel == "sms" else "SendGrid"
    # Readable on the manager page even while it waits (SendGrid's own key refused).
    assert alarm.subject.startswith(f"{label} refused our account details"), alarm.subject
    other = "email" if channel == "sms" else "sms"
    assert {n.status for n in family_notices(engine, other)} == {"sent"}  # the other channel
    requests_while_broken = len(fake.requests)
    assert requests_while_broken >= 3

    fake.restore_credentials()  # the operator fixes the key
    result = dispatch(engine, now + dt.timedelta(hours=1), keyed)
    assert result.failed == 0
    for n in family_notices(engine, channel):
        assert (n.status, n.attempts) == ("sent", 1)
        assert n.provider_message_id in fake.messages
    (alarm,) = alarms_to_manager(engine)
    assert alarm.status == "sent"  # by SendGrid too, once its key works

    # A later rejection is a new episode: one more alarm, not one per notice.
    fake.revoke_credentials()
    open_request(session, keyed, now=now + dt.timedelta(hours=2))
    dispatch(engine, now + dt.timedelta(hours=2), keyed)
    assert len(alarms_to_manager(engine)) == 2


def test_several_workers_hitting_a_rejected_key_at_once_raise_one_alarm(
    engine: Engine, session: Session, keyed: Settings, twilio_fake: TwilioFake
) -> None:
    for k in range(6):
        open_request(session, keyed, now=OPEN + dt.timedelta(seconds=k))
    twilio_fake.revoke_credentials()
    workers = [
        threading.Thread(target=dispatch, args=(engine, OPEN, keyed), kwargs={"me": f"w:{i}"})
        for i in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(alarms_to_manager(engine)) == 1
    assert {n.status for n in family_notices(engine, "sms")} == {"queued"}


# --- Failing and escalating are one transaction -----------------------------------------------


def test_a_crash_between_failing_a_notice_and_queueing_its_escalation_loses_nothing(
    engine: Engine,
    session: Session,
    keyed: Settings,
    twilio_fake: TwilioFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from casework.notify import dispatch as dispatch_module

    open_request(session, keyed)
    twilio_fake.reject_to(FAMILY_MOBILE, code=21211)  # a permanent failure, every time
    real_insert = dispatch_module.insert_notices

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise WorkerDied()  # the process dies just as the escalation is written

    monkeypatch.setattr(dispatch_module, "insert_notices", crash)
    with pytest.raises(WorkerDied):
        dispatch(engine, OPEN, keyed, me="a:1", concurrency=1)
    monkeypatch.setattr(dispatch_module, "insert_notices", real_insert)

    # Whatever the crash left, the failure must still reach the adviser.
    later = OPEN + lease_of(keyed) + dt.timedelta(seconds=10)
    dispatch(engine, later, keyed, me="b:2")
    sms = notice(engine, "sms")
    assert (sms.status, sms.escalated) == ("failed", True)
    (escalation,) = escalations(engine)
    assert escalation.context["failed_channel"] == "sms"


class TakenOverThenFails:
    """Worker A's channel: while A waits on the provider, B takes the notice over and
    sends it; then the provider answers A with a permanent refusal."""

    name = "twilio"

    def __init__(self, take_over: Any) -> None:
        self.take_over = take_over

    def send(self, message: OutgoingMessage) -> SendResult:
        self.take_over()
        from casework.notify.base import DeliveryError, FailureKind

        raise DeliveryError("Twilio refused the SMS (400)", kind=FailureKind.permanent, code="400")


def test_a_worker_that_lost_its_claim_neither_fails_nor_escalates_the_notice(
    engine: Engine, session: Session, settings: Settings
) -> None:
    open_request(session, settings)
    late = OPEN + lease_of(settings) + dt.timedelta(seconds=10)
    b_result: dict[str, Any] = {}

    def b_takes_over() -> None:
        b_result["b"] = dispatch(engine, late, settings, me="b:2")

    channel = TakenOverThenFails(b_takes_over)
    a = dispatch(
        engine, OPEN, settings, channels={"sms": channel, "email": channel}, me="a:1", concurrency=1
    )
    assert b_result["b"].sent == 2
    assert (a.failed, a.escalated, a.taken_over) == (0, 0, 1)
    assert escalations(engine) == []
    assert {notice(engine, c).status for c in ("sms", "email")} == {"sent"}


# --- Receipts that beat the dispatcher; reclaims that must not resend ---------------------------


class ReceiptFirst:
    """The real Twilio channel, but the provider's 'delivered' callback is applied
    before the send returns: the webhook was faster than the dispatcher's commit."""

    def __init__(self, inner: Any, engine: Engine, settings: Settings) -> None:
        self.inner, self.engine, self.settings = inner, engine, settings
        self.name = inner.name

    def send(self, message: OutgoingMessage) -> SendResult:
        from casework.notify.receipts import record_receipt

        sent: SendResult = self.inner.send(message)
        outcome = record_receipt(
            self.engine,
            self.settings,
            source="twilio",
            notice_public_id=message.notice_id,
            provider_message_id=sent.provider_message_id,
            status="delivered",
            detail="",
            dedupe_key=f"twilio:{sent.provider_message_id}:delivered",
            now=OPEN,
        )
        assert outcome == "delivered"
        return sent


def test_a_delivered_receipt_before_the_finish_still_leaves_the_id_and_text_stored(
    engine: Engine, session: Session, keyed: Settings, twilio_fake: TwilioFake
) -> None:
    from casework.notify.dispatch import build_channels

    open_request(session, keyed)
    channels = build_channels(keyed)
    channels["sms"] = ReceiptFirst(channels["sms"], engine, keyed)
    result = dispatch(engine, OPEN, keyed, channels=channels)
    assert result.resent_after_reclaim == 0
    sms = notice(engine, "sms")
    assert sms.status == "delivered"  # the receipt's later status is kept
    assert sms.provider_message_id in twilio_fake.messages
    assert (sms.provider, sms.sent_at, sms.attempts) == ("twilio", OPEN, 1)
    assert_rendered(sms)


def test_a_reclaimed_notice_with_a_provider_id_is_finished_not_resent(
    engine: Engine, session: Session, keyed: Settings, twilio_fake: TwilioFake
) -> None:
    open_request(session, keyed)
    sms = notice(engine, "sms")
    with engine.begin() as conn:  # a worker died right after recording the provider's id
        conn.execute(
            update(Notice)
            .where(col(Notice.id) == sms.id)
            .values(
                status="sending",
                claimed_by="dead:1",
                claimed_at=OPEN,
                provider="twilio",
                provider_message_id="SM" + "0" * 32,
            )
        )
    later = OPEN + lease_of(keyed) + dt.timedelta(seconds=1)
    result = dispatch(engine, later, keyed)
    assert result.finished_on_reclaim == 1
    assert twilio_fake.requests == []  # not sent again
    assert notice(engine, "sms").status == "sent"


# --- Claims: sized to the senders, oldest first, renewed while alive, never stranded -----------


class Watching:
    """An outbox channel that notes, at each send, how many notices are claimed."""

    name = "outbox"

    def __init__(self, engine: Engine, pause: float = 0.0) -> None:
        self.engine, self.pause = engine, pause
        self.claimed_during_send: list[int] = []
        self.order: list[str] = []
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        with self.engine.connect() as conn:
            claimed = conn.execute(
                select(func.count()).where(col(Notice.status) == "sending")
            ).scalar_one()
        with self._lock:
            self.claimed_during_send.append(claimed)
            self.order.append(message.notice_id)
        time.sleep(self.pause)
        return OutboxChannel("any").send(message)


def test_a_worker_claims_only_what_its_senders_are_sending_oldest_first(
    engine: Engine, session: Session, settings: Settings
) -> None:
    for k in range(10):  # 20 notices, queued a minute apart case by case
        open_request(session, settings, now=OPEN + dt.timedelta(minutes=k))
    later = OPEN + dt.timedelta(hours=1)
    watching = Watching(engine, pause=0.02)
    result = dispatch(
        engine, later, settings, channels={"sms": watching, "email": watching}, concurrency=4
    )
    assert result.sent == 20
    # The duplicate bound: never more claims than twice the senders (one being sent or
    # queued, one sent and waiting for its batch's write, per sender).
    assert max(watching.claimed_during_send) <= 2 * 4
    assert max(watching.claimed_during_send) >= 2  # the senders really overlapped

    # With one sender, the order of sending is the order of queueing.
    with engine.begin() as conn:
        conn.execute(
            update(Notice).values(status="queued", claimed_by=None, provider_message_id=None)
        )
        expected = list(
            conn.execute(
                select(Notice.public_id).order_by(col(Notice.not_before), col(Notice.id))
            ).scalars()
        )
    one = Watching(engine)
    dispatch(engine, later, settings, channels={"sms": one, "email": one}, concurrency=1)
    assert one.order == expected
    assert set(one.claimed_during_send) == {1}


def test_claims_and_results_are_written_in_batches_within_the_duplicate_bound(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Fewer commits than notices (one claim per batch, one write per batch of results),
    and at no moment more claims than twice the sender threads: all a crash can re-send."""
    for k in range(20):  # 40 notices
        open_request(session, settings, now=OPEN + dt.timedelta(minutes=k))
    later = OPEN + dt.timedelta(hours=1)
    watching = Watching(engine, pause=0.01)
    commits: list[int] = []

    def listen(conn: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", listen)
    try:
        result = dispatch(
            engine, later, settings, channels={"sms": watching, "email": watching}, concurrency=4
        )
    finally:
        event.remove(engine, "commit", listen)
    assert result.sent == 40 and result.resent_after_reclaim == 0
    assert max(watching.claimed_during_send) <= 2 * 4
    # Per notice one claim commit and one result commit before; now each is per batch
    # (the heartbeat's renewals add a few on a slow machine).
    assert len(commits) < 40, len(commits)
    with engine.connect() as conn:
        rows = conn.execute(select(Notice.status, Notice.provider_message_id)).all()
        sent_events = conn.execute(
            select(func.count())
            .select_from(DeliveryEvent)
            .where(col(DeliveryEvent.status) == "sent")
        ).scalar_one()
    assert {r.status for r in rows} == {"sent"} and all(r.provider_message_id for r in rows)
    assert sent_events == 40


def test_a_live_worker_renews_its_claim_while_a_send_takes_long(
    engine: Engine, session: Session, keyed: Settings, twilio_fake: TwilioFake
) -> None:
    open_request(session, keyed)
    quick = keyed.model_copy(update={"dispatch_heartbeat_seconds": 0.05})
    twilio_fake.delay_next(1.0)
    worker = threading.Thread(target=dispatch, args=(engine, OPEN, quick), kwargs={"me": "a:1"})
    worker.start()
    deadline = time.monotonic() + 5
    while not twilio_fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    first = notice(engine, "sms").claimed_at
    renewed = first
    while worker.is_alive() and renewed == first:
        time.sleep(0.05)
        n = notice(engine, "sms")
        if n.status != "sending":
            break
        renewed = n.claimed_at
    worker.join(timeout=10)
    assert renewed > first, "the claim was never renewed while the send was in flight"
    assert notice(engine, "sms").status == "sent"


class BrokenFor:
    """An outbox channel with a bug for one notice: it raises something unexpected."""

    name = "outbox"

    def __init__(self, bad_notice: str) -> None:
        self.bad = bad_notice

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.notice_id == self.bad:
            raise RuntimeError("a bug in one notice's path")
        return OutboxChannel("any").send(message)


def test_one_notice_that_breaks_does_not_hold_the_others(
    engine: Engine, session: Session, settings: Settings
) -> None:
    for k in range(3):
        open_request(session, settings, now=OPEN + dt.timedelta(minutes=k))
    bad = notice_list = None
    with session_scope(engine) as s:
        notice_list = list(s.execute(select(Notice).order_by(col(Notice.id))).scalars())
    bad = notice_list[0].public_id
    channel = BrokenFor(bad)
    later = OPEN + dt.timedelta(hours=1)
    result = dispatch(engine, later, settings, channels={"sms": channel, "email": channel})
    assert (result.sent, result.errors) == (5, 1)
    with session_scope(engine) as s:
        broken = s.execute(select(Notice).where(col(Notice.public_id) == bad)).scalar_one()
    # Released at once, not left claimed until a lease runs out; tried again later.
    assert (broken.status, broken.claimed_by, broken.attempts) == ("queued", None, 0)
    assert broken.not_before > later


class Says:
    """A channel whose every send fails with the given verdict (the adapter's decision)."""

    def __init__(self, name: str, kind: str, code: str) -> None:
        self.name, self.kind, self.code = name, kind, code

    def send(self, message: OutgoingMessage) -> SendResult:
        from casework.notify.base import DeliveryError, FailureKind

        raise DeliveryError("refused", kind=FailureKind(self.kind), code=self.code)


@pytest.mark.parametrize(
    ("kind", "code", "status", "alarms", "failed"),
    [
        ("transient", "401", "queued", 0, 0),  # a 401 the adapter calls transient is retried
        ("permanent", "401", "failed", 0, 1),
        ("credential_rejected", "21211", "queued", 1, 0),  # whatever the code says
    ],
)
def test_the_dispatcher_acts_on_the_adapters_verdict_never_on_the_code(
    engine: Engine,
    session: Session,
    settings: Settings,
    kind: str,
    code: str,
    status: str,
    alarms: int,
    failed: int,
) -> None:
    open_request(session, settings)
    channels: dict[str, Any] = {"sms": Says("twilio", kind, code), "email": Recording()}
    result = dispatch(engine, OPEN, settings, channels=channels)
    assert notice(engine, "sms").status == status
    assert (result.alarms, result.failed) == (alarms, failed)


def test_a_notice_put_back_for_later_is_not_taken_again_by_the_same_long_run(
    engine: Engine, session: Session, settings: Settings
) -> None:
    # A run's claims are stamped with moving time, but what is due is judged at the
    # run's start: a retry or a held notice put back 30 s ahead is not re-sent by a
    # run that happens to last longer than 30 s (it would hammer a refusing provider).
    from casework.notify.dispatch import claim_batch

    open_request(session, settings)
    with engine.begin() as conn:
        conn.execute(update(Notice).values(not_before=OPEN + dt.timedelta(seconds=30)))
    later = OPEN + dt.timedelta(minutes=5)
    assert claim_batch(engine, OPEN, later, lease_of(settings), "a:1", 1) == []
    assert claim_batch(engine, later, later, lease_of(settings), "a:1", 1) != []
