"""``/cases/{reference}/allocation``: the rules' suggestion, the offer, the provider's answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from casework import cases
from casework.auth import actor_for
from casework.cases import allocation as rules
from casework.web.api.common import (
    ApiRoute,
    ApiUser,
    Reference,
    end_read,
    forbid_provider,
    is_provider,
    visible_case,
)
from casework.web.api.schemas import (
    AllocationIn,
    AllocationResponseIn,
    CandidateOut,
    CaseDetailOut,
    ProviderOut,
    SuggestionOut,
)
from casework.web.api.views import case_detail, check_version
from casework.web.deps import NowDep, SessionDep, SettingsDep

router = APIRouter(route_class=ApiRoute)


def _suggestion_out(s: rules.Suggestion) -> SuggestionOut:
    return SuggestionOut(
        provider=ProviderOut(code=s.provider.code, name=s.provider.name) if s.provider else None,
        reasons=list(s.reasons),
        candidates=[
            CandidateOut(
                code=c.code,
                name=c.name,
                open_cases=c.open_cases,
                capacity=c.capacity,
                excluded=c.excluded,
            )
            for c in s.candidates
        ],
    )


@router.get(
    "/cases/{reference}/allocation/suggestion",
    response_model=SuggestionOut,
    summary="The provider the allocation rules suggest, and why",
)
def allocation_suggestion(
    reference: Reference,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    preferred: Annotated[
        str | None, Query(max_length=200, description="The family's preferred provider")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        Query(max_length=10, description="Providers ruled out for this case (repeatable)"),
    ] = None,
    school: Annotated[
        str, Query(max_length=200, description="The child's school, checked for conflicts")
    ] = "",
) -> SuggestionOut:
    """Rotation by open load (and capacity), minus declared conflicts and exclusions."""
    case = visible_case(session, user, reference, now=now, settings=settings)
    forbid_provider(user, "allocate cases")
    suggestion = rules.suggest(
        session,
        case,
        settings,
        preferred=preferred or None,
        excluded=exclude or [],
        school=school,
    )
    return _suggestion_out(suggestion)


@router.post(
    "/cases/{reference}/allocation",
    response_model=CaseDetailOut,
    summary="Offer the case to a provider",
)
def post_allocation(
    reference: Reference,
    body: AllocationIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> CaseDetailOut:
    """Allocate; choosing other than the suggested provider needs ``override_reason``."""
    case = visible_case(session, user, reference, now=now, settings=settings)
    forbid_provider(user, "allocate cases")
    check_version(case, user, body.expected_version)
    end_read(session)
    rules.allocate(
        session,
        case.reference,
        body.provider,
        now=now,
        actor=actor_for(user, "api"),
        settings=settings,
        note=body.note,
        override_reason=body.override_reason,
        preferred=body.preferred,
        excluded=body.excluded,
        school=body.school,
    )
    return case_detail(session, user, case, now)


@router.post(
    "/cases/{reference}/allocation/response",
    response_model=CaseDetailOut,
    summary="Accept or decline an allocation (provider staff, or an adviser on their behalf)",
    responses={
        204: {
            "description": "Declined by provider staff: the case has gone back to the adviser"
            " and is no longer theirs to see"
        }
    },
)
def post_allocation_response(
    reference: Reference,
    body: AllocationResponseIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> CaseDetailOut | Response:
    """A decline needs a reason in ``note`` and returns the case to the adviser."""
    case = visible_case(session, user, reference, now=now, settings=settings)
    end_read(session)
    cases.respond_to_allocation(
        session,
        case.reference,
        accept=body.answer == "accept",
        now=now,
        actor=actor_for(user, "api"),
        settings=settings,
        note=body.note,
    )
    if is_provider(user) and body.answer == "decline":
        return Response(status_code=204)
    return case_detail(session, user, cases.get_case(session, case.reference), now)
