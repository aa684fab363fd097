"""Request dependencies as ``Annotated`` aliases: the database session, the clock, the user.

Pages authenticate with the session cookie; the API with a bearer token. Both
resolve to the same ``User`` and the same :class:`~casework.cases.Actor`, so
a provider's reach is identical through either door.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from casework import auth
from casework.cases import mfa
from casework.config import Settings
from casework.models import User, UserSession

SESSION_COOKIE = "casework_session"

_F = TypeVar("_F", bound=Callable[..., Any])


async def get_settings_dep(request: Request) -> Settings:  # never waits: see get_now
    return request.app.state.settings  # type: ignore[no-any-return]


def records_reads(endpoint: _F) -> _F:
    """Mark a route whose reading writes from its first statement (the API's case read:
    the token's last use, then who looked).

    Its request begins as a writer (``claim``: BEGIN IMMEDIATE on SQLite).
    A reader's transaction on SQLite takes its snapshot at its first read and, if
    another writer commits before it writes, is refused ("database is locked");
    beginning as the writer queues it behind the other instead. PostgreSQL ignores
    the option. A page so marked must also run :func:`in_one_thread`, so the
    transaction begins in the endpoint's own thread: begun in a dependency, SQLite's
    write lock was held while the request queued for a thread to run the endpoint, and
    under load every other writer waited behind that queue until it gave up.
    """
    endpoint.records_reads = True  # type: ignore[attr-defined]
    return endpoint


def begin_request_transaction(request: Request, session: Session) -> None:
    """Begin the request's transaction now, as a writer if its route records reads."""
    claims = getattr(request.scope.get("endpoint"), "records_reads", False)
    if claims and not session.in_transaction():
        session.connection(execution_options={"claim": True})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. ``async``: making one touches no database (it connects at
    its first statement, in whichever thread runs it), and a plain generator would cost
    two trips to a worker thread per request, one to open it and one to close it."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


async def get_now(request: Request) -> dt.datetime:
    """The current instant; tests pin it with ``app.state.clock``.

    ``async`` because it never waits: a plain function would be sent to a worker thread
    and back on every request for nothing."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else dt.datetime.now(dt.UTC)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[dt.datetime, Depends(get_now)]


class NotSignedIn(Exception):
    """Raised by page dependencies; the app turns it into a redirect to sign-in."""


class MustEnrol(Exception):
    """Two-factor sign-in is required of this person and not yet on: the app sends them
    to enrol, whatever page they asked for."""


ENROL_URL = "/account/two-factor"
# What someone who must enrol may still reach: enrolment itself, and signing out.
_BEFORE_ENROLMENT = (ENROL_URL, "/sign-out")


def get_page_user(request: Request, session: SessionDep, now: NowDep) -> tuple[User, UserSession]:
    resolved = auth.resolve_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    if resolved is None:
        raise NotSignedIn()
    # Sliding the session's expiry commits (once a minute): begin the next one likewise.
    begin_request_transaction(request, session)
    request.state.user = resolved[0]
    request.state.csrf_token = resolved[1].csrf_token
    settings: Settings = request.app.state.settings
    if mfa.must_enrol(resolved[0], settings) and not request.url.path.startswith(_BEFORE_ENROLMENT):
        raise MustEnrol()
    return resolved


PageUserDep = Annotated[tuple[User, UserSession], Depends(get_page_user)]


def in_one_thread(
    endpoint: Callable[..., Response],
) -> Callable[..., Coroutine[Any, Any, Response]]:
    """Run a page whole, sign-in included, in ONE trip to a worker thread.

    A plain page's dependencies (sign-in, then the endpoint) each took their own trip
    to the thread pool and back, and under load each trip queued behind every other
    request's: most of a page's time at 100 requests a second was spent waiting for a
    thread, not working. The endpoint declares ``request``, ``session``, ``now`` and
    ``signed_in``; ``signed_in`` is left out of what FastAPI resolves and filled in
    here, in the same thread as the endpoint (after beginning the request's
    transaction as a writer if the route :func:`records_reads`).
    """
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    needed = {"request", "session", "now", "signed_in"}
    missing = needed - set(signature.parameters)
    if missing:
        raise TypeError(f"{endpoint.__name__} must take {', '.join(sorted(missing))}")
    shown = inspect.Signature(
        [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name != "signed_in"
        ],
        return_annotation=hints.get("return", inspect.Signature.empty),
    )

    @functools.wraps(endpoint)
    async def page(**kwargs: Any) -> Response:
        request: Request = kwargs["request"]

        def whole() -> Response:
            session: Session = kwargs["session"]
            try:
                begin_request_transaction(request, session)
                signed_in = get_page_user(request, session, kwargs["now"])
                return endpoint(**kwargs, signed_in=signed_in)
            finally:
                # Its connection goes back to the pool here, in this thread, once the page
                # is drawn: not later in the event loop, where a rollback on PostgreSQL is
                # a round trip every other request would wait behind.
                session.close()

        return await run_in_threadpool(whole)

    page.__signature__ = shown  # type: ignore[attr-defined]
    return page


def get_api_user(request: Request, session: SessionDep, now: NowDep) -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            detail="Send an API token as 'Authorization: Bearer <token>'"
            " (create one with `casework user token EMAIL`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = auth.resolve_api_token(session, token.strip(), now=now)
    if user is None:
        raise HTTPException(
            401,
            detail="This API token is not valid or was revoked; ask an administrator for a new one",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


ApiUserDep = Annotated[User, Depends(get_api_user)]
