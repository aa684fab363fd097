"""The Reports pages: timeliness, flow and SEN2 figures for managers and commissioners.

Managers (and admins) see every figure, each number a link to the cases behind
it. Commissioners see aggregates only: no names, references or contact details
anywhere, counts from 1 to 4 shown as "fewer than 5", and percentages, medians and
chart bars worked out from so few cases withheld. Both read the same queries
(:mod:`casework.reports`) as the CLI and the API, so a figure is the same number
wherever it is read. Every chart is a server-rendered SVG with its data table
beneath it and a sentence saying what it shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select
from sqlmodel import Session

from casework import deadlines as dl
from casework import reports
from casework.cases import CaseworkError
from casework.models import Provider, User
from casework.reports import charts
from casework.reports import formatting as fmt
from casework.reports.audience import (
    DOWNLOADS,
    MEASURES,
    Audience,
    audience_for,
)
from casework.reports.queries import BREAKDOWNS, MonthRow, TimelinessRow, case_export_query
from casework.web.deps import NowDep, PageUserDep, SessionDep, SettingsDep
from casework.web.pages.common import PageError, render
from casework.web.pages.labels import fmt_date

router = APIRouter(include_in_schema=False)


def require_reports(signed_in: tuple[User, Any]) -> tuple[User, Audience]:
    user = signed_in[0]
    try:
        return user, audience_for(user)
    except CaseworkError as exc:
        raise PageError(403, "You cannot use this page", str(exc)) from None


# --- The period and provider asked for ---------------------------------------------------


@dataclass(frozen=True)
class Selection:
    period: reports.Period
    provider: Provider | None
    errors: dict[str, str]

    @property
    def provider_id(self) -> int | None:
        return self.provider.id if self.provider is not None else None

    def query(self, **extra: str) -> str:
        params = {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()}
        if self.provider is not None:
            params["provider"] = self.provider.code
        params.update(extra)
        return urlencode(params)

    @property
    def label(self) -> str:
        words = f"{fmt_date(self.period.start)} to {fmt_date(self.period.end)}"
        if self.provider is not None:
            words += f", {self.provider.name} only"
        return words


def select_period(
    session: Session,
    start: str | None,
    end: str | None,
    provider: str | None,
    today: dt.date,
    *,
    year: int | None = None,
) -> Selection:
    """The period and provider from the query string; a bad value is said in words."""
    errors: dict[str, str] = {}
    default = reports.Period(dt.date(today.year, 1, 1), today)
    if year is not None and not (start or end):
        if 2000 <= year <= 2100:
            default = reports.Period.year(year)
        else:
            errors["year"] = "Enter a year such as 2026"
    chosen_start, chosen_end = default.start, default.end
    for name, value in (("from", start), ("to", end)):
        if not value:
            continue
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            errors[name] = f"Enter the {'first' if name == 'from' else 'last'} day as a real date"
            continue
        if name == "from":
            chosen_start = day
        else:
            chosen_end = day
    if chosen_end < chosen_start and not errors:
        errors["to"] = "The last day must be the same as or after the first day"
        chosen_end = chosen_start
    chosen: Provider | None = None
    if provider:
        chosen = session.execute(
            select(Provider).where(Provider.code == provider)  # type: ignore[arg-type]
        ).scalar_one_or_none()
        if chosen is None:
            errors["provider"] = "Choose a provider from the list"
    return Selection(reports.Period(chosen_start, chosen_end), chosen, errors)


def provider_options(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(select(Provider.code, Provider.name).order_by(Provider.name))  # type: ignore[call-overload]
    return [(r.code, r.name) for r in rows]


FromQ = Annotated[str | None, Query(alias="from")]
ToQ = Annotated[str | None, Query(alias="to")]
ProviderQ = Annotated[str | None, Query()]


def _today(now: dt.datetime) -> dt.date:
    return dl.local_date(now)


# --- Cells: a number, and for managers the link to its cases -----------------------------


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    numeric: bool = True


def cell(audience: Audience, selection: Selection, n: int, figure: str, category: str) -> Cell:
    if audience.full and n > 0:
        href = "/reports/cases?" + selection.query(figure=figure, category=category)
        return Cell(audience.count(n), href)
    return Cell(audience.count(n))


# --- Timeliness -----------------------------------------------------------------------------


def timeliness_context(
    session: Session, audience: Audience, selection: Selection, now: dt.datetime
) -> dict[str, Any]:
    rows = reports.timeliness(
        session, selection.period, as_of=now, provider_id=selection.provider_id
    )
    overall = [r for r in rows if r.provider == reports.ALL_PROVIDERS]
    by_provider = [r for r in rows if r.provider != reports.ALL_PROVIDERS]

    def table(source: list[TimelinessRow]) -> list[dict[str, Any]]:
        out = []
        for r in source:
            out.append(
                {
                    "clock": fmt.clock_label(r.clock),
                    "provider": r.provider_name,
                    "cells": [
                        cell(
                            audience,
                            selection,
                            getattr(r, m),
                            "timeliness",
                            f"{r.clock}|{r.provider}|{m}",
                        )
                        for m in MEASURES
                    ],
                    "percent": audience.derived(r.percent_on_time, r.decided, "%"),
                    "late_by": _late_by(audience, r),
                }
            )
        return out

    months = reports.timeliness_by_month(
        session, selection.period, as_of=now, provider_id=selection.provider_id
    )
    return {
        "overall": table(overall),
        "by_provider": table(by_provider),
        "measures": [fmt.OUTCOME_LABELS[m] for m in MEASURES],
        "summary": _timeliness_summary(audience, overall),
        "chart": _timeliness_chart(audience, overall),
        "trend": _trend(audience, selection, months),
    }


def _late_by(audience: Audience, r: TimelinessRow) -> str:
    if r.late_median_working_days is None:
        return "none late"
    median = audience.derived(r.late_median_working_days, r.met_late, "working days")
    if audience.suppress and 0 < r.met_late < fmt.SMALL:
        return median
    return f"median {median}, longest {r.late_worst_working_days} working days"


def _timeliness_summary(audience: Audience, overall: list[TimelinessRow]) -> str:
    due = sum(r.due for r in overall)
    if not due:
        return "No clocks fell due in this period."
    on_time = sum(r.met_on_time for r in overall)
    late = sum(r.met_late for r in overall)
    missed = sum(r.missed for r in overall)
    pending = sum(r.open for r in overall)
    decided = on_time + late + missed
    percent = round(100.0 * on_time / decided, 1) if decided else None
    share = audience.derived(percent, decided, "%")
    return (
        f"{audience.count(due)} clocks fell due. {audience.count(on_time)} were met on time"
        f" ({share} of those settled), {audience.count(late)} were met late and"
        f" {audience.count(missed)} were missed; {audience.count(pending)} are not yet due."
    )


def _timeliness_chart(audience: Audience, overall: list[TimelinessRow]) -> Markup | None:
    if not overall:
        return None
    if audience.full:
        rows = overall
        svg = charts.stacked_bars(
            "chart-timeliness",
            "Clocks by outcome",
            "For each clock: how many were met on time, met late, missed, or are not yet due."
            " The table below gives the same numbers.",
            [fmt.clock_label(r.clock) for r in rows],
            [
                ("Met on time", [r.met_on_time for r in rows], charts.GOVUK_GREEN),
                ("Met late", [r.met_late for r in rows], charts.GOVUK_ORANGE),
                ("Missed", [r.missed for r in rows], charts.GOVUK_RED),
                ("Not yet due", [r.open for r in rows], charts.GOVUK_MID_GREY),
            ],
            value_label="Clocks",
        )
        return Markup(svg)
    shown = [r for r in overall if r.decided >= fmt.SMALL and r.percent_on_time is not None]
    if not shown:
        return None
    return Markup(
        charts.bars(
            "chart-timeliness",
            "Clocks met on time, per cent",
            "For each clock with 5 or more settled: the percentage met on time."
            " The table below gives the same figures.",
            [fmt.clock_label(r.clock) for r in shown],
            [r.percent_on_time or 0.0 for r in shown],
            value_label="Per cent met on time",
            colour=charts.GOVUK_GREEN,
        )
    )


def _trend(audience: Audience, selection: Selection, months: list[MonthRow]) -> dict[str, Any]:
    """All clocks together, month by month (a sum of the monthly aggregate rows)."""
    totals: dict[tuple[int, int], list[int]] = {
        ym: [0, 0, 0, 0, 0] for ym in selection.period.months()
    }
    for m in months:
        t = totals[(m.year, m.month)]
        for i, v in enumerate((m.due, m.met_on_time, m.met_late, m.missed, m.open)):
            t[i] += v
    labels, values, table = [], [], []
    for (year, month), (due, on_time, late, missed, pending) in totals.items():
        label = dt.date(year, month, 1).strftime("%B %Y")
        decided = on_time + late + missed
        percent = round(100.0 * on_time / decided, 1) if decided else None
        labels.append(dt.date(year, month, 1).strftime("%b %Y"))
        values.append(percent if audience.chartable(decided) and decided else None)
        table.append(
            {
                "month": label,
                "cells": [audience.count(v) for v in (due, on_time, late, missed, pending)],
                "percent": audience.derived(percent, decided, "%"),
            }
        )
    drawn = [v for v in values if v is not None]
    chart = None
    if drawn:
        chart = Markup(
            charts.line(
                "chart-trend",
                "Clocks met on time, month by month",
                "The percentage of settled clocks met on time in each month of the period;"
                " a gap means no figure for that month. The table below gives the numbers.",
                labels,
                values,
                value_label="Per cent met on time",
                ymax=105,
            )
        )
    best = max(drawn) if drawn else None
    worst = min(drawn) if drawn else None
    summary = (
        f"Month by month, between {worst:g}% and {best:g}% of settled clocks were met on time."
        if drawn
        else "No month has enough settled clocks to show a percentage."
    )
    return {"chart": chart, "table": table, "summary": summary}


# --- Flow -----------------------------------------------------------------------------------


def flow_context(
    session: Session, audience: Audience, selection: Selection, now: dt.datetime
) -> dict[str, Any]:
    report = reports.flow(session, selection.period, as_of=now, provider_id=selection.provider_id)
    names = dict(provider_options(session))
    sections = []
    for b in BREAKDOWNS:
        if b.free_text and not audience.full:
            continue
        counts = report.counts.get(b.key, {})
        sections.append(
            {
                "key": b.key,
                "title": b.title,
                "category": b.category,
                "rows": [
                    (
                        fmt.category_label(k, names) if not b.free_text else k,
                        cell(audience, selection, n, b.key, k),
                    )
                    for k, n in counts.items()
                ],
                "total": audience.count(sum(counts.values())),
            }
        )
    stats = [
        {
            "title": s.title,
            "count": audience.count(s.count),
            "median": audience.derived(s.median, s.count, s.unit),
            "p90": audience.derived(s.p90, s.count, s.unit) if s.p90 is not None else "",
            "worst": audience.derived(s.worst, s.count, s.unit),
        }
        for s in report.stats
    ]
    choice = report.counts.get("mediation_choice", {})
    order = ["choose_mediation", "decline", "mark_exempt"]
    values = [choice.get(k, 0) for k in order]
    chart = None
    if sum(values) and audience.chartable(*values):
        chart = Markup(
            charts.bars(
                "chart-choice",
                "What families chose after advice",
                "How many families chose mediation, declined it, or did not need it"
                " (placement only). The table below gives the same numbers.",
                [fmt.category_label(k) for k in order],
                values,
                value_label="Families",
            )
        )
    summary = (
        f"{audience.count(values[0])} chose mediation, {audience.count(values[1])} declined it"
        f" and {audience.count(values[2])} did not need it."
    )
    return {
        "sections": sections,
        "stats": stats,
        "chart": chart,
        "choice_rows": [
            (fmt.category_label(k), audience.count(v)) for k, v in zip(order, values, strict=True)
        ],
        "summary": summary,
    }


# --- SEN2 -----------------------------------------------------------------------------------


def sen2_context(
    session: Session, audience: Audience, selection: Selection, now: dt.datetime
) -> dict[str, Any]:
    got = reports.sen2(session, selection.period, provider_id=selection.provider_id)
    figures = [
        ("mediation_cases_held", "Mediation cases held", got.mediation_cases_held, None),
        (
            "followed_by_appeal",
            "Followed by an appeal to the Tribunal",
            got.followed_by_appeal,
            "followed_by_appeal",
        ),
        ("no_appeal", "Not followed by an appeal", got.no_appeal, "no_appeal"),
        ("outcome_unknown", "Outcome not yet known", got.outcome_unknown, "outcome_unknown"),
    ]
    rows = [
        (
            label,
            cell(audience, selection, n, "sen2", category) if category else Cell(audience.count(n)),
        )
        for _key, label, n, category in figures
    ]
    percent = audience.derived(got.percent_followed_by_appeal, got.mediation_cases_held, "%")
    values = [n for _key, _label, n, _category in figures]
    chart = None
    if got.mediation_cases_held and audience.chartable(*values):
        chart = Markup(
            charts.bars(
                "chart-sen2",
                "Mediation cases held and what followed",
                "Mediation cases held in the period, and how many were followed by an appeal,"
                " not followed by one, or whose outcome is not yet known."
                " The table below gives the same numbers.",
                [label for _k, label, _n, _c in figures],
                values,
                value_label="Cases",
            )
        )
    chase = []
    if audience.full and got.outcome_unknown:
        chase = reports.cases_behind(
            session,
            "sen2",
            "outcome_unknown",
            selection.period,
            as_of=now,
            provider_id=selection.provider_id,
        )
    summary = (
        f"{audience.count(got.mediation_cases_held)} mediation cases were held;"
        f" {audience.count(got.followed_by_appeal)} were followed by an appeal to the Tribunal"
        f" ({percent} of those held), and for {audience.count(got.outcome_unknown)} the outcome"
        " is not yet known."
    )
    return {
        "sen2": got,
        "rows": rows,
        "percent": percent,
        "chart": chart,
        "chase": chase,
        "summary": summary,
        "year": got.period.calendar_year,
    }


# --- Routes ---------------------------------------------------------------------------------


def _page(
    request: Request,
    session: Session,
    signed_in: tuple[User, Any],
    now: dt.datetime,
    template: str,
    title: str,
    start: str | None,
    end: str | None,
    provider: str | None,
    year: int | None = None,
) -> Response:
    _user, audience = require_reports(signed_in)
    selection = select_period(session, start, end, provider, _today(now), year=year)
    context: dict[str, Any] = {
        "page_title": title,
        "audience": audience,
        "selection": selection,
        "providers": provider_options(session),
        "errors": selection.errors,
        "path": request.url.path,
        "download_names": DOWNLOADS,
        "download_labels": DOWNLOAD_LABELS,
    }
    if template == "reports/timeliness.html":
        context.update(timeliness_context(session, audience, selection, now))
    elif template == "reports/flow.html":
        context.update(flow_context(session, audience, selection, now))
    elif template == "reports/sen2.html":
        context.update(sen2_context(session, audience, selection, now))
    return render(request, template, context, status_code=400 if selection.errors else 200)


DOWNLOAD_LABELS = {
    "figures": "Every figure (CSV)",
    "timeliness": "Timeliness by clock and provider (CSV)",
    "months": "Timeliness month by month (CSV)",
    "flow": "Flow and outcomes (CSV)",
    "sen2": "SEN2 mediation figures (CSV)",
    "cases": "One row per case, pseudonymised, for your own analysis (CSV)",
}


@router.get("/reports")
def reports_index(
    request: Request,
    session: SessionDep,
    signed_in: PageUserDep,
    now: NowDep,
    start: FromQ = None,
    end: ToQ = None,
    provider: ProviderQ = None,
) -> Response:
    return _page(
        request, session, signed_in, now, "reports/index.html", "Reports", start, end, provider
    )


@router.get("/reports/timeliness")
def reports_timeliness(
    request: Request,
    session: SessionDep,
    signed_in: PageUserDep,
    now: NowDep,
    start: FromQ = None,
    end: ToQ = None,
    provider: ProviderQ = None,
) -> Response:
    return _page(
        request,
        session,
        signed_in,
        now,
        "reports/timeliness.html",
        "Timeliness",
        start,
        end,
        provider,
    )


@router.get("/reports/flow")
def reports_flow(
    request: Request,
    session: SessionDep,
    signed_in: PageUserDep,
    now: NowDep,
    start: FromQ = None,
    end: ToQ = None,
    provider: ProviderQ = None,
) -> Response:
    return _page(
        request,
        session,
        signed_in,
        now,
        "reports/flow.html",
        "Requests, meetings and outcomes",
        start,
        end,
        provider,
    )


@router.get("/reports/sen2")
def reports_sen2(
    request: Request,
    session: SessionDep,
    signed_in: PageUserDep,
    now: NowDep,
    start: FromQ = None,
    end: ToQ = None,
    provider: ProviderQ = None,
    year: Annotated[str | None, Query()] = None,
) -> Response:
    chosen = None
    if year:
        chosen = int(year) if year.strip().isdigit() else -1
    elif not (start or end):
        chosen = _today(now).year - 1  # the last complete calendar year, as SEN2 reports
    return _page(
        request,
        session,
        signed_in,
        now,
        "reports/sen2.html",
        "SEN2 mediation figures",
        start,
        end,
        provider,
        chosen,
    )


@router.get("/reports/cases")
def reports_cases(
    request: Request,
    session: SessionDep,
    signed_in: PageUserDep,
    now: NowDep,
    figure: Annotated[str, Query()],
    category: Annotated[str, Query()],
    start: FromQ = None,
    end: ToQ = None,
    provider: ProviderQ = None,
) -> Response:
    """The cases behind one number: managers only, never commissioners."""
    _user, audience = require_reports(signed_in)
    if not audience.full:
        raise PageError(
            403,
            "You cannot use this page",
            "Commissioners see the figures only, never the cases behind them.",
        )
    selection = select_period(session, start, end, provider, _today(now))
    if selection.errors:
        raise PageError(400, "Check the period", " ".join(selection.errors.values()))
    try:
        lines = reports.cases_behind(
            session,
            figure,
            category,
            selection.period,
            as_of=now,
            provider_id=selection.provider_id,
        )
    except KeyError:
        raise PageError(404, "Page not found", "There is no such figure in the reports.") from None
    return render(
        request,
        "reports/cases.html",
        {
            "page_title": "Cases behind a figure",
            "lines": lines,
            "selection": selection,
            "figure_title": _figure_title(figure, category),
        },
    )


def _figure_title(figure: str, category: str) -> str:
    if figure == "timeliness":
        clock, provider, outcome = [*category.split("|"), "", "", ""][:3]
        who = "all providers" if provider == reports.ALL_PROVIDERS else "one provider"
        return (
            f"{fmt.clock_label(clock)}: {fmt.OUTCOME_LABELS.get(outcome, outcome).lower()} ({who})"
        )
    if figure == "sen2":
        return f"SEN2: {fmt.category_label(category).lower()}"
    breakdown = next((b for b in BREAKDOWNS if b.key == figure), None)
    title = breakdown.title if breakdown else figure
    free = breakdown is not None and breakdown.free_text
    return f"{title}: {category if free else fmt.category_label(category)}"


@router.get("/reports/download/{name}.csv")
def reports_download(
    request: Request,
    session: SessionDep,
    signed_in: PageUserDep,
    now: NowDep,
    settings: SettingsDep,
    name: str,
    start: FromQ = None,
    end: ToQ = None,
    provider: ProviderQ = None,
) -> Response:
    _user, audience = require_reports(signed_in)
    selection = select_period(session, start, end, provider, _today(now))
    if selection.errors:
        raise PageError(400, "Check the period", " ".join(selection.errors.values()))
    body = csv_export(session, audience, selection, now, name, secret=settings.secret_key)
    if body is None:
        raise PageError(404, "Page not found", "There is no such download.")
    filename = f"casework-{name}-{selection.period.start}-to-{selection.period.end}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def csv_export(
    session: Session,
    audience: Audience,
    selection: Selection,
    now: dt.datetime,
    name: str,
    *,
    secret: str,
) -> str | None:
    """One of the CSV downloads, suppressed for commissioners; None for an unknown name."""
    period, pid, suppress = selection.period, selection.provider_id, audience.suppress
    if name == "timeliness":
        rows = reports.timeliness(session, period, as_of=now, provider_id=pid)
        return fmt.timeliness_csv(rows, suppress=suppress)
    if name == "months":
        months = reports.timeliness_by_month(session, period, as_of=now, provider_id=pid)
        return fmt.months_csv(months, suppress=suppress)
    if name == "flow":
        report = reports.flow(session, period, as_of=now, provider_id=pid)
        return fmt.flow_csv(report, suppress=suppress)
    if name == "sen2":
        return fmt.sen2_csv(reports.sen2(session, period, provider_id=pid), suppress=suppress)
    if name == "figures":
        return fmt.all_figures_csv(
            reports.timeliness(session, period, as_of=now, provider_id=pid),
            reports.flow(session, period, as_of=now, provider_id=pid),
            reports.sen2(session, period, provider_id=pid),
            suppress=suppress,
        )
    if name == "cases":
        cases = session.execute(case_export_query(period, as_of=now, provider_id=pid)).all()
        return fmt.case_export_csv(cases, secret=secret)
    return None
