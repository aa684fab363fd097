"""``/api/v1/reports/...``: the report figures as JSON, scoped like the Reports pages.

Managers and admins get every figure, and the references behind a figure
(``/reports/cases``); commissioners get aggregates only, with counts from 1 to 4
given as the string ``"fewer than 5"`` and the percentages and medians worked out
from them as ``"withheld (fewer than 5)"``. Other roles are refused (403).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from casework import deadlines as dl
from casework import reports
from casework.cases import CaseworkError, find_provider
from casework.models import User
from casework.reports import formatting as fmt
from casework.reports.audience import MEASURES, Audience, audience_for
from casework.reports.queries import BREAKDOWN_BY_KEY
from casework.web.api.common import ApiRoute
from casework.web.api.schemas import ErrorOut
from casework.web.deps import NowDep, SessionDep, get_api_user

Figure = int | str
Derived = float | str | None


class TimelinessOut(BaseModel):
    clock: str
    clock_label: str
    provider: str = Field(description="Provider code, 'all' for every provider, 'none'")
    provider_name: str
    due: Figure
    met_on_time: Figure
    met_late: Figure
    missed: Figure
    missed_still_open: Figure
    open: Figure
    cancelled: Figure
    percent_on_time: Derived
    late_median_working_days: Derived
    late_worst_working_days: Derived


class MonthOut(BaseModel):
    month: str = Field(description="YYYY-MM")
    clock: str
    due: Figure
    met_on_time: Figure
    met_late: Figure
    missed: Figure
    open: Figure


class StatOut(BaseModel):
    key: str
    title: str
    unit: str
    count: Figure
    median: Derived
    p90: Derived
    worst: Derived


class FlowOut(BaseModel):
    from_: dt.date = Field(alias="from")
    to: dt.date
    figures: dict[str, dict[str, Figure]]
    stats: list[StatOut]


class Sen2Out(BaseModel):
    year: int | None
    from_: dt.date = Field(alias="from")
    to: dt.date
    mediation_cases_held: Figure
    followed_by_appeal: Figure
    no_appeal: Figure
    outcome_unknown: Figure
    percent_followed_by_appeal: Derived


class CaseLineOut(BaseModel):
    reference: str
    kind: str
    state: str
    provider_name: str


def reports_user(request: Request, session: SessionDep, now: NowDep) -> tuple[User, Audience]:
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        # Resolving a token may stamp "last used": ask SQLite for a write lock up front.
        session.connection(execution_options={"claim": True})
    user = get_api_user(request, session, now)
    try:
        return user, audience_for(user)
    except CaseworkError as exc:
        raise HTTPException(403, str(exc)) from None


ReportsUser = Annotated[tuple[User, Audience], Depends(reports_user)]
FromQ = Annotated[dt.date, Query(alias="from", description="First day of the period")]
ToQ = Annotated[dt.date, Query(alias="to", description="Last day of the period")]
ProviderQ = Annotated[str | None, Query(max_length=200, description="Provider code or name")]

router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    route_class=ApiRoute,
    responses={
        401: {"model": ErrorOut, "description": "Missing, invalid or revoked API token"},
        403: {"model": ErrorOut, "description": "Reports are for managers and commissioners"},
        422: {"model": ErrorOut, "description": "Invalid period or provider"},
    },
)


def _period(start: dt.date, end: dt.date) -> reports.Period:
    try:
        return reports.Period(start, end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _provider_id(session: Session, provider: str | None) -> int | None:
    if not provider:
        return None
    try:
        return find_provider(session, provider).id
    except CaseworkError as exc:
        raise HTTPException(422, str(exc)) from None


def _n(audience: Audience, n: int) -> Figure:
    return fmt.FEWER_THAN_5 if audience.suppress and 0 < n < fmt.SMALL else n


def _d(audience: Audience, value: float | None, base: int) -> Derived:
    if value is None:
        return None
    return fmt.WITHHELD if audience.suppress and 0 < base < fmt.SMALL else value


@router.get("/timeliness", response_model=list[TimelinessOut])
def timeliness(
    session: SessionDep,
    who: ReportsUser,
    now: NowDep,
    start: FromQ,
    end: ToQ,
    provider: ProviderQ = None,
) -> list[dict[str, Any]]:
    """Every clock that fell due in the period, per provider and for all providers."""
    _user, audience = who
    rows = reports.timeliness(
        session, _period(start, end), as_of=now, provider_id=_provider_id(session, provider)
    )
    return [
        {
            "clock": r.clock,
            "clock_label": fmt.clock_label(r.clock),
            "provider": r.provider,
            "provider_name": r.provider_name,
            **{k: _n(audience, getattr(r, k)) for k in MEASURES},
            "percent_on_time": _d(audience, r.percent_on_time, r.decided),
            "late_median_working_days": _d(audience, r.late_median_working_days, r.met_late),
            "late_worst_working_days": _d(
                audience,
                None if r.late_worst_working_days is None else float(r.late_worst_working_days),
                r.met_late,
            ),
        }
        for r in rows
    ]


@router.get("/timeliness/months", response_model=list[MonthOut])
def timeliness_months(
    session: SessionDep,
    who: ReportsUser,
    now: NowDep,
    start: FromQ,
    end: ToQ,
    provider: ProviderQ = None,
) -> list[dict[str, Any]]:
    """The same counts per month of the due date and clock: the trend."""
    _user, audience = who
    months = reports.timeliness_by_month(
        session, _period(start, end), as_of=now, provider_id=_provider_id(session, provider)
    )
    return [
        {
            "month": m.as_dict()["month"],
            "clock": m.clock,
            **{
                k: _n(audience, getattr(m, k))
                for k in ("due", "met_on_time", "met_late", "missed", "open")
            },
        }
        for m in months
    ]


@router.get("/flow", response_model=FlowOut, response_model_by_alias=True)
def flow(
    session: SessionDep,
    who: ReportsUser,
    now: NowDep,
    start: FromQ,
    end: ToQ,
    provider: ProviderQ = None,
) -> dict[str, Any]:
    """Requests, advice, choices, meetings, certificates, allocations, outcomes, withdrawals."""
    _user, audience = who
    report = reports.flow(
        session, _period(start, end), as_of=now, provider_id=_provider_id(session, provider)
    )
    return {
        "from": start,
        "to": end,
        "figures": {
            key: {category: _n(audience, n) for category, n in counts.items()}
            for key, counts in report.counts.items()
            if audience.full or not BREAKDOWN_BY_KEY[key].free_text
        },
        "stats": [
            {
                "key": s.key,
                "title": s.title,
                "unit": s.unit,
                "count": _n(audience, s.count),
                "median": _d(audience, s.median, s.count),
                "p90": _d(audience, s.p90, s.count),
                "worst": _d(audience, s.worst, s.count),
            }
            for s in report.stats
        ],
    }


@router.get("/sen2", response_model=Sen2Out, response_model_by_alias=True)
def sen2(
    session: SessionDep,
    who: ReportsUser,
    now: NowDep,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="A calendar year")] = None,
    start: Annotated[dt.date | None, Query(alias="from")] = None,
    end: Annotated[dt.date | None, Query(alias="to")] = None,
    provider: ProviderQ = None,
) -> dict[str, Any]:
    """The SEN2 mediation figures for a calendar year (default: the last complete one)."""
    _user, audience = who
    if start is not None or end is not None:
        if start is None or end is None or year is not None:
            raise HTTPException(422, "give either year, or both from and to")
        period = _period(start, end)
    else:
        period = reports.Period.year(year or dl.local_date(now).year - 1)
    got = reports.sen2(session, period, provider_id=_provider_id(session, provider))
    held = got.mediation_cases_held
    return {
        "year": period.calendar_year,
        "from": period.start,
        "to": period.end,
        "mediation_cases_held": _n(audience, held),
        "followed_by_appeal": _n(audience, got.followed_by_appeal),
        "no_appeal": _n(audience, got.no_appeal),
        "outcome_unknown": _n(audience, got.outcome_unknown),
        "percent_followed_by_appeal": _d(audience, got.percent_followed_by_appeal, held),
    }


@router.get("/cases", response_model=list[CaseLineOut])
def cases_behind(
    session: SessionDep,
    who: ReportsUser,
    now: NowDep,
    figure: Annotated[str, Query(max_length=60, description="A figure key, sen2 or timeliness")],
    category: Annotated[str, Query(max_length=300)],
    start: FromQ,
    end: ToQ,
    provider: ProviderQ = None,
) -> list[dict[str, Any]]:
    """The cases behind one figure (managers only; commissioners never see cases)."""
    _user, audience = who
    if not audience.full:
        raise HTTPException(403, "Commissioners see the figures only, never the cases")
    try:
        lines = reports.cases_behind(
            session,
            figure,
            category,
            _period(start, end),
            as_of=now,
            provider_id=_provider_id(session, provider),
        )
    except KeyError:
        raise HTTPException(404, f"no figure {figure!r} in the reports") from None
    return [line.__dict__ for line in lines]
