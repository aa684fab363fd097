"""SMS through Twilio's Programmable Messaging API, with failures sorted into retry or give up.

Three SDK traits shape this module (``integration-notes.md`` section 2): error bodies
in RFC 9457 form raise ``TwilioServiceException``, which is *not* a
``TwilioRestException``, so we catch their common base ``TwilioException``; neither
exception carries the response headers, so a small ``TwilioHttpClient`` subclass
remembers them (per thread) to read ``Retry-After``; and ``TWILIO_REGION`` /
``TWILIO_EDGE`` in the environment silently rewrite the API host, so we ignore them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from casework.notices import NoticeReason
from casework.notify.base import (
    DeliveryError,
    FailureKind,
    OutgoingMessage,
    SendResult,
    parse_retry_after,
)

__all__ = ["PERMANENT_ERROR_CODES", "TwilioSmsChannel"]

_MAX_DETAIL = 200

# Twilio error codes where sending the same message again cannot work, with the
# explanation an adviser needs to act (usually: get another number from the family).
PERMANENT_ERROR_CODES: Mapping[int, str] = {
    21211: "Twilio says the phone number is not valid",
    21408: "Our Twilio account is not allowed to send SMS to this country",
    21610: "The recipient has replied STOP, so Twilio will not text this number"
    " until they reply START",
    21612: "Twilio cannot send an SMS from our number to this number",
    21614: "The number is not a mobile number, so it cannot receive SMS",
}
# The recipient replied STOP: not a fault to retry or report, but their choice, which
# the family's consent must follow (FailureKind.opted_out).
_OPTED_OUT_CODES = frozenset({21610})
# What each of those says about the number, for the pages' words (casework.notices).
PERMANENT_REASONS: Mapping[int, NoticeReason] = {
    21211: NoticeReason.number_invalid,
    21612: NoticeReason.number_invalid,
    21614: NoticeReason.not_a_mobile,
    21610: NoticeReason.opted_out,
}
_RATE_LIMIT_CODES = frozenset({429, 20429})
_CREDENTIAL_CODES = frozenset({20003})


class _HeaderRecordingHttpClient(TwilioHttpClient):
    """``TwilioHttpClient`` that remembers the last response's headers, per thread.

    Twilio exceptions drop the headers, yet ``Retry-After`` on a 429 is the one hint
    worth honouring. The SDK's own ``_test_only_last_response`` is private and shared
    between threads; a thread-local is neither.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()
        if self.session is not None:
            # The SDK sizes its pool only for https://; the loopback fake used in tests
            # and benchmarks is http://, where requests' default (10) would discard
            # connections under a busy dispatcher.
            self.session.mount("http://", HTTPAdapter(pool_maxsize=32))

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._local.headers = None
        response = super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.headers = response.headers
        return response

    @property
    def last_headers(self) -> Mapping[str, str] | None:
        """Headers of the last response received on the calling thread."""
        headers: Mapping[str, str] | None = getattr(self._local, "headers", None)
        return headers


class TwilioSmsChannel:
    """Sends SMS; each message asks Twilio to report status to our webhook for its notice.

    The status callback URL is ``{status_callback_base}/webhooks/twilio/status?notice=<id>``:
    Twilio signs exactly that URL, so the webhook must rebuild it from the same public
    base (never from the proxied ``request.url``). The returned message SID (``SM…``) is
    kept as the provider id.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        base_url: str = "",
        status_callback_base: str = "",
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``base_url`` "" means the real ``https://api.twilio.com``; a URL such as
        ``http://127.0.0.1:PORT`` points at a fake. ``status_callback_base`` "" sends no
        ``StatusCallback`` (receipts then come only from a Messaging Service's own
        callback setting, if any). Give ``from_number``, ``messaging_service_sid``, or
        both (then ``From`` must belong to the service's sender pool)."""
        # Empty credentials would make the SDK read TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN
        # from the environment behind Settings' back.
        if not account_sid or not auth_token:
            raise ValueError("Twilio account SID and auth token must both be set")
        if not from_number and not messaging_service_sid:
            raise ValueError("Twilio needs a sender: from_number or messaging_service_sid")
        if not timeout or timeout <= 0:
            # The SDK default is no timeout: one stuck connection would hang a worker.
            raise ValueError("Twilio timeout must be a positive number of seconds")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_base = status_callback_base.rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._http = _HeaderRecordingHttpClient(timeout=timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # Client() has already read TWILIO_REGION/TWILIO_EDGE from os.environ; either
        # would rewrite every host at request time (127.0.0.1 became 127.ie1.0.1 in a
        # test), and region-specific hosts need region-specific credentials anyway.
        # Routing is configured through Settings only.
        self._client.region = None
        self._client.edge = None
        if base_url:
            self._client.api.base_url = base_url.rstrip("/")

    def status_callback_url(self, notice_id: str) -> str:
        """The public URL Twilio will POST status updates for this notice to."""
        return (
            f"{self.status_callback_base}/webhooks/twilio/status?notice={quote(notice_id, safe='')}"
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand one SMS to Twilio; return its message SID.

        Every failure is a :class:`DeliveryError`, including a message that is not an
        SMS (a routing bug upstream): failing that one notice permanently beats
        crashing the dispatcher with the notice left claimed.
        """
        if message.channel != "sms":
            raise DeliveryError(
                f"Twilio only sends SMS, not {message.channel!r}; the notice was routed "
                "to the wrong channel",
                kind=FailureKind.permanent,
                code="invalid_message",
            )
        if message.attachments:
            raise DeliveryError(
                "A text message cannot carry a document; the notice was routed to the wrong"
                " channel (documents go by email)",
                kind=FailureKind.permanent,
                code="invalid_message",
            )
        params: dict[str, Any] = {"to": message.to, "body": message.body}
        if self.from_number:
            params["from_"] = self.from_number
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        if self.status_callback_base:
            params["status_callback"] = self.status_callback_url(message.notice_id)
        try:
            created = self._client.messages.create(**params)
        except TwilioException as exc:
            raise self._twilio_error(exc) from exc
        except requests.exceptions.Timeout as exc:
            raise DeliveryError(
                f"Twilio did not answer within {self.timeout:g} s; will retry",
                kind=FailureKind.transient,
                code="timeout",
            ) from exc
        except requests.exceptions.RequestException as exc:
            # Connection refused, DNS, TLS, reset: Twilio may never have seen it.
            raise DeliveryError(
                f"Could not reach Twilio ({_describe_request_error(exc)}); will retry",
                kind=FailureKind.transient,
                code="network",
            ) from exc
        return SendResult(provider=self.name, provider_message_id=created.sid or None)

    def _twilio_error(self, exc: TwilioException) -> DeliveryError:
        """Sort a Twilio error into retry-later or give-up, with a readable reason."""
        status, code, detail = _error_parts(exc)
        code_text = str(code) if code is not None else (str(status) if status else None)
        label = f"{status}/{code}" if code is not None and code != status else f"{status}"
        suffix = f": {detail}" if detail else ""
        if code is not None and code in PERMANENT_ERROR_CODES:
            return DeliveryError(
                f"{PERMANENT_ERROR_CODES[code]} ({code})",
                kind=FailureKind.opted_out if code in _OPTED_OUT_CODES else FailureKind.permanent,
                code=code_text,
                reason=PERMANENT_REASONS.get(code),
            )
        if status in (401, 403) or code in _CREDENTIAL_CODES:
            # 20003 "Authenticate": a rotated or wrong auth token. Every SMS would fail
            # the same way, so this is the operator's problem, not the family's.
            return DeliveryError(
                f"Twilio refused our account credentials ({label}){suffix}; text messages "
                "are waiting until the Twilio settings are fixed",
                kind=FailureKind.credential_rejected,
                code=code_text,
            )
        if status == 429 or code in _RATE_LIMIT_CODES:
            headers = self._http.last_headers
            retry_after = parse_retry_after(
                headers.get("Retry-After") if headers is not None else None,
                now=self._clock(),
            )
            when = f" in {math.ceil(retry_after)} s" if retry_after is not None else " later"
            return DeliveryError(
                f"Twilio is limiting how fast we send ({label}); will retry{when}",
                kind=FailureKind.transient,
                retry_after=retry_after,
                code=code_text,
            )
        if status is not None and status >= 500:
            return DeliveryError(
                f"Twilio had a temporary problem ({label}){suffix}; will retry",
                kind=FailureKind.transient,
                code=code_text,
            )
        if status is not None and 400 <= status < 500:
            return DeliveryError(
                f"Twilio refused the SMS ({label}){suffix}",
                kind=FailureKind.permanent,
                code=code_text,
            )
        # No HTTP status at all (a bare TwilioException from the SDK itself) or an
        # odd one: do not give up on the family's notice over something unexplained.
        return DeliveryError(
            f"Twilio send failed unexpectedly ({type(exc).__name__}){suffix}; will retry",
            kind=FailureKind.transient,
            code=code_text,
        )


def _error_parts(exc: TwilioException) -> tuple[int | None, int | None, str]:
    """(HTTP status, Twilio error code, short human detail) from either exception shape."""
    if isinstance(exc, TwilioRestException):
        msg = str(exc.msg or "")
        # The SDK prefixes the API's message with what it was doing.
        for prefix in ("Unable to create record: ", "Unable to create record"):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
                break
        return _as_int(exc.status), _as_int(exc.code), msg.strip()[:_MAX_DETAIL]
    if isinstance(exc, TwilioServiceException):
        # RFC 9457 problem details: status/code come from the body, maybe as strings.
        detail = " - ".join(part for part in (exc.title, exc.detail) if part)
        return _as_int(exc.status), _as_int(exc.code), detail.strip()[:_MAX_DETAIL]
    return None, None, str(exc)[:_MAX_DETAIL]


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _describe_request_error(exc: requests.exceptions.RequestException) -> str:
    text = str(exc)
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return "connection refused"
    return type(exc).__name__
