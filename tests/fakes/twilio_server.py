"""A loopback Twilio Messages API: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

Checks what Twilio checks before queueing a message (HTTP Basic ``sid:token``, the
account in the path, ``To`` in E.164, a sender, a body) and answers like it: ``201``
with the Message resource JSON, or the legacy error JSON ``{"code", "message",
"more_info", "status"}`` with Twilio's own error codes. ``fail_next(..., code=21211)``
scripts a specific Twilio error; a dict ``body`` with ``type``/``title`` gives an
RFC 9457 problem document instead. :meth:`TwilioFake.reject_to` makes one number fail
every time (an unsubscribed family, a landline).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes import FakeResponse, LoopbackFake, RecordedRequest, encode_body

__all__ = ["TwilioFake", "decode_basic_auth"]

_PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SERVICE_SID = re.compile(r"MG[0-9a-f]{32}")
_MAX_BODY = 1600

_DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    400: (21211, "Invalid 'To' Phone Number"),
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}

# Messages Twilio gives for the codes our adapter treats specially.
_CODE_MESSAGES = {
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
}


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioFake(LoopbackFake):
    """Twilio Messages over loopback for one account (``account_sid``/``auth_token``)."""

    provider = "twilio"

    def __init__(
        self,
        account_sid: str = "AC" + "0123456789abcdef" * 2,
        auth_token: str = "fake-auth-token-for-tests",
        *,
        record: bool = True,
    ) -> None:
        super().__init__(record=record)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: dict[str, dict[str, Any]] = {}
        self._rejections: dict[str, FakeResponse] = {}
        expected = f"{account_sid}:{auth_token}".encode()
        self._expected_auth = "Basic " + base64.b64encode(expected).decode()

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.messages.clear()
            self._rejections.clear()

    def reject_to(self, number: str, code: int = 21610, *, status: int = 400) -> None:
        """Fail every send to ``number`` with Twilio error ``code`` until :meth:`reset`."""
        message = _CODE_MESSAGES.get(code, "Error")
        with self._lock:
            self._rejections[number] = FakeResponse.json(status, _error(status, code, message))

    def replied_stop(self, number: str) -> None:
        """``number`` texted STOP: every send to it fails with Twilio's 21610."""
        self.reject_to(number, code=21610)

    def fail_next(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        count: int = 1,
        code: int | None = None,
    ) -> None:
        """As :meth:`LoopbackFake.fail_next`; ``code`` picks the Twilio error code
        (default: Twilio's usual one for ``status``, e.g. 20429 for 429)."""
        if body is None and code is not None:
            body = _error(status, code, _CODE_MESSAGES.get(code, "Error"))
        super().fail_next(status, headers=headers, body=body, count=count)

    def _parse(self, headers: dict[str, str], raw: bytes) -> Any:
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            return None

    def _fault_response(self, status: int, headers: dict[str, str], body: Any) -> FakeResponse:
        merged = {"Content-Type": "application/json"}
        merged.update(headers)
        if body is None:
            code, message = _DEFAULT_ERRORS.get(status, (status, "Error"))
            body = _error(status, code, message)
        return FakeResponse(status, merged, encode_body(body))

    def handle(self, request: RecordedRequest) -> FakeResponse:
        match = _PATH.fullmatch(request.path)
        if request.header("Authorization") != self._expected_auth or self.credentials_revoked:
            # Twilio authenticates before routing; a bad key never learns what exists.
            return FakeResponse.json(
                401,
                _error(401, 20003, "Authenticate"),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if match is None or match["sid"] != self.account_sid:
            return FakeResponse.json(
                404,
                _error(404, 20404, f"The requested resource {request.path} was not found"),
            )
        if request.method != "POST":
            return FakeResponse.json(405, _error(405, 20004, "Method not allowed"))
        form = request.body if isinstance(request.body, dict) else {}
        problem = self._validate(form)
        if problem is not None:
            return problem
        to = form["To"]
        with self._lock:
            rejection = self._rejections.get(to)
        if rejection is not None:
            return rejection
        return self._created(form)

    def _validate(self, form: dict[str, str]) -> FakeResponse | None:
        to = form.get("To", "")
        if not to:
            return FakeResponse.json(400, _error(400, 21604, "A 'To' phone number is required."))
        if not _E164.fullmatch(to):
            return FakeResponse.json(
                400, _error(400, 21211, f"Invalid 'To' Phone Number: {to[:4]}XXXX")
            )
        sender = form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        if not sender and not service:
            return FakeResponse.json(400, _error(400, 21603, "A 'From' phone number is required."))
        if sender and not _E164.fullmatch(sender) and not sender.isalnum():
            # E.164 number or an alphanumeric sender ID.
            return FakeResponse.json(
                400, _error(400, 21212, f"Invalid From Number (caller ID): {sender}")
            )
        if service and not _SERVICE_SID.fullmatch(service):
            return FakeResponse.json(
                400, _error(400, 21701, "The Messaging Service Sid is invalid")
            )
        body = form.get("Body", "")
        if not body and not form.get("MediaUrl"):
            return FakeResponse.json(400, _error(400, 21602, "Message body is required."))
        if len(body) > _MAX_BODY:
            return FakeResponse.json(
                400,
                _error(
                    400,
                    21617,
                    "The concatenated message body exceeds the 1600 character limit.",
                ),
            )
        callback = form.get("StatusCallback")
        if callback is not None:
            parts = urlsplit(callback)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return FakeResponse.json(400, _error(400, 21609, "Invalid StatusCallback URL"))
        return None

    def _created(self, form: dict[str, str]) -> FakeResponse:
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC).replace(microsecond=0))
        service = form.get("MessagingServiceSid") or None
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From") or None,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # A Messaging Service picks the sender later, so Twilio says "accepted".
            "status": "accepted" if service and not form.get("From") else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": form["To"],
            "uri": uri,
        }
        if self.record:
            with self._lock:
                self.messages[sid] = dict(form)
        return FakeResponse.json(201, resource, {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)})


def decode_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from a Basic Authorization header, for tests that inspect it."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password
