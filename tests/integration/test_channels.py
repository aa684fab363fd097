"""The SendGrid and Twilio adapters, through the real SDKs, against loopback fakes.

Nothing in the SDKs is patched: each test drives real HTTP over 127.0.0.1 to a fake
that checks and answers like the provider, so what is asserted here is how the adapter
behaves with the SDK's real request building, exception classes and timeouts.
"""

from __future__ import annotations

import pickle
import threading
import time
from dataclasses import replace

import pytest
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from casework.notify.base import (
    Channel,
    DeliveryError,
    FailureKind,
    OutgoingMessage,
    SendResult,
    parse_retry_after,
)
from casework.notify.sendgrid_email import SendGridEmailChannel
from casework.notify.twilio_sms import TwilioSmsChannel
from tests.fakes import closed_port_url
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake, decode_basic_auth

PUBLIC_URL = "https://casework.example.org"
SENDER_NUMBER = "+447700900000"
FAMILY_MOBILE = "+447700900123"
SERVICE_SID = "MG" + "ab" * 16
SLOW = 2.0  # seconds the fake holds an answer back
SHORT_TIMEOUT = 0.3  # seconds the adapter waits: well under SLOW


def email(notice_id: str = "nt_7Qk2xZ", to: str = "parent@example.org") -> OutgoingMessage:
    return OutgoingMessage(
        notice_id=notice_id,
        channel="email",
        to=to,
        subject="Mediation: your meeting is booked",
        body="Your mediation meeting is on Tuesday 3 March at 10:00.",
    )


def sms(notice_id: str = "nt_9Lm4pQ", to: str = FAMILY_MOBILE) -> OutgoingMessage:
    return OutgoingMessage(
        notice_id=notice_id,
        channel="sms",
        to=to,
        body="Reminder: mediation meeting Tue 3 Mar 10:00. Reply to your adviser with questions.",
    )


@pytest.fixture
def mailer(sendgrid_fake: SendGridFake) -> SendGridEmailChannel:
    return SendGridEmailChannel(
        api_key=sendgrid_fake.api_key,
        host=sendgrid_fake.url,
        from_email="noreply@casework.example.org",
        timeout=5,
    )


@pytest.fixture
def texter(twilio_fake: TwilioFake) -> TwilioSmsChannel:
    return TwilioSmsChannel(
        account_sid=twilio_fake.account_sid,
        auth_token=twilio_fake.auth_token,
        from_number=SENDER_NUMBER,
        base_url=twilio_fake.url,
        status_callback_base=PUBLIC_URL,
        timeout=5,
    )


def send_failing(channel: Channel, message: OutgoingMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        channel.send(message)
    return caught.value


# --- SendGrid -----------------------------------------------------------------------------


class TestSendGridEmail:
    def test_a_sent_email_carries_the_notice_id_and_returns_the_message_id(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        result = mailer.send(email(notice_id="nt_7Qk2xZ"))

        assert isinstance(mailer, Channel)
        assert result.provider == "sendgrid"
        assert result.provider_message_id in sendgrid_fake.messages
        seen = sendgrid_fake.last
        assert (seen.method, seen.path) == ("POST", "/v3/mail/send")
        assert seen.header("Authorization") == f"Bearer {sendgrid_fake.api_key}"
        assert seen.header("Content-Type") == "application/json"
        assert seen.body == {
            "from": {"email": "noreply@casework.example.org"},
            "subject": "Mediation: your meeting is booked",
            "personalizations": [{"to": [{"email": "parent@example.org"}]}],
            "content": [
                {
                    "type": "text/plain",
                    "value": "Your mediation meeting is on Tuesday 3 March at 10:00.",
                }
            ],
            "custom_args": {"notice_id": "nt_7Qk2xZ"},
        }
        assert sendgrid_fake.accepted == 1

    def test_a_trailing_slash_on_the_host_is_harmless(self, sendgrid_fake: SendGridFake) -> None:
        channel = SendGridEmailChannel(
            sendgrid_fake.api_key, sendgrid_fake.url + "/", "noreply@example.org", 5
        )
        channel.send(email())
        assert sendgrid_fake.last.path == "/v3/mail/send"

    def test_a_server_error_is_retried(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        sendgrid_fake.fail_next(500)
        error = send_failing(mailer, email())
        assert (error.kind, error.code) == ("transient", "500")
        assert "SendGrid had a temporary problem (500)" in str(error)

    def test_a_bad_gateway_without_its_own_exception_class_is_retried(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        # python_http_client has no class for 502 and raises its base HTTPError.
        sendgrid_fake.fail_next(
            502, body="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"}
        )
        error = send_failing(mailer, email())
        assert (error.kind, error.code) == ("transient", "502")

    def test_rate_limiting_is_retried_after_the_retry_after_header(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        sendgrid_fake.fail_next(429, headers={"Retry-After": "7"})
        error = send_failing(mailer, email())
        assert (error.kind, error.retry_after, error.code) == ("transient", 7.0, "429")
        assert "will retry in 7 s" in str(error)

    def test_rate_limiting_without_retry_after_waits_for_the_documented_reset(
        self, sendgrid_fake: SendGridFake
    ) -> None:
        now = 1_767_261_600.0
        channel = SendGridEmailChannel(
            sendgrid_fake.api_key, sendgrid_fake.url, "noreply@example.org", 5, clock=lambda: now
        )
        sendgrid_fake.fail_next(429, headers={"X-RateLimit-Reset": str(int(now) + 30)})
        error = send_failing(channel, email())
        assert (error.kind, error.retry_after) == ("transient", 30.0)

    def test_a_rejected_email_is_not_retried_and_says_why(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        error = send_failing(mailer, email(to="parent@localhost"))  # the fake's own check
        assert (error.kind, error.code) == ("permanent", "400")
        assert str(error).startswith("SendGrid refused the email (400): Does not contain a valid")
        assert "personalizations.0.to.0.email" in str(error)
        assert sendgrid_fake.accepted == 0

    def test_a_scripted_bad_request_is_not_retried(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        sendgrid_fake.fail_next(400, body={"errors": [{"message": "Invalid type.", "field": None}]})
        error = send_failing(mailer, email())
        assert error.permanent
        assert str(error) == "SendGrid refused the email (400): Invalid type."

    def test_a_wrong_api_key_is_reported_as_a_settings_problem(
        self, sendgrid_fake: SendGridFake
    ) -> None:
        channel = SendGridEmailChannel("SG.wrong.key", sendgrid_fake.url, "noreply@example.org", 5)
        error = send_failing(channel, email())
        assert (error.kind, error.code) == ("credential_rejected", "401")
        assert not error.permanent
        assert "until the SendGrid settings are fixed" in str(error)

    def test_an_address_the_sdk_cannot_parse_fails_before_any_request(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        # Mail.get() raises KeyError('email') for this; it must not escape as a crash.
        error = send_failing(mailer, email(to="not an address"))
        assert (error.kind, error.code) == ("permanent", "invalid_address")
        assert sendgrid_fake.requests == []

    def test_a_slow_answer_beyond_the_timeout_is_retried(self, sendgrid_fake: SendGridFake) -> None:
        channel = SendGridEmailChannel(
            sendgrid_fake.api_key, sendgrid_fake.url, "noreply@example.org", SHORT_TIMEOUT
        )
        sendgrid_fake.delay_next(SLOW)
        started = time.monotonic()
        error = send_failing(channel, email())
        assert time.monotonic() - started < SLOW
        assert (error.kind, error.code) == ("transient", "timeout")

    def test_sendgrid_being_unreachable_is_retried(self) -> None:
        channel = SendGridEmailChannel("SG.key", closed_port_url(), "noreply@example.org", 5)
        error = send_failing(channel, email())
        assert (error.kind, error.code) == ("transient", "network")
        assert "connection refused" in str(error)

    def test_the_key_never_comes_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.from.environment")
        with pytest.raises(ValueError, match="API key is empty"):
            SendGridEmailChannel("", "https://api.sendgrid.com", "noreply@example.org", 5)

    def test_a_misrouted_or_subjectless_message_fails_without_a_request(
        self, mailer: SendGridEmailChannel, sendgrid_fake: SendGridFake
    ) -> None:
        # Upstream bugs, but the dispatcher only catches DeliveryError: fail the notice.
        for message in (sms(), replace(email(), subject=None), replace(email(), subject="")):
            error = send_failing(mailer, message)
            assert (error.kind, error.code) == ("permanent", "invalid_message")
        assert sendgrid_fake.requests == []


# --- Twilio -------------------------------------------------------------------------------


class TestTwilioSms:
    def test_a_sent_sms_asks_for_status_callbacks_for_its_notice(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        result = texter.send(sms(notice_id="nt_9Lm4pQ"))

        assert isinstance(texter, Channel)
        assert result.provider == "twilio"
        assert result.provider_message_id is not None
        assert result.provider_message_id.startswith("SM")
        assert result.provider_message_id in twilio_fake.messages
        seen = twilio_fake.last
        assert seen.path == f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages.json"
        assert decode_basic_auth(seen.header("Authorization")) == (
            twilio_fake.account_sid,
            twilio_fake.auth_token,
        )
        assert seen.header("Content-Type") == "application/x-www-form-urlencoded"
        assert seen.body == {
            "To": FAMILY_MOBILE,
            "From": SENDER_NUMBER,
            "Body": sms().body,
            "StatusCallback": f"{PUBLIC_URL}/webhooks/twilio/status?notice=nt_9Lm4pQ",
        }

    def test_a_messaging_service_replaces_the_from_number(self, twilio_fake: TwilioFake) -> None:
        channel = TwilioSmsChannel(
            twilio_fake.account_sid,
            twilio_fake.auth_token,
            messaging_service_sid=SERVICE_SID,
            base_url=twilio_fake.url,
            status_callback_base=PUBLIC_URL,
            timeout=5,
        )
        channel.send(sms())
        assert twilio_fake.last.body["MessagingServiceSid"] == SERVICE_SID
        assert "From" not in twilio_fake.last.body

    def test_an_invalid_number_is_not_retried(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        twilio_fake.fail_next(400, code=21211)
        error = send_failing(texter, sms())
        assert (error.kind, error.code) == ("permanent", "21211")
        assert str(error) == "Twilio says the phone number is not valid (21211)"
        assert isinstance(error.__cause__, TwilioRestException)

    def test_a_number_not_in_e164_is_refused_by_twilio_itself(
        self, texter: TwilioSmsChannel
    ) -> None:
        error = send_failing(texter, sms(to="07700 900123"))
        assert (error.kind, error.code) == ("permanent", "21211")

    def test_a_family_that_replied_stop_is_not_retried(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        twilio_fake.reject_to(FAMILY_MOBILE, code=21610)
        error = send_failing(texter, sms())
        assert (error.kind, error.code) == ("opted_out", "21610")
        assert "replied STOP" in str(error)

    def test_another_client_error_is_not_retried(self, twilio_fake: TwilioFake) -> None:
        channel = TwilioSmsChannel(
            twilio_fake.account_sid,
            twilio_fake.auth_token,
            from_number=SENDER_NUMBER,
            base_url=twilio_fake.url,
            timeout=5,
        )
        error = send_failing(
            channel, OutgoingMessage(notice_id="nt_1", channel="sms", to=FAMILY_MOBILE, body="")
        )
        assert (error.kind, error.code) == ("permanent", "21602")
        assert str(error) == "Twilio refused the SMS (400/21602): Message body is required."

    def test_a_server_error_is_retried(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        twilio_fake.fail_next(500)
        error = send_failing(texter, sms())
        assert (error.kind, error.code) == ("transient", "20500")

    def test_rate_limiting_is_retried_after_the_retry_after_header(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        # The SDK's exception has no headers; the adapter's recording client kept them.
        twilio_fake.fail_next(429, headers={"Retry-After": "3"})
        error = send_failing(texter, sms())
        assert (error.kind, error.retry_after, error.code) == ("transient", 3.0, "20429")

    def test_rate_limiting_without_retry_after_has_no_hint(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        twilio_fake.fail_next(429)
        error = send_failing(texter, sms())
        assert (error.kind, error.retry_after) == ("transient", None)

    def test_an_rfc9457_client_error_is_not_retried(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        problem = {
            "type": "https://www.twilio.com/docs/errors/21614",
            "title": "Not a mobile number",
            "status": 400,
            "code": 21614,
            "detail": "'To' number is not a valid mobile number",
        }
        twilio_fake.fail_next(
            400, body=problem, headers={"Content-Type": "application/problem+json"}
        )
        error = send_failing(texter, sms())
        assert isinstance(error.__cause__, TwilioServiceException)
        assert not isinstance(error.__cause__, TwilioRestException)
        assert (error.kind, error.code) == ("permanent", "21614")

    def test_an_rfc9457_server_error_is_retried(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        problem = {
            "type": "https://www.twilio.com/docs/errors/20503",
            "title": "Service Unavailable",
            "status": 503,
            "code": 20503,
        }
        twilio_fake.fail_next(503, body=problem)
        error = send_failing(texter, sms())
        assert isinstance(error.__cause__, TwilioServiceException)
        assert (error.kind, error.code) == ("transient", "20503")
        assert "Service Unavailable" in str(error)

    def test_wrong_credentials_are_reported_as_a_settings_problem(
        self, twilio_fake: TwilioFake
    ) -> None:
        channel = TwilioSmsChannel(
            twilio_fake.account_sid,
            "wrong-token",
            from_number=SENDER_NUMBER,
            base_url=twilio_fake.url,
            timeout=5,
        )
        error = send_failing(channel, sms())
        assert (error.kind, error.code) == ("credential_rejected", "20003")
        assert not error.permanent
        assert "until the Twilio settings are fixed" in str(error)

    def test_a_slow_answer_beyond_the_timeout_is_retried(self, twilio_fake: TwilioFake) -> None:
        channel = TwilioSmsChannel(
            twilio_fake.account_sid,
            twilio_fake.auth_token,
            from_number=SENDER_NUMBER,
            base_url=twilio_fake.url,
            timeout=SHORT_TIMEOUT,
        )
        twilio_fake.delay_next(SLOW)
        started = time.monotonic()
        error = send_failing(channel, sms())
        assert time.monotonic() - started < SLOW
        assert (error.kind, error.code) == ("transient", "timeout")

    def test_twilio_being_unreachable_is_retried(self) -> None:
        channel = TwilioSmsChannel(
            "AC" + "0" * 32,
            "token",
            from_number=SENDER_NUMBER,
            base_url=closed_port_url(),
            timeout=5,
        )
        error = send_failing(channel, sms())
        assert (error.kind, error.code) == ("transient", "network")
        assert "connection refused" in str(error)

    def test_region_and_edge_in_the_environment_do_not_reroute(
        self, twilio_fake: TwilioFake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Left to the SDK, these turn 127.0.0.1 into 127.ie1.0.1 and every send fails.
        monkeypatch.setenv("TWILIO_REGION", "ie1")
        monkeypatch.setenv("TWILIO_EDGE", "dublin")
        channel = TwilioSmsChannel(
            twilio_fake.account_sid,
            twilio_fake.auth_token,
            from_number=SENDER_NUMBER,
            base_url=twilio_fake.url,
            timeout=5,
        )
        channel.send(sms())
        assert twilio_fake.accepted == 1

    def test_credentials_never_come_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", "from-environment")
        with pytest.raises(ValueError, match="SID and auth token"):
            TwilioSmsChannel("", "", from_number=SENDER_NUMBER)

    def test_an_email_is_not_something_it_can_send(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        error = send_failing(texter, email())
        assert (error.kind, error.code) == ("permanent", "invalid_message")
        assert twilio_fake.requests == []

    def test_the_notice_id_is_escaped_in_the_callback_url(self, texter: TwilioSmsChannel) -> None:
        assert texter.status_callback_url("a b&c") == (
            f"{PUBLIC_URL}/webhooks/twilio/status?notice=a%20b%26c"
        )

    def test_concurrent_sends_from_several_threads(
        self, texter: TwilioSmsChannel, twilio_fake: TwilioFake
    ) -> None:
        # The dispatcher may share one channel between worker threads; the recorded
        # Retry-After must belong to the thread that got the 429.
        twilio_fake.fail_next(429, headers={"Retry-After": "5"}, count=5)
        results: list[SendResult | DeliveryError] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            try:
                outcome: SendResult | DeliveryError = texter.send(sms(notice_id=f"nt_{n}"))
            except DeliveryError as error:
                outcome = error
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        errors = [r for r in results if isinstance(r, DeliveryError)]
        assert len(errors) == 5
        assert {(e.kind, e.retry_after) for e in errors} == {("transient", 5.0)}
        assert twilio_fake.accepted == 35
        callbacks = {r.body["StatusCallback"] for r in twilio_fake.requests}
        assert len(callbacks) == 40


# --- the shared interface -----------------------------------------------------------------


class TestDeliveryError:
    def test_it_survives_a_trip_between_processes(self) -> None:
        error = DeliveryError(
            "Twilio is busy",
            kind=FailureKind.transient,
            retry_after=3.0,
            code="20429",
            reason="rejected",
        )
        copy = pickle.loads(pickle.dumps(error))
        assert (str(copy), copy.kind, copy.retry_after, copy.code, copy.reason) == (
            "Twilio is busy",
            FailureKind.transient,
            3.0,
            "20429",
            "rejected",
        )

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            (None, None),
            ("", None),
            ("7", 7.0),
            ("1.5", 1.5),
            ("-3", None),
            ("soon", None),
            ("nan", None),
            ("Thu, 01 Jan 2026 10:00:30 GMT", 30.0),
            ("Thu, 01 Jan 2026 09:59:00 GMT", 0.0),
        ],
    )
    def test_retry_after_takes_seconds_or_a_date(
        self, header: str | None, expected: float | None
    ) -> None:
        now = 1_767_261_600.0  # 2026-01-01 10:00:00 UTC
        assert parse_retry_after(header, now=now) == expected
