"""The adviser's case list: open cases by state, searchable, each with its next clock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlmodel import Session, col

from casework import cases
from casework.models import Case, Deadline, Person, Provider, Role
from casework.states import FINAL_STATES, CaseState
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.case_view import next_deadlines
from casework.web.pages.common import (
    RagStatus,
    rag_for,
    redirect,
    render,
    require_staff,
    state_counts,
)
from casework.web.pages.labels import DEADLINE_LABELS

router = APIRouter(include_in_schema=False)


PAGE_SIZE = 25
OPEN_STATES = [s.value for s in CaseState if s not in FINAL_STATES]
_REFERENCE_LIKE = re.compile(r"^[A-Za-z]{1,10}-\d[\d-]*$")


@dataclass
class DashboardRow:
    case: Case
    family_name: str
    provider_name: str
    deadline: Deadline | None
    deadline_label: str
    rag: RagStatus | None


def provider_names(session: Session) -> dict[int, str]:
    return {p.id: p.name for p in session.execute(select(Provider)).scalars() if p.id is not None}


@router.get("/")
def dashboard(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    state: str = "",
    q: str = "",
    page: int = 1,
) -> Response:
    user = signed_in[0]
    if user.role == Role.provider:
        return redirect("/portal")
    require_staff(signed_in)
    state = state.strip()
    q = q.strip()[:100]
    page = max(1, min(page, 10_000))
    if state and state not in CaseState.__members__:
        state = ""
    counts = state_counts(request.app, session)
    query = select(Case, col(Person.name)).outerjoin(
        Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family")
    )
    query = (
        query.where(col(Case.state) == state)
        if state
        # NOT IN the final states: the planner then walks the clocks' index in order.
        else query.where(col(Case.state).not_in([s.value for s in FINAL_STATES]))
    )
    if q:
        if _REFERENCE_LIKE.match(q):
            # A reference: the unique index answers it.
            query = query.where(col(Case.reference).startswith(q.upper(), autoescape=True))
        else:
            # A name: filter the people first (one pass, no index can serve a
            # substring), then keep the cases whose family matched.
            matching = select(col(Person.case_id)).where(
                col(Person.role) == "family",
                func.lower(Person.name).contains(q.lower(), autoescape=True),
            )
            query = query.where(col(Case.id).in_(matching))
    # Most urgent first (late duties, then the soonest due), ordered in SQL.
    rows = cases.urgent_first(session, query, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    soonest = next_deadlines(session, [c.id for c, _ in rows if c.id is not None])
    names = provider_names(session)
    table = []
    for case, family_name in rows:
        d = soonest.get(case.id) if case.id is not None else None
        table.append(
            DashboardRow(
                case=case,
                family_name=family_name or "",
                provider_name=names.get(case.provider_id, "") if case.provider_id else "",
                deadline=d,
                deadline_label=DEADLINE_LABELS.get(d.kind, d.kind) if d else "",
                rag=rag_for(d, now, request.app.state.settings) if d else None,
            )
        )
    if q:
        total = None
    elif state:
        total = counts.get(state, 0)
    else:
        total = sum(n for s, n in counts.items() if s in OPEN_STATES)
    pages = None if total is None else max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        params = {k: v for k, v in (("state", state), ("q", q)) if v}
        if n > 1:
            params["page"] = str(n)
        return "/" + ("?" + urlencode(params) if params else "")

    return render(
        request,
        "dashboard.html",
        {
            "page_title": "Cases",
            "rows": table,
            "state": state,
            "q": q,
            "page": page,
            "pages": pages,
            "total": total,
            "has_next": has_next,
            "page_url": page_url,
            "counts": counts,
            "open_states": OPEN_STATES,
            "all_states": [s.value for s in CaseState],
            "open_total": sum(n for s, n in counts.items() if s in OPEN_STATES),
        },
    )
