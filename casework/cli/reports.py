"""``casework report timeliness|flow|sen2``: the report figures from a terminal.

The same queries as the pages and the API. ``--json`` prints the figures as data
(``timeliness``: a list of rows; ``sen2``: one object), ``--csv`` the CSV the
pages offer for download, and with neither a table to read. Full detail: this is
an operator's tool on the service's own database, like ``casework case show``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import Session

from casework import deadlines as dl
from casework import reports
from casework.cases import CaseworkError, find_provider
from casework.cli.common import exit_code, fail, open_session, parse_at
from casework.models import Provider
from casework.reports import formatting as fmt

report_app = typer.Typer(
    help="Report figures: timeliness of every clock, flow and outcomes, SEN2 mediation figures.",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day of the period (YYYY-MM-DD).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day of the period (YYYY-MM-DD).")]
ProviderOpt = Annotated[
    str | None, typer.Option("--provider", help="Only this provider (code or name).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV, as the pages offer for download.")]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at", help="Count as at this moment, e.g. 2026-11-30T12:00 (London time). Default now."
    ),
]


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD")


def _period(start: str | None, end: str | None, year: int | None = None) -> reports.Period:
    if year is not None:
        if start or end:
            fail("give either --year or --from/--to, not both")
        try:
            return reports.Period.year(year)
        except ValueError:  # a year the calendar cannot hold (e.g. 99999)
            fail(f"--year {year} is not a year; give four figures, e.g. 2026")
    if not start or not end:
        fail("give the period with --from YYYY-MM-DD --to YYYY-MM-DD")
    try:
        return reports.Period(_date(start, "--from"), _date(end, "--to"))
    except ValueError as exc:
        fail(str(exc))


def _words(period: reports.Period) -> str:
    """'1 January 2026 to 31 December 2026', as the report pages head their figures."""
    return f"{dl.fmt(period.start)} to {dl.fmt(period.end)}"


def _provider_names(session: Session) -> dict[str, str]:
    """Provider codes to names: the flow counts allocations by code, people read names."""
    rows = session.execute(select(Provider.code, Provider.name))  # type: ignore[call-overload]
    return {code: name for code, name in rows}


def _provider_id(session: Session, provider: str | None) -> int | None:
    if provider is None:
        return None
    try:
        return find_provider(session, provider).id
    except CaseworkError as exc:
        fail(str(exc), exit_code(exc))


def _emit(as_json: bool, as_csv: bool, data: Any, csv_text: str, text: str) -> None:
    if as_json and as_csv:
        fail("choose one of --json and --csv")
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    elif as_csv:
        typer.echo(csv_text, nl=False)
    else:
        typer.echo(text)


@report_app.command("timeliness")
def timeliness_cmd(
    start: FromOpt = None,
    end: ToOpt = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    at: AtOpt = None,
) -> None:
    """Every clock that fell due in the period: met on time, met late, missed, still open."""
    period = _period(start, end)
    with open_session() as (session, _settings):
        rows = reports.timeliness(
            session, period, as_of=parse_at(at), provider_id=_provider_id(session, provider)
        )
    lines = [f"Clocks due {_words(period)}"]
    for r in rows:
        late = (
            f"; late by median {r.late_median_working_days:g}, worst {r.late_worst_working_days}"
            " working days"
            if r.late_median_working_days is not None
            else ""
        )
        lines.append(
            f"{fmt.clock_label(r.clock)} - {r.provider_name}: {r.due} due, {r.met_on_time} on"
            f" time, {r.met_late} late, {r.missed} missed ({r.missed_still_open} still not"
            f" done), {r.open} not yet due, {r.cancelled} cancelled{late}"
        )
    if not rows:
        lines.append("No clocks fell due in this period.")
    _emit(
        as_json,
        as_csv,
        [r.as_dict() for r in rows],
        fmt.timeliness_csv(rows, suppress=False),
        "\n".join(lines),
    )


@report_app.command("flow")
def flow_cmd(
    start: FromOpt = None,
    end: ToOpt = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    at: AtOpt = None,
) -> None:
    """Requests, advice, choices, meetings, certificates, allocations, outcomes, withdrawals."""
    period = _period(start, end)
    with open_session() as (session, _settings):
        report = reports.flow(
            session, period, as_of=parse_at(at), provider_id=_provider_id(session, provider)
        )
        names = _provider_names(session)
    lines = [f"Flow {_words(period)}"]
    for b in reports.queries.BREAKDOWNS:
        counts = report.counts.get(b.key, {})
        parts = (
            ", ".join(
                f"{k if b.free_text else fmt.category_label(k, names)} {n}"
                for k, n in counts.items()
            )
            or "none"
        )
        lines.append(f"{b.title}: {parts}")
    for s in report.stats:
        lines.append(
            f"{s.title}: {s.count} cases, median {s.median if s.median is not None else '-'}"
            f" {s.unit}"
            + (f", 90th percentile {s.p90:g}" if s.p90 is not None else "")
            + (f", longest {s.worst:g}" if s.worst is not None else "")
        )
    _emit(
        as_json,
        as_csv,
        report.as_dict(),
        fmt.flow_csv(report, suppress=False),
        "\n".join(lines),
    )


@report_app.command("sen2")
def sen2_cmd(
    start: FromOpt = None,
    end: ToOpt = None,
    year: Annotated[
        int | None, typer.Option("--year", help="A calendar year, as the SEN2 return counts.")
    ] = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """The SEN2 mediation figures: cases held, and how many were followed by an appeal."""
    period = _period(start, end, year)
    with open_session() as (session, _settings):
        report = reports.sen2(session, period, provider_id=_provider_id(session, provider))
    percent = report.percent_followed_by_appeal
    text = (
        f"SEN2 mediation figures {_words(period)}\n"
        f"Mediation cases held: {report.mediation_cases_held}\n"
        f"Followed by an appeal to the Tribunal: {report.followed_by_appeal}"
        + (f" ({percent:g}%)" if percent is not None else "")
        + f"\nNo appeal: {report.no_appeal}\n"
        f"Outcome not yet known (to chase): {report.outcome_unknown}"
    )
    _emit(as_json, as_csv, report.as_dict(), fmt.sen2_csv(report, suppress=False), text)
