"""Words and files for the report figures: labels, small-number suppression, CSV.

Pure functions over the query results. Commissioners see aggregates only, and a
count from 1 to 4 is shown as "fewer than 5" (as official statistics do), with the
percentages and medians worked out from such a count withheld too.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterable, Mapping
from typing import Any

from casework.reports.queries import (
    ALL_PROVIDERS,
    BREAKDOWNS,
    CASE_EXPORT_CLOCKS,
    FlowReport,
    MonthRow,
    Sen2,
    TimelinessRow,
)

SMALL = 5
FEWER_THAN_5 = "fewer than 5"
WITHHELD = "withheld (fewer than 5)"

CLOCK_LABELS: dict[str, str] = {
    "contact_adviser": "Family contacts the mediation adviser (2 months)",
    "certificate_after_decline": "Certificate after the family declined mediation (3 working days)",
    "icb_notified": "LA tells the ICB when health care is in issue (3 working days)",
    "mediation_meeting": "Mediation meeting held (30 days)",
    "certificate_not_arranged": "Certificate when the LA could not arrange mediation",
    "certificate_after_meeting": "Certificate after the meeting (3 working days)",
    "agreement_implemented": "LA carries out what was agreed (2 weeks)",
    "icb_tells_la_of_agreement": "ICB tells the LA of the agreement (1 week)",
    "appeal": "Appeal reaches the Tribunal",
    "dr_advice": "Advice given (service target)",
    "dr_allocation": "Provider allocated (service target)",
    "dr_meeting": "Meeting held (service target)",
    "allocation_acceptance": "Provider accepts the allocation (service target)",
    "data_request": "Answer a request to correct or erase personal data (1 month)",
}
SERVICE_TARGETS = frozenset({"dr_advice", "dr_allocation", "dr_meeting", "allocation_acceptance"})

CATEGORY_LABELS: dict[str, str] = {
    "helpline": "Helpline",
    "email": "Email",
    "mediation": "Mediation",
    "disagreement": "Disagreement resolution",
    "refuse_assessment": "Not to carry out an EHC needs assessment",
    "refuse_plan": "Not to draw up an EHC plan",
    "plan_contents": "The contents of a final or amended EHC plan",
    "refuse_amend": "Not to amend an EHC plan",
    "cease_plan": "To stop maintaining an EHC plan",
    "not_recorded": "Not recorded",
    "choose_mediation": "Chose mediation",
    "decline": "Declined mediation",
    "mark_exempt": "Not needed (placement only)",
    "agreement": "Agreement reached",
    "partial": "Partial agreement",
    "none": "No agreement",
    "mediation_held": "Mediation took place",
    "not_arranged": "LA could not arrange mediation within 30 days",
    "declined": "Family declined mediation",
    "resolved": "Resolved",
    "partly_resolved": "Partly resolved",
    "not_resolved": "Not resolved",
    "followed_by_appeal": "Followed by an appeal to the Tribunal",
    "no_appeal": "No appeal",
    "outcome_unknown": "Outcome not yet known",
}
OUTCOME_LABELS: dict[str, str] = {
    "due": "Fell due",
    "met_on_time": "Met on time",
    "met_late": "Met late",
    "missed": "Missed",
    "missed_still_open": "Missed and still not done",
    "open": "Not yet due",
    "cancelled": "Cancelled",
}


def clock_label(kind: str) -> str:
    return CLOCK_LABELS.get(kind, kind.replace("_", " ").capitalize())


def category_label(value: str, providers: Mapping[str, str] | None = None) -> str:
    if providers and value in providers:
        return providers[value]
    return CATEGORY_LABELS.get(value, value or "Not recorded")


def count_text(n: int, *, suppress: bool) -> str:
    """A count as a person reads it; 1 to 4 become "fewer than 5" when suppressing."""
    if suppress and 0 < n < SMALL:
        return FEWER_THAN_5
    return f"{n:,}"


def derived_text(value: float | None, base: int, unit: str, *, suppress: bool) -> str:
    """A percentage or median; withheld when it was worked out from fewer than 5 cases."""
    if value is None:
        return "none"
    if suppress and 0 < base < SMALL:
        return WITHHELD
    number = f"{value:g}"
    return f"{number}%" if unit == "%" else f"{number} {unit}"


def _cell(n: int | None, suppress: bool) -> Any:
    if n is None:
        return ""
    return FEWER_THAN_5 if suppress and 0 < n < SMALL else n


def _derived_cell(value: float | None, base: int, suppress: bool) -> Any:
    if value is None:
        return ""
    return WITHHELD if suppress and 0 < base < SMALL else value


def _write(header: list[str], rows: Iterable[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


TIMELINESS_COLUMNS = [
    "clock",
    "provider",
    "due",
    "met_on_time",
    "met_late",
    "missed",
    "missed_still_open",
    "open",
    "cancelled",
    "percent_on_time",
    "late_median_working_days",
    "late_worst_working_days",
]


def timeliness_csv(rows: Iterable[TimelinessRow], *, suppress: bool) -> str:
    return _write(TIMELINESS_COLUMNS, (_timeliness_cells(r, suppress) for r in rows))


def _timeliness_cells(r: TimelinessRow, suppress: bool) -> list[Any]:
    return [
        r.clock,
        r.provider,
        *[_cell(getattr(r, k), suppress) for k in TIMELINESS_COLUMNS[2:9]],
        _derived_cell(r.percent_on_time, r.decided, suppress),
        _derived_cell(r.late_median_working_days, r.met_late, suppress),
        _derived_cell(r.late_worst_working_days, r.met_late, suppress),
    ]


def months_csv(rows: Iterable[MonthRow], *, suppress: bool) -> str:
    return _write(
        ["month", "clock", "due", "met_on_time", "met_late", "missed", "open"],
        (
            [r.as_dict()["month"], r.clock]
            + [_cell(getattr(r, k), suppress) for k in ("due", "met_on_time", "met_late")]
            + [_cell(r.missed, suppress), _cell(r.open, suppress)]
            for r in rows
        ),
    )


def flow_csv(report: FlowReport, *, suppress: bool) -> str:
    rows: list[list[Any]] = []
    for b in BREAKDOWNS:
        if suppress and b.free_text:
            continue
        for category, n in report.counts.get(b.key, {}).items():
            rows.append([b.key, category, _cell(n, suppress), "", "", ""])
    for s in report.stats:
        rows.append(
            [
                s.key,
                s.unit,
                _cell(s.count, suppress),
                _derived_cell(s.median, s.count, suppress),
                _derived_cell(s.p90, s.count, suppress),
                _derived_cell(s.worst, s.count, suppress),
            ]
        )
    return _write(["figure", "category", "count", "median", "p90", "worst"], rows)


def sen2_csv(report: Sen2, *, suppress: bool) -> str:
    return _write(
        ["year", "from", "to", "figure", "value"],
        [
            [report.period.calendar_year or "", report.period.start, report.period.end, k, v]
            for k, v in (
                ("mediation_cases_held", _cell(report.mediation_cases_held, suppress)),
                ("followed_by_appeal", _cell(report.followed_by_appeal, suppress)),
                ("no_appeal", _cell(report.no_appeal, suppress)),
                ("outcome_unknown", _cell(report.outcome_unknown, suppress)),
                (
                    "percent_followed_by_appeal",
                    _derived_cell(
                        report.percent_followed_by_appeal, report.mediation_cases_held, suppress
                    ),
                ),
            )
        ],
    )


def all_figures_csv(
    timeliness: list[TimelinessRow], flow: FlowReport, sen2: Sen2, *, suppress: bool
) -> str:
    """Every figure in one long CSV: report, figure, category, provider, measure, value."""
    rows: list[list[Any]] = []
    for r in timeliness:
        for measure, value in zip(
            TIMELINESS_COLUMNS[2:], _timeliness_cells(r, suppress)[2:], strict=True
        ):
            rows.append(["timeliness", r.clock, "", r.provider, measure, value])
    for b in BREAKDOWNS:
        if suppress and b.free_text:
            continue
        for category, n in flow.counts.get(b.key, {}).items():
            rows.append(["flow", b.key, category, ALL_PROVIDERS, "count", _cell(n, suppress)])
    for s in flow.stats:
        rows.append(["flow", s.key, s.unit, ALL_PROVIDERS, "count", _cell(s.count, suppress)])
        for measure, value in (("median", s.median), ("p90", s.p90), ("worst", s.worst)):
            if value is not None:
                rows.append(
                    [
                        "flow",
                        s.key,
                        s.unit,
                        ALL_PROVIDERS,
                        measure,
                        _derived_cell(value, s.count, suppress),
                    ]
                )
    for measure, value in sen2.as_dict().items():
        if measure in ("year", "from", "to"):
            continue
        cell = (
            _derived_cell(value, sen2.mediation_cases_held, suppress)
            if measure.startswith("percent")
            else _cell(value, suppress)
        )
        rows.append(["sen2", "sen2", "", ALL_PROVIDERS, measure, cell])
    return _write(["report", "figure", "category", "provider", "measure", "value"], rows)


CASE_EXPORT_COLUMNS = [
    "case_key",
    "kind",
    "decision_type",
    "provider",
    "state",
    "requested_on",
    "la_told_on",
    "declined_on",
    "meeting_held_on",
    "meeting_outcome",
    "certificate_on",
    "certificate_type",
    "close_outcome",
    *[f"clock_{k}" for k in CASE_EXPORT_CLOCKS],
]


def case_key(secret: str, case_id: int) -> str:
    """A stable pseudonym: a keyed hash of the internal id, which cannot be turned back."""
    digest = hmac.new(secret.encode(), f"case:{case_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:16]


def case_export_csv(rows: Iterable[Any], *, secret: str) -> str:
    """The pseudonymised per-case CSV: the row's id replaced by its keyed hash."""
    return _write(
        CASE_EXPORT_COLUMNS,
        (
            [case_key(secret, r.id)]
            + ["" if r[i] is None else str(r[i]) for i in range(1, len(CASE_EXPORT_COLUMNS))]
            for r in rows
        ),
    )
