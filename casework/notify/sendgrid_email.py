"""E-mail through SendGrid's v3 Mail Send API, with failures sorted into retry or give up.

The SDK (``sendgrid`` on top of ``python_http_client``) raises a different exception
class per HTTP status and lets network failures escape as plain ``urllib``/socket
errors; this module turns all of them into :class:`~casework.notify.base.DeliveryError`
so the dispatcher never imports the SDK. See ``integration-notes.md`` section 1.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import sendgrid
from python_http_client import exceptions as sg_errors
from sendgrid.helpers.mail import (
    Attachment,
    ContentId,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Mail,
)
from sendgrid.helpers.mail.exceptions import SendGridException

from casework.notify.base import (
    DeliveryError,
    FailureKind,
    OutgoingMessage,
    SendResult,
    parse_retry_after,
)

__all__ = ["SendGridEmailChannel"]

_MAX_DETAIL = 200  # provider error text is stored on the notice and shown; keep it short


class SendGridEmailChannel:
    """Sends plain-text e-mail; each message carries ``custom_args.notice_id``.

    SendGrid echoes ``custom_args`` in every Event Webhook event, so delivery receipts
    find their notice by ``notice_id`` without storing anything else. The returned
    ``X-Message-Id`` is kept as the provider id because events' ``sg_message_id``
    starts with it.

    Safe to share between threads: the SDK builds a fresh child client and a fresh
    ``urllib`` opener per request, and only ever ``setdefault``s the shared headers.
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        from_email: str = "noreply@example.org",
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # An empty key would make the SDK fall back to SENDGRID_API_KEY from the
        # environment; configuration must come from Settings only, so refuse it here.
        if not api_key:
            raise ValueError("SendGrid API key is empty; set CASEWORK_SENDGRID_API_KEY")
        if not host.startswith(("http://", "https://")):
            # urllib would otherwise fail every send with "unknown url type", which
            # looks like a network outage and would be retried for ever.
            raise ValueError(f"SendGrid host must start with http:// or https://, got {host!r}")
        if not timeout or timeout <= 0:
            # The SDK's default is no timeout at all, so one stuck connection would
            # stall a dispatcher thread indefinitely.
            raise ValueError("SendGrid timeout must be a positive number of seconds")
        self.from_email = from_email
        self.timeout = timeout
        self._clock = clock
        # A trailing slash would produce "//v3/mail/send", which SendGrid answers with 404.
        self._sg = sendgrid.SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        self._sg.client.timeout = timeout  # inherited by every child client

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand one e-mail to SendGrid; return its ``X-Message-Id``.

        Every failure is a :class:`DeliveryError`, including a message this channel
        cannot carry at all (not e-mail, or no subject). Those are upstream bugs, but
        failing the one notice permanently, with a reason an adviser sees, beats
        crashing the dispatcher with a notice left claimed.
        """
        if message.channel != "email":
            raise DeliveryError(
                f"SendGrid only sends e-mail, not {message.channel!r}; the notice was "
                "routed to the wrong channel",
                kind=FailureKind.permanent,
                code="invalid_message",
            )
        if not message.subject:
            raise DeliveryError(
                "The e-mail has no subject line, so it was not sent (check its template)",
                kind=FailureKind.permanent,
                code="invalid_message",
            )
        request_body = self._build(message)
        try:
            response = self._sg.send(request_body)
        except sg_errors.HTTPError as exc:
            raise self._http_error(exc) from exc
        except TimeoutError as exc:
            raise DeliveryError(
                f"SendGrid did not answer within {self.timeout:g} s; will retry",
                kind=FailureKind.transient,
                code="timeout",
            ) from exc
        except urllib.error.URLError as exc:
            # Connection refused, DNS failure, TLS failure: SendGrid never saw the
            # request. ``reason`` is the underlying OSError (or a string).
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise DeliveryError(
                    f"SendGrid did not answer within {self.timeout:g} s; will retry",
                    kind=FailureKind.transient,
                    code="timeout",
                ) from exc
            raise DeliveryError(
                f"Could not reach SendGrid ({_describe_os_error(reason)}); will retry",
                kind=FailureKind.transient,
                code="network",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            # OSError: connection reset mid-response. HTTPException: a truncated or
            # garbled response (IncompleteRead, BadStatusLine), which is not an OSError.
            raise DeliveryError(
                f"Lost the connection to SendGrid ({type(exc).__name__}); will retry",
                kind=FailureKind.transient,
                code="network",
            ) from exc
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return SendResult(provider=self.name, provider_message_id=message_id or None)

    def _build(self, message: OutgoingMessage) -> dict[str, Any]:
        """Build the JSON body before any network call, so SDK quirks surface here.

        ``Mail.get()`` raises ``KeyError('email')`` for an address with no ``@`` part
        that ``email.utils`` can find, and ``ApiKeyIncludedException`` when the text
        starts with something shaped like an API key. Retrying cannot fix either.
        """
        try:
            mail = Mail(
                from_email=self.from_email,
                to_emails=message.to,
                subject=message.subject,
                plain_text_content=message.body,
            )
            mail.add_custom_arg(CustomArg("notice_id", message.notice_id))
            for index, item in enumerate(message.attachments):
                # SendGrid takes attachments base64-encoded in the JSON body.
                mail.add_attachment(
                    Attachment(
                        FileContent(base64.b64encode(item.content).decode("ascii")),
                        FileName(item.file_name),
                        FileType(item.media_type),
                        Disposition("attachment"),
                        ContentId(f"document-{index + 1}"),
                    )
                )
            body: dict[str, Any] = mail.get()
        except SendGridException as exc:
            raise DeliveryError(
                "The e-mail text looks like it contains a SendGrid API key, so it was not sent",
                kind=FailureKind.permanent,
                code="content_rejected",
            ) from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise DeliveryError(
                "The e-mail address is not in a form SendGrid can use",
                kind=FailureKind.permanent,
                code="invalid_address",
            ) from exc
        return body

    def _http_error(self, exc: sg_errors.HTTPError) -> DeliveryError:
        """Sort an HTTP error answer into retry-later or give-up, with a readable reason."""
        status = int(exc.status_code)
        detail = _first_error_message(exc.body)
        suffix = f": {detail}" if detail else ""
        code = str(status)
        if status == 429:
            retry_after = self._retry_after(exc)
            when = f" in {math.ceil(retry_after)} s" if retry_after is not None else " later"
            return DeliveryError(
                f"SendGrid is limiting how fast we send (429); will retry{when}",
                kind=FailureKind.transient,
                retry_after=retry_after,
                code=code,
            )
        if status >= 500:
            return DeliveryError(
                f"SendGrid had a temporary problem ({status}){suffix}; will retry",
                kind=FailureKind.transient,
                code=code,
            )
        if status in (401, 403):
            return DeliveryError(
                f"SendGrid refused our API key ({status}){suffix}; e-mails are waiting "
                "until the SendGrid settings are fixed",
                kind=FailureKind.credential_rejected,
                code=code,
            )
        if 400 <= status < 500:
            return DeliveryError(
                f"SendGrid refused the email ({status}){suffix}",
                kind=FailureKind.permanent,
                code=code,
            )
        # 1xx/3xx surfacing as an error: unexpected, so do not give up on the notice.
        return DeliveryError(
            f"SendGrid gave an unexpected answer ({status}){suffix}; will retry",
            kind=FailureKind.transient,
            code=code,
        )

    def _retry_after(self, exc: sg_errors.HTTPError) -> float | None:
        """``Retry-After`` first (proxies send it), else SendGrid's documented reset epoch."""
        headers = exc.headers
        if headers is None:
            return None
        now = self._clock()
        retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
        if retry_after is not None:
            return retry_after
        reset = headers.get("X-RateLimit-Reset")
        if reset is None:
            return None
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None


def _first_error_message(body: bytes | str | None) -> str:
    """The first ``errors[].message`` of a SendGrid error body, or ``""``.

    Error bodies are JSON ``{"errors": [{"message": .., "field": ..}]}`` from SendGrid
    itself but may be HTML or empty from a proxy in front of it; never raise here.
    """
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    errors = data.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    text = str(first.get("message") or "").strip()
    field = first.get("field")
    if field and text:
        text = f"{text} (field {field})"
    if len(errors) > 1:
        text = f"{text} (+{len(errors) - 1} more)"
    return text[:_MAX_DETAIL]


def _describe_os_error(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError):
        return reason.strerror or type(reason).__name__
    return str(reason)[:_MAX_DETAIL]
