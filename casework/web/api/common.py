"""What every API route shares: the JSON error shape, the bearer token, reach by role,
paging, and the transaction discipline of reads followed by writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeAlias

from fastapi import Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import Session, col
from starlette.exceptions import HTTPException as StarletteHTTPException

from casework import cases
from casework.cases import allocation as rules
from casework.cases.effects import PROVIDER_EVENTS as _PROVIDER_EVENTS
from casework.config import Settings
from casework.models import Case, Role, User
from casework.web.api.schemas import ErrorOut, FieldErrorOut
from casework.web.deps import NowDep, SessionDep, get_api_user
from casework.web.errors import http_status


class ApiConflict(cases.Conflict):
    """A stale ``expected_version``: the case moved on; carries the events allowed now."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class RoleRefused(rules.NotPermitted):
    """The role may not send this event at all (403), with what it may do now."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


def error_response(exc: cases.CaseworkError) -> JSONResponse:
    """The JSON body and status of a use-case refusal: the message, the field, what is allowed."""
    body = ErrorOut(
        error=str(exc),
        field=getattr(exc, "field", None),
        allowed=list(getattr(exc, "allowed", None) or []),
    )
    return JSONResponse(body.model_dump(), status_code=http_status(exc))


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
            except cases.CaseworkError as exc:
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


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not valid JSON"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API token"},
    403: {"model": ErrorOut, "description": "This role may not do this (`allowed`: what it may)"},
    404: {"model": ErrorOut, "description": "No such case (or not one this token may see)"},
    409: {"model": ErrorOut, "description": "Refused now, or the case changed since it was read"},
    422: {
        "model": ErrorOut,
        "description": "Invalid data, or a rule of the case refuses it (a date in the future,"
        " dates out of order, a reason missing); `field` names it and `error` says how to fix it",
    },
}

# Declares the bearer scheme in the OpenAPI document; the token itself is checked by
# `api_user` below (which answers 401 with the API's message).
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token from `casework user token EMAIL`, as 'Authorization: Bearer <token>'",
)


def api_user(request: Request, session: SessionDep, now: NowDep) -> User:
    """``deps.get_api_user`` (ApiUserDep), in a transaction allowed to write from the start.

    Resolving a token also stamps when it was last used: a write after a read. On
    SQLite a read transaction that then writes is refused outright ("database is
    locked") when another request wrote in between, which 20 concurrent API clients
    make routine (the bench saw a third of requests fail). Asking for BEGIN IMMEDIATE
    (``db.py``'s ``claim`` option) makes the request wait its turn instead. PostgreSQL
    ignores the option.

    A GET that only reads (the case list) does not take the write lock: it would queue
    every reader behind every writer for a stamp that is best effort anyway (a busy
    database skips it, :func:`casework.auth.resolve_api_token`). A GET that writes
    what it read (a case, whose view is audited) is marked :func:`records_reads`.
    """
    reads_only = request.method in ("GET", "HEAD") and not getattr(
        request.scope.get("endpoint"), "records_reads", False
    )
    if not reads_only and request.headers.get("Authorization", "").lower().startswith("bearer "):
        session.connection(execution_options={"claim": True})
    user = get_api_user(request, session, now)
    if user.role == Role.commissioner:  # aggregates only: /api/v1/reports/...
        raise StarletteHTTPException(403, "Commissioners may use the reports API only")
    return user


ApiUser = Annotated[User, Depends(api_user)]

# Provider staff work the meeting and certificate; the adviser does everything else.
PROVIDER_EVENTS = frozenset(_PROVIDER_EVENTS)

# --- Request parameters and paging ------------------------------------------------------

MAX_PAGE = 200
MAX_OFFSET = 10_000_000
AnySelect: TypeAlias = Select[*tuple[Any, ...]]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]
Reference = Annotated[str, Path(max_length=32, description="e.g. MED-2026-0042")]


def is_provider(user: User) -> bool:
    return user.role == Role.provider


def case_not_found(reference: str) -> cases.NotFound:
    return cases.NotFound(
        f"no case with reference {reference[:32]!r}; GET /api/v1/cases lists the cases this"
        " token can see"
    )


def visible_case(
    session: Session, user: User, reference: str, *, now: dt.datetime, settings: Settings
) -> Case:
    """The case, or 404 when it does not exist or this token may not see it (same answer).

    Provider staff: only a case ``cases.provider_may_open`` (allocated to their provider,
    still in its lists, not anonymised).
    """
    wanted = reference.strip().upper()
    if not wanted or not wanted.isprintable():
        raise case_not_found(reference)
    query = select(Case).where(col(Case.reference) == wanted)
    if is_provider(user):
        assert user.provider_id is not None
        query = query.where(cases.provider_may_open(user.provider_id, now=now, settings=settings))
    case = session.execute(query).scalar_one_or_none()
    if case is None:
        raise case_not_found(reference)
    return case


def forbid_provider(user: User, what: str) -> None:
    if is_provider(user):
        raise rules.NotPermitted(f"provider staff cannot {what}; ask the IAS adviser")


def end_read(session: Session) -> None:
    """Finish the checks' read transaction before a use case (or an audit write) runs.

    On SQLite a read transaction that later writes is refused outright ("database is
    locked") when another request wrote in between, whereas a transaction that starts
    fresh waits its turn. Expiring what was read makes the use case load the case as
    it is now, so it decides on current data (its version check still guards the race).
    """
    session.commit()
    session.expire_all()


def page_of(
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
