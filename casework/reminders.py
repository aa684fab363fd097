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
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Integer, String, and_, bindparam, func, select, text, type_coerce
from sqlalchemy.dialects import postgresql

from casework import deadlines as dl
from casework import urgency
from casework.audit import seal_rows
from casework.config import ReminderRule, Settings
from casework.contacts import can_text
from casework.driver import fixed
from casework.models import (
    MISSED_OUTSTANDING,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    Notice,
    NoticeStatus,
    Person,
    Provider,
)
from casework.notices import (
    CaseFacts,
    NoticeReason,
    NoticeRules,
    base_context,
    deadline_context,
    family_channel_names,
    insert_notices,
    next_sms_moment,
    outbox_row,
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


_D: Any = Deadline.__table__  # type: ignore[attr-defined]
_C: Any = Case.__table__  # type: ignore[attr-defined]
_P: Any = Provider.__table__  # type: ignore[attr-defined]
_N: Any = Notice.__table__  # type: ignore[attr-defined]
_FAMILY: Any = Person.__table__.alias("family")  # type: ignore[attr-defined]


# Positions of the claim's columns: rows are read as plain tuples (a batch is 1,000
# of them, and name lookups on SQLAlchemy rows were a visible share of planning).
(
    _ID,
    _CASE_ID,
    _KIND,
    _STATUS,
    _DUE_DATE,
    _DUE_AT,
    _EXPLANATION,
    _STATE,
    _FAMILY_ID,
    _PHONE,
    _EMAIL,
    _PREFERRED,
    _SMS_CONSENT,
    _HAS_POSTAL,
    _PROVIDER_EMAIL,
) = range(15)


@lru_cache(maxsize=4)
def _claim_query(dialect: str) -> Any:
    """The claim statement for ``dialect``, built once per process (``now`` and the batch
    size are bound parameters), so a sweep does not rebuild and re-key it every batch.

    Only what decides *which* notices to write is read here (the family's reachability,
    not its details): the notices' text and addresses are taken from the tables by the
    INSERT itself. Dates come back as the driver gives them (strings on SQLite) and are
    parsed once per distinct value by the caller.
    """
    f = _FAMILY
    query = (
        select(
            _D.c.id,
            _D.c.case_id,
            _D.c.kind,
            _D.c.status,
            type_coerce(_D.c.due_date, String).label("due_date"),
            type_coerce(_D.c.due_at, String).label("due_at"),
            _D.c.explanation,
            _C.c.state,
            f.c.id.label("family_id"),
            f.c.phone,
            f.c.email,
            f.c.preferred_channels,
            f.c.sms_consent,
            and_(
                func.trim(func.coalesce(f.c.address_line_1, "")) != "",
                func.trim(func.coalesce(f.c.address_postcode, "")) != "",
            ).label("has_postal"),
            _P.c.email.label("provider_email"),
        )
        .select_from(
            _D.join(_C, _C.c.id == _D.c.case_id)
            .outerjoin(f, (f.c.case_id == _C.c.id) & (f.c.role == "family"))
            .outerjoin(_P, _P.c.id == _C.c.provider_id)
        )
        .where(_D.c.next_action_at <= bindparam("now", type_=_D.c.next_action_at.type))
        .order_by(_D.c.next_action_at)
        .limit(bindparam("batch", type_=Integer))
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_D)
    return query


def _claim(conn: Any, now: dt.datetime, batch: int) -> list[Any]:
    """Claim up to ``batch`` due clocks with what planning needs of their case, as tuples
    (positions: _ID ... _PROVIDER_EMAIL)."""
    return conn.execute(_claim_query(conn.dialect.name), {"now": now, "batch": batch}).all()


@dataclass
class _Memo:
    """What one sweep works out once and reuses for every clock that shares it."""

    dialect: Any
    now: dt.datetime
    settings: Settings
    rules: NoticeRules
    service: dl.WorkingCalendar
    # (kind, status, raw due date, raw due time) -> (plan, due date, next as stored)
    plans: dict[tuple[Any, ...], tuple[Plan, dt.date, Any]] = field(default_factory=dict)
    # group key -> the group's constants (see _group)
    groups: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    # (plan key, shape) -> the group keys of the notices such a clock gets
    notices: dict[tuple[Any, ...], tuple[tuple[Any, ...], ...]] = field(default_factory=dict)
    stored: dict[Any, Any] = field(default_factory=dict)  # datetime -> as bound

    def parse(self, column: Any, raw: Any) -> Any:
        """A date or time as the claim returned it (a string on SQLite), parsed once."""
        if not isinstance(raw, str):
            return raw
        proc = column.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
        return proc(raw) if proc is not None else raw

    def bound(self, value: dt.datetime | None) -> Any:
        """``value`` as the driver stores it in a UTC column (a string on SQLite)."""
        if value is None:
            return None
        out = self.stored.get(value)
        if out is None:
            proc = _N.c.not_before.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            out = self.stored[value] = proc(value) if proc is not None else value
        return out


def sweep(
    engine: Engine, now: dt.datetime, settings: Settings, *, batch_size: int = 1000
) -> SweepResult:
    """Process every clock whose moment has come, in batches, each one transaction."""
    rules = NoticeRules.from_settings(settings)
    memo = _Memo(engine.dialect, now, settings, rules, settings.calendars.service)
    result = SweepResult()
    # One connection for every batch (each batch still its own transaction): a pool
    # checkout (and on PostgreSQL any idle ping) once a sweep rather than once a batch.
    with engine.connect().execution_options(claim=True) as conn:
        while True:
            with conn.begin():
                rows = _claim(conn, now, batch_size)
                if rows:
                    _process_batch(conn, rows, memo, result)
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


def _plan(memo: _Memo, key: tuple[Any, ...]) -> tuple[Plan, dt.date, Any]:
    """:func:`plan_deadline` for a claimed clock's (kind, status, due date, due time) as
    claimed, once per distinct key a sweep.

    plan_deadline is pure in those for one sweep's now, rules and calendar, and a batch
    is full of clocks sharing them.
    """
    planned = memo.plans.get(key)
    if planned is None:
        kind, status, raw_date, raw_at = key
        due_date = memo.parse(_D.c.due_date, raw_date)
        plan = plan_deadline(
            kind=kind,
            status=status,
            due_date=due_date,
            due_at=_aware(memo.parse(_D.c.due_at, raw_at)),
            now=memo.now,
            rules=memo.rules,
            service=memo.service,
        )
        planned = memo.plans[key] = (plan, due_date, memo.bound(plan.next_action_at))
    return planned


@lru_cache(maxsize=256)
def _preferred(channels: str | None) -> tuple[str, ...]:
    return tuple(c for c in (channels or "").split(",") if c)


# What decides which channels reach a clock's case, read from a claimed row:
# (has a family, SMS can reach it, has an email, its preferred channels as stored,
# has a postal address, the provider has an email). Thousands of clocks share a few.
Shape = tuple[bool, bool, bool, str | None, bool, bool]


def _shape(row: Any) -> Shape:
    phone = row[_PHONE]
    return (
        row[_FAMILY_ID] is not None,
        bool(row[_SMS_CONSENT]) and bool(phone) and can_text(phone),
        bool(row[_EMAIL]),
        row[_PREFERRED],
        bool(row[_HAS_POSTAL]),
        bool(row[_PROVIDER_EMAIL]),
    )


def _channels(shape: Shape, rule: ReminderRule, settings: Settings) -> list[tuple[str, str]]:
    """(channel, where its address comes from) for one rule and one shape of case.

    The same choice as :func:`notices.addresses_for`, made from the family's shape
    so that the address itself is read by the INSERT: ``family:<channel>`` and
    ``provider`` are columns of the joined rows, anything else is the address.
    """
    has_family, sms_ok, email_ok, preferred, has_postal, provider_ok = shape
    recipient = rule.recipient
    if recipient == "family":
        if not has_family:
            return []
        names = family_channel_names(
            tuple(rule.channels), _preferred(preferred), sms_ok, email_ok, has_postal
        )
        return [(name, f"family:{name}") for name in names]
    if recipient == "provider":
        return [("email", "provider")] if provider_ok else []
    if recipient == "adviser":
        out = [("email", settings.team.adviser_email)]
        if "sms" in rule.channels and settings.team.adviser_phone:
            out.append(("sms", settings.team.adviser_phone))
        return out
    if recipient == "manager":
        return [("email", settings.team.manager_email)]
    raise ValueError(f"unknown recipient {recipient!r}")


def _notice_groups(
    memo: _Memo, kind: str, due_date: dt.date, plan: Plan, shape: Shape
) -> tuple[tuple[Any, ...], ...]:
    """The group keys of every notice a clock of this plan and shape gets (memoised by
    the caller per (plan, shape)), each group's constants built once a sweep."""
    keys = []
    for rule, stale in plan.notices:
        for channel, source in _channels(shape, rule, memo.settings):
            key = (kind, due_date, rule.id, rule.recipient, stale, channel, source)
            if key not in memo.groups:
                memo.groups[key] = _group(memo, kind, due_date, rule, stale, channel, source)
            keys.append(key)
    return tuple(keys)


# Context keys that differ from clock to clock, built by the INSERT from the joined rows
# (see _ROW_CONTEXT); every other key of a deadline notice is the same for a whole group.
_ROW_KEYS: tuple[str, ...] = (
    "reference",
    "case_kind",
    "case_link",
    "portal_link",
    "provider_name",
    "family_name",
    "explanation",
    "citation",
)


def _group(
    memo: _Memo,
    kind: str,
    due_date: dt.date,
    rule: ReminderRule,
    stale: bool,
    channel: str,
    source: str,
) -> dict[str, Any]:
    """The constants of every notice of one (clock kind and due date, rule, channel).

    The same values :func:`notices.notice_row` gives such a notice: the key's tail,
    status and reason, ``not_before`` (an SMS waits for the end of quiet hours), and
    the context the template reads (only its keys), of which the per-clock keys are
    left to the INSERT and the ones the template does not read are listed to drop.
    """
    settings, now = memo.settings, memo.now
    status = NoticeStatus.skipped if stale else NoticeStatus.queued
    not_before = now
    if channel == "sms" and status == NoticeStatus.queued:
        not_before = next_sms_moment(now, settings)
    context = base_context(_NO_FACTS, settings) | deadline_context(kind, due_date, "", "")
    kept = _kept_keys(rule.template)
    consts = {
        k: v for k, v in context.items() if k not in _ROW_KEYS and (kept is None or k in kept)
    }
    consts |= {
        "notice_kind": rule.kind,
        "rule": rule.id,
        "due_passed": due_date < dl.local_date(not_before),
    }
    stored = memo.bound(not_before)
    drop = [k for k in _ROW_KEYS if kept is not None and k not in kept]
    if memo.dialect.name != "postgresql":
        # SQLite merges with json_patch, where a null removes the key.
        consts |= dict.fromkeys(drop)
    return {
        "suffix": f"{rule.id}:{rule.recipient}:{channel}",
        "template": rule.template,
        "recipient": rule.recipient,
        "channel": channel,
        "source": source if source in _SOURCES else "",
        "address": "" if source in _SOURCES else source,
        "status": str(status),
        "reason": _STALE_REASON if stale else "",
        "not_before": stored if isinstance(stored, str) else not_before.isoformat(),
        "ctx": consts,
        "drop": drop,
    }


_SOURCES = frozenset({"family:sms", "family:email", "family:post", "provider"})
# base_context() of no case: its case keys are per clock (_ROW_KEYS), filled by the INSERT.
_NO_FACTS = CaseFacts(case_id=0, reference="", kind="", state="", family=None)


def _process_batch(conn: Any, rows: list[Any], memo: _Memo, result: SweepResult) -> None:
    """Plan the batch in Python (pure, memoised), then write it in three statements:
    one INSERT ... SELECT of every notice, one UPDATE of every clock, and the audit
    rows of the clocks missed now."""
    now = memo.now
    work: list[tuple[int, int, int | None]] = []  # (deadline id, group, family person id)
    groups: list[dict[str, Any]] = []
    index: dict[tuple[Any, ...], int] = {}
    moves: list[tuple[Any, ...]] = []  # (id, next, status, reason, closed at) as stored
    events: list[dict[str, Any]] = []
    closed_at = memo.bound(now)
    planned = memo.notices
    for row in rows:
        clock = row[_ID]
        plan_key = (row[_KIND], row[_STATUS], row[_DUE_DATE], row[_DUE_AT])
        plan, due_date, next_at = _plan(memo, plan_key)
        if plan.mark_missed:
            result.missed += 1
            moves.append(
                (clock, next_at, str(DeadlineStatus.missed), MISSED_OUTSTANDING, closed_at)
            )
            events.append(
                {
                    "case_id": row[_CASE_ID],
                    "at": now,
                    "actor": "system:scheduler",
                    "event": "deadline_missed",
                    "from_state": row[_STATE],
                    "to_state": row[_STATE],
                    "data": {"deadline": row[_KIND], "due_date": due_date.isoformat()},
                    "channel": "scheduler",
                    "note": row[_EXPLANATION],
                }
            )
        else:
            moves.append((clock, next_at, None, None, None))
        if not plan.notices:
            continue
        shape = _shape(row)
        keys = planned.get((plan_key, shape))
        if keys is None:
            keys = planned[plan_key, shape] = _notice_groups(
                memo, row[_KIND], due_date, plan, shape
            )
        family = row[_FAMILY_ID]
        for key in keys:
            gi = index.get(key)
            if gi is None:
                gi = index[key] = len(groups)
                groups.append(memo.groups[key])
            work.append((clock, gi, family))
    if work:
        for status, template, count in _insert_planned(conn, work, groups, memo):
            if status == NoticeStatus.skipped:
                result.skipped += count
            else:
                result.queued += count
                result.by_template[template] += count
    _move_clocks(conn, moves)
    if events:
        # Sealed into each case's audit chain like every row the use cases write.
        seal_rows(conn, events)
        conn.execute(CaseEvent.__table__.insert(), events)  # type: ignore[attr-defined]


def _insert_planned(
    conn: Any,
    work: list[tuple[int, int, int | None]],
    groups: list[dict[str, Any]],
    memo: _Memo,
) -> list[Any]:
    """Write the batch's notices with ONE ``INSERT ... SELECT`` (three parameters).

    Why: building a dict per notice in Python, and binding 18 values each, was most of
    a sweep. Here Python hands over only (clock, group, family) triples and the few
    groups' constants; the database joins each clock to its case, family and provider
    and builds the context (``json_object`` / ``jsonb_build_object``), the address and
    the idempotency key itself. A key already queued is skipped, as everywhere.
    """
    created = memo.bound(memo.now)
    base = memo.settings.public_url.rstrip("/")
    if conn.dialect.name == "postgresql":
        params = {
            "dids": [w[0] for w in work],
            "gis": [w[1] for w in work],
            "fids": [w[2] for w in work],
        }
    else:
        params = {"work": json.dumps(work, separators=(",", ":"))}
    params |= {
        "groups": json.dumps(groups, separators=(",", ":")),
        "created_at": created,
        "base": base,
    }
    if conn.dialect.name == "postgresql":
        written = Counter(tuple(r) for r in conn.execute(_insert_sql("postgresql"), params))
        return [(status, template, n) for (status, template), n in written.items()]
    # SQLite: no RETURNING (it cost as much as the INSERT). When every row went in, the
    # groups say what was written; when some keys were already queued (a sweep re-run
    # after a crash), the new rows are the ``rowcount`` highest ids, since the batch
    # holds the write lock and new ids are assigned above the highest.
    inserted = conn.execute(_insert_sql("sqlite"), params).rowcount
    if inserted == len(work):
        per_group = Counter(w[1] for w in work)
        return [(groups[g]["status"], groups[g]["template"], n) for g, n in per_group.items()]
    if inserted <= 0:
        return []
    return [tuple(r) for r in conn.execute(_SQLITE_NEWEST, {"n": inserted})]


_SQLITE_NEWEST = text(
    "SELECT status, template, count(*) FROM notices"
    " WHERE id > (SELECT max(id) FROM notices) - :n GROUP BY status, template"
)


_NOTICE_COLUMNS = (
    "public_id, idempotency_key, case_id, deadline_id, template, recipient_role, channel,"
    " to_address, context, subject, body, status, not_before, attempts, last_error,"
    " created_at, escalated, document_id"
)


@lru_cache(maxsize=4)
def _insert_sql(dialect: str) -> Any:
    """The sweep's notice INSERT for ``dialect``, built once per process.

    The public id is random from the database (128 bits, hex); the context is the
    per-clock keys built here (_ROW_KEYS, those the group's template does not read
    dropped) merged with the group's constants.
    """
    pg = dialect == "postgresql"
    nl = "chr(10)" if pg else "char(10)"

    def line(column: str) -> str:
        return (
            f"CASE WHEN trim(COALESCE(f.{column}, '')) <> ''"
            f" THEN {nl} || trim(f.{column}) ELSE '' END"
        )

    postal = (
        f"f.name || {nl} || trim(f.address_line_1) || {line('address_line_2')}"
        f" || {line('address_town')} || {nl} || upper(trim(f.address_postcode))"
    )
    name = "trim(COALESCE(f.name, ''))"
    if pg:
        first_name = f"split_part({name}, ' ', 1)"
    else:
        first_name = (
            f"CASE WHEN instr({name}, ' ') > 0"
            f" THEN substr({name}, 1, instr({name}, ' ') - 1) ELSE {name} END"
        )
    row_values = {
        "reference": "c.reference",
        "case_kind": "c.kind",
        "case_link": ":base || '/cases/' || c.reference",
        "portal_link": ":base || '/portal/cases/' || c.reference",
        "provider_name": "COALESCE(p.name, '')",
        "family_name": first_name,
        "explanation": "d.explanation",
        "citation": "d.citation",
    }
    assert tuple(row_values) == _ROW_KEYS
    pairs = ", ".join(f"'{k}', {v}" for k, v in row_values.items())
    address = (
        "CASE g.source WHEN 'family:sms' THEN f.phone WHEN 'family:email' THEN f.email"
        f" WHEN 'family:post' THEN {postal} WHEN 'provider' THEN p.email ELSE g.address END"
    )
    joins = (
        " JOIN deadlines AS d ON d.id = w.did"
        " JOIN cases AS c ON c.id = d.case_id"
        " LEFT JOIN people AS f ON f.id = w.fid"
        " LEFT JOIN providers AS p ON p.id = c.provider_id"
    )
    fields = ("suffix", "template", "recipient", "channel", "source", "address", "status", "reason")
    if pg:
        group_cols = ", ".join(f"x.v->>'{k}' AS {k}" for k in fields)
        return text(
            "WITH g AS MATERIALIZED (SELECT CAST(x.n - 1 AS integer) AS n, "
            f"{group_cols}, CAST(x.v->>'not_before' AS timestamptz) AS not_before,"
            " x.v->'ctx' AS ctx,"
            " ARRAY(SELECT jsonb_array_elements_text(x.v->'drop')) AS dropped"
            " FROM jsonb_array_elements(CAST(:groups AS jsonb)) WITH ORDINALITY AS x(v, n))"
            f" INSERT INTO notices ({_NOTICE_COLUMNS})"
            " SELECT replace(CAST(gen_random_uuid() AS text), '-', ''),"
            " left('deadline:' || d.id || ':' || g.suffix, 200), d.case_id, d.id,"
            f" g.template, g.recipient, g.channel, {address},"
            f" CAST((jsonb_build_object({pairs}) - g.dropped) || g.ctx AS json),"
            " '', '', g.status, g.not_before, 0, g.reason, :created_at, false, NULL"
            " FROM unnest(CAST(:dids AS bigint[]), CAST(:gis AS integer[]),"
            " CAST(:fids AS bigint[])) AS w(did, gi, fid)"
            f" JOIN g ON g.n = w.gi{joins}"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING status, template"
        )
    group_cols = ", ".join(f"json_extract(value, '$.{k}') AS {k}" for k in fields)
    # A key the template does not read is dropped by a JSON null in the merge patch.
    # INSERT first, the CTEs inside its SELECT: sqlite3 reports a rowcount only for a
    # statement that starts with INSERT.
    return text(
        f"INSERT INTO notices ({_NOTICE_COLUMNS})"
        " WITH g AS MATERIALIZED (SELECT key AS n, "
        f"{group_cols}, json_extract(value, '$.not_before') AS not_before,"
        " json_extract(value, '$.ctx') AS ctx"
        " FROM json_each(:groups)),"
        " w AS MATERIALIZED (SELECT json_extract(value, '$[0]') AS did,"
        " json_extract(value, '$[1]') AS gi, json_extract(value, '$[2]') AS fid"
        " FROM json_each(:work))"
        " SELECT lower(hex(randomblob(16))),"
        " substr('deadline:' || d.id || ':' || g.suffix, 1, 200), d.case_id, d.id,"
        f" g.template, g.recipient, g.channel, {address},"
        f" json_patch(json_object({pairs}), g.ctx),"
        " '', '', g.status, g.not_before, 0, g.reason, :created_at, 0, NULL"
        f" FROM w JOIN g ON g.n = w.gi{joins}"
        " WHERE 1 ON CONFLICT (idempotency_key) DO NOTHING"
    )


def _move_clocks(conn: Any, moves: list[tuple[Any, ...]]) -> None:
    """Move every claimed clock on, and close the missed ones, in ONE UPDATE.

    A clock still running carries NULL status, reason and closing time, which leave
    its own untouched.
    """
    if not moves:
        return
    if conn.dialect.name == "postgresql":
        ids, nexts, statuses, reasons, closed = (list(c) for c in zip(*moves, strict=True))
        conn.execute(
            _unnest_update(),
            {
                "ids": ids,
                "nexts": nexts,
                "statuses": statuses,
                "reasons": reasons,
                "closed": closed,
            },
        )
        return
    # SQLite: one executemany of a primary-key UPDATE (in sqlite3 a prepared statement
    # stepped per row: half the time of an UPDATE ... FROM json_each(...) of the same
    # rows), the clocks still running apart, touching only next_action_at: setting
    # status too (even to itself) rewrites every index on it, which doubled the UPDATE.
    running = [(m[1], m[0]) for m in moves if m[2] is None]
    missed = [(*m[1:], m[0]) for m in moves if m[2] is not None]
    if running:
        conn.exec_driver_sql(_SQLITE_MOVE, running)
    if missed:
        conn.exec_driver_sql(_SQLITE_CLOSE, missed)


_SQLITE_MOVE = "UPDATE deadlines SET next_action_at = ? WHERE id = ?"
_SQLITE_CLOSE = (
    "UPDATE deadlines SET next_action_at = ?, status = ?, closed_reason = ?, closed_at = ?"
    " WHERE id = ?"
)


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
                ((d.c.status == fixed(DeadlineStatus.open)) & (d.c.due_date <= horizon))
                | (
                    (d.c.status == fixed(DeadlineStatus.missed))
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
