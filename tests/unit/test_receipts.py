"""Receipt verification: genuine provider callbacks pass, forged or replayed ones do not.

Signatures are produced the way the providers produce them (Twilio's HMAC via the
SDK's own ``compute_signature``; SendGrid's ECDSA with a P-256 key generated here),
so these tests pin the contract of the helpers, not the SDK internals.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator

from casework.notify.receipts import (
    SENDGRID_TERMINAL,
    TWILIO_TERMINAL,
    is_failure,
    is_terminal,
    verify_sendgrid_signature,
    verify_twilio_signature,
)

TOKEN = "twilio-auth-token-for-tests"
CALLBACK_URL = "https://casework.example.org/webhooks/twilio/status?notice=nt_9Lm4pQ"
STATUS_FORM = {
    "MessageSid": "SM" + "0f" * 16,
    "MessageStatus": "delivered",
    "To": "+447700900123",
    "AccountSid": "AC" + "12" * 16,
    "ErrorCode": "",  # Twilio sends (and signs) empty fields
}

NOW = 1_767_261_600  # 2026-01-01 10:00:00 UTC


def twilio_signature(url: str = CALLBACK_URL, params: dict[str, str] | None = None) -> str:
    return RequestValidator(TOKEN).compute_signature(url, params or STATUS_FORM)


class TestTwilioSignature:
    def test_a_genuine_callback_verifies(self) -> None:
        assert verify_twilio_signature(TOKEN, CALLBACK_URL, STATUS_FORM, twilio_signature())

    def test_the_form_as_a_web_framework_parses_it_verifies(self) -> None:
        form = FormData(list(STATUS_FORM.items()))
        assert verify_twilio_signature(TOKEN, CALLBACK_URL, form, twilio_signature())

    def test_a_parse_qs_dict_of_lists_verifies(self) -> None:
        # The SDK alone raises TypeError on this shape.
        body = "&".join(f"{k}={v}" for k, v in STATUS_FORM.items()).replace("+", "%2B")
        params = parse_qs(body, keep_blank_values=True)
        assert verify_twilio_signature(TOKEN, CALLBACK_URL, params, twilio_signature())

    def test_a_forged_signature_fails(self) -> None:
        forged = RequestValidator("someone-elses-token").compute_signature(
            CALLBACK_URL, STATUS_FORM
        )
        assert not verify_twilio_signature(TOKEN, CALLBACK_URL, STATUS_FORM, forged)

    def test_a_changed_status_fails(self) -> None:
        tampered = {**STATUS_FORM, "MessageStatus": "failed"}
        assert not verify_twilio_signature(TOKEN, CALLBACK_URL, tampered, twilio_signature())

    def test_an_extra_parameter_fails(self) -> None:
        extra = {**STATUS_FORM, "Injected": "1"}
        assert not verify_twilio_signature(TOKEN, CALLBACK_URL, extra, twilio_signature())

    @pytest.mark.parametrize(
        "url",
        [
            CALLBACK_URL.replace("https://", "http://"),  # internal URL behind a proxy
            CALLBACK_URL.replace("nt_9Lm4pQ", "nt_other"),  # another notice's callback
            CALLBACK_URL.split("?")[0],  # query string dropped
        ],
    )
    def test_the_wrong_url_fails(self, url: str) -> None:
        assert not verify_twilio_signature(TOKEN, url, STATUS_FORM, twilio_signature())

    def test_an_explicit_default_port_still_verifies(self) -> None:
        url = CALLBACK_URL.replace(".org/", ".org:443/")
        assert verify_twilio_signature(TOKEN, url, STATUS_FORM, twilio_signature())

    @pytest.mark.parametrize(
        ("token", "signature"),
        [("", "anything"), (TOKEN, ""), (TOKEN, "not base64 at all")],
    )
    def test_missing_or_junk_credentials_fail(self, token: str, signature: str) -> None:
        assert not verify_twilio_signature(token, CALLBACK_URL, STATUS_FORM, signature)

    def test_non_string_values_fail_without_raising(self) -> None:
        params = {**STATUS_FORM, "NumSegments": 1}
        assert not verify_twilio_signature(TOKEN, CALLBACK_URL, params, twilio_signature())


# --- SendGrid -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def public_key_b64(signing_key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as the SendGrid dashboard shows it: base64 DER, no armour."""
    der = signing_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


EVENTS = json.dumps(
    [
        {
            "email": "parent@example.org",
            "event": "delivered",
            "notice_id": "nt_7Qk2xZ",
            "sg_message_id": "7I9V4t9NyAK_qMN9K8BKTw.filter0001",
            "timestamp": NOW,
        }
    ],
    separators=(",", ":"),
)


def sendgrid_signature(key: ec.EllipticCurvePrivateKey, timestamp: str, payload: str) -> str:
    signed = key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signed).decode()


class TestSendGridSignature:
    def test_a_genuine_batch_verifies(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        assert verify_sendgrid_signature(public_key_b64, EVENTS, signature, str(NOW), now=NOW)

    def test_the_raw_body_as_bytes_verifies(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        raw = EVENTS.encode()
        assert verify_sendgrid_signature(public_key_b64, raw, signature, str(NOW), now=NOW)

    def test_a_tampered_body_fails(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        tampered = EVENTS.replace("delivered", "bounce")
        assert not verify_sendgrid_signature(public_key_b64, tampered, signature, str(NOW), now=NOW)

    def test_a_reserialised_body_fails(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        reserialised = json.dumps(json.loads(EVENTS))  # different whitespace
        assert not verify_sendgrid_signature(
            public_key_b64, reserialised, signature, str(NOW), now=NOW
        )

    def test_another_timestamp_than_the_signed_one_fails(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        assert not verify_sendgrid_signature(
            public_key_b64, EVENTS, signature, str(NOW + 1), now=NOW
        )

    @pytest.mark.parametrize(
        ("age", "accepted"),
        [(0, True), (300, True), (301, False), (86_400, False), (-300, True), (-301, False)],
    )
    def test_the_replay_window_applies_both_ways(
        self,
        signing_key: ec.EllipticCurvePrivateKey,
        public_key_b64: str,
        age: int,
        accepted: bool,
    ) -> None:
        # A negative age is a timestamp in the future.
        timestamp = str(NOW - age)
        signature = sendgrid_signature(signing_key, timestamp, EVENTS)
        result = verify_sendgrid_signature(public_key_b64, EVENTS, signature, timestamp, now=NOW)
        assert result is accepted

    def test_a_shorter_window_can_be_asked_for(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        timestamp = str(NOW - 61)
        signature = sendgrid_signature(signing_key, timestamp, EVENTS)
        assert not verify_sendgrid_signature(
            public_key_b64, EVENTS, signature, timestamp, now=NOW, max_age_seconds=60
        )

    @pytest.mark.parametrize(
        "signature",
        ["", "abc", "!!!not-base64!!!", base64.b64encode(b"not a DER signature").decode()],
    )
    def test_a_malformed_signature_fails_without_raising(
        self, public_key_b64: str, signature: str
    ) -> None:
        assert not verify_sendgrid_signature(public_key_b64, EVENTS, signature, str(NOW), now=NOW)

    @pytest.mark.parametrize("timestamp", ["", "12a", " 1767261600", "+1767261600", "1e9", "١٢٣"])
    def test_a_malformed_timestamp_fails(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str, timestamp: str
    ) -> None:
        signature = sendgrid_signature(signing_key, timestamp, EVENTS)
        assert not verify_sendgrid_signature(public_key_b64, EVENTS, signature, timestamp, now=NOW)

    def test_a_malformed_public_key_fails_without_raising(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        pem = (
            signing_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        for key in ["", "not-a-key", public_key_b64[:-8], pem]:
            assert not verify_sendgrid_signature(key, EVENTS, signature, str(NOW), now=NOW)

    def test_someone_elses_key_fails(self, public_key_b64: str) -> None:
        other = ec.generate_private_key(ec.SECP256R1())
        signature = sendgrid_signature(other, str(NOW), EVENTS)
        assert not verify_sendgrid_signature(public_key_b64, EVENTS, signature, str(NOW), now=NOW)

    def test_a_body_that_is_not_utf8_fails(
        self, signing_key: ec.EllipticCurvePrivateKey, public_key_b64: str
    ) -> None:
        signature = sendgrid_signature(signing_key, str(NOW), EVENTS)
        assert not verify_sendgrid_signature(
            public_key_b64, b"\xff\xfe[]", signature, str(NOW), now=NOW
        )


# --- statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "status", "terminal", "failure"),
    [
        ("twilio", "queued", False, False),
        ("twilio", "sent", False, False),
        ("twilio", "delivered", True, False),
        ("twilio", "undelivered", True, True),
        ("twilio", "failed", True, True),
        ("twilio", "canceled", True, True),
        ("sendgrid", "processed", False, False),
        ("sendgrid", "deferred", False, False),
        ("sendgrid", "delivered", True, False),
        ("sendgrid", "bounce", True, True),
        ("sendgrid", "dropped", True, True),
        ("sendgrid", "open", False, False),
        ("outbox", "delivered", False, False),
    ],
)
def test_which_statuses_are_final_and_which_are_failures(
    provider: str, status: str, terminal: bool, failure: bool
) -> None:
    assert is_terminal(provider, status) is terminal
    assert is_failure(provider, status) is failure


def test_every_failure_is_terminal() -> None:
    assert {"undelivered", "failed", "canceled"} <= TWILIO_TERMINAL
    assert {"bounce", "dropped"} <= SENDGRID_TERMINAL
