"""Delivery receipts: checking they come from the provider, storing them, applying them.

The webhook routes only verify and store (:func:`store_batch`, one insert, so the
provider gets its 2xx at once whatever the batch size); the worker applies the
stored batches (:func:`apply_stored_receipts`) in arrival order, each event once.

The verifiers are pure (no clock reads: ``now`` is passed in) and answer ``False``
rather than raising on malformed input, because webhook input is attacker-controlled
and a crash would turn a forged request into a 500 that the provider then retries.

Receipts are stored append-only with a dedupe key, so a provider's retry is a
no-op; a terminal status (delivered, failed) is never overwritten by a late
non-terminal one; a bounce or an undelivered SMS fails the notice and queues its
escalation in the same transaction.
"""

from __future__ import annotations

import binascii
import datetime as dt
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator

from casework.config import Settings
from casework.models import DeliveryEvent, Notice, NoticeStatus, WebhookBatch
from casework.notices import NoticeReason, insert_notices, reason_text
from casework.notify.escalate import delivery_failed_row, letter_fallback_row

log = logging.getLogger("casework.receipts")

__all__ = [
    "SENDGRID_FAILURE",
    "SENDGRID_TERMINAL",
    "TWILIO_FAILURE",
    "TWILIO_TERMINAL",
    "ReceiptsResult",
    "apply_receipt",
    "apply_stored_receipts",
    "is_failure",
    "is_terminal",
    "record_receipt",
    "store_batch",
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

# Twilio's delivery error codes that say what is wrong with the number.
_RECEIPT_FAILURES: dict[str, NoticeReason] = {
    "30005": NoticeReason.number_invalid,  # unknown destination handset
    "30006": NoticeReason.not_a_mobile,  # landline or unreachable carrier
    "21610": NoticeReason.opted_out,
}


def receipt_failure_reason(source: str, status: str, detail: str) -> NoticeReason:
    """Why a receipt says the message did not arrive (bounce, drop, a Twilio error)."""
    if source == "sendgrid":
        return NoticeReason.bounced if status.lower() == "bounce" else NoticeReason.dropped
    for code, reason in _RECEIPT_FAILURES.items():
        if code in detail:
            return reason
    return NoticeReason.undelivered


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


# --- Applying receipts --------------------------------------------------------------------

_N: Any = Notice.__table__  # type: ignore[attr-defined]
_BATCHES: Any = WebhookBatch.__table__  # type: ignore[attr-defined]


def apply_receipt(
    conn: Connection,
    settings: Settings,
    *,
    source: str,
    notice_public_id: str | None,
    provider_message_id: str | None,
    status: str,
    detail: str,
    dedupe_key: str,
    now: dt.datetime,
) -> str:
    """Apply one receipt inside the caller's transaction; what happened.

    'duplicate', 'unknown', 'recorded', 'kept-terminal', 'delivered' or
    'failed-escalated'. A failure and its escalation are written together.
    """
    query = select(_N)
    if notice_public_id:
        query = query.where(_N.c.public_id == notice_public_id)
    elif provider_message_id:
        query = query.where(_N.c.provider_message_id == provider_message_id)
    else:
        return "unknown"
    notice = conn.execute(query).first()
    if notice is None:
        return "unknown"
    try:
        with conn.begin_nested():
            conn.execute(
                DeliveryEvent.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "notice_id": notice.id,
                        "at": now,
                        "source": source,
                        "status": status,
                        "detail": detail[:2000],
                        "dedupe_key": dedupe_key[:200],
                    }
                ],
            )
    except IntegrityError:
        return "duplicate"
    if notice.status in (NoticeStatus.delivered, NoticeStatus.failed):
        return "kept-terminal"  # a late 'sent'/'processed' must not undo 'delivered'
    if not is_terminal(source, status):
        return "recorded"
    if not is_failure(source, status):
        conn.execute(
            update(_N)
            .where(_N.c.id == notice.id)
            .values(status=NoticeStatus.delivered, delivered_at=now)
        )
        return "delivered"
    conn.execute(
        update(_N)
        .where(_N.c.id == notice.id)
        .values(
            status=NoticeStatus.failed,
            last_error=reason_text(
                receipt_failure_reason(source, status, detail), f"{source}: {status} {detail}"
            ),
            escalated=True,
        )
    )
    escalation = delivery_failed_row(
        notice, now, f"{source} reported {status}: {detail}".strip(), settings
    )
    letter = letter_fallback_row(conn, notice, now)
    rows = [r for r in (escalation, letter) if r is not None]
    if rows:
        insert_notices(conn, rows)
    return "failed-escalated"


def record_receipt(
    engine: Engine,
    settings: Settings,
    *,
    source: str,
    notice_public_id: str | None,
    provider_message_id: str | None,
    status: str,
    detail: str,
    dedupe_key: str,
    now: dt.datetime,
) -> str:
    """Apply one receipt in its own transaction (see :func:`apply_receipt`).

    It reads before it writes, so it asks for the write lock up front (``claim``).
    """
    with engine.connect().execution_options(claim=True) as conn, conn.begin():
        return apply_receipt(
            conn,
            settings,
            source=source,
            notice_public_id=notice_public_id,
            provider_message_id=provider_message_id,
            status=status,
            detail=detail,
            dedupe_key=dedupe_key,
            now=now,
        )


def store_batch(engine: Engine, source: str, body: str, query: str, now: dt.datetime) -> int:
    """Keep a verified webhook request for the worker: one insert, whatever its size."""
    with engine.begin() as conn:
        batch_id: int = conn.execute(
            insert(_BATCHES)
            .values(source=source, received_at=now, query=query[:2000], body=body)
            .returning(_BATCHES.c.id)
        ).scalar_one()
    return batch_id


def twilio_receipt_fields(form: Mapping[str, list[str]]) -> tuple[str, str, str]:
    """(status, message sid, error code) from a Twilio status callback's form."""

    def first(*names: str) -> str:
        for name in names:
            values = form.get(name)
            if values and values[0]:
                return values[0]
        return ""

    status = first("MessageStatus", "SmsStatus").lower()
    return status, first("MessageSid", "SmsSid"), first("ErrorCode")


def _twilio_events(batch: Any) -> list[dict[str, Any] | None]:
    form = parse_qs(batch.body, keep_blank_values=True)
    status, sid, error_code = twilio_receipt_fields(form)
    notice = (parse_qs(batch.query).get("notice") or [None])[0]
    if not status or not sid:
        return []
    return [
        {
            "source": "twilio",
            "notice_public_id": notice,
            "provider_message_id": sid,
            "status": status,
            "detail": f"error {error_code}" if error_code else "",
            "dedupe_key": f"twilio:{sid}:{status}",
        }
    ]


def _sendgrid_events(batch: Any) -> list[dict[str, Any] | None] | None:
    try:
        events = json.loads(batch.body)
    except ValueError:
        return None
    if not isinstance(events, list):
        return None
    out: list[dict[str, Any] | None] = []
    for event in events:
        if not isinstance(event, dict):
            out.append(None)
            continue
        status = str(event.get("event", "")).lower()
        message_id = str(event.get("sg_message_id", "")).split(".")[0] or None
        dedupe = str(event.get("sg_event_id") or f"{message_id}:{status}:{event.get('timestamp')}")
        notice = event.get("notice_id")
        out.append(
            {
                "source": "sendgrid",
                "notice_public_id": notice if isinstance(notice, str) else None,
                "provider_message_id": message_id,
                "status": status,
                "detail": str(event.get("reason") or event.get("response") or ""),
                "dedupe_key": f"sendgrid:{dedupe}",
            }
        )
    return out


@dataclass
class ReceiptsResult:
    batches: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "events": self.events, "outcomes": dict(self.outcomes)}


def _take_oldest(conn: Connection) -> Any | None:
    """The oldest unapplied batch, locked; ``None`` if none, or if another worker has it.

    Only the oldest is ever taken, so batches are applied strictly in arrival order
    (a notice's 'sent' before its 'delivered') even with several workers: a second
    worker that finds the oldest locked stops instead of skipping ahead.
    """
    oldest = conn.execute(
        select(_BATCHES.c.id)
        .where(_BATCHES.c.applied_at.is_(None))
        .order_by(_BATCHES.c.id)
        .limit(1)
    ).scalar()
    if oldest is None:
        return None
    query = select(_BATCHES).where(_BATCHES.c.id == oldest, _BATCHES.c.applied_at.is_(None))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return conn.execute(query).first()


def apply_stored_receipts(
    engine: Engine, settings: Settings, now: dt.datetime, *, max_batches: int | None = None
) -> ReceiptsResult:
    """Apply stored webhook batches, oldest first, each in one transaction.

    Idempotent: a batch applied twice (a crash before its commit) finds every event's
    dedupe key taken. A batch that cannot be read is marked applied with the reason,
    so one bad request never blocks the receipts behind it.
    """
    result = ReceiptsResult()
    while max_batches is None or result.batches < max_batches:
        with engine.connect().execution_options(claim=True) as conn, conn.begin():
            batch = _take_oldest(conn)
            if batch is None:
                break
            events = _twilio_events(batch) if batch.source == "twilio" else _sendgrid_events(batch)
            outcomes: list[str] = []
            if events is None:
                outcomes.append("unreadable")
            else:
                for event in events:
                    if event is None:
                        outcomes.append("ignored")
                        continue
                    outcomes.append(apply_receipt(conn, settings, now=now, **event))
            conn.execute(
                update(_BATCHES)
                .where(_BATCHES.c.id == batch.id)
                .values(applied_at=now, outcome=outcomes)
            )
        result.batches += 1
        result.events += len(outcomes)
        result.outcomes.update(outcomes)
    return result
