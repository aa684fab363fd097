"""The sweep: turn due clocks into notices, and missed clocks into escalations.

Each deadline row carries ``next_action_at``: the next moment the sweep has work
for it. A sweep claims the rows whose moment has come (indexed; a million
finished clocks cost nothing), and in ONE transaction per batch it writes their
notices to the outbox, marks missed ones missed, and moves ``next_action_at`` on.

Several sweepers may run at once: on PostgreSQL they claim with
``FOR UPDATE SKIP LOCKED`` and never see each other's rows; on SQLite the batch
runs under ``BEGIN IMMEDIATE`` so sweepers take turns. Either way the notices'
idempotency keys make a repeat harmless.

Notices go out on service days: a reminder or escalation whose day is one of the
service's closure days goes out on the service working day before it (the law's
clocks do not stop for a closure day, so the warning must come first).

After downtime the next sweep catches up: escalations are sent however late (a
missed legal clock must be heard about), but reminders whose moment passed long
ago, or whose deadline has already come, are recorded as skipped rather than sent
late in a burst.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, bindparam, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row

from casework import deadlines as dl
from casework import urgency
from casework.audit import seal_rows
from casework.config import ReminderRule, Settings
from casework.models import (
    MISSED_OUTSTANDING,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    NoticeStatus,
    Person,
    Provider,
)
from casework.notices import (
    CaseFacts,
    FamilyContact,
    NoticeReason,
    NoticeRules,
    addresses_for,
    base_context,
    deadline_context,
    insert_notices,
    notice_row,
    outbox_row,
    postal_lines,
    reason_text,
)
from casework.notify.render import template_keys

log = logging.getLogger("casework.reminders")


@dataclass
class SweepResult:
    """What one sweep did, for the CLI, the logs and the tests."""

    claimed: int = 0
    queued: int = 0
    skipped: int = 0
    missed: int = 0
    batches: int = 0
    by_template: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "queued": self.queued,
            "skipped": self.skipped,
            "missed": self.missed,
            "batches": self.batches,
            "by_template": dict(self.by_template),
        }


@dataclass(frozen=True)
class Plan:
    """What to do with one claimed deadline (pure result of :func:`plan_deadline`)."""

    notices: list[tuple[ReminderRule, bool]]  # (rule, stale)
    mark_missed: bool
    next_action_at: dt.datetime | None


# The law's clocks: a closure day never moves them, so one due on a closure day is
# escalated the service day before. Service targets are never due on a closure day,
# and a meeting the provider arranged is the provider's to keep.
CLOSURE_ESCALATED: frozenset[str] = frozenset(
    k for k in dl.DeadlineKind if k not in dl.SERVICE_TARGETS and k != "scheduled_meeting"
)


def closure_day_rules(kind: str, recipients: tuple[str, ...]) -> tuple[ReminderRule, ...]:
    """The escalations for a legal clock due on a closure day: on the due day, which
    :func:`deadlines.send_day` moves to the service day before."""
    return tuple(
        ReminderRule(
            id=f"closure-day-{recipient}",
            deadline=dl.DeadlineKind(kind),
            offset=0,
            kind="escalation",
            recipient=recipient,
            channels=["email"],
            template="escalation_near",
        )
        for recipient in recipients
    )


def plan_deadline(
    *,
    kind: str,
    status: str,
    due_date: dt.date,
    due_at: dt.datetime,
    now: dt.datetime,
    rules: NoticeRules,
    service: dl.WorkingCalendar | None = None,
) -> Plan:
    """Which rules fire now, whether the clock is now missed, and when to look again.

    ``service`` is the service calendar (``Settings.calendars.service``): it counts
    working-day offsets and moves a send day off a closure day. Pure: the same
    inputs always give the same plan, so re-running a sweep after a crash plans the
    same notices, whose keys then collide harmlessly.
    """
    fired: list[tuple[ReminderRule, bool]] = []
    upcoming: list[dt.datetime] = []
    missed_now = status == DeadlineStatus.open and now >= due_at
    past_due = now >= due_at
    candidates = rules.reminders.get(kind, ())
    if (
        service is not None
        and status == DeadlineStatus.open
        and kind in CLOSURE_ESCALATED
        and service.is_closure_day(due_date)
    ):
        candidates = (*candidates, *closure_day_rules(kind, rules.closure_day_escalation))
    for rule in candidates:
        moment = rule.fire_at(due_date, rules.default_at, service)
        if moment > now:
            upcoming.append(moment)
            continue
        if moment >= due_at:
            fired.append((rule, False))  # after the clock was missed: always sent
            continue
        # A rule meant for before the due time: useless once the clock has passed,
        # and a reminder whose moment went by long ago (downtime) would only confuse.
        if rule.kind == "escalation":
            fired.append((rule, False))  # escalations are always sent, however late
            continue
        stale = past_due or now - moment > rules.stale_after
        fired.append((rule, stale))
    if status == DeadlineStatus.open and not past_due:
        upcoming.append(due_at)  # come back to mark it missed if nobody meets it
    later = [m for m in upcoming if m > now]
    return Plan(fired, missed_now, min(later) if later else None)


def _claim(conn: Any, now: dt.datetime, batch: int) -> list[Row[Any]]:
    family = Person.__table__.alias("family")  # type: ignore[attr-defined]
    d = Deadline.__table__  # type: ignore[attr-defined]
    c = Case.__table__  # type: ignore[attr-defined]
    p = Provider.__table__  # type: ignore[attr-defined]
    query = (
        select(
            d.c.id,
            d.c.case_id,
            d.c.kind,
            d.c.status,
            d.c.due_date,
            d.c.due_at,
            d.c.citation,
            d.c.explanation,
            d.c.closed_reason,
            c.c.reference,
            c.c.kind.label("case_kind"),
            c.c.state,
            family.c.name,
            family.c.phone,
            family.c.email,
            family.c.preferred_channels,
            family.c.sms_consent,
            family.c.address_line_1,
            family.c.address_line_2,
            family.c.address_town,
            family.c.address_postcode,
            p.c.name.label("provider_name"),
            p.c.email.label("provider_email"),
        )
        .select_from(
            d.join(c, c.c.id == d.c.case_id)
            .outerjoin(family, (family.c.case_id == c.c.id) & (family.c.role == "family"))
            .outerjoin(p, p.c.id == c.c.provider_id)
        )
        .where(d.c.next_action_at <= now)
        .order_by(d.c.next_action_at)
        .limit(batch)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=d)
    return list(conn.execute(query))


def sweep(
    engine: Engine, now: dt.datetime, settings: Settings, *, batch_size: int = 1000
) -> SweepResult:
    """Process every clock whose moment has come, in batches, each one transaction."""
    rules = NoticeRules.from_settings(settings)
    service = settings.calendars.service
    result = SweepResult()
    while True:
        with engine.connect().execution_options(claim=True) as conn, conn.begin():
            rows = _claim(conn, now, batch_size)
            if rows:
                _process_batch(conn, rows, now, settings, rules, service, result)
        result.batches += 1
        result.claimed += len(rows)
        if len(rows) < batch_size:
            break
    if result.claimed:
        log.info(
            "sweep",
            extra={k: v for k, v in result.as_dict().items() if k != "by_template"},
        )
    return result


def _process_batch(
    conn: Any,
    rows: list[Row[Any]],
    now: dt.datetime,
    settings: Settings,
    rules: NoticeRules,
    service: dl.WorkingCalendar,
    result: SweepResult,
) -> None:
    notices: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    # plan_deadline is pure in (kind, status, due date and time) for one sweep's now,
    # rules and calendar, and a batch is full of clocks sharing them: plan each once.
    plans: dict[tuple[str, str, dt.date, dt.datetime], Plan] = {}
    for row in rows:
        plan_key = (row.kind, row.status, row.due_date, row.due_at)
        plan = plans.get(plan_key)
        if plan is None:
            plan = plans[plan_key] = plan_deadline(
                kind=row.kind,
                status=row.status,
                due_date=row.due_date,
                due_at=_aware(row.due_at),
                now=now,
                rules=rules,
                service=service,
            )
        status, closed_reason = row.status, row.closed_reason
        closed_at: dt.datetime | None = None
        if plan.mark_missed:
            status, closed_at = DeadlineStatus.missed, now
            closed_reason = MISSED_OUTSTANDING
            result.missed += 1
            events.append(
                {
                    "case_id": row.case_id,
                    "at": now,
                    "actor": "system:scheduler",
                    "event": "deadline_missed",
                    "from_state": row.state,
                    "to_state": row.state,
                    "data": {"deadline": row.kind, "due_date": row.due_date.isoformat()},
                    "channel": "scheduler",
                    "note": row.explanation,
                }
            )
        updates.append(
            {
                "b_id": row.id,
                "b_status": status,
                "b_closed_reason": closed_reason,
                "b_closed_at": closed_at,
                "b_next": plan.next_action_at,
            }
        )
        if plan.notices:
            notices.extend(_notices_for(row, plan, now, settings))
    if notices:
        for new in insert_notices(conn, notices):
            if new.status == NoticeStatus.skipped:
                result.skipped += 1
            else:
                result.queued += 1
                result.by_template[new.template] += 1
    d = Deadline.__table__  # type: ignore[attr-defined]
    if conn.dialect.name == "postgresql":
        # One statement for the whole batch (arrays, one placeholder per column); a
        # pipelined executemany of a thousand UPDATEs was a tenth of the sweep.
        conn.execute(
            _unnest_update(),
            {
                "ids": [u["b_id"] for u in updates],
                "nexts": [u["b_next"] for u in updates],
                "statuses": [
                    str(u["b_status"]) if u["b_closed_at"] is not None else None for u in updates
                ],
                "reasons": [
                    str(u["b_closed_reason"]) if u["b_closed_at"] is not None else None
                    for u in updates
                ],
                "closed": [u["b_closed_at"] for u in updates],
            },
        )
        updates = []
    missed_ids = {u["b_id"] for u in updates if u["b_closed_at"] is not None}
    plain = [u for u in updates if u["b_id"] not in missed_ids]
    if plain:
        conn.execute(
            update(d).where(d.c.id == bindparam("b_id")).values(next_action_at=bindparam("b_next")),
            [{"b_id": u["b_id"], "b_next": u["b_next"]} for u in plain],
        )
    missed = [u for u in updates if u["b_id"] in missed_ids]
    if missed:
        conn.execute(
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                closed_reason=bindparam("b_closed_reason"),
                closed_at=bindparam("b_closed_at"),
                next_action_at=bindparam("b_next"),
            ),
            missed,
        )
    if events:
        # Sealed into each case's audit chain like every row the use cases write.
        seal_rows(conn, events)
        conn.execute(CaseEvent.__table__.insert(), events)  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def _unnest_update() -> Any:
    """PostgreSQL: move every claimed clock on (and close the missed ones) in one UPDATE.

    A clock still running gets NULL status, reason and closing time, which leave its
    own untouched: the same writes as the two executemany UPDATEs used elsewhere.
    """
    d = Deadline.__table__  # type: ignore[attr-defined]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def array(name: str, column: str) -> str:
        return f"CAST(:{name} AS {d.c[column].type.compile(dialect=dialect)}[])"

    return text(
        f"UPDATE {d.name} AS d SET next_action_at = v.next,"
        " status = COALESCE(v.status, d.status),"
        " closed_reason = COALESCE(v.closed_reason, d.closed_reason),"
        " closed_at = COALESCE(v.closed_at, d.closed_at)"
        f" FROM unnest({array('ids', 'id')}, {array('nexts', 'next_action_at')},"
        f" {array('statuses', 'status')}, {array('reasons', 'closed_reason')},"
        f" {array('closed', 'closed_at')}) AS v(id, next, status, closed_reason, closed_at)"
        " WHERE d.id = v.id"
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# Kept in every deadline notice whatever its templates read: the sweep's own tests and
# the outbox listing read ``rule`` and ``reference``, dispatch reads ``notice_kind``,
# and ``due_date`` is how a notice learns it went out after its clock (``due_passed``).
_ALWAYS_KEPT: frozenset[str] = frozenset(
    {"notice_kind", "rule", "reference", "deadline_kind", "due_date", "due_passed"}
)


@lru_cache(maxsize=512)
def _kept_keys(template: str) -> frozenset[str] | None:
    """The context keys a notice of ``template`` carries (None: all of them).

    Why: each notice used to carry a JSON copy of the whole case; the templates (every
    channel, and the delivery-failure escalation that re-renders a failed notice's
    context) are the complete list of what is read. Cached per process.
    """
    keys = template_keys(template)
    return None if keys is None else keys | _ALWAYS_KEPT


@lru_cache(maxsize=4096)
def _deadline_context(
    kind: str, due_date: dt.date, explanation: str, citation: str
) -> dict[str, Any]:
    """:func:`notices.deadline_context`, memoised: a batch repeats the same clocks'
    dates and texts (formatting a date in words is most of its cost). Callers copy."""
    return deadline_context(kind, due_date, explanation, citation)


def _family(row: Row[Any]) -> FamilyContact | None:
    if row.name is None:
        return None
    return FamilyContact(
        row.name,
        row.phone or "",
        row.email or "",
        tuple(c for c in (row.preferred_channels or "").split(",") if c),
        bool(row.sms_consent),
        postal_lines(
            row.name,
            row.address_line_1 or "",
            row.address_line_2 or "",
            row.address_town or "",
            row.address_postcode or "",
        ),
    )


def _notices_for(
    row: Row[Any], plan: Plan, now: dt.datetime, settings: Settings
) -> list[dict[str, Any]]:
    facts = CaseFacts(
        case_id=row.case_id,
        reference=row.reference,
        kind=row.case_kind,
        state=row.state,
        family=_family(row),
        provider_name=row.provider_name,
        provider_email=row.provider_email,
        # The team's mailbox, as for event notices (see notices.queue_event_notices).
        adviser_email=None,
    )
    context = base_context(facts, settings) | _deadline_context(
        row.kind, row.due_date, row.explanation, row.citation
    )
    out = []
    for rule, stale in plan.notices:
        kept = _kept_keys(rule.template)
        ctx = context if kept is None else {k: v for k, v in context.items() if k in kept}
        for channel, address in addresses_for(rule.recipient, rule.channels, facts, settings):
            out.append(
                notice_row(
                    key=f"deadline:{row.id}:{rule.id}:{rule.recipient}:{channel}",
                    facts=facts,
                    template=rule.template,
                    recipient=rule.recipient,
                    channel=channel,
                    address=address,
                    context=ctx | {"notice_kind": rule.kind, "rule": rule.id},
                    not_before=now,
                    now=now,
                    settings=settings,
                    deadline_id=row.id,
                    status=NoticeStatus.skipped if stale else NoticeStatus.queued,
                    reason=_STALE_REASON if stale else "",
                )
            )
    return out


_STALE_REASON = reason_text(NoticeReason.stale, "its moment passed while the scheduler was down")


def queue_digest(engine: Engine, now: dt.datetime, settings: Settings, *, limit: int = 40) -> int:
    """The daily digest to the advisers' and the manager's addresses: due soon and late.

    Keyed by London date and role, so running it twice in a day (two workers, a
    restart) queues it once. Returns the number of digests queued.
    """
    today = dl.local_date(now)
    soon_days = settings.due_soon_service_days
    horizon = urgency.due_soon_horizon(today, soon_days, settings.calendars)
    d = Deadline.__table__  # type: ignore[attr-defined]
    c = Case.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        rows = conn.execute(
            select(d.c.kind, d.c.due_date, d.c.due_at, d.c.status, c.c.reference)
            .select_from(d.join(c, c.c.id == d.c.case_id))
            .where(
                ((d.c.status == DeadlineStatus.open) & (d.c.due_date <= horizon))
                | (
                    (d.c.status == DeadlineStatus.missed)
                    & (d.c.closed_reason == MISSED_OUTSTANDING)
                )
            )
            .order_by(d.c.due_date)
            .limit(limit + 1)
        ).all()

        def level(r: Any) -> urgency.Urgency:
            if r.status == DeadlineStatus.missed:
                return urgency.Urgency.overdue
            return urgency.assess(
                kind=r.kind,
                due_date=r.due_date,
                due_at=_aware(r.due_at),
                now=now,
                calendars=settings.calendars,
                soon_days=soon_days,
            ).level

        graded = [(r, level(r) is urgency.Urgency.overdue) for r in rows]
        late = [r for r, overdue in graded if overdue]
        due_today = [r for r, overdue in graded if not overdue and r.due_date == today]
        soon = [r for r, overdue in graded if not overdue and r.due_date > today]

        def lines(items: list[Any]) -> list[str]:
            from casework.notices import DEADLINE_LABELS

            return [
                f"{r.reference}: {DEADLINE_LABELS.get(r.kind, r.kind)}, due {dl.fmt(r.due_date)}"
                for r in items[:limit]
            ]

        context = {
            "notice_kind": "digest",
            "reference": "",
            "service_name": settings.service.name,
            "date_text": dl.fmt(today),
            "late": lines(late),
            "due_today": lines(due_today),
            "soon": lines(soon),
            "soon_days": soon_days,
            "truncated": len(rows) > limit,
            "dashboard_link": settings.public_url.rstrip("/") + "/",
        }
        rows_to_insert = [
            outbox_row(
                key=f"digest:{today.isoformat()}:{role}",
                case_id=None,
                template="daily_digest",
                recipient=role,
                channel="email",
                address=address,
                context=context,
                not_before=now,
                now=now,
            )
            for role, address in (
                ("adviser", settings.team.adviser_email),
                ("manager", settings.team.manager_email),
            )
        ]
        return len(insert_notices(conn, rows_to_insert))
