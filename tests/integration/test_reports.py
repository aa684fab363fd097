"""Every report figure against the hand-listed caseload, on SQLite and PostgreSQL.

The expected values are worked out by hand in tests/caseload.py (the working-day
counts around Easter, the May holidays and Christmas are written beside each case).
The same figures are read through the CLI here and through the API and the pages in
tests/web/test_reports.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from casework import reports
from casework.cli import app
from casework.config import Settings
from casework.reports import formatting as fmt
from casework.reports.queries import case_export_query, figure_case_ids
from tests import caseload
from tests.caseload import AS_OF
from tests.conftest import at, forget_cached_settings_and_engine
from tests.factories import advance, create_case

Y2025 = reports.Period.year(2025)
Y2026 = reports.Period.year(2026)

# (clock, provider): due, met on time, met late, missed, of which still not done,
# not yet due, cancelled, median and worst lateness in working days.
Row = tuple[int, int, int, int, int, int, int, float | None, int | None]
TIMELINESS_2025: dict[tuple[str, str], Row] = {
    ("certificate_after_decline", "solution-talk"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_decline", "together-trust"): (1, 0, 1, 0, 0, 0, 0, 3.0, 3),
    ("certificate_after_decline", "all"): (2, 1, 1, 0, 0, 0, 0, 3.0, 3),
    ("mediation_meeting", "collis"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("mediation_meeting", "kids"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("mediation_meeting", "link"): (1, 0, 0, 1, 0, 0, 0, None, None),
    ("mediation_meeting", "all"): (3, 2, 0, 1, 0, 0, 0, None, None),
    ("certificate_not_arranged", "link"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_not_arranged", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_meeting", "collis"): (1, 0, 1, 0, 0, 0, 0, 2.0, 2),
    ("certificate_after_meeting", "kids"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_meeting", "all"): (2, 1, 1, 0, 0, 0, 0, 2.0, 2),
    ("dr_advice", "solution-talk"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("dr_advice", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("dr_allocation", "solution-talk"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("dr_allocation", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("allocation_acceptance", "solution-talk"): (1, 1, 0, 0, 0, 0, 1, None, None),
    ("allocation_acceptance", "all"): (1, 1, 0, 0, 0, 0, 1, None, None),
    ("dr_meeting", "solution-talk"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("dr_meeting", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
}
TIMELINESS_2026: dict[tuple[str, str], Row] = {
    ("certificate_after_decline", "collis"): (1, 0, 1, 0, 0, 0, 0, 3.0, 3),
    ("certificate_after_decline", "together-trust"): (0, 0, 0, 0, 0, 0, 1, None, None),
    ("certificate_after_decline", "none"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_decline", "all"): (2, 1, 1, 0, 0, 0, 1, 3.0, 3),
    ("icb_notified", "link"): (1, 0, 0, 1, 1, 0, 0, None, None),
    ("icb_notified", "all"): (1, 0, 0, 1, 1, 0, 0, None, None),
    ("mediation_meeting", "solution-talk"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("mediation_meeting", "collis"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("mediation_meeting", "kids"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("mediation_meeting", "link"): (1, 0, 0, 0, 0, 1, 0, None, None),
    ("mediation_meeting", "all"): (4, 3, 0, 0, 0, 1, 0, None, None),
    ("certificate_after_meeting", "solution-talk"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_meeting", "collis"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_meeting", "kids"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("certificate_after_meeting", "all"): (3, 3, 0, 0, 0, 0, 0, None, None),
    ("agreement_implemented", "kids"): (1, 0, 0, 1, 1, 0, 0, None, None),
    ("agreement_implemented", "all"): (1, 0, 0, 1, 1, 0, 0, None, None),
    ("dr_advice", "together-trust"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("dr_advice", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("allocation_acceptance", "together-trust"): (1, 0, 1, 0, 0, 0, 0, 2.0, 2),
    ("allocation_acceptance", "all"): (1, 0, 1, 0, 0, 0, 0, 2.0, 2),
    ("dr_meeting", "together-trust"): (1, 1, 0, 0, 0, 0, 0, None, None),
    ("dr_meeting", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
}
# (year, month, clock): due, met on time, met late, missed, not yet due
MONTHS_2026 = {
    (2026, 2, "mediation_meeting"): (1, 1, 0, 0, 0),
    (2026, 2, "certificate_after_meeting"): (1, 1, 0, 0, 0),
    (2026, 2, "dr_advice"): (1, 1, 0, 0, 0),
    (2026, 2, "allocation_acceptance"): (1, 0, 1, 0, 0),
    (2026, 3, "dr_meeting"): (1, 1, 0, 0, 0),
    (2026, 4, "certificate_after_decline"): (1, 0, 1, 0, 0),
    (2026, 5, "mediation_meeting"): (1, 1, 0, 0, 0),
    (2026, 5, "certificate_after_meeting"): (1, 1, 0, 0, 0),
    (2026, 9, "mediation_meeting"): (1, 1, 0, 0, 0),
    (2026, 9, "certificate_after_meeting"): (1, 1, 0, 0, 0),
    (2026, 9, "agreement_implemented"): (1, 0, 0, 1, 0),
    (2026, 10, "certificate_after_decline"): (1, 1, 0, 0, 0),
    (2026, 11, "icb_notified"): (1, 0, 0, 1, 0),
    (2026, 12, "mediation_meeting"): (1, 0, 0, 0, 1),
}
FLOW_2025: dict[str, dict[str, int]] = {
    "requests_by_channel": {"email": 2, "helpline": 4},
    "requests_by_kind": {"disagreement": 1, "mediation": 5},
    "requests_by_decision_type": {
        "cease_plan": 1,
        "plan_contents": 1,
        "refuse_amend": 1,
        "refuse_assessment": 1,
        "refuse_plan": 1,
    },
    "advice_given": {"disagreement": 1, "mediation": 5},
    "mediation_choice": {"choose_mediation": 3, "decline": 2},
    "meetings_held": {"disagreement": 1, "mediation": 2},
    "meeting_outcomes": {"agreement": 2, "partial": 1},
    "certificates_by_type": {"declined": 2, "mediation_held": 1, "not_arranged": 1},
    "allocations_by_provider": {"collis": 1, "kids": 1, "solution-talk": 1},
    "allocation_declines_by_provider": {"kids": 1},
    "disagreement_outcomes": {"resolved": 1},
    "withdrawals": {"mediation": 1},
    "withdrawal_reasons": {"family moved away": 1},
    "allocation_decline_reasons": {"no capacity this month": 1},
}
FLOW_2026: dict[str, dict[str, int]] = {
    "requests_by_channel": {"email": 3, "helpline": 6},
    "requests_by_kind": {"disagreement": 1, "mediation": 8},
    "requests_by_decision_type": {
        "cease_plan": 1,
        "plan_contents": 2,
        "refuse_amend": 1,
        "refuse_assessment": 3,
        "refuse_plan": 1,
    },
    "advice_given": {"disagreement": 1, "mediation": 7},
    "mediation_choice": {"choose_mediation": 4, "decline": 3, "mark_exempt": 1},
    "meetings_held": {"disagreement": 1, "mediation": 3},
    "meeting_outcomes": {"agreement": 1, "none": 2, "partial": 1},
    "certificates_by_type": {"declined": 2, "mediation_held": 4},
    "allocations_by_provider": {"solution-talk": 1, "together-trust": 1},
    "allocation_declines_by_provider": {},
    "disagreement_outcomes": {"partly_resolved": 1},
    "withdrawals": {"mediation": 1},
    "withdrawal_reasons": {"resolved with the school": 1},
    "allocation_decline_reasons": {},
}
# key: count, median, 90th percentile, worst
STATS_2025 = {
    "request_to_certificate": (4, 23.5, 36.0, 36.0),  # 9, 13, 34, 36 days
    "allocation_acceptance": (2, 1.5, None, 2.0),  # 1 and 2 working days
}
STATS_2026 = {
    "request_to_certificate": (6, 27.0, 39.0, 39.0),  # 4, 13, 22, 32, 36, 39 days
    "allocation_acceptance": (2, 2.0, None, 4.0),  # 0 and 4 working days
}
SEN2 = {
    2025: {"held": 2, "appeal": 1, "no_appeal": 1, "unknown": 0, "percent": 50.0},
    2026: {"held": 3, "appeal": 1, "no_appeal": 1, "unknown": 1, "percent": 33.3},
}


def timeliness_table(rows: list[dict[str, Any]]) -> dict[tuple[str, str], Row]:
    return {
        (r["clock"], r["provider"]): (
            r["due"],
            r["met_on_time"],
            r["met_late"],
            r["missed"],
            r["missed_still_open"],
            r["open"],
            r["cancelled"],
            r["late_median_working_days"],
            r["late_worst_working_days"],
        )
        for r in rows
    }


@pytest.fixture
def loaded(session: Session) -> dict[str, int]:
    return caseload.load(session)


@pytest.mark.parametrize(
    ("period", "expected"), [(Y2025, TIMELINESS_2025), (Y2026, TIMELINESS_2026)]
)
def test_timeliness_every_clock_and_provider(
    session: Session, loaded: dict[str, int], period: reports.Period, expected: dict[Any, Row]
) -> None:
    rows = reports.timeliness(session, period, as_of=AS_OF)
    assert timeliness_table([r.as_dict() for r in rows]) == expected


def test_timeliness_over_both_years_and_for_one_provider(
    session: Session, loaded: dict[str, int]
) -> None:
    both = reports.Period(Y2025.start, Y2026.end)
    table = timeliness_table([r.as_dict() for r in reports.timeliness(session, both, as_of=AS_OF)])
    assert table[("certificate_after_decline", "all")] == (4, 2, 2, 0, 0, 0, 1, 3.0, 3)
    assert table[("mediation_meeting", "all")] == (7, 5, 0, 1, 0, 1, 0, None, None)
    assert table[("certificate_after_meeting", "all")] == (5, 4, 1, 0, 0, 0, 0, 2.0, 2)

    collis = reports.timeliness(
        session, Y2026, as_of=AS_OF, provider_id=_provider(session, "collis")
    )
    assert timeliness_table([r.as_dict() for r in collis]) == {
        k: v for k, v in TIMELINESS_2026.items() if k[1] == "collis"
    } | {
        ("certificate_after_decline", "all"): (1, 0, 1, 0, 0, 0, 0, 3.0, 3),
        ("mediation_meeting", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
        ("certificate_after_meeting", "all"): (1, 1, 0, 0, 0, 0, 0, None, None),
    }


def test_an_open_clock_past_due_counts_as_missed_only_once_its_day_is_over(
    session: Session, loaded: dict[str, int]
) -> None:
    """The ICB clock due Thu 26 Nov 2026 was not yet missed at 23:00 that day."""
    period = reports.Period(caseload.dt.date(2026, 11, 1), caseload.dt.date(2026, 11, 30))
    before = reports.timeliness(session, period, as_of=at("2026-11-26", "23:00"))
    after = reports.timeliness(session, period, as_of=at("2026-11-27", "00:01"))
    assert [(r.provider, r.open, r.missed) for r in before] == [("link", 1, 0), ("all", 1, 0)]
    assert [(r.provider, r.open, r.missed) for r in after] == [("link", 0, 1), ("all", 0, 1)]


def test_trend_by_month(session: Session, loaded: dict[str, int]) -> None:
    rows = reports.timeliness_by_month(session, Y2026, as_of=AS_OF)
    assert {
        (r.year, r.month, r.clock): (r.due, r.met_on_time, r.met_late, r.missed, r.open)
        for r in rows
    } == MONTHS_2026


@pytest.mark.parametrize(
    ("period", "counts", "stats"), [(Y2025, FLOW_2025, STATS_2025), (Y2026, FLOW_2026, STATS_2026)]
)
def test_flow_figures(
    session: Session,
    loaded: dict[str, int],
    period: reports.Period,
    counts: dict[str, dict[str, int]],
    stats: dict[str, tuple[Any, ...]],
) -> None:
    report = reports.flow(session, period, as_of=AS_OF)
    assert report.counts == counts
    assert {s.key: (s.count, s.median, s.p90, s.worst) for s in report.stats} == stats


@pytest.mark.parametrize("year", [2025, 2026])
def test_sen2(session: Session, loaded: dict[str, int], year: int) -> None:
    got = reports.sen2(session, reports.Period.year(year))
    want = SEN2[year]
    assert (
        got.mediation_cases_held,
        got.followed_by_appeal,
        got.no_appeal,
        got.outcome_unknown,
        got.percent_followed_by_appeal,
    ) == (want["held"], want["appeal"], want["no_appeal"], want["unknown"], want["percent"])


def test_the_cases_behind_each_figure(session: Session, loaded: dict[str, int]) -> None:
    def refs(figure: str, category: str, period: reports.Period) -> list[str]:
        return [
            line.reference
            for line in reports.cases_behind(session, figure, category, period, as_of=AS_OF)
        ]

    assert refs("sen2", "outcome_unknown", Y2026) == ["MED-2026-0003"]
    assert refs("sen2", "followed_by_appeal", Y2025) == ["MED-2025-0002"]
    assert refs("timeliness", "certificate_after_decline|all|met_late", Y2025) == ["MED-2025-0005"]
    assert refs("timeliness", "mediation_meeting|all|due", Y2026) == [
        "MED-2026-0001",
        "MED-2026-0003",
        "MED-2026-0004",
        "MED-2026-0008",
    ]
    assert refs("timeliness", "certificate_after_decline|none|met_on_time", Y2026) == [
        "MED-2026-0006"
    ]
    assert refs("timeliness", "icb_notified|link|missed_still_open", Y2026) == ["MED-2026-0004"]
    assert refs("mediation_choice", "mark_exempt", Y2026) == ["MED-2026-0007"]
    assert refs("requests_by_channel", "email", Y2025) == [
        "MED-2025-0002",
        "MED-2025-0004",
    ]
    # Every count of the flow report names exactly as many cases as it counts.
    report = reports.flow(session, Y2026, as_of=AS_OF)
    for key, counts in report.counts.items():
        for category, n in counts.items():
            ids = session.execute(figure_case_ids(key, category, Y2026, as_of=AS_OF)).all()
            assert len(ids) == n, (key, category)


def test_pseudonymised_case_export(
    session: Session, settings: Settings, loaded: dict[str, int]
) -> None:
    rows = session.execute(case_export_query(Y2026, as_of=AS_OF, provider_id=None)).all()
    text = fmt.case_export_csv(rows, secret=settings.secret_key)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 9  # the cases opened in 2026
    by_requested = {r["requested_on"]: r for r in parsed}
    late_decline = by_requested["2026-04-01"]
    assert late_decline["kind"] == "mediation"
    assert late_decline["provider"] == "collis"
    assert late_decline["certificate_on"] == "2026-04-14"
    assert late_decline["clock_certificate_after_decline"] == "met_late"
    # Opened at 00:30 on 24 August, London time (23:30 UTC the day before).
    assert by_requested["2026-08-24"]["clock_agreement_implemented"] == "missed"
    keys = {r["case_key"] for r in parsed}
    assert len(keys) == 9 and all(len(k) == 16 for k in keys)
    for secret in caseload.PERSONAL:
        assert not re.search(rf"(?<!\w){re.escape(secret)}(?!\w)", text, re.I), secret


def test_the_late_marker_is_the_one_the_use_cases_write(
    session: Session, settings: Settings
) -> None:
    """A certificate issued late through the real use cases is counted as met late."""
    case = create_case(
        session, settings, now=at("2026-04-01"), decision_date=caseload.dt.date(2026, 3, 20)
    )
    advance(session, settings, case, "advise", now=at("2026-04-01", "11:00"))
    advance(session, settings, case, "decline", now=at("2026-04-02"), declined_on="2026-04-02")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-04-14"),
        certificate_on="2026-04-14",
    )
    april = reports.Period(caseload.dt.date(2026, 4, 1), caseload.dt.date(2026, 4, 30))
    rows = {
        (r.clock, r.provider): r for r in reports.timeliness(session, april, as_of=at("2026-04-30"))
    }
    row = rows[("certificate_after_decline", "none")]
    assert (row.due, row.met_late, row.late_median_working_days) == (1, 1, 3.0)


# --- The CLI -------------------------------------------------------------------------------


@pytest.fixture
def report_cli(
    database_url: str, loaded: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> str:
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
        return result.stdout if expect == 0 else result.stderr

    yield run
    forget_cached_settings_and_engine()


AT = "2026-11-30T12:00"


def test_cli_timeliness_json_and_csv(report_cli: Any) -> None:
    rows = json.loads(
        report_cli("timeliness", "--from", "2025-01-01", "--to", "2025-12-31", "--json", "--at", AT)
    )
    assert {"clock", "provider", "due", "met_on_time", "met_late", "missed", "open"} <= set(rows[0])
    assert timeliness_table(rows) == TIMELINESS_2025
    text = report_cli(
        "timeliness", "--from", "2026-01-01", "--to", "2026-12-31", "--csv", "--at", AT
    )
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert {
        (r["clock"], r["provider"]): (int(r["due"]), int(r["met_on_time"]), int(r["met_late"]))
        for r in parsed
    } == {k: v[:3] for k, v in TIMELINESS_2026.items()}
    one = json.loads(
        report_cli(
            "timeliness",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--provider",
            "Link Mediation Ltd",
            "--json",
            "--at",
            AT,
        )
    )
    assert timeliness_table(one) == {
        ("icb_notified", "link"): TIMELINESS_2026[("icb_notified", "link")],
        ("icb_notified", "all"): TIMELINESS_2026[("icb_notified", "link")],
        ("mediation_meeting", "link"): TIMELINESS_2026[("mediation_meeting", "link")],
        ("mediation_meeting", "all"): TIMELINESS_2026[("mediation_meeting", "link")],
    }
    human = report_cli("timeliness", "--from", "2025-01-01", "--to", "2025-12-31", "--at", AT)
    assert (
        "Certificate after the meeting (3 working days) - Collis Mediation: 1 due, 0 on time,"
        " 1 late" in human
    )


def test_cli_flow_and_sen2(report_cli: Any) -> None:
    data = json.loads(
        report_cli("flow", "--from", "2026-01-01", "--to", "2026-12-31", "--json", "--at", AT)
    )
    assert data["figures"] == FLOW_2026
    assert {
        s["key"]: (s["count"], s["median"], s["p90"], s["worst"]) for s in data["stats"]
    } == STATS_2026
    for year, want in SEN2.items():
        got = json.loads(report_cli("sen2", "--year", str(year), "--json"))
        assert got["year"] == year
        assert (
            got["mediation_cases_held"],
            got["followed_by_appeal"],
            got["outcome_unknown"],
            got["percent_followed_by_appeal"],
        ) == (want["held"], want["appeal"], want["unknown"], want["percent"])
    ranged = json.loads(report_cli("sen2", "--from", "2025-01-01", "--to", "2026-12-31", "--json"))
    assert ranged["year"] is None
    assert (ranged["mediation_cases_held"], ranged["followed_by_appeal"]) == (5, 2)
    text = report_cli("sen2", "--year", "2026")
    assert "Mediation cases held: 3" in text and "(33.3%)" in text


def test_cli_refusals(report_cli: Any) -> None:
    assert "--from" in report_cli("timeliness", expect=2)
    assert "not a date" in report_cli(
        "flow", "--from", "2026-13-01", "--to", "2026-12-31", expect=2
    )
    assert "ends before it starts" in report_cli(
        "sen2", "--from", "2026-02-01", "--to", "2026-01-01", expect=2
    )
    assert "no provider" in report_cli(
        "timeliness", "--from", "2026-01-01", "--to", "2026-12-31", "--provider", "nobody", expect=3
    )


def _provider(session: Session, code: str) -> int:
    from casework.cases import find_provider

    pid = find_provider(session, code).id
    assert pid is not None
    return pid


def test_cli_adds_a_commissioner(report_cli: Any) -> None:
    """`casework user add --role commissioner`: the role the migration allows."""
    runner = CliRunner()
    added = runner.invoke(
        app, ["user", "add", "cara@icb.example.org", "--role", "commissioner", "--one-time-link"]
    )
    assert added.exit_code == 0, added.stdout
    assert "created cara@icb.example.org: Commissioner" in added.stdout
    listed = runner.invoke(app, ["user", "list"])
    assert "cara@icb.example.org" in listed.stdout and "Commissioner" in listed.stdout
