"""Planning notices: who hears what, on which channel, from when, exactly once.

Notices are written to the outbox table inside the transaction that caused them
(a transition, or a sweep of due clocks) and delivered later by the dispatcher.
Each carries an idempotency key; inserting the same key twice does nothing, so a
re-run sweep or two sweepers at once can never message a family twice.

What goes into a notice's context is the minimum the template needs: a case
reference, dates, the service's call-back number, a provider's name. Never a
child's name, never SEN or health detail.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from casework import deadlines as dl
from casework import driver, letters
from casework.config import EventNoticeRule, ReminderRule, Settings
from casework.contacts import can_text
from casework.models import FamilyLink, Notice, NoticeStatus

log = logging.getLogger("casework.notices")

DEADLINE_LABELS: dict[str, str] = {
    "contact_adviser": "the family's 2 months to say whether they want mediation",
    "certificate_after_decline": "the certificate after the family declined mediation",
    "icb_notified": "the LA telling the ICB about mediation on health care",
    "mediation_meeting": "the 30-day limit for the mediation meeting",
    "certificate_not_arranged": "the certificate when mediation cannot be arranged in 30 days",
    "certificate_after_meeting": "the certificate after the mediation meeting",
    "agreement_implemented": "the LA carrying out what was agreed at mediation",
    "icb_tells_la_of_agreement": "the ICB telling the LA what was agreed",
    "appeal": "the deadline for an appeal to the Tribunal",
    "scheduled_meeting": "the meeting",
    "dr_advice": "advice on the disagreement (service target)",
    "dr_allocation": "allocating a provider (service target)",
    "dr_meeting": "the disagreement-resolution meeting (service target)",
    "allocation_acceptance": "the provider's answer to the allocation",
    "data_request": "the answer to a request to correct or erase personal data",
}


@dataclass(frozen=True)
class NoticeRules:
    """The configured rules (validated when settings load), grouped for planning."""

    events: tuple[EventNoticeRule, ...]
    reminders: dict[str, tuple[ReminderRule, ...]]
    stale_after: dt.timedelta
    default_at: dt.time
    # Who is warned, the service day before, of a legal clock due on a closure day.
    closure_day_escalation: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> NoticeRules:
        by_kind: dict[str, list[ReminderRule]] = {}
        for rule in settings.reminders.rules:
            by_kind.setdefault(rule.deadline, []).append(rule)
        return cls(
            events=tuple(settings.notices.events),
            reminders={k: tuple(sorted(v, key=lambda r: r.offset)) for k, v in by_kind.items()},
            stale_after=dt.timedelta(hours=settings.reminders.stale_after_hours),
            default_at=settings.reminders.default_at,
            closure_day_escalation=tuple(settings.reminders.closure_day_escalation),
        )


# --- The family's own page -----------------------------------------------------------


def family_token(secret_key: str, nonce: str) -> str:
    """The URL token of a family link: HMAC of its stored nonce under the secret key.

    Random to anyone without the key (the nonce is random), never stored itself, and
    rebuilt whenever a notice to the family is rendered.
    """
    digest = hmac.new(secret_key.encode(), f"family-link:{nonce}".encode(), hashlib.sha256)
    return base64_url(digest.digest())[:32]


def base64_url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_hash(token: str) -> str:
    """What is stored to find a link from its URL: SHA-256 of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def family_page_url(settings: Settings, token: str) -> str:
    """The family page's address: the public URL and the random token, nothing else."""
    return f"{settings.public_url.rstrip('/')}/family/{token}"


def live_family_link_url(bind: Session | Connection, case_id: int, settings: Settings) -> str:
    """The address of the case's newest unrevoked family link, or "" when it has none.

    A link whose stored hash no longer matches the token rebuilt from its nonce (the
    secret key was changed) is not offered: it would open nothing.
    """
    table = FamilyLink.__table__  # type: ignore[attr-defined]
    row = bind.execute(
        select(table.c.nonce, table.c.token_hash)
        .where(table.c.case_id == case_id, table.c.revoked_at.is_(None))
        .order_by(table.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return ""
    return family_link_url(settings, row.nonce, row.token_hash)


def family_link_url(settings: Settings, nonce: str | None, stored_hash: str | None) -> str:
    """The address of a family link read with its stored nonce and hash, or "".

    "" when there is no link, or when its stored hash no longer matches the token
    rebuilt from the nonce (the secret key was changed): it would open nothing. The
    dispatcher reads the nonce and hash with its claim and calls this directly.
    """
    if not nonce or not stored_hash:
        return ""
    token = family_token(settings.secret_key, nonce)
    if not hmac.compare_digest(token_hash(token), stored_hash):
        return ""
    return family_page_url(settings, token)


def live_family_link_columns(case_id: Any) -> tuple[Any, Any]:
    """(nonce, token hash) of the case's newest unrevoked family link, as two scalar
    subqueries correlated with ``case_id``: so a query that reads notices can carry
    their links with it, instead of a lookup per notice."""
    table = FamilyLink.__table__  # type: ignore[attr-defined]

    def newest(column: Any) -> Any:
        return (
            select(column)
            .where(table.c.case_id == case_id, table.c.revoked_at.is_(None))
            .order_by(table.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    return newest(table.c.nonce), newest(table.c.token_hash)


# --- Why a notice was not sent, or failed ----------------------------------------------


class NoticeReason(StrEnum):
    """Why a notice was skipped or failed: the code stored at the head of ``last_error``.

    Every writer of a skipped or failed notice stores ``"<code>: <detail>"``
    (:func:`reason_text`); the pages read the code and show its words
    (``casework.cases.words.NOTICE_REASON_WORDS``), never the stored text.
    """

    # Skipped: no longer useful or no longer reaching the family.
    stale = "stale"  # its moment passed while the service was down
    deadline_met = "deadline_met"
    deadline_cancelled = "deadline_cancelled"
    deadline_passed = "deadline_passed"
    case_withdrawn = "case_withdrawn"
    contact_changed = "contact_changed"
    anonymised = "anonymised"  # retention or an erasure removed the family's details
    # A later step called off or moved the meeting the notice was about.
    meeting_cancelled = "meeting_cancelled"
    meeting_rearranged = "meeting_rearranged"
    # Failed: the provider or the network said no.
    number_invalid = "number_invalid"
    not_a_mobile = "not_a_mobile"
    opted_out = "opted_out"
    undelivered = "undelivered"
    bounced = "bounced"
    dropped = "dropped"
    rejected = "rejected"
    gave_up = "gave_up"
    unrenderable = "unrenderable"


def reason_text(reason: NoticeReason, detail: str = "") -> str:
    """What ``last_error`` holds: the code, then the detail for whoever investigates."""
    return f"{reason.value}: {detail}".strip().rstrip(":")[:2000]


def reason_of(last_error: str) -> NoticeReason | None:
    """The code a stored ``last_error`` starts with, or None (a retry's transient note)."""
    head = (last_error or "").split(":", 1)[0].strip()
    return NoticeReason(head) if head in NoticeReason.__members__ else None


# --- Notices a later step makes untrue ---------------------------------------------------

# What a notice "about the arranged meeting" is, in one place: a notice the scheduling
# step queued (the confirmation and the calendar REQUEST, to the family and to the
# provider) or a reminder the sweep queued of the meeting's own clock. Read from what
# the notice says it is about (its context), not from the config's template names, so
# a meeting notice added to the config is covered without anyone remembering to.
MEETING_EVENT = "schedule_meeting"
MEETING_CLOCK = "scheduled_meeting"
# Not yet out of the building: waiting, claimed by a dispatcher that has not handed it
# to SendGrid or Twilio (no provider id), or a letter printed but not yet posted.
_UNSENT = (NoticeStatus.queued, NoticeStatus.sending, NoticeStatus.to_post)


def about_the_meeting(context: dict[str, Any] | None) -> bool:
    """Whether a notice with this context is about the case's arranged meeting (as
    :func:`_about_the_meeting` says in SQL): the dispatcher asks it before sending."""
    context = context or {}
    if context.get("notice_kind", "event") == "event":
        return context.get("event") == MEETING_EVENT
    return context.get("deadline_kind") == MEETING_CLOCK


def _about_the_meeting() -> Any:
    table = Notice.__table__  # type: ignore[attr-defined]
    context = table.c.context
    return or_(
        and_(
            context["notice_kind"].as_string() == "event",
            context["event"].as_string() == MEETING_EVENT,
        ),
        context["deadline_kind"].as_string() == MEETING_CLOCK,
    )


@lru_cache(maxsize=1)
def _skip_meeting_notices() -> Any:
    """The one UPDATE a step that cancels or moves a meeting adds (built once)."""
    table = Notice.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(
            table.c.case_id == bindparam("w_case_id"),
            # Not IN (...): an expanding parameter is not run on the driver.
            or_(*(table.c.status == str(s) for s in _UNSENT)),
            table.c.provider_message_id.is_(None),
            _about_the_meeting(),
        )
        .values(status=NoticeStatus.skipped, last_error=bindparam("v_reason"))
    )


def skip_meeting_notices(
    bind: Session | Connection, case_id: int, reason: NoticeReason, detail: str
) -> int:
    """Mark the case's unsent notices about its arranged meeting skipped, with why.

    Called, in the step's transaction, by the step that calls the meeting off or moves
    it (:mod:`casework.cases.meeting_invitations`), before it queues its own notices:
    a family told "your meeting is confirmed for Tuesday" after being told it was
    cancelled would act on the wrong one. A notice a dispatcher has claimed is marked
    too: the dispatcher reads its row again just before sending one about a meeting
    and sends nothing once it is no longer its own. Notices already sent, and the
    cancellation's own, are untouched. Returns how many were marked.
    """
    conn = bind.connection() if isinstance(bind, Session) else bind
    params = {"w_case_id": case_id, "v_reason": reason_text(reason, detail)}
    return driver.rowcount(conn, _skip_meeting_notices(), params)


# --- Quiet hours -----------------------------------------------------------------------


def in_quiet_hours(moment: dt.datetime, settings: Settings) -> bool:
    local = moment.astimezone(dl.LONDON).time()
    start, end = settings.quiet_hours_start, settings.quiet_hours_end
    if start > end:  # spans midnight (21:00-08:00)
        return local >= start or local < end
    return start <= local < end


def next_sms_moment(moment: dt.datetime, settings: Settings) -> dt.datetime:
    """``moment`` itself, or the end of the SMS quiet hours that contain it."""
    if not in_quiet_hours(moment, settings):
        return moment
    local = moment.astimezone(dl.LONDON)
    end_day = local.date()
    if (
        local.time() >= settings.quiet_hours_start
        and settings.quiet_hours_start > settings.quiet_hours_end
    ):
        end_day += dt.timedelta(days=1)
    return dt.datetime.combine(end_day, settings.quiet_hours_end, tzinfo=dl.LONDON).astimezone(
        dt.UTC
    )


# --- Recipients --------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyContact:
    name: str
    phone: str
    email: str
    channels: tuple[str, ...]
    sms_consent: bool
    # The envelope's address lines (name first, postcode last); empty: none on file.
    postal: tuple[str, ...] = ()


def postal_lines(name: str, line_1: str, line_2: str, town: str, postcode: str) -> tuple[str, ...]:
    """The address a letter's window shows, or nothing when it is incomplete."""
    body = [x.strip() for x in (line_1, line_2, town) if x and x.strip()]
    if not (line_1 or "").strip() or not (postcode or "").strip():
        return ()
    return (name, *body, postcode.strip().upper())


def family_contact(person: Any) -> FamilyContact:
    """A family row as notice planning reads it."""
    return FamilyContact(
        person.name,
        person.phone,
        person.email,
        tuple(person.channels),
        person.sms_consent,
        postal_lines(
            person.name,
            person.address_line_1,
            person.address_line_2,
            person.address_town,
            person.address_postcode,
        ),
    )


@dataclass(frozen=True)
class CaseFacts:
    """What notice planning needs to know about one case (loaded in bulk by the sweep)."""

    case_id: int
    reference: str
    kind: str
    state: str
    family: FamilyContact | None
    provider_name: str | None = None
    provider_email: str | None = None
    adviser_email: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _family_channels(wanted: Sequence[str], family: FamilyContact) -> list[tuple[str, str]]:
    """The family's addresses for ``wanted`` channels, honouring consent and phone type.

    If none of the rule's channels can reach the family (no consent to SMS, a
    landline, no email) we fall back to whatever can: a legal deadline reminder
    must reach them somehow. A family that asked for post, or that neither email
    nor SMS reaches, gets a letter (channel ``post``, addressed to its postal
    address): the dispatcher prints it for staff to post.
    """

    sms_ok = bool(family.sms_consent and family.phone and can_text(family.phone))
    names = family_channel_names(
        tuple(wanted), family.channels, sms_ok, bool(family.email), bool(family.postal)
    )
    address = {"sms": family.phone, "email": family.email, "post": "\n".join(family.postal)}
    return [(name, address[name]) for name in names]


@lru_cache(maxsize=1024)
def family_channel_names(
    wanted: tuple[str, ...],
    preferred: tuple[str, ...],
    sms_ok: bool,
    email_ok: bool,
    has_postal: bool,
) -> tuple[str, ...]:
    """The channels :func:`_family_channels` picks, from the family's shape alone.

    Pure and memoised: the choice depends only on which channels the rule wants, the
    family's preferences, and whether SMS (consent and a mobile), email and post can
    reach them, so the sweep decides it once per shape, not once per family.
    """
    usable = {"sms": sms_ok, "email": email_ok}
    chosen = tuple(c for c in wanted if c in preferred and usable.get(c, email_ok))
    if chosen:
        return chosen
    if "post" in preferred and has_postal:
        return ("post",)
    fallback = tuple(c for c in ("email", "sms") if usable[c])
    return fallback[:1] or (("post",) if has_postal else ())


def addresses_for(
    recipient: str, channels: Sequence[str], facts: CaseFacts, settings: Settings
) -> list[tuple[str, str]]:
    if recipient == "family":
        return _family_channels(channels, facts.family) if facts.family else []
    if recipient == "provider":
        return [("email", facts.provider_email)] if facts.provider_email else []
    if recipient == "adviser":
        out = [("email", facts.adviser_email or settings.team.adviser_email)]
        if "sms" in channels and settings.team.adviser_phone:
            out.append(("sms", settings.team.adviser_phone))
        return out
    if recipient == "manager":
        return [("email", settings.team.manager_email)]
    raise ValueError(f"unknown recipient {recipient!r}")


def base_context(facts: CaseFacts, settings: Settings) -> dict[str, Any]:
    service = settings.service
    ctx: dict[str, Any] = {
        "reference": facts.reference,
        "case_kind": facts.kind,
        "service_name": service.name,
        "helpline": service.helpline,
        "service_email": service.email,
        "case_link": f"{settings.public_url.rstrip('/')}/cases/{facts.reference}",
        "portal_link": f"{settings.public_url.rstrip('/')}/portal/cases/{facts.reference}",
        "provider_name": facts.provider_name or "",
        "family_name": (facts.family.name.split()[0] if facts.family and facts.family.name else ""),
        "acceptance_working_days": settings.allocation_acceptance_working_days,
        "tribunal_url": settings.service.tribunal_guidance_url,
    }
    ctx.update(facts.extra)
    return ctx


def deadline_context(kind: str, due: dt.date, explanation: str, citation: str) -> dict[str, Any]:
    return {
        "deadline_kind": kind,
        "deadline_label": DEADLINE_LABELS.get(kind, kind.replace("_", " ")),
        "due_date": due.isoformat(),
        "due_text": dl.fmt(due) + (", 5pm" if kind == "appeal" else ""),
        "explanation": explanation,
        "citation": citation,
    }


def outbox_row(
    *,
    key: str,
    case_id: int | None,
    template: str,
    recipient: str,
    channel: str,
    address: str,
    context: dict[str, Any],
    not_before: dt.datetime,
    now: dt.datetime,
    deadline_id: int | None = None,
    status: str = NoticeStatus.queued,
    reason: str = "",
) -> dict[str, Any]:
    """One outbox row as a dict for :func:`insert_notices` (every notice is built here).

    A notice about a clock learns here whether its due date is already behind the
    day it goes out (``due_passed``): a reminder or escalation sent late must say
    "was due on", never offer a past date as one to meet.
    """
    from casework.models import new_public_id

    due = letters.as_date(context.get("due_date")) if "due_date" in context else None
    if due is not None:
        context = context | {"due_passed": due < dl.local_date(not_before)}

    return {
        "public_id": new_public_id(),
        "idempotency_key": key[:200],
        "case_id": case_id,
        "deadline_id": deadline_id,
        "template": template,
        "recipient_role": recipient,
        "channel": channel,
        "to_address": address,
        "context": context,
        "subject": "",
        "body": "",
        "status": status,
        "not_before": not_before,
        "attempts": 0,
        "last_error": reason,
        "created_at": now,
        "escalated": False,
        "document_id": None,
    }


def notice_row(
    *,
    key: str,
    facts: CaseFacts,
    template: str,
    recipient: str,
    channel: str,
    address: str,
    context: dict[str, Any],
    not_before: dt.datetime,
    now: dt.datetime,
    settings: Settings,
    deadline_id: int | None = None,
    status: str = NoticeStatus.queued,
    reason: str = "",
) -> dict[str, Any]:
    """A case's notice; an SMS waits for the end of quiet hours."""
    if channel == "sms" and status == NoticeStatus.queued:
        not_before = next_sms_moment(not_before, settings)
    return outbox_row(
        key=key,
        case_id=facts.case_id,
        template=template,
        recipient=recipient,
        channel=channel,
        address=address,
        context=context,
        not_before=not_before,
        now=now,
        deadline_id=deadline_id,
        status=status,
        reason=reason,
    )


def insert_notices(bind: Session | Connection, rows: Iterable[dict[str, Any]]) -> list[Any]:
    """Insert rows, skipping any whose idempotency key exists; returns the new ones.

    Each returned row has ``id``, ``status`` and ``template``.
    """
    rows = list(rows)
    if not rows:
        return []
    if isinstance(bind, Session):
        # The Core statement on the session's connection, skipping the ORM's execution
        # path (a transition's notices were a fifth of its time); the session's own
        # autoflush is kept where it is on.
        if bind.autoflush:
            bind.flush()
        bind = bind.connection()
    columns = tuple(rows[0])
    uniform = all(len(row) == len(columns) and row.keys() == rows[0].keys() for row in rows)
    if uniform and len(rows) <= FEW_NOTICES and bind.dialect.name in ("postgresql", "sqlite"):
        return _insert_few(bind, columns, rows)
    if bind.dialect.name == "postgresql" and len(rows) > 1 and uniform:
        return _insert_notices_unnest(bind, columns, rows)
    result = bind.execute(_insert_notices(bind.dialect.name), rows)
    return list(result.fetchall())


# Up to this many notices (a transition's, a reply's) are one statement compiled once per
# row count and run on the driver's cursor (:mod:`casework.driver`).
FEW_NOTICES = 8


class NoticeRow(NamedTuple):
    id: int
    status: str
    template: str


def _insert_few(
    conn: Connection, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> list[Any]:
    """A few notices in one INSERT: one multi-row VALUES per row count, or on PostgreSQL
    beyond psycopg's cached-statement bound the unnest statement (one text whatever
    the count).

    Why VALUES for a transition's one or two notices on PostgreSQL too: the unnest
    statement sends each column as an array, and psycopg escapes every element of a
    text array with a regular expression: a notice's context (a JSON text full of
    quotes) cost more to escape than the INSERT cost to run.
    """
    if conn.dialect.name == "postgresql" and len(rows) * len(columns) > _PG_CACHED_PARAMS:
        return _insert_notices_unnest(conn, columns, rows)
    stmt = _insert_rows(conn.dialect.name, columns, len(rows))
    params = {f"{name}_{i}": row[name] for i, row in enumerate(rows) for name in columns}
    return [NoticeRow(*row) for row in driver.rows(conn, stmt, params)]


# psycopg caches its conversion of a statement with at most this many parameters
# (psycopg._queries.MAX_CACHED_STATEMENT_PARAMS); beyond it, each execution parses it.
_PG_CACHED_PARAMS = 50


@lru_cache(maxsize=32)
def _insert_rows(dialect: str, columns: tuple[str, ...], count: int) -> Any:
    """INSERT of ``count`` notices as one multi-row VALUES (skipping keys already queued)."""
    table = Notice.__table__  # type: ignore[attr-defined]
    values = [
        {name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in columns}
        for i in range(count)
    ]
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_for(table).values(values)
    return stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(
        table.c.id, table.c.status, table.c.template
    )


def _insert_notices_unnest(
    conn: Connection, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> list[Any]:
    """PostgreSQL: ``INSERT ... SELECT FROM unnest(<one array per column>)``, a page at a time.

    Why: a multi-row VALUES statement has one placeholder per value (18 per notice),
    which psycopg parses afresh every time (its statement cache skips long texts) and
    which took most of a sweep's time; this statement has one placeholder per column
    whatever the rows, so its text is short, cached and prepared once.
    """
    dumps = conn.dialect._json_serializer or json.dumps  # type: ignore[attr-defined]
    stmt = _unnest_insert(columns)
    out: list[Any] = []
    for start in range(0, len(rows), NOTICE_ROWS_PER_STATEMENT):
        page = rows[start : start + NOTICE_ROWS_PER_STATEMENT]
        params = {
            f"a_{name}": [(dumps(row[name]) if name == "context" else row[name]) for row in page]
            for name in columns
        }
        out.extend(conn.execute(stmt, params).fetchall())
    return out


@lru_cache(maxsize=8)
def _unnest_insert(columns: tuple[str, ...]) -> Any:
    """The unnest INSERT for ``columns`` (each cast to its column's array type), built once."""
    table = Notice.__table__  # type: ignore[attr-defined]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(
        f"CAST(:a_{name} AS {table.c[name].type.compile(dialect=dialect)}[])" for name in columns
    )
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, status, template"
    )


@lru_cache(maxsize=4)
def _insert_notices(dialect: str) -> Any:
    """The outbox's INSERT (skipping a key already queued) for ``dialect``, built once."""
    table = Notice.__table__  # type: ignore[attr-defined]
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
    else:  # pragma: no cover - other databases: plain insert, duplicates raise
        stmt = insert(table)
    return stmt.returning(table.c.id, table.c.status, table.c.template).execution_options(
        insertmanyvalues_page_size=VALUES_ROWS_PER_STATEMENT
    )


# Rows per INSERT when a list of notices is written. Why bounded: one INSERT of 1,000
# notices was 18,000 placeholders, which psycopg spent most of the sweep's time parsing
# and its statement cache could not hold. On PostgreSQL a page is one unnest INSERT
# (18 placeholders, whatever the rows); elsewhere SQLAlchemy's "insertmanyvalues"
# pages the executemany into multi-row VALUES of VALUES_ROWS_PER_STATEMENT rows
# (18 placeholders a row, so at most 1,800 a statement).
NOTICE_ROWS_PER_STATEMENT = 500
VALUES_ROWS_PER_STATEMENT = 100


# --- Notices caused by an event ----------------------------------------------------------


def queue_event_notices(session: Session, ctx: Any) -> list[Any]:
    """Called by the use cases inside their transaction (ctx: services.TransitionContext)."""
    settings: Settings = ctx.settings
    # The event rules as configured (NoticeRules would also group every reminder rule,
    # which this does not need, on every transition).
    rules = [
        r
        for r in settings.notices.events
        if r.event == ctx.event
        and (r.case_kind is None or r.case_kind == ctx.case.kind)
        and _notice_applies(r, ctx)
    ]
    if not rules:
        return []
    case = ctx.case
    family = ctx.family
    provider = ctx.provider
    facts = CaseFacts(
        case_id=case.id,
        reference=case.reference,
        kind=case.kind,
        state=ctx.to_state,
        family=family_contact(family) if family is not None else None,
        provider_name=provider.name if provider is not None else None,
        provider_email=provider.email if provider is not None else None,
        # The team's mailbox, not the owning adviser's: an owner on leave must not
        # leave a late duty unseen (the owner is for finding cases).
        adviser_email=None,
    )
    context = base_context(facts, settings)
    context.update(_event_context(ctx))
    # The family hears a provider's name only once it has accepted the case: an offer
    # can be declined and passed on, and the family must not be told of one then another.
    family_context = (
        context if getattr(ctx, "provider_accepted", False) else context | {"provider_name": ""}
    )
    stamp = ctx.now.strftime("%Y%m%dT%H%M%S%f")
    # recipient role -> the stored document its emails carry (a certificate to the family).
    attachments: dict[str, int] = dict(getattr(ctx, "attachments", None) or {})
    rows = []
    for rule in rules:
        rule_context = family_context if rule.recipient == "family" else context
        for channel, address in addresses_for(rule.recipient, rule.channels, facts, settings):
            key = (
                f"case:{case.id}:event:{ctx.event}:{stamp}"
                f":{rule.template}:{rule.recipient}:{channel}"
            )
            row = notice_row(
                key=key,
                facts=facts,
                template=rule.template,
                recipient=rule.recipient,
                channel=channel,
                address=address,
                context=rule_context | {"notice_kind": "event"},
                not_before=ctx.now,
                now=ctx.now,
                settings=settings,
            )
            # Only an email carries the document; a text message says where to find it.
            document_id = attachments.get(rule.recipient) if channel == "email" else None
            row["document_id"] = document_id
            if document_id is not None:
                row["context"] = row["context"] | {"attached": True}
            elif channel == "post" and rule.recipient in attachments:
                # A letter encloses the document when it can be printed (a certificate).
                row["context"] = row["context"] | {
                    "enclosure_document_id": attachments[rule.recipient]
                }
            rows.append(row)
    return insert_notices(session, rows)


def _notice_applies(rule: EventNoticeRule, ctx: Any) -> bool:
    """Event rules the case's facts rule out, whatever the config says.

    The day the ICB was told changes the family's dates only when the ICB arranges
    the meeting (health-only), so only then are they written to about it. A rule
    ``only_when = "meeting_cancelled"`` goes out only when the step called off a
    meeting still to happen (its data then name the cancelled day; see
    :func:`casework.cases.meeting_invitations.cancel`).
    """
    if rule.only_when == "meeting_cancelled":
        data = getattr(ctx, "data", None) or {}
        return data.get("cancelled_meeting_on") is not None
    if rule.event == "record_icb_told" and rule.recipient == "family":
        return bool(getattr(ctx.case, "health_only", False) or ctx.data.get("health_only"))
    return True


def _event_context(ctx: Any) -> dict[str, Any]:
    """What a family letter about this event needs: dates in words, and which have passed.

    Facts come from the case row and the event's data (:func:`letters.facts_from`);
    ``ctx.agreement_items`` (what was agreed at mediation, when the use case loads it)
    is optional. ``today`` is the day the notice is written, so "passed" means passed
    when the family reads it.
    """
    case = ctx.case
    data = dict(getattr(ctx, "data", None) or {})
    now = getattr(ctx, "now", None)
    today = dl.local_date(now) if now is not None else dt.datetime.now(dl.LONDON).date()
    settings = getattr(ctx, "settings", None)
    icb_name = (settings.service.icb_name or None) if settings is not None else None
    out: dict[str, Any] = {"event": ctx.event}
    if case.meeting_on is not None:
        out["meeting_text"] = dl.fmt(case.meeting_on) + (
            f" at {case.meeting_time}" if case.meeting_time else ""
        )
        out["meeting_place"] = getattr(case, "meeting_place", None) or ""
    cancelled_on = letters.as_date(data.get("cancelled_meeting_on"))
    if cancelled_on is not None:
        out["cancelled_meeting_text"] = dl.fmt(cancelled_on)
    provider = getattr(ctx, "provider", None)
    if provider is not None:
        out["provider_phone"] = provider.phone or ""
    appeal_explanation = None
    items = getattr(ctx, "agreement_items", None) or getattr(case, "agreement_items", None)
    for deadline in getattr(ctx, "opened", ()):
        if deadline.kind == "appeal":
            appeal_explanation = deadline.explanation
            out["appeal_explanation"] = deadline.explanation
    if not items and ctx.event == "add_agreement_item" and data.get("description"):
        # Only this item is known: its due date is the clock the use case just opened.
        due = next(
            (d.due_date for d in getattr(ctx, "opened", ()) if d.kind != "icb_tells_la"), None
        )
        items = [data | {"due_on": data.get("agreed_due_on") or due}]
    facts = letters.facts_from(
        case, data, event=ctx.event, agreement_items=items, icb_name=icb_name
    )
    out |= letters.letter_context(facts, today, appeal_explanation=appeal_explanation)
    if ctx.event in ("withdraw", "decline_allocation", "cancel_meeting"):
        out["reason"] = str(data.get("reason") or data.get("note") or "")
    return out
