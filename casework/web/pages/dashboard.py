"""The adviser's case list: open cases by state, searched and filtered, each with its next clock.

The filtering is :func:`casework.cases.find_cases`; this door reads the form and draws.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import Session, col

from casework import cases
from casework.auth import actor_for
from casework.cases.words import DECISION_TYPE_WORDS, KIND_WORDS, STATE_WORDS
from casework.deadlines import LONDON, fmt
from casework.models import Case, Deadline, Provider, Role, User
from casework.states import FINAL_STATES, CaseState
from casework.web.deps import NowDep, PageUserDep, SessionDep, in_one_thread
from casework.web.pages.common import (
    COUNTS_TTL_SECONDS,
    RagStatus,
    rag_for,
    redirect,
    render,
    require_staff,
    state_counts,
)
from casework.web.pages.labels import (
    DEADLINE_LABELS,
    KIND_LABELS,
    STATE_COLOURS,
    STATE_LABELS,
    fmt_date,
)
from casework.web.pages.manager import require_manager

router = APIRouter(include_in_schema=False)


PAGE_SIZE = 25
OPEN_STATES = [s.value for s in CaseState if s not in FINAL_STATES]
CSV_MAX_ROWS = 10_000
URGENCY_WORDS = {"late": "Late", "due_soon": "Due soon", "on_track": "On track"}
SORT_WORDS = {
    "urgency": "Most urgent first",
    "newest": "Newest first",
    "oldest": "Oldest first",
    "reference": "By reference",
}
# The filters a list is asked with, in the order the form and the URLs carry them.
FILTERS = (
    "q",
    "state",
    "kind",
    "provider",
    "urgency",
    "adviser",
    "decision_type",
    "opened_from",
    "opened_to",
    "sort",
)


@dataclass(frozen=True, slots=True)
class DashboardRow:
    """One case on the list as the words and colours its row shows.

    Worked out here, in Python, so the template only places them: a macro call per cell
    per row cost more than everything else the list draws."""

    reference: str
    kind: str
    family_name: str
    state_colour: str
    state_label: str
    provider_name: str
    deadline_label: str
    due: str
    rag_colour: str
    rag_label: str
    rag_countdown: str


def dashboard_row(
    case: Case,
    family_name: str,
    provider_name: str,
    deadline: Deadline | None,
    rag: RagStatus | None,
) -> DashboardRow:
    return DashboardRow(
        reference=case.reference,
        kind=KIND_LABELS.get(case.kind, case.kind),
        family_name=family_name,
        state_colour=STATE_COLOURS.get(case.state, "grey"),
        state_label=STATE_LABELS.get(case.state, case.state),
        provider_name=provider_name or "Not allocated",
        deadline_label=DEADLINE_LABELS.get(deadline.kind, deadline.kind) if deadline else "",
        due=fmt_date(deadline.due_date) if deadline else "",
        rag_colour=rag.colour if rag else "",
        rag_label=rag.label if rag else "",
        rag_countdown=rag.countdown if rag else "",
    )


def provider_names(session: Session) -> dict[int, str]:
    return {p.id: p.name for p in session.execute(select(Provider)).scalars() if p.id is not None}


def provider_list(session: Session) -> list[Provider]:
    return list(session.execute(select(Provider).order_by(col(Provider.name))).scalars())


def cached_providers(app: Any, session: Session) -> list[Provider]:
    """The providers for the filter and the list, re-read at most every 15 seconds per app.

    Providers change when the service's configuration is loaded, not from these pages;
    the list's own rows are always live, only the names beside them may lag.
    """
    cached: tuple[float, list[Provider]] | None = getattr(app.state, "providers", None)
    moment = time.monotonic()
    if cached is not None and cached[0] > moment:
        return cached[1]
    providers = provider_list(session)
    for provider in providers:  # detached: shared, read-only, by the requests that reuse them
        session.expunge(provider)
    app.state.providers = (moment + COUNTS_TTL_SECONDS, providers)
    return providers


def _day(raw: str, words: str, name: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise cases.ValidationFailed(
            f"{words}: give a real date, for example 2026-11-02.", field=name
        ) from None


def criteria_from(params: dict[str, str], user: User) -> cases.CaseCriteria:
    """The form's fields as criteria; "mine" is the signed-in person's own cases."""
    adviser = params.get("adviser", "")
    return cases.CaseCriteria(
        q=params.get("q", "")[:100],
        state=params.get("state", ""),
        kind=params.get("kind", ""),
        provider=params.get("provider", ""),
        urgency=params.get("urgency", ""),
        adviser=user.email if adviser == "mine" else adviser,
        decision_type=params.get("decision_type", ""),
        opened_from=_day(params.get("opened_from", ""), "Opened from", "opened_from"),
        opened_to=_day(params.get("opened_to", ""), "Opened to", "opened_to"),
        sort=params.get("sort", "") or "urgency",
    )


def _params(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTERS}


def _query_string(params: dict[str, str], **extra: str) -> str:
    kept = {k: v for k, v in params.items() if v and not (k == "sort" and v == "urgency")}
    kept.update({k: v for k, v in extra.items() if v})
    return urlencode(kept)


@router.get("/")
@in_one_thread
def dashboard(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    page: int = 1,
) -> Response:
    user = signed_in[0]
    if user.role == Role.provider:
        return redirect("/portal")
    require_staff(signed_in)
    params = _params(request)
    page = max(1, min(page, 10_000))
    settings = request.app.state.settings
    counts = state_counts(request.app, session)
    error = ""
    found = cases.FoundCases([], 0)
    filtered = any(v for k, v in params.items() if k not in ("state", "sort"))
    # Unfiltered, the sidebar's counts per state already hold the total.
    known_total: int | None = None
    if not filtered and params["state"] in ("", *CaseState.__members__):
        states = [params["state"]] if params["state"] else OPEN_STATES
        known_total = sum(counts.get(s, 0) for s in states)
    try:
        found = cases.find_cases(
            session,
            criteria_from(params, user),
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            actor=actor_for(user, "web"),
            now=now,
            settings=settings,
            count=known_total is None,
        )
    except cases.ValidationFailed as exc:
        error = str(exc)
    providers = cached_providers(request.app, session)
    names = {p.id: p.name for p in providers}
    table = [
        dashboard_row(
            row.case,
            row.family_name,
            names.get(row.case.provider_id, "") if row.case.provider_id else "",
            row.next_deadline,
            rag_for(row.next_deadline, now, settings) if row.next_deadline else None,
        )
        for row in found.rows
    ]
    total = found.total if known_total is None else known_total
    pages = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        query = _query_string(params, page=str(n) if n > 1 else "")
        return "/" + ("?" + query if query else "")

    state = params["state"] if params["state"] in CaseState.__members__ else ""
    return render(
        request,
        "dashboard.html",
        {
            "page_title": ("Error: " if error else "") + "Cases",
            "error": error,
            "rows": table,
            "state": state,
            "q": params["q"],
            "params": params,
            "filtered": filtered,
            "page": page,
            "pages": pages,
            "total": total,
            "has_next": page < pages,
            "page_url": page_url,
            "csv_url": "/cases.csv" + ("?" + query if (query := _query_string(params)) else ""),
            "may_download": user.role in (Role.manager, Role.admin),
            "counts": counts,
            "open_states": OPEN_STATES,
            "all_states": [s.value for s in CaseState],
            "open_total": sum(n for s, n in counts.items() if s in OPEN_STATES),
            "providers": providers,
            "kind_words": KIND_WORDS,
            "urgency_words": URGENCY_WORDS,
            "decision_type_words": DECISION_TYPE_WORDS,
            "sort_words": SORT_WORDS,
        },
    )


CSV_COLUMNS = (
    "Reference",
    "Kind of request",
    "State",
    "Family contact",
    "Child or young person",
    "Provider",
    "Owning adviser",
    "Opened",
    "What the LA decided",
    "Date of the LA's decision letter",
    "Next deadline",
    "Due",
)


def _cell(value: str) -> str:
    """A spreadsheet must not run a name typed as "=HYPERLINK(...)" as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/cases.csv")
def cases_csv(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep
) -> Response:
    """The list on screen, every page of it, for a manager's spreadsheet; never the notes."""
    user = require_manager(signed_in)
    params = _params(request)
    found = cases.find_cases(
        session,
        criteria_from(params, user),
        limit=CSV_MAX_ROWS,
        offset=0,
        actor=actor_for(user, "web"),
        now=now,
        settings=request.app.state.settings,
    )
    names = provider_names(session)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in found.rows:
        case = row.case
        d = row.next_deadline
        writer.writerow(
            [
                _cell(v)
                for v in (
                    case.reference,
                    KIND_WORDS.get(case.kind, ""),
                    STATE_WORDS.get(case.state, ""),
                    row.family_name,
                    case.child_name,
                    names.get(case.provider_id, "") if case.provider_id else "Not allocated",
                    case.adviser or "",
                    fmt(case.opened_at.astimezone(LONDON).date()),
                    DECISION_TYPE_WORDS.get(case.decision_type or "", ""),
                    fmt(case.decision_date) if case.decision_date else "",
                    DEADLINE_LABELS.get(d.kind, "") if d else "Nothing due",
                    fmt(d.due_date) if d else "",
                )
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="cases-{now:%Y-%m-%d}.csv"',
            "Cache-Control": "no-store",
        },
    )
