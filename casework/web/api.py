"""The REST API under ``/api/v1``: cases, events, allocation, deadlines and notices.

For integrations (the LA's case system, a provider's own diary) and scripts. It is a
thin edge over the same use cases as the pages and the CLI, with the same reach per
role: a bearer token acts as its user, so provider staff see only the cases allocated
to their provider (any other reference answers 404, exactly like a case that does not
exist, so a reference cannot be probed) and cannot open or allocate cases.

Every error is JSON ``{"error": ..., "field": ..., "allowed": [...]}`` whose message
says what to do next: 401 without a valid token, 403 for an action the role may not
take, 404, 409 for a refused transition or a stale ``expected_version`` (with the
events allowed now), 422 for invalid data (naming the field). Request and response
bodies are pydantic models so the OpenAPI document (``/api/v1/openapi.json``) is
precise enough to generate clients and to fuzz (tests/web/test_schemathesis.py).

Reading a case is recorded in its audit trail (``viewed``, channel ``api``), as the
pages record page views: children's data is read by named people, on the record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, Literal, TypeAlias

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import Session, col
from starlette.exceptions import HTTPException as StarletteHTTPException

from casework import allocation as rules
from casework import deadlines as dl
from casework import services as svc
from casework.auth import actor_for
from casework.models import (
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    Notice,
    NoticeStatus,
    Person,
    Provider,
    Role,
    User,
)
from casework.states import (
    EVENT_LABELS,
    CaseKind,
    CaseState,
    EventField,
    event_fields,
)
from casework.states import PROVIDER_EVENTS as _PROVIDER_EVENTS
from casework.web.deps import NowDep, SessionDep, SettingsDep, get_api_user

# --- Errors --------------------------------------------------------------------------


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Every API error: what went wrong and what to do, the field to fix, the events allowed."""

    error: str = Field(description="What went wrong and what to do about it.")
    field: str | None = Field(None, description="The request field to fix, when there is one.")
    allowed: list[str] = Field(
        default_factory=list, description="On 409: the events the case allows now."
    )
    errors: list[FieldErrorOut] = Field(
        default_factory=list, description="On 422: every invalid field, not just the first."
    )


class ApiConflict(svc.Conflict):
    """A stale ``expected_version``: the case moved on; carries the events allowed now."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class RoleRefused(rules.NotPermitted):
    """The role may not send this event at all (403), with what it may do now."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


def error_response(exc: svc.CaseworkError) -> JSONResponse:
    """The JSON body and status of a use-case refusal: the message, the field, what is allowed."""
    body = ErrorOut(
        error=str(exc),
        field=getattr(exc, "field", None),
        allowed=list(getattr(exc, "allowed", None) or []),
    )
    return JSONResponse(body.model_dump(), status_code=exc.http_status)


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts) or "body"


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors in the API's shape: the first field named up front."""
    errors = [
        FieldErrorOut(field=_field_of(e.get("loc", ())), message=str(e.get("msg", "invalid")))
        for e in exc.errors()
    ] or [FieldErrorOut(field="body", message="invalid request")]
    first = errors[0]
    more = f" (and {len(errors) - 1} more, listed in errors)" if len(errors) > 1 else ""
    body = ErrorOut(
        error=f"{first.field}: {first.message}{more}; correct it and send the request again",
        field=first.field,
        errors=errors,
    )
    return JSONResponse(body.model_dump(), status_code=422)


class ApiRoute(APIRoute):
    """Turns every refusal under ``/api/v1`` into the API's JSON error shape.

    Done per route rather than with app-wide exception handlers so the HTML pages keep
    their own error pages (a form shows a ValidationFailed beside its field) and the
    two cannot overwrite each other's handlers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except svc.CaseworkError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return validation_response(exc)
            except StarletteHTTPException as exc:
                return JSONResponse(
                    ErrorOut(error=str(exc.detail)).model_dump(),
                    status_code=exc.status_code,
                    headers=exc.headers,
                )

        return route_handler


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API token"},
    403: {"model": ErrorOut, "description": "This role may not do this (`allowed`: what it may)"},
    404: {"model": ErrorOut, "description": "No such case (or not one this token may see)"},
    409: {"model": ErrorOut, "description": "Refused now, or the case changed since it was read"},
    422: {"model": ErrorOut, "description": "Invalid data; `field` names it"},
}

# Declares the bearer scheme in the OpenAPI document; the token itself is checked by
# `_api_user` below (which answers 401 with the API's message).
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token from `casework user token EMAIL`, as 'Authorization: Bearer <token>'",
)

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    route_class=ApiRoute,
    responses=_ERRORS,
    dependencies=[Depends(_bearer)],
)


def _api_user(request: Request, session: SessionDep, now: NowDep) -> User:
    """``deps.get_api_user`` (ApiUserDep), in a transaction allowed to write from the start.

    Resolving a token also stamps when it was last used: a write after a read. On
    SQLite a read transaction that then writes is refused outright ("database is
    locked") when another request wrote in between, which 20 concurrent API clients
    make routine (the bench saw a third of requests fail). Asking for BEGIN IMMEDIATE
    (``db.py``'s ``claim`` option) makes the request wait its turn instead. PostgreSQL
    ignores the option.
    """
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        session.connection(execution_options={"claim": True})
    user = get_api_user(request, session, now)
    if user.role == Role.commissioner:  # aggregates only: /api/v1/reports/...
        raise StarletteHTTPException(403, "Commissioners may use the reports API only")
    return user


ApiUser = Annotated[User, Depends(_api_user)]

# Provider staff work the meeting and certificate; the adviser does everything else.
PROVIDER_EVENTS = frozenset(_PROVIDER_EVENTS)
# No date on a SEND record predates the SEND Regulations 2014 coming into force, and
# none is years ahead; bounding them keeps nonsense (year 1, year 9999) out of the clocks.
EARLIEST_DATE = dt.date(2014, 9, 1)
FUTURE_LIMIT_DAYS = 2 * 366
MAX_PAGE = 200
MAX_OFFSET = 10_000_000


# --- Request models ----------------------------------------------------------------------


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text; catching it here makes it a 422, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ShortText = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)]
# Every event of both flows, spelled out so the OpenAPI enum is exact (mypy needs a
# static Literal); tests/web/test_api.py fails when a flow gains an event missing here.
EventName = Literal[
    "advise",
    "mark_exempt",
    "choose_mediation",
    "decline",
    "schedule_meeting",
    "record_meeting",
    "report_not_arranged",
    "issue_certificate",
    "confirm_appeal_ready",
    "allocate",
    "return_to_adviser",
    "close",
    "withdraw",
]
DecisionType = Literal[
    "refuse_assessment", "refuse_plan", "plan_contents", "refuse_amend", "cease_plan"
]
DataValue = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)] | bool | None
DataKey = Annotated[str, Field(max_length=40), AfterValidator(_no_nul)]
ProviderName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Reference = Annotated[str, Path(max_length=32, description="e.g. MED-2026-0042")]


Channel = Literal["sms", "email"]


def _both_channels() -> list[Channel]:
    return ["sms", "email"]


class IntakeIn(BaseModel):
    """What an adviser takes down on the first call or email."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mediation", "disagreement"]
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
    phone: Annotated[str, Field(max_length=40), AfterValidator(_no_nul)] = Field(
        description="Contact telephone number; required for an email request (to ring back)"
    )
    channel: Literal["helpline", "email"] = Field(description="How the request arrived")
    email: Annotated[str, Field(max_length=320), AfterValidator(_no_nul)] = ""
    decision_date: dt.date | None = Field(
        None, description="The day the LA sent its decision letter (mediation)"
    )
    decision_type: DecisionType | None = None
    health_care: bool = False
    placement_only: bool = Field(
        False, description="The appeal is only about the school or college named"
    )
    summary: LongText = ""
    child_name: ShortText = ""
    preferred_channels: list[Channel] = Field(
        default_factory=_both_channels, min_length=1, max_length=2
    )
    sms_consent: bool = True


class EventIn(BaseModel):
    """Move a case by an event; ``data`` takes the fields the case's allowed event lists."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    data: dict[DataKey, DataValue] = Field(default_factory=dict, max_length=20)
    note: LongText = ""
    expected_version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="The version you read; refused with 409 if the case has moved on",
    )


class AllocationIn(BaseModel):
    """Offer the case to a provider; differing from the suggestion needs override_reason."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName = Field(description="Provider code or name, e.g. kids")
    note: LongText = ""
    override_reason: LongText = Field("", description="Why not the suggested provider")
    preferred: ProviderName | None = Field(None, description="The family's preferred provider")
    excluded: list[ProviderName] = Field(
        default_factory=list, max_length=10, description="Providers ruled out for this case"
    )
    school: ShortText = Field(
        "", description="The child's school or setting, checked against declared conflicts"
    )
    expected_version: int | None = Field(None, ge=1, le=2**31 - 1)


class AllocationResponseIn(BaseModel):
    """The provider's answer to an allocation; a decline needs a reason in ``note``."""

    model_config = ConfigDict(extra="forbid")

    answer: Literal["accept", "decline"]
    note: LongText = ""


# --- Response models ---------------------------------------------------------------------


class ProviderOut(BaseModel):
    code: str
    name: str


class ContactOut(BaseModel):
    name: str
    phone: str
    email: str
    preferred_channels: list[str]


class AllocationOut(BaseModel):
    provider: ProviderOut
    status: str = Field(description="offered, accepted, declined or ended")
    allocated_at: dt.datetime
    allocated_by: str
    responded_at: dt.datetime | None
    note: str
    override_reason: str


class DeadlineOut(BaseModel):
    kind: str
    due_date: dt.date
    due_at: dt.datetime
    status: str = Field(description="open, met, missed or cancelled")
    citation: str
    explanation: str = Field(description="How the due date was worked out")
    closed_reason: str
    days_left: int | None = Field(
        None, description="Calendar days from today (London) to the due date, for open clocks"
    )


class EventOut(BaseModel):
    at: dt.datetime
    actor: str
    event: str
    from_state: str | None
    to_state: str | None
    channel: str
    data: dict[str, Any]
    note: str


class EventFieldOut(BaseModel):
    name: str
    type: str = Field(description="date (YYYY-MM-DD), bool, text or choice")
    required: bool
    default: str | None = Field(None, description='"today" means the London date of the event')
    choices: list[str]
    help: str


class AllowedEventOut(BaseModel):
    event: str
    label: str
    fields: list[EventFieldOut]


class CaseSummaryOut(BaseModel):
    reference: str
    kind: str
    state: str
    version: int = Field(description="Send back as expected_version when changing the case")
    opened_at: dt.datetime
    updated_at: dt.datetime
    decision_date: dt.date | None
    decision_type: str | None
    appeal_due: dt.date | None
    provider: ProviderOut | None
    next_deadline: DeadlineOut | None


class CaseDetailOut(CaseSummaryOut):
    intake_channel: str
    summary: str
    child_name: str
    contact: ContactOut | None
    facts: dict[str, Any] = Field(description="What has been recorded on the case so far")
    allocation: AllocationOut | None
    deadlines: list[DeadlineOut]
    events: list[EventOut]
    allowed_events: list[AllowedEventOut] = Field(
        description="What this token may do to the case now, with the data each event takes"
    )


class CasePageOut(BaseModel):
    items: list[CaseSummaryOut]
    total: int
    limit: int
    offset: int


class CandidateOut(BaseModel):
    code: str
    name: str
    open_cases: int
    capacity: float
    excluded: str | None = Field(None, description="Why it is left out, when it is")


class SuggestionOut(BaseModel):
    provider: ProviderOut | None
    reasons: list[str]
    candidates: list[CandidateOut]


class DeadlineRowOut(DeadlineOut):
    reference: str


class DeadlinePageOut(BaseModel):
    items: list[DeadlineRowOut]
    total: int
    limit: int
    offset: int


class NoticeOut(BaseModel):
    id: str = Field(description="The notice's public id")
    reference: str | None
    template: str
    recipient_role: str
    channel: str
    to_address: str
    subject: str
    status: str
    not_before: dt.datetime
    attempts: int
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_error: str


class NoticePageOut(BaseModel):
    items: list[NoticeOut]
    total: int
    limit: int
    offset: int


# --- Helpers ---------------------------------------------------------------------------

_FACTS = (
    "health_care",
    "health_only",
    "placement_only",
    "la_told_on",
    "icb_told_on",
    "declined_on",
    "meeting_on",
    "meeting_time",
    "meeting_held_on",
    "meeting_outcome",
    "agreement",
    "not_arranged_reported_on",
    "certificate_on",
    "certificate_type",
    "close_outcome",
    "withdrawn_reason",
)

AnySelect: TypeAlias = Select[*tuple[Any, ...]]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]


def _is_provider(user: User) -> bool:
    return user.role == Role.provider


def _scoped(query: AnySelect, user: User) -> AnySelect:
    """Provider staff see only their provider's cases; everyone else sees all."""
    if _is_provider(user):
        return query.where(col(Case.provider_id) == user.provider_id)
    return query


def _not_found(reference: str) -> svc.NotFound:
    return svc.NotFound(
        f"no case with reference {reference[:32]!r}; GET /api/v1/cases lists the cases this"
        " token can see"
    )


def _visible_case(session: Session, user: User, reference: str) -> Case:
    """The case, or 404 when it does not exist or this token may not see it (same answer)."""
    wanted = reference.strip().upper()
    if not wanted or not wanted.isprintable():
        raise _not_found(reference)
    case = session.execute(
        _scoped(select(Case).where(col(Case.reference) == wanted), user)
    ).scalar_one_or_none()
    if case is None:
        raise _not_found(reference)
    return case


def _forbid_provider(user: User, what: str) -> None:
    if _is_provider(user):
        raise rules.NotPermitted(f"provider staff cannot {what}; ask the IAS adviser")


def _providers(session: Session) -> dict[int, Provider]:
    return {p.id: p for p in session.execute(select(Provider)).scalars() if p.id is not None}


def _provider_out(providers: dict[int, Provider], provider_id: int | None) -> ProviderOut | None:
    p = providers.get(provider_id) if provider_id is not None else None
    return ProviderOut(code=p.code, name=p.name) if p else None


def _deadline_out(d: Any, today: dt.date) -> DeadlineOut:
    """From a ``Deadline`` or a row with its column names."""
    return DeadlineOut(
        kind=d.kind,
        due_date=d.due_date,
        due_at=d.due_at,
        status=d.status,
        citation=d.citation,
        explanation=d.explanation,
        closed_reason=d.closed_reason,
        days_left=(d.due_date - today).days if d.status == DeadlineStatus.open else None,
    )


# Lists read plain columns, not ORM objects: building 50 entities (and their deadlines)
# cost more than the queries themselves on every page of the case list.
_SUMMARY_COLUMNS = tuple(
    col(c)
    for c in (
        Case.id,
        Case.reference,
        Case.kind,
        Case.state,
        Case.version,
        Case.opened_at,
        Case.updated_at,
        Case.decision_date,
        Case.decision_type,
        Case.appeal_due,
        Case.provider_id,
    )
)
_DEADLINE_COLUMNS = tuple(
    col(c)
    for c in (
        Deadline.case_id,
        Deadline.kind,
        Deadline.due_date,
        Deadline.due_at,
        Deadline.status,
        Deadline.citation,
        Deadline.explanation,
        Deadline.closed_reason,
    )
)


def _next_deadlines(session: Session, case_ids: list[int]) -> dict[int, Any]:
    """Each case's soonest open clock (a row of ``_DEADLINE_COLUMNS``), in one query."""
    if not case_ids:
        return {}
    found: dict[int, Any] = {}
    for d in session.execute(
        select(*_DEADLINE_COLUMNS)
        .where(col(Deadline.case_id).in_(case_ids), col(Deadline.status) == DeadlineStatus.open)
        .order_by(col(Deadline.due_at))
    ).all():
        found.setdefault(d.case_id, d)
    return found


def _summary_fields(
    case: Any, providers: dict[int, Provider], next_deadline: Any | None, today: dt.date
) -> dict[str, Any]:
    """The summary of a ``Case`` or of a row of ``_SUMMARY_COLUMNS`` (same attribute names)."""
    return {
        "reference": case.reference,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
        "decision_date": case.decision_date,
        "decision_type": case.decision_type,
        "appeal_due": case.appeal_due,
        "provider": _provider_out(providers, case.provider_id),
        "next_deadline": _deadline_out(next_deadline, today) if next_deadline else None,
    }


def _field_out(f: EventField) -> EventFieldOut:
    return EventFieldOut(
        name=f.name,
        type=f.type,
        required=f.required,
        default=f.default,
        choices=list(f.choices),
        help=f.help,
    )


def _allowed_for(user: User, case: Case) -> list[tuple[str, tuple[EventField, ...]]]:
    allowed = svc.allowed_events(case)
    if _is_provider(user):
        allowed = [(name, fields) for name, fields in allowed if name in PROVIDER_EVENTS]
    return allowed


def _detail(
    session: Session, user: User, case: Case, now: dt.datetime, *, include_views: bool = False
) -> CaseDetailOut:
    today = dl.local_date(now)
    providers = _providers(session)
    family = svc.family_of(session, case)
    live = svc.live_allocation(session, case)
    deadlines = svc.case_deadlines(session, case)
    open_clocks = sorted(
        (d for d in deadlines if d.status == DeadlineStatus.open), key=lambda d: d.due_at
    )
    # Views are filtered in SQL: a much-read case carries thousands of them.
    history = select(CaseEvent).where(col(CaseEvent.case_id) == case.id)
    if not include_views:
        history = history.where(col(CaseEvent.event) != "viewed")
    events = list(session.execute(history.order_by(col(CaseEvent.id))).scalars())
    allocation = None
    if live is not None:
        allocation = AllocationOut(
            provider=_provider_out(providers, live.provider_id)
            or ProviderOut(code="?", name="unknown provider"),
            status=live.status,
            allocated_at=live.allocated_at,
            allocated_by=live.allocated_by,
            responded_at=live.responded_at,
            note=live.note,
            override_reason=live.override_reason,
        )
    facts = {
        name: (value.isoformat() if isinstance(value, dt.date) else value)
        for name in _FACTS
        if (value := getattr(case, name)) not in (None, False, "")
    }
    return CaseDetailOut(
        **_summary_fields(case, providers, open_clocks[0] if open_clocks else None, today),
        intake_channel=case.intake_channel,
        summary=case.summary,
        child_name=case.child_name,
        contact=(
            ContactOut(
                name=family.name,
                phone=family.phone,
                email=family.email,
                preferred_channels=family.channels,
            )
            if family
            else None
        ),
        facts=facts,
        allocation=allocation,
        deadlines=[_deadline_out(d, today) for d in deadlines],
        events=[
            EventOut(
                at=e.at,
                actor=e.actor,
                event=e.event,
                from_state=e.from_state,
                to_state=e.to_state,
                channel=e.channel,
                data=e.data or {},
                note=e.note,
            )
            for e in events
        ],
        allowed_events=[
            AllowedEventOut(
                event=name,
                label=EVENT_LABELS.get(name, name),
                fields=[_field_out(f) for f in fields],
            )
            for name, fields in _allowed_for(user, case)
        ],
    )


def _end_read(session: Session) -> None:
    """Finish the checks' read transaction before a use case (or an audit write) runs.

    On SQLite a read transaction that later writes is refused outright ("database is
    locked") when another request wrote in between, whereas a transaction that starts
    fresh waits its turn. Expiring what was read makes the use case load the case as
    it is now, so it decides on current data (its version check still guards the race).
    """
    session.commit()
    session.expire_all()


def _record_view(session: Session, case: Case, user: User, now: dt.datetime) -> None:
    """Append ``viewed`` to the audit trail, before anything of the case is returned.

    Recorded first so that a read which cannot be recorded is not served either. In a
    transaction of its own, begun IMMEDIATE on SQLite: a deferred one takes its read
    snapshot first and, having waited for the write lock behind another writer, finds
    the snapshot stale and fails ("database is locked") instead of writing.
    """
    case_id, state = case.id, case.state
    _end_read(session)
    session.connection(execution_options={"claim": True})
    session.add(
        CaseEvent(
            case_id=case_id,  # type: ignore[arg-type]
            at=now,
            actor=actor_for(user, "api").id,
            event="viewed",
            from_state=state,
            to_state=state,
            data={},
            channel="api",
            note="",
        )
    )
    session.commit()


def _check_version(case: Case, user: User, expected: int | None) -> None:
    if expected is not None and case.version != expected:
        allowed = [name for name, _ in _allowed_for(user, case)]
        raise ApiConflict(
            f"{case.reference} was changed by someone else: it is now {case.state} at version"
            f" {case.version} (you sent expected_version={expected}); GET it again, check what"
            f" changed, and resend with expected_version={case.version}",
            allowed,
        )


def _check_dates(case: Case, event: str, data: dict[str, Any], today: dt.date) -> None:
    """Refuse dates no SEND record can carry before they reach the legal clocks."""
    latest = today + dt.timedelta(days=FUTURE_LIMIT_DAYS)
    for f in event_fields(case.kind, event):
        value = data.get(f.name)
        if f.type != "date" or not isinstance(value, str) or not value.strip():
            continue
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            continue  # the use case names the field and the format
        if not EARLIEST_DATE <= day <= latest:
            raise svc.ValidationFailed(
                f"{event}: {f.name} {day.isoformat()} is out of range; give a date between"
                f" {EARLIEST_DATE.isoformat()} and {latest.isoformat()}",
                field=f.name,
            )


def _page(
    session: Session,
    rows: AnySelect,
    table: Any,
    conditions: list[ColumnElement[bool]],
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """A page of ``rows`` and the total, counted on ``table`` alone.

    Counting ``SELECT count(*) FROM (<the sorted, joined page query>)`` makes SQLite
    materialise every matching row (160 ms over 100,000 cases); counting the bare table
    under the same conditions reads an index (under 1 ms).
    """
    total = int(
        session.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
    )
    found = list(session.execute(rows.where(*conditions).limit(limit).offset(offset)).all())
    return found, total


def _of_provider_cases(case_id: Any, user: User) -> ColumnElement[bool]:
    """Rows of a child table (by its ``case_id`` column) on the provider's cases."""
    return col(case_id).in_(select(col(Case.id)).where(col(Case.provider_id) == user.provider_id))


# --- Cases -----------------------------------------------------------------------------


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
    if _is_provider(user):
        conditions.append(col(Case.provider_id) == user.provider_id)
    if state is not None:
        conditions.append(col(Case.state) == state.value)
    if kind is not None:
        conditions.append(col(Case.kind) == kind.value)
    if q and q.strip():
        if "\x00" in q:
            raise svc.ValidationFailed("q: must not contain NUL characters", field="q")
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
    rows, total = _page(
        session,
        select(*_SUMMARY_COLUMNS).order_by(col(Case.id).desc()),
        Case,
        conditions,
        limit,
        offset,
    )
    providers = _providers(session)
    upcoming = _next_deadlines(session, [r.id for r in rows])
    today = dl.local_date(now)
    items = [
        CaseSummaryOut(**_summary_fields(r, providers, upcoming.get(r.id), today)) for r in rows
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
    _forbid_provider(user, "open cases")
    if body.decision_date is not None and body.decision_date < EARLIEST_DATE:
        raise svc.ValidationFailed(
            f"decision_date {body.decision_date.isoformat()} is before the SEND Regulations 2014"
            " came into force (2014-09-01); check the date on the LA's letter",
            field="decision_date",
        )
    intake = svc.Intake(
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
    )
    case = svc.open_case(session, intake, now=now, actor=actor_for(user, "api"), settings=settings)
    response.headers["Location"] = f"/api/v1/cases/{case.reference}"
    return _detail(session, user, case, now)


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
    case = _visible_case(session, user, reference)
    _record_view(session, case, user, now)
    return _detail(session, user, case, now, include_views=include_views)


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
    case = _visible_case(session, user, reference)
    if _is_provider(user) and body.event not in PROVIDER_EVENTS:
        allowed = [name for name, _ in _allowed_for(user, case)]
        raise RoleRefused(
            f"Cannot {body.event}: provider staff record only"
            f" {', '.join(sorted(PROVIDER_EVENTS))}; ask the IAS adviser to {body.event};"
            f" allowed now: {', '.join(allowed) or 'nothing'}",
            allowed,
        )
    _check_version(case, user, body.expected_version)
    data = dict(body.data)
    _check_dates(case, body.event, data, dl.local_date(now))
    _end_read(session)
    try:
        case = svc.advance(
            session,
            case.reference,
            body.event,
            now=now,
            actor=actor_for(user, "api"),
            settings=settings,
            data=data,
            note=body.note,
            expected_version=body.expected_version,
        )
    except svc.TransitionRefused as exc:
        if not _is_provider(user):
            raise
        # Offer provider staff only what they may do, not the adviser's events.
        mine = [e for e in exc.allowed if e in PROVIDER_EVENTS]
        reason = str(exc).split("; allowed now:")[0]
        raise svc.TransitionRefused(
            f"{reason}; allowed now: {', '.join(mine) or 'nothing for provider staff'}", mine
        ) from exc
    return _detail(session, user, case, now)


# --- Allocation ----------------------------------------------------------------------------


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
    case = _visible_case(session, user, reference)
    _forbid_provider(user, "allocate cases")
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
    case = _visible_case(session, user, reference)
    _forbid_provider(user, "allocate cases")
    _check_version(case, user, body.expected_version)
    _end_read(session)
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
    return _detail(session, user, case, now)


@router.post(
    "/cases/{reference}/allocation/response",
    response_model=CaseDetailOut,
    summary="Accept or decline an allocation (provider staff, or an adviser on their behalf)",
)
def post_allocation_response(
    reference: Reference,
    body: AllocationResponseIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> CaseDetailOut:
    """A decline needs a reason in ``note`` and returns the case to the adviser."""
    case = _visible_case(session, user, reference)
    _end_read(session)
    svc.respond_to_allocation(
        session,
        case.reference,
        accept=body.answer == "accept",
        now=now,
        actor=actor_for(user, "api"),
        settings=settings,
        note=body.note,
    )
    return _detail(session, user, svc.get_case(session, case.reference), now)


# --- Deadlines and notices ------------------------------------------------------------------


@router.get("/deadlines", response_model=DeadlinePageOut, summary="Deadlines, soonest first")
def list_deadlines(
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[
        DeadlineStatus, Query(description="open, met, missed or cancelled")
    ] = DeadlineStatus.open,
    due_before: Annotated[
        dt.date | None, Query(description="Only deadlines due before this date")
    ] = None,
) -> DeadlinePageOut:
    """Deadlines on the cases this token can see, each with how it was worked out."""
    conditions: list[ColumnElement[bool]] = [col(Deadline.status) == status.value]
    if _is_provider(user):
        conditions.append(_of_provider_cases(Deadline.case_id, user))
    if due_before is not None:
        conditions.append(col(Deadline.due_date) < due_before)
    rows, total = _page(
        session,
        select(Deadline, col(Case.reference))
        .join(Case, col(Case.id) == col(Deadline.case_id))
        .order_by(col(Deadline.due_at), col(Deadline.id)),
        Deadline,
        conditions,
        limit,
        offset,
    )
    today = dl.local_date(now)
    items = [
        DeadlineRowOut(reference=ref, **_deadline_out(d, today).model_dump()) for d, ref in rows
    ]
    return DeadlinePageOut(items=items, total=total, limit=limit, offset=offset)


@router.get("/notices", response_model=NoticePageOut, summary="Notices and their delivery status")
def list_notices(
    user: ApiUser,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    case: Annotated[
        str | None, Query(max_length=32, description="Only this case's notices (reference)")
    ] = None,
    status: Annotated[NoticeStatus | None, Query(description="Only notices in this status")] = None,
) -> NoticePageOut:
    """Newest first. Provider staff see only the notices sent to their provider."""
    conditions: list[ColumnElement[bool]] = []
    if _is_provider(user):
        conditions.append(_of_provider_cases(Notice.case_id, user))
        conditions.append(col(Notice.recipient_role) == "provider")
    if case is not None:
        found = _visible_case(session, user, case)
        conditions.append(col(Notice.case_id) == found.id)
    if status is not None:
        conditions.append(col(Notice.status) == status.value)
    rows, total = _page(
        session,
        select(Notice, col(Case.reference))
        .outerjoin(Case, col(Case.id) == col(Notice.case_id))
        .order_by(col(Notice.id).desc()),
        Notice,
        conditions,
        limit,
        offset,
    )
    items = [
        NoticeOut(
            id=n.public_id,
            reference=ref,
            template=n.template,
            recipient_role=n.recipient_role,
            channel=n.channel,
            to_address=n.to_address,
            subject=n.subject,
            status=n.status,
            not_before=n.not_before,
            attempts=n.attempts,
            created_at=n.created_at,
            sent_at=n.sent_at,
            delivered_at=n.delivered_at,
            last_error=n.last_error,
        )
        for n, ref in rows
    ]
    return NoticePageOut(items=items, total=total, limit=limit, offset=offset)
