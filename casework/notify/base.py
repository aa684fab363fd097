"""The narrow interface every delivery channel implements.

The dispatcher only ever sees :class:`OutgoingMessage` in and :class:`SendResult` or
:class:`DeliveryError` out, so provider SDKs stay inside their adapter modules and the
retry decision (try again later, give up and tell an adviser, or hold everything and
alarm the manager because our key was refused) is made once, by the adapter that
understands the provider's error codes: the dispatcher only reads
:attr:`DeliveryError.kind`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "Attachment",
    "Channel",
    "DeliveryError",
    "FailureKind",
    "OutgoingMessage",
    "SendResult",
    "parse_retry_after",
]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email, exactly the bytes the document store holds."""

    file_name: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered notice ready for a provider; carries no case data beyond what is sent."""

    notice_id: str  # random public id of the notice; correlates receipts
    channel: Literal["sms", "email"]
    to: str  # E.164 phone or email address
    body: str
    subject: str | None = None
    # Email only (a text message carries no document; the SMS adapter refuses one).
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider accepted: its id lets delivery receipts find the notice again."""

    provider: str  # "sendgrid" | "twilio" | "outbox"
    provider_message_id: str | None


class FailureKind(StrEnum):
    """What a failed send means for the notice; decided by the adapter, nowhere else.

    ``permanent``: retrying the same message cannot succeed (invalid number,
    unsubscribed, rejected payload): the notice fails and an adviser is told.
    ``transient``: try again later (5xx, 429, timeout, network).
    ``credential_rejected``: the provider refused *our* key or token. Nothing is wrong
    with the recipient; every notice on the channel would fail the same way, so the
    notices wait (and are retried) while the manager is alarmed once.
    ``opted_out``: the recipient told the provider to stop (an SMS reply of STOP):
    the notice fails like a permanent one, and the family's consent to that channel
    ends, so the same notice goes by their next channel instead.
    """

    permanent = "permanent"
    transient = "transient"
    credential_rejected = "credential_rejected"
    opted_out = "opted_out"


class DeliveryError(Exception):
    """A send that did not reach the provider's queue.

    ``kind`` is the only thing the dispatcher acts on (see :class:`FailureKind`);
    ``retry_after`` is the provider's own "no sooner than" hint in seconds. ``code``
    is the provider's error code as a string (Twilio ``"21211"``, an HTTP status for
    SendGrid, or ``"timeout"``/``"network"``), stored for searching, never re-read to
    decide anything. ``str(error)`` is written for an adviser to read, and never
    contains the message body.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        retry_after: float | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = FailureKind(kind)
        self.retry_after = retry_after
        self.code = code
        # The adapter's word for why a permanent failure happened (a
        # ``casework.notices.NoticeReason`` value), or None: "refused", in general.
        self.reason = reason

    @property
    def permanent(self) -> bool:
        return self.kind is FailureKind.permanent

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments defeat Exception's default pickling, which replays
        # ``args`` positionally; a worker pool passing errors between processes needs it.
        return (
            _rebuild_delivery_error,
            (type(self), self.message, self.kind.value, self.retry_after, self.code, self.reason),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, kind={self.kind.value!r}, "
            f"retry_after={self.retry_after!r}, code={self.code!r})"
        )


def _rebuild_delivery_error(
    cls: type[DeliveryError],
    message: str,
    kind: str,
    retry_after: float | None,
    code: str | None,
    reason: str | None = None,
) -> DeliveryError:
    return cls(message, kind=FailureKind(kind), retry_after=retry_after, code=code, reason=reason)


@runtime_checkable
class Channel(Protocol):
    """A way of delivering a message; ``name`` is stored on the notice as the provider.

    ``send`` either returns once the provider has accepted the message (acceptance, not
    delivery: receipts arrive later by webhook) or raises :class:`DeliveryError`.
    Implementations must be safe to call from several dispatcher threads at once.
    """

    name: str

    def send(self, message: OutgoingMessage) -> SendResult: ...


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait according to an HTTP ``Retry-After`` header, or ``None``.

    RFC 9110 allows either delay-seconds or an HTTP-date; providers and proxies in front
    of them use both. Negative or unparseable values give ``None`` (or ``0.0`` for a date
    already past) rather than an exception, because a bad hint must never turn a
    retryable failure into a crash in the dispatcher.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
            when = when.replace(tzinfo=dt.UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:  # NaN, inf or negative: not a usable hint
        return None
    return seconds
