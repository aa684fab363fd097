"""The report queries: every figure is one SQL aggregation over the stored clocks and cases.

Nothing here loops over case rows in Python: each report is a handful of GROUP BY
queries whose results are a few dozen rows, whatever the caseload. The same
queries answer the CLI, the API, the pages and the exports, and every figure can
name the cases behind it (:func:`cases_behind`) with the same filter it counted.
Definitions (what "fell due", "met late" or "held" mean) are in docs/reports.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Integer, Select, and_, case, func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session

from casework.deadlines import DeadlineKind
from casework.models import (
    MISSED_OUTSTANDING,
    Allocation,
    AllocationStatus,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    Provider,
)
from casework.reports.sql import (
    day_number,
    london_date,
    london_midnight,
    text_value,
    working_day_rank,
)
from casework.states import CaseKind

cases_t = Case.__table__  # type: ignore[attr-defined]
deadlines_t = Deadline.__table__  # type: ignore[attr-defined]
events_t = CaseEvent.__table__  # type: ignore[attr-defined]
allocations_t = Allocation.__table__  # type: ignore[attr-defined]
providers_t = Provider.__table__  # type: ignore[attr-defined]

# The meeting date a provider sets is a reminder for the family, not a clock anyone
# is judged by.
NOT_TIMED = (DeadlineKind.scheduled_meeting.value,)
OUTCOMES = ("met_on_time", "met_late", "missed", "open", "cancelled")
ALL_PROVIDERS = "all"
STILL_OPEN = "missed_still_open"
NO_PROVIDER = "none"


@dataclass(frozen=True)
class Period:
    """A span of London calendar days, both ends included."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the period ends before it starts: give --from before --to")

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(dt.date(year, 1, 1), dt.date(year, 12, 31))

    @property
    def calendar_year(self) -> int | None:
        """The year when the period is exactly one calendar year (the SEN2 return's span)."""
        if self == Period.year(self.start.year):
            return self.start.year
        return None

    @property
    def starts_at(self) -> dt.datetime:
        return london_midnight(self.start)

    @property
    def ends_before(self) -> dt.datetime:
        return london_midnight(self.end + dt.timedelta(days=1))

    def contains_instant(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.starts_at, column < self.ends_before)

    def months(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        y, m = self.start.year, self.start.month
        while (y, m) <= (self.end.year, self.end.month):
            out.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def _rank_span(period: Period, as_of: dt.datetime) -> tuple[dt.date, dt.date]:
    """The days a lateness or response time can involve: due or allocated in the period,
    done by now. Holidays before the span shift every rank alike, so they can be left out."""
    return period.start, max(period.end, as_of.date()) + dt.timedelta(days=1)


# --- Timeliness ------------------------------------------------------------------------


@dataclass
class TimelinessRow:
    """One clock kind for one provider (or ``all``): what fell due and what became of it."""

    clock: str
    provider: str
    provider_name: str
    due: int = 0
    met_on_time: int = 0
    met_late: int = 0
    missed: int = 0
    missed_still_open: int = 0
    open: int = 0
    cancelled: int = 0
    late_median_working_days: float | None = None
    late_worst_working_days: int | None = None

    @property
    def decided(self) -> int:
        """Clocks whose outcome is settled: met (on time or late) or missed."""
        return self.met_on_time + self.met_late + self.missed

    @property
    def percent_on_time(self) -> float | None:
        return round(100.0 * self.met_on_time / self.decided, 1) if self.decided else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["percent_on_time"] = self.percent_on_time
        return out


def _outcome(as_of: dt.datetime) -> ColumnElement[str]:
    d = deadlines_t.c
    return case(
        (d.status == DeadlineStatus.cancelled.value, text_value("cancelled")),
        (d.status == DeadlineStatus.met.value, text_value("met_on_time")),
        (
            (d.status == DeadlineStatus.missed.value) & d.done_on.is_not(None),
            text_value("met_late"),
        ),
        ((d.status == DeadlineStatus.open.value) & (d.due_at > as_of), text_value("open")),
        else_=text_value("missed"),
    )


def _still_outstanding(as_of: dt.datetime) -> ColumnElement[bool]:
    d = deadlines_t.c
    return or_(
        (d.status == DeadlineStatus.missed.value) & (d.closed_reason == MISSED_OUTSTANDING),
        (d.status == DeadlineStatus.open.value) & (d.due_at <= as_of),
    )


def _clock_filter(period: Period, provider_id: int | None) -> list[ColumnElement[bool]]:
    d, c = deadlines_t.c, cases_t.c
    conditions = [
        # No index serves a range of due dates across every status; a report reads most
        # of the table, and a straight scan beats an index walk that fetches each row.
        d.due_date >= period.start,
        d.due_date <= period.end,
        d.kind.not_in(NOT_TIMED),
    ]
    if provider_id is not None:
        conditions.append(c.provider_id == provider_id)
    return conditions


def _met_late() -> ColumnElement[bool]:
    d = deadlines_t.c
    return (d.status == DeadlineStatus.missed.value) & d.done_on.is_not(None)


def timeliness_counts_query(
    period: Period, provider_id: int | None, as_of: dt.datetime
) -> Select[Any]:
    """Clocks per kind and provider by outcome: one pass, one condition per outcome.

    The conditions exclude each other and are written out (rather than comparing a
    classifying CASE), so each row costs what it would in a hand-written query, and
    grouping by two plain columns lets PostgreSQL hash the groups.
    """
    d, c = deadlines_t.c, cases_t.c
    missed = d.status == DeadlineStatus.missed.value
    still_open = d.status == DeadlineStatus.open.value
    conditions = {
        "met_on_time": d.status == DeadlineStatus.met.value,
        "met_late": _met_late(),
        "missed": missed & d.done_on.is_(None) & (d.closed_reason != MISSED_OUTSTANDING),
        STILL_OPEN: (missed & (d.closed_reason == MISSED_OUTSTANDING))
        | (still_open & (d.due_at <= as_of)),
        "open": still_open & (d.due_at > as_of),
        "cancelled": d.status == DeadlineStatus.cancelled.value,
    }
    return (
        select(
            d.kind,
            c.provider_id,
            *[
                func.sum(case((condition, 1), else_=0)).label(name)
                for name, condition in conditions.items()
            ],
        )
        .select_from(deadlines_t.join(cases_t, c.id == d.case_id))
        .where(*_clock_filter(period, provider_id))
        .group_by(d.kind, c.provider_id)
    )


def lateness_query(period: Period, provider_id: int | None, as_of: dt.datetime) -> Select[Any]:
    """Clocks met late per kind, provider and working days late: a frequency table.

    :func:`timeliness` reads each group's median and worst from it (a few hundred
    aggregate rows, whatever the caseload).
    """
    d, c = deadlines_t.c, cases_t.c
    first, last = _rank_span(period, as_of)
    lateness = (
        working_day_rank(d.done_on, first, last) - working_day_rank(d.due_date, first, last)
    ).label("lateness")
    return (
        select(d.kind, c.provider_id, lateness, func.count().label("n"))
        .select_from(deadlines_t.join(cases_t, c.id == d.case_id))
        # The met-late clocks have their own index (ix_deadlines_met_late).
        .where(*_clock_filter(period, provider_id), _met_late())
        .group_by(d.kind, c.provider_id, lateness)
    )


def median_and_max(rows: Any, value: Any, groups: Sequence[Any]) -> Select[Any]:
    """Median (mean of the middle one or two) and maximum of ``value`` per group, in SQL.

    Window functions rank the rows inside each group; SQLite has no percentile
    aggregate, so the median is the average of the rows at the middle positions.
    """
    ranked = select(
        *groups,
        value.label("v"),
        func.row_number().over(partition_by=list(groups), order_by=value).label("rn"),
        func.count().over(partition_by=list(groups)).label("n"),
    ).subquery("ranked")
    keys = [ranked.c[g.name] for g in groups]
    middle = or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
    return select(
        *keys,
        func.avg(case((middle, ranked.c.v))).label("median"),
        func.max(ranked.c.v).label("worst"),
        func.count().label("n"),
    ).group_by(*keys)


def median_of_counts(counts: dict[int, int]) -> float | None:
    """The median of values given as a frequency table (value -> how many)."""
    total = sum(counts.values())
    if not total:
        return None
    lower, upper = (total + 1) // 2, (total + 2) // 2  # 1-based middle positions
    seen, low, high = 0, None, None
    for value in sorted(counts):
        seen += counts[value]
        if low is None and seen >= lower:
            low = value
        if seen >= upper:
            high = value
            break
    assert low is not None and high is not None
    return (low + high) / 2


def percentile_of(rows: Any, value: Any, share: int) -> Select[Any]:
    """The nearest-rank ``share``-th percentile of ``value`` over ``rows`` (one row)."""
    ranked = select(
        value.label("v"),
        func.row_number().over(order_by=value).label("rn"),
        func.count().over().label("n"),
    ).subquery("ranked_p")
    # Nearest rank: the smallest value with at least share% of the values at or below it.
    target = (ranked.c.n * share + 99) // 100
    return select(func.max(case((ranked.c.rn == target, ranked.c.v)))).select_from(ranked)


def provider_labels(conn: Connection | Session) -> dict[int, tuple[str, str]]:
    rows = conn.execute(select(providers_t.c.id, providers_t.c.code, providers_t.c.name))
    return {r.id: (r.code, r.name) for r in rows}


def timeliness(
    conn: Connection | Session,
    period: Period,
    *,
    as_of: dt.datetime,
    provider_id: int | None = None,
) -> list[TimelinessRow]:
    """Every clock kind per provider, then the same over all providers (``provider='all'``).

    Two SQL aggregations: the counts (:func:`timeliness_counts_query`) and the
    frequency table of lateness (:func:`lateness_query`); the overall rows add up
    the per-provider groups, and the medians come from the frequency tables (a few
    hundred aggregate rows, not cases).
    """
    names = provider_labels(conn)

    def label(pid: int | None) -> tuple[str, str]:
        if pid is None:
            return NO_PROVIDER, "No provider"
        return names.get(pid, (str(pid), "Unknown provider"))

    rows: dict[tuple[str, str], TimelinessRow] = {}
    totals: dict[str, TimelinessRow] = {}
    for r in conn.execute(timeliness_counts_query(period, provider_id, as_of)):
        code, name = label(r.provider_id)
        row = rows.setdefault((r.kind, code), TimelinessRow(r.kind, code, name))
        total = totals.setdefault(r.kind, TimelinessRow(r.kind, ALL_PROVIDERS, "All providers"))
        counts = {name: int(getattr(r, name) or 0) for name in (*OUTCOMES, STILL_OPEN)}
        for target in (row, total):
            for name, n in counts.items():
                if name == STILL_OPEN:
                    target.missed += n
                    target.missed_still_open += n
                else:
                    setattr(target, name, getattr(target, name) + n)
    late: dict[int, dict[int, int]] = {}  # id(row) -> working days late -> clocks
    for r in conn.execute(lateness_query(period, provider_id, as_of)):
        code, _name = label(r.provider_id)
        for found in (rows.get((r.kind, code)), totals.get(r.kind)):
            if found is not None:
                table = late.setdefault(id(found), {})
                table[int(r.lateness)] = table.get(int(r.lateness), 0) + int(r.n)
    for row in (*rows.values(), *totals.values()):
        row.due = row.decided + row.open
        if id(row) in late:
            row.late_median_working_days = _num(median_of_counts(late[id(row)]))
            row.late_worst_working_days = max(late[id(row)])
    order = {k.value: i for i, k in enumerate(DeadlineKind)}
    out = sorted(rows.values(), key=lambda x: (order.get(x.clock, 99), x.provider_name))
    out += sorted(totals.values(), key=lambda x: order.get(x.clock, 99))
    return out


@dataclass
class MonthRow:
    year: int
    month: int
    clock: str
    due: int
    met_on_time: int
    met_late: int
    missed: int
    open: int

    @property
    def label(self) -> str:
        return dt.date(self.year, self.month, 1).strftime("%B %Y")

    @property
    def decided(self) -> int:
        return self.met_on_time + self.met_late + self.missed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "month": f"{self.year:04d}-{self.month:02d}"}


def timeliness_by_month(
    conn: Connection | Session,
    period: Period,
    *,
    as_of: dt.datetime,
    provider_id: int | None = None,
) -> list[MonthRow]:
    """The trend: the same counts per calendar month of the due date, per clock kind."""
    d = deadlines_t.c
    outcome = _outcome(as_of)
    year = func.extract("year", d.due_date).label("y")
    month = func.extract("month", d.due_date).label("m")

    def count_of(name: str) -> Any:
        return func.sum(case((outcome == name, 1), else_=0)).label(name)

    query = (
        select(year, month, d.kind, *[count_of(n) for n in OUTCOMES if n != "cancelled"])
        .select_from(deadlines_t.join(cases_t, cases_t.c.id == d.case_id))
        .where(*_clock_filter(period, provider_id), d.status != DeadlineStatus.cancelled.value)
        .group_by(year, month, d.kind)
        .order_by(year, month, d.kind)
    )
    out = []
    for r in conn.execute(query):
        counts = {n: int(getattr(r, n) or 0) for n in ("met_on_time", "met_late", "missed", "open")}
        out.append(MonthRow(int(r.y), int(r.m), r.kind, sum(counts.values()), **counts))
    return out


# --- Flow and outcome figures ----------------------------------------------------------


@dataclass(frozen=True)
class Breakdown:
    """One flow figure: the rows it counts (case id and a category), and how to say it."""

    key: str
    title: str
    category: str
    rows: Callable[[Period, int | None], Select[Any]]
    free_text: bool = False  # categories typed by people: managers only, never commissioners


def _opened(period: Period, provider_id: int | None, value: Any) -> Select[Any]:
    c = cases_t.c
    q = select(c.id.label("case_id"), value.label("category")).where(
        period.contains_instant(c.opened_at)
    )
    return q.where(c.provider_id == provider_id) if provider_id is not None else q


def _events(
    period: Period, provider_id: int | None, names: Sequence[str], value: Any
) -> Select[Any]:
    c, e = cases_t.c, events_t.c
    q = (
        select(e.case_id.label("case_id"), value.label("category"))
        .select_from(events_t.join(cases_t, c.id == e.case_id))
        .where(e.event.in_(list(names)), period.contains_instant(e.at))
    )
    return q.where(c.provider_id == provider_id) if provider_id is not None else q


def _on_day(period: Period, provider_id: int | None, day: Any, value: Any) -> Select[Any]:
    c = cases_t.c
    q = select(c.id.label("case_id"), value.label("category")).where(
        day >= period.start, day <= period.end
    )
    return q.where(c.provider_id == provider_id) if provider_id is not None else q


def _allocations(
    period: Period, provider_id: int | None, when: Any, status: str | None
) -> Select[Any]:
    a = allocations_t.c
    q = select(a.case_id.label("case_id"), providers_t.c.code.label("category")).select_from(
        allocations_t.join(providers_t, providers_t.c.id == a.provider_id)
    )
    q = q.where(period.contains_instant(when))
    if status is not None:
        q = q.where(a.status == status)
    return q.where(a.provider_id == provider_id) if provider_id is not None else q


_c = cases_t.c
_e = events_t.c
_a = allocations_t.c
_not_recorded = text_value("not_recorded")

BREAKDOWNS: tuple[Breakdown, ...] = (
    Breakdown(
        "requests_by_channel",
        "Requests by how they reached us",
        "Channel",
        lambda p, pid: _opened(p, pid, _c.intake_channel),
    ),
    Breakdown(
        "requests_by_kind", "Requests by kind", "Kind", lambda p, pid: _opened(p, pid, _c.kind)
    ),
    Breakdown(
        "requests_by_decision_type",
        "Mediation requests by the decision disputed",
        "Decision",
        lambda p, pid: _opened(p, pid, func.coalesce(_c.decision_type, _not_recorded)).where(
            _c.kind == CaseKind.mediation.value
        ),
    ),
    Breakdown(
        "advice_given",
        "Advice given",
        "Kind",
        lambda p, pid: _events(p, pid, ["advise"], _c.kind),
    ),
    Breakdown(
        "mediation_choice",
        "Mediation chosen, declined or not needed",
        "Choice",
        lambda p, pid: _events(p, pid, ["choose_mediation", "decline", "mark_exempt"], _e.event),
    ),
    Breakdown(
        "meetings_held",
        "Meetings held",
        "Kind",
        lambda p, pid: _on_day(p, pid, _c.meeting_held_on, _c.kind),
    ),
    Breakdown(
        "meeting_outcomes",
        "What meetings reached",
        "Outcome",
        lambda p, pid: _on_day(
            p, pid, _c.meeting_held_on, func.coalesce(_c.meeting_outcome, _not_recorded)
        ),
    ),
    Breakdown(
        "certificates_by_type",
        "Certificates issued, by type",
        "Certificate",
        lambda p, pid: _on_day(
            p, pid, _c.certificate_on, func.coalesce(_c.certificate_type, _not_recorded)
        ),
    ),
    Breakdown(
        "allocations_by_provider",
        "Allocations to providers",
        "Provider",
        lambda p, pid: _allocations(p, pid, _a.allocated_at, None),
    ),
    Breakdown(
        "allocation_declines_by_provider",
        "Allocations declined by providers",
        "Provider",
        lambda p, pid: _allocations(p, pid, _a.responded_at, AllocationStatus.declined.value),
    ),
    Breakdown(
        "disagreement_outcomes",
        "Disagreement-resolution cases closed, by outcome",
        "Outcome",
        lambda p, pid: _events(
            p, pid, ["close"], func.coalesce(_c.close_outcome, _not_recorded)
        ).where(_c.kind == CaseKind.disagreement.value),
    ),
    Breakdown(
        "withdrawals", "Withdrawals", "Kind", lambda p, pid: _events(p, pid, ["withdraw"], _c.kind)
    ),
    Breakdown(
        "withdrawal_reasons",
        "Withdrawals by the reason given",
        "Reason",
        lambda p, pid: _events(p, pid, ["withdraw"], func.lower(func.trim(_e.note))),
        free_text=True,
    ),
    Breakdown(
        "allocation_decline_reasons",
        "Allocation declines by the reason given",
        "Reason",
        lambda p, pid: _events(p, pid, ["decline_allocation"], func.lower(func.trim(_e.note))),
        free_text=True,
    ),
)
BREAKDOWN_BY_KEY = {b.key: b for b in BREAKDOWNS}


@dataclass
class Stat:
    """A distribution summary: how many, the median, and the 90th percentile or the worst."""

    key: str
    title: str
    unit: str
    count: int
    median: float | None
    p90: float | None = None
    worst: float | None = None


@dataclass
class FlowReport:
    period: Period
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    stats: list[Stat] = field(default_factory=list)

    def as_dict(self, *, include_free_text: bool = True) -> dict[str, Any]:
        return {
            "from": self.period.start.isoformat(),
            "to": self.period.end.isoformat(),
            "figures": {
                key: counts
                for key, counts in self.counts.items()
                if include_free_text or not BREAKDOWN_BY_KEY[key].free_text
            },
            "stats": [asdict(s) for s in self.stats],
        }


def _certificate_days(period: Period, provider_id: int | None) -> Any:
    c = cases_t.c
    q = select(
        (day_number(c.certificate_on) - day_number(london_date(c.opened_at))).label("days")
    ).where(c.certificate_on >= period.start, c.certificate_on <= period.end)
    if provider_id is not None:
        q = q.where(c.provider_id == provider_id)
    return q.subquery("cert_days")


def _acceptance_days(period: Period, provider_id: int | None, as_of: dt.datetime) -> Any:
    a = allocations_t.c
    first, last = _rank_span(period, as_of)
    days = working_day_rank(london_date(a.responded_at), first, last) - working_day_rank(
        london_date(a.allocated_at), first, last
    )
    q = select(literal(1, Integer()).label("one"), days.label("days")).where(
        a.status.in_([AllocationStatus.accepted.value, AllocationStatus.ended.value]),
        a.responded_at.is_not(None),
        period.contains_instant(a.responded_at),
    )
    if provider_id is not None:
        q = q.where(a.provider_id == provider_id)
    return q.subquery("accept_days")


def flow(
    conn: Connection | Session,
    period: Period,
    *,
    as_of: dt.datetime,
    provider_id: int | None = None,
) -> FlowReport:
    report = FlowReport(period)
    for b in BREAKDOWNS:
        rows = b.rows(period, provider_id).subquery()
        q = (
            select(rows.c.category, func.count().label("n"))
            .group_by(rows.c.category)
            .order_by(rows.c.category)
        )
        report.counts[b.key] = {str(r.category or ""): int(r.n) for r in conn.execute(q)}

    cert = _certificate_days(period, provider_id)
    one = literal(1, Integer()).label("g")
    cert_rows = select(one, cert.c.days).subquery("cert_g")
    summary = conn.execute(median_and_max(cert_rows, cert_rows.c.days, [cert_rows.c.g])).first()
    p90 = conn.execute(percentile_of(cert, cert.c.days, 90)).scalar()
    report.stats.append(
        Stat(
            "request_to_certificate",
            "Time from request to certificate",
            "calendar days",
            int(summary.n) if summary else 0,
            _num(summary.median) if summary else None,
            p90=_num(p90),
            worst=_num(summary.worst) if summary else None,
        )
    )
    acc = _acceptance_days(period, provider_id, as_of)
    summary = conn.execute(median_and_max(acc, acc.c.days, [acc.c.one])).first()
    report.stats.append(
        Stat(
            "allocation_acceptance",
            "Time for a provider to accept an allocation",
            "working days",
            int(summary.n) if summary else 0,
            _num(summary.median) if summary else None,
            worst=_num(summary.worst) if summary else None,
        )
    )
    return report


# --- SEN2 ------------------------------------------------------------------------------


@dataclass
class Sen2:
    """The SEN2 mediation figures for a period (normally one calendar year)."""

    period: Period
    mediation_cases_held: int
    followed_by_appeal: int
    no_appeal: int
    outcome_unknown: int

    @property
    def percent_followed_by_appeal(self) -> float | None:
        if not self.mediation_cases_held:
            return None
        return round(100.0 * self.followed_by_appeal / self.mediation_cases_held, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "year": self.period.calendar_year,
            "from": self.period.start.isoformat(),
            "to": self.period.end.isoformat(),
            "mediation_cases_held": self.mediation_cases_held,
            "followed_by_appeal": self.followed_by_appeal,
            "no_appeal": self.no_appeal,
            "outcome_unknown": self.outcome_unknown,
            "percent_followed_by_appeal": self.percent_followed_by_appeal,
        }


SEN2_APPEAL = "appeal_lodged"
SEN2_NO_APPEAL = "no_appeal"


def sen2_rows(period: Period, provider_id: int | None = None) -> Select[Any]:
    """Mediation cases whose meeting was held in the period, with their SEN2 category."""
    c = cases_t.c
    category = case(
        (c.close_outcome == SEN2_APPEAL, text_value("followed_by_appeal")),
        (c.close_outcome == SEN2_NO_APPEAL, text_value("no_appeal")),
        else_=text_value("outcome_unknown"),
    )
    q = select(c.id.label("case_id"), category.label("category")).where(
        c.kind == CaseKind.mediation.value,
        c.meeting_held_on >= period.start,
        c.meeting_held_on <= period.end,
    )
    return q.where(c.provider_id == provider_id) if provider_id is not None else q


def sen2(conn: Connection | Session, period: Period, *, provider_id: int | None = None) -> Sen2:
    rows = sen2_rows(period, provider_id).subquery()
    counts = {
        r.category: int(r.n)
        for r in conn.execute(
            select(rows.c.category, func.count().label("n")).group_by(rows.c.category)
        )
    }
    return Sen2(
        period,
        mediation_cases_held=sum(counts.values()),
        followed_by_appeal=counts.get("followed_by_appeal", 0),
        no_appeal=counts.get("no_appeal", 0),
        outcome_unknown=counts.get("outcome_unknown", 0),
    )


# --- The cases behind a figure (managers only) -----------------------------------------


@dataclass(frozen=True)
class CaseLine:
    reference: str
    kind: str
    state: str
    provider_name: str


def figure_case_ids(
    figure: str,
    category: str,
    period: Period,
    *,
    as_of: dt.datetime,
    provider_id: int | None = None,
) -> Select[Any]:
    """The ids of the cases behind one number, with the filter that counted it.

    ``figure`` is a breakdown key, ``sen2``, or ``timeliness`` with ``category``
    ``"<clock>|<provider code or all or none>|<outcome>"``.
    """
    if figure == "sen2":
        rows = sen2_rows(period, provider_id).subquery()
        return select(rows.c.case_id).where(rows.c.category == category)
    if figure == "timeliness":
        clock, _, rest = category.partition("|")
        provider, _, outcome = rest.partition("|")
        d, c = deadlines_t.c, cases_t.c
        if outcome == "due":
            chosen: ColumnElement[bool] = _outcome(as_of) != "cancelled"
        elif outcome == "missed_still_open":
            chosen = _still_outstanding(as_of)
        else:
            chosen = _outcome(as_of) == outcome
        q = (
            select(d.case_id)
            .select_from(deadlines_t.join(cases_t, c.id == d.case_id))
            .where(*_clock_filter(period, provider_id), d.kind == clock, chosen)
        )
        if provider == NO_PROVIDER:
            q = q.where(c.provider_id.is_(None))
        elif provider != ALL_PROVIDERS:
            q = q.where(
                c.provider_id.in_(select(providers_t.c.id).where(providers_t.c.code == provider))
            )
        return q
    breakdown = BREAKDOWN_BY_KEY.get(figure)
    if breakdown is None:
        raise KeyError(figure)
    rows = breakdown.rows(period, provider_id).subquery()
    return select(rows.c.case_id).where(rows.c.category == category)


def cases_behind(
    conn: Connection | Session,
    figure: str,
    category: str,
    period: Period,
    *,
    as_of: dt.datetime,
    provider_id: int | None = None,
    limit: int = 500,
) -> list[CaseLine]:
    ids = figure_case_ids(figure, category, period, as_of=as_of, provider_id=provider_id)
    c = cases_t.c
    q = (
        select(c.reference, c.kind, c.state, providers_t.c.name)
        .select_from(cases_t.outerjoin(providers_t, providers_t.c.id == c.provider_id))
        .where(c.id.in_(ids.scalar_subquery()))
        .order_by(c.reference)
        .limit(limit)
    )
    return [CaseLine(r.reference, r.kind, r.state, r.name or "") for r in conn.execute(q)]


# --- The pseudonymised per-case export ---------------------------------------------------

CASE_EXPORT_CLOCKS = tuple(k.value for k in DeadlineKind if k.value not in NOT_TIMED)


def case_export_query(
    period: Period, *, as_of: dt.datetime, provider_id: int | None
) -> Select[Any]:
    """One row per case opened in the period: facts and dates, each clock's outcome.

    No names, contacts, references or free text: the caller replaces the case id with
    a keyed hash before anything leaves the service.
    """
    c, d = cases_t.c, deadlines_t.c
    outcome = _outcome(as_of)
    clock_cols = [
        func.max(case((d.kind == kind, outcome))).label(f"clock_{kind}")
        for kind in CASE_EXPORT_CLOCKS
    ]
    q = (
        select(
            c.id,
            c.kind,
            c.decision_type,
            providers_t.c.code.label("provider"),
            c.state,
            london_date(c.opened_at).label("requested_on"),
            c.la_told_on,
            c.declined_on,
            c.meeting_held_on,
            c.meeting_outcome,
            c.certificate_on,
            c.certificate_type,
            c.close_outcome,
            *clock_cols,
        )
        .select_from(
            cases_t.outerjoin(providers_t, providers_t.c.id == c.provider_id).outerjoin(
                deadlines_t, and_(d.case_id == c.id, d.kind.not_in(NOT_TIMED))
            )
        )
        .where(period.contains_instant(c.opened_at))
        .group_by(
            c.id,
            c.kind,
            c.decision_type,
            providers_t.c.code,
            c.state,
            c.opened_at,
            c.la_told_on,
            c.declined_on,
            c.meeting_held_on,
            c.meeting_outcome,
            c.certificate_on,
            c.certificate_type,
            c.close_outcome,
        )
        .order_by(c.opened_at, c.id)
    )
    return q.where(c.provider_id == provider_id) if provider_id is not None else q


def _num(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
