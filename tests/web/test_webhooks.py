"""Delivery receipts through the app: signed callbacks update notices, forged ones do nothing.

Each test sends a family's ``request_acknowledged`` notices through the real SDKs to
the loopback fakes (so the notices carry real provider ids, and the Twilio callback
URL is the one the fake was given), then posts receipts to the FastAPI app the way
the providers do: Twilio signs the public callback URL and form with the auth token
(``RequestValidator``), SendGrid signs ``timestamp + raw body`` with its P-256 key.
The app's clock is pinned; SendGrid timestamps are checked against it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlmodel import Session, col
from twilio.request_validator import RequestValidator

from casework.config import Settings, load_settings
from casework.db import make_engine, session_scope
from casework.models import DeliveryEvent, Notice, WebhookBatch
from casework.notify.dispatch import dispatch
from casework.notify.receipts import apply_stored_receipts
from casework.web.app import create_app
from tests.conftest import at
from tests.factories import create_case
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake

PUBLIC_URL = "https://casework.example.org"
OPEN = at("2026-11-09", "10:00")
RECEIPTS_AT = OPEN + dt.timedelta(minutes=3)
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SENDGRID_PATH = "/webhooks/sendgrid/events"


def _key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


SENDGRID_KEY, SENDGRID_PUBLIC = _key()
OTHER_KEY, _ = _key()


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Hooks:
    engine: Engine
    settings: Settings
    client: TestClient
    clock: Clock
    twilio: TwilioFake
    sendgrid: SendGridFake
    sms: Notice
    email: Notice

    # -- posting receipts ---------------------------------------------------------------

    def callback_url(self) -> str:
        (form,) = self.twilio.messages.values()
        url: str = form["StatusCallback"]
        assert url == f"{PUBLIC_URL}/webhooks/twilio/status?notice={self.sms.public_id}"
        return url

    def twilio_form(self, status: str, **extra: str) -> dict[str, str]:
        sid = self.sms.provider_message_id or ""
        form = {
            "AccountSid": self.twilio.account_sid,
            "ApiVersion": "2010-04-01",
            "From": "+447700900000",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": self.sms.to_address,
        }
        form.update(extra)
        return form

    def post_twilio(
        self,
        form: dict[str, str],
        *,
        sign_url: str | None = None,
        sign_form: dict[str, str] | None = None,
        token: str | None = None,
        signature: str | None = "compute",
    ) -> Any:
        url = self.callback_url()
        if signature == "compute":
            validator = RequestValidator(token or self.settings.twilio_auth_token)
            signature = validator.compute_signature(sign_url or url, sign_form or form)
        headers = {"X-Twilio-Signature": signature} if signature is not None else {}
        return self.client.post(url.removeprefix(PUBLIC_URL), data=form, headers=headers)

    def sendgrid_event(self, event: str, event_id: str, **extra: Any) -> dict[str, Any]:
        body = {
            "email": self.email.to_address,
            "timestamp": int(self.clock.now.timestamp()),
            "event": event,
            "sg_event_id": event_id,
            "sg_message_id": f"{self.email.provider_message_id}.filterdrecv-5645d9c87f-2p4vq-1-0",
            "smtp-id": f"<{self.email.provider_message_id}@ismtpd0001p1lon1.sendgrid.net>",
            "notice_id": self.email.public_id,  # our custom_args come back in every event
        }
        body.update(extra)
        return body

    def post_sendgrid(
        self,
        events: list[dict[str, Any]],
        *,
        timestamp: int | None = None,
        key: ec.EllipticCurvePrivateKey = SENDGRID_KEY,
        sent_body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        raw = json.dumps(events, separators=(",", ":"))
        ts = str(timestamp if timestamp is not None else int(self.clock.now.timestamp()))
        signature = base64.b64encode(key.sign((ts + raw).encode(), ec.ECDSA(hashes.SHA256())))
        signed = {SIGNATURE: signature.decode(), TIMESTAMP: ts}
        return self.client.post(
            SENDGRID_PATH,
            content=(sent_body if sent_body is not None else raw).encode(),
            headers={
                "Content-Type": "application/json",
                **(signed if headers is None else headers),
            },
        )

    def applied(self, response: Any) -> list[str]:
        """The worker's side: apply what the webhook stored; this request's outcomes.

        The route only verifies and stores (202); the notice changes when the worker
        applies the stored batch, as the scheduler's receipts job does.
        """
        assert response.status_code == 202, response.text
        apply_stored_receipts(self.engine, self.settings, self.clock.now)
        with self.engine.connect() as conn:
            outcome: list[str] = conn.execute(
                select(WebhookBatch.outcome).where(col(WebhookBatch.id) == response.json()["batch"])
            ).scalar_one()
        return outcome

    # -- reading state --------------------------------------------------------------------

    def notice(self, which: Notice) -> Notice:
        with session_scope(self.engine) as s:
            found = s.get(Notice, which.id)
            assert found is not None
            return found

    def receipts(self, which: Notice) -> list[tuple[str, str]]:
        with session_scope(self.engine) as s:
            return [
                (e.source, e.status)
                for e in s.execute(
                    select(DeliveryEvent)
                    .where(col(DeliveryEvent.notice_id) == which.id)
                    .where(col(DeliveryEvent.source) != "attempt")
                    .order_by(col(DeliveryEvent.id))
                ).scalars()
            ]

    def escalations(self) -> list[Notice]:
        with session_scope(self.engine) as s:
            return list(
                s.execute(
                    select(Notice).where(col(Notice.template) == "escalation_delivery_failed")
                ).scalars()
            )

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a forged request could change."""
        with session_scope(self.engine) as s:
            notices = s.execute(
                select(Notice.id, Notice.status, Notice.delivered_at, Notice.last_error).order_by(
                    col(Notice.id)
                )
            ).all()
            events = s.execute(select(func.count()).select_from(DeliveryEvent)).scalar_one()
            # Stored but not yet applied: a forged request must not even be kept.
            batches = s.execute(
                select(func.count()).where(col(WebhookBatch.applied_at).is_(None))
            ).scalar_one()
        return tuple(notices), events, batches


@pytest.fixture
def hooks(engine: Engine, session: Session) -> Iterator[Hooks]:
    with SendGridFake() as sendgrid, TwilioFake() as twilio:
        settings = load_settings(
            environment="test",
            public_url=PUBLIC_URL,
            sendgrid_api_key=sendgrid.api_key,
            sendgrid_host=sendgrid.url,
            sendgrid_webhook_public_key=SENDGRID_PUBLIC,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from="+447700900000",
            twilio_base_url=twilio.url,
            provider_timeout_seconds=5,
        )
        create_case(session, settings, now=OPEN)
        assert dispatch(engine, OPEN, settings).sent == 2
        with session_scope(engine) as s:
            rows = {n.channel: n for n in s.execute(select(Notice)).scalars()}
        assert rows["sms"].provider == "twilio" and rows["email"].provider == "sendgrid"
        clock = Clock(RECEIPTS_AT)
        app = create_app(settings, engine)
        app.state.clock = clock
        with TestClient(app) as client:
            yield Hooks(
                engine, settings, client, clock, twilio, sendgrid, rows["sms"], rows["email"]
            )


# --- Twilio status callbacks ----------------------------------------------------------------------


def test_a_signed_twilio_callback_marks_the_sms_delivered(hooks: Hooks) -> None:
    sent = hooks.post_twilio(hooks.twilio_form("sent"))
    assert hooks.applied(sent) == ["recorded"]
    assert hooks.notice(hooks.sms).status == "sent"

    delivered = hooks.post_twilio(hooks.twilio_form("delivered"))
    assert hooks.applied(delivered) == ["delivered"]
    sms = hooks.notice(hooks.sms)
    assert (sms.status, sms.delivered_at) == ("delivered", RECEIPTS_AT)
    assert hooks.receipts(hooks.sms) == [("twilio", "sent"), ("twilio", "delivered")]
    assert hooks.notice(hooks.email).status == "sent"  # only the SMS's notice


def test_a_repeated_callback_is_recorded_once(hooks: Hooks) -> None:
    hooks.applied(hooks.post_twilio(hooks.twilio_form("delivered")))
    before = hooks.snapshot()
    again = hooks.post_twilio(hooks.twilio_form("delivered"))
    assert hooks.applied(again) == ["duplicate"]
    assert hooks.snapshot() == before
    assert hooks.receipts(hooks.sms) == [("twilio", "delivered")]


def test_a_late_sent_does_not_undo_delivered(hooks: Hooks) -> None:
    hooks.applied(hooks.post_twilio(hooks.twilio_form("delivered")))
    hooks.clock.now = RECEIPTS_AT + dt.timedelta(minutes=2)
    late = hooks.post_twilio(hooks.twilio_form("sent"))
    assert hooks.applied(late) == ["kept-terminal"]
    sms = hooks.notice(hooks.sms)
    assert (sms.status, sms.delivered_at) == ("delivered", RECEIPTS_AT)
    assert hooks.receipts(hooks.sms) == [("twilio", "delivered"), ("twilio", "sent")]


def test_an_undelivered_sms_fails_and_escalates_to_the_adviser(hooks: Hooks) -> None:
    form = hooks.twilio_form("undelivered", ErrorCode="30006")
    response = hooks.post_twilio(form)
    assert hooks.applied(response) == ["failed-escalated"]
    sms = hooks.notice(hooks.sms)
    assert (sms.status, sms.delivered_at) == ("failed", None)
    assert sms.last_error == "not_a_mobile: twilio: undelivered error 30006"

    (escalation,) = hooks.escalations()
    assert (escalation.recipient_role, escalation.channel, escalation.status) == (
        "adviser",
        "email",
        "queued",
    )
    assert escalation.to_address == hooks.settings.team.adviser_email
    assert escalation.not_before == RECEIPTS_AT
    assert escalation.context["failed_channel"] == "sms"
    assert escalation.context["failed_recipient"] == "family"
    assert "undelivered" in escalation.context["reason"]

    # Twilio retries the callback: nothing more happens, and no second escalation.
    again = hooks.post_twilio(form)
    assert hooks.applied(again) == ["duplicate"]
    assert len(hooks.escalations()) == 1
    # A late 'delivered' cannot resurrect it either.
    assert hooks.applied(hooks.post_twilio(hooks.twilio_form("delivered"))) == ["kept-terminal"]
    assert hooks.notice(hooks.sms).status == "failed"


@pytest.mark.parametrize(
    "forgery",
    [
        "unsigned",
        "empty-signature",
        "wrong-token",
        "internal-url",
        "http-not-https",
        "other-notice-url",
        "status-changed-after-signing",
        "extra-field-after-signing",
    ],
)
def test_a_forged_twilio_callback_is_refused_and_changes_nothing(
    hooks: Hooks, forgery: str
) -> None:
    url = hooks.callback_url()
    genuine = hooks.twilio_form("undelivered", ErrorCode="30006")
    before = hooks.snapshot()
    kwargs: dict[str, Any] = {
        "unsigned": {"signature": None},
        "empty-signature": {"signature": ""},
        "wrong-token": {"token": "someone-elses-auth-token"},
        "internal-url": {"sign_url": url.replace(PUBLIC_URL, "http://testserver")},
        "http-not-https": {"sign_url": url.replace("https://", "http://")},
        "other-notice-url": {"sign_url": url.replace(hooks.sms.public_id, hooks.email.public_id)},
        "status-changed-after-signing": {"sign_form": hooks.twilio_form("sent")},
        "extra-field-after-signing": {"sign_form": hooks.twilio_form("undelivered")},
    }[forgery]
    response = hooks.post_twilio(genuine, **kwargs)
    assert response.status_code == 403
    assert hooks.snapshot() == before
    assert hooks.escalations() == []


def test_without_a_twilio_auth_token_every_callback_is_refused(
    hooks: Hooks, engine: Engine
) -> None:
    settings = hooks.settings.model_copy(update={"twilio_auth_token": ""})
    app = create_app(settings, engine)
    app.state.clock = hooks.clock
    form = hooks.twilio_form("delivered")
    url = hooks.callback_url()
    signature = RequestValidator("").compute_signature(url, form)
    with TestClient(app) as client:
        response = client.post(
            url.removeprefix(PUBLIC_URL), data=form, headers={"X-Twilio-Signature": signature}
        )
    assert response.status_code == 403
    assert hooks.notice(hooks.sms).status == "sent"


# --- SendGrid Event Webhook ---------------------------------------------------------------------


def test_signed_sendgrid_events_mark_the_email_delivered(hooks: Hooks) -> None:
    response = hooks.post_sendgrid(
        [
            hooks.sendgrid_event("processed", "evt-processed-1"),
            hooks.sendgrid_event("delivered", "evt-delivered-1", response="250 OK"),
        ]
    )
    assert hooks.applied(response) == ["recorded", "delivered"]
    email = hooks.notice(hooks.email)
    assert (email.status, email.delivered_at) == ("delivered", RECEIPTS_AT)
    assert hooks.receipts(hooks.email) == [("sendgrid", "processed"), ("sendgrid", "delivered")]

    # SendGrid retries a batch it thinks failed: each event is applied once.
    again = hooks.post_sendgrid([hooks.sendgrid_event("delivered", "evt-delivered-1")])
    assert hooks.applied(again) == ["duplicate"]
    # Opens arrive after delivery and do not change it.
    opened = hooks.post_sendgrid([hooks.sendgrid_event("open", "evt-open-1")])
    assert hooks.applied(opened) == ["kept-terminal"]
    assert hooks.notice(hooks.email).status == "delivered"


def test_an_event_found_by_message_id_alone_is_applied(hooks: Hooks) -> None:
    event = hooks.sendgrid_event("delivered", "evt-2")
    del event["notice_id"]
    assert hooks.applied(hooks.post_sendgrid([event])) == ["delivered"]
    assert hooks.notice(hooks.email).status == "delivered"


def test_a_bounce_fails_the_email_and_escalates_to_the_adviser(hooks: Hooks) -> None:
    reason = "550 5.1.1 The email account that you tried to reach does not exist"
    response = hooks.post_sendgrid(
        [hooks.sendgrid_event("bounce", "evt-bounce-1", reason=reason, type="bounce")]
    )
    assert hooks.applied(response) == ["failed-escalated"]
    email = hooks.notice(hooks.email)
    assert email.status == "failed"
    assert email.last_error == f"bounced: sendgrid: bounce {reason}"
    (escalation,) = hooks.escalations()
    assert (escalation.recipient_role, escalation.channel) == ("adviser", "email")
    assert escalation.context["failed_channel"] == "email"
    assert reason in escalation.context["reason"]


def test_an_event_for_an_unknown_message_is_acknowledged_and_ignored(hooks: Hooks) -> None:
    before = hooks.snapshot()
    event = hooks.sendgrid_event("delivered", "evt-x", notice_id="nt_unknown")
    event["sg_message_id"] = "unknownmessageid.filter-1"
    assert hooks.applied(hooks.post_sendgrid([event])) == ["unknown"]
    assert hooks.snapshot() == before


@pytest.mark.parametrize("age", [-301, 301, 3600])
def test_a_sendgrid_request_outside_the_replay_window_is_refused(hooks: Hooks, age: int) -> None:
    before = hooks.snapshot()
    stamp = int(hooks.clock.now.timestamp()) - age
    response = hooks.post_sendgrid([hooks.sendgrid_event("bounce", "evt-old")], timestamp=stamp)
    assert response.status_code == 403
    assert hooks.snapshot() == before


def test_a_sendgrid_request_just_inside_the_replay_window_is_accepted(hooks: Hooks) -> None:
    stamp = int(hooks.clock.now.timestamp()) - 299
    response = hooks.post_sendgrid([hooks.sendgrid_event("delivered", "evt-299")], timestamp=stamp)
    assert response.status_code == 202


def test_a_captured_sendgrid_request_replayed_later_is_refused(hooks: Hooks) -> None:
    events = [hooks.sendgrid_event("processed", "evt-1")]
    raw = json.dumps(events, separators=(",", ":"))
    ts = str(int(hooks.clock.now.timestamp()))
    signature = base64.b64encode(
        SENDGRID_KEY.sign((ts + raw).encode(), ec.ECDSA(hashes.SHA256()))
    ).decode()
    headers = {SIGNATURE: signature, TIMESTAMP: ts, "Content-Type": "application/json"}
    assert hooks.client.post(SENDGRID_PATH, content=raw, headers=headers).status_code == 202

    hooks.clock.now += dt.timedelta(minutes=10)
    before = hooks.snapshot()
    assert hooks.client.post(SENDGRID_PATH, content=raw, headers=headers).status_code == 403
    assert hooks.snapshot() == before


@pytest.mark.parametrize("forgery", ["tampered-body", "reserialised", "other-key", "unsigned"])
def test_a_forged_sendgrid_request_is_refused_and_changes_nothing(
    hooks: Hooks, forgery: str
) -> None:
    events = [hooks.sendgrid_event("delivered", "evt-1")]
    before = hooks.snapshot()
    if forgery == "tampered-body":
        bounced = [hooks.sendgrid_event("bounce", "evt-1")]
        response = hooks.post_sendgrid(events, sent_body=json.dumps(bounced))
    elif forgery == "reserialised":  # same JSON, other bytes: signatures cover bytes
        response = hooks.post_sendgrid(events, sent_body=json.dumps(events, indent=1))
    elif forgery == "other-key":
        response = hooks.post_sendgrid(events, key=OTHER_KEY)
    else:
        response = hooks.post_sendgrid(events, headers={})
    assert response.status_code == 403
    assert hooks.snapshot() == before
    assert hooks.escalations() == []


# --- Health -----------------------------------------------------------------------------------


def test_health_reports_the_database_and_the_scheduler(engine: Engine, settings: Settings) -> None:
    app = create_app(settings, engine)
    with TestClient(app) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "scheduler": {"running": False},
    }


def test_health_shows_the_embedded_scheduler_running(engine: Engine, settings: Settings) -> None:
    app = create_app(settings, engine, with_scheduler=True)
    with TestClient(app) as client:
        body = client.get("/health").json()
    assert body["database"] == "ok"
    assert body["scheduler"]["running"] is True
    assert body["scheduler"]["mode"] == "in-process"
    assert app.state.scheduler_status["running"] is False  # stopped with the app


def test_the_app_stops_only_once_its_scheduler_jobs_have_finished(
    engine: Engine, settings: Settings
) -> None:
    """A job running when the app stops ends its transaction before the app has
    stopped: whatever comes next (the process exiting, a test dropping its schema)
    never pulls the database from under a sweep's batch."""
    started, finished = threading.Event(), threading.Event()

    def slow_sweep(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM deadlines" in statement and not started.is_set():
            started.set()
            time.sleep(0.5)

    def done(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if started.is_set() and "FROM deadlines" in statement:
            finished.set()

    event.listen(engine, "before_cursor_execute", slow_sweep)
    event.listen(engine, "after_cursor_execute", done)
    try:
        app = create_app(settings, engine, with_scheduler=True)
        with TestClient(app):
            assert started.wait(10), "the sweep did not start"
        assert finished.is_set(), "the app stopped while its sweep was still running"
    finally:
        event.remove(engine, "before_cursor_execute", slow_sweep)
        event.remove(engine, "after_cursor_execute", done)


def test_health_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    unreachable = make_engine("postgresql+psycopg://casework@127.0.0.1:1/casework")
    try:
        with TestClient(create_app(settings, unreachable)) as client:
            response = client.get("/health")
    finally:
        unreachable.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"].startswith("unreachable: ")


# --- Stored now, applied by the worker -------------------------------------------------------


def test_receipts_are_applied_by_the_worker_in_arrival_order_and_only_once(hooks: Hooks) -> None:
    responses = [
        hooks.post_sendgrid([hooks.sendgrid_event("processed", "evt-p")]),
        hooks.post_twilio(hooks.twilio_form("sent")),
        hooks.post_sendgrid([hooks.sendgrid_event("delivered", "evt-d")]),
        hooks.post_twilio(hooks.twilio_form("delivered")),
    ]
    assert [r.status_code for r in responses] == [202] * 4
    # Nothing is applied on the request path.
    assert hooks.receipts(hooks.email) == [] and hooks.receipts(hooks.sms) == []
    assert hooks.notice(hooks.sms).status == "sent"

    first = apply_stored_receipts(hooks.engine, hooks.settings, hooks.clock.now, max_batches=1)
    assert first.batches == 1
    rest = apply_stored_receipts(hooks.engine, hooks.settings, hooks.clock.now)
    assert (rest.batches, rest.outcomes) == (3, {"recorded": 1, "delivered": 2})
    assert hooks.receipts(hooks.email) == [("sendgrid", "processed"), ("sendgrid", "delivered")]
    assert hooks.receipts(hooks.sms) == [("twilio", "sent"), ("twilio", "delivered")]
    assert hooks.notice(hooks.email).status == "delivered"

    # Applying again finds nothing left; re-posting the same events changes nothing.
    assert apply_stored_receipts(hooks.engine, hooks.settings, hooks.clock.now).batches == 0
    again = hooks.post_sendgrid([hooks.sendgrid_event("delivered", "evt-d")])
    assert hooks.applied(again) == ["duplicate"]


def test_a_crash_between_failing_a_notice_and_its_escalation_keeps_the_batch(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casework.notify import receipts as receipts_module

    class WorkerDied(BaseException):
        pass

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise WorkerDied()

    reason = "550 5.1.1 The email account that you tried to reach does not exist"
    response = hooks.post_sendgrid([hooks.sendgrid_event("bounce", "evt-b", reason=reason)])
    real_insert = receipts_module.insert_notices
    monkeypatch.setattr(receipts_module, "insert_notices", crash)
    with pytest.raises(WorkerDied):
        apply_stored_receipts(hooks.engine, hooks.settings, hooks.clock.now)
    monkeypatch.setattr(receipts_module, "insert_notices", real_insert)
    # All or nothing: the notice is not failed without its escalation.
    assert hooks.notice(hooks.email).status == "sent"
    assert hooks.escalations() == []

    assert hooks.applied(response) == ["failed-escalated"]
    assert hooks.notice(hooks.email).status == "failed"
    (escalation,) = hooks.escalations()
    assert reason in escalation.context["reason"]


@pytest.mark.parametrize("source", ["twilio", "sendgrid"])
@pytest.mark.parametrize("how", ["declared", "chunked"])
def test_a_body_over_the_configured_size_is_refused_before_it_is_read(
    hooks: Hooks, source: str, how: str
) -> None:
    before = hooks.snapshot()
    limit = (
        hooks.settings.webhook_max_bytes_twilio
        if source == "twilio"
        else hooks.settings.webhook_max_bytes_sendgrid
    )
    assert limit == (1_000_000 if source == "twilio" else 10_000_000)  # the documented defaults
    path = "/webhooks/twilio/status?notice=x" if source == "twilio" else SENDGRID_PATH
    chunk = b"a" * 65536
    sent = {"bytes": 0}

    def stream() -> Iterator[bytes]:
        while sent["bytes"] <= limit:
            sent["bytes"] += len(chunk)
            yield chunk

    body: Any = b"a" * (limit + 1) if how == "declared" else stream()
    response = hooks.client.post(path, content=body)
    assert response.status_code == 413
    assert hooks.snapshot() == before


def test_health_answers_while_a_large_signed_batch_is_being_accepted(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    import httpx

    from casework.web import webhooks as webhooks_module

    events = [hooks.sendgrid_event("processed", f"evt-{i}") for i in range(2000)]
    raw = json.dumps(events, separators=(",", ":"))
    ts = str(int(hooks.clock.now.timestamp()))
    signature = base64.b64encode(SENDGRID_KEY.sign((ts + raw).encode(), ec.ECDSA(hashes.SHA256())))
    headers = {SIGNATURE: signature.decode(), TIMESTAMP: ts, "Content-Type": "application/json"}

    # The batch's insert is held until /health has answered. If storing ran on the
    # event loop, /health could not answer before the insert finished (the hold
    # would time out first) and the ordering below would be reversed.
    storing, release = threading.Event(), threading.Event()
    real_store = webhooks_module.store_batch

    def held_store(*args: Any) -> int:
        storing.set()
        release.wait(timeout=10)
        return real_store(*args)

    monkeypatch.setattr(webhooks_module, "store_batch", held_store)

    async def scenario() -> tuple[int, bool, int]:
        transport = httpx.ASGITransport(app=hooks.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            upload = asyncio.create_task(
                client.post(SENDGRID_PATH, content=raw.encode(), headers=headers)
            )
            for _ in range(1000):  # until the batch request is inside its insert
                if storing.is_set():
                    break
                await asyncio.sleep(0.01)
            health = await client.get("/health")
            upload_still_in_flight = not upload.done()
            release.set()
            accepted = await upload
        return health.status_code, upload_still_in_flight, accepted.status_code

    health_status, upload_in_flight, upload_status = asyncio.run(scenario())
    assert storing.is_set()
    assert health_status == 200
    assert upload_in_flight, "/health waited for the batch: blocking work on the event loop"
    assert upload_status == 202
    applied = apply_stored_receipts(hooks.engine, hooks.settings, hooks.clock.now)
    assert (applied.batches, applied.events) == (1, 2000)


def test_the_worker_and_tick_apply_what_the_webhooks_stored(hooks: Hooks) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from casework.scheduler import configure, run_once

    # `casework worker` and the embedded scheduler run a receipts job beside dispatch.
    scheduler = configure(
        BackgroundScheduler(timezone="UTC"), hooks.engine, hooks.settings, {"running": False}
    )
    assert {job.id for job in scheduler.get_jobs()} >= {"receipts", "dispatch", "sweep"}

    assert hooks.post_twilio(hooks.twilio_form("delivered")).status_code == 202
    assert hooks.notice(hooks.sms).status == "sent"
    result = run_once(hooks.engine, hooks.settings, hooks.clock.now)  # what `tick` runs
    assert result["receipts"] == {"batches": 1, "events": 1, "outcomes": {"delivered": 1}}
    assert hooks.notice(hooks.sms).status == "delivered"
