"""Finding cases: the one query behind the dashboard, the API's list and the CSV export.

Search and every filter are applied here, so the page and the API answer the same
question the same way; provider staff only ever find their own cases.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from casework import deadlines as dl
from casework import urgency
from casework.cases.context import Actor
from casework.cases.errors import ValidationFailed
from casework.cases.provider_view import provider_may_open
from casework.cases.views import (
    _late_outstanding,
    paged,
    urgent_first,
    urgent_parts,
    with_next_clock,
)
from casework.config import Settings
from casework.driver import fixed, fixed_list
from casework.models import (
    Case,
    Deadline,
    DeadlineStatus,
    Person,
    Provider,
)
from casework.states import FINAL_STATES, CaseState

# --- Finding cases: the one query behind the dashboard, the API list and the CSV ---------

URGENCY_FILTERS = ("late", "due_soon", "on_track")
SORTS = ("urgency", "newest", "oldest", "reference")
# "open" is every state a case can still move from; "all" every state.
STATE_SCOPES = ("open", "all")
_REFERENCE_LIKE = re.compile(r"^[A-Za-z]{1,10}-\d[\d-]*$")
_MAX_QUERY = 100
# No case predates the SEND Regulations 2014; none is opened a century ahead.
_FIRST_DAY = dt.date(2014, 9, 1)
_LAST_DAY = dt.date(2100, 12, 31)


@dataclass(frozen=True)
class CaseCriteria:
    """What a person asks of the case list, the same through every door.

    ``state`` empty means the open cases, or every case while searching: someone
    typing a name or a phone number is usually looking for a case that may be closed.
    """

    q: str = ""
    state: str = ""
    kind: str = ""
    provider: str = ""  # the provider's code; "none" for cases not yet allocated
    urgency: str = ""
    adviser: str = ""
    decision_type: str = ""
    opened_from: dt.date | None = None
    opened_to: dt.date | None = None
    sort: str = "urgency"


@dataclass
class FoundCase:
    case: Case
    family_name: str
    # The case's most urgent clock still due (:func:`casework.cases.next_deadlines`).
    next_deadline: Deadline | None = None


@dataclass
class FoundCases:
    rows: list[FoundCase]
    total: int


def check_criteria(criteria: CaseCriteria) -> CaseCriteria:
    """Each criterion checked, errors naming the filter in words."""
    from casework.cases.intake import DECISION_TYPES
    from casework.cases.words import KIND_WORDS, STATE_WORDS

    q = criteria.q.strip()
    if len(q) > _MAX_QUERY:
        raise ValidationFailed(f"Search: keep it under {_MAX_QUERY} characters.", field="q")
    if "\x00" in q:
        raise ValidationFailed(
            "Search: it contains a character that cannot be searched.", field="q"
        )
    if criteria.state and criteria.state not in (*CaseState.__members__, *STATE_SCOPES):
        raise ValidationFailed(
            f"State: choose one of {', '.join(STATE_WORDS.values())}.", field="state"
        )
    if criteria.kind and criteria.kind not in KIND_WORDS:
        raise ValidationFailed(
            f"Kind of request: choose {' or '.join(KIND_WORDS.values())}.", field="kind"
        )
    if criteria.urgency and criteria.urgency not in URGENCY_FILTERS:
        raise ValidationFailed("Urgency: choose late, due soon or on track.", field="urgency")
    if criteria.decision_type and criteria.decision_type not in DECISION_TYPES:
        raise ValidationFailed(
            "What the LA decided: choose one of the LA decisions listed.", field="decision_type"
        )
    if criteria.sort not in SORTS:
        raise ValidationFailed(
            "Order: choose most urgent, newest, oldest or by reference.", field="sort"
        )
    for name, words, day in (
        ("opened_from", "Opened on or after", criteria.opened_from),
        ("opened_to", "Opened on or before", criteria.opened_to),
    ):
        if day is not None and not (_FIRST_DAY <= day <= _LAST_DAY):
            raise ValidationFailed(
                f"{words}: give a date between {dl.fmt(_FIRST_DAY)} and {dl.fmt(_LAST_DAY)}.",
                field=name,
            )
    if criteria.opened_from and criteria.opened_to and criteria.opened_from > criteria.opened_to:
        raise ValidationFailed(
            "Opened from: the first date must not be after the last.", field="opened_from"
        )
    return criteria


def _phone_matches(q: str) -> list[ColumnElement[bool]]:
    """A family phone matching ``q``: the number it spells, or the digits typed.

    Numbers are stored as E.164 (+447911123456). A whole number in any format is
    normalised; a part matches the stored digits, and a leading part typed the UK
    way (07911 12) matches the start of the stored number.
    """
    from casework.contacts import ContactError, normalise_phone

    digits = re.sub(r"\D", "", q)
    if len(digits) < 4 or re.search(r"[A-Za-z@]", q):
        return []
    found: list[ColumnElement[bool]] = [col(Person.phone).contains(digits, autoescape=True)]
    with contextlib.suppress(ContactError):  # not a whole number: the digits still match
        found.append(col(Person.phone) == normalise_phone(q))
    if digits.startswith("0") and not digits.startswith("00"):
        found.append(col(Person.phone).startswith("+44" + digits[1:], autoescape=True))
    return found


def _search(q: str) -> ColumnElement[bool]:
    if _REFERENCE_LIKE.match(q):
        # A whole or leading reference: the unique index answers it.
        return col(Case.reference).startswith(q.upper(), autoescape=True)
    needle = q.lower()
    person: list[ColumnElement[bool]] = [
        func.lower(col(Person.name)).contains(needle, autoescape=True),
        func.lower(col(Person.email)).contains(needle, autoescape=True),
    ]
    person += _phone_matches(q)
    family = select(col(Person.case_id)).where(col(Person.role) == "family", or_(*person))
    return or_(
        col(Case.reference).contains(q.upper(), autoescape=True),
        func.lower(col(Case.child_name)).contains(needle, autoescape=True),
        col(Case.id).in_(family),
    )


def _urgency(level: str, now: dt.datetime, settings: Settings) -> ColumnElement[bool]:
    """The case's most urgent clock at ``level``, by the rule of :func:`clock_urgency`."""
    d: Any = aliased(Deadline)
    is_open = d.status == fixed(DeadlineStatus.open)
    late = exists().where(
        d.case_id == Case.id, _late_outstanding(d) | (is_open & (d.due_at <= now))
    )
    if level == "late":
        return late
    horizon = urgency.due_soon_horizon(
        dl.local_date(now), settings.due_soon_service_days, settings.calendars
    )
    e: Any = aliased(Deadline)
    soon = exists().where(
        e.case_id == Case.id, e.status == fixed(DeadlineStatus.open), e.due_date <= horizon
    )
    if level == "due_soon":
        return ~late & soon
    f: Any = aliased(Deadline)
    due = exists().where(f.case_id == Case.id, f.status == fixed(DeadlineStatus.open))
    return ~late & ~soon & due


def _day_starts(day: dt.date) -> dt.datetime:
    """Midnight in London: "opened on 2 November" is a London day, not a UTC one."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dl.LONDON).astimezone(dt.UTC)


def case_conditions(
    criteria: CaseCriteria, *, actor: Actor, now: dt.datetime, settings: Settings
) -> list[ColumnElement[bool]]:
    """The WHERE of a case list; a provider sees only its own cases whatever it asks."""
    c = check_criteria(criteria)
    where: list[ColumnElement[bool]] = []
    if actor.is_provider:
        # Its own cases, less those ended past the retention or anonymised: the same
        # rule that opens a case by its reference.
        assert actor.provider_id is not None
        where.append(provider_may_open(actor.provider_id, now=now, settings=settings))
    where += _criteria_conditions(c)
    if c.urgency:
        where.append(_urgency(c.urgency, now, settings))
    return where


def _criteria_conditions(c: CaseCriteria) -> list[ColumnElement[bool]]:
    """The conditions that depend on the criteria alone (not on the moment or the actor)."""
    q = c.q.strip()
    where: list[ColumnElement[bool]] = []
    state = c.state or ("all" if q else "open")
    if state == "open":
        # NOT IN the final states: the planner then walks the clocks' index in order.
        where.append(
            col(Case.state).not_in(fixed_list("final_states", [s.value for s in FINAL_STATES]))
        )
    elif state != "all":
        where.append(col(Case.state) == state)
    if q:
        where.append(_search(q))
    if c.kind:
        where.append(col(Case.kind) == c.kind)
    if c.provider == "none":
        where.append(col(Case.provider_id).is_(None))
    elif c.provider:
        where.append(
            col(Case.provider_id).in_(
                select(col(Provider.id)).where(col(Provider.code) == c.provider.strip().lower())
            )
        )
    if c.adviser:
        where.append(col(Case.adviser) == c.adviser.strip().lower())
    if c.decision_type:
        where.append(col(Case.decision_type) == c.decision_type)
    if c.opened_from is not None:
        where.append(col(Case.opened_at) >= _day_starts(c.opened_from))
    if c.opened_to is not None:
        where.append(col(Case.opened_at) < _day_starts(c.opened_to + dt.timedelta(days=1)))
    return where


def find_cases(
    session: Session,
    criteria: CaseCriteria,
    *,
    limit: int,
    offset: int,
    actor: Actor,
    now: dt.datetime,
    settings: Settings,
    count: bool = True,
) -> FoundCases:
    """One page of the cases matching ``criteria`` and how many match in all.

    Every list of cases (the dashboard, the API, the CSV download) asks here, so
    the same criteria give the same cases through every door. ``count=False`` skips
    the total (it is then -1) for a door that already holds it, such as a cached
    count of cases per state.
    """
    where: list[ColumnElement[bool]] | None = None
    if actor.is_provider or criteria.urgency:
        # Its WHERE hangs on the moment (retention, urgency): built for this request.
        where = case_conditions(criteria, actor=actor, now=now, settings=settings)
        query, parts = _list_statements(where, criteria.sort)
    else:
        query, parts = _kept_statements(check_criteria(criteria))
    total = -1
    if count:
        if where is None:
            where = case_conditions(criteria, actor=actor, now=now, settings=settings)
        total = int(
            session.execute(select(func.count()).select_from(Case).where(*where)).scalar_one()
        )
    if parts is not None:
        rows = urgent_first(session, parts, limit=limit, offset=offset)
    else:
        rows = list(session.execute(query, {"page_limit": limit, "page_offset": offset}).all())
    return FoundCases(
        [FoundCase(case, name or "", next_deadline) for case, name, next_deadline in rows], total
    )


_ORDERS: dict[str, Any] = {
    "newest": col(Case.id).desc(),
    "oldest": col(Case.id).asc(),
    "reference": col(Case.reference).asc(),
}


def _list_statements(
    where: list[ColumnElement[bool]], sort: str
) -> tuple[Any, list[tuple[Any, Any]] | None]:
    """The list's paged query (ordered, unless by urgency) and, by urgency, its parts."""
    query = with_next_clock(
        select(Case, col(Person.name))
        .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == fixed("family")))
        .where(*where)
    )
    if sort == "urgency":
        return query, urgent_parts(query)
    return paged(query.order_by(_ORDERS[sort])), None


@lru_cache(maxsize=128)
def _kept_statements(criteria: CaseCriteria) -> tuple[Any, list[tuple[Any, Any]] | None]:
    """The statements of a list whose WHERE depends on the criteria alone (staff, no
    urgency filter), built once: the dashboard asks the same few lists again and again,
    and building the urgency order's statements cost more than running them."""
    return _list_statements(_criteria_conditions(criteria), criteria.sort)
