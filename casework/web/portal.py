"""The provider portal: provider staff see and act on their own provider's cases only.

Isolation is enforced in the query, not in the template: every case lookup here
carries ``cases.provider_may_open`` (allocated to the provider now, or its meeting held
by the provider, within the retention), so another provider's case, one whose
allocation ended before any meeting, or a reference that does not exist is the same
404, and the response never confirms that a reference exists. The use cases check
that the case is the provider's again (``cases.access.check_actor_may_see``), so a
mistake here still cannot leak a change.

Provider actions are the ones the domain gives them: accept or decline the
allocation, schedule the meeting, record it, report that the LA cannot arrange it
within 30 days, and issue the mediator's certificate. They go through the same use
cases as the adviser's, with the channel ``portal`` in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth, cases
from casework.cases.effects import PROVIDER_EVENTS
from casework.config import Settings
from casework.models import (
    Allocation,
    AllocationStatus,
    Case,
    Person,
    Provider,
    Role,
    User,
    UserSession,
)
from casework.states import CaseState
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.case_view import (
    build_case_view,
    download,
    next_deadlines,
    post_case_event,
    record_view,
    refusal_page,
    render_case_view,
)
from casework.web.pages.common import (
    PageError,
    forget_counts,
    form_text,
    form_version,
    rag_for,
    redirect,
    render,
)
from casework.web.pages.labels import DEADLINE_LABELS, DONE_MESSAGES, STATE_LABELS
from casework.web.security import CheckedForm

router = APIRouter(prefix="/portal", include_in_schema=False)

# What provider staff may record; everything else (advice, withdrawal, closing) is the
# IAS adviser's. issue_certificate is the mediator's certificate, so only while mediating.
PORTAL_EVENTS = PROVIDER_EVENTS
PORTAL_LIMIT = 200


def require_provider(signed_in: tuple[User, UserSession], request: Request) -> User:
    """Provider staff only; advisers are told where their pages are."""
    user = signed_in[0]
    if user.role != Role.provider or user.provider_id is None:
        raise PageError(
            403,
            "This is the provider portal",
            "The portal is for provider staff. IAS staff see every case from the case list.",
        )
    return user


def _provider_name(session: Session, user: User, request: Request) -> str:
    provider = session.get(Provider, user.provider_id)
    name = provider.name if provider else ""
    request.state.provider_name = name
    return name


def own_case(
    session: Session, user: User, reference: str, *, now: dt.datetime, settings: Settings
) -> tuple[Case, Person | None]:
    """The case if the provider may open it (``cases.provider_may_open``: allocated to it
    now, or its meeting held by the provider within the retention, not anonymised);
    otherwise 404, whatever the reason (:func:`not_yours`)."""
    assert user.provider_id is not None
    row = session.execute(
        select(Case, Person)
        .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
        .where(
            col(Case.reference) == reference.strip().upper(),
            cases.provider_may_open(user.provider_id, now=now, settings=settings),
        )
    ).first()
    if row is None:
        raise not_yours()
    return row[0], row[1]


def not_yours() -> PageError:
    """The one answer for a reference the provider may not open, known or not.

    A provider following the link in an old email (its allocation since ended) is told
    in words why the case may be gone; a reference that never existed reads the same,
    so the page confirms nothing about the case.
    """
    return PageError(
        404,
        "Page not found",
        "There is no case of yours at this address: the reference may be wrong, or the"
        " case is no longer with you. Your cases are in your list.",
    )


def portal_events(case: Case, allocation_status: str | None) -> list[str]:
    """Provider actions offered now: none until the allocation is accepted."""
    if allocation_status != AllocationStatus.accepted:
        return []
    events = [e for e in PORTAL_EVENTS if e != "issue_certificate"]
    if case.state == CaseState.mediating:
        events.append("issue_certificate")
    return events


def live_allocations(session: Session, case_ids: list[int]) -> dict[int, Allocation]:
    """The live allocation of each listed case, in one query (no query per row)."""
    if not case_ids:
        return {}
    rows = session.execute(
        select(Allocation)
        .where(
            col(Allocation.case_id).in_(case_ids),
            col(Allocation.status).in_([AllocationStatus.offered, AllocationStatus.accepted]),
        )
        .order_by(col(Allocation.id).desc())
    ).scalars()
    live: dict[int, Allocation] = {}
    for allocation in rows:
        live.setdefault(allocation.case_id, allocation)
    return live


@router.get("")
def portal_index(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, done: str = ""
) -> Response:
    user = require_provider(signed_in, request)
    provider_name = _provider_name(session, user, request)
    assert user.provider_id is not None
    rows = [
        (r.case, r.family_name)
        for r in cases.provider_cases(
            session,
            user.provider_id,
            now=now,
            settings=request.app.state.settings,
            limit=PORTAL_LIMIT,
        )
    ]
    ids = [c.id for c, _ in rows if c.id is not None]
    soonest = next_deadlines(session, ids)
    allocations = live_allocations(session, ids)
    table: list[dict[str, Any]] = []
    for case, family_name in rows:
        allocation = allocations.get(case.id) if case.id is not None else None
        d = soonest.get(case.id) if case.id is not None else None
        table.append(
            {
                "case": case,
                "family_name": family_name or "",
                "allocation": allocation,
                "deadline": d,
                "deadline_label": DEADLINE_LABELS.get(d.kind, d.kind) if d else "",
                "rag": rag_for(d, now, request.app.state.settings) if d else None,
            }
        )
    return render(
        request,
        "portal/index.html",
        {
            "page_title": f"{provider_name} cases",
            "rows": table,
            "provider_name": provider_name,
            "done_message": DONE_MESSAGES.get(done, ""),
            "limit": PORTAL_LIMIT,
        },
    )


def portal_case_page(
    request: Request,
    session: Session,
    user: User,
    now: dt.datetime,
    reference: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    open_event: str | None = None,
    values: dict[str, Any] | None = None,
    banner: str = "",
    banner_title: str = "",
    done: str = "",
    record: bool = False,
    warned: bool = False,
) -> HTMLResponse:
    """The provider's view of one of its cases (same shape as the adviser's case page)."""
    _provider_name(session, user, request)
    case, _family = own_case(session, user, reference, now=now, settings=request.app.state.settings)
    if record:
        record_view(session, case, user, now, "portal")
    allocation = cases.live_allocation(session, case)
    allocation_status = allocation.status if allocation else None
    view = build_case_view(
        session,
        case,
        user,
        now,
        request.app.state.settings,
        channel="portal",
        with_notices=False,
        events=portal_events(case, allocation_status),
    )
    return render_case_view(
        request,
        "portal/case.html",
        view,
        status_code=status_code,
        errors=errors,
        open_event=open_event,
        values=values,
        banner=banner,
        banner_title=banner_title,
        done=done,
        warned=warned,
        extra={
            "awaiting_answer": allocation_status == AllocationStatus.offered,
            "reissuable": cases.reissuable_kinds(auth.actor_for(user, "portal")),
            # Not the adviser's page's title: each page says which one it is.
            "page_title": f"Case {case.reference} in the provider portal",
        },
    )


@router.get("/cases/{reference}")
def portal_case(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    reference: str,
    done: str = "",
    warned: str = "",
) -> Response:
    user = require_provider(signed_in, request)
    return portal_case_page(
        request, session, user, now, reference, done=done, record=True, warned=warned == "1"
    )


@router.post("/cases/{reference}/allocation")
def portal_allocation(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Accept or decline the offer; a decline needs a reason and returns the case."""
    user = require_provider(signed_in, request)
    settings: Settings = request.app.state.settings
    case, _family = own_case(session, user, reference, now=now, settings=request.app.state.settings)
    answer = form_text(form, "answer")
    values = {"answer": answer, "note": form_text(form, "note")}
    try:
        version = form_version(form)
        if version is not None and version != case.version:
            raise cases.Conflict(f"{case.reference} is now {STATE_LABELS.get(case.state)}.")
        if answer not in ("accept", "decline"):
            raise cases.ValidationFailed("Choose whether you accept the case", field="answer")
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=answer == "accept",
            now=now,
            actor=auth.actor_for(user, "portal"),
            settings=settings,
            note=values["note"],
        )
    except cases.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request,
            session,
            user,
            now,
            reference,
            exc,
            open_event="allocation",
            values=values,
            render_case=portal_case_page,
        )
    if answer == "decline":
        # The case is no longer theirs: back to the list, not to a page that now 404s.
        return redirect("/portal?done=declined")
    return redirect(f"/portal/cases/{quote(case.reference)}?done=accepted")


@router.post("/cases/{reference}/events/{event}")
def portal_event(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
    event: str,
) -> Response:
    user = require_provider(signed_in, request)
    case, _family = own_case(session, user, reference, now=now, settings=request.app.state.settings)
    allocation = cases.live_allocation(session, case)
    response = post_case_event(
        request,
        session,
        now,
        user,
        case,
        event,
        form,
        channel="portal",
        render_case=portal_case_page,
        done_url=f"/portal/cases/{quote(case.reference)}",
        offered=portal_events(case, allocation.status if allocation else None),
    )
    if response.status_code == 303:
        forget_counts(request)
    return response


@router.get("/cases/{reference}/documents/{document_id}")
def portal_document(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    reference: str,
    document_id: int,
) -> Response:
    """Download a document of one of the provider's cases, of a kind providers read."""
    user = require_provider(signed_in, request)
    case, _family = own_case(session, user, reference, now=now, settings=request.app.state.settings)
    return download(session, user, now, case, document_id, "portal", request.app.state.settings)


@router.post("/cases/{reference}/certificates/{number}/reissue")
def portal_certificate_reissue(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
    number: str,
) -> Response:
    """The mediator corrects its own certificate (the use case refuses any other)."""
    user = require_provider(signed_in, request)
    case, _family = own_case(session, user, reference, now=now, settings=request.app.state.settings)
    reason = form_text(form, "reason")
    try:
        cases.reissue_certificate(
            session,
            case.reference,
            number,
            reason=reason,
            now=now,
            actor=auth.actor_for(user, "portal"),
            settings=request.app.state.settings,
        )
    except cases.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request,
            session,
            user,
            now,
            reference,
            exc,
            open_event=f"reissue-{number.upper()}",
            values={"reason": reason},
            render_case=portal_case_page,
        )
    forget_counts(request)
    return redirect(f"/portal/cases/{quote(case.reference)}?done=reissued#documents")
