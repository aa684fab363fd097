"""The narrow interface every delivery channel implements.

The dispatcher only ever sees :class:`OutgoingMessage` in and :class:`SendResult` or
:class:`DeliveryError` out, so provider SDKs stay inside their adapter modules and the
retry decision (try again later vs. give up and tell an adviser) is made once, here,
by the adapter that understands the provider's error codes. This mirrors healthchecks'
``TransportError(message, permanent=...)``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["Channel", "DeliveryError", "OutgoingMessage", "SendResult", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered notice ready for a provider; carries no case data beyond what is sent."""

    notice_id: str  # random public id of the notice; correlates receipts
    channel: Literal["sms", "email"]
    to: str  # E.164 phone or email address
    body: str
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider accepted: its id lets delivery receipts find the notice again."""

    provider: str  # "sendgrid" | "twilio" | "outbox"
    provider_message_id: str | None


class DeliveryError(Exception):
    """A send that did not reach the provider's queue.

    ``permanent`` is the only thing the dispatcher must act on: ``True`` means retrying
    the same message cannot succeed (invalid number, unsubscribed, rejected payload), so
    the notice fails and an adviser is told; ``False`` means try again later, no sooner
    than ``retry_after`` seconds when the provider said so. ``code`` is the provider's
    own error code as a string (Twilio ``"21211"``, an HTTP status for SendGrid, or
    ``"timeout"``/``"network"``) so it can be stored and searched. ``str(error)`` is
    written for an adviser to read, and never contains the message body.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments defeat Exception's default pickling, which replays
        # ``args`` positionally; a worker pool passing errors between processes needs it.
        return (
            _rebuild_delivery_error,
            (type(self), self.message, self.permanent, self.retry_after, self.code),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, permanent={self.permanent!r}, "
            f"retry_after={self.retry_after!r}, code={self.code!r})"
        )


def _rebuild_delivery_error(
    cls: type[DeliveryError],
    message: str,
    permanent: bool,
    retry_after: float | None,
    code: str | None,
) -> DeliveryError:
    return cls(message, permanent=permanent, retry_after=retry_after, code=code)


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
