"""The dispatcher: claim due notices one sender at a time, render, send, record the outcome.

Record now, send later: notices were committed to the outbox by the use case or
the sweep. Each of the worker's ``dispatch_concurrency`` sender threads claims ONE
notice (the oldest due; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite), commits the claim, sends it, and writes the outcome in one
short transaction. No transaction is held open across a provider call.

Claims and results are batched, not one commit per notice each: the senders take
notices from a small queue the worker fills with ONE claim of up to one notice per
sender, and an accepted send's outcome (the provider's id) waits in a buffer that is
written, one transaction, once it holds one result per sender (and whenever a sender
runs out of work). Claims stay alive by the lease heartbeat, never by a write per
notice. A run keeps one connection for its claims and one for its writes, and on
PostgreSQL a claim is one ``UPDATE ... RETURNING`` and a batch of outcomes one
statement (about two round trips a notice in all).

The duplicate bound. A worker holds at most ``2 x dispatch_concurrency`` claims: at
most one per sender being sent or waiting in the queue, and at most one per sender
sent but not yet written (a claim is only made while fewer than that are held). A
crash (SIGKILL, power loss) can re-send only those: **a crash re-sends at most the
notices in flight plus the results not yet written, never more than twice the sender
threads, and each at most once per crash**. A reclaimed notice that already has a
provider id is finished, never resent. Neither SendGrid's v3 Mail Send nor Twilio's
Messages API documents a request idempotency key, so none is sent; each request
carries the notice's public id (``custom_args`` / the status callback URL), which
is how duplicates are recognised downstream.

Claims are a lease (``dispatch_lease_seconds``, at most 30 s) renewed by a
heartbeat thread for the notices this worker is actually sending; a dead worker's
notices are taken over once the lease runs out. A notice whose processing raises
is released at once (or, if the database is gone, by the lease), and the other
senders carry on.

``attempts`` counts requests made to the provider, written with their outcome: a
claim is not an attempt, so a crash and reclaim cost nothing from the budget.
What a failure means is the adapter's decision (:class:`FailureKind`): transient
ones retry with exponential backoff and full jitter, honouring Retry-After;
permanent ones and an exhausted budget fail the notice and queue its escalation
in the same transaction; a rejected credential holds the notice (retried with
backoff, not counted) and raises one alarm to the manager per episode. SMS never
goes out in quiet hours (21:00-08:00 London).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, or_, select, text, update
from sqlalchemy.dialects import postgresql

from casework import deadlines as dl
from casework.config import Settings
from casework.driver import fixed
from casework.models import Case, Deadline, DeliveryEvent, Document, Notice, NoticeStatus
from casework.notices import (
    NoticeReason,
    about_the_meeting,
    family_link_url,
    in_quiet_hours,
    insert_notices,
    live_family_link_columns,
    next_sms_moment,
    reason_text,
)
from casework.notify import letter
from casework.notify.base import (
    Attachment,
    Channel,
    DeliveryError,
    FailureKind,
    OutgoingMessage,
)
from casework.notify.escalate import (
    alarm_opened_at,
    close_alarms,
    credential_alarm_row,
    delivery_failed_row,
    letter_fallback_row,
    open_credential_alarm,
)
from casework.notify.outbox import OutboxChannel
from casework.notify.render import RenderError, render
from casework.pdf import PdfRenderError

log = logging.getLogger("casework.dispatch")

MAX_ATTEMPTS = 8
BASE_BACKOFF = dt.timedelta(seconds=30)
MAX_BACKOFF = dt.timedelta(hours=1)
# While a provider refuses our key: retry no sooner than this, and no later than the
# max, growing with how long the alarm has been open.
CREDENTIAL_MIN_WAIT = dt.timedelta(seconds=30)
CREDENTIAL_MAX_WAIT = dt.timedelta(minutes=15)
# A notice whose processing crashed (a database error, a bug) waits this long before
# another try, so one bad notice cannot spin a sender.
RELEASE_DELAY = dt.timedelta(seconds=30)
FINISHED_DEADLINE = ("met", "cancelled")
# The delivery event status of a send refused because the recipient opted out.
OPTED_OUT = "opted_out"

_N: Any = Notice.__table__  # type: ignore[attr-defined]
_EVENTS: Any = DeliveryEvent.__table__  # type: ignore[attr-defined]
_DOCS: Any = Document.__table__  # type: ignore[attr-defined]


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    escalated: int = 0
    held: int = 0  # waiting for a provider to accept our key again
    alarms: int = 0  # credential alarm episodes this run opened
    resent_after_reclaim: int = 0  # sent, then found our claim had been taken over
    taken_over: int = 0  # an outcome not written because another worker had the notice
    finished_on_reclaim: int = 0  # reclaimed with a provider id: recorded sent, not resent
    errors: int = 0  # notices (or claims) whose processing raised; released
    printed: int = 0  # letters made into PDFs, waiting for staff to post them
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


def lease_of(settings: Settings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.dispatch_lease_seconds)


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> dt.timedelta:
    """Exponential backoff with full jitter, never sooner than the provider asked."""
    ceiling = min(BASE_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    delay = dt.timedelta(seconds=rng.uniform(ceiling.total_seconds() / 2, ceiling.total_seconds()))
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return delay


def credential_wait(
    alarm_age: dt.timedelta, retry_after: float | None, rng: random.Random
) -> dt.timedelta:
    """How long a held notice waits: as long as the alarm has been open, within bounds.

    Early on a rotated key is usually fixed within minutes, so retries are quick;
    a key left broken overnight is probed every quarter of an hour, not hammered.
    """
    ceiling = min(max(alarm_age, CREDENTIAL_MIN_WAIT), CREDENTIAL_MAX_WAIT).total_seconds()
    delay = dt.timedelta(seconds=rng.uniform(ceiling / 2, ceiling))
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return delay


class _Clock:
    """The run's ``now`` advanced by real elapsed time: claims and leases use it.

    Callers pass ``now`` (tests and ``tick --at`` pin it); a long run must still
    stamp claims and heartbeats with moving time or its leases would look stale.
    """

    def __init__(self, now: dt.datetime) -> None:
        self._now = now
        self._started = time.monotonic()

    def __call__(self) -> dt.datetime:
        return self._now + dt.timedelta(seconds=time.monotonic() - self._started)


class _InFlight:
    """Ids of the notices this worker is sending right now (what the heartbeat renews)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[int] = set()

    def add(self, notice_id: int) -> None:
        with self._lock:
            self._ids.add(notice_id)

    def discard(self, notice_id: int) -> None:
        with self._lock:
            self._ids.discard(notice_id)

    def snapshot(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)


class _Heartbeat:
    """Renews this worker's claims on in-flight notices while the worker lives.

    Only in-flight notices are renewed: a notice whose processing failed and could
    not be released (the database went away) is left to expire with the lease, so
    a live worker never holds a notice it is not working on.
    """

    def __init__(
        self, engine: Engine, me: str, clock: _Clock, inflight: _InFlight, every: float
    ) -> None:
        self._engine, self._me, self._clock, self._inflight = engine, me, clock, inflight
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatch-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            ids = self._inflight.snapshot()
            if not ids:
                continue
            try:
                renew(self._engine, ids, self._me, self._clock())
            except Exception as exc:  # a lost connection: the next beat tries again
                log.warning("claim heartbeat failed: %s", type(exc).__name__)


def renew(engine: Engine, ids: list[int], me: str, at: dt.datetime) -> int:
    """Extend our claims on ``ids`` to ``at``; how many were still ours."""
    with engine.begin() as conn:
        _fast_commit(conn)
        return int(
            conn.execute(
                update(_N)
                .where(
                    _N.c.id.in_(ids),
                    _N.c.status == fixed(NoticeStatus.sending),
                    _N.c.claimed_by == me,
                )
                .values(claimed_at=at)
            ).rowcount
        )


class _Budget:
    """How many more claims this run may make (``limit``), shared by the senders."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def give_back(self, count: int) -> None:
        """Claims taken from the budget but not made (nothing more was due)."""
        if self._left is not None and count > 0:
            with self._lock:
                self._left += count

    def take(self) -> bool:
        if self._left is None:
            return True
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def _fast_commit(conn: Connection) -> None:
    """On PostgreSQL, don't wait for the WAL flush for a claim, a renewal or a result.

    A database crash could then lose the last fraction of a second of writes, and
    those notices would be sent again: the same bounded window a worker crash
    already has. It halves the time each notice spends waiting on commits.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


class _Link:
    """A connection a dispatch run keeps for one kind of short transaction.

    Why: claims (serialised by the worker's lock) and result writes each took a
    connection from the pool, whose pre-ping is a round trip, and on PostgreSQL set
    ``synchronous_commit`` per transaction, another: a third of a notice's round
    trips. The kept connection sets it once for its session and resets it before
    going back to the pool; one that failed is thrown away (never pooled) and the
    next transaction opens a fresh one. Transactions on it take turns (``lock``).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self.lock = threading.Lock()

    def get(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(claim=True)
            if conn.dialect.name == "postgresql":
                # As _fast_commit, for this connection's session (reset in close).
                conn.exec_driver_sql("SET synchronous_commit TO OFF")
                conn.commit()
            self._conn = conn
        return self._conn

    def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self.lock:
            conn = self._conn
            if conn is None:
                return
            try:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("RESET synchronous_commit")
                    conn.commit()
                self._conn = None
                conn.close()
            except Exception:
                self.drop()


@contextlib.contextmanager
def _transaction(engine: Engine, link: _Link | None) -> Iterator[Connection]:
    """One short transaction (write-locked on SQLite), on ``link`` when given."""
    if link is None:
        with engine.connect().execution_options(claim=True) as conn, conn.begin():
            _fast_commit(conn)
            yield conn
        return
    with link.lock:
        conn = link.get()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            link.drop()
            raise


def claim_batch(
    engine: Engine,
    due_by: dt.datetime,
    at: dt.datetime,
    lease: dt.timedelta,
    me: str,
    n: int,
    link: _Link | None = None,
) -> list[Any]:
    """Claim up to ``n`` notices in one transaction: dead workers' expired claims first,
    then the oldest due, oldest first. ``at`` is the moving clock the claims are
    stamped with and leases are judged by; ``due_by`` is the run's fixed ``now``, so a
    notice this run put back for later (a retry, a held key) is not taken again by it.

    The statements are built once per process (:func:`_claim_statements`): building
    them per claim was a millisecond of CPU each time, as much as their round trips.
    ``link``: the run's kept connection for claims (see :class:`_Link`).
    """
    with _transaction(engine, link) as conn:
        stale, due, mark, load = _claim_statements(conn.dialect.name)
        ids: list[int] = list(conn.execute(stale, {"stale_before": at - lease, "n": n}).scalars())
        if len(ids) < n:
            ids += conn.execute(due, {"due_by": due_by, "n": n - len(ids)}).scalars()
        if not ids:
            return []
        params = {"ids": ids, "at": at, "me": me}
        if load is None:
            # PostgreSQL: one round trip, the claimed rows come back with what sending needs.
            rows = conn.execute(mark, params).all()
        else:
            conn.execute(mark, params)
            rows = conn.execute(load, {"ids": ids}).all()
    order = {notice_id: i for i, notice_id in enumerate(ids)}
    return sorted(rows, key=lambda row: order[row.id])


@lru_cache(maxsize=4)
def _claim_statements(dialect: str) -> tuple[Any, Any, Any, Any]:
    """(stale, due, mark, load) for :func:`claim_batch` on ``dialect``; ``load`` is None
    when ``mark`` returns the rows itself (PostgreSQL's UPDATE ... RETURNING)."""
    d = Deadline.__table__  # type: ignore[attr-defined]
    c = Case.__table__  # type: ignore[attr-defined]
    stale = (
        select(_N.c.id)
        .where(
            _N.c.status == fixed(NoticeStatus.sending), _N.c.claimed_at < bindparam("stale_before")
        )
        .order_by(_N.c.claimed_at, _N.c.id)
        .limit(bindparam("n"))
    )
    due = (
        select(_N.c.id)
        .where(_N.c.status == fixed(NoticeStatus.queued), _N.c.not_before <= bindparam("due_by"))
        .order_by(_N.c.not_before, _N.c.id)
        .limit(bindparam("n"))
    )
    mark = (
        update(_N)
        .where(_N.c.id.in_(bindparam("ids", expanding=True)))
        .values(status=NoticeStatus.sending, claimed_at=bindparam("at"), claimed_by=bindparam("me"))
    )
    # The family's link, read with the claim (not one lookup per notice).
    nonce, stored_hash = live_family_link_columns(_N.c.case_id)
    if dialect == "postgresql":
        stale = stale.with_for_update(skip_locked=True)
        due = due.with_for_update(skip_locked=True)
        returning = mark.returning(
            *_N.c,
            select(d.c.status)
            .where(d.c.id == _N.c.deadline_id)
            .scalar_subquery()
            .label("deadline_status"),
            select(c.c.state).where(c.c.id == _N.c.case_id).scalar_subquery().label("case_state"),
            nonce.label("link_nonce"),
            stored_hash.label("link_hash"),
        )
        return stale, due, returning, None
    load = (
        select(
            _N,
            d.c.status.label("deadline_status"),
            c.c.state.label("case_state"),
            nonce.label("link_nonce"),
            stored_hash.label("link_hash"),
        )
        .select_from(
            _N.outerjoin(d, d.c.id == _N.c.deadline_id).outerjoin(c, c.c.id == _N.c.case_id)
        )
        .where(_N.c.id.in_(bindparam("ids", expanding=True)))
    )
    return stale, due, mark, load


class _Work:
    """The worker's claimed notices, handed to its senders one at a time.

    Claims are made in one transaction for up to one notice per sender, and only
    while the worker holds fewer than ``2 x senders`` claims (queued here, being
    sent, or sent with the outcome not yet written): that is the duplicate bound.
    Claiming is serialised by a lock, so two senders never claim at once.
    """

    def __init__(
        self,
        engine: Engine,
        now: dt.datetime,
        clock: _Clock,
        lease: dt.timedelta,
        me: str,
        senders: int,
        budget: _Budget,
        inflight: _InFlight,
    ) -> None:
        self._engine, self._now, self._clock, self._lease, self._me = engine, now, clock, lease, me
        self._senders = senders
        self._budget, self._inflight = budget, inflight
        self._queue: deque[Any] = deque()
        self.link = _Link(engine)  # claims are serialised: one kept connection
        # Re-entrant: writing waiting results from here frees their claims (``done``).
        self._lock = threading.RLock()
        self._held = 0

    @property
    def limit(self) -> int:
        return 2 * self._senders

    def take(self, results: _Results) -> Any | None:
        """The next notice to send, or None when nothing more is due this run."""
        with self._lock:
            if not self._queue:
                if self._held >= self.limit:
                    # Every claim this worker may hold is waiting for its write.
                    for batch in results.take_all():
                        results.write(batch)
                room = min(self._senders, self.limit - self._held)
                wanted = 0
                while wanted < room and self._budget.take():
                    wanted += 1
                if wanted == 0:
                    return None
                rows = claim_batch(
                    self._engine,
                    self._now,
                    self._clock(),
                    self._lease,
                    self._me,
                    wanted,
                    self.link,
                )
                self._budget.give_back(wanted - len(rows))
                for row in rows:
                    self._inflight.add(row.id)
                self._held += len(rows)
                self._queue.extend(rows)
            # Nothing due: this sender ends; one still sending claims again when it is
            # done (what it does may queue more, such as an escalation due at once).
            return self._queue.popleft() if self._queue else None

    def done(self, count: int = 1) -> None:
        """``count`` claims finished (outcome written, or released)."""
        with self._lock:
            self._held -= count


class _Results:
    """Accepted sends waiting for their write, written one batch per transaction."""

    def __init__(
        self, engine: Engine, me: str, size: int, work_done: Any, alarm_every: float
    ) -> None:
        self._engine, self._me, self._size = engine, me, size
        self._pending: list[_Sent] = []
        self._lock = threading.Lock()
        self._work_done = work_done
        self._alarms = _AlarmCloser(alarm_every)
        self.link = _Link(engine)  # writes take turns on one kept connection
        # What the writes found, whichever sender wrote them (merged into the run's result).
        self.counts = DispatchResult()

    def add(self, sent: _Sent) -> list[_Sent] | None:
        """Keep ``sent``; a full batch to write comes back."""
        with self._lock:
            self._pending.append(sent)
            if len(self._pending) < self._size:
                return None
            batch, self._pending = self._pending, []
            return batch

    def alarm_may_be_open(self) -> None:
        """This worker held a notice for a refused key: close on the next success."""
        self._alarms.forget()

    def take_all(self) -> list[list[_Sent]]:
        with self._lock:
            batch, self._pending = self._pending, []
        return [batch] if batch else []

    def write(self, batch: list[_Sent]) -> None:
        """Write a batch's outcomes (retried on a fresh connection); then free its claims."""
        try:
            taken = _record_with_retries(self._engine, self._me, batch, self._alarms, self.link)
        except Exception as exc:  # the database stayed away: the lease decides
            log.warning("recording %d sent notices failed: %s", len(batch), type(exc).__name__)
            with self._lock:
                self.counts.errors += len(batch)
        else:
            for sent in batch:
                if sent.row.id in taken:
                    with self._lock:
                        self.counts.resent_after_reclaim += 1
                    log.warning(
                        "sent after claim was taken over", extra={"notice_id": sent.row.public_id}
                    )
        finally:
            self._work_done(batch)


class _AlarmCloser:
    """Which providers' credential alarms a success should close, and when.

    Why: closing them is an UPDATE per provider, and it ran with every batch of
    results, most of a batch's writes when no alarm is open (nearly always). A
    provider's alarms are closed by the run's first success through it, then again
    at most every ``every`` seconds (the heartbeat: an alarm another worker opened
    meanwhile closes within that), and at once after this worker held a notice for
    a refused key.
    """

    def __init__(self, every: float) -> None:
        self._every = every
        self._closed: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, providers: set[str]) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return sorted(p for p in providers if now - self._closed.get(p, -1e18) >= self._every)

    def closed(self, providers: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            self._closed.update(dict.fromkeys(providers, now))

    def forget(self) -> None:
        with self._lock:
            self._closed.clear()


@dataclass
class _Sent:
    """A send the provider accepted, its outcome not written yet."""

    row: Any
    values: dict[str, Any]
    event: dict[str, Any]
    now: dt.datetime


def dispatch(
    engine: Engine,
    now: dt.datetime,
    settings: Settings,
    *,
    channels: dict[str, Channel] | None = None,
    concurrency: int | None = None,
    limit: int | None = None,
    me: str | None = None,
    rng: random.Random | None = None,
) -> DispatchResult:
    """Deliver every notice due at ``now`` (at most ``limit`` claims); what happened.

    ``concurrency`` (default ``settings.dispatch_concurrency``) sender threads each
    claim, send and finish one notice at a time until nothing is due.
    """
    channels = channels or build_channels(settings)
    me = me or worker_id()
    rng = rng or random.Random()
    senders = max(1, settings.dispatch_concurrency if concurrency is None else concurrency)
    clock = _Clock(now)
    lease = lease_of(settings)
    inflight = _InFlight()
    budget = _Budget(limit)
    result = DispatchResult()
    merge_lock = threading.Lock()

    work = _Work(engine, now, clock, lease, me, senders, budget, inflight)

    def written(batch: list[_Sent]) -> None:
        for sent in batch:
            inflight.discard(sent.row.id)
        work.done(len(batch))

    results = _Results(engine, me, senders, written, settings.dispatch_heartbeat_seconds)

    def sender() -> None:
        own = DispatchResult()
        try:
            while True:
                try:
                    row = work.take(results)
                except Exception as exc:  # database unreachable: end this run, retry next tick
                    log.warning("claim failed: %s", type(exc).__name__)
                    own.errors += 1
                    return
                if row is None:
                    return
                own.claimed += 1
                accepted: _Sent | None = None
                held = own.held
                try:
                    accepted = _deliver(engine, row, now, clock, settings, channels, me, rng, own)
                except Exception as exc:
                    # This notice only: release it and go on with the next one.
                    log.warning(
                        "delivery of a notice failed: %s",
                        type(exc).__name__,
                        extra={"notice_id": row.public_id},
                    )
                    own.errors += 1
                    _release(engine, row.id, me, clock() + RELEASE_DELAY)
                if own.held != held:
                    results.alarm_may_be_open()
                if accepted is None:
                    inflight.discard(row.id)
                    work.done()
                    continue
                batch = results.add(accepted)
                if batch is not None:
                    results.write(batch)
        finally:
            # Out of work (or failing): write what waits, this sender's and any other's.
            for batch in results.take_all():
                results.write(batch)
            with merge_lock:
                result.merge(own)

    try:
        with _Heartbeat(engine, me, clock, inflight, settings.dispatch_heartbeat_seconds):
            if senders == 1:
                sender()
            else:
                with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="sender") as pool:
                    for future in [pool.submit(sender) for _ in range(senders)]:
                        future.result()
    finally:
        work.link.close()
        results.link.close()
    result.merge(results.counts)
    return result


def _release(engine: Engine, notice_id: int, me: str, not_before: dt.datetime) -> None:
    """Give a notice back to the queue after its processing raised (best effort)."""
    try:
        with engine.begin() as conn:
            conn.execute(
                update(_N)
                .where(
                    _N.c.id == notice_id,
                    _N.c.status == fixed(NoticeStatus.sending),
                    _N.c.claimed_by == me,
                )
                .values(status=NoticeStatus.queued, claimed_by=None, not_before=not_before)
            )
    except Exception as exc:  # the lease expires on its own
        log.warning("could not release a notice: %s", type(exc).__name__)


def _ours(notice_id: int, me: str) -> Any:
    return (
        (_N.c.id == notice_id)
        & (_N.c.status == fixed(NoticeStatus.sending))
        & (_N.c.claimed_by == me)
    )


def _still_ours(engine: Engine, notice_id: int, me: str) -> bool:
    """Whether the notice is still claimed by us and unsent (nobody marked it since)."""
    with engine.connect() as conn:
        return conn.execute(select(_N.c.id).where(_ours(notice_id, me))).first() is not None


def _finish(
    engine: Engine, notice_id: int, me: str, values: dict[str, Any], event: dict[str, Any] | None
) -> bool:
    """Write one outcome if we still hold the claim; False if another worker took it."""
    with engine.begin() as conn:
        _fast_commit(conn)
        changed = conn.execute(update(_N).where(_ours(notice_id, me)).values(**values)).rowcount
        if event is not None:
            conn.execute(_EVENTS.insert(), [event])
    return bool(changed)


def _deliver(
    engine: Engine,
    row: Any,
    now: dt.datetime,
    clock: _Clock,
    settings: Settings,
    channels: dict[str, Channel],
    me: str,
    rng: random.Random,
    result: DispatchResult,
) -> _Sent | None:
    """Send one claimed notice; an accepted send comes back for the batch write, any
    other outcome is written here."""
    if row.provider_message_id:
        # Reclaimed after a crash between the provider's acceptance and the status
        # write: the provider has it, so it is sent. Sending again would duplicate it.
        _finish(engine, row.id, me, {"status": NoticeStatus.sent, "sent_at": now}, None)
        result.finished_on_reclaim += 1
        return None
    kind = (row.context or {}).get("notice_kind", "event")
    skip_reason = None
    if row.deadline_id is not None and row.deadline_status in FINISHED_DEADLINE:
        # The clock was met or cancelled after this reminder was queued: it would
        # only confuse (healthchecks/Notify re-check status before sending too).
        skip_reason = reason_text(
            NoticeReason.deadline_met
            if row.deadline_status == "met"
            else NoticeReason.deadline_cancelled,
            f"the deadline was {row.deadline_status} before sending",
        )
    elif (
        kind == "event"
        and row.case_state == "withdrawn"
        and (row.context or {}).get("event") != "withdraw"
    ):
        # e.g. a meeting confirmation held overnight for quiet hours, then the family
        # withdrew: telling them about a meeting that will not happen only confuses.
        # The withdrawal's own notices (whatever the config's rules for it) still go.
        skip_reason = reason_text(NoticeReason.case_withdrawn, "the case was withdrawn")
    elif kind == "reminder" and row.deadline_status == "missed":
        skip_reason = reason_text(
            NoticeReason.deadline_passed, "the deadline passed before sending"
        )
    if skip_reason is not None:
        _finish(
            engine, row.id, me, {"status": NoticeStatus.skipped, "last_error": skip_reason}, None
        )
        result.skipped += 1
        return None
    if row.channel == "post":
        _print_letter(engine, row, now, me, settings, result)
        return None
    # A one-time code was asked for a moment ago by the family itself, and lasts
    # minutes: it is sent at once, whatever the hour.
    if row.channel == "sms" and kind != "code" and in_quiet_hours(now, settings):
        _finish(
            engine,
            row.id,
            me,
            {
                "status": NoticeStatus.queued,
                "not_before": next_sms_moment(now, settings),
                "claimed_by": None,
            },
            None,
        )
        result.deferred += 1
        return None
    context = dict(row.context or {})
    if row.recipient_role == "family" and row.case_id is not None and kind != "code":
        # Every notice to a family carries the link to its own page, rebuilt from the
        # link as read with the claim, so a link the adviser revoked before then is
        # never sent again (the token is stored nowhere).
        link = family_link_url(settings, row.link_nonce, row.link_hash)
        if link and (row.channel != "sms" or settings.family_link_in_sms):
            context["family_link"] = link
    try:
        subject, body = render(row.template, row.channel, context)
    except RenderError as exc:
        _fail(
            engine,
            row,
            now,
            me,
            NoticeReason.unrenderable,
            str(exc),
            settings,
            result,
            None,
            attempts=row.attempts,
        )
        return None
    attachments = _attachments(engine, row)
    if about_the_meeting(row.context) and not _still_ours(engine, row.id, me):
        # A step cancelled or moved the meeting after this notice was claimed, and
        # marked it skipped (casework.notices.skip_meeting_notices): read again as
        # late as possible, just before the provider call, it is not sent. The window
        # left is this read to the provider's acceptance (no transaction is held
        # across a provider call); one sent in it is recorded sent, as it was.
        result.skipped += 1
        return None
    message = OutgoingMessage(
        notice_id=row.public_id,
        channel=row.channel,
        to=row.to_address,
        body=body,
        subject=subject or None,
        attachments=attachments,
    )
    channel = channels[row.channel]
    try:
        sent = channel.send(message)
    except DeliveryError as exc:
        _failed_send(engine, row, now, me, exc, channel.name, settings, rng, result)
        return None
    result.sent += 1
    result.by_channel[f"{row.channel}:{sent.provider}"] += 1
    # Written with the next batch of results (see _Results): the claim stays ours,
    # renewed by the heartbeat, until then.
    return _Sent(
        row=row,
        values={
            "provider": sent.provider,
            "provider_message_id": sent.provider_message_id,
            "sent_at": now,
            "subject": subject[:300],
            "body": body,
            "last_error": "",
            "attempts": row.attempts + 1,
        },
        event=_event(
            row.id, now, "attempt", "sent", f"{sent.provider} {sent.provider_message_id or ''}"
        ),
        now=now,
    )


class _LostClaim(Exception):
    """Another worker took the notice while its letter was printed: write nothing."""


def _print_letter(
    engine: Engine,
    row: Any,
    now: dt.datetime,
    me: str,
    settings: Settings,
    result: DispatchResult,
) -> None:
    """A notice by post: its email's words as a letter PDF, kept as a document, to post.

    The PDF, the document row and the notice moving to "to post" are one
    transaction, so the letters page never lists a letter without its PDF. The
    notice leaves the queue here; staff print and post it and say so.
    """
    if row.case_id is None:
        _fail(
            engine,
            row,
            now,
            me,
            NoticeReason.unrenderable,
            "a letter needs a case",
            settings,
            result,
            None,
            attempts=row.attempts,
        )
        return
    context = dict(row.context or {})
    enclosure = _enclosure(engine, context.get("enclosure_document_id"))
    try:
        subject, body = render(row.template, "email", context | {"attached": bool(enclosure)})
        pdf = letter.letter_pdf(
            subject=subject,
            body=body,
            recipient=str(row.to_address).split("\n"),
            sender=settings.service.postal_address or [settings.service.name],
            day=dl.local_date(now),
            enclosures=enclosure,
        )
    except (RenderError, PdfRenderError) as exc:
        _fail(
            engine,
            row,
            now,
            me,
            NoticeReason.unrenderable,
            str(exc),
            settings,
            result,
            None,
            attempts=row.attempts,
        )
        return
    if len(pdf) > settings.document_max_bytes:
        _fail(
            engine,
            row,
            now,
            me,
            NoticeReason.unrenderable,
            "the letter is larger than a document may be",
            settings,
            result,
            None,
            attempts=row.attempts,
        )
        return
    reference = str((row.context or {}).get("reference") or "case")
    documents = Document.__table__  # type: ignore[attr-defined]
    try:
        with engine.begin() as conn:
            document_id = conn.execute(
                documents.insert()
                .values(
                    case_id=row.case_id,
                    kind="letter",
                    series=f"notice-{row.public_id}"[:64],
                    version=1,
                    file_name=letter.file_name(reference, row.public_id),
                    media_type=letter.MEDIA_TYPE,
                    size=len(pdf),
                    sha256=hashlib.sha256(pdf).hexdigest(),
                    created_by=f"system:{me}"[:320],
                    created_at=now,
                    superseded_by=None,
                    content=pdf,
                )
                .returning(documents.c.id)
            ).scalar_one()
            changed = conn.execute(
                update(_N)
                .where(_ours(row.id, me))
                .values(
                    status=NoticeStatus.to_post,
                    document_id=document_id,
                    subject=subject[:300],
                    body=body,
                    provider="post",
                    attempts=row.attempts + 1,
                    last_error="",
                    claimed_by=None,
                )
            ).rowcount
            if not changed:
                raise _LostClaim
            conn.execute(
                _EVENTS.insert(), [_event(row.id, now, "attempt", "to_post", "letter printed")]
            )
    except _LostClaim:
        result.taken_over += 1
        return
    result.printed += 1
    result.by_channel["post:letter"] += 1


def _enclosure(engine: Engine, document_id: Any) -> tuple[bytes, ...]:
    """The stored PDF a letter encloses (a certificate), or nothing: a calendar file
    cannot be printed, and the letter's own words say where the meeting is."""
    if not isinstance(document_id, int):
        return ()
    with engine.connect() as conn:
        doc = conn.execute(
            select(_DOCS.c.media_type, _DOCS.c.content).where(_DOCS.c.id == document_id)
        ).first()
    if doc is None or doc.media_type != letter.MEDIA_TYPE:
        return ()
    return (bytes(doc.content),)


def _attachments(engine: Engine, row: Any) -> tuple[Attachment, ...]:
    """The stored document an email carries, read at sending time (the outbox keeps
    only its id, so what is sent is byte for byte what the store holds)."""
    document_id = getattr(row, "document_id", None)
    if document_id is None or row.channel != "email":
        return ()
    with engine.connect() as conn:
        doc = conn.execute(
            select(_DOCS.c.file_name, _DOCS.c.media_type, _DOCS.c.content).where(
                _DOCS.c.id == document_id
            )
        ).first()
    if doc is None:
        return ()
    return (Attachment(doc.file_name, doc.media_type, bytes(doc.content)),)


RECORD_TRIES = 3


def _record_with_retries(
    engine: Engine,
    me: str,
    batch: list[_Sent],
    alarms: _AlarmCloser | None = None,
    link: _Link | None = None,
) -> set[int]:
    """Record accepted sends, trying again on a fresh connection if the write fails.

    The provider already has the messages: releasing the notices now would send them
    twice, so a dropped connection (a failover, a killed backend) is retried first.
    Only when the database stays unreachable does the error reach the caller, and
    the lease decides. Returns the ids another worker had taken over.
    """
    for attempt in range(1, RECORD_TRIES + 1):
        try:
            return _record_sent(engine, me, batch, alarms, link)
        except Exception as exc:
            if attempt == RECORD_TRIES:
                raise
            log.warning("recording sent notices failed, retrying: %s", type(exc).__name__)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


# The statuses an accepted send is recorded over, and those it turns into ``sent``:
# ``skipped`` is one, a notice a step marked stale after the dispatcher's last read but
# that the provider had already taken (see _deliver): the record says what happened.
_NOW_SENT = (NoticeStatus.sending, NoticeStatus.skipped)
_RECORDABLE = (*_NOW_SENT, NoticeStatus.sent, NoticeStatus.delivered, NoticeStatus.failed)
_SENT_VALUES = ("provider", "provider_message_id", "sent_at", "subject", "body", "last_error")
# One statement for a whole batch (executemany): each row's own values, bound by name.
_RECORD_SENT = (
    update(_N)
    .where(
        _N.c.id == bindparam("notice"),
        _N.c.claimed_by == bindparam("me"),
        # ``sent`` too: a retried write whose first try did commit must find its row.
        # (OR, not IN: an IN list is expanded per execution, which executemany refuses.)
        or_(*(_N.c.status == status for status in _RECORDABLE)),
    )
    .values(
        status=case(
            (or_(*(_N.c.status == status for status in _NOW_SENT)), NoticeStatus.sent),
            else_=_N.c.status,
        ),
        attempts=bindparam("v_attempts"),
        **{name: bindparam(f"v_{name}") for name in _SENT_VALUES},
    )
)


def _record_sent(
    engine: Engine,
    me: str,
    batch: list[_Sent],
    alarms: _AlarmCloser | None = None,
    link: _Link | None = None,
) -> set[int]:
    """The provider accepted: store its ids, the status and the attempt events, one
    transaction for the batch.

    A receipt may have beaten us here (the webhook is fast, the write waited for its
    batch) and already marked a notice delivered or failed: the provider id, text and
    attempt are stored all the same and that later status is kept. Only a claim taken
    over by another worker (``claimed_by`` changed) stops a row's write.
    """
    ids = [sent.row.id for sent in batch]
    providers = {sent.values["provider"] for sent in batch} - {"outbox"}
    closing = alarms.due(providers) if alarms is not None else sorted(providers)
    with _transaction(engine, link) as conn:
        if conn.dialect.name == "postgresql":
            ours = set(conn.execute(_record_sent_pg(), _record_params(me, batch)).scalars())
            for provider in closing:
                close_alarms(conn, provider, batch[-1].now)
            if alarms is not None:
                alarms.closed(closing)
            return set(ids) - ours
        ours = set(
            conn.execute(select(_N.c.id).where(_N.c.id.in_(ids), _N.c.claimed_by == me)).scalars()
        )
        conn.execute(
            _RECORD_SENT,
            [
                {
                    "notice": sent.row.id,
                    "me": me,
                    "v_attempts": sent.values["attempts"],
                    **{f"v_{name}": sent.values[name] for name in _SENT_VALUES},
                }
                for sent in batch
            ],
        )
        conn.execute(_EVENTS.insert(), [sent.event for sent in batch])
        for provider in closing:
            close_alarms(conn, provider, batch[-1].now)
    if alarms is not None:
        alarms.closed(closing)
    return set(ids) - ours


_EVENT_COLUMNS = ("notice_id", "at", "source", "status", "detail", "dedupe_key")


def _record_params(me: str, batch: list[_Sent]) -> dict[str, Any]:
    params: dict[str, Any] = {"me": me, "ids": [sent.row.id for sent in batch]}
    params["v_attempts"] = [sent.values["attempts"] for sent in batch]
    for name in _SENT_VALUES:
        params[f"v_{name}"] = [sent.values[name] for sent in batch]
    for name in _EVENT_COLUMNS:
        params[f"e_{name}"] = [sent.event[name] for sent in batch]
    return params


@lru_cache(maxsize=1)
def _record_sent_pg() -> Any:
    """PostgreSQL: a batch's outcomes in ONE statement (arrays, one per column).

    The UPDATE (as _RECORD_SENT: our claim only, a later receipt's status kept) and
    the attempt events are data-modifying CTEs; the SELECT reads the statement's
    snapshot, from before them: the ids still claimed by us, as the separate SELECT
    did. Why: a SELECT, an executemany and an INSERT were three round trips a batch.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def arr(table: Any, column: str, param: str) -> str:
        return f"CAST(:{param} AS {table.c[column].type.compile(dialect=dialect)}[])"

    values = ["attempts", *_SENT_VALUES]
    v_cols = ", ".join(values)
    v_arrays = ", ".join(arr(_N, name, f"v_{name}") for name in values)
    sets = ", ".join(f"{name} = v.{name}" for name in values)
    e_arrays = ", ".join(arr(_EVENTS, name, f"e_{name}") for name in _EVENT_COLUMNS)
    statuses = ", ".join(f"'{s}'" for s in _RECORDABLE)
    now_sent = ", ".join(f"'{s}'" for s in _NOW_SENT)
    return text(
        f"WITH v AS (SELECT * FROM unnest({arr(_N, 'id', 'ids')}, {v_arrays})"
        f" AS v(id, {v_cols})),"
        f" u AS (UPDATE {_N.name} AS n SET"
        f" status = CASE WHEN n.status IN ({now_sent})"
        f" THEN '{NoticeStatus.sent}' ELSE n.status END, {sets}"
        f" FROM v WHERE n.id = v.id AND n.claimed_by = :me AND n.status IN ({statuses})"
        " RETURNING n.id),"
        f" e AS (INSERT INTO {_EVENTS.name} ({', '.join(_EVENT_COLUMNS)})"
        f" SELECT * FROM unnest({e_arrays}) RETURNING 1)"
        f" SELECT id FROM {_N.name} WHERE id = ANY({arr(_N, 'id', 'ids')}) AND claimed_by = :me"
    )


def _failed_send(
    engine: Engine,
    row: Any,
    now: dt.datetime,
    me: str,
    exc: DeliveryError,
    provider: str,
    settings: Settings,
    rng: random.Random,
    result: DispatchResult,
) -> None:
    """Act on the adapter's verdict; the dispatcher never re-reads provider codes."""
    attempt_event = _event(row.id, now, "attempt", "error", f"{exc.code or ''} {exc}".strip())
    if exc.kind is FailureKind.credential_rejected:
        _hold_for_credentials(engine, row, now, me, exc, provider, settings, rng, result)
        return
    attempts = row.attempts + 1
    if exc.kind is FailureKind.opted_out:
        # Failed like a permanent error (the adviser hears of it); the stored
        # "opted_out" event is what the family's consent change is made from
        # (casework.cases.family.apply_sms_opt_outs, run after every dispatch).
        opted = _event(row.id, now, "attempt", OPTED_OUT, f"{exc.code or ''} {exc}".strip())
        # A family's adviser hears from that use case, in its words, once; anyone else's
        # opt-out is an ordinary delivery failure.
        _fail(
            engine,
            row,
            now,
            me,
            NoticeReason.opted_out,
            str(exc),
            settings,
            result,
            opted,
            attempts=attempts,
            escalate=row.recipient_role != "family",
        )
        return
    if exc.kind is FailureKind.permanent or attempts >= MAX_ATTEMPTS:
        if exc.permanent:
            # The adapter's verdict on why, never a provider code read here.
            code = NoticeReason(exc.reason) if exc.reason else NoticeReason.rejected
            reason = str(exc)
        else:
            code, reason = NoticeReason.gave_up, f"gave up after {attempts} attempts: {exc}"
        _fail(
            engine,
            row,
            now,
            me,
            code,
            reason,
            settings,
            result,
            attempt_event,
            attempts=attempts,
            by_post=True,
        )
        return
    ok = _finish(
        engine,
        row.id,
        me,
        {
            "status": NoticeStatus.queued,
            "not_before": now + backoff(attempts, exc.retry_after, rng),
            "last_error": str(exc)[:2000],
            "claimed_by": None,
            "attempts": attempts,
        },
        attempt_event,
    )
    if ok:
        result.retried += 1
    else:
        result.taken_over += 1


def _hold_for_credentials(
    engine: Engine,
    row: Any,
    now: dt.datetime,
    me: str,
    exc: DeliveryError,
    provider: str,
    settings: Settings,
    rng: random.Random,
    result: DispatchResult,
) -> None:
    """Our key was refused: the notice waits, and the manager hears once per episode.

    Not counted as an attempt: the family's message is fine and must not run out of
    retries while an operator rotates a key. One transaction: the hold, the attempt
    event, the alarm and its escalation all happen, or none does.
    """
    # Reads, then writes: take the write lock up front (SQLite would otherwise refuse
    # the upgrade of a stale read snapshot at once, whatever the busy timeout).
    with engine.connect().execution_options(claim=True) as conn, conn.begin():
        opened_at = alarm_opened_at(conn, provider) or now
        wait = credential_wait(now - opened_at, exc.retry_after, rng)
        changed = conn.execute(
            update(_N)
            .where(_ours(row.id, me))
            .values(
                status=NoticeStatus.queued,
                not_before=now + wait,
                last_error=str(exc)[:2000],
                claimed_by=None,
            )
        ).rowcount
        if not changed:  # another worker has it: raise no alarm on its behalf
            result.taken_over += 1
            return
        conn.execute(
            _EVENTS.insert(),
            [_event(row.id, now, "attempt", "error", f"{exc.code or ''} {exc}".strip())],
        )
        episode = open_credential_alarm(conn, provider, now)
        if episode is not None:
            alarm = credential_alarm_row(provider, row.channel, episode, now, str(exc), settings)
            if insert_notices(conn, [alarm]):
                result.alarms += 1
                log.error("%s refused our credentials; notices are held", provider)
    result.held += 1


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
    code: NoticeReason,
    reason: str,
    settings: Settings,
    result: DispatchResult,
    attempt_event: dict[str, Any] | None,
    *,
    attempts: int,
    by_post: bool = False,
    escalate: bool = True,
) -> None:
    """Give up on a notice and tell a person who can reach the recipient another way.

    ``code`` says why in a word the pages translate; ``reason`` is the adapter's own
    sentence, kept after it for whoever investigates and put in the escalation.
    ``by_post``: the channel refused it (not our template): a family that no email
    or SMS of this message can reach any more gets it as a letter instead.

    Failing and queueing the escalation are one transaction, and both happen only
    while the claim is still ours: a crash between them cannot lose the escalation,
    and a worker that lost the notice to another one escalates nothing.
    """
    with engine.begin() as conn:
        changed = conn.execute(
            update(_N)
            .where(_ours(row.id, me))
            .values(
                status=NoticeStatus.failed,
                last_error=reason_text(code, reason),
                escalated=True,
                attempts=attempts,
            )
        ).rowcount
        if attempt_event is not None:
            conn.execute(_EVENTS.insert(), [attempt_event])
        if not changed:
            result.taken_over += 1
            return
        escalation = delivery_failed_row(row, now, reason, settings) if escalate else None
        new = insert_notices(conn, [escalation]) if escalation is not None else []
        # Neither email nor SMS reaches the family: the same words go by post.
        fallback = letter_fallback_row(conn, row, now) if by_post else None
        if fallback is not None:
            insert_notices(conn, [fallback])
    result.failed += 1
    if new:
        result.escalated += 1
