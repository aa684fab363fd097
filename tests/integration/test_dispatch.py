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
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from sqlmodel import Session, col

from casework import cases
from casework.config import Settings, load_settings
from casework.db import session_scope
from casework.models import DeliveryEvent, Notice
from casework.notify.base import OutgoingMessage, SendResult
from casework.notify.dispatch import CLAIM_TIMEOUT, MAX_ATTEMPTS, dispatch
from casework.notify.outbox import OutboxChannel
from casework.notify.render import render
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
def sendgrid_fake() -> Iterator[SendGridFake]:
    with SendGridFake() as fake:
        yield fake


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake


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
    subject, body = render(n.template, n.channel, dict(n.context))
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
    assert (last.failed, last.escalated, last.retried) == (1, 1, 0)
    n = notice(engine, "sms")
    assert (n.status, n.attempts, n.escalated) == ("failed", MAX_ATTEMPTS, True)
    assert n.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts: ")
    assert [s for _, s, _ in attempts_of(engine, n.id)] == ["error"] * MAX_ATTEMPTS
    assert len(twilio_fake.requests) == MAX_ATTEMPTS

    (escalation,) = escalations(engine)
    assert (escalation.recipient_role, escalation.channel, escalation.status) == (
        "adviser",
        "email",
        "queued",
    )
    assert escalation.context["failed_channel"] == "sms"
    later = dispatch(engine, now + dt.timedelta(hours=2), keyed)
    assert later.sent == 1 and len(twilio_fake.requests) == MAX_ATTEMPTS  # no more retries
    assert (
        f"gave up after {MAX_ATTEMPTS} attempts" in sendgrid_fake.last.body["content"][0]["value"]
    )


# --- Permanent failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "status", "code", "reason"),
    [
        ("sms", 400, 21211, "Twilio says the phone number is not valid (21211)"),
        ("email", 400, None, "SendGrid refused the email (400): Bad Request"),
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
    assert n.last_error == reason
    ((source, state, _),) = attempts_of(engine, n.id)
    assert (source, state) == ("attempt", "error")

    (escalation,) = escalations(engine)
    assert escalation.recipient_role == "adviser"
    assert (escalation.channel, escalation.to_address) == ("email", keyed.team.adviser_email)
    assert escalation.status == "queued" and escalation.not_before == OPEN
    assert escalation.case_id == n.case_id
    assert {k: escalation.context[k] for k in ("failed_channel", "failed_recipient")} == {
        "failed_channel": channel,
        "failed_recipient": "family",
    }
    assert escalation.context["reason"] == reason

    requests_before = len(twilio_fake.requests) + len(sendgrid_fake.requests)
    later = dispatch(engine, OPEN + dt.timedelta(hours=1), keyed)
    assert later.claimed == 1 and later.sent == 1  # the escalation only
    assert len(twilio_fake.requests) + len(sendgrid_fake.requests) == requests_before + 1
    sent = sendgrid_fake.last.body
    assert sent["personalizations"] == [{"to": [{"email": keyed.team.adviser_email}]}]
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
    with pytest.raises(WorkerDied):
        dispatch(engine, OPEN, settings, channels={"sms": Dies(), "email": Dies()}, me="a:1")
    for channel in ("sms", "email"):
        n = notice(engine, channel)
        assert (n.status, n.claimed_by, n.attempts) == ("sending", "a:1", 1)
        # Claimed at OPEN (renewed by the time the send took, just before it).
        assert OPEN <= n.claimed_at < OPEN + dt.timedelta(seconds=5)

    still_fresh = OPEN + CLAIM_TIMEOUT - dt.timedelta(seconds=1)
    assert dispatch(engine, still_fresh, settings, me="b:2").claimed == 0
    reclaim_at = OPEN + CLAIM_TIMEOUT + dt.timedelta(seconds=10)
    result = dispatch(engine, reclaim_at, settings, me="b:2")
    assert (result.claimed, result.sent, result.resent_after_reclaim) == (2, 2, 0)
    for channel in ("sms", "email"):
        n = notice(engine, channel)
        assert (n.status, n.claimed_by, n.attempts, n.sent_at) == ("sent", "b:2", 2, reclaim_at)
        assert [s for _, s, _ in attempts_of(engine, n.id)] == ["sent"]


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
    # Worker A claims both notices, then stalls on its first send (a provider hanging,
    # a paused VM) past CLAIM_TIMEOUT. Worker B reclaims both and sends them. When A
    # wakes, its first send has already happened (the one unavoidable duplicate, which
    # A counts), but it must not go on to send the second notice, which is B's now.
    open_request(session, settings)
    b_channel = Recording()

    def worker_b_takes_over() -> None:
        late = OPEN + CLAIM_TIMEOUT + dt.timedelta(seconds=10)
        taken = dispatch(engine, late, settings, channels={"sms": b_channel, "email": b_channel})
        assert taken.sent == 2

    a_channel = Recording(during_first_send=worker_b_takes_over)
    a = dispatch(engine, OPEN, settings, channels={"sms": a_channel, "email": a_channel}, me="a:1")

    assert a.resent_after_reclaim == 1  # the in-flight send is counted as a duplicate
    assert a.taken_over == 1  # and the second notice was left to B
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
