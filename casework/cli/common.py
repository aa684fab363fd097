"""What every CLI command shares: ``--json`` and ``--at``, exit codes, the session.

Bad input exits non-zero with one line that says what to do: 2 for a refused
transition or invalid data, 3 for something not found, 4 for a conflict with a
concurrent change, 5 for a database that cannot be brought to the current schema.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from casework import cases
from casework import deadlines as dl
from casework.cases.fields import EARLIEST_DATE, FUTURE_LIMIT_DAYS
from casework.config import Settings, get_settings
from casework.db import ensure_schema, get_engine, session_scope

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When this happened: a date and time, e.g. 2026-11-27T10:00 (London time unless"
        " it ends in Z or an offset). Default now.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# Exit codes by kind of refusal: 2 refused or invalid, 3 not found, 4 changed by someone else.
_EXIT_CODES: tuple[tuple[type[cases.CaseworkError], int], ...] = (
    (cases.NotFound, 3),
    (cases.Conflict, 4),
)


def exit_code(exc: cases.CaseworkError) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 2


def handles_errors(func: F) -> F:
    """Turn refusals into one line on stderr and a meaningful exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except cases.CaseworkError as exc:
            message = str(exc)
            if isinstance(exc, cases.TransitionRefused) and exc.reopenable:
                message += (
                    f" To reopen it: casework case reopen {exc.reference or 'REFERENCE'}"
                    ' --reason "..."'
                )
            fail(message, exit_code(exc))
        except ValueError as exc:
            fail(str(exc), 2)

    return wrapper  # type: ignore[return-value]


def parse_at(value: str | None) -> dt.datetime:
    """An instant from ``--at``; naive values are London wall-clock time."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(12, 0))
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(
            f"--at {value!r} is not a date and time; give the day, then T and the London"
            " time, e.g. 2026-11-27T10:00 (or 2026-11-27T10:00Z for UTC)"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dl.LONDON)
    # --at back-dates (or, in a rehearsal, runs a little ahead); never to another age.
    latest = dt.datetime.now(dt.UTC) + dt.timedelta(days=FUTURE_LIMIT_DAYS)
    if not EARLIEST_DATE <= moment.date() <= latest.date():
        fail(
            f"--at {value!r} is out of range: give a moment between {dl.fmt(EARLIEST_DATE)}"
            f" and {dl.fmt(latest.date())}"
        )
    return moment.astimezone(dt.UTC)


def parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD")


def cli_actor() -> cases.Actor:
    name = os.environ.get("CASEWORK_ACTOR") or getpass.getuser()
    return cases.Actor(id=f"cli:{name}", role="adviser", channel="cli")


def account_actor(session: Session) -> cases.Actor:
    """The CLI's actor with the role of the user account it names, for a manager's step.

    ``CASEWORK_ACTOR`` set to a user's email (an active account) acts with that
    account's role; anything else is the adviser :func:`cli_actor` gives, so a step
    kept for managers is refused by the use case as it is at every other door.
    """
    from sqlalchemy import func, select

    from casework.models import User

    actor = cli_actor()
    name = actor.id.partition(":")[2].strip().lower()
    user = session.execute(
        select(User).where(func.lower(User.email) == name, User.active.is_(True))  # type: ignore[attr-defined]
    ).scalar_one_or_none()
    session.rollback()
    if user is None or user.role == "provider":
        return actor
    return cases.Actor(id=f"cli:{user.email}", role=user.role, channel="cli")


def ready_engine(settings: Settings) -> Engine:
    """The engine, its schema current; a freshly migrated embedded database also gets the
    configured providers, exactly as `casework db upgrade` would load them."""
    engine = get_engine(settings)
    try:
        migrated = ensure_schema(engine, settings)
    except RuntimeError as exc:
        fail(str(exc), 5)
    if migrated:
        with session_scope(engine) as session:
            cases.sync_providers(session, settings)
    return engine


@contextmanager
def open_session() -> Iterator[tuple[Session, Settings]]:
    settings = get_settings()
    with session_scope(ready_engine(settings)) as session:
        yield session, settings


def emit(payload: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        typer.echo(text() if callable(text) else text)
