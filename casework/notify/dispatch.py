"""The dispatcher: claim queued notices, render, send, record every attempt.

Record now, send later: notices were committed to the outbox by the use case or
the sweep. A dispatcher claims a batch (a conditional UPDATE; ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and commits the claim
BEFORE any provider call, so no database session is held open across a slow
API. Each result is then written in its own short transaction.

A notice claimed by a worker that died stays ``sending`` until its claim goes
stale, then another worker takes it again. Only in the window between a
provider accepting a message and that worker's commit can a message go twice;
the result write counts such re-sends (``claimed_by`` no longer ours).

Transient failures (5xx, timeouts, 429) retry with exponential backoff and full
jitter, honouring Retry-After; permanent ones (invalid number, 4xx) and an
exhausted retry budget fail the notice and escalate to the adviser with the
reason. SMS never goes out in quiet hours (21:00-08:00 London).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update

from casework.config import Settings
from casework.models import Case, Deadline, DeliveryEvent, Notice, NoticeStatus
from casework.notices import in_quiet_hours, insert_notices, next_sms_moment, outbox_row
from casework.notify.base import Channel, DeliveryError, OutgoingMessage
from casework.notify.outbox import OutboxChannel
from casework.notify.render import RenderError, render

log = logging.getLogger("casework.dispatch")

MAX_ATTEMPTS = 8
BASE_BACKOFF = dt.timedelta(seconds=30)
MAX_BACKOFF = dt.timedelta(hours=1)
CLAIM_TIMEOUT = dt.timedelta(minutes=5)
FINISHED_DEADLINE = ("met", "cancelled")


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    escalated: int = 0
    resent_after_reclaim: int = 0
    taken_over: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)

    def merge(self, other: DispatchResult) -> None:
        for name, value in other.__dict__.items():
            if name == "by_channel":
                self.by_channel.update(value)
            else:
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "by_channel"}
        out["by_channel"] = dict(self.by_channel)
        return out


def build_channels(settings: Settings) -> dict[str, Channel]:
    """SendGrid and Twilio when their keys are set, else the outbox (runs offline)."""
    channels: dict[str, Channel] = {"email": OutboxChannel("email"), "sms": OutboxChannel("sms")}
    if settings.sendgrid_api_key:
        from casework.notify.sendgrid_email import SendGridEmailChannel

        channels["email"] = SendGridEmailChannel(
            settings.sendgrid_api_key,
            settings.sendgrid_host,
            settings.sendgrid_from,
            settings.provider_timeout_seconds,
        )
    if settings.twilio_account_sid and settings.twilio_auth_token:
        from casework.notify.twilio_sms import TwilioSmsChannel

        channels["sms"] = TwilioSmsChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            base_url=settings.twilio_base_url,
            status_callback_base=settings.public_url,
            timeout=settings.provider_timeout_seconds,
        )
    return channels


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> dt.timedelta:
    """Exponential backoff with full jitter, never sooner than the provider asked."""
    ceiling = min(BASE_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    delay = dt.timedelta(seconds=rng.uniform(ceiling.total_seconds() / 2, ceiling.total_seconds()))
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return delay


def _claim(engine: Engine, now: dt.datetime, batch: int, me: str) -> list[Any]:
    n = Notice.__table__  # type: ignore[attr-defined]
    d = Deadline.__table__  # type: ignore[attr-defined]
    with engine.connect().execution_options(claim=True) as conn, conn.begin():
        # Two picks, each served by its own partial index: due queued notices, and
        # notices whose worker died mid-send (claim older than CLAIM_TIMEOUT).
        due = (
            select(n.c.id)
            .where(n.c.status == NoticeStatus.queued, n.c.not_before <= now)
            .order_by(n.c.not_before)
            .limit(batch)
        )
        stale = (
            select(n.c.id)
            .where(n.c.status == NoticeStatus.sending, n.c.claimed_at < now - CLAIM_TIMEOUT)
            .limit(batch)
        )
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
            stale = stale.with_for_update(skip_locked=True)
        ids = [r.id for r in conn.execute(stale)]
        ids += (
            [r.id for r in conn.execute(due.limit(max(batch - len(ids), 0)))]
            if len(ids) < batch
            else []
        )
        if not ids:
            return []
        conn.execute(
            update(n)
            .where(n.c.id.in_(ids))
            .values(
                status=NoticeStatus.sending,
                claimed_at=now,
                claimed_by=me,
                attempts=n.c.attempts + 1,
            )
        )
        c = Case.__table__  # type: ignore[attr-defined]
        rows = conn.execute(
            select(n, d.c.status.label("deadline_status"), c.c.state.label("case_state"))
            .select_from(
                n.outerjoin(d, d.c.id == n.c.deadline_id).outerjoin(c, c.c.id == n.c.case_id)
            )
            .where(n.c.id.in_(ids))
            .order_by(n.c.not_before)
        ).all()
    return list(rows)


def dispatch(
    engine: Engine,
    now: dt.datetime,
    settings: Settings,
    *,
    channels: dict[str, Channel] | None = None,
    batch_size: int = 200,
    max_batches: int | None = None,
    me: str | None = None,
    rng: random.Random | None = None,
    concurrency: int = 1,
) -> DispatchResult:
    """Deliver every notice that is due at ``now``; returns what happened.

    ``concurrency`` sender threads overlap provider calls within one worker (the
    adapters are thread-safe); each notice is still claimed, renewed and finished
    under this worker's claim, so the guarantees are the same as with one thread.
    """
    channels = channels or build_channels(settings)
    me = me or worker_id()
    rng = rng or random.Random()
    result = DispatchResult()
    started = time.monotonic()
    merge_lock = threading.Lock()

    def deliver(row: Any) -> None:
        # Claims are renewed at "now plus the time this run has taken", so a long
        # batch keeps its remaining claims fresh.
        elapsed = dt.timedelta(seconds=time.monotonic() - started)
        own = DispatchResult()
        _deliver(engine, row, now, settings, channels, me, rng, own, now + elapsed)
        with merge_lock:
            result.merge(own)

    batches = 0
    with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        while max_batches is None or batches < max_batches:
            rows = _claim(engine, now, batch_size, me)
            batches += 1
            result.claimed += len(rows)
            if concurrency <= 1:
                for row in rows:
                    deliver(row)
            else:
                list(pool.map(deliver, rows))
            if len(rows) < batch_size:
                break
    return result


def _fast_commit(conn: Any) -> None:
    """On PostgreSQL, don't wait for the WAL flush for a claim renewal or a result.

    A database crash could then lose the last fraction of a second of results, and
    those notices would be sent again: the same bounded duplicate window a worker
    crash already has. It halves the time each notice spends waiting on commits.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _still_ours(engine: Engine, notice_id: int, me: str, now: dt.datetime) -> bool:
    """Renew our claim just before the provider call; False if it was taken over.

    A batch can take longer than CLAIM_TIMEOUT when a provider is slow; without
    this check a worker would go on to send notices another worker had already
    reclaimed and sent. Renewing narrows the duplicate window to one send.
    """
    n = Notice.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        _fast_commit(conn)
        renewed = conn.execute(
            update(n)
            .where(n.c.id == notice_id, n.c.status == NoticeStatus.sending, n.c.claimed_by == me)
            .values(claimed_at=now)
        ).rowcount
    return bool(renewed)


def _finish(
    engine: Engine, notice_id: int, me: str, values: dict[str, Any], event: dict[str, Any] | None
) -> bool:
    """Write one outcome if we still hold the claim; False if another worker took it."""
    n = Notice.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        _fast_commit(conn)
        changed = conn.execute(
            update(n)
            .where(n.c.id == notice_id, n.c.status == NoticeStatus.sending, n.c.claimed_by == me)
            .values(**values)
        ).rowcount
        if event is not None:
            conn.execute(DeliveryEvent.__table__.insert(), [event])  # type: ignore[attr-defined]
    return bool(changed)


def _deliver(
    engine: Engine,
    row: Any,
    now: dt.datetime,
    settings: Settings,
    channels: dict[str, Channel],
    me: str,
    rng: random.Random,
    result: DispatchResult,
    renew_at: dt.datetime,
) -> None:
    kind = (row.context or {}).get("notice_kind", "event")
    if row.deadline_id is not None and row.deadline_status in FINISHED_DEADLINE:
        # The clock was met or cancelled after this reminder was queued: it would
        # only confuse (healthchecks/Notify re-check status before sending too).
        _finish(
            engine,
            row.id,
            me,
            {
                "status": NoticeStatus.skipped,
                "last_error": f"skipped: the deadline was {row.deadline_status} before sending",
            },
            None,
        )
        result.skipped += 1
        return
    if kind == "event" and row.case_state == "withdrawn" and row.template != "withdrawal_confirmed":
        # e.g. a meeting confirmation held overnight for quiet hours, then the family
        # withdrew: telling them about a meeting that will not happen only confuses.
        _finish(
            engine,
            row.id,
            me,
            {"status": NoticeStatus.skipped, "last_error": "skipped: the case was withdrawn"},
            None,
        )
        result.skipped += 1
        return
    if kind == "reminder" and row.deadline_status == "missed":
        _finish(
            engine,
            row.id,
            me,
            {
                "status": NoticeStatus.skipped,
                "last_error": "skipped: the deadline passed before sending",
            },
            None,
        )
        result.skipped += 1
        return
    if row.channel == "sms" and in_quiet_hours(now, settings):
        _finish(
            engine,
            row.id,
            me,
            {
                "status": NoticeStatus.queued,
                "not_before": next_sms_moment(now, settings),
                "attempts": row.attempts - 1,
                "claimed_by": None,
            },
            None,
        )
        result.deferred += 1
        return
    try:
        subject, body = render(row.template, row.channel, dict(row.context or {}))
    except RenderError as exc:
        _fail(engine, row, now, me, str(exc), settings, result)
        return
    if not _still_ours(engine, row.id, me, renew_at):
        # Another worker reclaimed this notice while we were busy with earlier ones
        # (our claim went stale): it is theirs to send now.
        result.taken_over += 1
        return
    message = OutgoingMessage(
        notice_id=row.public_id,
        channel=row.channel,
        to=row.to_address,
        body=body,
        subject=subject or None,
    )
    try:
        sent = channels[row.channel].send(message)
    except DeliveryError as exc:
        attempt_event = _event(row.id, now, "attempt", "error", f"{exc.code or ''} {exc}".strip())
        # A rejected API key (401/403) is our configuration, not the recipient: keep
        # retrying (and escalate when the budget runs out) rather than failing every
        # family's notice for good the moment someone rotates a key.
        permanent = exc.permanent and exc.code not in ("401", "403")
        if permanent or row.attempts >= MAX_ATTEMPTS:
            reason = str(exc) if permanent else f"gave up after {row.attempts} attempts: {exc}"
            _fail(engine, row, now, me, reason, settings, result, attempt_event)
            return
        retry_at = now + backoff(row.attempts, exc.retry_after, rng)
        _finish(
            engine,
            row.id,
            me,
            {
                "status": NoticeStatus.queued,
                "not_before": retry_at,
                "last_error": str(exc)[:2000],
                "claimed_by": None,
            },
            attempt_event,
        )
        result.retried += 1
        return
    ok = _finish(
        engine,
        row.id,
        me,
        {
            "status": NoticeStatus.sent,
            "provider": sent.provider,
            "provider_message_id": sent.provider_message_id,
            "sent_at": now,
            "subject": subject[:300],
            "body": body,
            "last_error": "",
        },
        _event(row.id, now, "attempt", "sent", f"{sent.provider} {sent.provider_message_id or ''}"),
    )
    if not ok:
        result.resent_after_reclaim += 1
        log.warning("sent after claim was taken over", extra={"notice_id": row.public_id})
    result.sent += 1
    result.by_channel[f"{row.channel}:{sent.provider}"] += 1


def _event(
    notice_id: int, now: dt.datetime, source: str, status: str, detail: str
) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "at": now,
        "source": source,
        "status": status,
        "detail": detail[:2000],
        "dedupe_key": None,
    }


def _fail(
    engine: Engine,
    row: Any,
    now: dt.datetime,
    me: str,
    reason: str,
    settings: Settings,
    result: DispatchResult,
    attempt_event: dict[str, Any] | None = None,
) -> None:
    """Give up on a notice and tell a person who can reach the recipient another way."""
    _finish(
        engine,
        row.id,
        me,
        {"status": NoticeStatus.failed, "last_error": reason[:2000], "escalated": True},
        attempt_event,
    )
    result.failed += 1
    if escalate_failure(engine, row, now, reason, settings):
        result.escalated += 1


def escalate_failure(
    engine: Engine, row: Any, now: dt.datetime, reason: str, settings: Settings
) -> bool:
    """Queue 'could not deliver' to the adviser (or the manager if the adviser's failed)."""
    if row.recipient_role == "manager":
        log.error(
            "notice to the manager failed", extra={"notice_id": row.public_id, "reason": reason}
        )
        return False
    to_role = "manager" if row.recipient_role == "adviser" else "adviser"
    address = settings.team.manager_email if to_role == "manager" else settings.team.adviser_email
    context = dict(row.context or {})
    context.update(
        {
            "notice_kind": "escalation",
            "failed_channel": row.channel,
            "failed_template": row.template,
            "failed_recipient": row.recipient_role,
            "reason": reason,
        }
    )
    context.setdefault(
        "case_link", f"{settings.public_url.rstrip('/')}/cases/{context.get('reference', '')}"
    )
    context.setdefault("reference", "")
    row_to_insert = outbox_row(
        key=f"notice:{row.id}:failed:{to_role}:email",
        case_id=row.case_id,
        template="escalation_delivery_failed",
        recipient=to_role,
        channel="email",
        address=address,
        context=context,
        not_before=now,
        now=now,
    )
    with engine.begin() as conn:
        new = insert_notices(conn, [row_to_insert])
    return bool(new)
