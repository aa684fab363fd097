"""``/cases``: list, open, read and advance cases."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from casework import cases
from casework import deadlines as dl
from casework.auth import actor_for
from casework.states import CaseKind, CaseState
from casework.web.api.common import (
    ApiRoute,
    ApiUser,
    Limit,
    Offset,
    Reference,
    RoleRefused,
    UnknownEvent,
    end_read,
    forbid_provider,
    visible_case,
)
from casework.web.api.schemas import (
    EVENT_NAMES,
    CaseDetailOut,
    CasePageOut,
    CaseSummaryOut,
    EventIn,
    IntakeIn,
    ReopenIn,
)
from casework.web.api.views import (
    case_detail,
    check_version,
    providers_by_id,
    summary_fields,
)
from casework.web.deps import NowDep, SessionDep, SettingsDep, records_reads

router = APIRouter(route_class=ApiRoute)


# No date on a SEND record predates the SEND Regulations 2014 coming into force, and
# none is years ahead; bounding them keeps nonsense (year 1, year 9999) out of the clocks.
@router.get("/cases", response_model=CasePageOut, summary="Find cases, newest first")
def list_cases(
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    limit: Limit = 50,
    offset: Offset = 0,
    state: Annotated[
        CaseState | None, Query(description="Only cases in this state (default: every state)")
    ] = None,
    kind: Annotated[CaseKind | None, Query(description="mediation or disagreement")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Part of a reference, a family or child's name, a phone number"
            " (any format) or an email address",
        ),
    ] = None,
    provider: Annotated[
        str | None,
        Query(max_length=64, description="The provider's code; 'none' for unallocated cases"),
    ] = None,
    urgency: Annotated[
        Literal["late", "due_soon", "on_track"] | None,
        Query(description="How urgent the case's most urgent clock is"),
    ] = None,
    adviser: Annotated[
        str | None,
        Query(max_length=320, description="The owning adviser's email; 'me' for your own"),
    ] = None,
    decision_type: Annotated[
        str | None, Query(max_length=32, description="What the LA decided")
    ] = None,
    opened_from: Annotated[dt.date | None, Query(description="Opened on or after")] = None,
    opened_to: Annotated[dt.date | None, Query(description="Opened on or before")] = None,
    sort: Annotated[
        Literal["newest", "oldest", "reference", "urgency"],
        Query(description="Order: newest first unless asked"),
    ] = "newest",
) -> CasePageOut:
    """Cases this token can see matching every filter given, each with its next deadline.

    Without ``state`` every state is listed, closed and withdrawn cases too.
    """
    criteria = cases.CaseCriteria(
        q=q or "",
        state=state.value if state is not None else "all",
        kind=kind.value if kind is not None else "",
        provider=provider or "",
        urgency=urgency or "",
        adviser=user.email if adviser == "me" else (adviser or ""),
        decision_type=decision_type or "",
        opened_from=opened_from,
        opened_to=opened_to,
        sort=sort,
    )
    found = cases.find_cases(
        session,
        criteria,
        limit=limit,
        offset=offset,
        actor=actor_for(user, "api"),
        now=now,
        settings=settings,
    )
    providers = providers_by_id(session)
    today = dl.local_date(now)
    items = [
        CaseSummaryOut(**summary_fields(r.case, providers, r.next_deadline, today))
        for r in found.rows
    ]
    return CasePageOut(items=items, total=found.total, limit=limit, offset=offset)


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
    """Records the request, starts its clocks and queues the family's acknowledgement.

    ``warnings`` names any open case with the same phone number or email address
    (a possible duplicate), and says when text messages were chosen for a number we
    cannot text; the case is opened all the same.
    """
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
    opened = cases.open_case_reviewed(
        session, intake, now=now, actor=actor_for(user, "api"), settings=settings
    )
    response.headers["Location"] = f"/api/v1/cases/{opened.case.reference}"
    out = case_detail(session, user, opened.case, now)
    # A possible duplicate is a warning, not a refusal: two children, two cases.
    out.warnings = [
        *(f"Possible duplicate: {d.words()}" for d in opened.duplicates),
        *opened.warnings,
        *out.warnings,
    ]
    return out


@router.get(
    "/cases/{reference}",
    response_model=CaseDetailOut,
    summary="A case: contact, allocation, deadlines, history and what can happen next",
)
@records_reads
def read_case(
    reference: Reference,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    include_views: Annotated[
        bool, Query(description="Include the audit trail's 'viewed' entries in events")
    ] = False,
) -> CaseDetailOut:
    """The whole case; reading it is recorded in its audit trail."""
    case = visible_case(session, user, reference, now=now, settings=settings)
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
    case = visible_case(session, user, reference, now=now, settings=settings)
    if body.event not in EVENT_NAMES:
        allowed = [name for name, _ in cases.allowed_events(case, actor_for(user, "api"))]
        raise UnknownEvent(body.event, allowed)
    check_version(case, user, body.expected_version)
    # The case read for the 404 stays with this door, detached: the step loads its own
    # (on Core, without the unit of work), and the answer is drawn from what it wrote.
    cases.release_case_rows(session)
    end_read(session)
    actor = actor_for(user, "api")
    try:
        recorded = cases.record_step(
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
    out = case_detail(session, user, recorded.case, now)
    # What the step asks the caller to check comes first; it was recorded all the same.
    out.warnings = [*recorded.warnings, *out.warnings]
    return out


@router.post(
    "/cases/{reference}/reopen",
    response_model=CaseDetailOut,
    summary="Reopen a closed or withdrawn case (managers only)",
)
def reopen_case(
    reference: Reference,
    body: ReopenIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> CaseDetailOut:
    """The case returns to the state it was in before it was closed or withdrawn, and the
    clocks that still run start again (a legal clock whose date has passed shows as late).
    """
    case = visible_case(session, user, reference, now=now, settings=settings)
    end_read(session)
    case = cases.reopen_case(
        session, case.reference, reason=body.reason, now=now, actor=actor_for(user, "api")
    )
    return case_detail(session, user, case, now)
