"""Checking that delivery receipts really come from the provider, and reading their status.

Pure functions (no clock reads: ``now`` is passed in) so the webhook routes stay thin
and every rule here is unit-testable. Both verifiers answer ``False`` rather than
raising on malformed input, because webhook input is attacker-controlled and a crash
would turn a forged request into a 500 that the provider then retries.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

__all__ = [
    "SENDGRID_FAILURE",
    "SENDGRID_TERMINAL",
    "TWILIO_FAILURE",
    "TWILIO_TERMINAL",
    "is_failure",
    "is_terminal",
    "verify_sendgrid_signature",
    "verify_twilio_signature",
]

# Statuses after which no further update for the message is expected.
TWILIO_TERMINAL = frozenset({"delivered", "undelivered", "failed", "canceled"})
SENDGRID_TERMINAL = frozenset({"delivered", "bounce", "dropped"})
# Terminal statuses meaning the family did not get the message. "canceled" counts:
# it is terminal and nothing was delivered, so treating it as success would close a
# notice nobody received (we never schedule messages, so only a manual cancel in the
# Twilio console can cause it).
TWILIO_FAILURE = frozenset({"undelivered", "failed", "canceled"})
SENDGRID_FAILURE = frozenset({"bounce", "dropped"})

_TERMINAL = {"twilio": TWILIO_TERMINAL, "sendgrid": SENDGRID_TERMINAL}
_FAILURE = {"twilio": TWILIO_FAILURE, "sendgrid": SENDGRID_FAILURE}

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def is_terminal(provider: str, status: str) -> bool:
    """True when ``status`` from ``provider`` is final (unknown providers: never final)."""
    return status.lower() in _TERMINAL.get(provider, frozenset())


def is_failure(provider: str, status: str) -> bool:
    """True when ``status`` is final *and* means the message did not reach the person."""
    return status.lower() in _FAILURE.get(provider, frozenset())


class _MultiParams:
    """Form fields as lists of strings, in the ``getlist`` shape ``RequestValidator`` reads.

    The validator's plain-dict fallback wraps each value in a list itself, so a
    ``parse_qs`` dict (values already lists) raises ``TypeError``; normalising every
    accepted shape into this one avoids that and keeps repeated fields intact.
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, list[str]]) -> None:
        self._data = data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def getlist(self, name: str) -> list[str]:
        return self._data[name]


def _normalise_params(params: Mapping[str, Any]) -> _MultiParams | None:
    """Accept a dict of str, a dict of lists, or a multidict (Starlette FormData, Werkzeug
    MultiDict); ``None`` when a value is not a string (not something Twilio sends)."""
    data: dict[str, list[str]] = {}
    getlist = getattr(params, "getlist", None) or getattr(params, "getall", None)
    for key in params:
        if not isinstance(key, str):
            return None
        raw: Any = getlist(key) if getlist is not None else params[key]
        values: list[Any] = list(raw) if isinstance(raw, list | tuple) else [raw]
        if not values or not all(isinstance(value, str) for value in values):
            return None
        data[key] = values
    return _MultiParams(data)


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, Any], signature: str
) -> bool:
    """Whether ``X-Twilio-Signature`` matches this request (HMAC-SHA1 with the auth token).

    ``url`` must be the public URL Twilio called, query string included, rebuilt from
    the configured public base: behind a proxy the framework's ``request.url`` is the
    internal one and never matches. ``params`` are the POSTed form fields exactly as
    received (``parse_qs(..., keep_blank_values=True)``: Twilio signs empty fields too).
    An empty token or signature never validates.
    """
    if not auth_token or not signature or not url:
        return False
    normalised = _normalise_params(params)
    if normalised is None:
        return False
    try:
        return bool(RequestValidator(auth_token).validate(url, normalised, signature))
    except (TypeError, ValueError, UnicodeError):
        return False


@lru_cache(maxsize=8)
def _sendgrid_verifier(public_key_b64: str) -> EventWebhook:
    # Parsing the key per event is wasted work; there is one key per deployment.
    return EventWebhook(public_key_b64)


def verify_sendgrid_signature(
    public_key_b64: str,
    payload: str | bytes,
    signature: str,
    timestamp: str,
    *,
    now: float,
    max_age_seconds: int = 300,
) -> bool:
    """Whether a SendGrid Event Webhook request is genuine and fresh.

    ECDSA P-256 over ``timestamp + payload``; ``public_key_b64`` is the base64 DER key
    as the SendGrid dashboard shows it (no PEM armour). ``payload`` must be the raw
    body, byte for byte: re-serialised JSON does not verify. The SDK does not look at
    the timestamp at all, so a captured request could be replayed for ever; we refuse
    timestamps more than ``max_age_seconds`` away from ``now`` in either direction
    (the future bound stops a signature minted with a far-future timestamp from
    staying replayable). Malformed keys, signatures, timestamps or non-UTF-8 bodies
    give ``False``.
    """
    if not public_key_b64 or not signature or not timestamp:
        return False
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs(now - int(timestamp)) > max_age_seconds:
        return False
    if isinstance(payload, bytes | bytearray):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not isinstance(payload, str):
        return False
    try:
        verifier = _sendgrid_verifier(public_key_b64)
        return bool(verifier.verify_signature(payload, signature, timestamp))
    except (
        binascii.Error,
        ValueError,
        TypeError,
        InvalidSignature,
        UnsupportedAlgorithm,
    ):
        return False
