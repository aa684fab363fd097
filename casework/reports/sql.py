"""Portable SQL pieces the report queries are built from (SQLite and PostgreSQL).

Reports are SQL aggregations, so the few things the two databases spell
differently live here as SQLAlchemy constructs compiled per dialect: the London
calendar day of a stored UTC instant, a date as a day number (for differences in
calendar days), and the date a late act was done, which the use cases record in
the clock's closing reason. Working days come from a small VALUES table built
from :mod:`casework.deadlines`, so the statutory calendar lives in one place and
the database never needs a holiday table of its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, Integer, String, case, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FunctionElement

from casework import deadlines as dl


class london_date(FunctionElement[dt.date]):
    """The Europe/London calendar day of a stored UTC instant."""

    type = Date()
    inherit_cache = True


@compiles(london_date, "postgresql")
def _london_date_pg(element: london_date, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"CAST(timezone('Europe/London', {compiler.process(arg, **kw)}) AS DATE)"


@compiles(london_date, "sqlite")
def _london_date_sqlite(element: london_date, compiler: Any, **kw: Any) -> str:
    # SQLite stores naive UTC text and knows no zones. British Summer Time runs from
    # 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
    # October (the Summer Time Order 2002); the last Sunday of a 31-day month is the
    # first Sunday on or after its 25th.
    ts = compiler.process(next(iter(element.clauses)), **kw)
    year = f"strftime('%Y', {ts})"
    starts = f"datetime(date({year} || '-03-25', 'weekday 0'), '+1 hour')"
    ends = f"datetime(date({year} || '-10-25', 'weekday 0'), '+1 hour')"
    return (
        f"date({ts}, CASE WHEN {ts} >= {starts} AND {ts} < {ends}"
        " THEN '+1 hour' ELSE '+0 hours' END)"
    )


class day_number(FunctionElement[int]):
    """A date as a whole number of days, so that ``b - a`` is the calendar days between."""

    type = Integer()
    inherit_cache = True


@compiles(day_number, "postgresql")
def _day_number_pg(element: day_number, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(next(iter(element.clauses)), **kw)
    return f"(CAST({arg} AS DATE) - DATE '2000-01-01')"


@compiles(day_number, "sqlite")
def _day_number_sqlite(element: day_number, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(next(iter(element.clauses)), **kw)
    return f"CAST(julianday({arg}) - 2451544.5 AS INTEGER)"


def london_midnight(day: dt.date) -> dt.datetime:
    """The UTC instant a London day starts: the bound for comparing stored instants."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=dl.LONDON).astimezone(dt.UTC)


EPOCH = dt.date(2000, 1, 1)  # a Saturday: day_number() counts from here


def working_day_rank(day: ColumnElement[Any], first: dt.date, last: dt.date) -> ColumnElement[int]:
    """How many working days there are up to and including ``day`` (from a fixed epoch).

    ``rank(b) - rank(a)`` is the working days in (a, b]: how late, in working days,
    an act done on ``b`` was against a clock due on ``a``. Weekdays come from
    arithmetic on the day number; the bank holidays between ``first`` and ``last``
    (the span the query can meet) come from :mod:`casework.deadlines` as a CASE
    ladder of integers, so no calendar table is needed and both databases agree.
    Statutory calendar only (no service closure days): lateness is judged against
    the law's calendar.
    """
    n = day_number(day)
    k = n + 1
    weekdays = (k // 7) * 5 + case((k % 7 > 2, k % 7 - 2), else_=0)
    holidays = _weekday_holidays(first, last)
    if not holidays:
        return weekdays
    return weekdays - _holidays_up_to(n, holidays, 0, len(holidays))


def _holidays_up_to(n: Any, holidays: list[int], lo: int, hi: int) -> Any:
    """How many of ``holidays`` (sorted) are on or before day ``n``, as a balanced CASE tree.

    The answer is known to lie in [lo, hi]; each level halves that, so a row costs
    about log2(len(holidays)) comparisons instead of one per holiday.
    """
    if lo == hi:
        return literal(lo, Integer())
    mid = (lo + hi) // 2
    return case(
        (n < literal(holidays[mid], Integer()), _holidays_up_to(n, holidays, lo, mid)),
        else_=_holidays_up_to(n, holidays, mid + 1, hi),
    )


_STATUTORY: dl.WorkingCalendar | None = None


def _weekday_holidays(first: dt.date, last: dt.date) -> list[int]:
    """Day numbers of the non-working weekdays (bank holidays) from ``first`` to ``last``."""
    calendar = _statutory_calendar()
    found: list[int] = []
    day = first
    while day <= last:
        if day.weekday() < 5 and not calendar.is_working_day(day):
            found.append((day - EPOCH).days)
        day += dt.timedelta(days=1)
    return found


def _statutory_calendar() -> dl.WorkingCalendar:
    global _STATUTORY
    if _STATUTORY is None:
        _STATUTORY = dl.WorkingCalendar()
    return _STATUTORY


def text_value(value: str) -> ColumnElement[str]:
    """A string constant typed as text (a bare literal is untyped inside CASE on PostgreSQL)."""
    return literal(value, String())
