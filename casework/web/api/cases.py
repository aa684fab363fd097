"""``/cases``: list, open, read and advance cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func, or_, select
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from casework import cases
from casework import deadlines as dl
from casework.auth import actor_for
from casework.models import Case, Person
from casework.states import CaseKind, CaseState
from casework.web.api.common import (
    ApiRoute,
    ApiUser,
    Limit,
    Offset,
    Reference,
    RoleRefused,
    end_read,
    forbid_provider,
    is_provider,
    page_of,
    visible_case,
)
from casework.web.api.schemas import CaseDetailOut, CasePageOut, CaseSummaryOut, EventIn, IntakeIn
from casework.web.api.views import (
    SUMMARY_COLUMNS,
    case_detail,
    check_version,
    next_deadlines,
    providers_by_id,
    summary_fields,
)
from casework.web.deps import NowDep, SessionDep, SettingsDep

router = APIRouter(route_class=ApiRoute)


# No date on a SEND record predates the SEND Regulations 2014 coming into force, and
# none is years ahead; bounding them keeps nonsense (year 1, year 9999) out of the clocks.
@router.get("/cases", response_model=CasePageOut, summary="List cases, newest first")
def list_cases(
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    limit: Limit = 50,
    offset: Offset = 0,
    state: Annotated[CaseState | None, Query(description="Only cases in this state")] = None,
    kind: Annotated[CaseKind | None, Query(description="mediation or disagreement")] = None,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Part of a reference or of the family's name"),
    ] = None,
) -> CasePageOut:
    """Cases this token can see, newest first, with each one's next open deadline."""
    conditions: list[ColumnElement[bool]] = []
    if is_provider(user):
        conditions.append(col(Case.provider_id) == user.provider_id)
    if state is not None:
        conditions.append(col(Case.state) == state.value)
    if kind is not None:
        conditions.append(col(Case.kind) == kind.value)
    if q and q.strip():
        if "\x00" in q:
            raise cases.ValidationFailed("q: must not contain NUL characters", field="q")
        needle = q.strip().lower()
        family = select(col(Person.case_id)).where(
            col(Person.role) == "family",
            func.lower(col(Person.name)).contains(needle, autoescape=True),
        )
        conditions.append(
            or_(
                func.lower(col(Case.reference)).contains(needle, autoescape=True),
                col(Case.id).in_(family),
            )
        )
    rows, total = page_of(
        session,
        select(*SUMMARY_COLUMNS).order_by(col(Case.id).desc()),
        Case,
        conditions,
        limit,
        offset,
    )
    providers = providers_by_id(session)
    upcoming = next_deadlines(session, [r.id for r in rows])
    today = dl.local_date(now)
    items = [
        CaseSummaryOut(**summary_fields(r, providers, upcoming.get(r.id), today)) for r in rows
    ]
    return CasePageOut(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/cases",
    response_model=CaseDetailOut,
    status_code=201,
    summary="Open a case from a helpline call or an email",
)
def create_case(
    body: IntakeIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    response: Response,
) -> CaseDetailOut:
    """Records the request, starts its clocks and queues the family's acknowledgement."""
    forbid_provider(user, "open cases")
    intake = cases.Intake(
        kind=body.kind,
        name=body.name,
        phone=body.phone,
        channel=body.channel,
        email=body.email,
        decision_date=body.decision_date,
        decision_type=body.decision_type,
        health_care=body.health_care,
        placement_only=body.placement_only,
        summary=body.summary,
        child_name=body.child_name,
        preferred_channels=",".join(dict.fromkeys(body.preferred_channels)),
        sms_consent=body.sms_consent,
        reg32_info_given=body.reg32_info_given,
    )
    case = cases.open_case(
        session, intake, now=now, actor=actor_for(user, "api"), settings=settings
    )
    response.headers["Location"] = f"/api/v1/cases/{case.reference}"
    return case_detail(session, user, case, now)


@router.get(
    "/cases/{reference}",
    response_model=CaseDetailOut,
    summary="A case: contact, allocation, deadlines, history and what can happen next",
)
def read_case(
    reference: Reference,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    include_views: Annotated[
        bool, Query(description="Include the audit trail's 'viewed' entries in events")
    ] = False,
) -> CaseDetailOut:
    """The whole case; reading it is recorded in its audit trail."""
    case = visible_case(session, user, reference)
    cases.record_view(session, case, actor_for(user, "api"), now)
    return case_detail(session, user, case, now, include_views=include_views)


@router.post(
    "/cases/{reference}/events",
    response_model=CaseDetailOut,
    summary="Move a case by an event (advance it)",
)
def post_event(
    reference: Reference,
    body: EventIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> CaseDetailOut:
    """Send one of the case's ``allowed_events`` with its data; the whole change commits or none.

    Give ``expected_version`` (the version you read) so a change made meanwhile by
    someone else is refused with 409 instead of being silently built upon.
    """
    case = visible_case(session, user, reference)
    check_version(case, user, body.expected_version)
    end_read(session)
    actor = actor_for(user, "api")
    try:
        case = cases.advance(
            session,
            case.reference,
            body.event,
            now=now,
            actor=actor,
            settings=settings,
            data=dict(body.data),
            note=body.note,
            expected_version=body.expected_version,
        )
    except cases.NotPermitted as exc:
        allowed = [name for name, _ in cases.allowed_events(case, actor)]
        raise RoleRefused(str(exc), allowed) from exc
    return case_detail(session, user, case, now)
