"""What every API route shares: the JSON error shape, the bearer token, reach by role,
paging, and the transaction discipline of reads followed by writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Mapping, Sequence
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


class UnknownEvent(cases.ValidationFailed):
    """An event name no case takes (422, as any invalid field), with the ones this case
    can take now by name: over the API the names are what a client sends."""

    def __init__(self, event: str, allowed: list[str]) -> None:
        possible = ", ".join(allowed) if allowed else "none (the case takes no step now)"
        super().__init__(
            f"{event!r} is not a step this case can take; possible now: {possible}.",
            field="event",
        )
        self.allowed = allowed


def error_response(exc: cases.CaseworkError) -> JSONResponse:
    """The JSON body and status of a use-case refusal: the message, the field, what is allowed.

    A step refused only because the case has ended says how to reopen it over the API
    (the use case's words already say who may).
    """
    message = str(exc)
    if isinstance(exc, cases.TransitionRefused) and exc.reopenable:
        message += (
            f" To reopen it: POST /api/v1/cases/{exc.reference or '{reference}'}/reopen with"
            ' {"reason": "..."} and a manager\'s API token.'
        )
    body = ErrorOut(
        error=message,
        field=getattr(exc, "field", None),
        allowed=list(getattr(exc, "allowed", None) or []),
    )
    return JSONResponse(body.model_dump(), status_code=http_status(exc))


# Pydantic names the type it tried in a union or a validator chain in an error's
# location ("data.note.function-after[_no_nul(), constrained-str]"); a client wants
# the field it sent.
_TYPE_TAGS = frozenset({"str", "bool", "int", "float", "none", "constrained-str", "list", "dict"})


def _field_of(loc: Sequence[Any]) -> str:
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    parts = [str(p) for p in loc if not (str(p) in _TYPE_TAGS or "[" in str(p))]
    return ".".join(parts) or "body"


def _words_for(error: Mapping[str, Any]) -> str:
    """What is wrong with one field and how to put it right, in our words, not pydantic's."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "this is needed"
    if kind == "extra_forbidden":
        return "this request does not take it (the API document lists what it takes)"
    if kind in ("string_type", "string_sub_type"):
        return "give text"
    if kind in ("bool_type", "bool_parsing"):
        return "give true or false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "give a whole number"
    if kind in (
        "date_type",
        "date_parsing",
        "date_from_datetime_parsing",
        "date_from_datetime_inexact",
    ):
        return "give a date as YYYY-MM-DD, for example 2026-10-20"
    if kind == "string_too_long":
        return f"keep it to {ctx.get('max_length')} characters or fewer"
    if kind == "string_too_short":
        return (
            "this is needed"
            if ctx.get("min_length") == 1
            else f"give at least {ctx.get('min_length')} characters"
        )
    if kind == "too_long":
        return f"give at most {ctx.get('max_length')} values"
    if kind == "too_short":
        return f"give at least {ctx.get('min_length')} value"
    if kind in ("greater_than_equal", "greater_than"):
        return f"give a number of at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"give a number of at most {ctx.get('le', ctx.get('lt'))}"
    if kind in ("literal_error", "enum"):
        return f"choose one of {ctx.get('expected')}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "give a JSON object ({...})"
    if kind == "list_type":
        return "give a JSON list ([...])"
    if kind == "value_error":
        return str(ctx.get("error", "")) or "this value cannot be used"
    return "this value cannot be used; the API document says what it takes"


def _json_invalid(errors: Sequence[Mapping[str, Any]]) -> FieldErrorOut | None:
    for error in errors:
        if error.get("type") == "json_invalid":
            loc = error.get("loc", ())
            where = (
                f" (the first problem is at character {loc[-1] + 1})"
                if loc and isinstance(loc[-1], int)
                else ""
            )
            return FieldErrorOut(
                field="body",
                message=f"The request body is not valid JSON{where}; send a JSON object",
            )
    return None


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors in the API's shape and our words: the first field named
    up front, every field in ``errors``."""
    raw = exc.errors()
    broken = _json_invalid(raw)
    if broken is not None:
        body = ErrorOut(error=f"{broken.message}.", field="body", errors=[broken])
        return JSONResponse(body.model_dump(), status_code=422)
    # A union (text or true/false) fails once per member: one entry per field.
    by_field: dict[str, list[str]] = {}
    for error in raw:
        words = _words_for(error)
        said = by_field.setdefault(_field_of(error.get("loc", ())), [])
        if words not in said:
            said.append(words)
    errors = [
        FieldErrorOut(field=field, message=" or ".join(words).replace(" or give ", " or "))
        for field, words in by_field.items()
    ] or [FieldErrorOut(field="body", message="this request cannot be read")]
    first = errors[0]
    if first.field == "body" and first.message == "this is needed":
        what = "The request body is empty: send a JSON object"
    elif first.field == "body":
        what = f"The request body: {first.message}"
    else:
        what = f"{first.field}: {first.message}"
    more = f" (and {len(errors) - 1} more, listed in errors)" if len(errors) > 1 else ""
    body = ErrorOut(
        error=f"{what}{more}; correct it and send the request again",
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
